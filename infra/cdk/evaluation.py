"""The evaluation service's CloudWatch alarms: each watched score's platform-wide rolling mean (the evaluator's
EMF series `Eval_<score>` with dimension scope=all, functions/evaluation/handler.py) under the threshold of
policies/evaluation.json for two 15-minute periods. Per tenant, the evaluator raises its own `evaluation.alert`
events and rows; these alarms are the AWS-side signal an operator's paging hangs off."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from agentplatform.observability import METRICS_NAMESPACE
from functions.evaluation.handler import PLATFORM_DIMENSION
from functions.evaluation.policy import DEFAULT_POLICY_PATH, parse_policy

EVALUATOR_FUNCTION = "evaluator"
POLICY_ENV = "EVALUATION_POLICY"  # the policy's JSON: policies/ is not in the function's asset
PERIOD = Duration.minutes(15)


class EvaluationAlarms(Construct):
    def __init__(
        self, scope: Construct, id: str, *, function: lambda_.Function, policy_path: Path = DEFAULT_POLICY_PATH
    ) -> None:
        super().__init__(scope, id)
        text = policy_path.read_text(encoding="utf-8")
        policy = parse_policy(text, str(policy_path))  # a bad policy fails synth, naming the field
        function.add_environment(POLICY_ENV, policy.model_dump_json(exclude={"description"}))
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for score, threshold in sorted(policy.thresholds.items()):
            metric = cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=f"Eval_{score}",
                dimensions_map={PLATFORM_DIMENSION: "all"},
                statistic="Average",
                period=PERIOD,
            )
            self.alarms[score] = metric.create_alarm(
                self,
                f"{score.title().replace('_', '')}Low",
                threshold=threshold,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=2,
                datapoints_to_alarm=2,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,  # no turns is not a degradation
                alarm_description=f"Evaluated turns' mean {score} under {threshold} for 30 minutes (evaluation docs)",
            )
