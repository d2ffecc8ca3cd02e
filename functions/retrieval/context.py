"""Dedupe and context assembly: turn ranked hits into a citable context that fits a token budget."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentplatform.inference import estimate_tokens
from agentplatform.retrieval import AssembledContext, Citation, ContextPiece
from agentplatform.search import Chunk, SearchHit

NEAR_DUPLICATE = 0.9  # word-trigram Jaccard above which two chunks say the same thing
_WORDS = re.compile(r"\w+")
_FIGURES = re.compile(r"\w*\d\w*")  # words holding a digit: amounts, limits, versions, codes


def dedupe(hits: Sequence[SearchHit]) -> list[SearchHit]:
    """Drop hits whose text repeats a better hit's: the same content hash, or near-identical wording with the
    same figures (the same paragraph in two documents, a re-uploaded copy under another path). Near-identical
    wording with other figures is another version of the facts (a guide's v2 and v3, a US and an EU policy):
    both stay, or a question about one would be answered from the other."""
    kept: list[SearchHit] = []
    seen: list[tuple[set[tuple[str, ...]], set[str]]] = []  # each kept hit's shingles and figures
    hashes: set[str] = set()
    for hit in hits:
        if hit.chunk.content_hash and hit.chunk.content_hash in hashes:
            continue
        mine = (_shingles(hit.chunk.text), set(_FIGURES.findall(hit.chunk.text.lower())))
        if any(_jaccard(mine[0], theirs) >= NEAR_DUPLICATE and mine[1] == figures for theirs, figures in seen):
            continue
        kept.append(hit)
        seen.append(mine)
        if hit.chunk.content_hash:
            hashes.add(hit.chunk.content_hash)
    return kept


def citation(chunk: Chunk) -> Citation:
    return Citation(
        doc_id=chunk.doc_id,
        doc_version=chunk.doc_version,
        path=chunk.path,
        title=chunk.title,
        section=chunk.section,
        page=chunk.page,
    )


@dataclass
class _Piece:
    chunks: list[Chunk] = field(default_factory=list)

    def adjoins(self, chunk: Chunk) -> bool:
        first = self.chunks[0]
        return (
            chunk.doc_id == first.doc_id
            and chunk.doc_version == first.doc_version
            and any(abs(chunk.ordinal - c.ordinal) == 1 for c in self.chunks)
        )

    def text(self) -> str:
        """The chunks in document order, their overlaps (by character offsets) written once."""
        ordered = sorted(self.chunks, key=lambda c: c.ordinal)
        text, end = ordered[0].text, ordered[0].end
        for chunk in ordered[1:]:
            overlap = max(0, end - chunk.start) if chunk.end > chunk.start else 0
            text += ("" if overlap else "\n") + chunk.text[overlap:]
            end = max(end, chunk.end)
        return text


def assemble(hits: Sequence[SearchHit], budget: int) -> AssembledContext:
    """Most relevant first; a hit next to one already taken (same document version, neighbouring chunk) joins
    it as one piece; pieces are added while they fit the budget, the first one cut to fit if it alone does not."""
    pieces: list[_Piece] = []
    for hit in hits:
        home = next((p for p in pieces if p.adjoins(hit.chunk)), None)
        if home is None:
            pieces.append(_Piece([hit.chunk]))
        else:
            home.chunks.append(hit.chunk)
    out: list[ContextPiece] = []
    used = 0
    for piece in pieces:
        if budget <= 0:
            break
        first = min(piece.chunks, key=lambda c: c.ordinal)
        cite = citation(first)
        pages = sorted({c.page for c in piece.chunks if c.page is not None})
        header = f"[{len(out) + 1}] {_source(cite, pages)}\n"
        body = piece.text()
        tokens = estimate_tokens(header + body)
        if used + tokens > budget:
            if out:
                continue  # a smaller, less relevant piece may still fit
            body = body[: max(0, (budget - estimate_tokens(header)) * 4)]
            tokens = estimate_tokens(header + body)
            if not body:
                break
        used += tokens
        out.append(
            ContextPiece(
                ref=len(out) + 1,
                text=header + body,
                tokens=tokens,
                chunk_ids=[c.chunk_id for c in sorted(piece.chunks, key=lambda c: c.ordinal)],
                citation=cite,
            )
        )
    return AssembledContext(text="\n\n".join(p.text for p in out), tokens=used, budget=budget, pieces=out)


def _source(cite: Citation, pages: list[int]) -> str:
    parts = [cite.title or cite.path or cite.doc_id]
    if cite.path and cite.path != parts[0]:
        parts.append(cite.path)
    if pages:
        parts.append(f"p. {pages[0]}" if len(pages) == 1 else f"pp. {pages[0]}-{pages[-1]}")
    if cite.section:
        parts.append(f"section: {cite.section}")
    return " | ".join(parts)


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = [w.lower() for w in _WORDS.findall(text)]
    if len(words) < 3:
        return {tuple(words)}
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def _jaccard(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0
