"""The local API Gateway: route selection and the payload v2 request/response shapes."""

from __future__ import annotations

import base64

from agentplatform.topology import Route
from local.gateway import RouteTable, build_event, response_parts

ROUTES = [
    Route(method="GET", path="/health", function="api", public=True),
    Route(method="GET", path="/v1/documents/{id}", function="docs"),
    Route(method="ANY", path="/v1/files/{proxy+}", function="files"),
    Route(method="ANY", path="$default", function="fallback"),
]


def test_route_selection_prefers_exact_then_parameters_then_default():
    table = RouteTable(ROUTES)
    assert table.match("GET", "/health")[0].function == "api"
    route, params = table.match("GET", "/v1/documents/abc")
    assert (route.function, params) == ("docs", {"id": "abc"})
    route, params = table.match("PUT", "/v1/files/a/b/c.txt")
    assert (route.function, params) == ("files", {"proxy": "a/b/c.txt"})
    assert table.match("POST", "/health")[0].function == "fallback"
    assert table.match("GET", "/v1/documents/a/b")[0].function == "fallback"


def test_no_default_route_means_no_match():
    route, _ = RouteTable(ROUTES[:1]).match("GET", "/other")
    assert route is None


def test_event_has_the_payload_v2_shape():
    event = build_event(
        "POST",
        "/v1/documents/abc?x=1&x=2&y=",
        [("Content-Type", "application/json"), ("X-Multi", "a"), ("X-Multi", "b"), ("Cookie", "s=1; t=2")],
        b'{"a": 1}',
        "127.0.0.1",
        ROUTES[1],
        {"id": "abc"},
        "localhost",
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "GET /v1/documents/{id}"
    assert event["rawPath"] == "/v1/documents/abc" and event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["headers"]["x-multi"] == "a,b" and "cookie" not in event["headers"]
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["pathParameters"] == {"id": "abc"}
    assert event["body"] == '{"a": 1}' and event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["method"] == "POST"


def test_binary_bodies_are_base64_encoded():
    event = build_event(
        "POST", "/x", [("Content-Type", "application/pdf")], b"%PDF\x00\xff", "::1", ROUTES[3], {}, "localhost"
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"%PDF\x00\xff"


def test_response_rules_of_payload_v2():
    assert response_parts({"ok": True})[:3] == (200, {"content-type": "application/json"}, [])
    status, headers, cookies, body = response_parts(
        {
            "statusCode": 201,
            "headers": {"a": "b"},
            "cookies": ["c=d"],
            "body": base64.b64encode(b"\x00").decode(),
            "isBase64Encoded": True,
        }
    )
    assert (status, headers, cookies, body) == (201, {"a": "b"}, ["c=d"], b"\x00")
