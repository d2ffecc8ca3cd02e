"""In-process Lambda: the real handlers in `functions/`, invoked with Lambda's event, context and error shapes."""

from __future__ import annotations

import contextvars
import importlib
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from agentplatform.bootstrap import Container, scoped_container
from agentplatform.config import Settings
from agentplatform.topology import Function
from local.logbook import Logbook

log = logging.getLogger("local.lambda")

Handler = Callable[[Any, Any], Any]


class FunctionSettings(Settings):
    """A function's settings from its own environment only: the process's holds every function's variables."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, **_: Any) -> tuple[Any, ...]:
        return (init_settings,)


class FunctionContainer(Container):
    """One function's container (its settings, its credentials); the embedded search indexes are `shared`'s, as
    one process owns an index folder. A function without the search grant still fails on the missing setting."""

    def __init__(self, settings: Settings, shared: Container) -> None:
        super().__init__(settings)
        self._shared = shared

    def _search_index(self, name: str) -> Any:
        self.settings.require("knowledge_search_url")
        return self._shared.search_index if name == self._shared.settings.search_index else self._shared.memory_index

    def close(self) -> None:
        """Nothing to release: the indexes are the shared container's."""


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_s: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + self.aws_request_id.replace("-", "")

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class InvocationResult:
    payload: bytes
    error_type: str | None = None  # set when the handler raised: Lambda's "Unhandled" function error

    @property
    def failed(self) -> bool:
        return self.error_type is not None


class LambdaRouter:
    """Maps physical function names (and ARNs) to the topology's handlers and runs them in this process.

    A handler past its timeout is reported as Lambda reports it (`Sandbox.Timedout`, "Task timed out after ...")
    though its thread cannot be killed; a result that is not JSON fails the invocation (`Runtime.MarshalError`).
    """

    def __init__(self, account: str, region: str) -> None:
        self._account = account
        self._region = region
        self._functions: dict[str, Function] = {}
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        # One event at a time per function, as in one Lambda container: handlers keep per-request state in
        # module objects (the API resolver's current event, the logger's correlation id).
        self._running: dict[str, threading.Lock] = {}
        self.invocations: dict[str, int] = {}
        # Each function's own container (its environment, its credentials): set by the runtime; None runs handlers
        # with the process's container (a router without a runtime, in tests).
        self.containers: Callable[[Function], Container] | None = None
        self.logbook = Logbook()  # records nothing until the runtime opens it on its data folder

    def arn(self, physical_name: str) -> str:
        return f"arn:aws:lambda:{self._region}:{self._account}:function:{physical_name}"

    def register(self, physical_name: str, function: Function, handler: Handler | None = None) -> None:
        """The function's handler: `handler` in place of its topology's (a test's double), or, without one, the
        topology's, imported on first use."""
        self._functions[physical_name] = function
        if handler is not None:
            self._handlers[physical_name] = handler
        else:
            self._handlers.pop(physical_name, None)

    def knows(self, name_or_arn: str) -> bool:
        return self._physical(name_or_arn) in self._functions

    def _physical(self, name_or_arn: str) -> str:
        # "name", "name:qualifier", or "arn:aws:lambda:region:account:function:name[:qualifier]"
        if name_or_arn.startswith("arn:"):
            return name_or_arn.split(":")[6]
        return name_or_arn.split(":")[0]

    def _handler(self, physical: str) -> Handler:
        with self._lock:
            if physical not in self._handlers:
                function = self._functions[physical]
                module = importlib.import_module(function.module)
                self._handlers[physical] = getattr(module, function.attribute)
            return self._handlers[physical]

    def invoke(self, name_or_arn: str, event: Any) -> InvocationResult:
        physical = self._physical(name_or_arn)
        function = self._functions[physical]
        context = LambdaContext(
            function_name=physical,
            memory_limit_in_mb=function.memory_mb,
            invoked_function_arn=self.arn(physical),
            timeout_s=function.timeout_s,
        )
        with self._lock:
            self.invocations[function.name] = self.invocations.get(function.name, 0) + 1
            running = self._running.setdefault(physical, threading.Lock())
        try:
            handler = self._handler(physical)
            scoped = self.containers(function) if self.containers else None
        except Exception as exc:
            return _error(function, context, exc)
        outcome: list[InvocationResult] = []

        def run() -> None:
            try:
                with (
                    scoped_container(scoped) if scoped else nullcontext(),
                    self.logbook.invocation(function, context, event),
                ):
                    result = handler(event, context)
                # As Lambda's runtime: the result must be JSON; nothing is turned into a string for the handler.
                outcome.append(InvocationResult(payload=json.dumps(result).encode()))
            except TypeError as exc:
                marshal = RuntimeError(f"Unable to marshal response: {exc}")
                outcome.append(_error(function, context, marshal, error_type="Runtime.MarshalError"))
            except Exception as exc:  # Lambda reports any exception as an Unhandled function error
                outcome.append(_error(function, context, exc))
            finally:
                running.release()

        running.acquire()  # one event at a time per container; waiting for it is not the function's time
        # The caller's context goes along, as it did when the handler ran on the caller's thread.
        worker = threading.Thread(target=contextvars.copy_context().run, args=(run,), name=f"lambda-{function.name}")
        worker.daemon = True
        worker.start()
        worker.join(function.timeout_s)
        if outcome:
            return outcome[0]
        # Past its timeout: Lambda stops the container and reports the timeout. A thread cannot be stopped, so it
        # runs on, its result dropped, and the next event gets a new "container" (a new lock), as in Lambda.
        with self._lock:
            if self._running.get(physical) is running:
                self._running[physical] = threading.Lock()
        log.warning("function %s timed out after %s s", function.name, function.timeout_s)
        timed_out = TimeoutError(f"Task timed out after {function.timeout_s:.2f} seconds")
        return _error(function, context, timed_out, error_type="Sandbox.Timedout")


def _error(
    function: Function, context: LambdaContext, exc: BaseException, *, error_type: str | None = None
) -> InvocationResult:
    """Lambda's Unhandled function error: its type (which Step Functions matches in Retry and Catch), its message,
    and the end of the stack."""
    kind = error_type or type(exc).__name__
    log.info("function %s failed with %s: %s", function.name, kind, exc)
    error = {
        "errorType": kind,
        "errorMessage": str(exc),
        "requestId": context.aws_request_id,
        "stackTrace": traceback.format_exception(exc)[-5:],
    }
    return InvocationResult(payload=json.dumps(error).encode(), error_type=kind)
