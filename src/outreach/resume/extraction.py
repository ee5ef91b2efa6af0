"""Reading text out of an uploaded resume. Runs inside a parsing-pool worker.

Everything here works on untrusted bytes: the type is decided by content
(magic bytes, then a successful parse), a DOCX's zip directory is checked
(entry count, declared uncompressed size, no DTDs or entities in its XML)
before anything is extracted, and pypdf's own decompression limits are kept.
The worker's time and memory limits (``kit.parsing_pool``) catch the rest.

The result is a plain dict (it crosses a process boundary). A bad file raises
:class:`ExtractionError` with a stable code the service turns into a 4xx.
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from outreach.kit.parsing_pool import preload_in_workers

preload_in_workers("pypdf", "docx", "lxml.etree", __name__)

MAX_PDF_PAGES = 20
MAX_DOCX_ENTRIES = 500
MAX_DOCX_UNCOMPRESSED_BYTES = 40 * 1024 * 1024
MAX_DOCX_RATIO = 200  # uncompressed / compressed, per entry
MIN_TEXT_CHARS = 40
_PROLOG_BYTES = 64 * 1024

_GARBLED = re.compile(r"[\ufffd\ue000-\uf8ff\x00-\x08\x0b\x0c\x0e-\x1f]|\(cid:\d+\)")
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


class ExtractionError(Exception):
    """A file we will not read; ``code`` is stable, ``message`` is for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def detect_kind(data: bytes) -> str:
    """``pdf`` or ``docx`` from the first bytes (and, for a zip, its directory)."""
    if not data:
        raise ExtractionError("empty_file", "the file is empty")
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return "docx"
    raise ExtractionError(
        "unsupported_file_type", "only PDF and DOCX resumes are accepted (by content, not name)"
    )


def extract_document(data: bytes) -> dict[str, Any]:
    """Text and layout facts of a PDF or DOCX resume (the parsing pool's task)."""
    kind = detect_kind(data)
    result = _extract_pdf(data) if kind == "pdf" else _extract_docx(data)
    text = result["text"]
    visible = re.sub(r"\s", "", text)
    if len(visible) < MIN_TEXT_CHARS:
        if kind == "pdf":
            raise ExtractionError(
                "no_text_layer",
                "this PDF has no text layer (a scan or an image); export the resume from "
                "your editor as a text PDF, or upload the DOCX",
            )
        raise ExtractionError("no_text", "this document contains no text")
    result["kind"] = kind
    result["garbled_ratio"] = round(len(_GARBLED.findall(text)) / max(len(visible), 1), 4)
    return result


# PDF


def _extract_pdf(data: bytes) -> dict[str, Any]:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _open_without_password(reader):
            raise ExtractionError(
                "encrypted_pdf", "this PDF is password-protected; upload a copy without a password"
            )
        page_count = len(reader.pages)
        if page_count > MAX_PDF_PAGES:
            raise ExtractionError(
                "too_many_pages",
                f"a resume has at most {MAX_PDF_PAGES} pages; this has {page_count}",
            )
        pages = [_read_pdf_page(page) for page in reader.pages]
    except ExtractionError:
        raise
    except FileNotDecryptedError as exc:
        raise ExtractionError("encrypted_pdf", "this PDF is password-protected") from exc
    except (MemoryError, LimitReachedError) as exc:
        raise ExtractionError(
            "file_too_complex", "this PDF expands to too much data to read (a decompression bomb?)"
        ) from exc
    except (
        PyPdfError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
        RecursionError,
        OSError,
        AssertionError,
        UnicodeError,
        ZeroDivisionError,
    ) as exc:
        raise ExtractionError("corrupt_file", "this PDF is damaged and cannot be read") from exc
    texts = [page["text"] for page in pages]
    return {
        "text": "\n\n".join(texts).strip(),
        "page_count": page_count,
        "header_footer_text": "",
        "images": sum(page["images"] for page in pages),
        "image_only_pages": sum(
            1 for page in pages if page["images"] and len(page["text"].strip()) < 20
        ),
        "tables": 0,
        "text_boxes": 0,
        "columns": sum(1 for page in pages if page["columns"]),
    }


def _open_without_password(reader: Any) -> bool:
    """Many PDFs are "encrypted" with an empty user password (print/copy limits only)."""
    from pypdf.errors import PyPdfError

    try:
        return bool(reader.decrypt(""))
    except (PyPdfError, NotImplementedError, ValueError):
        return False


def _read_pdf_page(page: Any) -> dict[str, Any]:
    fragments: list[tuple[float, float, str]] = []

    def visit(text: str, _cm: Any, tm: Any, _font: Any, _size: Any) -> None:
        if text.strip():
            fragments.append((float(tm[4]), float(tm[5]), text))

    text = page.extract_text(visitor_text=visit) or ""
    width = float(page.mediabox.width) or 612.0
    return {
        "text": text,
        "images": _count_pdf_images(page),
        "columns": _looks_like_two_columns(fragments, width),
    }


def _count_pdf_images(page: Any) -> int:
    resources = page.get("/Resources")
    resources = resources.get_object() if resources is not None else {}
    xobjects = resources.get("/XObject") if hasattr(resources, "get") else None
    if xobjects is None:
        return 0
    xobjects = xobjects.get_object()
    return sum(1 for name in xobjects if xobjects[name].get_object().get("/Subtype") == "/Image")


def _looks_like_two_columns(fragments: list[tuple[float, float, str]], width: float) -> bool:
    """Text side by side: many baselines carry a left-column run *and* a run that starts
    mid-page (not a right-aligned date, which starts near the right margin)."""
    left: dict[int, str] = {}
    middle: dict[int, str] = {}
    for x, y, text in fragments:
        row = round(y / 3)
        if x < width * 0.2:
            left[row] = left.get(row, "") + text
        elif width * 0.3 <= x <= width * 0.6:
            middle[row] = middle.get(row, "") + text
    side_by_side = [row for row in middle if row in left and len(middle[row].strip()) >= 8]
    return len(side_by_side) >= 6


# DOCX


def _check_docx_archive(data: bytes) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ExtractionError("corrupt_file", "this DOCX is damaged and cannot be read") from exc
    names = {entry.filename for entry in entries}
    if "[Content_Types].xml" not in names or "word/document.xml" not in names:
        raise ExtractionError(
            "unsupported_file_type", "this zip file is not a Word document (DOCX)"
        )
    if len(entries) > MAX_DOCX_ENTRIES:
        raise ExtractionError("unsafe_file", f"the DOCX has more than {MAX_DOCX_ENTRIES} parts")
    if sum(entry.file_size for entry in entries) > MAX_DOCX_UNCOMPRESSED_BYTES:
        raise ExtractionError("unsafe_file", "the DOCX expands to too much data (a zip bomb?)")
    for entry in entries:
        if entry.file_size > 1024 * 1024 and entry.file_size > entry.compress_size * MAX_DOCX_RATIO:
            raise ExtractionError("unsafe_file", "the DOCX expands to too much data (a zip bomb?)")
    return archive


def _check_docx_xml(archive: zipfile.ZipFile) -> None:
    """Word never writes a DTD; one in a DOCX is an entity-expansion attack. A DTD can
    only come before the root element, so each part's prolog is all that is read."""
    for entry in archive.infolist():
        if not entry.filename.endswith((".xml", ".rels")):
            continue
        try:
            with archive.open(entry) as part:
                head = part.read(_PROLOG_BYTES)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
            raise ExtractionError("corrupt_file", "this DOCX is damaged") from exc
        root = re.search(rb"<[A-Za-z_]", head)
        prolog = head[: root.start()] if root else head
        if (
            b"<!DOCTYPE" in prolog
            or b"<!ENTITY" in prolog
            or (root is None and len(head) == _PROLOG_BYTES)
        ):
            raise ExtractionError("unsafe_file", "the DOCX contains XML entity declarations")


def _extract_docx(data: bytes) -> dict[str, Any]:
    import docx
    from lxml import etree  # type: ignore[import-untyped]

    archive = _check_docx_archive(data)
    _check_docx_xml(archive)
    try:
        document = docx.Document(io.BytesIO(data))
        body_lines = _docx_block_lines(document.element.body)
        header_footer: list[str] = []
        for section in document.sections:
            for part in (
                section.header,
                section.footer,
                section.first_page_header,
                section.first_page_footer,
            ):
                if not part.is_linked_to_previous:
                    header_footer.extend(_docx_block_lines(part._element))
        body = document.element.body
        columns = sum(
            1 for cols in body.iter(f"{_W}cols") if int(cols.get(f"{_W}num", "1") or 1) > 1
        )
        images = sum(
            1 for _ in body.iter("{http://schemas.openxmlformats.org/drawingml/2006/picture}pic")
        )
        tables = sum(1 for _ in body.iter(f"{_W}tbl"))
        text_boxes = sum(1 for _ in body.iter(f"{_W}txbxContent"))
        pages = _docx_declared_pages(archive)
    except ExtractionError:
        raise
    except MemoryError as exc:
        raise ExtractionError(
            "file_too_complex", "this DOCX needs too much memory to read"
        ) from exc
    except (
        etree.LxmlError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        zipfile.BadZipFile,
        OSError,
        EOFError,
        IndexError,
    ) as exc:
        raise ExtractionError("corrupt_file", "this DOCX is damaged and cannot be read") from exc
    text = "\n".join(body_lines).strip()
    return {
        "text": text,
        "page_count": pages,
        "header_footer_text": "\n".join(header_footer).strip(),
        "images": images,
        "image_only_pages": 0,
        "tables": tables,
        "text_boxes": text_boxes,
        "columns": columns,
    }


def _docx_block_lines(element: Any) -> list[str]:
    """Paragraphs and table cells in reading order (tables are read row by row;
    a text box's paragraphs come after the paragraph anchoring it)."""
    lines: list[str] = []
    for child in element.iterchildren():
        tag = child.tag
        if tag == f"{_W}p":
            lines.append(_paragraph_text(child))
            for box in child.iter(f"{_W}txbxContent"):
                lines.extend(_docx_block_lines(box))
        elif tag == f"{_W}tbl":
            for row in child.iterchildren(f"{_W}tr"):
                cells = [
                    " ".join(t for t in _docx_block_lines(cell) if t)
                    for cell in row.iterchildren(f"{_W}tc")
                ]
                lines.append(" | ".join(cell for cell in cells if cell))
        elif tag == f"{_W}sdt":
            content = child.find(f"{_W}sdtContent")
            if content is not None:
                lines.extend(_docx_block_lines(content))
    return lines


def _paragraph_text(paragraph: Any) -> str:
    has_box = paragraph.find(f".//{_W}txbxContent") is not None
    parts: list[str] = []
    for node in paragraph.iter(f"{_W}t", f"{_W}tab", f"{_W}br"):
        if has_box and _inside_text_box(node, paragraph):
            continue  # read with the text box, after this paragraph
        if node.tag == f"{_W}t":
            parts.append(node.text or "")
        elif node.tag == f"{_W}tab":
            parts.append("\t")
        else:
            parts.append("\n")
    return "".join(parts).strip()


def _inside_text_box(node: Any, paragraph: Any) -> bool:
    parent = node.getparent()
    while parent is not None and parent is not paragraph:
        if parent.tag == f"{_W}txbxContent":
            return True
        parent = parent.getparent()
    return False


def _docx_declared_pages(archive: zipfile.ZipFile) -> int | None:
    """Word records the page count in docProps/app.xml; other writers may not."""
    try:
        app = archive.read("docProps/app.xml")
    except KeyError:
        return None
    match = re.search(rb"<Pages>(\d{1,4})</Pages>", app)
    return int(match.group(1)) if match else None
