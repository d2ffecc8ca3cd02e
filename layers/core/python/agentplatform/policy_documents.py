"""Declarative policy documents (the gateway's routing, the tools' per-tenant policy): a pydantic model read from
a file locally or an SSM parameter in AWS, validated at load so a bad document refuses to load naming the field,
and cached per container."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from agentplatform.errors import ConfigurationError, FieldError

P = TypeVar("P", bound=BaseModel)


def parse_document(
    document: Any,
    model: type[P],
    *,
    what: str,
    source: str,
    loc_of: Callable[[dict[str, Any]], tuple[str | int, ...]] | None = None,
) -> P:
    """`document` (JSON text or parsed) as `model`, or ConfigurationError naming each bad field. `loc_of` may
    name a field better than pydantic's location (a cross-field check that knows which field is wrong)."""
    try:
        data = json.loads(document) if isinstance(document, str | bytes) else document
    except ValueError as exc:
        raise ConfigurationError(f"the {what} at {source} is not JSON: {exc}", source=source) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            FieldError(loc=(loc_of(e) if loc_of else None) or tuple(e["loc"]), message=e["msg"], type=e["type"])
            for e in exc.errors()
        ]
        named = ", ".join(".".join(str(p) for p in err.loc) for err in errors)
        raise ConfigurationError(f"the {what} at {source} is invalid: {named}", errors=errors, source=source) from exc


Parse = Callable[[Any, str], P]  # (document, source) -> policy


class FilePolicySource(Generic[P]):
    """A policy in a file, re-read when its mtime changes (looked at every `check_s` at most), so a switch edited
    on a running stack takes effect within about a second."""

    def __init__(
        self, path: Path, parse: Parse[P], *, check_s: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._path = path
        self._parse = parse
        self._check_s = check_s
        self._clock = clock
        self._lock = threading.Lock()
        self._policy: P | None = None
        self._mtime: int | None = None
        self._checked = float("-inf")

    def get(self) -> P:
        now = self._clock()
        if self._policy is not None and now - self._checked < self._check_s:
            return self._policy
        with self._lock:
            try:
                mtime = self._path.stat().st_mtime_ns
            except OSError as exc:
                raise ConfigurationError(f"cannot read the policy {self._path}: {exc}", path=str(self._path)) from exc
            if self._policy is None or mtime != self._mtime:
                self._policy = self._parse(self._path.read_text(encoding="utf-8"), str(self._path))
                self._mtime = mtime
            self._checked = now
            return self._policy


class SsmPolicySource(Generic[P]):
    """A policy in an SSM parameter (String), cached per container for `ttl_s`."""

    def __init__(
        self,
        name: str,
        client: Any,
        parse: Parse[P],
        *,
        ttl_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._ssm = client
        self._parse = parse
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._policy: P | None = None
        self._loaded = float("-inf")

    def get(self) -> P:
        now = self._clock()
        if self._policy is not None and now - self._loaded < self._ttl_s:
            return self._policy
        with self._lock:
            from agentplatform.adapters.aws.errors import aws_call

            with aws_call(f"parameter {self._name}"):
                value = self._ssm.get_parameter(Name=self._name)["Parameter"]["Value"]
            self._policy = self._parse(value, f"ssm:{self._name}")
            self._loaded = now
            return self._policy


class StaticPolicySource(Generic[P]):
    """A policy held in memory (tests, benchmarks)."""

    def __init__(self, policy: P) -> None:
        self.policy = policy

    def get(self) -> P:
        return self.policy
