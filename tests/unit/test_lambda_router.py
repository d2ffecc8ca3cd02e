"""The in-process Lambda router: Lambda's error shape, and one event at a time per function."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

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
