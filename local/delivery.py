"""What AWS does between services that moto leaves out: EventBridge -> Lambda / Step Functions target delivery,
and SQS event source mappings (poll, invoke, delete what succeeded, let failures return to the queue so the
redrive policy moves a poison message to its DLQ after maxReceiveCount)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from local.lambdas import LambdaRouter
from local.loop import BackgroundLoop

_WINDOW_POLL_S = 0.25  # how often a poller looks for more messages while its batching window is open (each receive
# costs moto a scan of the whole queue)

log = logging.getLogger("local.delivery")

ASYNC_ATTEMPTS = 3


class EventDelivery:
    """Delivers one matched event to a Lambda (asynchronous invoke semantics) or Step Functions target."""

    def __init__(self, router: LambdaRouter, clients: Any, region: str) -> None:
        self._router = router
        self._clients = clients
        self._region = region
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eventbridge")
        self.delivered = 0

    def __call__(self, target: dict[str, Any], payload: Any) -> None:
        self._pool.submit(self._deliver, target, payload)

    def _deliver(self, target: dict[str, Any], payload: Any) -> None:
        arn = target["Arn"]
        try:
            if arn.split(":")[2] == "states":
                # Named explicitly: moto names every unnamed execution "None", so a second one would collide.
                self._clients("stepfunctions").start_execution(
                    stateMachineArn=arn, name=str(uuid.uuid4()), input=json.dumps(payload)
                )
            else:
                self._invoke_with_retries(target, payload)
            self.delivered += 1
        except Exception:
            log.exception("event delivery to %s failed", arn)

    def _invoke_with_retries(self, target: dict[str, Any], payload: Any) -> None:
        # Lambda's asynchronous invocation: the first attempt and two retries (without AWS's minutes of backoff:
        # locally a failing handler should show at once).
        result = None
        for _ in range(ASYNC_ATTEMPTS):
            result = self._router.invoke(target["Arn"], payload)
            if not result.failed:
                return
        log.warning(
            "target %s failed %d times (%s)", target["Arn"], ASYNC_ATTEMPTS, result.error_type if result else ""
        )

    def stop(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class QueuePoller(BackgroundLoop):
    """One SQS event source mapping: long-polls the queue and invokes the function with Lambda's SQS event."""

    def __init__(
        self,
        router: LambdaRouter,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function: str,
        batch_size: int,
        region: str,
        window_s: float = 0.0,
    ) -> None:
        self._router = router
        self._sqs = sqs
        self._url = queue_url
        self._arn = queue_arn
        self._function = function
        self._batch_size = batch_size
        self._window_s = window_s
        self._region = region
        super().__init__(name=f"poll-{queue_arn.rsplit(':', 1)[-1]}", pause_s=0)

    def step(self) -> None:
        self.poll_once(wait_s=1)

    def poll_once(self, wait_s: int = 0) -> int:
        """One invocation with up to batch_size messages, as Lambda's poller gathers them: from the first message
        on, receives go on until the batch is full or the batching window has passed (SQS hands out at most 10
        per receive)."""
        messages: list[dict[str, Any]] = []
        deadline = 0.0
        while len(messages) < self._batch_size:
            wanted = min(self._batch_size - len(messages), 10)
            out = self._sqs.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=0 if messages else wait_s,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = out.get("Messages", [])
            if not messages:
                if not received:
                    return 0
                deadline = time.monotonic() + self._window_s
            messages += received
            if len(received) < wanted:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(_WINDOW_POLL_S, left))  # the queue is empty for now: wait for more within the window
        event = {"Records": [self._record(m) for m in messages]}
        result = self._router.invoke(self._function, event)
        if result.failed:
            return len(messages)  # the whole batch becomes visible again after the visibility timeout
        failed_ids = {f.get("itemIdentifier") for f in (json.loads(result.payload) or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        for start in range(0, len(done), 10):  # DeleteMessageBatch takes 10 entries
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])
                ],
            )
        return len(messages)

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in (message.get("MessageAttributes") or {}).items()
        }
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": attributes,
            "md5OfBody": message.get("MD5OfBody"),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": self._region,
        }
