"""The Cranfield collection (../shared/eval/cranfield): documents, queries and graded judgements.

Its README: `.I` starts a record, `.T` title, `.A` authors, `.B` source, `.W` text; queries are numbered 1..225
in file order (not by their `.I`); a judgement code 1..4 is relevant with gain 5 - code, -1 and 5 are not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT.parent / "shared" / "eval" / "cranfield"
_FIELD = re.compile(r"^\.([TABW])\s*$")


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str


def available() -> bool:
    return (FOLDER / "cran.all.1400").exists()


def _records(path: Path) -> list[dict[str, str]]:
    records: list[dict[str, str]] = []
    field = None
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(".I "):
            records.append({"id": line.split()[1]})
            field = None
        elif match := _FIELD.match(line):
            field = match.group(1)
            records[-1][field] = ""
        elif field and records:
            records[-1][field] += " " + line
    return [{k: " ".join(v.split()) for k, v in r.items()} for r in records]


def documents() -> list[Document]:
    return [Document(r["id"], r.get("T", ""), r.get("W", "")) for r in _records(FOLDER / "cran.all.1400")]


def queries() -> list[tuple[str, str]]:
    """(query id as the judgements number it, text)."""
    return [(str(n), r.get("W", "")) for n, r in enumerate(_records(FOLDER / "cran.qry"), start=1)]


def judgements() -> dict[str, dict[str, int]]:
    """query id -> {doc id: gain}, relevant documents only."""
    out: dict[str, dict[str, int]] = {}
    for line in (FOLDER / "cranqrel").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and 1 <= int(parts[2]) <= 4:
            out.setdefault(parts[0], {})[parts[1]] = 5 - int(parts[2])
    return out
