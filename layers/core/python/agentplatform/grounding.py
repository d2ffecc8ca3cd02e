"""The grounding check: is each sentence of an answer supported by the passages it cites?

An answer cites passages with `[n]` markers (the refs of agentplatform.llm.Passage). The check splits the answer
into sentences, reads each sentence's markers and tests the sentence against the passages it cites only:

- every number and identifier it states (`30 days`, `E-4012`, `BRK-220-S`, `EUR 14.90`) must appear in a cited
  passage: a changed number is the typical way a small model's answer goes wrong while its words still match;
- and its content words must be mostly found in the cited passages (lexical containment, after lowercasing,
  stopword removal and Snowball stemming), or, when an `embed` callable is given, its embedding must be close
  to the best sentence of a cited passage (a paraphrase).

A sentence with no content words ("Here is what I found:") is not tested. A marker whose ref is not among the
passages is an invalid citation: the answer is then not supported, whatever its sentences say. An answer with
no marker at all is an abstention (`is_abstention`): it claims nothing from the documents, so there is nothing
to ground; the report says so and calls it supported.

The agent loop runs this before finalizing a turn and evaluation reuses it on sampled turns; it is pure Python
(the embedding model, when used, is the caller's).
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentplatform.search import STOPWORDS

# Defaults measured on the golden set's dev split (docs/answers.md).
LEXICAL_SUPPORT = 0.6  # share of a sentence's content words found in its cited passages
SEMANTIC_SUPPORT = 0.7  # cosine (MiniLM) between the sentence and the cited passages' best sentence
MIN_SHARE = 1.0  # share of tested sentences that must be supported for the answer to be

Embed = Callable[[Sequence[str]], list[list[float]]]

_MARKER = re.compile(r"\[(\d{1,3})\]")
# A passage as the retrieval service assembles it starts with its own header line: `[3] Title | path | p. 2`.
_HEADER = re.compile(r"^\s*\[\d{1,3}\][^\n]*\n")
# Sentence ends: terminal punctuation (or a closing marker after it) followed by space and what can start a
# sentence; line breaks end sentences too (bullets, headings, table rows).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
# A token: letters and digits, joined by inner `-`, `.`, `,`, `/`, `:` or `%` so that identifiers, decimals,
# thousands and times stay whole (`BRK-220-S`, `0.67`, `3,800`, `07:00`, `s3://nw-sec-evidence`).
_BULLET = re.compile(r"^([-*\u2022]|\d{1,2}[.)])\s")
_TOKEN = re.compile(r"[^\W_]+(?:(?:[-.,/:]|://)[^\W_]+)*%?")
_STOP = frozenset(STOPWORDS) | frozenset(["also", "may", "must", "per", "please", "shall", "via"])


@dataclass(frozen=True)
class SentenceCheck:
    text: str
    refs: tuple[int, ...]
    tested: bool  # False: no content words, nothing to ground
    supported: bool
    score: float  # the evidence that decided: max(lexical, semantic) when every number is found, else 0
    lexical: float
    semantic: float | None
    missing: tuple[str, ...] = ()  # content words or numbers not found in the cited passages


@dataclass(frozen=True)
class GroundingReport:
    sentences: list[SentenceCheck]
    supported: bool
    share_supported: float
    invalid_refs: tuple[int, ...]
    abstained: bool
    cited_refs: tuple[int, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "supported": self.supported,
            "share_supported": round(self.share_supported, 3),
            "invalid_refs": list(self.invalid_refs),
            "cited_refs": list(self.cited_refs),
            "abstained": self.abstained,
            "sentences": [
                {
                    "refs": list(s.refs),
                    "tested": s.tested,
                    "supported": s.supported,
                    "score": round(s.score, 3),
                    "missing": list(s.missing),
                }
                for s in self.sentences
            ],
        }


# --- text helpers (the extractive answerer uses the same ones, so both read text alike) ---------------------


def normalize(text: str) -> str:
    """NFKC, typographic quotes and dashes folded, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-"}))
    return " ".join(text.split())


def passage_body(text: str) -> str:
    """A passage's text without the `[n] source` header line the context assembly puts first."""
    return _HEADER.sub("", text, count=1)


def split_sentences(text: str) -> list[str]:
    """Sentences in order; a marker that follows the full stop (`... 30 days. [2]`) stays with its sentence.
    A line break ends a sentence only where a line is complete (a heading, a bullet, a finished sentence): the
    hard-wrapped lines of text files and PDFs are joined first."""
    parts = [p.strip() for p in _SENTENCE_END.split(unwrap(text)) if p and p.strip()]
    out: list[str] = []
    for part in parts:
        lead = re.match(r"^((?:\[\d{1,3}\]\s*)+)(.*)$", part, re.S)
        if lead and out:
            out[-1] = f"{out[-1]} {lead.group(1).strip()}"
            part = lead.group(2).strip()
        if part:
            out.append(part)
    return out


def unwrap(text: str) -> str:
    """Join hard-wrapped lines: a line continues the previous one when that one is not finished (no closing
    punctuation) and is either long (a wrapped sentence, not a heading) or followed by a lowercase word."""
    out: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            out.append("")
            continue
        prev = out[-1] if out else ""
        if (
            prev
            and not _BULLET.match(line)
            and not prev.endswith((".", "!", "?", ":", ";"))
            and (len(prev.split()) >= 8 or line[0].islower())
        ):
            out[-1] = f"{prev} {line}"
        else:
            out.append(line)
    return "\n".join(out)


def citation_refs(text: str) -> list[int]:
    """The refs of the text's `[n]` markers, in order of first appearance."""
    seen: dict[int, None] = {}
    for match in _MARKER.finditer(text):
        seen.setdefault(int(match.group(1)), None)
    return list(seen)


def strip_markers(text: str) -> str:
    return " ".join(_MARKER.sub(" ", text).split())


# Text that says it does not know: a marker-less answer of this kind abstains, and a marker-less sentence of this
# kind beside cited ones ("I could not find X in the documents") states no fact to test.
_SAYS_UNKNOWN = re.compile(
    r"\b(?:(?:do|does|did|could|can|would)\s*(?:not|n't)|cannot|unable to)\s+(?:know|find|answer|tell|say|"
    r"determine|see)\b|\bno (?:information|answer|mention)\b|\bnot (?:mentioned|stated|covered|specified|"
    r"found|provided|given)\b|\b(?:passages|documents) do(?:es)?\s*(?:not|n't)\b",
    re.IGNORECASE,
)


def says_unknown(text: str) -> bool:
    return bool(_SAYS_UNKNOWN.search(text))


def is_abstention(text: str | None) -> bool:
    """An answer that cites nothing: no `[n]` marker."""
    return not text or not _MARKER.search(text)


def tokens(text: str) -> list[str]:
    """Lowercased tokens of a text, identifiers and numbers kept whole; trailing sentence punctuation dropped."""
    return [t.lower().rstrip(".,:") for t in _TOKEN.findall(normalize(text))]


def is_numeric(token: str) -> bool:
    """A number or an identifier with a digit in it: the facts an answer must not change."""
    return any(c.isdigit() for c in token)


@functools.cache
def _stemmer() -> Callable[[str], str]:
    import Stemmer  # PyStemmer: the Snowball English stemmer the search engines use

    return Stemmer.Stemmer("english").stemWord


def stem(word: str) -> str:
    return _stemmer()(word)


def is_stopword(token: str) -> bool:
    return token in _STOP


def content_terms(text: str) -> list[str]:
    """Content words, stemmed (numbers and identifiers kept as they are), stopwords dropped."""
    stem = _stemmer()
    out = []
    for token in tokens(text):
        if token in _STOP or (len(token) < 2 and not token.isdigit()):
            continue
        out.append(token if is_numeric(token) else stem(token))
    return out


_PART_SEPARATORS = re.compile(r"[-/:.,]+")


def token_parts(token: str) -> list[str]:
    """The parts of a compound token, between its separators: `e-3307` gives `e`, `3307`."""
    return [part for part in _PART_SEPARATORS.split(token) if part]


def term_set(text: str) -> set[str]:
    """Content terms of a text, plus the parts of its compound tokens (`nw-sec-evidence` also gives `evidence`),
    so that a sentence naming a part is found in a passage naming the whole; and an identifier of letters and
    digits also without its separators (`E-3307` gives `e3307`), as users type it (numbers are not joined:
    `10.5` must not stand for `105`)."""
    terms = set(content_terms(text))
    stem = _stemmer()
    for token in tokens(text):
        parts = token_parts(token)
        for part in parts:
            if part not in _STOP and (len(part) > 1 or part.isdigit()):
                terms.add(part if is_numeric(part) else stem(part))
        if len(parts) > 1 and is_numeric(token) and any(c.isalpha() for c in token):
            terms.add("".join(parts))
    return terms


# A country or region and the words that name it in a question ("Dutch staff" for "employees in the
# Netherlands", "in Europe" for "in the EU"): general English, not any corpus's. Each group is one place.
_PLACE_WORDS = (
    ("netherlands", "dutch", "holland"),
    ("france", "french"),
    ("germany", "german"),
    ("spain", "spanish"),
    ("italy", "italian"),
    ("portugal", "portuguese"),
    ("belgium", "belgian"),
    ("ireland", "irish"),
    ("sweden", "swedish"),
    ("denmark", "danish"),
    ("norway", "norwegian"),
    ("finland", "finnish"),
    ("switzerland", "swiss"),
    ("austria", "austrian"),
    ("britain", "british", "uk"),
    ("usa", "american"),
    ("canada", "canadian"),
    ("mexico", "mexican"),
    ("brazil", "brazilian"),
    ("japan", "japanese"),
    ("china", "chinese"),
    ("india", "indian"),
    ("korea", "korean"),
    ("australia", "australian"),
    ("eu", "europe", "european"),
)


@functools.cache
def _place_groups() -> dict[str, frozenset[str]]:
    stem = _stemmer()
    groups = [frozenset(stem(word) for word in group) for group in _PLACE_WORDS]
    return {term: group for group in groups for term in group}


def findable_terms(text: str) -> set[str]:
    """What a text can be found by: its term_set plus the acronyms of its runs of content words (the initials of
    3 to 5 words in a row: "recovery time objective" also reads `rto`, "multi-factor authentication" `mfa`),
    as questions abbreviate them, and the other words for a place it names (`netherlands` also reads `dutch`).
    For the text searched in (a passage, a sentence, an answer), not the asking one: an acronym a question does
    not write is not asked."""
    terms = term_set(text)
    places = _place_groups()
    for term in [t for t in terms if t in places]:
        terms |= places[term]
    words: list[str] = []  # the current run of content words
    for token in tokens(text):
        parts = token_parts(token)
        if token in _STOP or not all(part.isalpha() for part in parts):
            words = []
            continue
        words += parts
        terms.update("".join(w[0] for w in words[-n:]) for n in range(3, min(5, len(words)) + 1))
    return terms


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


# --- the check ----------------------------------------------------------------------------------------------


def check(
    answer: str,
    passages: Mapping[int, str] | Iterable[Any],
    *,
    embed: Embed | None = None,
    lexical_threshold: float = LEXICAL_SUPPORT,
    semantic_threshold: float = SEMANTIC_SUPPORT,
    min_share: float = MIN_SHARE,
) -> GroundingReport:
    """Test `answer` against `passages`: a {ref: text} mapping, or objects with `ref` and `text` (llm.Passage).

    The answer is supported when it cites only passages it was given, at least one of its sentences was
    tested, and at least `min_share` of the tested sentences are supported."""
    texts = _passage_texts(passages)
    cited = citation_refs(answer or "")
    invalid = tuple(r for r in cited if r not in texts)
    if is_abstention(answer):
        return GroundingReport([], True, 1.0, (), True, ())

    sentences = split_sentences(answer)
    plan: list[tuple[str, tuple[int, ...], list[str]]] = []
    for sentence in sentences:
        refs = tuple(citation_refs(sentence))
        plan.append((sentence, refs, content_terms(strip_markers(sentence))))

    # One embedding call for every tested sentence and every sentence of the cited passages.
    semantic: dict[int, float] = {}
    if embed is not None:
        semantic = _semantic_scores(plan, texts, embed)

    checks: list[SentenceCheck] = []
    for i, (sentence, refs, terms) in enumerate(plan):
        if not terms or (not refs and says_unknown(sentence)):
            checks.append(SentenceCheck(sentence, refs, False, True, 1.0, 1.0, None))
            continue
        valid = [r for r in refs if r in texts]
        haystack: set[str] = set()
        for ref in valid:
            haystack |= findable_terms(passage_body(texts[ref]))
        missing = tuple(t for t in dict.fromkeys(terms) if t not in haystack)
        lexical = 1.0 - len(missing) / len(set(terms)) if valid else 0.0
        numbers_found = not any(is_numeric(t) for t in missing)
        sem = semantic.get(i)
        score = max(lexical, sem or 0.0) if valid and numbers_found else 0.0
        supported = (
            bool(valid)
            and numbers_found
            and (lexical >= lexical_threshold or (sem is not None and sem >= semantic_threshold))
        )
        checks.append(SentenceCheck(sentence, refs, True, supported, score, lexical, sem, missing))

    tested = [c for c in checks if c.tested]
    share = sum(c.supported for c in tested) / len(tested) if tested else 0.0
    supported = bool(tested) and not invalid and share >= min_share
    return GroundingReport(checks, supported, share, invalid, False, tuple(cited))


def _passage_texts(passages: Mapping[int, str] | Iterable[Any]) -> dict[int, str]:
    if isinstance(passages, Mapping):
        return {int(k): str(v) for k, v in passages.items()}
    return {int(p.ref): str(p.text) for p in passages}


def _semantic_scores(
    plan: list[tuple[str, tuple[int, ...], list[str]]], texts: Mapping[int, str], embed: Embed
) -> dict[int, float]:
    wanted = [i for i, (_, refs, terms) in enumerate(plan) if terms and any(r in texts for r in refs)]
    if not wanted:
        return {}
    refs_used = sorted({r for i in wanted for r in plan[i][1] if r in texts})
    passage_sentences = {r: split_sentences(passage_body(texts[r])) or [texts[r]] for r in refs_used}
    batch = [strip_markers(plan[i][0]) for i in wanted]
    spans: dict[int, tuple[int, int]] = {}
    for ref in refs_used:
        spans[ref] = (len(batch), len(batch) + len(passage_sentences[ref]))
        batch.extend(passage_sentences[ref])
    vectors = embed(batch)
    scores: dict[int, float] = {}
    for n, i in enumerate(wanted):
        best = 0.0
        for ref in plan[i][1]:
            if ref in spans:
                lo, hi = spans[ref]
                best = max([best, *(cosine(vectors[n], vectors[j]) for j in range(lo, hi))])
        scores[i] = best
    return scores
