"""The local model server: SageMaker runtime's InvokeEndpoint REST call on 127.0.0.1, over the same inference
code the SageMaker containers run, so `boto3.client("sagemaker-runtime", endpoint_url=...)` works unchanged.

`POST /endpoints/{EndpointName}/invocations` -> the model's answer, or, as SageMaker does it, a 424 ModelError
carrying the container's own status and message, or a 400 ValidationError for an unknown endpoint.
`GET /health` reports each model's readiness, load time and the process's peak memory.
"""

from __future__ import annotations

import json
import logging
import re
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from endpoints.protocol_toolkit import Service

log = logging.getLogger("local.models")

_INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")
LOAD_WAIT_S = 300  # a request that arrives while its model loads waits for it, up to this long


@dataclass
class HostedModel:
    name: str
    load: Callable[[], Service]
    state: str = "loading"  # loading | ready | failed
    error: str | None = None
    load_seconds: float | None = None
    service: Service | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def load_now(self) -> None:
        started = time.perf_counter()
        log.info("loading model for endpoint %s ...", self.name)
        try:
            self.service = self.load()
            self.state = "ready"
        except Exception as exc:  # a model that cannot load makes its endpoint fail, not the server
            log.exception("endpoint %s failed to load", self.name)
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
        self.load_seconds = round(time.perf_counter() - started, 2)
        if self.state == "ready":
            log.info("endpoint %s ready in %.1f s", self.name, self.load_seconds)
        self.ready.set()


class ModelServer:
    def __init__(self, host: str, port: int, models: list[HostedModel], account: str) -> None:
        self.models = {m.name: m for m in models}
        self._account = account
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self.url = f"http://{host}:{self._server.server_address[1]}"

    def start(self) -> None:
        # One loader thread, models in order: parallel first imports of transformers race each other, and two
        # cores gain nothing from loading two models at once.
        loader = threading.Thread(target=self._load_all, name="model-loader", daemon=True)
        loader.start()
        threading.Thread(target=self._server.serve_forever, name="model-server", daemon=True).start()

    def _load_all(self) -> None:
        for model in self.models.values():
            model.load_now()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_ready(self, timeout_s: float = LOAD_WAIT_S) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(m.ready.wait(max(0.0, deadline - time.monotonic())) for m in self.models.values())

    def health(self) -> tuple[int, dict[str, Any]]:
        models = {
            name: {"state": m.state, "load_seconds": m.load_seconds, **({"error": m.error} if m.error else {})}
            for name, m in self.models.items()
        }
        states = {m.state for m in self.models.values()}
        status = "failed" if "failed" in states else "loading" if "loading" in states else "ready"
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        body = {"status": status, "models": models, "peak_rss_mb": round(peak_mb, 1)}
        return (200 if status == "ready" else 503), body

    def invoke(self, name: str, body: bytes, content_type: str | None) -> tuple[int, dict[str, str], bytes]:
        model = self.models.get(name)
        if model is None:
            return _aws_error(400, "ValidationError", f"Endpoint {name} of account {self._account} not found.")
        if not model.ready.wait(LOAD_WAIT_S) or model.service is None:
            return _aws_error(400, "ValidationError", f"Endpoint {name} is not ready: {model.error or 'still loading'}")
        try:
            status, payload = model.service.invoke(body, content_type)
        except Exception as exc:  # a bug in a model's code answers 500, as a container would; the server lives on
            log.exception("endpoint %s failed", name)
            status, payload = 500, {"error": f"{type(exc).__name__}: {exc}", "error_type": "internal"}
        text = json.dumps(payload)
        if status == 200:
            headers = {"Content-Type": "application/json", "X-Amzn-Invoked-Production-Variant": "AllTraffic"}
            return 200, headers, text.encode()
        # SageMaker wraps a container error in ModelError (HTTP 424) with the container's own status and body.
        message = f'Received client error ({status}) from primary with message "{text}".'
        if status >= 500:
            message = f'Received server error ({status}) from primary with message "{text}".'
        return _aws_error(424, "ModelError", message, OriginalStatusCode=status, OriginalMessage=text)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug(fmt, *args)

            def do_GET(self) -> None:
                if self.path in ("/health", "/ping"):
                    status, body = server.health()
                    self._send(status, {"Content-Type": "application/json"}, json.dumps(body).encode())
                else:
                    self._send(*_aws_error(404, "UnknownOperationException", f"no route for GET {self.path}"))

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                match = _INVOCATIONS.match(self.path.split("?")[0])
                if not match:
                    self._send(*_aws_error(404, "UnknownOperationException", f"no route for POST {self.path}"))
                    return
                started = time.perf_counter()
                status, headers, payload = server.invoke(match.group(1), body, self.headers.get("content-type"))
                log.info("invoke %s -> %s (%.0f ms)", match.group(1), status, (time.perf_counter() - started) * 1000)
                self._send(status, headers, payload)

            def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _aws_error(status: int, code: str, message: str, **members: Any) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code}
    return status, headers, json.dumps({"message": message, **members}).encode()


def hosted_model(name: str, task: str, cache_dir: Path, threads: int) -> HostedModel:
    """The local stand-in for one topology endpoint: the same inference code, the small local model."""

    def load() -> Service:
        if task == "embedding":
            from endpoints.embedding.engine import SentenceEmbedder
            from endpoints.embedding.service import EmbeddingService

            return EmbeddingService(SentenceEmbedder.load(backend="onnx", cache_dir=cache_dir, threads=threads))
        from endpoints.embedding.engine import SentenceEmbedder
        from endpoints.generation.engine import ChatEngine
        from endpoints.generation.router import SimilarityRouter
        from endpoints.generation.service import GenerationService

        router = SimilarityRouter(SentenceEmbedder.load(backend="onnx", cache_dir=cache_dir, threads=threads))
        return GenerationService(ChatEngine.load(cache_dir=cache_dir, threads=threads), router)

    return HostedModel(name=name, load=load)
