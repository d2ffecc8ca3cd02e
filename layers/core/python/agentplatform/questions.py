"""What a question asks: its parts, when it asks several things at once. The agent loop searches once per part,
and the extractive answerer answers each part, so a compound question gets every one of its answers."""

from __future__ import annotations

import re

_QUESTION = re.compile(r"[^?]*\?")
_JOINED = re.compile(
    r",?\s+and\s+(?=(?:how|what|when|where|who|whom|which|why|is|are|does|do|can|should|must)\b)", re.IGNORECASE
)
MAX_SUB_QUERIES = 3


def sub_queries(question: str) -> list[str]:
    """The searches a question needs: one per question it asks ("How often ...? And who ...?", "How often ... and
    who ...?"), at most three; the whole question when it asks one thing."""
    text = " ".join(question.split())
    asked = [q.strip() for q in _QUESTION.findall(text) if len(q.strip()) > 3]
    parts = asked if len(asked) > 1 else _JOINED.split(text)
    parts = [p.strip(" ,;") for p in parts if len(p.strip(" ,;")) > 3]
    if len(parts) < 2:
        return [text[:500]]
    return [p[:500] for p in parts[:MAX_SUB_QUERIES]]
