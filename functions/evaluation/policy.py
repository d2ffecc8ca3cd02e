"""The evaluation policy (policies/evaluation.json): who is sampled how often, how faithfulness is measured, and
the degradation rule's window and thresholds. Read from a file, re-read when it changes (a running stack can be
switched without a restart)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentplatform.errors import ConfigurationError, FieldError

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policies" / "evaluation.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TenantPolicy(_Strict):
    rate: float = Field(ge=0.0, le=1.0)


class Window(_Strict):
    samples: int = Field(default=10, ge=1, le=1000, description="Records in one rolling window.")
    min_samples: int = Field(default=5, ge=1, le=1000, description="Fewer in a window: the rule does not judge.")
    max_age_s: int = Field(default=86_400, ge=1, description="Records older than this are out of every window.")


class EvaluationPolicy(_Strict):
    description: str = ""
    default_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    tenants: dict[str, TenantPolicy] = Field(default_factory=dict)
    # judge: the gateway's `judge` task (where the policy's judge route is a capable model); embedding: the
    # grounding check with the gateway's embeddings; lexical: the grounding check's containment only.
    faithfulness_method: Literal["judge", "embedding", "lexical"] = "embedding"
    window: Window = Field(default_factory=Window)
    thresholds: dict[Literal["faithfulness", "answer_relevance", "citation_validity", "abstention"], float] = Field(
        default_factory=dict
    )
    max_drop: float = Field(default=0.3, gt=0.0, le=1.0, description="A fall of the mean against the last window.")

    def rate(self, tenant: str) -> float:
        found = self.tenants.get(tenant)
        return found.rate if found is not None else self.default_rate


class FilePolicySource:
    """The policy from a JSON file, parsed again only when the file's mtime changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen: tuple[float, EvaluationPolicy] | None = None

    def get(self) -> EvaluationPolicy:
        try:
            mtime = os.stat(self._path).st_mtime
        except OSError as exc:
            raise ConfigurationError(f"evaluation policy {self._path} is not readable", path=str(self._path)) from exc
        if self._seen is None or self._seen[0] != mtime:
            self._seen = (mtime, parse_policy(self._path.read_text(), str(self._path)))
        return self._seen[1]


class StaticPolicySource:
    """A policy given whole (in AWS, CDK puts the policy file's JSON in EVALUATION_POLICY)."""

    def __init__(self, policy: EvaluationPolicy) -> None:
        self._policy = policy

    def get(self) -> EvaluationPolicy:
        return self._policy


def parse_policy(text: str, source: str) -> EvaluationPolicy:
    try:
        return EvaluationPolicy.model_validate(json.loads(text))
    except ValueError as exc:
        errors = (
            [FieldError(loc=tuple(e["loc"]), message=e["msg"], type=e["type"]) for e in exc.errors()]
            if isinstance(exc, ValidationError)
            else []
        )
        raise ConfigurationError(f"invalid evaluation policy {source}", errors=errors) from exc
