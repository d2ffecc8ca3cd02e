"""The `extractive` provider: no model; it answers the last user message with the sentences of the given passages
that best answer it, quoted with their `[n]` markers, or abstains.

On CPU-only hardware this is the platform's grounded answerer: the small local generators state the asked fact
in under 20% of questions (docs/answers.md), a quoted sentence of the right passage states it as written.

Ranking: one embedding call for the question and every candidate sentence; a sentence's score adds to its cosine
with the question how much of the question's salient terms it holds (names, numbers and identifiers weigh
double) and how much its passage holds (title and section included); a sentence naming a sibling of an asked
identifier (SEV1 for SEV2) and not the asked one is marked down. Abstention cannot rest on the cosine (the
best sentence of a passage that does not answer scores as high as one that does), so it combines signals:
every name or identifier the question asks about (`Tokyo`, `BR-300`) must occur in the chosen passage, and the
best sentence's combined evidence must pass a threshold tuned on the golden set's dev split.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentplatform import grounding
from agentplatform.errors import ModelInputRejected
from agentplatform.inference import (
    AssistantMessage,
    ChatChoice,
    ChatResponse,
    Usage,
    estimate_tokens,
)
from agentplatform.llm import ChatCall, Passage
from agentplatform.ports import EmbeddingModel
from agentplatform.questions import sub_queries
from agentplatform.search import explained_identifiers

ABSTENTION = "I could not find this in the documents I searched."
MAX_CANDIDATES = 240  # sentences embedded per call: 50 passages of a 1,500-token context hold far fewer
# Words of how a question is asked, not of what it is about.
_ASKING = frozenset(
    grounding.content_terms(
        "many much long often need get tell know want like anyone someone somebody anything something "
        "supposed allowed possible happen happens mean means exactly"
    )
)
# Questions whose answer is a quantity, a time or a date: a sentence that states no number hardly answers them.
_ASKS_NUMBER = re.compile(
    r"\b(how (many|much|long|often|far|big|soon|quickly|fast)|what (time|percentage|rate|price|amount|version|"
    r"address|number|limit|extension)|when|by when|within how|minimum|maximum|up to what|above what)\b",
    re.I,
)
_QUESTION_LINE = re.compile(r"^Question:[ \t]*(\S.*)$", re.M)
# A sentence that leans on the one before or opens a list: read the neighbour with it.
_LEANS_BACK = re.compile(r"^(it|this|these|they|that|those|such|any|its|their|then|otherwise)\b", re.I)


@dataclass(frozen=True)
class Weights:
    """How the ranking and the abstention weigh their signals (tuned on the golden dev split: docs/answers.md)."""

    sentence_terms: float = 0.6  # share of the question's salient terms in the sentence
    passage_terms: float = 0.3  # ... in the sentence's passage (title and section included)
    number_bonus: float = 0.1  # the question asks for a quantity and the sentence states one
    answer_threshold: float = 0.85  # the best sentence's score below which the provider abstains
    keep_margin: float = 0.12  # a second sentence joins the answer when it scores within this of the best
    min_named_coverage: float = 1.0  # share of the question's names and identifiers the passage must hold
    # A sentence naming a sibling of an identifier the question asks about (SEV1 for SEV2, v2 for v3, T600 for
    # T400) and not the asked one states the sibling's fact: this much below what it would score.
    sibling_penalty: float = 0.5
    # A sentence explaining an identifier the question asks about ("E-3301: a robot missed its heartbeats ...",
    # search.explained_identifiers) says what it is; one that only mentions it ("E-3301 alarms fire") does not.
    definition_bonus: float = 0.1


@dataclass(frozen=True)
class Candidate:
    ref: int
    position: int  # sentence number within its passage
    text: str
    cosine: float = 0.0
    sentence_terms: float = 0.0
    passage_terms: float = 0.0
    named_coverage: float = 1.0
    states_number: bool = False
    score: float = 0.0
    names_sibling: bool = False  # names a sibling of an asked identifier, and not the asked one


@dataclass(frozen=True)
class Extract:
    """The answer and why: the chosen sentences, or an abstention, with the best candidate's signals."""

    text: str
    abstained: bool
    chosen: list[Candidate] = field(default_factory=list)
    best: Candidate | None = None
    ranked: list[Candidate] = field(default_factory=list)  # the top candidates, for diagnostics


class ExtractiveProvider:
    name = "extractive"

    def __init__(self, embeddings: EmbeddingModel, *, weights: Weights | None = None, max_sentences: int = 3) -> None:
        self._embeddings = embeddings
        self.weights = weights or Weights()
        self.max_sentences = max_sentences

    # --- LlmProvider -----------------------------------------------------------------------------------------

    def chat(self, call: ChatCall, *, model: str, timeout_s: float) -> ChatResponse:
        # The one remote call is the embedding, bounded by the embedding client's own timeout; the rest is
        # milliseconds of Python, so timeout_s has nothing else to bound.
        question = _last_user_message(call)
        if not call.passages:
            raise ModelInputRejected("the extractive provider answers from passages and the call has none")
        extract = self.answer(question, call.passages)
        prompt = question + "".join(p.text for p in call.passages)
        completion = estimate_tokens(extract.text)
        return ChatResponse(
            id=f"extractive-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=model,
            choices=[
                ChatChoice(message=AssistantMessage(content=extract.text), finish_reason="stop"),
            ],
            usage=Usage(
                prompt_tokens=estimate_tokens(prompt),
                completion_tokens=completion,
                total_tokens=estimate_tokens(prompt) + completion,
            ),
        )

    def embed(self, texts: Sequence[str], *, model: str, timeout_s: float) -> tuple[list[list[float]], Usage]:
        vectors = self._embeddings.embed(list(texts))
        tokens = sum(estimate_tokens(t) for t in texts)
        return vectors, Usage(prompt_tokens=tokens, completion_tokens=0, total_tokens=tokens)

    # --- the answerer ----------------------------------------------------------------------------------------

    def answer(self, question: str, passages: Sequence[Passage]) -> Extract:
        """The answer to each thing the question asks (agentplatform.questions), its sentences together; a part
        none of the passages answers is said to be unanswered, and all of them unanswered is an abstention."""
        parts = sub_queries(question)
        if len(parts) == 1:
            return self._answer_one(question, passages)
        extracts = [self._answer_one(part, passages) for part in parts]
        answered = [e for e in extracts if not e.abstained]
        if not answered:
            return extracts[0]
        chosen: list[Candidate] = []
        for extract in answered:
            said = {_sentence_key(o.text) for o in chosen}
            chosen += [c for c in extract.chosen if _sentence_key(c.text) not in said]
        missing = [part for part, e in zip(parts, extracts, strict=True) if e.abstained]
        text = _quote(chosen) + "".join(f' I could not find "{part}" in the documents I searched.' for part in missing)
        return Extract(text, False, chosen, answered[0].best, answered[0].ranked)

    def _answer_one(self, question: str, passages: Sequence[Passage]) -> Extract:
        question = grounding.normalize(question)
        salient, named = _salient_terms(question)
        candidates, passage_terms = _candidates(passages)
        if not candidates:
            return Extract(ABSTENTION, True)
        places = {p.ref: _place(p) for p in passages}
        vectors = self._embeddings.embed([question, *(places[c.ref] + c.text for c in candidates)])
        asks_number = bool(_ASKS_NUMBER.search(question))
        asked = _identifiers(question)
        w = self.weights
        scored: list[Candidate] = []
        for candidate, vector in zip(candidates, vectors[1:], strict=True):
            terms = grounding.findable_terms(candidate.text)
            context = passage_terms[candidate.ref]
            states_number = any(grounding.is_numeric(t) for t in grounding.tokens(candidate.text))
            sentence_share = _weighted_share(salient, named, terms)
            passage_share = _weighted_share(salient, named, context | terms)
            named_coverage = sum(t in (context | terms) for t in named) / len(named) if named else 1.0
            names_sibling = _names_sibling(asked, _identifiers(candidate.text))
            explains = bool(asked) and not explained_identifiers(candidate.text).isdisjoint(asked)
            cosine = grounding.cosine(vectors[0], vector)
            score = (
                cosine
                + w.sentence_terms * sentence_share
                + w.passage_terms * passage_share
                + (w.number_bonus if asks_number and states_number else 0.0)
                - (w.sibling_penalty if names_sibling else 0.0)
                + (w.definition_bonus if explains else 0.0)
            )
            scored.append(
                Candidate(
                    candidate.ref,
                    candidate.position,
                    candidate.text,
                    cosine,
                    sentence_share,
                    passage_share,
                    named_coverage,
                    states_number,
                    score,
                    names_sibling,
                )
            )
        ranked = sorted(scored, key=lambda c: -c.score)
        best = ranked[0]
        if best.score < w.answer_threshold or best.named_coverage < w.min_named_coverage:
            return Extract(ABSTENTION, True, best=best, ranked=ranked[:5])
        chosen = self._choose(best, ranked, scored, asks_number)
        return Extract(_quote(chosen), False, chosen, best, ranked[:5])

    def _choose(
        self, best: Candidate, ranked: list[Candidate], scored: list[Candidate], asks_number: bool
    ) -> list[Candidate]:
        by_place = {(c.ref, c.position): c for c in scored}
        chosen = [best]
        following = by_place.get((best.ref, best.position + 1))
        # The neighbour completes the fact: the best sentence opens a list or is a fragment, the next one leans
        # back on it, or the question asks for a number the best sentence does not state and the next one does.
        if following is not None and (
            best.text.rstrip().endswith(":")
            or len(best.text.split()) < 6
            or _LEANS_BACK.match(following.text)
            or (asks_number and not best.states_number and following.states_number)
        ):
            chosen.append(following)
        # The same sentence in two passages (overlapping chunks, a document and its other version) is said once.
        said = {_sentence_key(c.text) for c in chosen}
        for other in ranked[1:]:
            if len(chosen) >= self.max_sentences or other.score < best.score - self.weights.keep_margin:
                break
            if (
                other not in chosen
                and _sentence_key(other.text) not in said
                and other.named_coverage >= self.weights.min_named_coverage
            ):
                chosen.append(other)
                break  # one more sentence at most: a second angle, not a list of near-repeats
        # Read in document order within a passage, the best passage first.
        first_ref = best.ref
        return sorted(chosen, key=lambda c: (c.ref != first_ref, c.ref, c.position))


def _place(passage: Passage) -> str:
    """Where a sentence stands (its document's title and section), embedded before it, as ingestion embeds a
    chunk after its title and section path: a sentence is compared with the question in its context."""
    parts = [passage.citation.title, passage.citation.section]
    return "".join(f"{p}: " for p in dict.fromkeys(x.strip() for x in parts) if p)


def _sentence_key(text: str) -> str:
    return " ".join(text.lower().split())


def _last_user_message(call: ChatCall) -> str:
    """The question: the last user message, or, where that message quotes passages before a `Question:` line
    (a caller's retry prompt), that line."""
    for message in reversed(call.messages):
        if message.role == "user" and message.content and message.content.strip():
            asked = _QUESTION_LINE.findall(message.content)
            return asked[-1].strip() if asked else message.content
    raise ModelInputRejected("the extractive provider answers a user message and the call has none")


def _salient_terms(question: str) -> tuple[list[str], set[str]]:
    """The question's content terms (without how it is asked) and, among them, its names and identifiers:
    capitalized words past the first, all-caps words, anything with a digit."""
    salient = [t for t in dict.fromkeys(grounding.content_terms(question)) if t not in _ASKING]
    named: set[str] = set()
    words = re.findall(r"[^\W_]+(?:[-.][^\W_]+)*", question)
    for i, word in enumerate(words):
        lowered = word.lower()
        if grounding.is_stopword(lowered):
            continue
        if any(c.isdigit() for c in word) or (len(word) > 1 and word.isupper()) or (i > 0 and word[0].isupper()):
            named.add(lowered if grounding.is_numeric(lowered) else grounding.stem(lowered))
    return salient, {t for t in named if t in salient}


def _identifiers(text: str) -> dict[str, str]:
    """The identifiers of letters and digits a text names (`SEV2`, `E-3307`, `v3`, `T400`), written without
    separators, each with its family: its letters before the first digit (`sev`, `e`, `v`, `t`)."""
    out: dict[str, str] = {}
    for token in grounding.tokens(text):
        compact = "".join(grounding.token_parts(token))
        family = re.match(r"[^\W\d_]+(?=\d)", compact)
        if family is not None:
            out[compact] = family.group(0)
    return out


def _names_sibling(asked: dict[str, str], named: dict[str, str]) -> bool:
    """Whether a sentence naming `named` names another member of an asked identifier's family and not that
    identifier: "For a SEV1, ..." when the question asks about SEV2."""
    return any(
        family in asked.values() and ident not in asked and not any(a in named for a, f in asked.items() if f == family)
        for ident, family in named.items()
    )


def _weighted_share(salient: list[str], named: set[str], terms: set[str]) -> float:
    if not salient:
        return 0.0
    total = sum(2.0 if t in named else 1.0 for t in salient)
    found = sum(2.0 if t in named else 1.0 for t in salient if t in terms)
    return found / total


def _candidates(passages: Sequence[Passage]) -> tuple[list[Candidate], dict[int, set[str]]]:
    out: list[Candidate] = []
    passage_terms: dict[int, set[str]] = {}
    for passage in passages:
        cite = passage.citation
        passage_terms[passage.ref] = grounding.findable_terms(
            f"{passage.text}\n{cite.title}\n{cite.section}\n{cite.path}"
        )
        for position, sentence in enumerate(grounding.split_sentences(grounding.passage_body(passage.text))):
            text = grounding.strip_markers(sentence).lstrip("-*• ").strip()
            # Headings and labels ("Hotels", "2. Installation", "VPN SETUP GUIDE") state nothing; their words
            # count for the passage.
            words = len(text.split())
            if words < 8 and not (text.endswith((".", "?", "!")) or (text.endswith(":") and words >= 4)):
                continue
            if len(grounding.content_terms(text)) < 2:
                continue
            out.append(Candidate(passage.ref, position, text))
            if len(out) >= MAX_CANDIDATES:
                return out, passage_terms
    return out, passage_terms


def _quote(chosen: list[Candidate]) -> str:
    """Each sentence as written, its marker before its closing punctuation: `... 25 working days [1].`"""
    parts = []
    for c in chosen:
        text = c.text.rstrip()
        end = text[-1] if text[-1] in ".!?:" else "."
        body = text[:-1].rstrip() if text[-1] in ".!?:" else text.rstrip("; ")
        parts.append(f"{body} [{c.ref}]{end}")
    return " ".join(parts)
