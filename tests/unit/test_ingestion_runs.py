"""Ingestion runs of many documents, stage by stage on in-memory adapters: each document's outcome is its own (a
corrupt file, an unknown tenant or a newer claim leaves the others alone), small documents share embedding calls
and one index call, and a failed run records its reason on every document it still holds. The integration tests
run the same stages through the real ASL on the local stack."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentplatform.documents import DocumentRegistry, DocumentStatus, Stage, document_id
from agentplatform.errors import DependencyUnavailable
from functions.ingestion import handler
from functions.ingestion.pipeline import Stages
from tests.fakes import MemoryEmbeddings, MemoryObjectStore, MemorySearchIndex, MemoryTable
from tests.fixtures.documents import markdown_doc, text_pdf

BUCKET = "drop"


class CountingIndex(MemorySearchIndex):
    def __init__(self) -> None:
        super().__init__()
        self.replace_calls = 0

    def replace_documents(self, documents: Any) -> None:
        self.replace_calls += 1
        super().replace_documents(documents)


@pytest.fixture
def stages() -> Stages:
    registry = DocumentRegistry(MemoryTable())
    registry.add_tenant("acme")
    registry.add_tenant("globex")
    return Stages(
        drop=MemoryObjectStore(),
        artifacts=MemoryObjectStore(),
        registry=registry,
        index=CountingIndex(),
        embeddings=MemoryEmbeddings(),
    )


def change(key: str, n: int = 1) -> dict[str, Any]:
    return {"bucket": BUCKET, "key": key, "event_type": "Object Created", "claim": f"{key}#{n}"}


def run(stages: Stages, changes: list[dict[str, Any]], name: str = "run-1") -> dict[str, Any]:
    """The state machine's path through the stages (statemachines/ingestion.asl.json)."""
    state = stages.extract({"changes": changes}, name)
    if state["work"]["deletes"]:
        state = stages.delete(state, name)
    if state["work"]["changed"]:
        for step in (stages.chunk, stages.embed, stages.index_chunks):
            state = step(state, name)
        return stages.finalize(state, name)
    return stages.finalize(state, name) if state["work"]["unchanged"] else state


def row(stages: Stages, tenant: str, path: str):
    return stages.registry.get(tenant, document_id(tenant, path))


def test_each_document_of_a_run_ends_on_its_own(stages: Stages) -> None:
    drop = stages.drop
    drop.put("acme/a.md", markdown_doc())
    drop.put("acme/b.txt", b"Hydraulic pump maintenance, step by step.")
    drop.put("globex/c.pdf", text_pdf(2))
    drop.put("acme/broken.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20)
    drop.put("initech/memo.txt", b"A tenant nobody registered.")
    drop.put("acme/.hidden.txt", b"not a document")
    keys = ["initech/memo.txt", "acme/a.md", "acme/b.txt", "globex/c.pdf", "acme/broken.pdf", "acme/.hidden.txt"]
    keys += ["acme/gone.md", "acme/lonely.md.meta.json"]  # an object deleted meanwhile; a sidecar without its file
    state = run(stages, [change(k) for k in keys])

    for tenant, path in [("acme", "a.md"), ("acme", "b.txt"), ("globex", "c.pdf")]:
        r = row(stages, tenant, path)
        assert r.status == DocumentStatus.INDEXED and r.progress == 100 and r.revision == 1, r
        assert stages.index.count(tenant, doc_id=r.doc_id) == r.chunk_count > 0
    broken, stranger = row(stages, "acme", "broken.pdf"), row(stages, "initech", "memo.txt")
    assert broken.status == DocumentStatus.FAILED and broken.reason == "corrupt" and "DocumentRejected" in broken.error
    assert stranger.status == DocumentStatus.FAILED and stranger.reason == "tenant"
    assert row(stages, "acme", "gone.md").status == DocumentStatus.DELETED
    assert row(stages, "acme", ".hidden.txt") is None and row(stages, "acme", "lonely.md") is None
    assert state["outcomes"]["skipped"] == 2 and state["finalized"] == 3
    # The three documents shared one embedding call and one index call.
    assert len(stages.embeddings.calls) == 1 and stages.index.replace_calls == 1


def test_unchanged_documents_skip_the_work_and_changed_ones_replace_their_chunks(stages: Stages) -> None:
    stages.drop.put("acme/a.txt", b"The rotor blades are inspected weekly.")
    stages.drop.put("acme/b.txt", b"The pump is serviced yearly.")
    run(stages, [change("acme/a.txt"), change("acme/b.txt")])
    calls = len(stages.embeddings.calls)
    stages.drop.put("acme/b.txt", b"The pump is serviced monthly now.")
    run(stages, [change("acme/a.txt", 2), change("acme/b.txt", 2)], name="run-2")
    assert len(stages.embeddings.calls) == calls + 1 and stages.embeddings.calls[-1][0].endswith("monthly now.")
    a, b = row(stages, "acme", "a.txt"), row(stages, "acme", "b.txt")
    assert (a.status, a.revision, b.status, b.revision) == ("indexed", 1, "indexed", 2)
    assert stages.index.count("acme", doc_id=b.doc_id) == 1
    assert "monthly" in stages.index.get("acme", f"{b.doc_id}-{b.content_hash[:16]}-0").text


def test_a_document_claimed_by_a_newer_run_is_left_to_it(stages: Stages) -> None:
    stages.drop.put("acme/a.txt", b"Alpha text about flaps.")
    stages.drop.put("acme/b.txt", b"Beta text about slats.")
    state = stages.extract({"changes": [change("acme/a.txt"), change("acme/b.txt")]}, "run-1")
    state = stages.chunk(state, "run-1")
    stages.registry.claim("acme", "b.txt", "acme/b.txt#2", Stage.EXTRACT)  # a newer change to b arrives
    state = stages.embed(state, "run-1")
    state = stages.finalize(stages.index_chunks(state, "run-1"), "run-1")
    assert row(stages, "acme", "a.txt").status == DocumentStatus.INDEXED
    b = row(stages, "acme", "b.txt")
    assert b.status == DocumentStatus.PROCESSING and b.claim == "acme/b.txt#2"  # untouched by the older run
    assert stages.index.count("acme", doc_id=b.doc_id) == 0
    assert [d["path"] for d in state["documents"]] == ["a.txt"]


def test_a_failed_run_fails_every_document_it_holds(stages: Stages) -> None:
    stages.drop.put("acme/a.txt", b"Alpha.")
    stages.drop.put("acme/b.txt", b"Beta.")
    state = stages.chunk(stages.extract({"changes": [change("acme/a.txt"), change("acme/b.txt")]}, "r"), "r")
    stages.embeddings.available = False
    with pytest.raises(DependencyUnavailable):  # retryable: the state machine retries, then catches
        stages.embed(state, "r")
    stages.registry.claim("acme", "b.txt", "acme/b.txt#2", Stage.EXTRACT)  # b has moved on to a newer change
    cause = json.dumps({"errorType": "DependencyUnavailable", "errorMessage": "embedding model unreachable"})
    stages.fail({**state, "failure": {"Error": "DependencyUnavailable", "Cause": cause}}, "r")
    a, b = row(stages, "acme", "a.txt"), row(stages, "acme", "b.txt")
    assert a.status == DocumentStatus.FAILED and a.error == "DependencyUnavailable: embedding model unreachable"
    assert b.status == DocumentStatus.PROCESSING


def test_a_run_that_failed_before_claiming_records_the_failure_on_new_documents(stages: Stages) -> None:
    failure = {"Error": "States.Timeout", "Cause": "the extract stage timed out"}
    stages.fail({"changes": [change("acme/new.txt")], "failure": failure}, "r")
    r = row(stages, "acme", "new.txt")
    assert r.status == DocumentStatus.FAILED and r.error.startswith("States.Timeout") and r.reason == "error"


def sqs_record(message_id: str, key: str | None, size: int = 100, version: str = "v1") -> dict[str, Any]:
    detail = {
        "bucket": {"name": BUCKET},
        "object": {"size": size, "version-id": version, **({"key": key} if key else {})},
    }
    body = json.dumps({"id": f"evt-{message_id}", "detail-type": "Object Created", "detail": detail})
    return {"messageId": message_id, "receiptHandle": "r", "body": body, "attributes": {}, "messageAttributes": {}}


def test_runs_pack_small_changes_together_and_a_large_object_alone() -> None:
    changes = [(f"m{n}", {"key": f"acme/{n}.txt", "claim": f"c{n}"}, 1_000) for n in range(120)]
    changes.append(("big", {"key": "acme/big.pdf", "claim": "cb"}, handler.RUN_MAX_BYTES + 1))
    changes.append(("again", {"key": "acme/7.txt", "claim": "c7-newer"}, 1_000))  # a second change to one key
    packed = handler.runs(changes)
    sizes = sorted(len(r) for r in packed)
    assert sizes == [1, 20, 50, 50]  # 120 distinct small keys, the big one alone
    flat = [c["claim"] for r in packed for _, c, _ in r]
    assert "c7-newer" in flat and "c7" not in flat and len(flat) == len(set(flat)) == 121
    run = packed[0]
    assert handler.run_name([c for _, c, _ in run]) == handler.run_name([c for _, c, _ in reversed(run)])


def test_the_starter_starts_runs_and_returns_malformed_messages(
    monkeypatch: pytest.MonkeyPatch, lambda_context
) -> None:
    from tests.fakes import MemoryWorkflow

    workflow = MemoryWorkflow()
    monkeypatch.setattr(handler, "container", lambda: type("C", (), {"ingestion_workflow": workflow})())
    records = [sqs_record("m1", "acme/a.txt"), sqs_record("m2", None), sqs_record("m3", "acme/b.txt")]
    records.append({**sqs_record("m4", "acme/c.txt"), "body": "not json"})
    out = handler.starter({"Records": records}, lambda_context)
    assert out == {"batchItemFailures": [{"itemIdentifier": "m2"}, {"itemIdentifier": "m4"}]}
    (execution,) = workflow.executions.values()
    assert [c["key"] for c in execution["changes"]] == ["acme/a.txt", "acme/b.txt"]
    handler.starter({"Records": records}, lambda_context)  # the same batch again: the same run, nothing new
    assert len(workflow.executions) == 1


def test_sidecars_are_found_by_listing_a_shared_folder_or_by_a_probe(stages: Stages) -> None:
    stages.drop.put("acme/manuals/a.txt", b"Flap actuator overhaul.")
    stages.drop.put("acme/manuals/a.txt.meta.json", json.dumps({"title": "Flaps", "tags": ["flaps"]}).encode())
    stages.drop.put("acme/manuals/b.txt", b"Slat track lubrication.")
    stages.drop.put("acme/alone/c.txt", b"Cabin pressure controller.")
    stages.drop.put("acme/alone/c.txt.meta.json", json.dumps({"acl_groups": ["mechanics"]}).encode())
    run(stages, [change("acme/manuals/a.txt"), change("acme/manuals/b.txt"), change("acme/alone/c.txt")])
    a, b, c = (row(stages, "acme", p) for p in ("manuals/a.txt", "manuals/b.txt", "alone/c.txt"))
    assert (a.title, a.tags) == ("Flaps", ["flaps"])
    assert (b.title, b.tags) == ("b.txt", [])
    assert c.acl_groups == ["mechanics"]


def test_each_document_is_compared_with_its_own_row_whatever_the_order_of_changes(stages: Stages) -> None:
    stages.drop.put("acme/a.txt", b"Alpha stays the same.")
    stages.drop.put("acme/b.txt", b"Beta before.")
    run(stages, [change("acme/a.txt"), change("acme/b.txt")])
    stages.drop.put("acme/b.txt", b"Beta after.")
    stages.drop.put("initech/x.txt", b"An unknown tenant's file between the two.")
    calls = len(stages.embeddings.calls)
    run(stages, [change("acme/a.txt", 2), change("initech/x.txt"), change("acme/b.txt", 2)], name="run-2")
    embedded = [text for call in stages.embeddings.calls[calls:] for text in call]
    assert len(embedded) == 1 and embedded[0].endswith("Beta after.")  # a is unchanged: not embedded again
    assert row(stages, "acme", "a.txt").revision == 1 and row(stages, "acme", "b.txt").revision == 2


def test_a_file_and_its_sidecar_changed_in_one_run_are_one_document(stages: Stages) -> None:
    stages.drop.put("acme/s.txt", b"Slat tracks are greased monthly.")
    stages.drop.put("acme/s.txt.meta.json", json.dumps({"title": "Slat care", "tags": ["wings"]}).encode())
    stages.drop.put("acme/f.md", b"# Flaps\n\nThe flap actuator is overhauled every 600 hours.")
    run(stages, [change("acme/s.txt"), change("acme/f.md"), change("acme/s.txt.meta.json")])
    s = row(stages, "acme", "s.txt")
    assert (s.status, s.title, s.tags, s.claim) == ("indexed", "Slat care", ["wings"], "acme/s.txt.meta.json#1")
    assert row(stages, "acme", "f.md").status == "indexed" and stages.index.count("acme", doc_id=s.doc_id) == 1
