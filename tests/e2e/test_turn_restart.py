"""`python -m local up` killed (SIGKILL) in the middle of a turn and started again on the same data folder: the
conversation is still there, and its turn ended failed with the reason, its question kept (issue 13, check 4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from agentplatform.conversations import INTERRUPTED_FAILURE
from tests.e2e.test_local_up import ROOT, free_port

QUESTION = "How often are the turbine blades inspected?"


def slow_policy(path: Path) -> Path:
    """The repo's policy with every model target slowed by a minute: the turn is still running when it is killed."""
    policy = json.loads((ROOT / "policies" / "llm_gateway.json").read_text())
    policy.pop("$schema", None)
    for target in policy["targets"].values():
        target["fault"] = {"mode": "slow", "slow_ms": 120_000}
    path.write_text(json.dumps(policy))
    return path


class Up:
    """One `python -m local up` on fixed ports and folders."""

    def __init__(self, env: dict[str, str], http: int) -> None:
        self.env, self.url = env, f"http://127.0.0.1:{http}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local", "up"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            output.append(line)
            if "Ready" in line or self.process.poll() is not None:
                break
        assert "Ready" in "".join(output), "".join(output)

    def token(self) -> dict[str, str]:
        minted = subprocess.run(
            [sys.executable, "-m", "local", "token", "--tenant", "acme", "--user", "alice"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return {"Authorization": f"Bearer {minted}"}

    def call(self, method: str, path: str, headers: dict[str, str], body: Any = None) -> requests.Response:
        return requests.request(method, f"{self.url}{path}", json=body, headers=headers, timeout=30)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        rest, _ = self.process.communicate(timeout=60)
        return rest


def saved_turn(data: Path, conversation_id: str) -> dict[str, Any] | None:
    path = data / "tables" / "conversations.jsonl"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        item = json.loads(line)
        if item["pk"]["S"].endswith(f"#{conversation_id}") and item["sk"]["S"].startswith("TURN#"):
            return item
    return None


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_turn_killed_mid_run_is_failed_with_the_reason_after_a_restart(tmp_path):
    data, http = tmp_path / "data", free_port()
    env = {
        **os.environ,
        "LOCAL_HTTP_PORT": str(http),
        "LOCAL_HTTPS_PORT": str(free_port()),
        "LOCAL_AWS_PORT": str(free_port()),
        "LOCAL_MODEL_PORT": str(free_port()),
        "LOCAL_DATA_DIR": str(data),
        "LOCAL_DROP_DIR": str(tmp_path / "dropfolder"),
        "LOCAL_MODELS": "none",
        "LLM_POLICY_PATH": str(slow_policy(tmp_path / "policy.json")),
    }
    first = Up(env, http)
    try:
        auth = first.token()
        created = first.call("POST", "/v1/conversations", auth, {})
        assert created.status_code == 201, created.text
        conversation_id = created.json()["id"]
        path = f"/v1/conversations/{conversation_id}/messages"
        asked = first.call("POST", path, auth, {"content": QUESTION, "wait_s": 0.5})
        assert asked.status_code == 202 and asked.json()["status"] == "running", asked.text
        # Killed once the snapshot (a second at most) holds the running turn with its execution.
        deadline = time.monotonic() + 20
        while (saved := saved_turn(data, conversation_id)) is None or "execution_arn" not in saved:
            assert time.monotonic() < deadline, "the running turn never reached the snapshot"
            time.sleep(0.2)
        assert saved["status"]["S"] == "running"
    finally:
        first.kill()
    assert first.process.returncode == -signal.SIGKILL

    second = Up(env, http)
    try:
        auth = second.token()
        listed = second.call("GET", "/v1/conversations", auth)
        assert listed.status_code == 200, listed.text
        assert conversation_id in json.dumps(listed.json())
        turn = second.call("GET", f"/v1/conversations/{conversation_id}/turns/1", auth)
        assert turn.status_code == 200, turn.text
        body = turn.json()
        assert body["status"] == "failed" and body["failure"] == INTERRUPTED_FAILURE, body
        assert "local runtime stopped" in body["answer"]
        assert body["question"] == QUESTION and body["answer_kind"] == "safe"
    finally:
        rest = second.stop()
    assert second.process.returncode == 0, rest
