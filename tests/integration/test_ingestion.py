"""The drop folder end to end on the local stack: a real folder mirrored into the moto drop bucket, S3 events
through EventBridge and SQS to the starter, the real ingestion ASL calling the real stage handlers, the real
embedding model, the embedded search index; then search and the documents API over HTTP."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from agentplatform.bootstrap import container
from agentplatform.documents import DocumentStatus, document_id
from tests.fixtures.documents import docx_doc, html_doc, markdown_doc, text_pdf
from tests.integration.conftest import bearer, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TERMINAL = {DocumentStatus.INDEXED, DocumentStatus.FAILED, DocumentStatus.DELETED}


@pytest.fixture(scope="module")
def runtime_overrides():
    return {"LOCAL_MODELS": "embedding", "LOCAL_DROP_POLL_S": 0.2}


@pytest.fixture(scope="module")
def ready(runtime):
    assert runtime.model_server.wait_ready(), runtime.model_server.health()
    return runtime


def drop(rt, tenant: str, path: str, content: bytes | str) -> Path:
    target = rt.settings.drop_dir / tenant / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content.encode() if isinstance(content, str) else content)
    return target


def record(tenant: str, path: str):
    return container().registry.get(tenant, document_id(tenant, path))


def settled(tenant: str, paths: list[str], timeout_s: float = 240) -> dict[str, Any]:
    def done():
        rows = {p: record(tenant, p) for p in paths}
        return rows if all(r is not None and r.status in TERMINAL for r in rows.values()) else None

    return wait_for(done, timeout_s=timeout_s, interval_s=0.5)


def search(rt, tenant: str, query: str, **body) -> list[dict[str, Any]]:
    response = requests.post(
        f"{rt.http_url}/v1/search", json={"query": query, **body}, headers=bearer(rt, tenant), timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def dlq_depth(rt) -> int:
    sqs = rt.client("sqs")
    url = rt.provisioned.value("queue:ingest", "url").replace("-ingest", "-ingest-dlq")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.mark.timeout(900)
def test_mixed_files_for_two_tenants(ready):
    files = {
        ("acme", "guides/turbine.md"): markdown_doc(),
        ("acme", "notes/oil.txt"): "Oil pressure must stay in the green arc during climb and cruise.",
        ("acme", "web/page.html"): html_doc(),
        ("acme", "reports/report.pdf"): text_pdf(3),
        ("acme", "specs/spec.docx"): docx_doc(),
        ("acme", "broken/corrupt.pdf"): b"%PDF-1.7\n" + bytes(range(256)) * 20,
        ("acme", "misc/data.xyz"): "no one reads this format",
        ("globex", "secret/plan.md"): "# Plan\n\nGlobex flutter suppression program for swept wings.",
        ("initech", "memo.txt"): "A tenant this platform does not know.",
    }
    # 50 files in all, as a user's first drop might be: 41 more of every format, for both tenants.
    formats = [
        ("md", lambda n: f"# Part {n}\n\nMaintenance step {n}: inspect seal {n} and log it."),
        ("txt", lambda n: f"Checklist {n}. Torque bolt {n} to the value in table {n}."),
        ("html", lambda _: html_doc()),
        ("pdf", lambda n: text_pdf(2, title=f"Bulletin {n}")),
        ("docx", lambda _: docx_doc()),
    ]
    for n in range(41):
        extension, content = formats[n % len(formats)]
        files[("acme" if n % 2 else "globex", f"bulk/{extension}/file-{n}.{extension}")] = content(n)
    assert len(files) == 50
    for (tenant, path), content in files.items():
        drop(ready, tenant, path, content)
    rows = {}
    for tenant in ("acme", "globex", "initech"):
        paths = [p for t, p in files if t == tenant]
        rows |= {(tenant, p): r for p, r in settled(tenant, paths, timeout_s=600).items()}

    failed = {key: r for key, r in rows.items() if r.status == DocumentStatus.FAILED}
    assert set(failed) == {("acme", "broken/corrupt.pdf"), ("acme", "misc/data.xyz"), ("initech", "memo.txt")}
    for r in failed.values():
        assert r.error and r.reason, r
    assert "unknown tenant" in failed[("initech", "memo.txt")].error
    indexed = [r for r in rows.values() if r.status == DocumentStatus.INDEXED]
    assert len(indexed) == 47 and all(r.chunk_count > 0 and r.progress == 100 for r in indexed)
    assert not [r for r in rows.values() if r.status == DocumentStatus.PROCESSING]  # nothing stuck
    assert dlq_depth(ready) == 0

    hits = search(ready, "acme", "oil pressure green arc")
    assert hits[0]["citation"]["path"] == "notes/oil.txt"
    assert all(h["citation"]["path"] != "secret/plan.md" for h in search(ready, "acme", "flutter suppression"))
    pdf = [h for h in search(ready, "acme", "page two", top_k=20) if h["citation"]["path"] == "reports/report.pdf"]
    assert pdf and all(h["citation"]["page"] for h in pdf)


def test_changed_file_replaces_and_deleted_file_leaves(ready):
    target = drop(ready, "acme", "lifecycle/rotor.md", "# Rotor\n\nThe rotor blades are inspected weekly.")
    settled("acme", ["lifecycle/rotor.md"])
    time.sleep(0.3)  # a new modification time for the mirror to notice
    target.write_text("# Rotor\n\nThe rotor hub is greased every month.")
    wait_for(lambda: (r := record("acme", "lifecycle/rotor.md")) and r.revision == 2 and r.status == "indexed", 240)
    texts = [
        h["text"] for h in search(ready, "acme", "rotor", top_k=20) if h["citation"]["path"] == "lifecycle/rotor.md"
    ]
    assert texts and all("greased" in t and "weekly" not in t for t in texts)

    target.unlink()
    wait_for(lambda: record("acme", "lifecycle/rotor.md").status == DocumentStatus.DELETED, 120)
    assert not [
        h for h in search(ready, "acme", "rotor hub greased", top_k=20) if h["citation"]["path"] == "lifecycle/rotor.md"
    ]
    assert container().search_index.count("acme", doc_id=document_id("acme", "lifecycle/rotor.md")) == 0


def test_repeated_and_out_of_order_events_end_at_the_newest_object(ready):
    s3 = ready.client("s3")
    bucket = ready.provisioned.value("bucket:drop", "name")
    key = "acme/events/pump.txt"
    old = s3.put_object(Bucket=bucket, Key=key, Body=b"The pump runs at low speed.")["VersionId"]
    new = s3.put_object(Bucket=bucket, Key=key, Body=b"The pump runs at full speed now.")["VersionId"]

    def event(version: str) -> str:
        return json.dumps(
            {
                "id": f"evt-{version}",
                "source": "aws.s3",
                "detail-type": "Object Created",
                "detail": {"bucket": {"name": bucket}, "object": {"key": key, "version-id": version}},
            }
        )

    queue = ready.provisioned.value("queue:ingest", "url")
    sqs = ready.client("sqs")
    for body in [event(new)] * 5 + [event(old)] * 2:  # duplicates, then the older version last
        sqs.send_message(QueueUrl=queue, MessageBody=body)
    wait_for(lambda: (r := record("acme", "events/pump.txt")) and r.status == "indexed" and r.version == new, 240)
    time.sleep(3)  # let every queued run finish
    row = record("acme", "events/pump.txt")
    assert row.status == "indexed" and row.version == new
    doc = document_id("acme", "events/pump.txt")
    chunks = container().search_index.count("acme", doc_id=doc)
    hits = [h for h in search(ready, "acme", "pump speed", top_k=20) if h["citation"]["doc_id"] == doc]
    assert chunks == 1 and len(hits) == 1 and "full speed" in hits[0]["text"]


def test_documents_api_is_tenant_scoped(ready):
    body = {
        "path": "api/uploaded.md",
        "content_base64": base64.b64encode(b"# Uploaded\n\nHydraulic fluid is checked at every A-check.").decode(),
        "tags": ["hydraulics"],
    }
    created = requests.post(f"{ready.http_url}/v1/documents", json=body, headers=bearer(ready, "acme"), timeout=30)
    assert created.status_code == 202, created.text
    doc_id = created.json()["id"]
    assert created.headers["location"] == f"/v1/documents/{doc_id}"
    wait_for(
        lambda: (
            requests.get(f"{ready.http_url}/v1/documents/{doc_id}", headers=bearer(ready, "acme"), timeout=30).json()[
                "status"
            ]
            == "indexed"
        ),
        240,
    )
    listed = requests.get(f"{ready.http_url}/v1/documents?status=indexed", headers=bearer(ready, "acme"), timeout=30)
    assert doc_id in [d["id"] for d in listed.json()["documents"]]
    assert search(ready, "acme", "hydraulic fluid", filters={"tags": ["hydraulics"]})[0]["citation"]["doc_id"] == doc_id

    other = bearer(ready, "globex")
    assert requests.get(f"{ready.http_url}/v1/documents/{doc_id}", headers=other, timeout=30).status_code == 404
    assert requests.delete(f"{ready.http_url}/v1/documents/{doc_id}", headers=other, timeout=30).status_code == 404
    theirs = requests.get(f"{ready.http_url}/v1/documents", headers=other, timeout=30).json()["documents"]
    assert doc_id not in [d["id"] for d in theirs]

    gone = requests.delete(f"{ready.http_url}/v1/documents/{doc_id}", headers=bearer(ready, "acme"), timeout=30)
    assert gone.status_code == 202
    wait_for(lambda: record("acme", "api/uploaded.md").status == DocumentStatus.DELETED, 120)
