"""Text extraction from real bytes of every supported format, and the reasons documents are rejected."""

from __future__ import annotations

import io
import random
import re
import zipfile

import pytest

from agentplatform.errors import DocumentRejected
from functions.ingestion.extract import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    PLAIN_TEXT,
    SUPPORTED_EXTENSIONS,
    Extracted,
    extract,
)
from tests.fixtures.documents import (
    docx_doc,
    encrypted_pdf,
    html_doc,
    image_pdf,
    lines_pdf,
    markdown_doc,
    page_paragraphs,
    text_pdf,
)


def rejected(data: bytes, filename: str) -> DocumentRejected:
    with pytest.raises(DocumentRejected) as caught:
        extract(data, filename)
    return caught.value


def headings(doc: Extracted) -> list[str]:
    return [s.heading for s in doc.sections]


def one_line(text: str) -> str:
    return " ".join(text.split())


# -- every format


@pytest.mark.parametrize(
    ("data", "filename", "content_type"),
    [
        (markdown_doc(), "guides/refunds.md", MARKDOWN),
        (b"Plain\ttext,  with\r\nCRLF lines\x07.\n\n\nSecond paragraph.   ", "notes.txt", PLAIN_TEXT),
        (html_doc(), "help/cafe.html", HTML),
        (docx_doc(), "handbook.docx", DOCX),
        (text_pdf(2), "report.pdf", PDF),
    ],
)
def test_every_format_lays_out_clean_sections_at_their_offsets(data: bytes, filename: str, content_type: str) -> None:
    doc = extract(data, filename)
    assert doc.content_type == content_type
    assert doc.sections
    assert doc.text == "\n\n".join(s.text for s in doc.sections)
    for section in doc.sections:
        assert doc.text[section.start : section.end] == section.text
        assert section.text.strip() == section.text and section.text
    # Hygiene: no control characters but newlines, no runs of spaces, no trailing spaces, no empty paragraphs.
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", doc.text)
    assert "  " not in doc.text and " \n" not in doc.text and "\n\n\n" not in doc.text


def test_the_extension_decides_the_format_whatever_its_case_and_folder() -> None:
    assert extract(text_pdf(1), "tenant-a/Reports/2024/Q1.PDF").content_type == PDF
    assert extract(b"# Title\n\nBody.", "README.Markdown").title == "Title"


# -- plain text


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "cp1252"], ids=lambda e: e.replace("-", "_")
)
def test_text_is_decoded_by_its_byte_order_mark_utf8_or_detection(encoding: str) -> None:
    text = "Le café naïve sert un crème brûlée.\n\nÀ bientôt, déjà vu."
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    doc = extract(data, "menu.txt")
    assert doc.text == text
    assert doc.title == ""
    assert [(s.heading, s.page) for s in doc.sections] == [("", None)]


def test_short_cp1252_text_is_read_as_windows_1252() -> None:
    assert extract("café naïve".encode("cp1252"), "short.txt").text == "café naïve"


def test_text_hygiene_normalizes_newlines_spaces_and_control_characters() -> None:
    data = "Plain\ttext,  with\r\nCRLF lines\x07.\r\rSecond\u00a0paragraph\u200b.   ".encode()
    assert extract(data, "notes.txt").text == "Plain text, with\nCRLF lines.\n\nSecond paragraph."


def test_binary_data_named_txt_is_corrupt() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
    assert rejected(png, "image.txt").context["reason"] == "corrupt"
    control_heavy = b"\x01\x02\x03\x04 some text \x05\x06\x07\x08" * 50  # valid UTF-8, but not text
    error = rejected(control_heavy, "dump.txt")
    assert error.context["reason"] == "corrupt" and "binary" in error.detail


# -- Markdown


def test_markdown_sections_split_at_atx_and_setext_headings() -> None:
    doc = extract(markdown_doc(), "refunds.md")
    assert doc.title == "Refund Policy"
    assert headings(doc) == ["Refund Policy", "Eligibility", "Shipping Costs", "Contact Us"]
    first, eligibility, shipping, contact = doc.sections
    assert first.text.startswith("Refund Policy\n\nCustomers can ask for a refund within 30 days.")
    assert eligibility.text == "Eligibility\n\nUnused licenses\nAnnual plans, prorated"
    assert shipping.text.startswith("Shipping Costs\n\nShipping costs are not refundable.")
    assert contact.text == "Contact Us\n\nWrite to support@example.com."


def test_markdown_keeps_text_and_drops_syntax_urls_comments_and_front_matter() -> None:
    text = extract(markdown_doc(), "refunds.md").text
    assert "See the billing FAQ or\na diagram of the flow for details." in text  # link and image text kept
    assert "def refund(order):\nreturn order.total" in text  # code kept (its indentation collapsed)
    for gone in ("https://", "flow.png", "internal note", "layout: post", "**", "`", "```", "](", "---", "==="):
        assert gone not in text


def test_nested_markdown_headings_name_the_section_by_the_innermost() -> None:
    doc = extract(b"# Manual\n## Install\n### On Linux\nRun the installer.\n## Use\nOpen it.", "manual.md")
    assert doc.title == "Manual"
    assert headings(doc) == ["On Linux", "Use"]
    assert doc.sections[0].text == "Manual\n\nInstall\n\nOn Linux\n\nRun the installer."


def test_each_section_keeps_the_path_of_headings_it_sits_under() -> None:
    markdown = (
        b"# Manual\n## Install\n### On Linux\nRun it.\n#### Proxy\nSet it.\n### On Mac\nDrag it.\n## Use\nOpen it."
    )
    html = (
        b"<body><h1>Manual</h1><h2>Install</h2><h3>On Linux</h3><p>Run it.</p><h4>Proxy</h4><p>Set it.</p>"
        b"<h3>On Mac</h3><p>Drag it.</p><h2>Use</h2><p>Open it.</p></body>"
    )
    expected = [
        ("Manual", "Install", "On Linux"),
        ("Manual", "Install", "On Linux", "Proxy"),
        ("Manual", "Install", "On Mac"),  # a heading closes the open ones of its level and deeper
        ("Manual", "Use"),
    ]
    for data, name in ((markdown, "manual.md"), (html, "manual.html")):
        assert [tuple(s.heading_path) for s in extract(data, name).sections] == expected, name
    assert [s.heading_path[-1] for s in extract(markdown, "manual.md").sections] == [
        "On Linux",
        "Proxy",
        "On Mac",
        "Use",
    ]


def test_a_skipped_heading_level_still_nests_and_a_text_format_has_no_path() -> None:
    doc = extract(b"## Setup\nIntro.\n#### Keys\nRotate them.\n# Appendix\nMore.", "notes.md")
    assert [tuple(s.heading_path) for s in doc.sections] == [("Setup",), ("Setup", "Keys"), ("Appendix",)]
    assert [tuple(s.heading_path) for s in extract(b"Just text.\n\nMore text.", "notes.txt").sections] == [()]


def test_markdown_tables_keep_their_cells() -> None:
    doc = extract(b"| Plan | Price |\n|------|------:|\n| Pro | $10 |", "prices.md")
    assert doc.text == "Plan | Price\nPro | $10"


# -- HTML


@pytest.mark.parametrize("charset", ["utf-8", "windows-1252", "iso-8859-1"])
def test_html_main_content_is_kept_and_boilerplate_removed(charset: str) -> None:
    doc = extract(html_doc(charset), "cafe.html")
    assert doc.title == "Le café naïve"  # og:title, without the site name <title> appends
    assert headings(doc) == ["Le café naïve", "Opening hours", "Holidays"]
    assert "Our café serves espresso and tea.\nOpen daily." in doc.text
    assert "From 8:00 to 18:00, except holidays." in doc.text
    assert "New Year\n\nBastille Day" in doc.text
    assert "Drink | Price\nEspresso | 2 €" in doc.text
    assert "line one\nline two" in doc.text
    boilerplate = ["Pricing", "cookies", "Guides", "analytics", "console", "Related", "Popular", "rights", "JavaScript"]
    assert [word for word in boilerplate if word in doc.text] == []


def test_html_without_main_drops_chrome_but_keeps_a_layout_wrapper() -> None:
    page = b"""<html><head><title>Status</title></head><body>
      <header>Acme</header><div role="navigation">Docs Blog</div>
      <div class="layout has-sidebar">
        <div class="content"><h2>Incidents</h2><p>No incidents today.</p></div>
        <div class="sidebar-left">Archive</div>
        <div id="gdpr">Consent please</div>
      </div>
      <form><input name="q"> Search</form>
      <footer>Contact</footer>
    </body></html>"""
    doc = extract(page, "status.htm")
    assert doc.title == "Status"
    assert doc.text == "Incidents\n\nNo incidents today."


def test_html_title_falls_back_to_the_first_h1() -> None:
    assert extract(b"<body><h1>Only heading</h1><p>Text.</p></body>", "page.html").title == "Only heading"


def test_html_declared_charset_is_honoured_without_a_byte_order_mark() -> None:
    page = '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>Привет, мир</p>'
    assert extract(page.encode("koi8-r"), "ru.html").text == "Привет, мир"


# -- PDF


def test_pdf_has_a_section_per_page_with_its_number_and_the_metadata_title() -> None:
    doc = extract(text_pdf(3, title="Operations 2024"), "ops.pdf")
    assert doc.title == "Operations 2024"
    assert doc.pages == 3
    assert [(s.page, s.heading) for s in doc.sections] == [(1, ""), (2, ""), (3, "")]
    for section in doc.sections:
        assert one_line(section.text) == one_line(" ".join(page_paragraphs(section.page or 0)))


def test_pdf_bookmarks_open_sections_at_the_lines_they_name_and_nest_by_level() -> None:
    pages = [
        ["Trek Service Manual", "Read this first.", "Safety", "Wear gloves.", "Batteries", "Charge at 20 C."],
        ["Keep packs dry.", "Storage", "Store at 15 C."],
        ["Return used packs to the dealer."],  # its bookmark's title is not printed
    ]
    marks = [(1, "Safety", 0), (1, "Batteries", 1), (2, "Storage", 0), (3, "Disposal", 0)]
    doc = extract(lines_pdf(pages, bookmarks=marks), "manual.pdf")
    assert [(s.page, s.heading, tuple(s.heading_path)) for s in doc.sections] == [
        (1, "", ()),
        (1, "Safety", ("Safety",)),
        (1, "Batteries", ("Safety", "Batteries")),
        (2, "Batteries", ("Safety", "Batteries")),  # a section going on over the page break keeps its heading
        (2, "Storage", ("Storage",)),
        (3, "Disposal", ("Disposal",)),
    ]
    assert [s.text for s in doc.sections][1:4] == [
        "Safety\n\nWear gloves.",
        "Batteries\n\nCharge at 20 C.",
        "Keep packs dry.",
    ]
    assert doc.sections[5].text == "Disposal\n\nReturn used packs to the dealer."


def test_pdf_skips_empty_pages_but_keeps_page_numbers_and_joins_hyphenated_words() -> None:
    doc = extract(lines_pdf([["Cover"], [], ["The extrac-", "tion of self-", "Service pages."]]), "gap.pdf")
    assert doc.pages == 3
    assert [(s.page, s.text) for s in doc.sections] == [(1, "Cover"), (3, "The extraction of self-\nService pages.")]
    assert doc.title == ""


def test_pdf_office_title_prefix_is_dropped() -> None:
    assert extract(lines_pdf([["Body"]], title="Microsoft Word - Plan"), "plan.pdf").title == "Plan"


def test_image_only_pdf_has_no_text_and_says_ocr_is_not_supported() -> None:
    error = rejected(image_pdf(), "scan.pdf")
    assert error.context["reason"] == "no_text"
    assert "OCR" in error.detail


def test_encrypted_pdf_is_rejected_as_encrypted() -> None:
    error = rejected(encrypted_pdf(), "secret.pdf")
    assert error.context["reason"] == "encrypted"
    assert "password" in error.detail


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n" + random.Random(7).randbytes(4096),
        text_pdf(2)[: len(text_pdf(2)) // 2],
        b"%PDF-1.4\n%%EOF",
    ],
    ids=["garbage", "truncated", "empty-body"],
)
def test_corrupt_pdf_is_rejected_as_corrupt(data: bytes) -> None:
    error = rejected(data, "broken.pdf")
    assert error.context["reason"] == "corrupt"
    assert error.detail.startswith("broken.pdf: ") and "PDF" in error.detail


# -- DOCX


def test_docx_headings_open_sections_and_tables_become_rows() -> None:
    doc = extract(docx_doc(), "handbook.docx")
    assert doc.title == "Employee Handbook"  # the first Title paragraph: the core title is empty
    assert headings(doc) == ["Employee Handbook", "Leave", "Sick leave", "Expenses"]
    assert (
        doc.sections[2].text == "Sick leave\n\nTell your manager before 10:00.\n\nType | Days\nAnnual | 25\nSick | 10"
    )
    assert doc.sections[3].text == "Expenses\n\nReceipts required\nTravel | Meals"  # a merged cell, written once
    # Title sits above Heading 1: every section is under the handbook's title
    assert [tuple(s.heading_path) for s in doc.sections][1:] == [
        ("Employee Handbook", "Leave"),
        ("Employee Handbook", "Leave", "Sick leave"),
        ("Employee Handbook", "Expenses"),
    ]


def test_docx_core_title_wins() -> None:
    assert extract(docx_doc(core_title="Handbook 2025"), "handbook.docx").title == "Handbook 2025"


def test_docx_that_is_not_a_word_document_is_corrupt() -> None:
    assert rejected(b"plain text, not a zip", "fake.docx").context["reason"] == "corrupt"
    other_zip = io.BytesIO()
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("notes.txt", "hello")
    error = rejected(other_zip.getvalue(), "archive.docx")
    assert error.context["reason"] == "corrupt" and "Word document" in error.detail


# -- rejections that do not depend on the format


def test_unknown_extension_is_unsupported_and_the_detail_lists_the_supported_ones() -> None:
    error = rejected(b"PK\x03\x04", "slides.pptx")
    assert error.context["reason"] == "unsupported_format"
    assert "'.pptx'" in error.detail and all(ext in error.detail for ext in SUPPORTED_EXTENSIONS)
    assert rejected(b"text", "Makefile").context["reason"] == "unsupported_format"


@pytest.mark.parametrize(("data", "filename"), [(b"", "empty.pdf"), (b"", "empty.md"), (b" \r\n\t\n", "blank.txt")])
def test_empty_documents_have_no_text(data: bytes, filename: str) -> None:
    assert rejected(data, filename).context["reason"] == "no_text"


def test_documents_with_only_boilerplate_have_no_text() -> None:
    page = b"<html><body><nav>Home</nav><script>x()</script><footer>Legal</footer></body></html>"
    assert rejected(page, "menu.html").context["reason"] == "no_text"


def test_pdfs_extracted_from_many_threads_at_once_are_read_one_at_a_time() -> None:
    # PDFium is not thread-safe: concurrent use from threads (the local runtime, the extract stage's readers)
    # crashed the process before extraction took its lock.
    from concurrent.futures import ThreadPoolExecutor

    documents = [text_pdf(3, title=f"Bulletin {n}") for n in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda data: extract(data, "bulletin.pdf"), documents))
    assert [r.title for r in results] == [f"Bulletin {n}" for n in range(16)]
    assert all(r.pages == 3 for r in results)


def test_markdown_reads_indented_code_nested_lists_and_tables_as_commonmark_does() -> None:
    doc = extract(
        b"# Runbook\n\nRun:\n\n    systemctl restart agent\n\nSteps:\n\n1. Stop the service\n   - drain the queue\n"
        b"   - wait for `E-4012` to clear\n2. Restart it\n\n"
        b"| Code | Meaning |\n|---|---|\n| E-4012 | **queue full** |\n\n"
        b"A [link](https://example.com/x) and <span>raw html</span>.\n",
        "runbook.md",
    )
    assert doc.title == "Runbook"
    assert doc.text.split("\n\n") == [
        "Runbook",
        "Run:",
        "systemctl restart agent",  # indented code: its content, without the indentation
        "Steps:",
        "Stop the service\ndrain the queue\nwait for E-4012 to clear\nRestart it",  # one block, nested items too
        "Code | Meaning\nE-4012 | queue full",
        "A link and raw html.",
    ]
