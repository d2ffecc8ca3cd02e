"""`python -m local up` (what `make up` runs), as a user runs it: starts, serves, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_up_serves_health_over_http_and_https_and_stops_on_ctrl_c(tmp_path):
    http, https, aws = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "LOCAL_HTTP_PORT": str(http),
        "LOCAL_HTTPS_PORT": str(https),
        "LOCAL_AWS_PORT": str(aws),
        "LOCAL_DATA_DIR": str(tmp_path / "data"),
        "LOCAL_DROP_DIR": str(tmp_path / "dropfolder"),
        "LOCAL_MODEL_PORT": str(free_port()),
        "LOCAL_MODELS": "none",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "local", "up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if "Ready" in line or process.poll() is not None:
                break
        text = "".join(output)
        assert "Ready" in text, text
        assert f"http://127.0.0.1:{http}" in text and f"https://127.0.0.1:{https}" in text

        response = requests.get(f"http://127.0.0.1:{http}/health", timeout=30)
        assert response.status_code == 200 and response.json()["status"] == "ok"
        secure = requests.get(f"https://127.0.0.1:{https}/health", timeout=30, verify=False)
        assert secure.status_code == 200
        assert (tmp_path / "data" / "tls" / "cert.pem").exists()

        # A user's token from the CLI opens the search route (BM25 needs no model; nothing is indexed yet).
        token = subprocess.run(
            [sys.executable, "-m", "local", "token", "--tenant", "acme", "--user", "alice"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        search = f"http://127.0.0.1:{http}/v1/search"
        body = {"query": "boundary layer", "mode": "bm25"}
        assert requests.post(search, json=body, timeout=30).status_code == 401
        found = requests.post(search, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert found.status_code == 200, found.text
        assert found.json()["hits"] == []
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0, rest
    assert "Stopped." in rest
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{http}/health", timeout=2)
