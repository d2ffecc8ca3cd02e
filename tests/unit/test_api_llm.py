"""The OpenAI-compatible routes through the api handler: the tenant from the credentials, the gateway (here a fake
function speaking its contract) reached with a ChatCall / EmbedCall, OpenAI's shapes back with the x-gateway-*
headers, and problem+json naming the field for every bad request."""

from __future__ import annotations

import base64
import copy
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from agentplatform.bootstrap import Container
from agentplatform.errors import BudgetExceeded, FieldError, ValidationFailed
from agentplatform.inference import AssistantMessage, FunctionCall, ToolCall, Usage
from agentplatform.llm import ChatAnswer, ChatCall, EmbedAnswer, EmbedCall, GatewayInfo, UsageLine, UsageReport
from agentplatform.observability import CORRELATION_KEY
from functions.api.handler import handler, openapi_document
from tests.conftest import sample_event
from tests.fakes import MemoryFunction
from tests.fixtures.tools import WEATHER

TARGETS = {"small-local": 3, "big-remote": 5}  # target -> its embedding size


def info(target: str) -> GatewayInfo:
    return GatewayInfo(
        target=target,
        provider="scripted",
        cache="miss",
        attempts=2,
        overhead_ms=0.4567,
        latency_ms=12.0,
        cost_usd=0.0001,
        policy_version=3,
    )


def gateway(payload: dict[str, Any]) -> dict[str, Any]:
    """The gateway function's contract, answered from the call itself; errors as Lambda Invoke re-raises them
    (by class and message: field errors do not cross)."""
    payload = {k: v for k, v in payload.items() if k != CORRELATION_KEY}
    if payload.get("op") == "usage":
        line = UsageLine(task="chat", target="small-local", calls=2, prompt_tokens=30, completion_tokens=10, cost_usd=0)
        return UsageReport(
            tenant=payload["tenant"],
            period="2026-12",
            resets_at="2027-01-01T00:00:00Z",
            lines=[line],
            tokens_used=40,
            tokens_limit=1000,
            tokens_left=960,
            cost_used_usd=0,
            cost_limit_usd=5,
            cost_left_usd=5,
            records=2,
        ).model_dump(mode="json")
    if payload.get("tenant") == "broke":
        raise BudgetExceeded("tenant 'broke' has spent its model budget until 2027-01-01", retry_after_s=3600)
    if "texts" in payload:
        embed = EmbedCall.model_validate(payload)
        target = embed.model or "small-local"
        if target not in TARGETS:  # with its field errors, as the gateway's handler sends them across
            raise ValidationFailed(f"unknown model {target!r}", errors=[FieldError(("model",), "unknown")])
        vectors = [[float(len(t)), 0.5, -1.0, 2.0, 0.0][: TARGETS[target]] for t in embed.texts]
        tokens = sum(len(t.split()) for t in embed.texts)
        usage = Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)
        return EmbedAnswer(vectors=vectors, usage=usage, gateway=info(target)).model_dump(mode="json")
    call = ChatCall.model_validate(payload)
    target = call.model or ("big-remote" if call.task == "tool_use" else "small-local")
    if target not in TARGETS:
        raise ValidationFailed(f"unknown model {target!r}")
    if call.tools and call.tool_choice == "required":
        arguments = FunctionCall(name=call.tools[0].function.name, arguments='{"city": "Paris"}')
        message = AssistantMessage(tool_calls=[ToolCall(id="call_1", function=arguments)])
        finish = "tool_calls"
    else:
        message = AssistantMessage(content=f"[{call.tenant}] {call.messages[-1].content}")
        finish = "stop"
    usage = Usage(prompt_tokens=11, completion_tokens=4, total_tokens=15)
    return ChatAnswer(message=message, finish_reason=finish, usage=usage, gateway=info(target)).model_dump(mode="json")


@pytest.fixture
def llm_fakes(fakes: Container) -> Iterator[Container]:
    fakes.__dict__["llm_gateway_function"] = MemoryFunction("llm_gateway", gateway)
    yield fakes


def event(path: str, body: Any = None, *, tenant: str = "acme", scopes: str = "llm usage", method: str = "POST"):
    e = copy.deepcopy(sample_event("api/chat_completions.json"))
    e["rawPath"] = e["requestContext"]["http"]["path"] = path
    e["requestContext"]["http"]["method"] = method
    e["routeKey"] = e["requestContext"]["routeKey"] = f"{method} {path}"
    e["body"] = None if body is None else body if isinstance(body, str) else json.dumps(body)
    e["requestContext"]["authorizer"]["lambda"].update(tenant=tenant, scopes=scopes)
    return e


def call(e: dict[str, Any], lambda_context: Any) -> tuple[int, dict[str, str], Any]:
    response = handler(e, lambda_context)
    return response["statusCode"], response["headers"], json.loads(response["body"])


def chat(body: dict[str, Any], lambda_context: Any, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    return call(event("/v1/chat/completions", body, **kwargs), lambda_context)


def hello(**extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "hello"}], **extra}


def test_sample_event_answers_a_chat_completion(llm_fakes: Container, lambda_context: Any) -> None:
    status, headers, body = call(sample_event("api/chat_completions.json"), lambda_context)
    assert status == 200, body
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "small-local" and isinstance(body["created"], int)
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "[acme] What is a boundary layer?"},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ]
    assert body["usage"] == {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
    assert headers["x-gateway-target"] == "small-local" and headers["x-gateway-cache"] == "miss"
    assert headers["x-gateway-attempts"] == "2" and float(headers["x-gateway-overhead-ms"]) == pytest.approx(0.457)
    sent = llm_fakes.llm_gateway_function.payloads[0]
    assert sent["tenant"] == "acme" and sent["task"] == "chat" and "model" not in sent
    assert sent["max_tokens"] == 64 and sent["messages"][0]["role"] == "system"
    assert 0 < sent["deadline_ms"] < 10_000  # the API's own remaining time, less a margin


def test_the_tenant_comes_from_the_credentials_never_the_body(llm_fakes: Container, lambda_context: Any) -> None:
    status, _, body = chat(hello(), lambda_context, tenant="globex")
    assert status == 200 and body["choices"][0]["message"]["content"] == "[globex] hello"
    status, _, problem = chat(hello(tenant="acme"), lambda_context, tenant="globex")
    assert status == 422 and "body.tenant" in [e["field"] for e in problem["errors"]]


def test_tools_route_to_tool_use_and_answer_tool_calls(llm_fakes: Container, lambda_context: Any) -> None:
    status, headers, body = chat(hello(tools=[WEATHER], tool_choice="required"), lambda_context)
    assert status == 200, body
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"].get("content") is None
    (tool_call,) = choice["message"]["tool_calls"]
    assert tool_call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert body["model"] == headers["x-gateway-target"] == "big-remote"
    sent = llm_fakes.llm_gateway_function.payloads[0]
    assert (
        sent["task"] == "tool_use" and sent["tools"][0]["function"]["parameters"] == WEATHER["function"]["parameters"]
    )


def test_a_pinned_model_goes_to_the_gateway(llm_fakes: Container, lambda_context: Any) -> None:
    status, headers, _ = chat(hello(model="big-remote", max_completion_tokens=9, stop="END"), lambda_context)
    assert status == 200 and headers["x-gateway-target"] == "big-remote"
    sent = llm_fakes.llm_gateway_function.payloads[0]
    assert (sent["model"], sent["max_tokens"], sent["stop"]) == ("big-remote", 9, ["END"])


def test_unknown_model_is_a_problem_naming_model(llm_fakes: Container, lambda_context: Any) -> None:
    status, headers, problem = chat(hello(model="gpt-17"), lambda_context)
    assert status == 422 and headers["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in problem["errors"]] == ["body.model"]
    status, _, problem = call(event("/v1/embeddings", {"input": "x", "model": "gpt-17"}), lambda_context)
    assert status == 422 and [e["field"] for e in problem["errors"]] == ["body.model"]


def test_stream_and_several_choices_are_a_clear_400(llm_fakes: Container, lambda_context: Any) -> None:
    for extra, field in (({"stream": True}, "body.stream"), ({"n": 3}, "body.n")):
        status, headers, problem = chat(hello(**extra), lambda_context)
        assert status == 400 and headers["Content-Type"] == "application/problem+json"
        assert problem["code"] == "unsupported_parameter" and problem["errors"][0]["field"] == field
    assert llm_fakes.llm_gateway_function.payloads == []  # refused before any model work


NOT_A_SCHEMA = {"type": "function", "function": {"name": "f", "parameters": {"type": "objekt"}}}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": []}, "body.messages"),
        ({}, "body.messages"),
        (hello(max_tokens=10**9), "body.max_tokens"),
        (hello(max_completion_tokens=0), "body.max_completion_tokens"),
        (hello(tools=[NOT_A_SCHEMA]), "body.tools.0.function.parameters"),
        (
            hello(tools=[{"type": "function", "function": {"name": "f", "parameters": {"required": "x"}}}]),
            "body.tools.0.function.parameters",
        ),
        (hello(tools=[{"type": "function", "function": {"name": "bad name!"}}]), "body.tools.0.function.name"),
        (hello(temperature=3), "body.temperature"),
        (hello(tool_choice="required"), "body"),
        # The role picks the message's shape: an unknown one is the message's fault.
        ({"messages": [{"role": "robot", "content": "x"}]}, "body.messages.0"),
        ("not json", "body"),
    ],
)
def test_bad_chat_input_is_a_problem_naming_the_field(
    llm_fakes: Container, lambda_context: Any, body: Any, field: str
) -> None:
    status, headers, problem = chat(body, lambda_context)
    assert status == 422, problem
    assert headers["Content-Type"] == "application/problem+json"
    assert any(e["field"] == field or e["field"].startswith(field + ".") for e in problem["errors"]), problem


def test_embeddings_in_openai_shape(llm_fakes: Container, lambda_context: Any) -> None:
    status, headers, body = call(
        event("/v1/embeddings", {"input": ["one two", "three"], "model": "auto"}), lambda_context
    )
    assert status == 200, body
    assert body["object"] == "list" and body["model"] == "small-local"
    assert body["data"] == [
        {"object": "embedding", "index": 0, "embedding": [7.0, 0.5, -1.0]},
        {"object": "embedding", "index": 1, "embedding": [5.0, 0.5, -1.0]},
    ]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert headers["x-gateway-target"] == "small-local"
    assert llm_fakes.llm_gateway_function.payloads[0]["texts"] == ["one two", "three"]


def test_embeddings_as_base64_float32(llm_fakes: Container, lambda_context: Any) -> None:
    status, _, body = call(event("/v1/embeddings", {"input": "abc", "encoding_format": "base64"}), lambda_context)
    assert status == 200
    assert list(struct.unpack("<3f", base64.b64decode(body["data"][0]["embedding"]))) == [3.0, 0.5, -1.0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": []}, "body.input"),
        ({"input": ""}, "body.input"),
        ({"input": ["ok", ""]}, "body.input"),
        ({"input": ["x"] * 300}, "body.input"),
        ({"input": "x", "encoding_format": "int8"}, "body.encoding_format"),
        ({"input": "x", "dimensions": 3, "model": "big-remote"}, "body.dimensions"),
        ({"input": "x", "tenant": "globex"}, "body.tenant"),
    ],
)
def test_bad_embeddings_input_is_a_problem_naming_the_field(
    llm_fakes: Container, lambda_context: Any, body: Any, field: str
) -> None:
    status, _, problem = call(event("/v1/embeddings", body), lambda_context)
    assert status == 422, problem
    assert any(e["field"].startswith(field) for e in problem["errors"]), problem


def test_over_budget_is_429_with_retry_after(llm_fakes: Container, lambda_context: Any) -> None:
    status, headers, problem = chat(hello(), lambda_context, tenant="broke")
    assert status == 429 and headers["Retry-After"] == "3600"
    assert problem["code"] == "budget_exceeded" and "2027-01-01" in problem["detail"]


def test_scopes(llm_fakes: Container, lambda_context: Any) -> None:
    status, _, problem = chat(hello(), lambda_context, scopes="search usage")
    assert status == 403 and problem["code"] == "forbidden"
    status, _, problem = call(event("/v1/usage", method="GET", scopes="llm"), lambda_context)
    assert status == 403
    e = event("/v1/chat/completions", hello())
    del e["requestContext"]["authorizer"]
    assert call(e, lambda_context)[0] == 401


def test_usage_is_the_gateways_report_for_the_callers_tenant(llm_fakes: Container, lambda_context: Any) -> None:
    status, _, report = call(event("/v1/usage", method="GET", tenant="globex", scopes="usage"), lambda_context)
    assert status == 200, report
    assert report["tenant"] == "globex" and report["tokens_left"] == 960 and report["records"] == 2
    assert llm_fakes.llm_gateway_function.payloads[0]["op"] == "usage"


def test_openapi_documents_the_routes() -> None:
    paths = json.loads(openapi_document())["paths"]
    assert {"/v1/chat/completions", "/v1/embeddings", "/v1/usage"} <= set(paths)
    assert "requestBody" in paths["/v1/chat/completions"]["post"]


# What the fuzz test (schemathesis over /openapi.json) holds these routes to, one fix each: the document states
# what the routes accept and every error they answer, in the content type they answer it.


def _document() -> dict[str, Any]:
    return json.loads(openapi_document())


def _request_schema(path: str) -> Any:
    """The operation's request body schema as a jsonschema validator over the whole document's components."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    document = _document()
    registry = Registry().with_resource("urn:openapi", Resource(contents=document, specification=DRAFT202012))
    ref = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return Draft202012Validator({"$ref": "urn:openapi" + ref}, registry=registry)


ASSISTANT_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
}
TOOL_REPLY = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def _with_messages(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "weather?"}, *messages]}


# Schema-valid bodies the route must accept, and schema-violating ones it must refuse: the two must agree.
AGREEMENT = [
    (hello(), True),
    (_with_messages(ASSISTANT_CALL, TOOL_REPLY), True),  # the official client echoes content: null
    (_with_messages({"role": "assistant", "content": "x", "tool_calls": None}), True),
    (_with_messages({"role": "assistant"}), False),  # neither content nor tool calls
    (_with_messages({"role": "assistant", "content": None, "tool_calls": None}), False),
    (_with_messages({**ASSISTANT_CALL, "tool_calls": []}), False),
    (_with_messages({"role": "tool", "content": "x"}), False),  # no tool_call_id
    (_with_messages({"role": "tool", "content": "x", "tool_call_id": ""}), False),
    (_with_messages({"role": "user", "content": None}), False),
    (_with_messages({"role": "user", "content": "x", "tool_call_id": "c"}), False),
    (hello(stop="END"), True),
    (hello(stop=["a", "b", "c", "d"]), True),
    (hello(stop=""), False),
    (hello(stop=[]), False),
    (hello(stop=["a", "b", "c", "d", "e"]), False),
    (hello(stop=["ok", ""]), False),
    (hello(tool_choice={"type": "function", "function": {}}), False),
    (hello(response_format={"type": "json_object"}), True),
    (hello(response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}), True),
    (hello(response_format={"type": "json_schema"}), False),
    (hello(response_format={"type": "json_schema", "json_schema": {"name": "a"}}), False),
    (hello(response_format={"type": "text", "json_schema": {}}), False),
    (hello(n=1, stream=False), True),
]


@pytest.mark.parametrize(("body", "valid"), AGREEMENT)
def test_the_chat_schema_says_exactly_what_the_route_accepts(
    llm_fakes: Container, lambda_context: Any, body: dict[str, Any], valid: bool
) -> None:
    schema_says = _request_schema("/v1/chat/completions").is_valid(body)
    status, _, answer = chat(body, lambda_context)
    assert schema_says is valid
    # The fake gateway answers every accepted call (tool_use goes to a target of its own): 200 means accepted.
    assert (status == 200) is valid, answer


def test_stream_and_n_are_documented_as_what_is_served_and_still_refused_with_a_400(lambda_context: Any) -> None:
    validator = _request_schema("/v1/chat/completions")
    assert not validator.is_valid(hello(stream=True)) and not validator.is_valid(hello(n=2))


def test_tool_call_arguments_must_be_a_json_objects_text(llm_fakes: Container, lambda_context: Any) -> None:
    for arguments in ("not json", "[1, 2]"):
        bad = {
            **ASSISTANT_CALL,
            "tool_calls": [{**ASSISTANT_CALL["tool_calls"][0], "function": {"name": "f", "arguments": arguments}}],
        }
        status, _, problem = chat(_with_messages(bad, TOOL_REPLY), lambda_context)
        assert status == 422
        assert [e["field"] for e in problem["errors"]] == ["body.messages.1.assistant.tool_calls.0.function.arguments"]


def test_a_history_with_tool_calls_reaches_the_gateway_as_its_messages(
    llm_fakes: Container, lambda_context: Any
) -> None:
    status, _, body = chat(_with_messages(ASSISTANT_CALL, TOOL_REPLY), lambda_context)
    assert status == 200, body
    sent = llm_fakes.llm_gateway_function.payloads[0]["messages"]
    assert sent[1] == {"role": "assistant", "tool_calls": ASSISTANT_CALL["tool_calls"]}
    assert sent[2] == TOOL_REPLY


def test_a_json_schema_response_format_is_checked_and_forwarded(llm_fakes: Container, lambda_context: Any) -> None:
    spec = {"name": "answer", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}, "strict": True}
    status, _, _ = chat(hello(response_format={"type": "json_schema", "json_schema": spec}), lambda_context)
    assert status == 200
    assert llm_fakes.llm_gateway_function.payloads[0]["response_format"] == {"type": "json_schema", "json_schema": spec}
    bad = {"name": "answer", "schema": {"type": "objekt"}}
    status, _, problem = chat(hello(response_format={"type": "json_schema", "json_schema": bad}), lambda_context)
    assert status == 422
    assert problem["errors"][0]["field"] == "body.response_format.json_schema.json_schema.schema"


def test_every_error_these_routes_answer_is_documented_in_its_content_type() -> None:
    paths = _document()["paths"]
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        responses = paths[path]["post"]["responses"]
        for status in ("400", "401", "403", "413", "415", "422", "429", "503"):
            if status == "400" and path == "/v1/embeddings":
                continue
            assert "application/problem+json" in responses[status]["content"], (path, status)
        assert "Retry-After" in responses["503"]["headers"]
        assert set(responses["200"]["headers"]) == {
            "x-gateway-target",
            "x-gateway-cache",
            "x-gateway-attempts",
            "x-gateway-overhead-ms",
        }


def test_the_gateway_headers_match_their_documented_schemas(llm_fakes: Container, lambda_context: Any) -> None:
    from jsonschema import validate

    documented = _document()["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["headers"]
    status, headers, _ = chat(hello(), lambda_context)
    assert status == 200
    for name, spec in documented.items():
        validate(headers[name], spec["schema"])


def test_an_oversized_body_is_a_documented_413_problem(llm_fakes: Container, lambda_context: Any) -> None:
    # What the fuzzer sent: ~1.28 MB of inputs, over the API's 1 MiB body limit.
    body = json.dumps({"input": ["0" * 5000] * 256})
    status, headers, problem = call(event("/v1/embeddings", body), lambda_context)
    assert status == 413 and headers["Content-Type"] == "application/problem+json"
    assert problem["code"] == "payload_too_large"
    assert llm_fakes.llm_gateway_function.payloads == []
    documented = _document()["paths"]["/v1/embeddings"]["post"]["responses"]["413"]["content"]
    assert "application/problem+json" in documented
