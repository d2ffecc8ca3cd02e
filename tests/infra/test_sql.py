"""The business tools' database: Aurora PostgreSQL Serverless v2 in the isolated VPC, Data API on, encrypted,
no inbound rule; the tools function alone may use it, through the Data API on this cluster and the reader
secret only, with the three settings it reads."""

from __future__ import annotations

import pytest

from infra.cdk.sql import DATA_API_ACTIONS, DATABASE, READER, SQL_ENV, TOOLS_FUNCTION
from tests.infra.cdk_synth import Synth, statement_pairs

pytestmark = pytest.mark.infra


def _one(synth: Synth, cfn_type: str) -> tuple[str, dict]:
    found = synth.of_type(cfn_type)
    assert len(found) == 1, f"expected one {cfn_type}, found {list(found)}"
    ((lid, resource),) = found.items()
    return lid, resource["Properties"]


def test_the_cluster_is_serverless_v2_postgres_with_the_data_api(synth: Synth) -> None:
    _, cluster = _one(synth, "AWS::RDS::DBCluster")
    assert cluster["Engine"] == "aurora-postgresql"
    assert cluster["EnableHttpEndpoint"] is True
    assert cluster["ServerlessV2ScalingConfiguration"] == {"MinCapacity": 0.5, "MaxCapacity": 4}
    assert cluster["StorageEncrypted"] is True and cluster["DeletionProtection"] is True
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert cluster["DatabaseName"] == DATABASE
    assert cluster["EnableCloudwatchLogsExports"] == ["postgresql"]
    _, instance = _one(synth, "AWS::RDS::DBInstance")
    assert instance["DBInstanceClass"] == "db.serverless" and instance["PubliclyAccessible"] is False


def test_the_cluster_is_in_isolated_subnets_and_admits_nothing(synth: Synth) -> None:
    _, cluster = _one(synth, "AWS::RDS::DBCluster")
    (group,) = cluster["VpcSecurityGroupIds"]
    group_lid = group["Fn::GetAtt"][0]
    assert "SecurityGroupIngress" not in synth.props(group_lid)
    assert not [
        r for r in synth.of_type("AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"].get("GroupId") == group
    ]  # fmt: skip
    _, subnets = _one(synth, "AWS::RDS::DBSubnetGroup")
    for subnet in subnets["SubnetIds"]:
        assert "Isolated" in subnet["Ref"]


def test_only_the_tools_function_gets_the_database_and_only_through_the_data_api(synth: Synth) -> None:
    cluster_lid, _ = _one(synth, "AWS::RDS::DBCluster")
    secrets = synth.of_type("AWS::SecretsManager::Secret")
    readers = [lid for lid, s in secrets.items() if READER in str(s["Properties"].get("GenerateSecretString"))]
    assert len(readers) == 1
    (reader,) = readers
    attachment = next(
        lid for lid, r in synth.of_type("AWS::SecretsManager::SecretTargetAttachment").items()
        if r["Properties"]["SecretId"] == {"Ref": reader}
    )  # fmt: skip
    for function_lid, function in synth.of_type("AWS::Lambda::Function").items():
        env = function["Properties"].get("Environment", {}).get("Variables", {})
        role_lid = function["Properties"]["Role"]["Fn::GetAtt"][0]
        pairs = statement_pairs(synth.role_statements(role_lid))
        if function_lid != synth.logical_id(f"function:{TOOLS_FUNCTION}"):
            database_secrets = {str({"Ref": lid}) for lid in [*secrets, attachment] if "SqlDatabase" in lid}
            others = [(a, r) for a, r in pairs if a.startswith("rds") or str(r) in database_secrets]
            assert not others and not set(SQL_ENV) & set(env), function_lid
            continue
        touches = [(a, r) for a, r in pairs if a.startswith(("rds-data:", "secretsmanager:", "rds:"))]
        assert env["SQL_CLUSTER_ARN"] == {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":rds:",
                                          {"Ref": "AWS::Region"}, ":", {"Ref": "AWS::AccountId"}, ":cluster:",
                                          {"Ref": cluster_lid}]]}  # fmt: skip
        assert env["SQL_SECRET_ARN"] == {"Ref": attachment}
        assert env["SQL_DATABASE"] == DATABASE
        assert sorted(touches, key=str) == sorted(
            [(a, env["SQL_CLUSTER_ARN"]) for a in DATA_API_ACTIONS]
            + [(a, {"Ref": attachment}) for a in ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret")],
            key=str,
        )
