"""The enterprise retrieval set (eval/enterprise): what bench/enterprise_eval.py and its readers rely on."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from functions.ingestion.extract import extract

SET = Path(__file__).resolve().parents[2] / "eval" / "enterprise"
KINDS = {"exact", "semantic", "mixed"}
FORMATS = {"md", "txt", "html", "docx", "pdf"}
# Near-duplicate pairs, each variant with the words by which a query names it.
NEAR_DUPLICATES = [
    (
        ("products/orbit-admin-guide-v2.md", r"\bv2\b|version 2|\b4\.2"),
        ("products/orbit-admin-guide-v3.md", r"\bv3\b|version 3|\b4\.3"),
    ),
    (
        ("products/trek-t400-product-sheet.html", r"\bT400\b"),
        ("products/trek-t600-product-sheet.html", r"\bT600\b|bigger Trek"),
    ),
    (
        ("finance/travel-expense-policy-us.md", r"\bUS\b|American"),
        ("finance/travel-expense-policy-eu.md", r"\bEU\b|Paris|Amsterdam|Brussels"),
    ),
    (
        ("facilities/lyon-office-guide.html", r"Lyon|French"),
        ("facilities/eindhoven-office-guide.md", r"Eindhoven|Dutch"),
    ),
    (("it/data-retention-schedule-us.txt", r"\bUS\b"), ("it/data-retention-schedule-eu.txt", r"\bEU\b|European")),
]


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (SET / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict]:
    return {m["doc"]: m for m in _jsonl("manifest.jsonl")}


@pytest.fixture(scope="module")
def queries() -> list[dict]:
    return _jsonl("queries.jsonl")


@pytest.fixture(scope="module")
def qrels() -> list[dict]:
    return _jsonl("qrels.jsonl")


def test_documents_are_real_files_in_every_format(manifest):
    files = {str(p.relative_to(SET / "docs")) for p in (SET / "docs").rglob("*") if p.is_file()}
    assert files == set(manifest)
    assert len(manifest) >= 40
    formats = Counter(m["format"] for m in manifest.values())
    assert set(formats) == FORMATS and min(formats.values()) >= 5
    # Several long enough for many chunks (a chunk is about 150 words).
    assert sum(m["words"] >= 2500 for m in manifest.values()) >= 2
    assert sum(m["words"] >= 1300 for m in manifest.values()) >= 4


def test_extraction_finds_the_sections_the_judgements_name(manifest):
    for doc, m in manifest.items():
        extracted = extract((SET / "docs" / doc).read_bytes(), doc)
        if m["format"] == "pdf":
            # PDF text has no headings: each section starts a page, and the manifest says which pages it covers.
            pages = [p for s in m["sections"] for p in s["pages"]]
            assert pages == list(range(1, extracted.pages + 1)), doc
            for section in m["sections"]:
                first = next(s for s in extracted.sections if s.page == section["pages"][0])
                assert section["heading"] in first.text, doc
        else:
            assert [s.heading for s in extracted.sections] == [s["heading"] for s in m["sections"]], doc


def test_ids_unique_and_fields_complete(queries):
    assert len(queries) >= 100
    assert len({q["id"] for q in queries}) == len(queries)
    assert len({q["query"].lower() for q in queries}) == len(queries)
    for q in queries:
        assert q["kind"] in KINDS and q["split"] in {"dev", "test"} and q["query"].strip() and q["answer"].strip()


def test_splits_balanced_by_kind(queries):
    counts = Counter((q["kind"], q["split"]) for q in queries)
    for kind in KINDS:
        assert counts[(kind, "dev")] >= 15
        assert abs(counts[(kind, "dev")] - counts[(kind, "test")]) <= 1


def test_every_query_has_an_answering_passage_and_judged_sections_exist(queries, qrels, manifest):
    answered = {r["query"] for r in qrels if r["grade"] == 2}
    assert {q["id"] for q in queries} == answered
    ids = {q["id"] for q in queries}
    seen = set()
    for r in qrels:
        assert r["query"] in ids and r["grade"] in (1, 2)
        assert r["doc"] in manifest, r
        assert r["section"] in [s["heading"] for s in manifest[r["doc"]]["sections"]], r
        key = (r["query"], r["doc"], r["section"])
        assert key not in seen, r
        seen.add(key)


def test_near_duplicate_pairs_exist_and_a_named_variant_is_the_only_answer(queries, qrels, manifest):
    grades: dict[str, dict[str, int]] = {}
    for r in qrels:
        doc = grades.setdefault(r["query"], {})
        doc[r["doc"]] = max(doc.get(r["doc"], 0), r["grade"])
    named = 0
    for pair in NEAR_DUPLICATES:
        (a, _), (b, _) = pair
        assert [s["heading"] for s in manifest[a]["sections"]] == [s["heading"] for s in manifest[b]["sections"]]
        assert (SET / "docs" / a).read_bytes() != (SET / "docs" / b).read_bytes()
        for q in queries:
            judged = grades[q["id"]]
            if a not in judged and b not in judged:
                continue
            names = [doc for doc, words in pair if re.search(words, q["query"], re.IGNORECASE)]
            if len(names) == 1:
                other = b if names[0] == a else a
                assert judged.get(names[0]) == 2 and judged.get(other, 0) <= 1, q
                named += 1
    assert named >= 20


def test_the_committed_files_are_what_build_py_makes_of_the_sources(manifest, queries, monkeypatch):
    spec = importlib.util.spec_from_file_location("enterprise_build", SET / "build.py")
    build = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, build)  # dataclasses look their module up there
    spec.loader.exec_module(build)
    docs, built_queries = build.load()
    build.assign(built_queries)
    assert [d.path for d in docs] == list(manifest)
    fields = ("id", "query", "split", "answer", "key_facts")
    assert [tuple(q[f] for f in fields) for q in built_queries] == [tuple(q[f] for f in fields) for q in queries]
    for doc in docs:
        data = build.render_pdf(doc)[0] if doc.format == "pdf" else build._RENDER[doc.format](doc)
        assert data == (SET / "docs" / doc.path).read_bytes(), f"{doc.path}: rerun eval/enterprise/build.py"


def test_the_eval_maps_every_chunk_and_paragraph_to_a_manifest_section(manifest):
    from bench import enterprise_eval

    entries = list(manifest.values())
    chunks, units = enterprise_eval.chunks_of_set(entries, lambda texts: [[1.0, 0.0]] * len(texts))
    sections = {(doc, s["heading"]) for doc, m in manifest.items() for s in m["sections"]}
    assert {c.chunk_id for c in chunks} == set(units) and set(units.values()) <= sections
    assert {doc for doc, _ in units.values()} == set(manifest)
    assert len(chunks) > 3 * len(manifest)  # the long documents are many chunks
    assert {(p.doc, p.section) for p in enterprise_eval.paragraphs_of_set(entries)} <= sections


def test_every_key_fact_is_in_a_section_that_answers_the_query(manifest, queries, qrels):
    from bench import enterprise_eval
    from bench.answers_eval import key_fact_hit

    chunks, units = enterprise_eval.chunks_of_set(list(manifest.values()), lambda texts: [[1.0, 0.0]] * len(texts))
    text: dict[tuple[str, str], str] = {}
    for c in chunks:
        text[units[c.chunk_id]] = text.get(units[c.chunk_id], "") + "\n" + c.text
    answering: dict[str, list[tuple[str, str]]] = {}
    for r in qrels:
        if r["grade"] == 2:
            answering.setdefault(r["query"], []).append((r["doc"], r["section"]))
    for q in queries:
        assert q["key_facts"] and all(f.strip() for f in q["key_facts"]), q["id"]
        for fact in q["key_facts"]:
            assert any(key_fact_hit(text[unit], [fact]) for unit in answering[q["id"]]), (q["id"], fact)


def test_the_eval_metrics_on_known_rankings():
    from bench.enterprise_eval import ndcg_at, recall_at

    gains = {"a": 2, "b": 1}
    assert ndcg_at(10, ["a", "b", "c"], gains) == pytest.approx(1.0)
    assert ndcg_at(10, ["c", "a"], gains) == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert recall_at(20, ["b", "x"], gains) == 0.5
    assert ndcg_at(10, ["x"], {}) == 0.0
