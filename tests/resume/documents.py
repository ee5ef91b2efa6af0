"""Resumes and malformed files made in the test run (python-docx, fpdf2, pypdf, zipfile)."""

from __future__ import annotations

import io
import zipfile
import zlib

import docx
from docx.shared import Pt
from fpdf import FPDF
from PIL import Image
from pypdf import PdfReader, PdfWriter

NAME = "Priya Venkataraman"
EMAIL = "priya.venkat@example.in"
PHONE = "+91 98765 43210"

SUMMARY = (
    "Backend engineer with 4+ years of experience building payment and lending systems "
    "for Indian fintech companies, focused on reliable APIs and data pipelines."
)
EXPERIENCE = [
    (
        "Senior Software Engineer, Razorpay, Bengaluru",
        "Jan 2022 - Present",
        [
            "Built a reconciliation service in Python and PostgreSQL that cut settlement errors "
            "by 38%",
            "Led the migration of 12 microservices to Kubernetes on AWS, saving 40 lakh rupees "
            "a year",
            "Designed REST APIs used by 2,000 merchants with 99.95% uptime",
            "Mentored 4 junior engineers through code reviews and design sessions",
        ],
    ),
    (
        "Software Engineer, Infosys, Pune",
        "Jul 2019 - Dec 2021",
        [
            "Responsible for maintaining REST APIs in Java Spring Boot for a banking client",
            "Worked on the Docker based build pipeline and Jenkins jobs of the team",
            "Reduced report generation time from 40 minutes to 6 minutes with SQL tuning",
        ],
    ),
]
EDUCATION = "B.Tech, Computer Science and Engineering, NIT Tiruchirappalli, 2015 - 2019, CGPA 8.4"
SKILLS = "Python, Java, SQL, PostgreSQL, Redis, Docker, Kubernetes, AWS, Git, REST APIs, Kafka"
PROJECTS = [
    "Developed an open source UPI payment simulator in Python used by 300 developers on GitHub",
]
CERTIFICATIONS = "AWS Certified Developer - Associate (2023)"


def resume_lines() -> list[str]:
    lines = [
        NAME,
        f"Bengaluru, India | {EMAIL} | {PHONE}",
        "linkedin.com/in/priya-venkataraman | github.com/priyav",
        "",
        "PROFESSIONAL SUMMARY",
        SUMMARY,
        "",
        "WORK EXPERIENCE",
    ]
    for title, dates, bullets in EXPERIENCE:
        lines.append(f"{title}    {dates}")
        lines.extend(f"- {b}" for b in bullets)
    lines += ["", "EDUCATION", EDUCATION, "", "SKILLS", SKILLS, "", "PROJECTS"]
    lines += [f"- {p}" for p in PROJECTS]
    lines += ["", "CERTIFICATIONS", CERTIFICATIONS]
    return lines


# DOCX


def docx_resume(*, skills_table: bool = True, contact_in_header: bool = False) -> bytes:
    """A Word resume: contact in the body (or only in the page header), skills in a table."""
    document = docx.Document()
    style = document.styles["Normal"]
    style.font.size = Pt(10)
    contact = f"Bengaluru, India | {EMAIL} | {PHONE}"
    links = "linkedin.com/in/priya-venkataraman | github.com/priyav"
    if contact_in_header:
        header = document.sections[0].header
        header.is_linked_to_previous = False
        header.paragraphs[0].text = contact
    document.add_heading(NAME, level=0)
    if not contact_in_header:
        document.add_paragraph(contact)
    document.add_paragraph(links)
    document.add_heading("Professional Summary", level=1)
    document.add_paragraph(SUMMARY)
    document.add_heading("Work Experience", level=1)
    for title, dates, bullets in EXPERIENCE:
        document.add_paragraph(f"{title}\t{dates}")
        for bullet in bullets:
            document.add_paragraph(bullet, style="List Bullet")
    document.add_heading("Education", level=1)
    document.add_paragraph(EDUCATION)
    document.add_heading("Skills", level=1)
    if skills_table:
        items = [s.strip() for s in SKILLS.split(",")]
        table = document.add_table(rows=3, cols=4)
        for i, item in enumerate(items):
            table.cell(i // 4, i % 4).text = item
    else:
        document.add_paragraph(SKILLS)
    document.add_heading("Projects", level=1)
    for project in PROJECTS:
        document.add_paragraph(project, style="List Bullet")
    document.add_heading("Certifications", level=1)
    document.add_paragraph(CERTIFICATIONS)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_without_text() -> bytes:
    document = docx.Document()
    document.add_paragraph("")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _rezip(
    original: bytes, replace: dict[str, bytes], add: dict[str, bytes] | None = None
) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(original))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item.filename, replace.get(item.filename, source.read(item.filename)))
        for name, data in (add or {}).items():
            target.writestr(name, data)
    return out.getvalue()


def docx_zip_bomb() -> bytes:
    """A DOCX whose document.xml expands to 60 MB (a few dozen KB compressed)."""
    return _rezip(
        docx_resume(), {}, {"word/media/padding.xml": b"<a>" + b" " * 60_000_000 + b"</a>"}
    )


def docx_many_entries() -> bytes:
    return _rezip(docx_resume(), {}, {f"customXml/extra{i}.xml": b"<a/>" for i in range(600)})


def _entity(i: int) -> bytes:
    reference = f"&lol{i - 1};" if i > 1 else "&lol;"
    return f'<!ENTITY lol{i} "{reference * 10}">'.encode()


def docx_entity_bomb() -> bytes:
    """Billion laughs in document.xml."""
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(_entity(i) for i in range(1, 10))
        + b']><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    )
    return _rezip(docx_resume(), {"word/document.xml": lol})


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "not a resume")
    return out.getvalue()


# PDF


def _pdf() -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    return pdf


def pdf_resume(lines: list[str] | None = None) -> bytes:
    """A one-column text PDF of the standard resume."""
    pdf = _pdf()
    for line in lines if lines is not None else resume_lines():
        pdf.multi_cell(0, 5, line or " ", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def two_column_pdf() -> bytes:
    """A sidebar layout: skills and contact on the left, experience on the right."""
    pdf = _pdf()
    left = [
        NAME,
        EMAIL,
        PHONE,
        "",
        "SKILLS",
        *[s.strip() for s in SKILLS.split(",")],
        "",
        "EDUCATION",
        "B.Tech CSE",
        "NIT Trichy",
        "2015 - 2019",
    ]
    right = [
        "PROFESSIONAL SUMMARY",
        "Backend engineer with 4+ years of experience",
        "building payment systems for fintech companies.",
        "",
        "WORK EXPERIENCE",
    ]
    for title, dates, bullets in EXPERIENCE:
        right += [title[:45], dates, *[b[:55] for b in bullets]]
    y = 20.0
    for i in range(max(len(left), len(right))):
        if i < len(left):
            pdf.text(12, y, left[i])
        if i < len(right):
            pdf.text(80, y, right[i])
        y += 5.5
    return bytes(pdf.output())


def image_only_pdf() -> bytes:
    """A 'scanned' resume: one page holding only an image, no text layer."""
    image = Image.new("RGB", (200, 280), "white")
    for x in range(20, 180):
        for y in range(20, 30):
            image.putpixel((x, y), (0, 0, 0))
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.image(image, x=10, y=10, w=190)
    return bytes(pdf.output())


def encrypted_pdf(password: str = "s3cret") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_resume())))
    writer.encrypt(user_password=password, owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def owner_only_encrypted_pdf() -> bytes:
    """Encrypted with an empty user password (print/copy limits only): readable."""
    return encrypted_pdf(password="")


def corrupt_pdf() -> bytes:
    data = pdf_resume()
    return data[:400] + b"\x00garbage\xff" * 50


def _raw_pdf(content: bytes, *, filter_name: bytes | None) -> bytes:
    """A one-page PDF around a given content stream, with a correct xref table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length "
        + str(len(content)).encode()
        + (b" /Filter /" + filter_name if filter_name else b"")
        + b" >>\nstream\n"
        + content
        + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def pdf_decompression_bomb() -> bytes:
    """A content stream that inflates to 120 MB (pypdf stops at its 75 MB limit)."""
    return _raw_pdf(zlib.compress(b" " * 120_000_000, 9), filter_name=b"FlateDecode")


def renamed_exe() -> bytes:
    return (
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"
        + b"\x00" * 2000
        + b"This program cannot be run in DOS mode"
    )
