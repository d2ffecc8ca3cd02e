"""Lambda event source mappings from the topology: an SQS queue polled by a function, with partial batch responses.

Lambda's poller reads the queue with the function's execution role, so the role gets exactly what polling needs on
that one queue (`permissions.SQS_CONSUME`: ReceiveMessage, DeleteMessage, ChangeMessageVisibility,
GetQueueAttributes; CDK's `grant_consume_messages` would add GetQueueUrl, which the poller does not call), and
`kms:Decrypt` on the queue's key when it has a customer managed one. The mapping reports batch item failures: a
consumer returns `batchItemFailures` and only those messages come back.

A queue's visibility timeout must be at least six times the function's timeout (AWS's advice for SQS event
sources: a batch that is still being processed, or retried after throttling, must not reappear to another
poller); a topology that breaks it fails the synth.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from agentplatform.topology import Access, EventSourceMapping, Grant, Topology
from infra.cdk.permissions import apply_grants
from infra.cdk.registry import Registry, construct_id

# AWS: "set the source queue's visibility timeout to at least six times the timeout that you configure on your
# function" (Lambda developer guide, "Using Lambda with Amazon SQS").
VISIBILITY_TIMEOUT_FACTOR = 6


def check_visibility_timeout(topology: Topology, source: EventSourceMapping) -> None:
    """Fail the synth when the queue would hand a batch to another poller while the function may still run."""
    queues = {q.name: q for q in topology.queues}
    functions = {f.name: f for f in topology.functions}
    if source.queue not in queues:
        raise ValueError(f"event source queue:{source.queue} -> function:{source.function}: no such queue")
    if source.function not in functions:
        raise ValueError(f"event source queue:{source.queue} -> function:{source.function}: no such function")
    visibility = queues[source.queue].visibility_timeout_s
    timeout = functions[source.function].timeout_s
    if visibility < VISIBILITY_TIMEOUT_FACTOR * timeout:
        raise ValueError(
            f"event source queue:{source.queue} -> function:{source.function}: the queue's visibility timeout "
            f"({visibility} s) must be at least {VISIBILITY_TIMEOUT_FACTOR}x the function's timeout ({timeout} s), "
            f"i.e. >= {VISIBILITY_TIMEOUT_FACTOR * timeout} s (AWS advice for SQS event sources); raise "
            f"visibility_timeout_s of queue {source.queue} or lower timeout_s of function {source.function}"
        )


class EventSources(Construct):
    def __init__(self, scope: Construct, id: str, *, topology: Topology, registry: Registry) -> None:
        super().__init__(scope, id)
        self.mappings: list[lambda_.EventSourceMapping] = []
        for source in topology.event_sources:
            check_visibility_timeout(topology, source)
            self.mappings.append(self._mapping(source, registry))

    def _mapping(self, spec: EventSourceMapping, registry: Registry) -> lambda_.EventSourceMapping:
        queue_ref, function_ref = f"queue:{spec.queue}", f"function:{spec.function}"
        queue = Registry._get(registry.queues, queue_ref)
        function = Registry._get(registry.functions, function_ref)
        role = function.role
        if role is None:  # every function built here has its own role (functions.py)
            raise ValueError(f"{function_ref} has no execution role to poll {queue_ref} with")
        # The poller's permissions, from the same table as the topology's grants: exact actions, this queue only.
        apply_grants(registry, role, [Grant(ref=queue_ref, access=Access.CONSUME)], nag_scope=role)
        if queue.encryption_master_key:  # a customer managed key (secure_queue uses SQS-managed keys: none)
            queue.encryption_master_key.grant_decrypt(role)
        mapping = lambda_.EventSourceMapping(
            self,
            f"{construct_id(spec.queue)}To{construct_id(spec.function)}",
            target=function,
            event_source_arn=queue.queue_arn,
            batch_size=spec.batch_size,
            max_batching_window=Duration.seconds(spec.max_batching_window_s),
            report_batch_item_failures=True,
        )
        # Lambda checks the role's permissions on the queue when the mapping is created: the role (and its policy,
        # a child of it) comes first. The function depends on it already; this keeps it so if that changes.
        mapping.node.add_dependency(role)
        return mapping
