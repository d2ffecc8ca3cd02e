"""The search domain: chunks, queries, hits, and the semantics every SearchIndex adapter shares.

One definition of relevance for every engine: the same analysis (tokens split on anything that is not a letter
or digit, lowercased, stopwords removed, Snowball English stems; identifiers also whole, `identifier_terms`), the
same BM25 query (the chunk text, plus its title, section heading and identifier terms at the request's Boosts),
the same vector score (`(1 + cosine) / 2`, OpenSearch's Lucene cosine score), and the same fusion as
OpenSearch's search pipelines (`fuse`): the normalization processor's min-max + weighted arithmetic mean, or the
score-ranker processor's reciprocal rank fusion. The OpenSearch adapter sends these as index analyzers, query
bodies and a search pipeline; the embedded engine and the fake compute them.
"""

from __future__ import annotations

import math
import re
import statistics
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from operator import itemgetter
from typing import Any

from agentplatform.errors import ValidationFailed

# The query's weight on the title field relative to the chunk text (measured on Cranfield: docs/retrieval.md).
TITLE_BOOST = 0.5
# The query's weight on the section heading (contextual chunks) and on the identifier field (identifier-aware
# matching), relative to the chunk text; 0 leaves the clause out. Chosen on the enterprise dev half, kept where
# they won on the held-out half (bench/fusion_tune.py, docs/retrieval.md): the heading did not. The identifier
# clause is light (it was 4.0 before the retrieval service rewarded identifier matches after fusion): it brings
# "E4012" to `E-4012` and breaks ties, and the reward does the rest.
SECTION_BOOST = 0.0
IDENTIFIER_BOOST = 0.5
# Tokens longer than this are dropped (base64 blobs, hashes): tantivy's remove_long, OpenSearch's length filter.
MAX_TOKEN_CHARS = 40
# English function words. Questions are how users search an agent platform, and their question words
# ("what", "how", "which", ...) carry no topic; a short stoplist leaves them to dominate short queries.
_STOPWORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her
    here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
    now of off on once only or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
"""
STOPWORDS: tuple[str, ...] = tuple(_STOPWORD_TEXT.split())
_STOPWORD_SET = frozenset(STOPWORDS)
# A keyword query is a term typed, not a question asked: at most this many terms (identifiers, and the other runs
# of letters and digits, as both engines split text), none of them a function word ("Corvane Robotics SAS",
# "E-3301", "PPO plan"). The retrieval service rewards a hybrid hit whose chunk holds every term of one (chosen on
# the enterprise dev half: docs/retrieval.md).
KEYWORD_QUERY_TERMS = 3
_WORD = re.compile(r"[^\W_]+")
# How many candidates each sub-query (BM25, vector) contributes to fusion: OpenSearch's advice is 100-200.
DEFAULT_CANDIDATES = 100
MAX_TOP_K = 100


# Identifiers: error codes, part numbers, ticket ids, section numbers, config keys, host names and addresses
# (E-4012, BRK-220-S, INC-2291, 4.2.1, max_retry_count, vpn.corvane.com, it-help@corvane.com). A run of
# letters/digits joined by - _ . / or @, or letters and digits run together, holding a digit, an underscore, an
# @ or two dots (so "e.g.", "and/or" or "well-known" are not identifiers).
_IDENTIFIER = re.compile(r"[^\W_]+(?:[-_./@][^\W_]+)+|[^\W\d_]+\d[^\W_]*|\d+[^\W\d_][^\W_]*")
_IDENTIFIER_SEPARATORS = re.compile(r"[-_./@]")
_DECIMAL = re.compile(r"\d+\.\d+")  # a number, not an identifier (a version has two dots: 4.2.1)


def identifier_terms(text: str) -> list[str]:
    """The identifier field's terms of `text`, in order: each identifier lowercased whole ("brk-220-s") and
    without its separators ("brk220s"), so "BRK220S" finds it too. Its parts ("brk", "220") are the text field's.

    Computed here, once for every engine: the OpenSearch index and the embedded engine store these terms in a
    whitespace-analyzed field, so identifier matching means the same thing on both."""
    terms: list[str] = []
    for match in _identifier_matches(text):
        word = match.group(0).lower()
        compact = _IDENTIFIER_SEPARATORS.sub("", word)
        for term in (word, compact) if compact != word else (word,):
            if len(term) < MAX_TOKEN_CHARS:
                terms.append(term)
    return terms


def _identifier_matches(text: str) -> list[re.Match[str]]:
    """Where `text` names identifiers (see identifier_terms)."""
    found = []
    for match in _IDENTIFIER.finditer(text):
        word = match.group(0).lower()
        named = any(c.isdigit() for c in word) or "_" in word or "@" in word or word.count(".") >= 2
        if named and not _DECIMAL.fullmatch(word):
            found.append(match)
    return found


@dataclass(frozen=True)
class KeywordQuery:
    """What a keyword query asks a chunk to hold: its identifiers (without separators, so "E3301" and "E-3301"
    are one) and its other words, lowercased."""

    identifiers: frozenset[str]
    words: frozenset[str]


def keyword_query(text: str, most_terms: int = KEYWORD_QUERY_TERMS) -> KeywordQuery | None:
    """`text` as a keyword query ("E-3301", "Corvane Robotics SAS", "E-3307 certificate rejected"), or None for a
    question or a longer query ("what does E-3301 mean")."""
    text = unicodedata.normalize("NFC", text)  # as ingestion writes chunks
    identifiers, rest = [], text
    for match in _identifier_matches(text):
        compact = _IDENTIFIER_SEPARATORS.sub("", match.group(0).lower())
        if len(compact) < MAX_TOKEN_CHARS:  # a longer one is in no chunk's identifier terms
            identifiers.append(compact)
        rest = rest.replace(match.group(0), " ")
    words = [w for w in _WORD.findall(rest.lower()) if len(w) < MAX_TOKEN_CHARS]
    terms = len(identifiers) + len(words)
    if not terms or terms > most_terms or not _STOPWORD_SET.isdisjoint(words):
        return None
    return KeywordQuery(frozenset(identifiers), frozenset(words))


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    BM25 = "bm25"
    VECTOR = "vector"


class FusionTechnique(StrEnum):
    MIN_MAX = "min_max"  # normalization-processor: min_max + arithmetic_mean
    Z_SCORE = "z_score"  # normalization-processor: z_score + arithmetic_mean
    RRF = "rrf"  # score-ranker-processor: reciprocal rank fusion


# OpenSearch's min-max normalization gives the lowest score this (not 0) and a lone score 1.0; its z_score
# normalization gives it to every score at or below the mean.
MIN_MAX_FLOOR = 0.001


@dataclass(frozen=True)
class Fusion:
    technique: FusionTechnique = FusionTechnique.MIN_MAX
    weights: tuple[float, float] = (0.5, 0.5)  # (bm25, vector); they sum to 1, as OpenSearch requires
    rank_constant: int = 60

    def __post_init__(self) -> None:
        if len(self.weights) != 2 or any(w < 0 or w > 1 for w in self.weights) or abs(sum(self.weights) - 1) > 1e-6:
            raise ValueError("fusion weights are two numbers in [0, 1] that sum to 1")
        if self.rank_constant < 1:
            raise ValueError("the rank constant is at least 1")


@dataclass(frozen=True)
class Boosts:
    """The BM25 query's weight on each field besides the chunk text (1.0); a weight of 0 leaves its clause out."""

    title: float = TITLE_BOOST
    section: float = SECTION_BOOST
    identifiers: float = IDENTIFIER_BOOST

    def __post_init__(self) -> None:
        if min(self.title, self.section, self.identifiers) < 0:
            raise ValueError("field boosts are at least 0")

    def fields(self, text: str) -> list[tuple[str, str, float]]:
        """(field, query text, boost) of each clause of the BM25 query for `text`, the chunk text first."""
        clauses = [("text", text, 1.0), ("title", text, self.title), ("section", text, self.section)]
        if self.identifiers:
            clauses.append(("identifiers", " ".join(identifier_terms(text)), self.identifiers))
        return [(name, query, boost) for name, query, boost in clauses if boost and query.strip()]


@dataclass(frozen=True)
class Chunk:
    """One searchable piece of one version of one document, with everything a citation needs."""

    chunk_id: str
    tenant: str
    doc_id: str
    doc_version: str
    text: str
    vector: Sequence[float] = ()
    title: str = ""
    path: str = ""
    section: str = ""
    page: int | None = None
    ordinal: int = 0  # position in the document: neighbouring chunks merge in context assembly
    start: int = 0  # character offsets into the extracted document text
    end: int = 0
    content_hash: str = ""
    tags: tuple[str, ...] = ()
    acl_groups: tuple[str, ...] = ()  # empty: every principal of the tenant may read it
    metadata: Mapping[str, str] = field(default_factory=dict)

    def without_vector(self) -> Chunk:
        return replace(self, vector=())

    def path_prefixes(self) -> list[str]:
        """Every folder prefix of the path ("a/", "a/b/"), indexed so a prefix filter is an exact term match."""
        parts = self.path.split("/")[:-1]
        return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]

    def acl_terms(self) -> list[str]:
        return list(self.acl_groups) or [PUBLIC_ACL]


PUBLIC_ACL = "*"  # the ACL term of a chunk every principal of its tenant may read


@dataclass(frozen=True)
class SearchFilters:
    """Filters applied inside the index before top-k (never after: a filtered query keeps its recall)."""

    doc_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # any of
    path_prefix: str | None = None  # a folder, "reports/2024/"
    # The caller's groups: chunks without ACL groups, plus those sharing one of these.
    acl_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class SearchRequest:
    tenant: str
    text: str
    vector: Sequence[float] | None = None
    mode: SearchMode = SearchMode.HYBRID
    top_k: int = 10
    filters: SearchFilters = SearchFilters()
    candidates: int = DEFAULT_CANDIDATES
    fusion: Fusion = Fusion()
    boosts: Boosts = Boosts()

    def __post_init__(self) -> None:
        problems = []
        if not self.tenant:
            problems.append("tenant is required")
        if self.mode != SearchMode.VECTOR and not self.text.strip():
            problems.append("text is required for bm25 and hybrid search")
        if self.mode != SearchMode.BM25 and (self.vector is None or len(self.vector) == 0):
            problems.append("vector is required for vector and hybrid search")
        if not 1 <= self.top_k <= MAX_TOP_K:
            problems.append(f"top_k is between 1 and {MAX_TOP_K}")
        if self.candidates < self.top_k:
            problems.append("candidates is at least top_k")
        if problems:
            raise ValidationFailed("; ".join(problems))

    @property
    def depth(self) -> int:
        """How many results each sub-query returns; single-mode searches need only top_k."""
        return self.candidates if self.mode == SearchMode.HYBRID else self.top_k


@dataclass(frozen=True)
class SearchHit:
    chunk: Chunk  # without its vector
    score: float
    # Each sub-query's own score where the chunk was its candidate (single-mode searches; debugging).
    bm25: float | None = None
    vector: float | None = None  # vector_score(cosine)


def vector_score(cosine: float) -> float:
    """OpenSearch's Lucene-engine score for cosine similarity: monotone in cosine, in [0, 1]."""
    return (1.0 + cosine) / 2.0


def fuse(
    bm25: Sequence[tuple[str, float]], vector: Sequence[tuple[str, float]], fusion: Fusion
) -> list[tuple[str, float]]:
    """Fuse two ranked lists of (id, score), best first, as OpenSearch's search pipelines do; best first, ties
    by id."""
    scores: dict[str, float] = {}
    if fusion.technique == FusionTechnique.RRF:
        for ranked in (bm25, vector):
            for rank, (key, _) in enumerate(ranked, start=1):
                scores[key] = scores.get(key, 0.0) + 1.0 / (fusion.rank_constant + rank)
    else:
        # arithmetic_mean: the weighted sum divided by the weights' sum, which is 1; a missing score counts 0.
        normalize = _z_score if fusion.technique == FusionTechnique.Z_SCORE else _min_max
        for weight, ranked in zip(fusion.weights, (bm25, vector), strict=True):
            for key, value in normalize(ranked):
                scores[key] = scores.get(key, 0.0) + weight * value
    out = sorted(scores.items())
    out.sort(key=itemgetter(1), reverse=True)  # stable: equal scores stay in id order
    return out


class DocumentSignal(StrEnum):
    MEAN = "mean"  # a document's mean hit score: one exact chunk beats many weak ones
    MAX = "max"  # its best hit's score: a document's other chunks rise with its best


@dataclass(frozen=True)
class DocumentRanking:
    """Ranking chunks with their documents in view: each chunk's score blends in its document's score over the
    candidates (`weight` of it, 0: none), and no document fills more than `per_document` of the first places
    (0: no cap); chunks past the cap keep their order after every other chunk."""

    weight: float = 0.0
    signal: DocumentSignal = DocumentSignal.MEAN
    per_document: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 1 or self.per_document < 0:
            raise ValueError("the document weight is in [0, 1] and the per-document cap at least 0")

    @property
    def active(self) -> bool:
        return self.weight > 0 or self.per_document > 0


def rank_by_document(hits: Sequence[SearchHit], ranking: DocumentRanking) -> list[SearchHit]:
    """The hits reordered by `ranking`, best first (ties keep the engine's order); scores are the blended ones.
    The document score is computed over these hits only, so the caller decides how many candidates count."""
    if not ranking.active:
        return list(hits)
    by_document: dict[str, list[float]] = {}
    for hit in hits:
        by_document.setdefault(hit.chunk.doc_id, []).append(hit.score)
    aggregate = max if ranking.signal == DocumentSignal.MAX else statistics.fmean
    document = {doc_id: aggregate(scores) for doc_id, scores in by_document.items()}
    blended = [
        replace(hit, score=(1 - ranking.weight) * hit.score + ranking.weight * document[hit.chunk.doc_id])
        for hit in hits
    ]
    blended.sort(key=lambda hit: hit.score, reverse=True)  # stable
    if not ranking.per_document:
        return blended
    kept: list[SearchHit] = []
    overflow: list[SearchHit] = []
    seen: dict[str, int] = {}
    for hit in blended:
        seen[hit.chunk.doc_id] = seen.get(hit.chunk.doc_id, 0) + 1
        (kept if seen[hit.chunk.doc_id] <= ranking.per_document else overflow).append(hit)
    return kept + overflow


def _min_max(ranked: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    if not ranked:
        return []
    values = [score for _, score in ranked]
    low, high = min(values), max(values)
    if high == low:
        return [(key, 1.0) for key, _ in ranked]
    span = high - low
    return [(key, ((score - low) / span) or MIN_MAX_FLOOR) for key, score in ranked]


def _z_score(ranked: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """OpenSearch's z_score normalization: how many standard deviations (the sample's) a score lies above its
    list's mean, at least MIN_MAX_FLOOR. A list whose scores stand out keeps its lead in the fusion, where
    min-max stretches a flat list (a dense side with no real match) to the same 0-1 range as a sharp one. Its
    edge cases as OpenSearch's: a score equal to the mean (a lone hit) gets the list's raw maximum, and a list of
    equal scores its raw minimum."""
    if not ranked:
        return []
    values = [score for _, score in ranked]
    count, high, low = len(values), max(values), min(values)
    mean = sum(values) / count
    # Plain float arithmetic, as OpenSearch's (statistics.stdev's exact fractions cost ~0.1 ms a list).
    deviation = math.sqrt(sum((v - mean) ** 2 for v in values) / (count - 1)) if count > 1 else 0.0
    out = []
    for key, score in ranked:
        if score == mean:
            value = high
        elif deviation == 0:
            value = low
        else:
            value = (score - mean) / deviation
            value = value if value > 0 else MIN_MAX_FLOOR
        out.append((key, value))
    return out


def chunk_document(chunk: Chunk) -> dict[str, Any]:
    """A chunk as a JSON document (OpenSearch _source, the embedded engine's stored fields)."""
    return {
        "chunk_id": chunk.chunk_id,
        "tenant": chunk.tenant,
        "doc_id": chunk.doc_id,
        "doc_version": chunk.doc_version,
        "text": chunk.text,
        "title": chunk.title,
        "path": chunk.path,
        "path_prefixes": chunk.path_prefixes(),
        "section": chunk.section,
        "page": chunk.page,
        "ordinal": chunk.ordinal,
        "start": chunk.start,
        "end": chunk.end,
        "content_hash": chunk.content_hash,
        "tags": list(chunk.tags),
        "acl": chunk.acl_terms(),
        "identifiers": chunk_identifiers(chunk),
        "metadata": dict(chunk.metadata),
    }


def chunk_identifiers(chunk: Chunk) -> str:
    """What the identifier field indexes for a chunk: the identifier terms of its title, heading and text."""
    return " ".join(identifier_terms(_matched_text(chunk)))


def _matched_text(chunk: Chunk) -> str:
    """What identifier terms are taken from and the match rewards look at: the title, the heading, the text."""
    return f"{chunk.title}\n{chunk.section}\n{chunk.text}"


def reward_identifier_matches(
    hits: Sequence[SearchHit], terms: Sequence[str], bonus: float, definition_bonus: float = 0.0
) -> list[SearchHit]:
    """The hits re-ranked by score plus `bonus` times the share of `terms` (a query's identifier_terms) that
    the chunk holds, plus `definition_bonus` times the share of the query's identifiers it defines (see
    defined_identifiers), best first (ties keep the given order). Exact identifiers are what a user who types
    `E-4012` asks for; fusion's normalized scores cannot say "this chunk has it, that one only resembles it",
    nor "this chunk says what E-4012 is, that one only mentions it"."""
    wanted = set(terms)
    if not wanted or not (bonus or definition_bonus):
        return list(hits)
    # A chunk can hold a term only if its text, lowercased and without separators, contains the term without
    # them: a substring test that spares most chunks the identifier regex (~0.2 ms per chunk).
    squeezed_terms = {_IDENTIFIER_SEPARATORS.sub("", term) for term in wanted}
    rewarded = []
    for hit in hits:
        text = _matched_text(hit.chunk)
        squeezed = _IDENTIFIER_SEPARATORS.sub("", text.lower())
        held = wanted.intersection(identifier_terms(text)) if any(t in squeezed for t in squeezed_terms) else ()
        score = hit.score + bonus * len(held) / len(wanted)
        if held and definition_bonus:
            defined = squeezed_terms & defined_identifiers(hit.chunk)
            score += definition_bonus * len(defined) / len(squeezed_terms)
        rewarded.append(replace(hit, score=score))
    rewarded.sort(key=lambda hit: hit.score, reverse=True)  # stable
    return rewarded


# A term the text goes on to explain: followed by a colon or a dash ("E-3301: a robot missed its heartbeats").
_DEFINED_TERM = re.compile(r"(\S+?)(?:\s*[:\u2013\u2014]|\s+-)\s")


def defined_identifiers(chunk: Chunk) -> set[str]:
    """The identifiers (without separators) a chunk defines rather than mentions: those of its title or heading
    (the postmortem titled "INC-2291: ...", the section "E-4012") and those its text explains."""
    named = identifier_terms(f"{chunk.title}\n{chunk.section}")
    return {_IDENTIFIER_SEPARATORS.sub("", t) for t in named} | explained_identifiers(chunk.text)


def explained_identifiers(text: str) -> set[str]:
    """The identifiers (without separators) a text explains where it names them, followed by a colon or a dash
    ("E-3301: a robot missed ...", "BRK-220-S - brake pad set"), as code lists, glossaries and part tables
    write them."""
    named = [t for m in _DEFINED_TERM.finditer(text) for t in identifier_terms(m.group(1))]
    return {_IDENTIFIER_SEPARATORS.sub("", t) for t in named}


def reward_keyword_matches(hits: Sequence[SearchHit], query: KeywordQuery | None, bonus: float) -> list[SearchHit]:
    """The hits re-ranked by score plus `bonus` where the chunk's title, heading and text hold every term of a
    keyword query (its identifiers in any spelling identifier_terms accepts, its words whole), best first (ties
    keep the given order). A name or a code typed as a few words ("Corvane Robotics SAS") is what a chunk holding
    all of them is about; fusion's dense side cannot tell it from a chunk that reads alike ("Corvane Robotics"
    without "SAS")."""
    if query is None or not bonus:
        return list(hits)
    rewarded = []
    for hit in hits:
        text = _matched_text(hit.chunk).lower()
        squeezed = _IDENTIFIER_SEPARATORS.sub("", text)
        # Substring tests first: most chunks lack some term, and they spare them the regexes.
        held = (
            all(i in squeezed for i in query.identifiers)
            and all(w in text for w in query.words)
            and query.identifiers.issubset(identifier_terms(text))
            and query.words.issubset(_WORD.findall(text))
        )
        rewarded.append(replace(hit, score=hit.score + bonus) if held else hit)
    rewarded.sort(key=lambda hit: hit.score, reverse=True)  # stable
    return rewarded


def chunk_from_document(source: Mapping[str, Any], vector: Sequence[float] = ()) -> Chunk:
    acl = [g for g in source.get("acl", []) if g != PUBLIC_ACL]
    return Chunk(
        chunk_id=source["chunk_id"],
        tenant=source["tenant"],
        doc_id=source["doc_id"],
        doc_version=source["doc_version"],
        text=source["text"],
        vector=vector,
        title=source.get("title", ""),
        path=source.get("path", ""),
        section=source.get("section", ""),
        page=source.get("page"),
        ordinal=source.get("ordinal", 0),
        start=source.get("start", 0),
        end=source.get("end", 0),
        content_hash=source.get("content_hash", ""),
        tags=tuple(source.get("tags", [])),
        acl_groups=tuple(acl),
        metadata=dict(source.get("metadata") or {}),
    )


def require_tenant(tenant: str) -> str:
    if not tenant:
        raise ValidationFailed("tenant is required")
    return tenant
