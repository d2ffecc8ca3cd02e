"""The operator's view: one CloudWatch dashboard and the alarms, all notifying one SNS topic.

Built last in the stack, from what the other constructs made (the registry's functions, queues and state
machines, the HTTP API, every alarm already in the stack), so a service added to the topology is on the
dashboard and alarmed without an edit here:
- per function: invocations, errors and p95 duration; an alarm when its error rate passes ERROR_RATE_PCT;
- the API: 4xx, 5xx and p95 latency; an alarm when p95 latency passes API_P95_MS;
- every dead-letter queue's depth (the queues named `...Dlq` by storage.py and events.py; each already has its
  depth > 0 alarm, which this topic now receives);
- Step Functions: failed, timed-out and aborted executions per state machine;
- chat turns answered / failed and their p95 latency (the orchestrator's EMF);
- the gateway's EMF metrics (tokens, cost, errors, latency) and budget use, with an alarm past BUDGET_ALARM_PCT;
- the evaluation scores (`Eval_<score>`, platform-wide and by route; functions/evaluation/handler.py).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from agentplatform.observability import METRICS_NAMESPACE
from infra.cdk.registry import Registry, construct_id

ERROR_RATE_PCT = 5  # a function's errors per invocation over 5 minutes, in %
API_P95_MS = 3000  # a chat turn through the API answers in ~0.3-2 s locally (docs/agent-loop.md)
BUDGET_ALARM_PCT = 80
PERIOD = Duration.minutes(5)
# The agent loop's EMF (functions/orchestrator/service.py `_completed`).
ORCHESTRATOR_SERVICE = "orchestrator"
TURN_METRICS = ("TurnsAnswered", "TurnsFailed")
# The gateway's EMF (functions/llm_gateway/handler.py `_emit`); Powertools adds the `service` dimension.
GATEWAY_SERVICE = "llm_gateway"
GATEWAY_METRICS = ("TokensIn", "TokensOut", "CostMicroUsd", "Errors")
# The share of a tenant's period budget spent, in % (the highest across tenants is what the alarm watches).
BUDGET_METRIC = "BudgetUsedPercent"
# The evaluation service's scores (functions/evaluation/handler.py emit_metrics: `Eval_<score>` by tenant, by
# route, and platform-wide under scope=all).
EVAL_SCORES = ("faithfulness", "answer_relevance", "citation_validity", "abstention")
EVAL_PLATFORM_DIMENSION = "scope"


class Observability(Construct):
    def __init__(self, scope: Construct, id: str, *, registry: Registry, http_api: apigwv2.HttpApi) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        self.topic = self._topic()
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{stack.stack_name}-platform", default_interval=Duration.hours(3)
        )
        self.alarms: list[cloudwatch.Alarm] = []
        for name, function in sorted(registry.functions.items()):
            self._function(name, function)
        self._api(http_api)
        self._dlqs(stack)
        self._state_machines(registry)
        self._turns()
        self._gateway()
        self._evaluation()
        # Every alarm of the stack notifies the topic: the DLQ alarms of storage.py and events.py, the evaluation's
        # degradation alarm, and those made here.
        action = actions.SnsAction(self.topic)
        for alarm in (c for c in stack.node.find_all() if isinstance(c, cloudwatch.Alarm)):
            alarm.add_alarm_action(action)
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=[c for c in stack.node.find_all() if isinstance(c, cloudwatch.Alarm)],
                width=24,
            )
        )

    def _topic(self) -> sns.Topic:
        # CloudWatch publishes to an encrypted topic only with a customer key whose policy lets it use the key.
        key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True, description="Encrypts the alarm topic")
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        return sns.Topic(self, "AlarmTopic", display_name="Agent platform alarms", master_key=key, enforce_ssl=True)

    def _alarm(self, id: str, metric: cloudwatch.IMetric, threshold: float, description: str) -> None:
        self.alarms.append(
            metric.create_alarm(
                self,
                id,
                alarm_description=description,
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )

    def _function(self, name: str, function: lambda_.Function) -> None:
        invocations = function.metric_invocations(period=PERIOD, statistic="Sum")
        errors = function.metric_errors(period=PERIOD, statistic="Sum")
        p95 = function.metric_duration(period=PERIOD, statistic="p95")
        rate = cloudwatch.MathExpression(
            expression="IF(invocations > 0, 100 * errors / invocations, 0)",
            using_metrics={"invocations": invocations, "errors": errors},
            label=f"{name} error rate (%)",
            period=PERIOD,
        )
        self._alarm(
            f"{construct_id(name)}ErrorRateAlarm",
            rate,
            ERROR_RATE_PCT,
            f"Function {name}: more than {ERROR_RATE_PCT}% of its invocations failed in 2 of 3 five-minute periods.",
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title=f"{name}: invocations and errors", left=[invocations, errors], width=12),
            cloudwatch.GraphWidget(title=f"{name}: p95 duration (ms)", left=[p95], width=12),
        )

    def _api(self, http_api: apigwv2.HttpApi) -> None:
        p95 = http_api.metric_latency(period=PERIOD, statistic="p95")
        self._alarm("ApiP95LatencyAlarm", p95, API_P95_MS, f"API p95 latency above {API_P95_MS} ms.")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API: 4xx and 5xx",
                left=[
                    http_api.metric_client_error(period=PERIOD, statistic="Sum"),
                    http_api.metric_server_error(period=PERIOD, statistic="Sum"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(title="API: p95 latency (ms)", left=[p95], width=12),
        )

    def _dlqs(self, stack: Stack) -> None:
        dlqs = sorted(
            (c for c in stack.node.find_all() if isinstance(c, sqs.Queue) and c.node.id.endswith("Dlq")),
            key=lambda q: q.node.path,
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Dead-letter queues: messages waiting",
                left=[
                    q.metric_approximate_number_of_messages_visible(
                        period=Duration.minutes(1), statistic="Maximum", label=q.node.path.split("/")[-1]
                    )
                    for q in dlqs
                ],
                width=24,
            )
        )

    def _state_machines(self, registry: Registry) -> None:
        metrics: list[cloudwatch.IMetric] = []
        for machine in registry.state_machines.values():
            metrics += [
                machine.metric_failed(period=PERIOD, statistic="Sum"),
                machine.metric_timed_out(period=PERIOD, statistic="Sum"),
                machine.metric_aborted(period=PERIOD, statistic="Sum"),
            ]
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Step Functions: failed, timed out, aborted", left=metrics, width=24)
        )

    def _turns(self) -> None:
        def orchestrator(name: str, statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": ORCHESTRATOR_SERVICE},
                period=PERIOD,
                statistic=statistic,
            )

        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Chat turns: answered and failed",
                left=[orchestrator(n, "Sum") for n in TURN_METRICS],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Chat turns: p95 latency (ms)", left=[orchestrator("TurnLatencyMs", "p95")], width=12
            ),
        )

    def _gateway(self) -> None:
        def gateway(name: str, statistic: str = "Sum") -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": GATEWAY_SERVICE},
                period=PERIOD,
                statistic=statistic,
            )

        budget = gateway(BUDGET_METRIC, "Maximum")
        self._alarm(
            "BudgetUseAlarm",
            budget,
            BUDGET_ALARM_PCT,
            f"A tenant has spent more than {BUDGET_ALARM_PCT}% of its LLM budget for the period.",
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="LLM gateway: tokens, cost (micro-USD), errors",
                left=[gateway(n) for n in GATEWAY_METRICS],
                width=8,
            ),
            cloudwatch.GraphWidget(title="LLM gateway: p95 latency (ms)", left=[gateway("LatencyMs", "p95")], width=8),
            cloudwatch.GraphWidget(title="LLM budget use (%, highest tenant)", left=[budget], width=8),
        )

    def _evaluation(self) -> None:
        # The platform-wide series (what infra/cdk/evaluation.py alarms on), and one line per answering route (a
        # dimension value known only at run time: a search expression).
        overall = [
            cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=f"Eval_{score}",
                dimensions_map={EVAL_PLATFORM_DIMENSION: "all"},
                statistic="Average",
                period=Duration.hours(1),
                label=score,
            )
            for score in EVAL_SCORES
        ]
        by_route = [
            cloudwatch.MathExpression(
                expression=f"SEARCH('{{{METRICS_NAMESPACE},route}} MetricName=\"Eval_{score}\"', 'Average', 3600)",
                label=f"{score} by route",
                period=Duration.hours(1),
            )
            for score in EVAL_SCORES
        ]
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Evaluation scores, all turns (hourly mean)", left=overall, width=12),
            cloudwatch.GraphWidget(title="Evaluation scores by route (hourly mean)", left=by_route, width=12),
        )
