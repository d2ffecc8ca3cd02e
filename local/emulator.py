"""moto in server mode, with the things it does not do for us hooked in.

moto runs the real ASL but would need Docker to run Lambda code, and it does not deliver EventBridge events to
Lambda or Step Functions targets. Those hooks live here and nowhere else:
- `LambdaBackend.invoke` (and moto's Docker-free variant) routes to `LambdaRouter` for the platform's functions;
- `Rule.send_to_targets`, after moto's own delivery (SQS, logs, buses), hands Lambda and Step Functions targets
  to `EventDelivery`, using moto's implementation of EventBridge pattern matching and input transformers;
- `S3Backend.delete_object` sends the `Object Deleted` event S3 sends for a delete marker (moto does not).
Others make moto fast enough to measure the platform rather than the emulator: each ASL parsed once, one boto3
client per Lambda task target, a cheap clock in SQS.

Each patch goes through `_replace`, which first checks that the moto internal it relies on is still there with the
parameters the patch was written against (a moto that changed fails at start, naming the patch and moto's
version, instead of misbehaving later), and keeps the original: `uninstall_hooks` (MotoEmulator.stop) puts every
original back, so in-process tests see plain moto again whatever ran before them.
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import requests

from local.lambdas import LambdaRouter
from local.loop import BackgroundLoop

log = logging.getLogger("local.emulator")

ACCOUNT = "123456789012"  # moto's default account

TargetHandler = Callable[[dict[str, Any], Any], None]

_router: LambdaRouter | None = None
_on_target: TargetHandler | None = None
_async_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lambda-async")
_installed = False
# (owner, attribute, the owner's own original or _INHERITED) of every patch applied, in order.
_INHERITED = object()
_originals: list[tuple[Any, str, Any]] = []


class EmulatorPatchError(RuntimeError):
    """A moto internal a patch relies on is missing or changed shape: this moto is not the one it was written for."""


def _moto_version() -> str:
    import moto

    return getattr(moto, "__version__", "unknown")


def _expect(patch: str, owner: Any, attribute: str, params: tuple[str, ...] | None = None) -> Any:
    """The moto internal `owner.attribute`, checked: it exists and (for a callable) its parameters start with
    `params`; else EmulatorPatchError naming the patch and moto's version."""
    where = f"{getattr(owner, '__name__', owner)}.{attribute}"
    target = getattr(owner, attribute, None)
    if target is None:
        raise EmulatorPatchError(f"emulator patch {patch!r}: moto {_moto_version()} has no {where}")
    if params is not None:
        found = tuple(inspect.signature(target).parameters)
        if found[: len(params)] != params:
            raise EmulatorPatchError(
                f"emulator patch {patch!r}: moto {_moto_version()} changed {where}{found}, expected {params}"
            )
    return target


def _replace(patch: str, owner: Any, attribute: str, replacement: Any, params: tuple[str, ...] | None = None) -> Any:
    """Swap in `replacement` for the checked `owner.attribute`, keeping what to restore; returns the original."""
    original = _expect(patch, owner, attribute, params)
    own = vars(owner).get(attribute, _INHERITED) if isinstance(owner, type) else getattr(owner, attribute)
    _originals.append((owner, attribute, own))
    setattr(owner, attribute, replacement)
    return original


def uninstall_hooks() -> None:
    """Every patched moto internal back to its original (the static/class method objects themselves)."""
    global _installed
    while _originals:
        owner, attribute, own = _originals.pop()
        if own is _INHERITED:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, own)
    _installed = False


def _install_hooks() -> None:
    global _installed
    if _installed:
        return
    try:
        _apply_hooks()
    except BaseException:
        uninstall_hooks()  # never half-patched
        raise
    _installed = True


def _apply_hooks() -> None:
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda_simple.models import LambdaSimpleBackend
    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser

    invoke_params = ("self", "function_name", "qualifier", "body", "headers", "response_headers")
    for backend_class in (LambdaBackend, LambdaSimpleBackend):
        original_invoke = _expect("lambda-invoke", backend_class, "invoke", invoke_params)

        def invoke(
            self: Any,
            function_name: str,
            qualifier: Any,
            body: Any,
            headers: Any,
            response_headers: Any,
            _original: Any = original_invoke,
        ) -> Any:
            router = _router
            if router is None or not router.knows(function_name):
                return _original(self, function_name, qualifier, body, headers, response_headers)
            event = json.loads(body) if body else {}
            if headers.get("X-Amz-Invocation-Type") == "Event":
                _async_pool.submit(router.invoke, function_name, event)
                return b""
            result = router.invoke(function_name, event)
            if result.failed:
                response_headers["x-amz-function-error"] = "Unhandled"
            return result.payload

        _replace("lambda-invoke", backend_class, "invoke", invoke, invoke_params)

    _expect("event-targets", EventTemplateParser, "parse", ("input_template", "input_paths_map", "event"))
    original_send = _expect("event-targets", Rule, "send_to_targets", ("self", "original_event", "transform_input"))

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if getattr(self, "scheduled_expression", None) and self.arn not in original_event.get("resources", []):
            return  # a schedule rule fires on its schedule (the Scheduler's event names it), never on other events
        ours = [t for t in self.targets if t["Arn"].split(":")[2] in ("lambda", "states")]
        # moto delivers the other targets (SQS, logs, buses) itself, but raises on the first Lambda or Step
        # Functions target: give it a copy of the rule without those.
        moto_part = copy.copy(self)
        moto_part.targets = [t for t in self.targets if t not in ours]
        original_send(moto_part, original_event, transform_input)
        on_target = _on_target
        if on_target is None or self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        for target in ours:
            if "Input" in target:
                payload = json.loads(target["Input"])
            elif "InputTransformer" in target and transform_input:
                transformer = target["InputTransformer"]
                payload = EventTemplateParser.parse(
                    input_template=transformer.get("InputTemplate"),
                    input_paths_map=transformer.get("InputPathsMap", {}),
                    event=original_event,
                )
            else:
                payload = dict(original_event)
            on_target(target, payload)

    _replace("event-targets", Rule, "send_to_targets", send_to_targets)
    _emit_delete_markers()
    _parse_each_definition_once()
    _reuse_step_functions_clients()
    _read_the_clock_cheaply_in_sqs()
    _write_dynamodb_items_atomically()


def _parse_each_definition_once() -> None:
    """moto parses a state machine's ASL again for every execution (~120 ms for the ingestion machine here, a
    large share of a small document's cost). The parsed program is read-only while it runs (an execution's state
    lives in its environment), except Parallel states' branch bookkeeping, so definitions with a Parallel state
    are still parsed per execution."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    _expect("parse-once", AmazonStateLanguageParser, "parse", ("definition",))

    @functools.lru_cache(maxsize=64)
    def parsed(definition: str) -> Any:
        return AmazonStateLanguageParser.parse(definition)[0]

    # lru_cache lets two threads that miss at once both parse: executions started together wait for one parse.
    parsing = threading.Lock()

    def entrypoint(self: Any) -> Any:
        definition = self._evaluation_details.state_machine_details.definition
        if '"Parallel"' in definition:
            return AmazonStateLanguageParser.parse(definition)[0]
        with parsing:
            return parsed(definition)

    _replace("parse-once", ExecutionWorker, "_get_evaluation_entrypoint", entrypoint, ("self",))


def _reuse_step_functions_clients() -> None:
    """moto's Step Functions builds a new boto3 client for every Lambda task it runs (~15 ms of CPU each, a quarter
    of the emulator's time during ingestion). Its clients differ only by region and service and are thread-safe,
    so one per pair serves every task."""
    import importlib
    import pkgutil
    import sys

    import moto.stepfunctions.parser.asl.component.state.exec.state_task as tasks
    from moto.core.models import botocore_stubber
    from moto.settings import moto_server_port
    from moto.stepfunctions.parser.asl.utils import boto_client

    for module in pkgutil.walk_packages(tasks.__path__, tasks.__name__ + "."):
        importlib.import_module(module.name)
    build = _expect("shared-clients", boto_client, "boto_client_for", ("region", "service"))

    @functools.lru_cache(maxsize=64)
    def shared(region: str, service: str, port: str, intercepted: bool) -> Any:
        return build(region, service)

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # Keyed on what the builder reads: the server's port (each local runtime has its own) and whether moto
        # intercepts botocore in-process; moto's builder ignores the credentials.
        return shared(region, service, str(moto_server_port()), bool(botocore_stubber.enabled))

    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and getattr(module, "boto_client_for", None) is build:
            _replace("shared-clients", module, "boto_client_for", boto_client_for)


def _read_the_clock_cheaply_in_sqs() -> None:
    """moto's SQS reads the clock through datetime arithmetic (~7 µs) for every message's visibility, and a receive
    looks at every message of the queue many times: with 1,400 messages waiting, one ReceiveMessage cost 2 s of
    CPU. The same reading from `time.time()` (what that arithmetic computes, for the current time) keeps the
    semantics and makes a receive on a deep queue cheap."""
    from moto.sqs import models

    exact_seconds = _expect("sqs-clock", models, "unix_time", ("dt",))
    exact_millis = _expect("sqs-clock", models, "unix_time_millis", ("dt",))

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else exact_seconds(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else exact_millis(dt)

    _replace("sqs-clock", models, "unix_time", unix_time)
    _replace("sqs-clock", models, "unix_time_millis", unix_time_millis)


def _write_dynamodb_items_atomically() -> None:
    """DynamoDB applies each write (its condition check and its update) atomically; moto's threaded server runs two
    requests' read-check-write at once, so two conditional ADDs racing on one item could both pass (a budget
    reservation overshooting, two containers both claiming a breaker probe). One lock over moto's item writes
    makes each of them atomic, as in DynamoDB."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()  # re-entrant: a transaction's writes go through the same methods
    for name in ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items"):
        original = _expect("atomic-dynamodb", DynamoDBBackend, name, ("self",))

        def atomic(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        _replace("atomic-dynamodb", DynamoDBBackend, name, atomic)


def _emit_delete_markers() -> None:
    """S3 sends `Object Deleted` (reason DeleteMarkerCreated) when a delete puts a marker on a versioned key;
    moto sends nothing then, so deleting a file from a versioned drop bucket would go unnoticed."""
    from types import SimpleNamespace

    from moto.s3 import notifications
    from moto.s3.models import S3Backend

    delete_params = ("self", "bucket_name", "key_name", "version_id", "bypass")
    original_delete = _expect("delete-markers", S3Backend, "delete_object", delete_params)
    _expect("delete-markers", notifications, "send_event", ("account_id", "event_name", "bucket", "key"))
    _expect("delete-markers", notifications.S3NotificationEvent, "OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT")

    def delete_object(self: Any, bucket_name: str, key_name: str, version_id: str | None = None, bypass: bool = False):
        result = original_delete(self, bucket_name, key_name, version_id, bypass)
        _, meta = result
        if meta.get("delete-marker") == "true" and version_id is None:
            marker = SimpleNamespace(name=key_name, size=0, etag="", version_id=meta.get("version-id"))
            notifications.send_event(
                self.account_id,
                notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
                self.get_bucket(bucket_name),
                marker,
            )
        return result

    _replace("delete-markers", S3Backend, "delete_object", delete_object)


class MotoEmulator:
    """moto's server on host:port in this process, with Step Functions execution on and the hooks installed."""

    def __init__(self, host: str, port: int, router: LambdaRouter, on_target: TargetHandler) -> None:
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self._router = router
        self._on_target = on_target
        self._server: Any = None

    def start(self) -> None:
        global _router, _on_target
        from moto.server import ThreadedMotoServer

        _install_hooks()
        _router, _on_target = self._router, self._on_target
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]  # the real one when 0 asked for any free port
        self.url = f"http://{self.host}:{self.port}"
        # moto's Step Functions calls Lambda back through the server on MOTO_PORT.
        os.environ["MOTO_PORT"] = str(self.port)
        config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
        requests.post(f"{self.url}/moto-api/config", json=config, timeout=10).raise_for_status()

    def stop(self) -> None:
        global _router, _on_target
        if self._server is not None:
            requests.post(f"{self.url}/moto-api/reset", timeout=10)
            self._server.stop()
            self._server = None
        _router, _on_target = None, None
        uninstall_hooks()


_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def rate_seconds(expression: str) -> int | None:
    """Seconds between runs of an EventBridge `rate(...)` schedule; None for `cron(...)` (not run locally)."""
    match = _RATE.match(expression.strip())
    return int(match.group(1)) * _UNIT_S[match.group(2)] if match else None


class Scheduler(BackgroundLoop):
    """Fires scheduled rules (`rate(...)`) on every bus, as EventBridge's "Scheduled Event"s, through moto's rules.

    `speedup` divides every interval (tests and demos run a 5-minute canary in seconds).
    """

    def __init__(self, region: str, speedup: float = 1.0, tick_s: float = 0.5) -> None:
        self._region = region
        self._speedup = speedup
        self._next: dict[str, float] = {}
        super().__init__(name="scheduler", pause_s=tick_s)

    def step(self) -> None:
        self._tick(time.monotonic())

    def _tick(self, now: float) -> None:
        from moto.events.models import events_backends

        backend = events_backends[ACCOUNT][self._region]
        for bus in list(backend.event_buses.values()):
            for rule in list(bus.rules.values()):
                period = rate_seconds(rule.scheduled_expression or "")
                if period is None or rule.state != "ENABLED":
                    continue
                due = self._next.setdefault(rule.arn, now + period / self._speedup)
                if now >= due:
                    self._next[rule.arn] = now + period / self._speedup
                    rule.send_to_targets(scheduled_event(rule.arn, self._region))


def scheduled_event(rule_arn: str, region: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": now,
        "region": region,
        "resources": [rule_arn],
        "detail": {},
        "ingestion-time": now,
    }
