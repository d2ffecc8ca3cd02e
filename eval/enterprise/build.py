"""Builds the enterprise retrieval set from its sources: `.venv/bin/python eval/enterprise/build.py`.

`source/*.txt` hold the documents of one invented company (Corvane Robotics) as plain prose with `## ` headings,
and `source/queries-*.txt` the queries with their judgements. This script renders every document in the format
its file name asks for (md, txt, html, docx, pdf) under `docs/`, and writes `manifest.jsonl` (each document's
title, format and sections; for a PDF, the pages each section covers), `queries.jsonl` and `qrels.jsonl`.
The generated files are committed; change a source and rerun to change them.

Source format, documents: `=== <path>` opens a document; `title:` and any number of `variant:` lines follow
(`variant: v=2; limit=150` renders the document once per line, `[[v]]` and `[[limit]]` replaced in its path,
title and text: near-duplicates that differ only in those facts); then `## Heading` lines and paragraphs
separated by blank lines. Queries: `Q <kind> | <query> | <answer>`, then one `<grade> <doc path>#<heading>`
line per judgement (`#` alone: a document without headings, a .txt). In the answer, `{braces}` mark its key
facts: words a right answer must hold, as a grade-2 section states them (`bench/enterprise_answers.py`).
"""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from docx import Document as WordDocument
from fpdf import FPDF

HERE = Path(__file__).parent
SOURCE = HERE / "source"
DOCS = HERE / "docs"
# A fixed date, so rebuilding an unchanged document gives the same bytes.
BUILT = datetime(2026, 2, 2, tzinfo=UTC)
KINDS = ("exact", "semantic", "mixed")
_PLACEHOLDER = re.compile(r"\[\[(\w+)\]\]")
_KEY_FACT = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class Doc:
    path: str
    title: str
    sections: list[tuple[str, list[str]]]  # (heading, paragraphs); a .txt has one section headed ""

    @property
    def format(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def _fill(text: str, facts: dict[str, str], where: str) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in facts:
            raise ValueError(f"{where}: no value for [[{match.group(1)}]]")
        return facts[match.group(1)]

    return _PLACEHOLDER.sub(value, text)


def parse_documents(text: str, origin: str) -> list[Doc]:
    docs: list[Doc] = []
    for block in re.split(r"^=== ", text, flags=re.MULTILINE)[1:]:
        header, _, body = block.partition("\n## ")
        lines = header.strip().split("\n")
        path, meta = lines[0].strip(), lines[1:]
        title = next(line[6:].strip() for line in meta if line.startswith("title:"))
        variants = [
            dict(pair.strip().split("=", 1) for pair in line[8:].split(";") if pair.strip())
            for line in meta
            if line.startswith("variant:")
        ] or [{}]
        for facts in variants:
            where = f"{origin}: {path}"
            sections = []
            for part in ("## " + body).split("\n## ")[0:]:
                heading, _, rest = part.removeprefix("## ").partition("\n")
                paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", rest) if p.strip()]
                sections.append((_fill(heading.strip(), facts, where), [_fill(p, facts, where) for p in paragraphs]))
            docs.append(Doc(_fill(path, facts, where), _fill(title, facts, where), sections))
    return docs


def parse_queries(text: str, origin: str) -> list[dict]:
    queries: list[dict] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("Q "):
            kind, query, answer = (part.strip() for part in line[2:].split("|"))
            if kind not in KINDS:
                raise ValueError(f"{origin}: unknown kind {kind!r}")
            queries.append(
                {
                    "origin": origin,
                    "kind": kind,
                    "query": query,
                    "answer": _KEY_FACT.sub(r"\1", answer),
                    "key_facts": _KEY_FACT.findall(answer),
                    "judged": [],
                }
            )
        else:
            grade, _, target = line.strip().partition(" ")
            doc, _, section = target.partition("#")
            queries[-1]["judged"].append({"doc": doc.strip(), "section": section.strip(), "grade": int(grade)})
    return queries


# --- rendering ------------------------------------------------------------------------------------------------


def render_md(doc: Doc) -> bytes:
    out = [f"# {doc.title}", ""]
    for heading, paragraphs in doc.sections:
        out += [f"## {heading}", "", *[p + "\n" for p in paragraphs]]
    return "\n".join(out).encode()


def render_txt(doc: Doc) -> bytes:
    # Plain text has no markup for headings: extraction reads one untitled section, judged as the whole file.
    out = [doc.title, ""]
    for heading, paragraphs in doc.sections:
        if heading:
            out += [heading.upper(), ""]
        out += [p + "\n" for p in paragraphs]
    return "\n".join(out).encode()


def render_html(doc: Doc) -> bytes:
    body = []
    for heading, paragraphs in doc.sections:
        body.append(f"      <h2>{html.escape(heading)}</h2>")
        body += [f"      <p>{html.escape(p)}</p>" for p in paragraphs]
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{html.escape(doc.title)} | Corvane Intranet</title>
</head>
<body>
  <nav><a href="/">Intranet home</a> <a href="/policies">Policies</a> <a href="/products">Products</a></nav>
  <main>
    <article>
      <h1>{html.escape(doc.title)}</h1>
{chr(10).join(body)}
    </article>
  </main>
  <footer>Corvane Robotics internal. Printed copies are uncontrolled.</footer>
</body>
</html>
"""
    return page.encode()


def render_docx(doc: Doc) -> bytes:
    word = WordDocument()
    word.core_properties.title = doc.title
    word.core_properties.created = word.core_properties.modified = BUILT.replace(tzinfo=None)
    word.add_paragraph(doc.title, style="Title")
    for heading, paragraphs in doc.sections:
        word.add_heading(heading, level=1)
        for paragraph in paragraphs:
            word.add_paragraph(paragraph)
    out = io.BytesIO()
    word.save(out)
    return _fixed_zip_times(out.getvalue())


def _fixed_zip_times(data: bytes) -> bytes:
    """The same archive with every entry dated BUILT, so an unchanged document rebuilds to the same bytes."""
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=BUILT.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


def render_pdf(doc: Doc) -> tuple[bytes, list[list[int]]]:
    """The PDF, each section starting on a new page (PDF text has no headings: a chunk's page names its section),
    and the pages each section covers."""
    pdf = FPDF()
    pdf.set_title(doc.title)
    pdf.set_creation_date(BUILT)
    pdf.set_auto_page_break(auto=True, margin=15)
    pages = []
    for index, (heading, paragraphs) in enumerate(doc.sections):
        pdf.add_page()
        first = pdf.page_no()
        if index == 0:
            pdf.set_font("Helvetica", "B", 16)
            pdf.multi_cell(0, 10, doc.title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 13)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        pages.append(list(range(first, pdf.page_no() + 1)))
    return bytes(pdf.output()), pages


_RENDER = {"md": render_md, "txt": render_txt, "html": render_html, "docx": render_docx}


def load() -> tuple[list[Doc], list[dict]]:
    docs: list[Doc] = []
    queries: list[dict] = []
    for path in sorted(SOURCE.glob("*.txt")):
        if path.name.startswith("queries-"):
            queries += parse_queries(path.read_text(), path.stem.removeprefix("queries-"))
        else:
            docs += parse_documents(path.read_text(), path.name)
    return docs, queries


def assign(queries: list[dict]) -> None:
    """Ids and splits stable under appending: the id is the source file's name and the query's position in it
    (`products-007`), and within each file and kind the queries alternate dev, test, dev, ... in source order (test
    first in every other file, so that the files' odd counts cancel): both halves hold each kind equally, give or
    take one, and a query added at the end of a file moves no other."""
    seen: Counter[tuple[str, str]] = Counter()
    numbers: Counter[str] = Counter()
    files = sorted({q["origin"] for q in queries})
    for query in queries:
        origin = query.pop("origin")
        numbers[origin] += 1
        query["id"] = f"{origin}-{numbers[origin]:03d}"
        parity = (seen[(origin, query["kind"])] + files.index(origin)) % 2
        query["split"] = "dev" if parity == 0 else "test"
        seen[(origin, query["kind"])] += 1


def main() -> None:
    docs, queries = load()
    assign(queries)
    manifest = []
    for doc in docs:
        target = DOCS / doc.path
        target.parent.mkdir(parents=True, exist_ok=True)
        sections = [{"heading": heading} for heading, _ in doc.sections]
        if doc.format == "pdf":
            data, pages = render_pdf(doc)
            for section, covered in zip(sections, pages, strict=True):
                section["pages"] = covered
        else:
            data = _RENDER[doc.format](doc)
        if doc.format == "txt":
            sections = [{"heading": ""}]
        target.write_bytes(data)
        words = sum(len(p.split()) for _, paragraphs in doc.sections for p in paragraphs)
        manifest.append(
            {"doc": doc.path, "title": doc.title, "format": doc.format, "words": words, "sections": sections}
        )
    (HERE / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    (HERE / "queries.jsonl").write_text(
        "".join(
            json.dumps({k: q[k] for k in ("id", "query", "kind", "split", "answer", "key_facts")}) + "\n"
            for q in queries
        )
    )
    (HERE / "qrels.jsonl").write_text(
        "".join(json.dumps({"query": q["id"], **judged}) + "\n" for q in queries for judged in q["judged"])
    )
    print(f"{len(docs)} documents, {len(queries)} queries written under {HERE}")


if __name__ == "__main__":
    main()
