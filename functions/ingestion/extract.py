"""Text extraction: a document's bytes in, its title and text out, as sections carrying a heading and a page.

Pure: no AWS and no I/O besides the bytes given. Whatever goes wrong becomes a DocumentRejected whose `reason`
(in its context) the pipeline records on the document: "unsupported_format", "corrupt", "encrypted" or "no_text".
Retrying never helps, so no library exception escapes as anything else.

Every format goes through one `_Outline`, which applies the same text hygiene (newlines normalized, control
characters removed, runs of spaces collapsed, lines stripped, paragraphs split at blank lines) and lays the
sections out in `Extracted.text`, so offsets mean the same thing for every format.
"""

from __future__ import annotations

import codecs
import functools
import io
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import charset_normalizer
import docx
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from bs4 import BeautifulSoup, Tag
from bs4.element import NavigableString, PageElement, PreformattedString
from docx.table import Table

from agentplatform.errors import DocumentRejected

MARKDOWN = "text/markdown"
PLAIN_TEXT = "text/plain"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

_CONTENT_TYPES = {
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".txt": PLAIN_TEXT,
    ".text": PLAIN_TEXT,
    ".html": HTML,
    ".htm": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_CONTENT_TYPES)

PARAGRAPH_BREAK = "\n\n"  # between paragraphs of a section, and between sections in Extracted.text


@dataclass(frozen=True)
class Section:
    text: str  # paragraphs joined by PARAGRAPH_BREAK; a section opens with its heading line(s), if any
    heading: str  # the nearest heading above it ("" if none); for nested headings the innermost
    page: int | None  # 1-based page number (PDF only); a PDF section never spans pages
    start: int  # offset of `text` in Extracted.text
    # The headings it sits under, outermost first, ending with `heading` ("Guide", "Security", "Certificates");
    # empty where the document has no heading levels (plain text, a PDF without bookmarks).
    heading_path: Sequence[str] = ()

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True)
class Extracted:
    title: str
    text: str  # the sections' texts joined by PARAGRAPH_BREAK
    sections: list[Section]
    content_type: str
    pages: int | None  # PDF page count (empty pages included)


def extract(data: bytes, filename: str) -> Extracted:
    """The title, text and sections of a document, read by its file extension (case-insensitive).

    Raises DocumentRejected with reason "unsupported_format", "corrupt", "encrypted" or "no_text"."""
    name = PurePosixPath(filename).name
    suffix = PurePosixPath(name).suffix.lower()
    content_type = _CONTENT_TYPES.get(suffix)
    if content_type is None:
        kind = f"the extension {suffix!r}" if suffix else "a file without an extension"
        supported = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        raise DocumentRejected(f"{name}: {kind} is not supported; supported: {supported}", reason="unsupported_format")
    if not data:
        raise DocumentRejected(f"{name}: the file is empty", reason="no_text")
    extracted = _READERS[content_type](data, name)
    if not extracted.sections:
        raise DocumentRejected(
            f"{name}: no extractable text: the document is empty or holds only images (OCR is not supported)",
            reason="no_text",
        )
    return extracted


# --- text hygiene -------------------------------------------------------------------------------------------

_NEWLINES = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
# Control characters (tab and newline excepted), and invisible ones that only split words for search: soft
# hyphen, zero-width space, word joiner, stray byte-order marks.
_INVISIBLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\xad\u200b\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\xa0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{2,}")


def _paragraphs(text: str) -> list[str]:
    """Clean text split into paragraphs at blank lines; lines inside a paragraph are kept."""
    text = unicodedata.normalize("NFC", _NEWLINES.sub("\n", text))
    text = _SPACES.sub(" ", _INVISIBLE.sub("", text))
    lines = "\n".join(line.strip() for line in text.split("\n"))
    return [p for p in _BLANK_LINES.split(lines) if p.strip()]


def _one_line(text: str) -> str:
    return " ".join(" ".join(_paragraphs(text)).split())


@dataclass
class _Draft:
    heading: str
    page: int | None
    paragraphs: list[str] = field(default_factory=list)
    heading_path: tuple[str, ...] = ()


class _Outline:
    """Headings and paragraphs in reading order, gathered into sections.

    A heading opens a new section and is its first line. Headings with no text of their own before the next
    heading (a chapter title followed by a subsection's) open the following section together, so no section is
    a bare heading; the innermost one names it. Each section also keeps the path of headings it sits under, by
    their levels (a heading closes every open heading of its level or deeper)."""

    def __init__(self) -> None:
        self._drafts: list[_Draft] = []
        self._headings: list[str] = []
        self._open: list[tuple[int, str]] = []  # (level, heading) of the headings the text is under

    def heading(self, text: str, level: int) -> None:
        if line := _one_line(text):
            self._headings.append(line)
            while self._open and self._open[-1][0] >= level:
                self._open.pop()
            self._open.append((level, line))

    def _path(self) -> tuple[str, ...]:
        return tuple(heading for _, heading in self._open)

    def paragraph(self, text: str, page: int | None = None) -> None:
        paragraphs = _paragraphs(text)
        if not paragraphs:
            return
        current = self._drafts[-1] if self._drafts else None
        if self._headings or current is None or current.page != page:
            # A section going on over a page break keeps its heading (PDF pages are sections of their own).
            heading = self._headings[-1] if self._headings else (self._open[-1][1] if self._open else "")
            current = _Draft(heading, page, list(self._headings), self._path())
            self._drafts.append(current)
            self._headings = []
        current.paragraphs.extend(paragraphs)

    def build(self, title: str, content_type: str, pages: int | None = None) -> Extracted:
        if self._headings:  # trailing headings with nothing under them: still text of the document
            self._drafts.append(_Draft(self._headings[-1], None, self._headings, self._path()))
            self._headings = []
        sections: list[Section] = []
        offset = 0
        for draft in self._drafts:
            text = PARAGRAPH_BREAK.join(draft.paragraphs)
            sections.append(
                Section(
                    text=text, heading=draft.heading, page=draft.page, start=offset, heading_path=draft.heading_path
                )
            )
            offset += len(text) + len(PARAGRAPH_BREAK)
        return Extracted(
            title=_one_line(title),
            text=PARAGRAPH_BREAK.join(s.text for s in sections),
            sections=sections,
            content_type=content_type,
            pages=pages,
        )


# --- decoding -----------------------------------------------------------------------------------------------

# UTF-32 before UTF-16: the UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control characters, replacement characters and private-use code points: rare in text, common in decoded binary.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd\ue000-\uf8ff]")
_MAX_UNPRINTABLE = 0.05
_SAMPLE = 65536
_CP1252_MARGIN = 0.1


def _decode(data: bytes, name: str, declared: str | None = None) -> str:
    """Bytes to text: a byte-order mark first, then strict UTF-8, then the encoding the document declares, then
    charset-normalizer's guess. UTF-8 goes before the declared encoding because pages labelled with a legacy
    code page are often UTF-8 in fact, while legacy text is almost never valid UTF-8 by chance. Binary data is
    rejected as corrupt."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as error:
                raise DocumentRejected(f"{name}: invalid {codec} text ({error.reason})", reason="corrupt") from error
    if b"\x00" in data:
        raise DocumentRejected(f"{name}: binary data (NUL bytes), not text", reason="corrupt")
    text = _decode_as(data, "utf-8")
    if text is None and declared:
        text = _decode_as(data, declared)
    if text is None:
        text = _guess(data)
    if text is None:
        raise DocumentRejected(f"{name}: the text's character encoding could not be detected", reason="corrupt")
    sample = text[:_SAMPLE]
    if len(_UNPRINTABLE.findall(sample)) > _MAX_UNPRINTABLE * len(sample):
        raise DocumentRejected(f"{name}: binary data (mostly unprintable characters), not text", reason="corrupt")
    return text


def _decode_as(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _guess(data: bytes) -> str | None:
    try:
        matches = charset_normalizer.from_bytes(data)
    except Exception:  # the detector is a heuristic; its failure is "could not detect", not a crash
        return None
    if not matches:
        return None
    # Single-byte code pages decode the same bytes alike but for a few letters, and the detector's "chaos" (the
    # share of text that looks garbled) barely tells them apart on short texts: it reads French as Baltic cp1257.
    # Windows-1252 is the legacy encoding of most Western documents (and what "latin-1" means on the web), so it
    # wins whenever its decoding is within _CP1252_MARGIN of the cleanest; Cyrillic, Greek or CJK bytes decode as
    # garbage in cp1252 and are far outside it.
    least = min(m.chaos for m in matches)
    if any("cp1252" in m.could_be_from_charset and m.chaos <= least + _CP1252_MARGIN for m in matches):
        return _decode_as(data, "cp1252")
    best = matches.best()
    return str(best) if best is not None else None


# --- plain text and Markdown --------------------------------------------------------------------------------


def _read_text(data: bytes, name: str) -> Extracted:
    outline = _Outline()
    outline.paragraph(_decode(data, name))
    return outline.build("", PLAIN_TEXT)


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][\w-]*(?:\s[^<>]*)?/?>")


@functools.cache
def _markdown_parser() -> Any:
    # CommonMark (indented code, nested lists, setext headings, reference links, as the spec reads them) plus GFM
    # tables. markdown-it-py is pure Python and already in the layer (rich depends on it).
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable("table")


def _inline_text(token: Any) -> str:
    """An inline token's text: emphasis, links and raw tags lose their syntax, images keep their alt text, code
    spans their code, and line breaks stay line breaks."""
    out: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif child.type == "image":
            out.append(_inline_text(child))
    return "".join(out)


def _read_markdown(data: bytes, name: str) -> Extracted:
    """Markdown parsed by a CommonMark parser: headings open sections (the first level-1 one is the title);
    paragraphs, list items (nested ones too) and table rows keep their text; code keeps its content; front
    matter, comments, raw HTML tags, rules and link definitions go."""
    text = _HTML_COMMENT.sub("", _FRONT_MATTER.sub("", _NEWLINES.sub("\n", _decode(data, name)), count=1))
    outline = _Outline()
    title = ""
    block: list[str] = []  # the lines of the list or table being read: one paragraph in the end
    depth = 0  # inside how many lists and tables
    row: list[str] = []
    tokens = _markdown_parser().parse(text)
    for index, token in enumerate(tokens):
        kind = token.type
        if kind == "heading_open":
            heading = _one_line(_inline_text(tokens[index + 1]))
            outline.heading(heading, int(token.tag[1:]))
            if token.tag == "h1" and not title:
                title = heading
        elif kind in ("bullet_list_open", "ordered_list_open", "table_open"):
            depth += 1
        elif kind in ("bullet_list_close", "ordered_list_close", "table_close"):
            depth -= 1
            if depth == 0:
                outline.paragraph("\n".join(block))
                block = []
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close":
            block.append(" | ".join(row))
        elif kind == "inline" and tokens[index - 1].type in ("th_open", "td_open"):
            row.append(_one_line(_inline_text(token)))
        elif kind == "inline" and tokens[index - 1].type == "paragraph_open":
            paragraph = _inline_text(token)
            if depth:
                block.append(paragraph)
            else:
                outline.paragraph(paragraph)
        elif kind in ("fence", "code_block"):
            (block.append if depth else outline.paragraph)(token.content.strip("\n"))
        elif kind == "html_block":
            (block.append if depth else outline.paragraph)(_HTML_TAG.sub("", token.content))
    return outline.build(title, MARKDOWN)


# --- HTML ---------------------------------------------------------------------------------------------------
# BeautifulSoup over lxml: python-docx already ships lxml, so HTML costs the Lambda one small pure-Python package,
# and lxml's libxml2 parser recovers from the broken markup real pages are made of. selectolax (Lexbor) parses
# faster, but parsing is not where the time goes for pages of a few hundred kilobytes.

_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
# As browsers do (WHATWG Encoding): a page labelled latin-1 or ASCII is decoded as Windows-1252.
_WINDOWS_1252_LABELS = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "ascii", "us-ascii"}

_NEVER_CONTENT = {"script", "style", "noscript", "template", "svg", "iframe", "object", "embed", "head"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = {
    "address", "article", "blockquote", "body", "caption", "dd", "details", "dialog", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "hr", "li", "main", "ol", "p", "section", "summary", "ul",
}  # fmt: skip
_BOILERPLATE_ROLES = {"navigation", "banner", "contentinfo"}
# A class or id that names page chrome, matched against a whole token ("site-footer", "cookie_banner",
# "breadcrumbs"), never a part of one, so "has-sidebar" on a layout wrapper does not match.
_BOILERPLATE_NAME = re.compile(
    r"(?:(?:site|page|main|top|global|primary|mobile|header)[-_]?)?"
    r"(?:nav|navbar|navigation|menu|menubar|footer|sidebar|breadcrumbs?|cookies?|"
    r"cookie[-_]?(?:banner|consent|notice|bar|popup)|consent|gdpr|skip[-_]?links?)"
    r"(?:[-_](?:wrapper|container|area|bar|links|left|right|banner))?",
    re.IGNORECASE,
)


def _read_html(data: bytes, name: str) -> Extracted:
    text = _decode(data, name, declared=_declared_charset(data))
    try:
        soup = BeautifulSoup(text, "lxml")
    except Exception as error:  # lxml recovers from almost anything; what it cannot parse is not HTML
        raise DocumentRejected(f"{name}: the HTML could not be parsed ({error})", reason="corrupt") from error
    title = _html_title(soup)
    outline = _Outline()
    _walk_html(_html_content_root(soup), outline)
    return outline.build(title, HTML)


def _declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    if match is None:
        return None
    label = match.group(1).decode("ascii", "ignore").lower()
    if label.startswith(("utf-16", "utf-32")):  # a label the page could not have been read with: ignored
        return None
    return "cp1252" if label in _WINDOWS_1252_LABELS else label


def _html_title(soup: BeautifulSoup) -> str:
    # og:title first: it is the page's own title, where <title> usually appends the site's name.
    for candidate in (soup.find("meta", attrs={"property": "og:title"}), soup.title, soup.find("h1")):
        if isinstance(candidate, Tag):
            text = candidate.get("content") if candidate.name == "meta" else candidate.get_text(" ")
            if isinstance(text, str) and text.strip():
                return text
    return ""


def _html_content_root(soup: BeautifulSoup) -> Tag:
    """<main> when the page marks its main content; else its one <article>; else the whole body."""
    main = soup.find("main") or soup.find(role="main")
    if isinstance(main, Tag):
        return main
    articles = soup.find_all("article")
    if len(articles) == 1 and isinstance(articles[0], Tag):
        return articles[0]
    return soup.body or soup


def _is_boilerplate(tag: Tag, in_content: bool) -> bool:
    """Page chrome rather than the document: navigation, banners, footers, cookie notices, sidebars, forms.

    Conservative: an element holding <main> or an <article> is never dropped, and inside an article (or
    <main>) header, footer and aside are the article's own, so only navigation and named chrome go there."""
    if tag.name in _NEVER_CONTENT or tag.has_attr("hidden") or tag.get("aria-hidden") == "true":
        return True
    role = str(tag.get("role", "")).lower()
    names = [*tag.get_attribute_list("class"), tag.get("id")]
    named = role in _BOILERPLATE_ROLES or any(isinstance(n, str) and _BOILERPLATE_NAME.fullmatch(n) for n in names)
    structural = tag.name == "nav" or (not in_content and tag.name in {"header", "footer", "aside", "form"})
    if not (named or structural) or tag.name in {"main", "article", "body", "html"}:
        return False
    return tag.find(["main", "article"]) is None and tag.find(role="main") is None


def _walk_html(root: Tag, outline: _Outline) -> None:
    """Reading-order walk: inline text gathers into a paragraph until a block element starts or ends."""
    words: list[str] = []

    def flush() -> None:
        outline.paragraph("".join(words))
        words.clear()

    in_content = root.name in {"main", "article"} or root.find_parent(["main", "article"]) is not None
    stack: list[tuple[PageElement | None, bool]] = [(root, in_content)]
    while stack:
        node, inside = stack.pop()
        if node is None:  # the end of a block element
            flush()
        elif isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, CDATA, doctypes
                words.append(re.sub(r"\s+", " ", str(node)))
        elif not isinstance(node, Tag) or _is_boilerplate(node, inside):
            continue
        elif node.name in _HEADINGS:
            flush()
            outline.heading(node.get_text(" "), int(node.name[1:]))
        elif node.name == "br":
            words.append("\n")
        elif node.name == "pre":
            flush()
            outline.paragraph(node.get_text())
        elif node.name == "table":
            flush()
            outline.paragraph("\n".join(_html_rows(node)))
        else:
            inside = inside or node.name in {"main", "article"}
            if node.name in _BLOCKS:
                flush()
                stack.append((None, inside))
            stack.extend((child, inside) for child in reversed(node.contents))
    flush()


def _html_rows(table: Tag) -> Iterator[str]:
    for row in table.find_all("tr"):
        cells = [_one_line(cell.get_text(" ")) for cell in row.find_all(["td", "th"], recursive=False)]
        if any(cells):
            yield " | ".join(cells)


# --- PDF ----------------------------------------------------------------------------------------------------
# pypdfium2 (PDFium, Chrome's PDF engine): on a 300-page text PDF it extracts the same text as pypdf in a third of
# the time (0.5-0.8 s against 2.0-2.5 s here), and its one native library needs no other package.

_OFFICE_TITLE = re.compile(r"^Microsoft (?:Word|PowerPoint|Excel) - ")
# PDFium marks a hyphen that ends a line with \x02 and drops the line break, so "self-Service" and "extrac-tion"
# alike read as one word. The hyphen and the break are restored, then joined only between lowercase letters:
# "extraction", but "self-\nService" and "COVID-\n19".
_PDFIUM_LINE_END_HYPHEN = "\x02"
_HYPHENATED = re.compile(r"(?<=[a-z])-\n(?=[a-z])")


# PDFium is not thread-safe: one document at a time per process. A Lambda container runs one invocation at a time
# anyway; the local runtime runs every function's invocations, and the extract stage's readers, in one process.
_PDFIUM = threading.Lock()


def _read_pdf(data: bytes, name: str) -> Extracted:
    with _PDFIUM:
        return _read_pdf_alone(data, name)


def _read_pdf_alone(data: bytes, name: str) -> Extracted:
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as error:
        if error.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise DocumentRejected(f"{name}: the PDF is encrypted and needs a password", reason="encrypted") from error
        raise DocumentRejected(f"{name}: not a readable PDF ({error})", reason="corrupt") from error
    except Exception as error:
        raise DocumentRejected(f"{name}: not a readable PDF ({error})", reason="corrupt") from error
    outline = _Outline()
    try:
        title = _OFFICE_TITLE.sub("", pdf.get_metadata_value("Title"))
        pages = len(pdf)
        bookmarks = _pdf_bookmarks(pdf, pages)
        for index in range(pages):
            page = pdf[index]
            textpage = page.get_textpage()
            # get_text_bounded, not get_text_range: the latter is limited to UCS-2 and drops astral characters.
            text = textpage.get_text_bounded()
            textpage.close()
            page.close()
            text = _NEWLINES.sub("\n", text).replace(_PDFIUM_LINE_END_HYPHEN, "-\n")
            _pdf_page(outline, _HYPHENATED.sub("", text), bookmarks.get(index, []), index + 1)
    except Exception as error:
        raise DocumentRejected(f"{name}: the PDF's pages could not be read ({error})", reason="corrupt") from error
    finally:
        pdf.close()
    return outline.build(title, PDF, pages)


def _pdf_bookmarks(pdf: pdfium.PdfDocument, pages: int) -> dict[int, list[tuple[str, int]]]:
    """The PDF's outline (bookmarks: what Word, LibreOffice and LaTeX export from headings) as (title, level) by
    page index, in outline order; bookmarks without a title or a page in the document are left out."""
    marks: dict[int, list[tuple[str, int]]] = {}
    for bookmark in pdf.get_toc():
        destination = bookmark.get_dest()
        index = destination.get_index() if destination is not None else None
        title = _one_line(bookmark.get_title() or "")
        if title and index is not None and 0 <= index < pages:
            marks.setdefault(index, []).append((title, bookmark.level + 1))
    return marks


def _pdf_page(outline: _Outline, text: str, marks: list[tuple[str, int]], page: int) -> None:
    """One page's text, with its bookmarks opening sections: where a line reads as the bookmark's title, the
    section starts there (the line is its heading); a title the page does not print opens one where the text
    so far ends."""
    rest = text
    for title, level in marks:
        wanted = title.casefold()
        offset = 0
        for line in rest.split("\n"):
            if _one_line(line).casefold() == wanted:
                outline.paragraph(rest[:offset].rstrip("\n"), page=page)
                rest = rest[offset + len(line) :].lstrip("\n")
                break
            offset += len(line) + 1
        outline.heading(title, level)
    outline.paragraph(rest, page=page)


# --- DOCX ---------------------------------------------------------------------------------------------------

_DOCX_HEADING = re.compile(r"Heading ([1-9])|Title")


def _read_docx(data: bytes, name: str) -> Extracted:
    """Body paragraphs and tables in document order; Title and Heading N paragraphs open sections. Headers,
    footers, comments and text boxes are left out."""
    try:
        document = docx.Document(io.BytesIO(data))
        outline = _Outline()
        first_heading = ""
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                outline.paragraph("\n".join(_docx_rows(block)))
                continue
            style = block.style.name if block.style is not None else ""
            if style and (level := _DOCX_HEADING.fullmatch(style)):
                outline.heading(block.text, int(level.group(1) or 0))  # Title: above Heading 1
                if not first_heading and style in {"Title", "Heading 1"}:
                    first_heading = block.text
            else:
                outline.paragraph(block.text)
        title = document.core_properties.title or first_heading
    except Exception as error:
        raise DocumentRejected(f"{name}: not a readable Word document ({error})", reason="corrupt") from error
    return outline.build(title, DOCX)


def _docx_rows(table: Table) -> Iterator[str]:
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans: keep its text once.
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(_one_line(cell.text))
        if any(cells):
            yield " | ".join(cells)


_READERS: dict[str, Callable[[bytes, str], Extracted]] = {
    MARKDOWN: _read_markdown,
    PLAIN_TEXT: _read_text,
    HTML: _read_html,
    PDF: _read_pdf,
    DOCX: _read_docx,
}
