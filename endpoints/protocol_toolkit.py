"""Glue from a service's `invoke` to the SageMaker Hugging Face inference toolkit's handler functions.

The toolkit calls model_fn / input_fn / predict_fn / output_fn and answers 400 with the message of any
exception they raise; the message carries our {"error", "error_type"} body and original status, so the
client sees the same readable error as from the local model server.
"""

from __future__ import annotations

import json
from typing import Any, Protocol


class Service(Protocol):
    def invoke(self, body: bytes, content_type: str | None) -> tuple[int, Any]: ...


class InvocationFailed(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(json.dumps({"status": status, **(payload if isinstance(payload, dict) else {})}))


def input_fn(input_data: bytes | str, content_type: str, context: Any = None) -> tuple[bytes, str]:
    return (input_data.encode() if isinstance(input_data, str) else input_data), content_type


def predict_fn(data: tuple[bytes, str], service: Service, context: Any = None) -> Any:
    status, payload = service.invoke(*data)
    if status != 200:
        raise InvocationFailed(status, payload)
    return payload


def output_fn(prediction: Any, accept: str, context: Any = None) -> str:
    return json.dumps(prediction)
