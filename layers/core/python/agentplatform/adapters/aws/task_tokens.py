"""Step Functions' callback pattern: resuming an execution paused on a `.waitForTaskToken` task."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agentplatform.adapters.aws.errors import aws_call
from agentplatform.errors import Conflict, PlatformError

# The token no longer waits: the task timed out, was resumed already, or its execution ended.
_GONE = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}


class StepFunctionsTaskTokens:
    def __init__(self, client: Any) -> None:
        self._sfn = client

    def succeed(self, token: str, output: Mapping[str, Any]) -> None:
        try:
            with aws_call("step functions task token"):
                self._sfn.send_task_success(taskToken=token, output=json.dumps(output))
        except PlatformError as exc:
            if exc.context.get("aws_code") in _GONE:
                raise Conflict(
                    "the paused run no longer waits for this decision", aws_code=exc.context["aws_code"]
                ) from exc
            raise
