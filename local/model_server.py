"""The local model server: SageMaker runtime's InvokeEndpoint REST call on 127.0.0.1, over the same inference
code the SageMaker containers run, so `boto3.client("sagemaker-runtime", endpoint_url=...)` works unchanged.

`POST /endpoints/{EndpointName}/invocations` -> the model's answer, or, as SageMaker does it, a 424 ModelError
carrying the container's own status and message, or a 400 ValidationError for an unknown endpoint.
`GET /health` reports each model's readiness, load time and the process's peak memory.

The same port also answers OpenAI's `POST /v1/chat/completions` and `POST /v1/embeddings` over the same hosted
models: `model` names the hosted endpoint; omitted or the task's name (`generation`, `embedding`), the only
endpoint of that task serves. So any OpenAI-compatible client, the gateway's OpenAICompatibleProvider included,
talks to a real model locally. Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import resource
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agentplatform.inference import EMBEDDING_DIMENSION, EMBEDDING_MAX_BATCH, estimate_tokens
from endpoints.protocol_toolkit import Service

log = logging.getLogger("local.models")

_INVOCATIONS = re.compile(r"^/endpoints/([^/]+)/invocations$")
LOAD_WAIT_S = 300  # a request that arrives while its model loads waits for it, up to this long
# OpenAI's routes, and the task of the hosted model each serves.
_OPENAI_ROUTES = {"/v1/chat/completions": "generation", "/v1/embeddings": "embedding"}
OPENAI_MAX_EMBED_INPUTS = 2048  # OpenAI's own limit per request


@dataclass
class HostedModel:
    name: str
    load: Callable[[], Service]
    task: str = ""  # embedding | generation: which OpenAI route it serves
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
        self._connections: set[socket.socket] = set()  # open keep-alive connections: stop() closes them too
        self._connections_lock = threading.Lock()
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
        """Stop answering: no new connections, and the clients' pooled keep-alive ones closed (a stopped server
        that still served them would hide an outage from the health checks)."""
        self._server.shutdown()
        self._server.server_close()
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._connections.clear()

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

    def openai(self, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """OpenAI's chat completions or embeddings over a hosted model; errors in OpenAI's shape."""
        task = _OPENAI_ROUTES[path]
        try:
            request = _json_object(body)
            model = self._model_for(task, request.get("model"))
            payload = _openai_chat(model, request) if task == "generation" else _openai_embeddings(model, request)
        except OpenAIError as exc:
            return exc.response()
        return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()

    def _model_for(self, task: str, name: Any) -> HostedModel:
        hosted = sorted(m.name for m in self.models.values() if m.task == task)
        if name is not None and not isinstance(name, str):
            raise OpenAIError(400, "model must be a string", param="model")
        if name == task and len(hosted) == 1:  # the task's own name ("generation"): whatever serves it here
            model = self.models[hosted[0]]
        elif name:
            model = self.models.get(name)
            if model is None or model.task != task:
                raise OpenAIError(
                    404,
                    f"The model `{name}` does not exist here; this route serves {hosted or 'no model'}",
                    param="model",
                    code="model_not_found",
                )
        elif len(hosted) == 1:
            model = self.models[hosted[0]]
        else:
            raise OpenAIError(400, f"model is required: one of {hosted}", param="model")
        if not model.ready.wait(LOAD_WAIT_S) or model.service is None:
            detail = model.error or "still loading"
            raise OpenAIError(503, f"model {model.name} is not ready: {detail}", code="not_ready")
        return model

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server._connections_lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._connections_lock:
                    server._connections.discard(self.connection)
                super().finish()

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
                path = self.path.split("?")[0]
                if path in _OPENAI_ROUTES:
                    self._send(*server.openai(path, body))
                    return
                match = _INVOCATIONS.match(path)
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


class OpenAIError(Exception):
    """An OpenAI-shaped error answer: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> tuple[int, dict[str, str], bytes]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return self.status, {"Content-Type": "application/json"}, json.dumps({"error": error}).encode()


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise OpenAIError(400, f"the body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise OpenAIError(400, "the body must be a JSON object")
    return payload


def _service_call(model: HostedModel, request: dict[str, Any]) -> Any:
    """The hosted model's own /invocations contract; its {"error"} answers become OpenAI's errors."""
    assert model.service is not None  # _model_for waited for it
    try:
        status, payload = model.service.invoke(json.dumps(request).encode(), "application/json")
    except Exception as exc:  # a bug in a model's code answers 500; the server lives on
        log.exception("endpoint %s failed", model.name)
        raise OpenAIError(500, f"{type(exc).__name__}: {exc}") from exc
    if status == 200:
        return payload
    message = str(payload.get("error") if isinstance(payload, dict) else payload)
    # The endpoints name the field first ("messages.0.role: ..."): OpenAI's `param`.
    head = message.split(": ", 1)[0]
    param = head if ": " in message and " " not in head and head != "body" else None
    raise OpenAIError(status, message, param=param)


def _openai_chat(model: HostedModel, request: dict[str, Any]) -> dict[str, Any]:
    if request.get("stream"):
        raise OpenAIError(400, "stream is not supported by this server; send stream: false", param="stream")
    if request.get("n") not in (None, 1):
        raise OpenAIError(400, "n must be 1: one choice per request", param="n")
    if "max_completion_tokens" in request and "max_tokens" not in request:  # OpenAI's newer name for it
        request["max_tokens"] = request.pop("max_completion_tokens")
    payload = _service_call(model, request)
    payload["model"] = model.name
    return payload


def _openai_embeddings(model: HostedModel, request: dict[str, Any]) -> dict[str, Any]:
    raw = request.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise OpenAIError(
            400,
            "input must be a non-empty string or array of non-empty strings (token arrays are not supported)",
            param="input",
        )
    if len(texts) > OPENAI_MAX_EMBED_INPUTS:
        raise OpenAIError(400, f"input takes at most {OPENAI_MAX_EMBED_INPUTS} strings", param="input")
    encoding = request.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise OpenAIError(400, "encoding_format must be float or base64", param="encoding_format")
    if request.get("dimensions") not in (None, EMBEDDING_DIMENSION):
        raise OpenAIError(400, f"this model answers {EMBEDDING_DIMENSION} dimensions only", param="dimensions")
    vectors: list[list[float]] = []
    for start in range(0, len(texts), EMBEDDING_MAX_BATCH):
        # truncate: the head of a long input is embedded (the model's window is 256 word pieces), as the
        # platform's own client does.
        batch = {"inputs": texts[start : start + EMBEDDING_MAX_BATCH], "truncate": True, "normalize": True}
        vectors.extend(_service_call(model, batch))
    data = [
        {"object": "embedding", "index": i, "embedding": _encoded(vector, encoding)} for i, vector in enumerate(vectors)
    ]
    # TEI's contract reports no usage: estimated, as the platform meters embedding calls everywhere.
    tokens = sum(estimate_tokens(t) for t in texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model.name, "usage": usage}


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    # base64: little-endian float32, what the official client asks for by default and decodes.
    if encoding == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


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

    return HostedModel(name=name, load=load, task=task)
