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
    job_retry_base_seconds: float = 2.0

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

    # Templates
    # The footer every campaign email ends with; {url} is the recipient's own link.
    unsubscribe_footer_text: str = (
        "You are receiving this because I reached out to you personally. "
        "If you would rather not hear from me, unsubscribe here: {url}"
    )

    sentry_dsn: SecretStr | None = None

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
        if (
            self.secret_key.get_secret_value() == DEV_SECRET_KEY
            or len(self.secret_key.get_secret_value()) < 32
        ):
            problems.append("OUTREACH_SECRET_KEY is the development default or shorter than 32")
        if self.enable_dev_login:
            problems.append("OUTREACH_ENABLE_DEV_LOGIN must not be set in production")
        if self.is_sqlite and not self.allow_sqlite_in_production:
            problems.append(
                "OUTREACH_DATABASE_URL is SQLite; use PostgreSQL or set "
                "OUTREACH_ALLOW_SQLITE_IN_PRODUCTION=true"
            )
        return problems


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
