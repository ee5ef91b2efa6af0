"""The demo's sample data: a job seeker, her resume, a list of contacts, a template.

Every contact domain ends in ``.example`` (reserved, RFC 2606), answered only by
the demo's own DNS responder, so nothing real is ever looked up or mailed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import docx
from docx.shared import Pt

from outreach.demo.dns import Zone

SENDER_EMAIL = "asha.rao@example.com"
SENDER_NAME = "Asha Rao"
SENDER_TIMEZONE = "Asia/Kolkata"
TARGET_ROLE = "Data Engineer"


@dataclass(frozen=True)
class Contact:
    email: str
    first_name: str
    company: str
    title: str
    why: str  # what the demo expects to happen to this row, printed in the summary


GOOD = [
    Contact("ravi.kumar@acme.example", "Ravi", "Acme", "Engineering Manager", "sent"),
    Contact("meera.iyer@globex.example", "Meera", "Globex", "Head of Data", "sent"),
    Contact("arjun.mehta@initech.example", "Arjun", "Initech", "CTO", "sent"),
    Contact("sara.thomas@umbrella.example", "Sara", "Umbrella", "Talent Partner", "sent"),
    Contact("kabir.singh@hooli.example", "Kabir", "Hooli", "Staff Engineer", "sent"),
    Contact("ananya.rao@piedpiper.example", "Ananya", "Pied Piper", "VP Engineering", "sent"),
]
BAD_SYNTAX = Contact("neha.at.acme.example", "Neha", "Acme", "Recruiter", "invalid address")
NO_MX = Contact("vikram@nomail.example", "Vikram", "Nomail", "Founder", "domain takes no mail")
DISPOSABLE = Contact(
    "temp.recruiter@mailinator.com", "Temp", "Mailinator", "Recruiter", "disposable domain"
)
SUPPRESSED = Contact(
    "old.contact@globex.example", "Old", "Globex", "Manager", "on your suppression list"
)
CONTACTS = [*GOOD[:3], BAD_SYNTAX, GOOD[3], NO_MX, SUPPRESSED, GOOD[4], DISPOSABLE, GOOD[5]]


def dns_zone() -> Zone:
    """Mail servers for the good domains and mailinator.com (so it is caught as
    disposable, not as missing); nomail.example exists without any mail record."""
    domains = {contact.email.rsplit("@", 1)[1] for contact in [*GOOD, DISPOSABLE, SUPPRESSED]}
    mail_servers = {domain: [f"mx.{domain}"] for domain in sorted(domains)}
    return Zone(mx=mail_servers, empty={"nomail.example"})


def contacts_csv() -> bytes:
    """The list as a user would export it from a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Email", "First Name", "Company", "Title"])
    for contact in CONTACTS:
        writer.writerow([contact.email, contact.first_name, contact.company, contact.title])
    return out.getvalue().encode()


TEMPLATE = {
    "name": "Data engineering intro",
    "subject": "{{ first_name | default('Hello') }}, data engineering at {{ company }}?",
    "body_text": (
        "Hi {{ first_name | default('there') }},\n\n"
        "I'm {{ sender.name }}, a data engineer who has spent the last few years building "
        "pipelines with {{ sender.top_skills | default('Python and SQL') }}. "
        "{% if title == 'CTO' %}As {{ company }}'s CTO you will know{% else %}I suspect you "
        "know{% endif %} how much a reliable data platform is worth, and I would love to help "
        "build {{ company }}'s.\n\n"
        "Would you have 15 minutes for a call next week? My resume is attached.\n\n"
        "Thanks,\n{{ sender.name }}"
    ),
}

FOLLOW_UP = {
    "name": "Data engineering nudge",
    "subject": "Following up",  # not used: a follow-up answers as "Re: " + the first subject
    "body_text": (
        "Hi {{ first_name | default('there') }},\n\n"
        "Just bringing my note below back to the top of your inbox: I would still love to "
        "hear how {{ company }} thinks about its data platform.\n\n"
        "Thanks,\n{{ sender.name }}"
    ),
}

_EXPERIENCE = [
    (
        "Senior Data Engineer, Zenith Analytics, Bengaluru",
        "Jan 2021 - Present",
        [
            "Built a streaming pipeline on Kafka and Spark that cut reporting delay from "
            "6 hours to 10 minutes for 40 million daily events",
            "Led the migration of 120 Airflow DAGs to dbt and Snowflake, reducing warehouse "
            "cost by 35%",
            "Mentored 4 engineers and introduced data quality checks that caught 90% of "
            "schema breaks before release",
        ],
    ),
    (
        "Data Engineer, Kaveri Retail, Chennai",
        "Jul 2018 - Dec 2020",
        [
            "Designed the PostgreSQL and Python ETL behind daily sales dashboards used by "
            "300 store managers",
            "Automated inventory forecasts with pandas and scikit-learn, improving stock "
            "accuracy by 18%",
        ],
    ),
]


def resume_docx() -> bytes:
    """A one-page Word resume, made on the fly (python-docx is a main dependency)."""
    document = docx.Document()
    document.styles["Normal"].font.size = Pt(10)
    document.add_heading(SENDER_NAME, level=0)
    document.add_paragraph(f"Bengaluru, India | {SENDER_EMAIL} | +91 98450 12345")
    document.add_paragraph("linkedin.com/in/asha-rao-data | github.com/asharao")
    document.add_heading("Professional Summary", level=1)
    document.add_paragraph(
        "Data engineer with 6 years of experience building reliable batch and streaming "
        "pipelines in Python and SQL on AWS, Spark and Airflow."
    )
    document.add_heading("Work Experience", level=1)
    for title, dates, bullets in _EXPERIENCE:
        document.add_paragraph(f"{title}\t{dates}")
        for bullet in bullets:
            document.add_paragraph(bullet, style="List Bullet")
    document.add_heading("Education", level=1)
    document.add_paragraph("B.Tech, Computer Science, NIT Trichy, 2014 - 2018")
    document.add_heading("Skills", level=1)
    document.add_paragraph(
        "Python, SQL, Apache Spark, Kafka, Airflow, dbt, Snowflake, PostgreSQL, AWS, Docker"
    )
    document.add_heading("Certifications", level=1)
    document.add_paragraph("AWS Certified Data Analytics - Specialty (2022)")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
