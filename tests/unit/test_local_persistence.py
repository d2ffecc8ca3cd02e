"""What survives a restart of the local runtime: the conversations table's snapshot (moto in-process), and the rule
that fails the turns a stop interrupted (the memory fakes)."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from agentplatform.conversations import (
    INTERRUPTED_FAILURE,
    AnswerKind,
    ConversationStore,
    EscalationStatus,
    TurnStatus,
)
from agentplatform.errors import ConfigurationError, Conflict
from local.persistence import TablePersistence, TableSnapshot, fail_interrupted_turns
from tests.fakes import MemoryTable


def _stores() -> tuple[MemoryTable, ConversationStore]:
    table = MemoryTable()
    return table, ConversationStore(table)


def test_running_and_waiting_turns_without_a_live_execution_fail_with_the_reason_and_keep_the_question() -> None:
    table, store = _stores()
    conv = store.create("acme", "alice").id
    answered = store.add_turn("acme", "alice", conv, "what is done?")
    store.update_turn("acme", conv, answered.turn, {"status": "answered", "answer": "done", "execution_arn": "arn:1"})
    running = store.add_turn("acme", "alice", conv, "what was running?")
    store.update_turn("acme", conv, running.turn, {"execution_arn": "arn:gone"})
    waiting = store.add_turn("acme", "alice", conv, "who approves?")
    store.open_escalation(
        "acme",
        escalation_id="e_1",
        conversation_id=conv,
        turn=waiting.turn,
        user="alice",
        question="who approves?",
        reason="approval",
        token="tok",
        pending_tools=["send_email"],
    )
    store.update_turn("acme", conv, waiting.turn, {"status": "waiting", "escalation_id": "e_1", "execution_arn": "a:2"})
    never_started = store.add_turn("acme", "alice", conv, "killed before the execution started")
    still_live = store.add_turn("acme", "alice", conv, "still running elsewhere")
    store.update_turn("acme", conv, still_live.turn, {"execution_arn": "arn:live"})

    failed = store.fail_interrupted_turns(list(table.items.values()), alive=lambda arn: arn == "arn:live")

    assert sorted(failed) == [("acme", conv, n) for n in (running.turn, waiting.turn, never_started.turn)]
    for n, question in ((running.turn, "what was running?"), (waiting.turn, "who approves?")):
        turn = store.turn("acme", "alice", conv, n)
        assert turn.status == TurnStatus.FAILED and turn.failure == INTERRUPTED_FAILURE
        assert turn.answer_kind == AnswerKind.SAFE and "local runtime stopped" in (turn.answer or "")
        assert turn.question == question
    assert store.turn("acme", "alice", conv, answered.turn).status == TurnStatus.ANSWERED
    assert store.turn("acme", "alice", conv, answered.turn).answer == "done"
    assert store.turn("acme", "alice", conv, still_live.turn).status == TurnStatus.RUNNING
    escalation = store.escalation("acme", "e_1")
    assert escalation.status == EscalationStatus.INTERRUPTED and escalation.resolution == INTERRUPTED_FAILURE
    with pytest.raises(Conflict):  # an operator's late resolution has nothing left to resume
        store.close_escalation("acme", "e_1", EscalationStatus.APPROVED, by="bob", resolution=None)
    assert store.escalations("acme") == []  # no longer in the open queue


def test_a_turn_that_finished_after_the_read_keeps_its_answer_and_a_second_pass_changes_nothing() -> None:
    table, store = _stores()
    conv = store.create("acme", "alice").id
    turn = store.add_turn("acme", "alice", conv, "q")
    stale = [dict(i) for i in table.items.values()]  # read while it ran
    store.update_turn("acme", conv, turn.turn, {"status": "answered", "answer": "a"})

    assert store.fail_interrupted_turns(stale, alive=lambda _: False) == []
    assert store.turn("acme", "alice", conv, turn.turn).answer == "a"
    assert store.fail_interrupted_turns(list(table.items.values()), alive=lambda _: False) == []


def _table(ddb, name: str = "conversations") -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@mock_aws
def test_snapshot_round_trips_every_item_and_type_into_a_fresh_table_and_skips_an_unchanged_table(tmp_path) -> None:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    _table(ddb)
    items = [
        {"pk": {"S": f"CONV#acme#c{n:03d}"}, "sk": {"S": "#META"}, "turns": {"N": str(n)}, "ok": {"BOOL": True}}
        for n in range(60)  # more than one BatchWriteItem
    ]
    items.append({"pk": {"S": "X"}, "sk": {"S": "Y"}, "none": {"NULL": True}, "tags": {"SS": ["a", "b"]}})
    for item in items:
        ddb.put_item(TableName="conversations", Item=item)
    path = tmp_path / "tables" / "conversations.jsonl"
    snapshot = TableSnapshot(ddb, "conversations", path)

    assert snapshot.save() is True
    assert snapshot.save() is False  # nothing changed: not rewritten
    assert len(path.read_text().splitlines()) == len(items)
    assert not list(path.parent.glob("*.tmp"))  # the temp file was renamed over the snapshot

    ddb.delete_table(TableName="conversations")  # a restart: moto starts empty
    _table(ddb)
    restored = TableSnapshot(ddb, "conversations", path).restore()
    assert len(restored) == len(items)
    scanned = ddb.scan(TableName="conversations")["Items"]
    key = lambda i: (i["pk"]["S"], i["sk"]["S"])  # noqa: E731
    assert sorted(scanned, key=key) == sorted(items, key=key)


@mock_aws
def test_a_kill_between_snapshots_leaves_the_last_whole_one_and_no_restore_never_overwrites_it(tmp_path) -> None:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    _table(ddb)
    path = tmp_path / "conversations.jsonl"
    ddb.put_item(TableName="conversations", Item={"pk": {"S": "a"}, "sk": {"S": "1"}})
    persistence = TablePersistence([TableSnapshot(ddb, "conversations", path)], interval_s=60)
    persistence.restore()  # nothing saved yet
    persistence.save()
    before = path.read_text()
    assert json.loads(before) == {"pk": {"S": "a"}, "sk": {"S": "1"}}

    # A runtime whose start failed before its restore: its stop must not replace the file with an empty table.
    ddb.delete_table(TableName="conversations")
    _table(ddb)
    TablePersistence([TableSnapshot(ddb, "conversations", path)]).stop()
    assert path.read_text() == before


@mock_aws
def test_after_a_restore_the_interrupted_turn_fails_through_the_store(tmp_path) -> None:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    _table(ddb)
    from agentplatform.adapters.aws.storage import DynamoTable

    store = ConversationStore(DynamoTable("conversations", ddb))
    conv = store.create("acme", "alice").id
    turn = store.add_turn("acme", "alice", conv, "still running when killed")
    arn = "arn:aws:states:us-east-1:123456789012:execution:agent-loop:" + f"{conv}-1"
    store.update_turn("acme", conv, turn.turn, {"execution_arn": arn})
    path = tmp_path / "conversations.jsonl"
    TableSnapshot(ddb, "conversations", path).save()

    ddb.delete_table(TableName="conversations")
    _table(ddb)
    items = TableSnapshot(ddb, "conversations", path).restore()
    assert fail_interrupted_turns(ddb, sfn, "conversations", items) == [("acme", conv, turn.turn)]
    after = store.turn("acme", "alice", conv, turn.turn)
    assert after.status == TurnStatus.FAILED and after.failure == INTERRUPTED_FAILURE
    assert after.question == "still running when killed" and after.execution_arn == arn


@mock_aws
def test_following_the_stream_keeps_the_file_equal_to_the_table_without_scanning_it(tmp_path) -> None:
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    # An explicit endpoint, as the runtime's clients have: botocore would otherwise pick an account-based one
    # (<account>.streams-ddb...) that moto's in-process mock does not answer.
    streams = boto3.client(
        "dynamodbstreams", region_name="us-east-1", endpoint_url="https://streams.dynamodb.us-east-1.amazonaws.com"
    )
    _table(ddb)
    scans: list[str] = []
    ddb.meta.events.register("before-call.dynamodb.Scan", lambda **_: scans.append("scan"))
    path = tmp_path / "conversations.jsonl"
    ddb.put_item(TableName="conversations", Item={"pk": {"S": "kept"}, "sk": {"S": "1"}, "n": {"N": "1"}})
    TableSnapshot(ddb, "conversations", path).save()  # an earlier run's snapshot
    ddb.delete_table(TableName="conversations")
    _table(ddb)
    snapshot = TableSnapshot(ddb, "conversations", path, streams)
    snapshot.restore()
    scans.clear()

    assert snapshot.save() is False  # nothing written since the restore
    ddb.update_item(
        TableName="conversations",
        Key={"pk": {"S": "kept"}, "sk": {"S": "1"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "2"}},
    )
    puts = [{"PutRequest": {"Item": {"pk": {"S": f"b{i}"}, "sk": {"S": "1"}}}} for i in range(3)]
    ddb.batch_write_item(RequestItems={"conversations": puts})
    ddb.delete_item(TableName="conversations", Key={"pk": {"S": "b0"}, "sk": {"S": "1"}})
    assert snapshot.save() is True
    assert scans == []
    saved = [json.loads(line) for line in path.read_text().splitlines()]
    key = lambda i: i["pk"]["S"]  # noqa: E731
    assert sorted(saved, key=key) == sorted(ddb.scan(TableName="conversations")["Items"], key=key)
    assert [i["pk"]["S"] for i in sorted(saved, key=key)] == ["b1", "b2", "kept"]
    assert next(i for i in saved if key(i) == "kept")["n"] == {"N": "2"}


def test_a_hand_broken_snapshot_refuses_to_load_naming_the_line_and_stale_temp_files_go(tmp_path) -> None:
    path = tmp_path / "conversations.jsonl"
    path.write_text('{"pk": {"S": "a"}, "sk": {"S": "1"}}\nnot json\n')
    stale = tmp_path / ".conversations.jsonl.4242.tmp"
    stale.write_text("half a snap")
    with pytest.raises(ConfigurationError, match="line 2"):
        TableSnapshot(None, "conversations", path).saved_items()
    assert not stale.exists()
