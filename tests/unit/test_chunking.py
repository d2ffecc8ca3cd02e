"""Token-aware chunking with the embedding model's own tokenizer: sizes, overlaps, structure, offsets."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from functions.ingestion.chunking import ChunkSpec, chunk, word_piece_tokenizer
from functions.ingestion.extract import Extracted, Section, extract
from functions.ingestion.pipeline import passage_text
from tests.fixtures.documents import paragraphs, text_pdf

TOKENIZER = word_piece_tokenizer()


def document(*sections: tuple[str, int | None, str]) -> Extracted:
    """An extracted document made of (heading, page, text) sections, laid out as extract() lays them out."""
    built, offset = [], 0
    for heading, page, text in sections:
        built.append(Section(text=text, heading=heading, page=page, start=offset))
        offset += len(text) + 2
    return Extracted(
        title="", text="\n\n".join(s.text for s in built), sections=built, content_type="text/plain", pages=None
    )


def check(doc: Extracted, chunks: list[ChunkSpec], max_tokens: int = 200, overlap: int = 40) -> None:
    """What every chunking must satisfy: offsets, counts, sizes, sections, coverage."""
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for section in doc.sections:
        own = [c for c in chunks if section.start <= c.start < section.end]
        covered: set[int] = set()
        for index, c in enumerate(own):
            assert c.text == doc.text[c.start : c.end]
            assert c.text.strip() == c.text != ""
            assert c.end <= section.end  # never crosses into the next section
            assert (c.heading, c.page) == (section.heading, section.page)
            assert c.tokens == TOKENIZER.count(c.text)
            # Only a section's last chunk may exceed max_tokens: a tiny tail merged into it.
            assert c.tokens <= (max_tokens + overlap if index == len(own) - 1 else max_tokens)
            covered.update(range(c.start, c.end))
        missed = [i for i in range(section.start, section.end) if i not in covered]
        assert all(doc.text[i].isspace() for i in missed)  # every word of the section is in a chunk


def overlap_tokens(first: ChunkSpec, second: ChunkSpec, doc: Extracted) -> int:
    return TOKENIZER.count(doc.text[second.start : first.end]) if second.start < first.end else 0


def test_the_tokenizer_is_the_models_wordpiece_without_special_tokens_truncation_or_padding() -> None:
    assert word_piece_tokenizer() is TOKENIZER
    assert TOKENIZER.count("Tokenization works") == 3  # token ##ization works
    assert TOKENIZER.offsets("Tokenization works") == [(0, 5), (5, 12), (13, 18)]
    long = "word " * 5000  # the model file truncates at 128; long texts are encoded in pieces
    assert TOKENIZER.count(long) == 5000
    assert TOKENIZER.offsets(long)[-2:] == [(24990, 24994), (24995, 24999)]
    assert TOKENIZER.count("") == 0


def test_a_long_pdf_chunks_within_limits_with_overlaps_and_pages() -> None:
    doc = extract(text_pdf(12), "report.pdf")
    chunks = chunk(doc, TOKENIZER)
    check(doc, chunks)
    assert {c.page for c in chunks} == set(range(1, 13))
    assert sum(c.tokens for c in chunks) / len(chunks) > 150  # chunks are filled, not fragments
    same_page = [(a, b) for a, b in itertools.pairwise(chunks) if a.page == b.page]
    assert same_page
    overlaps = [overlap_tokens(a, b, doc) for a, b in same_page]
    assert all(20 <= n <= 40 for n in overlaps)
    # Chunks cut at sentence ends where they can, and their overlaps start at sentence starts.
    assert sum(a.text[-1] in ".?!" for a, _ in same_page) / len(same_page) > 0.9
    assert sum(b.text[0].isupper() for _, b in same_page) / len(same_page) > 0.9


def test_chunks_never_cross_sections_and_carry_their_heading() -> None:
    doc = document(("Intro", None, "Short intro."), ("Setup", None, "Install it. Then run it."), ("", None, "Tail."))
    chunks = chunk(doc, TOKENIZER)
    check(doc, chunks)
    assert [(c.heading, c.text) for c in chunks] == [
        ("Intro", "Short intro."),
        ("Setup", "Install it. Then run it."),
        ("", "Tail."),
    ]


def test_whole_paragraphs_are_packed_before_sentences() -> None:
    text = "\n\n".join(paragraphs(seed=3, count=12, sentences=(3, 4)))  # ~60-token paragraphs
    doc = document(("Policy", None, text))
    chunks = chunk(doc, TOKENIZER)
    check(doc, chunks)
    assert len(chunks) > 3
    for c in chunks[:-1]:
        assert doc.text[c.end : c.end + 2] == "\n\n"  # each chunk ends where a paragraph ends


def test_a_paragraph_longer_than_max_is_split_at_sentences() -> None:
    text = " ".join(paragraphs(seed=5, count=1, sentences=(40, 40)))
    doc = document(("", 1, text))
    chunks = chunk(doc, TOKENIZER, max_tokens=100, overlap=20)
    check(doc, chunks, max_tokens=100, overlap=20)
    assert len(chunks) > 5
    assert all(c.text[-1] in ".?!" for c in chunks)


def test_text_without_sentences_is_split_between_words() -> None:
    text = " ".join(f"item{n} value{n * 7}" for n in range(400))
    doc = document(("Log", None, text))
    chunks = chunk(doc, TOKENIZER, max_tokens=50, overlap=10)
    check(doc, chunks, max_tokens=50, overlap=10)
    pairs = list(itertools.pairwise(chunks))
    assert len(pairs) > 10
    assert all(doc.text[b.start - 1] == " " and doc.text[a.end] == " " for a, b in pairs)  # no word is cut
    assert all(1 <= overlap_tokens(a, b, doc) <= 10 for a, b in pairs)


def test_a_word_longer_than_max_is_split_between_its_word_pieces() -> None:
    word = "".join(f"zq{n}x" for n in range(18))  # 80 letters and digits, 72 word pieces (at 100, one [UNK])
    doc = document(("", None, f"Before. {word} after."))
    chunks = chunk(doc, TOKENIZER, max_tokens=20, overlap=4)
    check(doc, chunks, max_tokens=20, overlap=4)
    assert len(chunks) > 3
    assert all(word.startswith(c.text) or c.text in word or word.endswith(c.text) for c in chunks[1:-1])


def test_a_tiny_tail_joins_the_chunk_before_it() -> None:
    sentences = paragraphs(seed=9, count=1, sentences=(30, 30))[0]
    words = sentences.split()
    # Grow the text until it is just past max_tokens: cutting it would leave a tail of a few tokens.
    text = next(t for t in (" ".join(words[:n]) for n in range(20, len(words))) if TOKENIZER.count(t) > 205)
    doc = document(("", None, text))
    chunks = chunk(doc, TOKENIZER)
    check(doc, chunks)
    assert len(chunks) == 1 and chunks[0].tokens > 200


def test_no_overlap_means_adjacent_chunks() -> None:
    doc = document(("", None, " ".join(paragraphs(seed=1, count=10))))
    chunks = chunk(doc, TOKENIZER, max_tokens=64, overlap=0)
    check(doc, chunks, max_tokens=64, overlap=0)
    assert all(a.end <= b.start for a, b in itertools.pairwise(chunks))


def test_chunking_is_deterministic() -> None:
    doc = extract(text_pdf(3), "report.pdf")
    assert chunk(doc, TOKENIZER) == chunk(doc, TOKENIZER)
    assert chunk(doc, word_piece_tokenizer(), max_tokens=120, overlap=30) == chunk(
        doc, TOKENIZER, max_tokens=120, overlap=30
    )


def test_abbreviations_do_not_end_sentences() -> None:
    text = "Dr. Smith met J. R. Doe at 5 p.m. on Main St. in the U.S. yesterday. " * 20
    doc = document(("", None, text.strip()))
    chunks = chunk(doc, TOKENIZER, max_tokens=60, overlap=10)
    check(doc, chunks, max_tokens=60, overlap=10)
    assert all(c.text.endswith("yesterday.") for c in chunks)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_invalid_sizes_are_refused(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk(document(("", None, "text")), TOKENIZER, max_tokens=max_tokens, overlap=overlap)


def test_what_is_embedded_is_the_title_and_the_section_path_then_the_text() -> None:
    doc = extract(
        b"# Fleet Guide\n## Install\n### Proxy\nSet HTTPS_PROXY first.\n## Use\nOpen it.\n\nKeep it open.", "guide.md"
    )
    specs = chunk(doc, TOKENIZER)
    assert [tuple(s.heading_path) for s in specs] == [("Fleet Guide", "Install", "Proxy"), ("Fleet Guide", "Use")]
    # the title is said once though the path opens with it; a format without levels falls back to the heading
    assert passage_text("Fleet Guide", specs[0]) == "Fleet Guide - Install - Proxy\n" + specs[0].text
    flat = ChunkSpec(ordinal=0, text="Text.", heading="Setup", page=None, start=0, end=5, tokens=2)
    assert passage_text("Notes", flat) == "Notes - Setup\nText."
    assert passage_text("", replace(flat, heading="")) == "Text."
