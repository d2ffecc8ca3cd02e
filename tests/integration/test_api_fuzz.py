"""Schemathesis against the running local stack's /openapi.json, with valid credentials: over a thousand
generated requests (examples, boundary coverage, random fuzzing, and every method each path does not take), and
none may answer 5xx or break the documented schema, status codes, content types or headers.

Every check runs, with the project's schemathesis.toml: it names, per operation, the answers to schema-valid
requests whose fault JSON Schema cannot state (422 for a cursor this API never issued, an upload path naming a
hidden file, a model the gateway's policy lacks; 413 for a body over the size limit; 503 from chat on this stack,
which hosts no generation model), each with its reason.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agentplatform.topology import ADMIN_SCOPE, PLATFORM
from local.runtime import LocalRuntime
from tests.integration.conftest import start_runtime

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

MIN_CASES = 1_000
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Iterator[LocalRuntime]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TENANT_RATE_PER_S", "1000")  # the fuzzer is one tenant sending as fast as it can
        env.setenv("TENANT_BURST", "1000")
        rt = start_runtime(tmp_path_factory, LOCAL_MODELS="embedding")
        yield rt
        rt.stop()


def test_a_thousand_generated_requests_get_no_5xx_and_no_answer_off_the_schema(runtime, tmp_path: Path):
    assert runtime.issuer is not None
    every_scope = sorted({s for r in PLATFORM.routes for s in r.scopes} | {ADMIN_SCOPE})
    token = runtime.issuer.mint(tenant="fuzz", subject="schemathesis", scopes=every_scope, ttl_s=3600)
    # Warm the model path first: the first embedding of a fresh model server is not what this test measures.
    warm = requests.post(
        f"{runtime.http_url}/v1/search",
        json={"query": "warm up"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    assert warm.status_code == 200, warm.text
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [
            str(st),
            "--config-file",
            str(REPO / "schemathesis.toml"),
            "run",
            f"{runtime.http_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "130",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--seed",
            "20261127",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=840,
        cwd=tmp_path,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert cases is not None, output[-3000:]
    generated, passed = int(cases.group(1)), int(cases.group(2))
    assert generated >= MIN_CASES and passed == generated, output[-3000:]
