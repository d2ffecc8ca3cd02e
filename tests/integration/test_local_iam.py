"""The local runtime as strict as Lambda on IAM: each function sees only its own grants' variables and signs with
its own principal, whose policy the emulator enforces (local/iam.py). A call outside the grants is AccessDenied."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from agentplatform.bootstrap import container
from agentplatform.topology import PLATFORM, Access, Function, Grant
from local.runtime import RuntimeSettings
from tests.integration.conftest import bearer, start_runtime

pytestmark = pytest.mark.integration

PROBE = Function(
    name="iam_probe",
    service="tests",
    handler="tests.integration.test_local_iam.probe",
    purpose="Calls one AWS API as told, with its own grants.",
    uses=[
        Grant(ref="table:documents", access=Access.READ),
        Grant(ref="queue:alerts", access=Access.SEND),
        Grant(ref="bus:platform", access=Access.PUBLISH),
        Grant(ref="function:retrieval", access=Access.DESCRIBE),
        Grant(ref="function:iam_echo", access=Access.INVOKE),
        Grant(ref="statemachine:canary", access=Access.DESCRIBE),
        Grant(ref="bucket:drop", access=Access.READ),
    ],
)
ECHO = Function(name="iam_echo", service="tests", handler="tests.integration.test_local_iam.echo", purpose="Echoes.")
# The API with one grant narrowed: api_keys READ instead of READ_WRITE (its variable stays; writing is refused).
_API = PLATFORM.function("api")
API_WITHOUT_KEY_WRITES = _API.model_copy(
    update={
        "uses": [Grant(ref="table:api_keys", access=Access.READ) if g.ref == "table:api_keys" else g for g in _API.uses]
    }
)
TOPOLOGY = PLATFORM.model_copy(
    update={"functions": [API_WITHOUT_KEY_WRITES if f.name == "api" else f for f in PLATFORM.functions] + [PROBE, ECHO]}
)


def probe(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One call with this function's own client: {"service", "call", "params"} -> {"ok"} or {"error": code}."""
    c = container()
    if event.get("settings"):
        return {field: getattr(c.settings, field) for field in event["settings"]}
    try:
        getattr(c.client(event["service"]), event["call"])(**event["params"])
    except ClientError as exc:
        return {"error": exc.response["Error"]["Code"]}
    return {"ok": True}


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return event


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    rt = start_runtime(tmp_path_factory, TOPOLOGY)
    yield rt
    rt.stop()


def call(rt, service: str, operation: str, **params: Any) -> dict[str, Any]:
    failed, result = rt.invoke("iam_probe", {"service": service, "call": operation, "params": params})
    assert not failed, result
    return result


def test_a_function_sees_only_its_own_grants_variables(runtime):
    assert os.environ["API_KEYS_TABLE_NAME"]  # the process holds every function's variables
    failed, seen = runtime.invoke(
        "iam_probe", {"settings": ["documents_table_name", "api_keys_table_name", "local_access_key_id"]}
    )
    assert not failed, seen
    assert seen["documents_table_name"] == runtime.provisioned.value("table:documents", "name")
    assert seen["api_keys_table_name"] is None
    assert seen["local_access_key_id"] == runtime.credentials["iam_probe"].access_key_id != "local"


def test_each_service_allows_the_grant_and_denies_what_is_outside_it(runtime):
    p = runtime.provisioned
    documents, api_keys = p.value("table:documents", "name"), p.value("table:api_keys", "name")
    key = {"pk": {"S": "x"}, "sk": {"S": "y"}}
    denied = {"error": "AccessDeniedException"}
    assert call(runtime, "dynamodb", "get_item", TableName=documents, Key=key) == {"ok": True}
    assert call(runtime, "dynamodb", "put_item", TableName=documents, Item=key) == denied
    assert call(runtime, "dynamodb", "get_item", TableName=api_keys, Key=key) == denied
    put = {"Put": {"TableName": documents, "Item": key}}
    assert call(runtime, "dynamodb", "transact_write_items", TransactItems=[put]) == denied
    assert call(runtime, "dynamodb", "batch_get_item", RequestItems={api_keys: {"Keys": [key]}}) == denied

    assert call(runtime, "sqs", "send_message", QueueUrl=p.value("queue:alerts", "url"), MessageBody="{}") == {
        "ok": True
    }
    assert call(runtime, "sqs", "send_message", QueueUrl=p.value("queue:ingest", "url"), MessageBody="{}") == {
        "error": "AccessDenied"
    }

    event = {"Source": "test", "DetailType": "probe", "Detail": "{}"}
    bus = p.value("bus:platform", "name")
    assert call(runtime, "events", "put_events", Entries=[{**event, "EventBusName": bus}]) == {"ok": True}
    assert call(runtime, "events", "put_events", Entries=[event])["error"] == "AccessDeniedException"

    retrieval, api = p.value("function:retrieval", "name"), p.value("function:api", "name")
    assert call(runtime, "lambda", "get_function_configuration", FunctionName=retrieval) == {"ok": True}
    assert call(runtime, "lambda", "get_function_configuration", FunctionName=api)["error"] == "AccessDeniedException"
    assert call(runtime, "lambda", "invoke", FunctionName=retrieval, Payload=b"{}")["error"] == "AccessDeniedException"
    echo_arn = p.value("function:iam_echo", "arn")
    assert call(runtime, "lambda", "invoke", FunctionName=echo_arn, Payload=b"{}") == {"ok": True}

    canary = p.value("statemachine:canary", "arn")
    assert call(runtime, "stepfunctions", "describe_state_machine", stateMachineArn=canary) == {"ok": True}
    assert call(runtime, "stepfunctions", "start_execution", stateMachineArn=canary)["error"] == "AccessDeniedException"

    drop = p.value("bucket:drop", "name")
    assert call(runtime, "s3", "get_object", Bucket=drop, Key="acme/none.md") == {"error": "NoSuchKey"}
    assert call(runtime, "s3", "head_bucket", Bucket=drop) == {"ok": True}
    assert call(runtime, "s3", "head_bucket", Bucket=p.value("bucket:artifacts", "name")) == {"error": "403"}
    assert call(runtime, "s3", "put_object", Bucket=drop, Key="acme/x.md", Body=b"x") == {"error": "AccessDenied"}


def test_a_real_function_with_a_narrowed_grant_is_refused_and_says_so(runtime):
    url = f"{runtime.http_url}/v1/admin/api-keys"
    admin = bearer(runtime, "acme", scopes=("admin",))
    listed = requests.get(url, headers=admin, timeout=30)
    assert listed.status_code == 200, listed.text  # reading is still granted
    created = requests.post(url, json={"name": "ci", "scopes": ["search"]}, headers=admin, timeout=30)
    assert created.status_code == 500, created.text
    problem = created.json()
    assert problem["code"] == "dependency_rejected" and "AccessDenied" in json.dumps(problem), problem


def test_the_runtime_and_its_tools_sign_as_the_admin_principal(runtime):
    assert RuntimeSettings.on_free_ports().iam == "enforce"  # the default
    tables = runtime.client("dynamodb").list_tables()["TableNames"]
    assert runtime.provisioned.value("table:api_keys", "name") in tables
