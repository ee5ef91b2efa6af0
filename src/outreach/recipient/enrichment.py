"""Enrichment: likely addresses at a company, verified, with a confidence.

Per company: find the mail domain (given, from the website, or guessed from
the name and confirmed by MX), propose role addresses (careers@, jobs@, hr@…)
and, with a contact's name, the common personal patterns (first.last@…),
verify them, and keep the best ``OUTREACH_ENRICH_MAX_CANDIDATES``. Credits for
that maximum are held when the run starts; the difference to 2 per address
found (``deliverable`` or ``risky``, mail domain valid, not disposable) is
refunded at the end. Small runs finish inside the request; larger ones run as
the ``recipient.enrich_bulk`` job.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.kit.clock import utcnow
from outreach.kit.db import Database
from outreach.kit.errors import Unprocessable
from outreach.kit.jobs import enqueue_after_commit
from outreach.kit.logging import get_logger
from outreach.models import (
    LedgerReason,
    ListStatus,
    Recipient,
    RecipientList,
    VerificationJob,
    VerificationJobKind,
    VerificationJobStatus,
)
from outreach.recipient import bulk_charge
from outreach.recipient.addresses import InvalidAddress, normalise_domain, normalise_email
from outreach.recipient.dns import DomainInfo, domain_lookup
from outreach.recipient.importing import import_service
from outreach.recipient.lists import ListNotReady, list_service
from outreach.recipient.mapping import MappedRow
from outreach.recipient.verification import Outcome, verification_service

log = get_logger("outreach.recipient.enrich")
ENRICH_JOB = "recipient.enrich_bulk"

ROLE_PRIORS = {
    "careers": 0.55,
    "jobs": 0.5,
    "hr": 0.45,
    "recruiting": 0.45,
    "talent": 0.4,
    "hiring": 0.4,
    "recruitment": 0.35,
    "people": 0.3,
}
PERSON_PRIORS = {"first.last": 0.6, "first": 0.35, "flast": 0.3, "firstlast": 0.25}
DOMAIN_TRUST = {"given": 1.0, "website": 0.95, "guessed": 0.7}
_COMPANY_SUFFIXES = re.compile(
    r"\b(inc|incorporated|ltd|limited|llc|llp|plc|pvt|private|corp|corporation|co|company|"
    r"gmbh|ag|sa|technologies|technology|tech|solutions|labs|group|the)\b\.?"
)
GUESS_TLDS = ("com", "in", "io", "co")


class TooManyCompanies(Unprocessable):
    code, title = "too_many_companies", "Too many companies in one request"


class NothingToEnrich(Unprocessable):
    code, title = "nothing_to_enrich", "No companies to enrich"


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "", folded)


def guess_domains(name: str) -> list[str]:
    """Domains a company called ``name`` plausibly uses (acme-labs → acme.com …)."""
    stripped = _COMPANY_SUFFIXES.sub(" ", name.lower().replace("&", " and "))
    slug = _ascii_slug(stripped) or _ascii_slug(name)
    return [f"{slug}.{tld}" for tld in GUESS_TLDS] if slug else []


def person_patterns(person_name: str | None) -> dict[str, str]:
    """Local parts for a contact's name, by pattern."""
    parts = [_ascii_slug(p) for p in (person_name or "").split()]
    parts = [p for p in parts if p]
    if len(parts) < 2:
        return {"first": parts[0]} if parts else {}
    first, last = parts[0], parts[-1]
    return {
        "first.last": f"{first}.{last}",
        "first": first,
        "flast": f"{first[0]}{last}",
        "firstlast": f"{first}{last}",
    }


def is_found(candidate: dict[str, Any]) -> bool:
    return candidate["status"] in ("deliverable", "risky") and (
        "disposable_domain" not in candidate["reasons"]
    )


@dataclass(frozen=True)
class EnrichProgress:
    """Where an enrichment job stands, as its row says."""

    job_id: uuid.UUID
    total: int
    done: int  # companies enriched (their results are stored, in order)
    status: str

    @classmethod
    def of(cls, job: VerificationJob) -> EnrichProgress:
        return cls(job.id, job.total, len(job.results), job.status)

    @property
    def complete(self) -> bool:
        return self.done >= self.total


@dataclass(frozen=True)
class EnrichQuote:
    """What enriching a list's companies costs, told before it starts."""

    companies: int  # distinct company names on the list
    max_per_company: int  # addresses kept (and credits held) per company at most
    per_address_found: int  # credits each address found finally costs
    held: int  # credits held when the run starts; the part not found is refunded

    @property
    def too_many(self) -> bool:
        return self.companies > get_settings().enrich_max_companies


def _held(companies: int) -> int:
    settings = get_settings()
    price = pricing_from_settings(settings).enrich_per_address_found
    return companies * settings.enrich_max_candidates * price


class EnrichmentService:
    # The steps ------------------------------------------------------------------

    async def find_domain(
        self, session: AsyncSession, company: dict[str, Any]
    ) -> tuple[DomainInfo | None, str | None]:
        """The company's mail domain and where it came from (given | website | guessed)."""
        tries: list[tuple[str, str]] = []
        for source, raw in (("given", company.get("domain")), ("website", company.get("website"))):
            if raw:
                try:
                    tries.append((normalise_domain(raw), source))
                except InvalidAddress:
                    continue
        tries += [(domain, "guessed") for domain in guess_domains(company["name"])]
        if not tries:
            return None, None
        known = await domain_lookup.lookup(session, {domain for domain, _ in tries})
        for domain, source in tries:
            info = known.get(domain)
            if info is not None and info.accepts_mail and (info.mx_hosts or source != "guessed"):
                return info, source
        return None, None

    def propose_candidates(
        self, domain: str, person_name: str | None
    ) -> list[tuple[str, str, float]]:
        """(address, pattern, prior) for the role and personal patterns."""
        proposals = [(f"{local}@{domain}", local, prior) for local, prior in ROLE_PRIORS.items()]
        for pattern, local in person_patterns(person_name).items():
            proposals.append((f"{local}@{domain}", pattern, PERSON_PRIORS[pattern]))
        return proposals

    def rank(
        self, proposals: list[tuple[str, str, float]], outcomes: list[Outcome], trust: float
    ) -> list[dict[str, Any]]:
        """Candidates worth returning, best first, with a confidence in [0, 1]."""
        ranked: list[dict[str, Any]] = []
        for (email, pattern, prior), outcome in zip(proposals, outcomes, strict=True):
            if outcome.status == "undeliverable":
                continue
            confidence = prior * trust
            if "smtp_accepted" in outcome.reasons:
                confidence = min(1.0, confidence + 0.3)
            if "catch_all" in outcome.reasons:
                confidence *= 0.8
            ranked.append(
                {
                    "email": outcome.email or email,
                    "pattern": pattern,
                    "status": outcome.status,
                    "reasons": outcome.reasons,
                    "confidence": round(confidence, 2),
                }
            )
        ranked.sort(key=lambda c: -c["confidence"])
        return ranked[: get_settings().enrich_max_candidates]

    async def enrich_company(
        self, session: AsyncSession, company: dict[str, Any]
    ) -> dict[str, Any]:
        """One company's result: its domain and the best verified candidates."""
        info, source = await self.find_domain(session, company)
        result: dict[str, Any] = {
            "company": company["name"],
            "domain": None,
            "domain_source": None,
            "candidates": [],
        }
        if info is None or source is None:
            result["reasons"] = ["domain_not_found"]
            return result
        result["domain"], result["domain_source"] = info.domain, source
        proposals = self.propose_candidates(info.domain, company.get("person_name"))
        outcomes = await verification_service.verify_addresses(
            session, [email for email, _, _ in proposals], known={info.domain: info}
        )
        result["candidates"] = self.rank(proposals, outcomes, DOMAIN_TRUST[source])
        return result

    # The run --------------------------------------------------------------------

    async def start_bulk(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        companies: list[dict[str, Any]] | None,
        list_id: uuid.UUID | None,
        add_to_list_id: uuid.UUID | None,
        idempotency_key: str,
    ) -> VerificationJob:
        """Hold credits for the most that can be found and run (inline when small).

        Once per user and ``idempotency_key``, whoever calls: the same key again, or a
        concurrent call with it, gets the job that holds the key and is charged
        nothing (``recipient.bulk_charge``)."""
        key, earlier = await bulk_charge.key_and_holder(
            session, "enrich:bulk", user_id=user_id, idempotency_key=idempotency_key
        )
        if earlier is not None:
            return earlier
        settings = get_settings()
        if list_id is not None:
            source = await list_service.get_list(session, user_id=user_id, list_id=list_id)
            companies = await self._companies_of(session, source.id)
        companies = companies or []
        if not companies:
            raise NothingToEnrich("no companies to enrich (the list has no company column?)")
        if len(companies) > settings.enrich_max_companies:
            raise TooManyCompanies(f"send at most {settings.enrich_max_companies} companies")
        if add_to_list_id is not None:
            target = await list_service.get_list(session, user_id=user_id, list_id=add_to_list_id)
            if target.status != ListStatus.ready:
                raise ListNotReady("the list to add to is still importing")
        job = VerificationJob(
            id=uuid.uuid4(),
            user_id=user_id,
            kind=VerificationJobKind.enrich.value,
            status=VerificationJobStatus.queued.value,
            list_id=list_id,
            total=len(companies),
            credits_charged=_held(len(companies)),
            counts={},
            results=[],
            input={"companies": companies, "add_to_list_id": str(add_to_list_id or "") or None},
            charge_key=key,
        )
        holder = await bulk_charge.charge(session, job=job, reason=LedgerReason.enrich)
        if holder is not job:
            return holder  # a concurrent call with this key committed first
        session.add(job)
        await session.flush()
        if len(companies) <= settings.enrich_inline_max_companies:
            job.status = VerificationJobStatus.running.value
            results = [await self.enrich_company(session, c) for c in companies]
            await self._settle(session, job=job, results=results)
        else:
            enqueue_after_commit(session, ENRICH_JOB, job_id=str(job.id))
        return job

    async def quote_list(
        self, session: AsyncSession, *, user_id: uuid.UUID, list_id: uuid.UUID
    ) -> EnrichQuote:
        """What :meth:`start_bulk` on this list would hold, and what a find costs; nothing
        is charged. Another user's list is not found."""
        source = await list_service.get_list(session, user_id=user_id, list_id=list_id)
        companies = len(await self._companies_of(session, source.id))
        settings = get_settings()
        return EnrichQuote(
            companies=companies,
            max_per_company=settings.enrich_max_candidates,
            per_address_found=pricing_from_settings(settings).enrich_per_address_found,
            held=_held(companies),
        )

    async def _companies_of(
        self, session: AsyncSession, list_id: uuid.UUID
    ) -> list[dict[str, Any]]:
        rows = await session.execute(
            select(Recipient.company, Recipient.website)
            .where(Recipient.list_id == list_id, Recipient.company.is_not(None))
            .order_by(Recipient.position)
        )
        seen: dict[str, dict[str, Any]] = {}
        for company, website in rows:
            if not company:
                continue
            seen.setdefault(company.lower(), {"name": company, "website": website})
        return list(seen.values())

    # The bulk run, step by step (composed by ``outreach.workflow.enrichment``) ----

    async def bulk_progress(
        self, database: Database, *, job_id: uuid.UUID
    ) -> EnrichProgress | None:
        """Where an enrichment job stands (None: no such job)."""
        async with database.session() as session:
            job = await session.get(VerificationJob, job_id)
            return None if job is None else EnrichProgress.of(job)

    async def begin_bulk_run(
        self, database: Database, *, job_id: uuid.UUID
    ) -> EnrichProgress | None:
        """Mark the job running and say where it stands (None: gone or finished)."""
        async with database.session() as session:
            job = await session.get(VerificationJob, job_id, with_for_update=True)
            if job is None or job.status in ("completed", "failed"):
                return None
            job.status = VerificationJobStatus.running.value
            return EnrichProgress.of(job)

    async def enrich_next_companies(
        self, database: Database, *, job_id: uuid.UUID, done: int, count: int
    ) -> EnrichProgress | None:
        """Enrich up to ``count`` companies after the first ``done``, each stored in its
        own transaction. When the job row says more were done than ``done`` (the run
        stopped after storing them but before it recorded so), nothing is enriched
        again and the job's own progress is returned. None: the job is gone."""
        async with database.session() as session:
            job = await session.get(VerificationJob, job_id)
            if job is None:
                return None
            companies = list(job.input.get("companies", []))
            if len(job.results) != done:
                return EnrichProgress.of(job)
        for index in range(done, min(done + count, len(companies))):
            async with database.session() as session:
                result = await self.enrich_company(session, companies[index])
                job = await session.get(VerificationJob, job_id, with_for_update=True)
                if job is None:
                    return None
                if len(job.results) != index:  # another run of this job got here first
                    return EnrichProgress.of(job)
                job.results = [*job.results, result]
                job.done = len(job.results)
        return await self.bulk_progress(database, job_id=job_id)

    async def settle_bulk_run(self, database: Database, *, job_id: uuid.UUID) -> None:
        """Refund the held credits beyond what was found, add the finds to the list if
        asked, and complete the job; once only (a completed job is left alone)."""
        async with database.session() as session:
            job = await session.get(VerificationJob, job_id, with_for_update=True)
            if job is not None and job.status != VerificationJobStatus.completed.value:
                await self._settle(session, job=job, results=list(job.results))

    async def _settle(
        self, session: AsyncSession, *, job: VerificationJob, results: list[dict[str, Any]]
    ) -> None:
        assert job.user_id is not None
        price = pricing_from_settings(get_settings()).enrich_per_address_found
        found = [c for r in results for c in r["candidates"] if is_found(c)]
        # Never more than the job's own debit took (a job whose debit paid for another
        # one gets nothing back).
        job.credits_charged = await bulk_charge.refundable(session, job=job)
        refund = max(job.credits_charged - len(found) * price, 0)
        if refund:
            await credit_service.apply_ledger_entry(
                session,
                user_id=job.user_id,
                delta=refund,
                reason=LedgerReason.enrich,
                ref=bulk_charge.job_ref(job),
                idempotency_key=f"enrich:bulk-settle:{job.id}",
            )
        added = 0
        if job.input.get("add_to_list_id") and found:
            added = await self._add_to_list(
                session, job=job, list_id=uuid.UUID(job.input["add_to_list_id"]), results=results
            )
        job.results = results
        job.done = len(results)
        job.counts = {"companies": len(results), "found": len(found), "added_to_list": added}
        job.credits_refunded = refund
        job.status = VerificationJobStatus.completed.value
        job.finished_at = utcnow()

    async def _add_to_list(
        self,
        session: AsyncSession,
        *,
        job: VerificationJob,
        list_id: uuid.UUID,
        results: list[dict[str, Any]],
    ) -> int:
        recipient_list = await session.get(RecipientList, list_id, with_for_update=True)
        if recipient_list is None or recipient_list.user_id != job.user_id:
            return 0
        rows = []
        position = max(recipient_list.next_position, 1)
        for result in results:
            for candidate in (c for c in result["candidates"] if is_found(c)):
                address = normalise_email(candidate["email"])
                fields: dict[str, str | None] = {
                    "company": result["company"],
                    "website": result["domain"],
                    "source": "enrichment",
                }
                rows.append(MappedRow(position, address, fields))
                position += 1
        added, _, _ = await import_service.add_rows_by_hand(
            session, recipient_list=recipient_list, rows=rows
        )
        recipient_list.next_position = position
        recipient_list.imported_count += added
        return added


enrichment_service = EnrichmentService()
