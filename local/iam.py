"""IAM in the emulator: each function's own principal, its policy made from its grants, and moto's enforcement on.

Every topology function signs its emulator calls as an IAM user of its own (`<physical name>`) whose inline policy
is `infra/cdk/permissions.py`'s RULES applied to the function's grants, with the emulator's ARNs: the statements
its role gets in AWS. moto then authorizes each request against that principal's policies, so a call outside the
function's grants is AccessDenied here as it is on deploy.

Two fixed principals besides: `local` (secret `local`), the runtime's administrator (provisioning, pollers, the
drop-folder mirror, tests' and tools' direct boto3 calls), and `ak` (secret `sk`), the key moto's Step Functions
signs its Lambda and EventBridge tasks with, holding every state machine's grants.

moto (5.2.x) authorizes every request in `ActionAuthenticatorMixin._authenticate_and_authorize_action`, which
`Enforcement` replaces while the runtime runs: it names the resource where moto asks `*` (DynamoDB, Lambda, Step
Functions, EventBridge), the IAM action where it differs from the operation (lambda:InvokeFunction), skips moto's
signature recomputation (wrong for some REST calls) and answers JSON services in JSON. What is and is not
enforced: docs/local-runtime.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlparse

from agentplatform.topology import Grant, Topology, split_ref
from local.resources import Provisioned, physical_name

ADMIN = ("local", "local")  # what `runtime.client`, local/status.py and tests sign with
STATES = ("ak", "sk")  # moto's Step Functions signs with these, fixed in moto.stepfunctions.parser.asl.utils
_ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
# The services the SDK speaks JSON to, and the code of their access-denied error.
_JSON_DENIED = {
    "dynamodb": "AccessDeniedException",
    "lambda": "AccessDeniedException",
    "states": "AccessDeniedException",
    "events": "AccessDeniedException",
    "sqs": "AccessDenied",
}
_IAM_ACTIONS = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeAsync"): "InvokeFunction",
    ("s3", "HeadBucket"): "ListBucket",  # IAM has no s3:HeadBucket
}
_FUNCTION_PATH = re.compile(r"/functions/([^/]+)")
# IAM authorizes each item of a DynamoDB transaction under the item's own action.
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str

    def env(self) -> dict[str, str]:
        return {"LOCAL_AWS_ACCESS_KEY_ID": self.access_key_id, "LOCAL_AWS_SECRET_ACCESS_KEY": self.secret_access_key}


class LocalArns:
    """What permissions.py's rules read of infra/cdk/registry.Registry, answered with the emulator's ARNs."""

    def __init__(self, topology: Topology, provisioned: Provisioned, region: str, account: str) -> None:
        self._provisioned = provisioned
        self._region, self._account = region, account
        self.buckets = {b.name: _bucket(provisioned.value(f"bucket:{b.name}", "arn")) for b in topology.buckets}
        self.tables = {
            t.name: SimpleNamespace(table_arn=provisioned.value(f"table:{t.name}", "arn")) for t in topology.tables
        }
        self.table_indexes = {t.name: [i.name for i in t.indexes] for t in topology.tables}
        self.search_indexes = {d.name: d.index for d in topology.search_domains}

    def arn(self, ref: str) -> str:
        kind, name = split_ref(ref)
        if kind == "search":  # the embedded engine has no ARN; the domain's would be this one
            return f"arn:aws:es:{self._region}:{self._account}:domain/{name}"
        return self._provisioned.value(ref, "arn")

    def state_machine_executions_arn(self, name: str) -> str:
        machine = self._provisioned.value(f"statemachine:{name}", "arn")
        return machine.replace(":stateMachine:", ":execution:", 1) + ":*"


def _bucket(arn: str) -> SimpleNamespace:
    return SimpleNamespace(bucket_arn=arn, arn_for_objects=lambda pattern: f"{arn}/{pattern}")


def policy_for(arns: LocalArns, grants: list[Grant]) -> dict[str, Any] | None:
    """The inline policy CDK gives a role for these grants (None for no grant: the principal may do nothing)."""
    from infra.cdk.permissions import permissions_for  # imports aws_cdk (~1 s): only when a runtime starts

    statements = [
        {"Effect": "Allow", "Action": list(p.actions), "Resource": list(p.resources)}
        for grant in grants
        for p in permissions_for(arns, grant)  # type: ignore[arg-type]  # duck-typed Registry
    ]
    return {"Version": "2012-10-17", "Statement": statements} if statements else None


def create_admin(iam: Any, account: str) -> None:
    """The runtime's own principal, before anything is provisioned (it signs the provisioning)."""
    _user_with_key(iam, account, "local-admin", _ALLOW_ALL, ADMIN)


def create_principals(
    iam: Any, topology: Topology, provisioned: Provisioned, prefix: str, region: str, account: str
) -> dict[str, Credentials]:
    """One user per function with its grants' policy (and its key), and moto's Step Functions principal."""
    arns = LocalArns(topology, provisioned, region, account)
    credentials: dict[str, Credentials] = {}
    for function in topology.functions:
        name = physical_name(prefix, function.name)
        iam.create_user(UserName=name)
        policy = policy_for(arns, function.uses)
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName="grants", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        credentials[function.name] = Credentials(key["AccessKeyId"], key["SecretAccessKey"])
    states = policy_for(arns, [g for machine in topology.state_machines for g in machine.uses])
    _user_with_key(iam, account, physical_name(prefix, "states"), states, STATES)
    return credentials


def _user_with_key(iam: Any, account: str, user: str, policy: dict[str, Any] | None, key: tuple[str, str]) -> None:
    """A user whose access key is a fixed pair: moto generates key ids, so the generated one is renamed."""
    from moto.iam.models import iam_backends

    iam.create_user(UserName=user)
    if policy is not None:
        iam.put_user_policy(UserName=user, PolicyName="grants", PolicyDocument=json.dumps(policy))
    backend = iam_backends[account]["aws"]
    created = backend.create_access_key(user)
    backend.access_keys.pop(created.physical_resource_id)
    created.access_key_id, created.secret_access_key = key
    backend.access_keys[created.physical_resource_id] = created


class Enforcement:
    """moto's IAM enforcement switched on for this process, with the request resources moto does not determine.

    moto's own switch (`INITIAL_NO_AUTH_ACTION_COUNT`) also recomputes each request's signature, which it gets wrong
    for some REST calls (Lambda's GET configuration: SignatureDoesNotMatch); the emulator only needs to know the
    principal, which the access key names, so the signature is not checked here.
    """

    def __init__(self) -> None:
        self._undo: Callable[[], None] | None = None

    def start(self) -> None:
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.core.exceptions import AccessDeniedError, JsonRESTError

        original = getattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", None)
        if original is None or not hasattr(ActionAuthenticatorMixin, "PUBLIC_OPERATIONS"):
            raise RuntimeError(
                "moto has no ActionAuthenticatorMixin._authenticate_and_authorize_action: update local/iam.py"
            )

        def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
            if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
                return
            path = self.raw_path + (f"?{urlparse(self.uri).query}" if urlparse(self.uri).query else "")
            # moto determined the resource for S3, SQS, IAM and STS; the others are named here.
            for action, arn in [(None, resource)] if resource != "*" else _resources(self):
                request = iam_request_cls(
                    account_id=self.current_account,
                    method=self.method,
                    path=path,
                    data=self.data,
                    body=self.raw_body,
                    headers=self.headers,
                    action=action or _iam_action(_service(self), self._get_action()),
                )
                try:
                    request.check_action_permitted(arn)
                except AccessDeniedError as exc:
                    code = _JSON_DENIED.get(_service(self))
                    if code is None:
                        raise
                    # moto answers in XML, which a JSON service's SDK cannot parse: the error AWS sends instead.
                    denied = JsonRESTError(code, f"{exc.message} on resource: {arn}")
                    denied.code = 403
                    raise denied from exc

        ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize  # type: ignore[method-assign]
        self._undo = lambda: setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", original)

    def stop(self) -> None:
        if self._undo is not None:
            self._undo()
            self._undo = None


def _iam_action(service: str, operation: str) -> str:
    """The IAM action an operation is authorized as, where the two names differ (moto asks the operation's)."""
    return _IAM_ACTIONS.get((service, operation), operation)


def _service(response: Any) -> str:
    """The signing name of the request's service, from its credential scope (key/date/region/service/...)."""
    scope = response.headers.get("Authorization", "").partition("Credential=")[2].split("/")
    return scope[3] if len(scope) > 3 else ""


def _resources(response: Any) -> list[tuple[str | None, str]]:
    """(action in place of the request's, or None; resource ARN) pairs to authorize one request as IAM would."""
    service = _service(response)
    region, account = response.region, response.current_account
    if service == "dynamodb":
        return _dynamodb(response, f"arn:aws:dynamodb:{region}:{account}:table/")
    if service == "lambda":
        match = _FUNCTION_PATH.search(unquote(response.path))
        if match:
            name = match.group(1)
            arn = ":".join(name.split(":")[:7]) if name.startswith("arn:") else name.split(":")[0]
            return [(None, arn if arn.startswith("arn:") else f"arn:aws:lambda:{region}:{account}:function:{arn}")]
    if service == "states":
        for key in ("stateMachineArn", "executionArn"):
            if value := response._get_param(key):
                return [(None, value)]
    if service == "events":
        buses = [e.get("EventBusName") or "default" for e in response._get_param("Entries") or []]
        if name := response._get_param("Name"):
            buses.append(name)
        if buses:
            bus = f"arn:aws:events:{region}:{account}:event-bus/"
            return [(None, b if b.startswith("arn:") else bus + b) for b in dict.fromkeys(buses)]
    return [(None, "*")]


def _dynamodb(response: Any, table: str) -> list[tuple[str | None, str]]:
    body = response.body if isinstance(response.body, dict) else json.loads(response.body or "{}")
    if "TableName" in body:
        index = f"/index/{body['IndexName']}" if body.get("IndexName") else ""
        return [(None, table + body["TableName"] + index)]
    if "RequestItems" in body:  # BatchGetItem, BatchWriteItem: every table named
        return [(None, table + name) for name in body["RequestItems"]]
    checks: list[tuple[str | None, str]] = []
    for item in body.get("TransactItems", []):
        for kind, spec in item.items():
            checks.append((_TRANSACT_ACTIONS.get(kind, "GetItem"), table + spec["TableName"]))
    return checks or [(None, "*")]
