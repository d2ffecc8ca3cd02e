"""The in-process Lambda router: Lambda's error shape, and one event at a time per function."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from agentplatform.topology import Function
from local.lambdas import LambdaRouter

FUNCTION = Function(name="f", service="test", handler="tests.unused.handler", purpose="test")


def test_a_raised_error_comes_back_as_lambdas_unhandled_error():
    router = LambdaRouter("123456789012", "us-east-1")

    def handler(event, context):
        raise KeyError("missing")

    router.register("fn", FUNCTION, handler)
    result = router.invoke("arn:aws:lambda:us-east-1:123456789012:function:fn", {})
    assert result.failed and result.error_type == "KeyError"
    assert json.loads(result.payload)["errorType"] == "KeyError"


def test_one_function_handles_one_event_at_a_time_like_one_container():
    router = LambdaRouter("123456789012", "us-east-1")
    active, peak, lock = [0], [0], threading.Lock()

    def handler(event, context):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return event

    router.register("fn", FUNCTION, handler)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: router.invoke("fn", {"i": i}), range(32)))
    assert peak[0] == 1
    assert sorted(json.loads(r.payload)["i"] for r in results) == list(range(32))


def test_a_result_that_is_not_json_fails_the_invocation_as_lambda_does():
    router = LambdaRouter("123456789012", "us-east-1")
    router.register("fn", FUNCTION, lambda event, context: {"at": datetime.now(UTC)})
    result = router.invoke("fn", {})
    assert result.failed and result.error_type == "Runtime.MarshalError"
    assert "Unable to marshal response" in json.loads(result.payload)["errorMessage"]


def test_a_handler_past_its_timeout_is_reported_timed_out_and_the_next_event_does_not_wait_for_it():
    router = LambdaRouter("123456789012", "us-east-1")
    release, finished = threading.Event(), threading.Event()

    def handler(event, context):
        if event.get("slow"):
            release.wait(30)
            finished.set()
        return {"ok": True}

    router.register("fn", FUNCTION.model_copy(update={"timeout_s": 1}), handler)
    result = router.invoke("fn", {"slow": True})
    assert result.failed and result.error_type == "Sandbox.Timedout"
    assert json.loads(result.payload)["errorMessage"] == "Task timed out after 1.00 seconds"
    assert not finished.is_set()  # reported while the handler still runs: the caller did not wait for it
    assert not router.invoke("fn", {}).failed  # a new "container": the stuck one still holds its own
    release.set()
    assert finished.wait(10)  # the stuck thread ends on its own; its late result is dropped
