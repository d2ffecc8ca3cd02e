"""The SageMaker container entry points call the same service code as the local model server."""

from __future__ import annotations

import json

import pytest

from endpoints import protocol_toolkit
from endpoints.embedding import inference as embedding_entry
from endpoints.generation import inference as generation_entry


class EchoService:
    def invoke(self, body, content_type):
        payload = json.loads(body)
        return (
            (200, {"echo": payload})
            if "ok" in payload
            else (422, {"error": "inputs: missing", "error_type": "validation"})
        )


def test_entry_points_expose_the_toolkit_functions():
    for module in (embedding_entry, generation_entry):
        assert {"model_fn", "input_fn", "predict_fn", "output_fn"} <= set(dir(module))


def test_predict_passes_through_and_errors_keep_status_and_message():
    data = protocol_toolkit.input_fn('{"ok": 1}', "application/json")
    assert json.loads(
        protocol_toolkit.output_fn(protocol_toolkit.predict_fn(data, EchoService()), "application/json")
    ) == {"echo": {"ok": 1}}
    with pytest.raises(protocol_toolkit.InvocationFailed) as caught:
        protocol_toolkit.predict_fn(protocol_toolkit.input_fn(b"{}", "application/json"), EchoService())
    assert json.loads(str(caught.value)) == {"status": 422, "error": "inputs: missing", "error_type": "validation"}
