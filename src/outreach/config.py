"""All settings, read from the environment (prefix ``OUTREACH_``) and ``.env``."""

from __future__ import annotations

import enum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"  # noqa: S105 - the refused default


class Environment(enum.StrEnum):
    development = "development"
    testing = "testing"
    production = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OUTREACH_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Environment = Environment.production
    secret_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    base_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON in production, console otherwise

    database_url: str = "sqlite+aiosqlite:///var/outreach.db"
    allow_sqlite_in_production: bool = False
    database_pool_size: int = 10
    redis_url: str | None = None

    storage_backend: str = "local"  # local | gcs
    storage_path: Path = Path("var/storage")
    gcs_bucket: str | None = None

    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000", "http://localhost:8000"]
    )
    max_body_bytes: int = 25 * 1024 * 1024
    idempotency_ttl_hours: int = 24

    job_max_retries: int = 3
    job_queue_name: str = "outreach"
    embedded_scheduler: bool = True  # run periodic jobs inside the API when no Redis
    # Embedded broker only: run each job to completion when it is sent (tests use this
    # so jobs never run beside the request that sent them).
    jobs_inline: bool = False
    job_retry_base_seconds: float = 2.0
    # On SIGTERM, how long a worker (or the API's embedded jobs) may take to finish
    # the jobs in flight; the process exits within this plus about 5 s of clean-up.
    stop_grace_seconds: float = Field(default=20.0, gt=0, le=60)

    # Accounts
    google_client_ids: Annotated[list[str], NoDecode] = Field(default_factory=list)
    google_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    enable_dev_login: bool | None = None  # None: on in development only
    session_idle_minutes: int = 60 * 24 * 7
    session_absolute_days: int = 30
    signin_rate_limit: int = 20  # attempts per IP per window
    signin_rate_window_seconds: int = 60

    # Credits (None: the default in credits/pricing.py)
    price_signup_grant: int | None = None
    price_verify: int | None = None
    price_enrich: int | None = None
    price_ai_template: int | None = None
    price_resume_analysis: int | None = None
    price_scheduled_email: int | None = None
    referral_reward_credits: int | None = None
    referral_max_rewards_per_30_days: int = 10

    # Mailboxes
    gmail_client_id: str | None = None  # None: the first of OUTREACH_GOOGLE_CLIENT_IDS
    gmail_client_secret: SecretStr | None = None
    gmail_redirect_url: str | None = None  # None: <base_url>/v1/gmail/callback
    google_auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL
    google_revoke_url: str = "https://oauth2.googleapis.com/revoke"
    gmail_api_url: str = "https://gmail.googleapis.com"
    gmail_quota_units_per_second: int = 250  # per mailbox and process (Gmail: 250/user/s)
    gmail_max_retries: int = 4
    gmail_retry_base_seconds: float = 0.5
    gmail_timeout_seconds: float = 30.0
    # Replies and bounces: how long after an email was sent its Gmail thread is watched.
    reply_tracking_days: int = 30
    # Mailboxes whose replies one worker checks at the same time (each waits on Gmail,
    # with no database connection held; reading every thread takes a minute or more).
    inbox_check_concurrency: int = Field(default=20, ge=1)
    # The reply check's own pace per mailbox, under the mailbox's Gmail budget above, so
    # reading every thread (10 units each) leaves room for sending.
    inbox_check_units_per_second: int = Field(default=200, ge=10)
    frontend_url: str | None = None  # None: the web app's own /mailboxes page
    encryption_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    allow_outbox_mailboxes: bool | None = None  # None: in development only
    outbox_path: Path = Path("var/outbox")
    smtp_allow_private_hosts: bool | None = None  # None: in development only
    smtp_timeout_seconds: float = 20.0
    smtp_ca_file: Path | None = None  # extra CA bundle for SMTP servers with a private CA

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _comma_separated_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    # Payments (Razorpay; without a key id and secret, /v1/payments answers 503)
    razorpay_key_id: str | None = None
    razorpay_key_secret: SecretStr | None = None
    # Comma-separated: during a rotation both the old and new webhook secret verify.
    razorpay_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    razorpay_api_url: str = "https://api.razorpay.com"
    razorpay_timeout_seconds: float = 10.0
    razorpay_max_attempts: int = 3  # attempts per API call; retried on 5xx and network errors
    razorpay_retry_base_seconds: float = 0.5
    razorpay_checkout_name: str = "Outreach"
    payment_reconcile_after_minutes: int = 15
    payment_order_expiry_hours: int = 24

    @field_validator("razorpay_webhook_secrets", mode="before")
    @classmethod
    def _comma_separated_webhook_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def payments_enabled(self) -> bool:
        return bool(self.razorpay_key_id and self.razorpay_key_secret)

    # Recipients (lists, imports, verification, enrichment, suppressions)
    recipient_upload_max_bytes: int = 20 * 1024 * 1024
    recipient_import_max_rows: int = 100_000
    recipient_import_batch_rows: int = 2_000
    recipient_max_cell_bytes: int = 32 * 1024  # a longer cell is a per-row error
    recipient_xlsx_max_uncompressed_bytes: int = 200 * 1024 * 1024  # zip bomb guard
    recipient_parse_timeout_seconds: float = 120.0  # per parsing step; the worker is killed
    # "host" or "host:port", comma-separated; empty: the system's resolv.conf
    dns_nameservers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    dns_timeout_seconds: float = 3.0
    dns_concurrency: int = 50
    dns_cache_ttl_seconds: int = 24 * 3600
    dns_negative_cache_ttl_seconds: int = 3600
    verify_cache_ttl_hours: int = 7 * 24  # a repeat single verify within this is free
    verify_bulk_max_emails: int = 10_000
    verify_batch_size: int = 1000  # a batch is one step: one checkpoint, a few statements
    smtp_probe_enabled: bool = False  # RCPT probe from jobs only; port 25 is often blocked
    smtp_probe_port: int = 25
    smtp_probe_helo: str = "localhost"
    smtp_probe_from: str = "probe@localhost"
    smtp_probe_timeout_seconds: float = 10.0
    enrich_max_candidates: int = 3  # addresses returned (and held for) per company
    enrich_max_companies: int = 1_000
    enrich_inline_max_companies: int = 5  # more than this runs as a background job
    enrich_batch_companies: int = 10  # companies per step (checkpoint) of an enrichment run

    # Workflows: LangGraph checkpoints of bulk runs (PostgreSQL: the app's database)
    checkpoint_sqlite_path: Path = Path("var/checkpoints.sqlite")  # embedded default only
    checkpoint_postgres_url: str | None = None  # None: derived from OUTREACH_DATABASE_URL

    @field_validator("dns_nameservers", mode="before")
    @classmethod
    def _comma_separated_nameservers(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    # Templates
    # The footer every campaign email ends with; {url} is the recipient's own link.
    unsubscribe_footer_text: str = (
        "You are receiving this because I reached out to you personally. "
        "If you would rather not hear from me, unsubscribe here: {url}"
    )

    # Resumes, the parsing pool and the LLM
    resume_max_bytes: int = 5 * 1024 * 1024
    resume_free_analyses_per_30_days: int | None = None  # None: credits/pricing.py
    parsing_workers: int = 2  # pre-started processes parsing uploaded files
    parsing_timeout_seconds: float = 20.0  # a worker past this is killed and replaced
    parsing_memory_limit_mb: int = 1024  # address space of a worker; 0: no limit
    llm_base_url: str | None = None  # any OpenAI-compatible API, e.g. https://api.openai.com/v1
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_seconds: float = 30.0
    llm_max_retries: int = 2  # on 429, 5xx and connection errors

    # Campaigns
    # An address whose mail the operator processes as unsubscribe requests; when set it
    # is offered in List-Unsubscribe beside the one-click link.
    unsubscribe_mailto: str | None = None
    # How many emails one worker sends at the same time (each waits on the network).
    send_concurrency: int = 20
    # An email whose send or preparation failed before anything left the process (no
    # access token, connection refused, DNS) is retried with backoff for this long from
    # its first such failure, then fails and is refunded.
    send_retry_window_seconds: int = Field(default=3600, ge=60)
    # A pending email (its draft not made yet) untouched this long with no retry planned
    # has its preparation started again by the send tick's sweep.
    prepare_stall_seconds: int = Field(default=900, ge=60)

    # Observability: Sentry error reports (off without a DSN) and Prometheus metrics
    sentry_dsn: SecretStr | None = None
    sentry_traces_sample_rate: float = 0.0  # share of requests and jobs traced; 0: errors only
    # When set, GET /metrics asks for "Authorization: Bearer <token>".
    metrics_token: SecretStr | None = None
    # Workers and the scheduler serve their own figures on this port (None: no server).
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"

    @field_validator("cors_origins", "google_client_ids", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def is_development(self) -> bool:
        return self.env == Environment.development

    @property
    def dev_login_enabled(self) -> bool:
        if self.enable_dev_login is None:
            return self.env == Environment.development
        return self.enable_dev_login

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def json_logs(self) -> bool:
        return self.env == Environment.production if self.log_json is None else self.log_json

    def production_problems(self) -> list[str]:
        """Development defaults that must not reach production, each naming its setting."""
        if self.env != Environment.production:
            return []
        problems = []
        if weak := secret_key_weakness(self.secret_key.get_secret_value()):
            problems.append(
                f"OUTREACH_SECRET_KEY {weak}; make one with "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"
            )
        if self.enable_dev_login:
            problems.append("OUTREACH_ENABLE_DEV_LOGIN must not be set in production")
        if not self.base_url.startswith("https://"):
            # RFC 8058 one-click unsubscribe needs an HTTPS link; so do __Host- cookies.
            problems.append(
                "OUTREACH_BASE_URL must start with https:// in production "
                "(one-click unsubscribe links, OAuth redirects, secure cookies)"
            )
        if self.is_sqlite and not self.allow_sqlite_in_production:
            problems.append(
                "OUTREACH_DATABASE_URL is SQLite; use PostgreSQL or set "
                "OUTREACH_ALLOW_SQLITE_IN_PRODUCTION=true"
            )
        return problems


SECRET_KEY_MIN_CHARACTERS = 32
SECRET_KEY_MIN_DISTINCT = 10


def _repeats_a_pattern(text: str) -> bool:
    """True when ``text`` is a shorter piece written again and again ("abcabcab…")."""
    # The smallest period of a string is where it first reappears inside itself doubled.
    period = (text + text).find(text, 1)
    return period <= len(text) // 2


def secret_key_weakness(key: str) -> str | None:
    """Why ``key`` is unfit to sign sessions and links, or None; never quotes the key."""
    if key == DEV_SECRET_KEY:
        return "is the development default"
    visible = "".join(key.split())
    if len(visible) < SECRET_KEY_MIN_CHARACTERS:
        return f"has fewer than {SECRET_KEY_MIN_CHARACTERS} non-whitespace characters"
    if len(set(visible)) < SECRET_KEY_MIN_DISTINCT or _repeats_a_pattern(visible):
        return (
            f"has too little variety (fewer than {SECRET_KEY_MIN_DISTINCT} distinct "
            "characters, or one repeated pattern)"
        )
    return None


class ConfigurationError(RuntimeError):
    """The settings are unsafe for the environment they run in."""


def check_settings(settings: Settings) -> None:
    problems = settings.production_problems()
    if problems:
        raise ConfigurationError("refusing to start in production: " + "; ".join(problems))


@lru_cache
def _settings_from_environment() -> Settings:
    return Settings()


_active_settings: Settings | None = None


def use_settings(settings: Settings | None) -> None:
    """Make ``settings`` the process's settings (the app factory and tests call this)."""
    global _active_settings
    _active_settings = settings


def get_settings() -> Settings:
    """The process's settings: those given to the app, else read from the environment."""
    return _active_settings or _settings_from_environment()
