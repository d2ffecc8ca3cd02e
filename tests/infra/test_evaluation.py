"""The evaluation service in the synthesized template: one alarm per watched score on the platform-wide series."""

from __future__ import annotations

from functions.evaluation.policy import DEFAULT_POLICY_PATH, parse_policy


def test_one_alarm_per_watched_score(synth) -> None:
    policy = parse_policy(DEFAULT_POLICY_PATH.read_text(), "policy")
    alarms = {
        props["MetricName"]: props
        for props in (r["Properties"] for r in synth.template.find_resources("AWS::CloudWatch::Alarm").values())
        if str(props.get("MetricName", "")).startswith("Eval_")
    }
    assert set(alarms) == {f"Eval_{score}" for score in policy.thresholds}
    for score, threshold in policy.thresholds.items():
        alarm = alarms[f"Eval_{score}"]
        assert alarm["Threshold"] == threshold and alarm["ComparisonOperator"] == "LessThanThreshold"
        assert alarm["Dimensions"] == [{"Name": "scope", "Value": "all"}]
        assert alarm["TreatMissingData"] == "notBreaching"


def test_the_evaluator_gets_the_policy_it_alarms_on(synth) -> None:
    env = synth.props("function:evaluator")["Environment"]["Variables"]
    deployed = parse_policy(env["EVALUATION_POLICY"], "env")
    assert deployed.model_dump(exclude={"description"}) == parse_policy(
        DEFAULT_POLICY_PATH.read_text(), "policy"
    ).model_dump(exclude={"description"})
