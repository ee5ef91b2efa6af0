"""Email verification: syntax, DNS (MX, A/AAAA fallback, null MX), disposable
and role addresses, free-mail flag, and the optional SMTP probe in jobs.

Each step is its own method (``check_syntax``, ``lookup_domains``,
``classify``, ``probe``, ``record_results``) so the bulk job, enrichment, the
directory refresh and later workflow graphs compose the same pieces.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import JSON, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import InsufficientCredits, credit_service
from outreach.kit.clock import utcnow
from outreach.kit.db import Database, json_rows
from outreach.kit.errors import FieldError, NotFound, Unprocessable
from outreach.kit.jobs import enqueue_after_commit
from outreach.kit.logging import get_logger
from outreach.models import (
    EmailVerification,
    LedgerReason,
    Recipient,
    SuppressionReason,
    VerificationJob,
    VerificationJobKind,
    VerificationJobStatus,
)
from outreach.recipient import bulk_charge
from outreach.recipient import dns as dns_module
from outreach.recipient.addresses import (
    Address,
    InvalidAddress,
    already_normal,
    is_disposable,
    is_free_mail,
    is_role_account,
    normalise_email,
)
from outreach.recipient.dns import DomainInfo, RunLookups, domain_lookup
from outreach.recipient.lists import list_service
from outreach.recipient.smtp_probe import ACCEPTED, CATCH_ALL, REJECTED, SmtpProber
from outreach.recipient.suppression import SuppressionEntry, suppression_service

log = get_logger("outreach.recipient.verify")
VERIFY_JOB = "recipient.verify_bulk"
_verifications = cast(Table, EmailVerification.__table__)
# What DNS says that settles the verdict (any other status: the domain takes mail)
_DNS_VERDICTS = {
    dns_module.NOT_FOUND: ("undeliverable", "domain_not_found"),
    dns_module.NO_MAIL: ("undeliverable", "no_mx"),
    dns_module.NULL_MX: ("undeliverable", "null_mx"),
    dns_module.ERROR: ("unknown", "dns_error"),
}
# A result as it travels to the database (record_results)
_RESULT_COLUMNS = {"email": String(), "status": String(), "reasons": JSON(), "details": JSON()}


class VerificationJobNotFound(NotFound):
    code, title = "verification_job_not_found", "Verification job not found"


class TooManyEmails(Unprocessable):
    code, title = "too_many_emails", "Too many addresses in one request"


class NothingToVerify(Unprocessable):
    code, title = "nothing_to_verify", "No addresses to verify"


@dataclass(slots=True)
class Outcome:
    email: str
    domain: str
    status: str  # deliverable | risky | undeliverable | unknown
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def disposable(self) -> bool:
        return "disposable_domain" in self.reasons


@dataclass(frozen=True, slots=True)
class Verdict:
    """What classification says about every address of one domain with the same role
    flag (a domain's DNS answer, disposable and free-mail flags, the role flag)."""

    info: DomainInfo | None  # the answer it was drawn from
    status: str
    reasons: list[str]
    details: dict[str, Any]

    def outcome(self, address: Address) -> Outcome:
        """The address's outcome, sharing this verdict's reasons and details (a run
        makes ten thousand outcomes from a few thousand verdicts; ``probe`` gives the
        outcome it changes its own copies)."""
        return Outcome(address.email, address.domain, self.status, self.reasons, self.details)


@dataclass
class BulkRun:
    """What one process keeps between the batches of a job's run (never checkpointed):
    the job's scope, its DNS answers and lookups in flight, and the addresses read but
    not yet checked, in the order the batches take them. A resumed run starts with a new
    one and reads again.

    Addresses wait as plain strings and are checked for syntax a batch at a time: ten
    thousand parsed addresses kept alive for the whole run made Python's garbage
    collector walk the whole process more often (bench/README.md, recipient_verify)."""

    prober: SmtpProber | None = None
    lookups: RunLookups = field(default_factory=RunLookups)
    verdicts: dict[tuple[str, bool], Verdict] = field(default_factory=dict)  # (domain, role)
    user_id: uuid.UUID | None = None
    list_id: uuid.UUID | None = None
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # the job's, at the run's position
    read_to: str | None = None  # the last address read
    _unchecked: deque[str] = field(default_factory=deque)
    _position: str | None = None  # the address just before ``_unchecked`` (the cursor)
    _all_read: bool = False  # nothing is left to read after ``read_to``
    _loaded: bool = False
    _checked_ahead: tuple[str, list[Address | Outcome]] | None = None  # (first address, batch)

    def restart(self, job: VerificationJob, *, after: str | None) -> None:
        """Forget what was read: the next batch follows ``after`` (the job's cursor)."""
        self.user_id, self.list_id, self.total = job.user_id, job.list_id, job.total
        self.counts = dict(job.counts)
        self._unchecked.clear()
        self._checked_ahead = None
        self._position = self.read_to = after
        self._all_read, self._loaded = False, True

    def add(self, raws: list[str], *, last: bool) -> None:
        """Addresses read after ``read_to``; ``last``: there are no more."""
        self._unchecked.extend(raws)
        if raws:
            self.read_to = raws[-1]
        self._all_read = self._all_read or last

    @property
    def position(self) -> str | None:
        """The last address taken: the job's cursor once its batch is stored."""
        return self._position

    def take(self, after: str | None, size: int) -> list[Address | Outcome] | None:
        """The next ``size`` addresses after ``after`` (fewer at the end), checked for
        syntax, or None when the run has not read them (its first batch, or the job
        moved on without it)."""
        if not self._loaded or after != self._position:
            return None
        if len(self._unchecked) < size and not self._all_read:
            return None  # read again from ``after``
        raws = [self._unchecked.popleft() for _ in range(min(size, len(self._unchecked)))]
        if raws:
            self._position = raws[-1]
        return self._checked(raws)

    def upcoming(self, size: int) -> list[Address | Outcome]:
        """The batch after the one taken, as far as it is read, checked for syntax (once:
        ``take`` hands the same back)."""
        raws = list(itertools.islice(self._unchecked, size))
        checked = self._checked(raws)
        self._checked_ahead = (raws[0], checked) if raws else None
        return checked

    def should_read(self, size: int) -> bool:
        """The batch after the one taken is not fully read yet."""
        return not self._all_read and len(self._unchecked) < size

    def close(self) -> None:
        self.lookups.close()
        self._unchecked.clear()
        self._checked_ahead = None
        self._loaded = False

    def _checked(self, raws: list[str]) -> list[Address | Outcome]:
        ahead = self._checked_ahead
        if ahead and raws and ahead[0] == raws[0] and len(ahead[1]) == len(raws):
            return ahead[1]  # the same slice of the same run: the same addresses
        return [_checked_as_stored(raw) for raw in raws]


@dataclass(frozen=True)
class BulkProgress:
    """Where a bulk verification job stands, as its row says."""

    job_id: uuid.UUID
    total: int
    done: int
    cursor: str | None  # the last address done (addresses are checked in order)
    status: str
    exhausted: bool = False  # no address is left after ``cursor``

    @classmethod
    def of(cls, job: VerificationJob, *, exhausted: bool = False) -> BulkProgress:
        return cls(job.id, job.total, job.done, job.cursor, job.status, exhausted)

    @property
    def complete(self) -> bool:
        return self.exhausted or self.done >= self.total


class VerificationService:
    # The steps -------------------------------------------------------------------

    def check_syntax(self, raw: str) -> Address | Outcome:
        """The normalised address, or an ``undeliverable`` outcome naming the problem."""
        try:
            return normalise_email(raw)
        except InvalidAddress as exc:
            text = raw.strip().lower()[:320]
            domain = text.rsplit("@", 1)[-1][:255] if "@" in text else ""
            return Outcome(text, domain, "undeliverable", ["invalid_syntax"], {"error": str(exc)})

    async def lookup_domains(
        self, session: AsyncSession, domains: set[str]
    ) -> dict[str, DomainInfo]:
        """DNS facts per domain through the cache (one query per unknown domain)."""
        return await domain_lookup.lookup(session, domains)

    def classify(self, address: Address, info: DomainInfo | None) -> Outcome:
        """The verdict from what is known without talking to the mail server."""
        role = is_role_account(address.local)
        return self.verdict(address.domain, info, role=role).outcome(address)

    def verdict(self, domain: str, info: DomainInfo | None, *, role: bool) -> Verdict:
        """The verdict shared by the addresses of ``domain`` (DNS said ``info``) whose
        local part is (``role``) or is not a role account."""
        dns_verdict = _DNS_VERDICTS.get(info.status if info is not None else dns_module.ERROR)
        if dns_verdict is None and info is not None:
            reasons = ["mx_found" if info.mx_hosts else "a_record_fallback"]
        else:
            reasons = [dns_verdict[1] if dns_verdict else "dns_error"]
        disposable = is_disposable(domain)
        if disposable:
            reasons.append("disposable_domain")
        if role:
            reasons.append("role_account")
        if is_free_mail(domain):
            reasons.append("free_mail_provider")
        status = (
            dns_verdict[0] if dns_verdict else ("risky" if disposable or role else "deliverable")
        )
        details = {"mx_hosts": info.mx_hosts[:5]} if info is not None else {}
        return Verdict(info, status, reasons, details)

    async def probe(self, prober: SmtpProber, outcome: Outcome, info: DomainInfo) -> Outcome:
        """Refine a mail-capable outcome with an SMTP RCPT probe (jobs only, when enabled)."""
        if outcome.status not in ("deliverable", "risky"):
            return outcome
        result = await prober.probe(outcome.email, info)
        # Its own reasons and details: a bulk run's outcomes share their verdict's.
        outcome.reasons, outcome.details = list(outcome.reasons), dict(outcome.details)
        outcome.details["smtp"] = result.verdict
        if result.verdict == REJECTED:
            outcome.status = "undeliverable"
            outcome.reasons.insert(0, "mailbox_not_found")
        elif result.verdict == CATCH_ALL:
            outcome.status = "risky"
            outcome.reasons.append("catch_all")
        elif result.verdict == ACCEPTED:
            outcome.reasons.append("smtp_accepted")
        else:
            outcome.reasons.append("smtp_unreachable")
        return outcome

    async def verify_addresses(
        self,
        session: AsyncSession,
        raws: Sequence[str],
        *,
        known: dict[str, DomainInfo] | None = None,
        prober: SmtpProber | None = None,
    ) -> list[Outcome]:
        """Check a batch: syntax, one lookup per unique domain (``known`` carries answers
        between batches of one job), classification, and the probe when given."""
        parsed = [self.check_syntax(raw) for raw in raws]
        known = known if known is not None else {}
        missing = {p.domain for p in parsed if isinstance(p, Address)} - known.keys()
        if missing:
            known.update(await self.lookup_domains(session, missing))
        outcomes = []
        for item in parsed:
            if isinstance(item, Outcome):
                outcomes.append(item)
                continue
            info = known.get(item.domain)
            outcome = self.classify(item, info)
            if prober is not None and info is not None and info.accepts_mail:
                outcome = await self.probe(prober, outcome, info)
            outcomes.append(outcome)
        return outcomes

    async def record_results(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        outcomes: list[Outcome],
        job_id: uuid.UUID | None = None,
    ) -> None:
        """Store results (a job's pending rows, else new rows; the user's recipients) and
        suppress undeliverable and disposable addresses for the user. A batch costs a
        few statements whatever its size: the results travel as one JSON value."""
        if not outcomes:
            return
        now = utcnow()
        rows = json_rows(session, _results_document(outcomes), **_RESULT_COLUMNS)
        if job_id is not None:
            await session.execute(
                update(_verifications)
                .where(_verifications.c.job_id == job_id, _verifications.c.email == rows["email"])
                .values(
                    status=rows["status"],
                    reasons=rows["reasons"],
                    details=rows["details"],
                    verified_at=now,
                )
            )
        else:
            await self._insert_results(session, user_id=user_id, outcomes=outcomes, now=now)
        await session.execute(
            update(Recipient)
            .where(Recipient.user_id == user_id, Recipient.email == rows["email"])
            .values(
                verification_status=rows["status"],
                verification_reasons=rows["reasons"],
                verified_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        await self._suppress(session, user_id=user_id, outcomes=outcomes)

    async def _insert_results(
        self, session: AsyncSession, *, user_id: uuid.UUID, outcomes: list[Outcome], now: Any
    ) -> None:
        """Results outside an inline job (single checks, list jobs): new rows."""
        await session.execute(
            _verifications.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "created_at": now,
                    "user_id": user_id,
                    "job_id": None,
                    "email": o.email,
                    "domain": o.domain,
                    "status": o.status,
                    "reasons": o.reasons,
                    "details": o.details,
                    "verified_at": now,
                }
                for o in outcomes
            ],
        )

    async def _suppress(
        self, session: AsyncSession, *, user_id: uuid.UUID, outcomes: list[Outcome]
    ) -> None:
        entries = [
            SuppressionEntry(
                "email",
                o.email,
                (SuppressionReason.disposable if o.disposable else SuppressionReason.invalid).value,
            )
            for o in outcomes
            if (o.status == "undeliverable" or o.disposable)
            and "@" in o.email
            and "invalid_syntax" not in o.reasons
        ]
        await suppression_service.add_many(
            session, user_id=user_id, entries=entries, source="verification"
        )

    # Single address -------------------------------------------------------------

    async def verify_email(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        email: str,
        idempotency_key: str | None,
    ) -> tuple[EmailVerification, bool, int]:
        """Verify one address now (no SMTP probe on a request); 1 credit, free when this
        user verified it within the cache TTL. Returns (result, cached, credits charged)."""
        settings = get_settings()
        price = pricing_from_settings(settings).verify_per_address
        parsed = self.check_syntax(email)
        normalised = parsed.email
        cached = await self._recent(session, user_id=user_id, email=normalised)
        if cached is not None:
            return cached, True, 0
        balance = await credit_service.get_balance(session, user_id=user_id)
        if balance < price:
            raise InsufficientCredits(
                f"this needs {price} credits and you have {balance}",
                required=price,
                available=balance,
            )
        outcomes = await self.verify_addresses(session, [email])
        await self.record_results(session, user_id=user_id, outcomes=outcomes)
        result = await self._recent(session, user_id=user_id, email=normalised, any_status=True)
        assert result is not None
        charged = 0
        if result.status != "unknown":
            suffix = idempotency_key or str(result.id)
            await credit_service.apply_ledger_entry(
                session,
                user_id=user_id,
                delta=-price,
                reason=LedgerReason.verify,
                ref=f"email_verification:{result.id}",
                idempotency_key=f"verify:single:{user_id}:{suffix}",
            )
            charged = price
        return result, False, charged

    async def _recent(
        self, session: AsyncSession, *, user_id: uuid.UUID, email: str, any_status: bool = False
    ) -> EmailVerification | None:
        ttl = timedelta(hours=get_settings().verify_cache_ttl_hours)
        statement = select(EmailVerification).where(
            EmailVerification.user_id == user_id,
            EmailVerification.email == email,
            EmailVerification.verified_at > utcnow() - ttl,
        )
        if not any_status:
            statement = statement.where(EmailVerification.status.not_in(["unknown", "pending"]))
        return await session.scalar(
            statement.order_by(EmailVerification.verified_at.desc()).limit(1)
        )

    # Bulk -----------------------------------------------------------------------

    async def start_bulk(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        list_id: uuid.UUID | None,
        emails: list[str] | None,
        idempotency_key: str,
    ) -> VerificationJob:
        """Charge once for every address to check and queue the job (402 charges nothing).

        Once per user and ``idempotency_key``, whoever calls: the same key again, or a
        concurrent call with it, gets the job that holds the key and is charged
        nothing (``recipient.bulk_charge``)."""
        key, earlier = await bulk_charge.key_and_holder(
            session, "verify:bulk", user_id=user_id, idempotency_key=idempotency_key
        )
        if earlier is not None:
            return earlier
        settings = get_settings()
        price = pricing_from_settings(settings).verify_per_address
        job = VerificationJob(
            id=uuid.uuid4(),
            user_id=user_id,
            kind=VerificationJobKind.verify.value,
            status=VerificationJobStatus.queued.value,
            counts={},
            input={},
            results=[],
            charge_key=key,
        )
        if list_id is not None:
            recipient_list = await list_service.get_list(session, user_id=user_id, list_id=list_id)
            job.list_id = recipient_list.id
            job.total = await list_service.count_recipients(session, list_id=recipient_list.id)
        else:
            unique = self._unique_inputs(emails or [], settings.verify_bulk_max_emails)
            job.total = len(unique)
        if job.total == 0:
            raise NothingToVerify("the list has no recipients")
        job.credits_charged = job.total * price
        holder = await bulk_charge.charge(session, job=job, reason=LedgerReason.verify)
        if holder is not job:
            return holder  # a concurrent call with this key committed first
        session.add(job)
        await session.flush()
        if list_id is None:
            await self._add_pending(session, user_id=user_id, job=job, emails=unique)
        enqueue_after_commit(session, VERIFY_JOB, job_id=str(job.id))
        return job

    def _unique_inputs(self, emails: list[str], limit: int) -> list[str]:
        if len(emails) > limit:
            raise TooManyEmails(
                f"send at most {limit} addresses per request, or verify a list",
                errors=[FieldError(loc=["body", "emails"], message=f"at most {limit} items")],
            )
        unique: dict[str, str] = {}
        for raw in emails:
            parsed = self.check_syntax(raw)
            unique.setdefault(parsed.email or raw.strip()[:320], raw)
        return list(unique.keys())

    async def _add_pending(
        self, session: AsyncSession, *, user_id: uuid.UUID, job: VerificationJob, emails: list[str]
    ) -> None:
        now = utcnow()
        await session.execute(
            _verifications.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "created_at": now,
                    "user_id": user_id,
                    "job_id": job.id,
                    "email": email,
                    "domain": email.rsplit("@", 1)[-1][:255],
                    "status": "pending",
                    "reasons": [],
                    "details": {},
                    "verified_at": None,
                }
                for email in emails
            ],
        )

    async def get_job(
        self, session: AsyncSession, *, user_id: uuid.UUID, job_id: uuid.UUID, kind: str
    ) -> VerificationJob:
        job = await session.scalar(
            select(VerificationJob).where(
                VerificationJob.id == job_id,
                VerificationJob.user_id == user_id,
                VerificationJob.kind == kind,
            )
        )
        if job is None:
            raise VerificationJobNotFound("no such job")
        return job

    async def list_job_results(
        self, session: AsyncSession, *, job: VerificationJob, after: str | None, limit: int
    ) -> tuple[list[EmailVerification], str | None]:
        """A page of an inline job's results, by address."""
        statement = select(EmailVerification).where(EmailVerification.job_id == job.id)
        if after:
            statement = statement.where(EmailVerification.email > after)
        rows = list(
            await session.scalars(statement.order_by(EmailVerification.email).limit(limit + 1))
        )
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], rows[limit - 1].email

    def bulk_prober(self) -> SmtpProber | None:
        """The SMTP prober bulk runs use, when probing is enabled."""
        return SmtpProber() if get_settings().smtp_probe_enabled else None

    # The bulk run, step by step (composed by ``outreach.workflow.verification``) ---

    async def bulk_progress(self, database: Database, *, job_id: uuid.UUID) -> BulkProgress | None:
        """Where a bulk job stands (None: no such job)."""
        async with database.session() as session:
            job = await session.get(VerificationJob, job_id)
            return None if job is None else BulkProgress.of(job)

    async def begin_bulk_run(self, database: Database, *, job_id: uuid.UUID) -> BulkProgress | None:
        """Mark the job running and say where it stands (None: gone or finished)."""
        async with database.session() as session:
            job = await session.get(VerificationJob, job_id, with_for_update=True)
            if job is None or job.status in ("completed", "failed"):
                return None
            job.status = VerificationJobStatus.running.value
            return BulkProgress.of(job)

    async def verify_next_batch(
        self,
        database: Database,
        *,
        job_id: uuid.UUID,
        done: int,
        after: str | None,
        run: BulkRun,
    ) -> BulkProgress | None:
        """Verify and store the batch after ``after`` and advance the job in the same
        transaction. ``done`` is what the caller believes the job has done: when the
        job row says otherwise, that batch was already stored (the run stopped before
        it recorded so), and the job's own progress is returned without checking or
        storing anything. None: the job is gone.

        The lookups of the next batch start before this batch's answers are awaited,
        so network waits overlap the database work (bench/recipient_verify.py)."""
        size = get_settings().verify_batch_size
        batch = run.take(after, size)
        if batch is None:
            async with database.session() as session:
                job = await session.get(VerificationJob, job_id)
                if job is None or job.done != done:
                    return None if job is None else BulkProgress.of(job)
                run.restart(job, after=after)
                await self._read(session, run, job_id=job_id, size=size)
            batch = run.take(after, size) or []
        if not batch:
            running = VerificationJobStatus.running.value
            return BulkProgress(job_id, run.total, done, after, running, exhausted=True)
        if run.should_read(size) and done + len(batch) < run.total:
            async with database.session() as session:
                await self._read(session, run, job_id=job_id, size=size)
        domains = _domains(batch)
        run.lookups.start(domains)
        run.lookups.start(_domains(run.upcoming(size)))
        fresh = await run.lookups.answers(domains)
        outcomes = await self._verify_parsed(batch, run)
        return await self._store_batch(
            database, job_id=job_id, done=done, run=run, fresh=fresh, outcomes=outcomes
        )

    async def _read(
        self, session: AsyncSession, run: BulkRun, *, job_id: uuid.UUID, size: int
    ) -> None:
        """Read the addresses after what the run has read and take the cached answers for
        their domains. An inline job's rows are read all at once
        (at most ``OUTREACH_VERIFY_BULK_MAX_EMAILS``) in domain order: a batch then asks
        about few domains, and its lookups end early enough for its results to be
        stored while those of the following batches are still on the wire. A list is
        read a batch at a time, by address."""
        if run.list_id is None:
            raws = await self._pending(session, job_id=job_id)
            last = True
        else:
            raws = await self._list_addresses(
                session, list_id=run.list_id, after=run.read_to, size=size
            )
            last = len(raws) < size
        run.add(raws, last=last)
        # A stored address is normalised: its domain follows its last "@" (a malformed
        # one's "domain" matches no cached row, and is never looked up).
        domains = {raw.rsplit("@", 1)[-1] for raw in raws}
        run.lookups.known.update(await domain_lookup.cached(session, run.lookups.unasked(domains)))

    async def _pending(self, session: AsyncSession, *, job_id: uuid.UUID) -> list[str]:
        """The inline job's addresses not checked yet, grouped by domain. What is left is
        what is still ``pending``, whatever order an earlier run of the job took."""
        statement = (
            select(EmailVerification.email)
            .where(EmailVerification.job_id == job_id, EmailVerification.status == "pending")
            .order_by(EmailVerification.domain, EmailVerification.email)
        )
        return list(await session.scalars(statement))

    async def _list_addresses(
        self, session: AsyncSession, *, list_id: uuid.UUID, after: str | None, size: int
    ) -> list[str]:
        statement = select(Recipient.email).where(Recipient.list_id == list_id)
        if after is not None:
            statement = statement.where(Recipient.email > after)
        return list(await session.scalars(statement.order_by(Recipient.email).limit(size)))

    async def _store_batch(
        self,
        database: Database,
        *,
        job_id: uuid.UUID,
        done: int,
        run: BulkRun,
        fresh: list[DomainInfo],
        outcomes: list[Outcome],
    ) -> BulkProgress | None:
        """Store a batch's results and the job's new position in one transaction. The
        position is written first, on condition that the job is still where this run
        left it: that takes the row's lock, and a job another run of it moved on
        (or one that is gone) gets nothing stored and says where it is."""
        assert run.user_id is not None  # read with the job
        assert run.position is not None  # the batch's last address
        counts = dict(run.counts)
        for outcome in outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        position = min(done + len(outcomes), run.total)
        async with database.session() as session:
            moved = await session.execute(
                update(VerificationJob)
                .where(VerificationJob.id == job_id, VerificationJob.done == done)
                .values(done=position, cursor=run.position, counts=counts)
                .returning(VerificationJob.id)
                .execution_options(synchronize_session=False)
            )
            if moved.first() is None:
                job = await session.get(VerificationJob, job_id)
                return None if job is None else BulkProgress.of(job)
            await domain_lookup.store(session, fresh)
            await self.record_results(
                session,
                user_id=run.user_id,
                outcomes=outcomes,
                job_id=job_id if run.list_id is None else None,
            )
        run.counts = counts
        running = VerificationJobStatus.running.value
        return BulkProgress(job_id, run.total, position, run.position, running)

    async def _verify_parsed(self, batch: list[Address | Outcome], run: BulkRun) -> list[Outcome]:
        """Classify a batch whose domains the run knows (no database needed). A verdict
        is drawn once per domain and role flag in a run, and its addresses share it."""
        outcomes = []
        known, verdicts = run.lookups.known, run.verdicts
        for item in batch:
            if isinstance(item, Outcome):
                outcomes.append(item)
                continue
            info = known.get(item.domain)
            key = (item.domain, is_role_account(item.local))
            verdict = verdicts.get(key)
            if verdict is None or verdict.info is not info:
                verdict = verdicts[key] = self.verdict(item.domain, info, role=key[1])
            outcome = verdict.outcome(item)
            if run.prober is not None and info is not None and info.accepts_mail:
                outcome = await self.probe(run.prober, outcome, info)
            outcomes.append(outcome)
        return outcomes

    async def finish_bulk_run(self, database: Database, *, job_id: uuid.UUID) -> None:
        """Refund what could not be checked (unknown, or never reached) and complete the
        job; once only (the refund's ledger key is the job's, and a completed job is
        left alone), and never more than the job's own debit took."""
        price = pricing_from_settings(get_settings()).verify_per_address
        async with database.session() as session:
            job = await session.get(VerificationJob, job_id, with_for_update=True)
            if job is None or job.user_id is None or job.status == "completed":
                return
            unchecked = job.counts.get("unknown", 0) + max(job.total - job.done, 0)
            job.credits_charged = await bulk_charge.refundable(session, job=job)
            refund = min(unchecked * price, job.credits_charged)
            if refund:
                await credit_service.apply_ledger_entry(
                    session,
                    user_id=job.user_id,
                    delta=refund,
                    reason=LedgerReason.verify,
                    ref=bulk_charge.job_ref(job),
                    idempotency_key=f"verify:bulk-refund:{job.id}",
                )
            job.credits_refunded = refund
            job.status = VerificationJobStatus.completed.value
            job.finished_at = utcnow()
        log.info("bulk verification finished", job_id=str(job_id), refunded=refund)


def _results_document(outcomes: list[Outcome]) -> str:
    """The results as one JSON array (``kit.db.json_rows``). Outcomes that share a
    verdict share its reasons and details objects, which are serialised once."""
    shared: dict[tuple[str, int, int], str] = {}
    rows = []
    for o in outcomes:
        key = (o.status, id(o.reasons), id(o.details))
        fields = shared.get(key)
        if fields is None:
            fields = json.dumps({"status": o.status, "reasons": o.reasons, "details": o.details})
            shared[key] = fields = fields[1:]  # without its opening brace
        rows.append('{"email":' + json.dumps(o.email) + "," + fields)
    return "[" + ",".join(rows) + "]"


def _domains(batch: Iterable[Address | Outcome]) -> set[str]:
    """The domains worth asking DNS about: those of well-formed addresses."""
    return {item.domain for item in batch if isinstance(item, Address)}


def _checked_as_stored(raw: str) -> Address | Outcome:
    """A stored address checked for syntax; a malformed one keeps the stored text, the
    key its result is written under."""
    stored = already_normal(raw)  # what start_bulk and imports store: nothing to redo
    if stored is not None:
        return stored
    item = verification_service.check_syntax(raw)
    if isinstance(item, Outcome):
        item.email = item.email or raw
    return item


verification_service = VerificationService()
