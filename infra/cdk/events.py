"""EventBridge rules from the topology: pattern or schedule, on a platform bus or the default bus (where S3
sends its events), with targets by reference. Each rule gets a dead-letter queue (with an alarm) for
deliveries to its targets that fail every retry.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from agentplatform.topology import InputTransformer, Rule, Target, Topology, resolve_refs, split_ref
from infra.cdk.nag import acknowledge
from infra.cdk.registry import Registry, construct_id, tag_with_ref
from infra.cdk.storage import alarm_on_messages, secure_queue

# Event pattern keys (as EventBridge spells them) -> EventPattern fields.
_PATTERN_FIELDS = {
    "source": "source",
    "detail-type": "detail_type",
    "detail": "detail",
    "account": "account",
    "region": "region",
    "resources": "resources",
    "time": "time",
    "id": "id",
    "version": "version",
}
_SCHEDULE = re.compile(r"^(rate|cron)\(.+\)$")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")
_MARK = re.compile(r"@@field:([A-Za-z0-9_.-]+)@@")


def event_pattern(pattern: dict[str, Any]) -> events.EventPattern:
    unknown = set(pattern) - set(_PATTERN_FIELDS)
    if unknown:
        raise ValueError(f"event pattern keys not supported: {sorted(unknown)}")
    return events.EventPattern(**{_PATTERN_FIELDS[key]: value for key, value in pattern.items()})


def schedule(expression: str) -> events.Schedule:
    if not _SCHEDULE.match(expression):
        raise ValueError(f"schedule must be 'rate(...)' or 'cron(...)', got {expression!r}")
    return events.Schedule.expression(expression)


def target_input(transformer: InputTransformer) -> events.RuleTargetInput:
    """The topology's input template (JSON text with `<name>` placeholders, quoted or bare) as a CDK target input.

    Each placeholder becomes an `EventField` on its JSONPath, so CDK renders the InputTransformer's paths map
    and template itself: `{"correlation_id": <id>}` with `id` -> `$.id`.
    """
    marked = _mark_placeholders(transformer.template, set(transformer.paths))
    try:
        document = json.loads(marked)
    except json.JSONDecodeError as exc:
        raise ValueError(f"input template is not JSON once placeholders are filled: {transformer.template!r}") from exc
    return events.RuleTargetInput.from_object(_with_fields(document, transformer.paths))


def _mark_placeholders(template: str, names: set[str]) -> str:
    """Replace each `<name>` with a marker string, inside a JSON string or (quoted) in place of a value."""
    out: list[str] = []
    in_string = escaped = False
    i = 0
    while i < len(template):
        match = _PLACEHOLDER.match(template, i) if not escaped else None
        if match and match.group(1) in names:
            marker = f"@@field:{match.group(1)}@@"
            out.append(marker if in_string else f'"{marker}"')
            i = match.end()
            continue
        char = template[i]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        out.append(char)
        i += 1
    return "".join(out)


def _with_fields(value: Any, paths: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _with_fields(item, paths) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_fields(item, paths) for item in value]
    if isinstance(value, str):
        parts = _MARK.split(value)
        if len(parts) == 1:
            return value
        if len(parts) == 3 and parts[0] == parts[2] == "":
            return events.EventField.from_path(paths[parts[1]])
        return "".join(events.EventField.from_path(paths[p]) if i % 2 else p for i, p in enumerate(parts))
    return value


class Rules(Construct):
    def __init__(self, scope: Construct, id: str, *, topology: Topology, registry: Registry) -> None:
        super().__init__(scope, id)
        self.rules: dict[str, events.Rule] = {}
        for rule in topology.rules:
            self.rules[rule.name] = self._rule(rule, registry)

    def _rule(self, spec: Rule, registry: Registry) -> events.Rule:
        if (spec.event_pattern is None) == (spec.schedule is None):
            raise ValueError(f"rule {spec.name}: give exactly one of event_pattern and schedule")
        name = construct_id(spec.name)
        rule = events.Rule(
            self,
            f"{name}Rule",
            description=spec.purpose[:512],
            event_bus=registry.buses[spec.bus] if spec.bus else None,
            event_pattern=(
                event_pattern(resolve_refs(spec.event_pattern, lambda ref: registry.value(ref, "name")))
                if spec.event_pattern is not None
                else None
            ),
            schedule=schedule(spec.schedule) if spec.schedule is not None else None,
        )
        dlq = secure_queue(self, f"{name}TargetsDlq", retention_period=Duration.days(14))
        acknowledge(
            dlq,
            "AwsSolutions-SQS3",
            f"This queue is itself a dead-letter queue: it receives the events rule {spec.name} could not deliver "
            "to its targets after EventBridge's retries (target DeadLetterConfig), and is alarmed.",
        )
        alarm_on_messages(
            self, f"{name}TargetsDlqAlarm", dlq, f"Events of rule {spec.name} could not be delivered to a target."
        )
        for target in spec.targets:
            rule.add_target(self._target(target, registry, dlq))
        tag_with_ref(rule, f"rule:{spec.name}", "AWS::Events::Rule")
        return rule

    @staticmethod
    def _target(spec: Target, registry: Registry, dlq: sqs.IQueue) -> events.IRuleTarget:
        kind, name = split_ref(spec.ref)
        payload = target_input(spec.input_transformer) if spec.input_transformer else None
        if kind == "statemachine":
            return targets.SfnStateMachine(registry.state_machines[name], input=payload, dead_letter_queue=dlq)
        if kind == "function":
            return targets.LambdaFunction(registry.functions[name], event=payload, dead_letter_queue=dlq)
        if kind == "queue":
            return targets.SqsQueue(registry.queues[name], message=payload, dead_letter_queue=dlq)
        raise ValueError(f"a rule cannot target {spec.ref}: targets are state machines, functions or queues")
