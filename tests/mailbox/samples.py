"""Names, subjects and links that broke (or could break) headers on the wire."""

from __future__ import annotations

BASE_LINK = "https://outreach.example.com/u/"


def link(length: int) -> str:
    """An unsubscribe link of exactly ``length`` characters."""
    return BASE_LINK + "x" * (length - len(BASE_LINK))


LINK_LENGTHS = (80, 160, 250, 330, 400)

NAMES = (
    None,
    "Ravi",
    "Eve <victim@evil.example>, padding padding padding padding padding padding padding",
    "Anna-Maria von und zu Irgendwo, Head of Talent Acquisition",
    'Priya "PJ" Sharma',
    'Back\\slash "quoted", and <angle> (comment) @ ; : name',
    "Zoë Müller-Lüdenscheidt, Société Générale",
    "Āshā Rao",
    "李小龙",
    "Søren 🙂 Kierkegaard 👩‍💻",
    "محمد بن سلمان، مدير التوظيف",  # Arabic, right to left, Arabic comma
    "שרה לוי, מגייסת",  # Hebrew
    "=?utf-8?q?not_an_encoded_word?=",
    "  spaced   out  ",
    "x" * 200,
    "é" * 200,
)

SUBJECTS = (
    "H",
    "Hi",
    "Application for the senior backend role at Société Générale, Zoë Müller-Lüdenscheidt",
    "Quick question about the data engineering opening at Acme Analytics in Bengaluru, "
    "and whether the team is hiring more people this quarter",
    "Résumé: 5 years in Python, Go and SQL — looking for backend roles",
    "Привет, Ирина! Вопрос о вакансии разработчика в Яндексе",
    "日本語の件名：ソフトウェアエンジニアのポジションについてのご相談です。よろしくお願いします。",
    "مرحبا، أود الاستفسار عن وظيفة مهندس البرمجيات",
    "नमस्ते प्रिया, बैकएंड डेवलपर पद के बारे में",
    "🚀 Rocket science 👩‍🚀 at NASA? ✨",
    "=?utf-8?q?looks_encoded?= but is not",
    "a  double  spaced   subject",
    ("word " * 60).strip(),  # 299 characters
    "ü" * 300,
    "Ω" + "x" * 299,
    "long" + "-" * 296,
)
