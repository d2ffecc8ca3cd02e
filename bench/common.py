"""What every benchmark shares: the results folder, the local model server in its own process, process memory."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import requests

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench-results"
SERVER_DATA = RESULTS / "server-data"  # shared with the server: each one-time model conversion happens once


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def rss_mb() -> float:
    """This process's resident memory now (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, threads: int, models: str = "all") -> tuple[subprocess.Popen[str], str]:
    """`python -m local models` as under `make up`, on a free port; returns once every model is ready."""
    port = free_port()
    env = {
        **os.environ,
        "LOCAL_MODEL_PORT": str(port),
        "LOCAL_DATA_DIR": str(data_dir),
        "LOCAL_MODEL_THREADS": str(threads),
        "LOCAL_MODELS": models,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "local", "models"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{url}/health", timeout=2).json()
                if health["status"] == "ready":
                    return process, url
                if health["status"] == "failed":
                    raise RuntimeError(f"a model failed to load: {health['models']}")
            except requests.ConnectionError:
                pass
            if process.poll() is not None:
                raise RuntimeError("model server exited during start")
            time.sleep(0.5)
        raise RuntimeError("model server not ready within 600 s")
    except BaseException:
        stop_server(process)
        raise


def stop_server(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def sagemaker_runtime(url: str) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the local server accepts any credentials
    )
