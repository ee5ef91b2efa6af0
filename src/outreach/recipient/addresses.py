"""Email address normalisation and classification: pure functions, no I/O.

An address is normalised once, when it enters the system (import, hand entry,
verification request): trimmed, a ``mailto:`` or angle brackets removed, the
domain IDNA-encoded and the whole address lower-cased. Local parts are
case-insensitive at every mainstream provider, and one spelling per address
makes in-file dedupe and suppression matching exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from disposable_email_domains import allowlist as _disposable_allowlist
from disposable_email_domains import blocklist as _disposable_blocklist
from email_validator import EmailNotValidError, validate_email

# The common case (plain ASCII) is checked by a strict pattern; anything else
# (quoted local parts, Unicode, IDNA) goes through email-validator.
_SIMPLE = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"
)
MAX_LENGTH = 254

ROLE_LOCAL_PARTS = frozenset(
    {
        "admin",
        "administrator",
        "billing",
        "careers",
        "career",
        "contact",
        "enquiries",
        "enquiry",
        "feedback",
        "hello",
        "help",
        "hiring",
        "hr",
        "humanresources",
        "info",
        "inquiries",
        "jobs",
        "job",
        "marketing",
        "media",
        "office",
        "people",
        "press",
        "recruit",
        "recruiter",
        "recruiters",
        "recruiting",
        "recruitment",
        "sales",
        "security",
        "support",
        "talent",
        "team",
        "webmaster",
        "noreply",
        "no-reply",
        "postmaster",
        "abuse",
        "hostmaster",
        "accounts",
        "finance",
        "legal",
    }
)

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.in",
        "yahoo.co.uk",
        "ymail.com",
        "rocketmail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "zoho.com",
        "zohomail.in",
        "yandex.com",
        "yandex.ru",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "mail.com",
        "rediffmail.com",
        "web.de",
        "tutanota.com",
        "fastmail.com",
        "hey.com",
        "qq.com",
        "163.com",
    }
)


class InvalidAddress(ValueError):
    """The text is not a usable email address; the message says why."""


@dataclass(frozen=True, slots=True)
class Address:
    email: str
    local: str
    domain: str  # ASCII (IDNA) form


def normalise_email(raw: str) -> Address:
    """The normalised form of ``raw``, or :class:`InvalidAddress` saying what is wrong."""
    text = raw.strip().strip("<>").strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].split("?", 1)[0].strip()
    if not text:
        raise InvalidAddress("the address is empty")
    lowered = text.lower()
    if len(lowered) <= MAX_LENGTH and _SIMPLE.match(lowered):
        local, domain = lowered.rsplit("@", 1)
        return Address(lowered, local, domain)
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidAddress(str(exc)) from exc
    local = result.local_part.lower()
    domain = (result.ascii_domain or result.domain).lower()
    email = f"{local}@{domain}"
    if len(email) > MAX_LENGTH:
        raise InvalidAddress("the address is longer than 254 characters")
    return Address(email, local, domain)


def already_normal(text: str) -> Address | None:
    """``text`` as an address when it is one in normal form already (plain ASCII, lower
    case, nothing to trim): what ``normalise_email`` would return for it. None: call
    ``normalise_email``, which says what is wrong or normalises it."""
    if len(text) <= MAX_LENGTH and _SIMPLE.fullmatch(text):
        local, domain = text.rsplit("@", 1)
        return Address(text, local, domain)
    return None


def normalise_domain(raw: str) -> str:
    """A bare domain (or a website URL) as lower-case ASCII; raises InvalidAddress."""
    text = raw.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].split(":", 1)[0]
    text = text.removeprefix("www.").strip(".")
    if text.startswith("@"):
        text = text[1:]
    if not text:
        raise InvalidAddress("the domain is empty")
    try:
        return normalise_email(f"postmaster@{text}").domain
    except InvalidAddress as exc:
        raise InvalidAddress(f"{raw!r} is not a valid domain") from exc


@lru_cache(maxsize=16_384)  # a bulk run asks once per address, about far fewer domains
def is_disposable(domain: str) -> bool:
    """True for throwaway-mail domains (and their subdomains), from disposable-email-domains."""
    if domain in _disposable_allowlist:
        return False
    parts = domain.split(".")
    return any(".".join(parts[i:]) in _disposable_blocklist for i in range(len(parts) - 1))


def is_role_account(local: str) -> bool:
    """Shared mailboxes (info@, hr@, careers@…): real, but not a person."""
    base = local.split("+", 1)[0]
    return base in ROLE_LOCAL_PARTS or base.replace(".", "").replace("_", "") in ROLE_LOCAL_PARTS


def is_free_mail(domain: str) -> bool:
    return domain in FREE_MAIL_DOMAINS
