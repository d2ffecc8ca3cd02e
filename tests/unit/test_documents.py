"""The document registry over the in-memory table: claims that make the newest run the owner, listing pages."""

from __future__ import annotations

from agentplatform.documents import DocumentRegistry, DocumentStatus, Stage, document_id, locate
from tests.fakes import MemoryTable


def test_the_newest_claim_owns_the_document() -> None:
    registry = DocumentRegistry(MemoryTable())
    first = registry.claim("acme", "a/b.md", "run-1", Stage.EXTRACT, version="v1")
    assert (first.status, first.stage, first.progress, first.claim) == ("processing", "extract", 5, "run-1")
    registry.claim("acme", "a/b.md", "run-2", Stage.EXTRACT, version="v2")
    assert not registry.advance("acme", first.doc_id, "run-1", stage=Stage.CHUNK)  # superseded
    assert registry.advance("acme", first.doc_id, "run-2", stage=Stage.CHUNK)
    row = registry.get("acme", first.doc_id)
    assert (row.stage, row.progress, row.version, row.created_at) == ("chunk", 30, "v2", first.created_at)
    assert registry.get("globex", first.doc_id) is None  # another tenant's partition


def test_listing_pages_and_filters_by_status() -> None:
    registry = DocumentRegistry(MemoryTable())
    for n in range(7):
        registry.claim("acme", f"doc{n}.md", f"run-{n}", Stage.EXTRACT)
        if n % 2:
            registry.advance("acme", document_id("acme", f"doc{n}.md"), f"run-{n}", status=DocumentStatus.INDEXED)
    page, cursor = registry.list("acme", limit=4)
    rest, end = registry.list("acme", limit=4, cursor=cursor)
    assert len(page) == 4 and len(rest) == 3 and end is None
    assert {r.path for r in page + rest} == {f"doc{n}.md" for n in range(7)}
    indexed, _ = registry.list("acme", status=DocumentStatus.INDEXED, limit=10)
    assert sorted(r.path for r in indexed) == ["doc1.md", "doc3.md", "doc5.md"]
    assert registry.list("globex") == ([], None)


def test_tenants_and_keys() -> None:
    registry = DocumentRegistry(MemoryTable())
    assert not registry.known_tenant("acme")
    registry.add_tenant("acme")
    assert registry.known_tenant("acme")
    assert locate("acme/a/b.pdf.meta.json") == ("acme", "a/b.pdf")
    assert document_id("acme", "a.md") != document_id("globex", "a.md")
