import pytest

from outreach.config import ConfigurationError, Environment, Settings, check_settings


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_environment_defaults_to_production() -> None:
    assert make().env == Environment.production


def test_production_refuses_development_defaults_and_names_them() -> None:
    settings = make(enable_dev_login=True)
    with pytest.raises(ConfigurationError) as caught:
        check_settings(settings)
    message = str(caught.value)
    assert "OUTREACH_SECRET_KEY" in message
    assert "OUTREACH_ENABLE_DEV_LOGIN" in message
    assert "OUTREACH_DATABASE_URL" in message


def test_production_with_real_settings_starts() -> None:
    check_settings(
        make(
            secret_key="s" * 40,
            database_url="postgresql+asyncpg://u@db/outreach",
        )
    )


def test_sqlite_in_production_needs_explicit_permission() -> None:
    check_settings(make(secret_key="s" * 40, allow_sqlite_in_production=True))


def test_dev_login_only_in_development_by_default() -> None:
    assert make(env="development").dev_login_enabled
    assert not make(env="production").dev_login_enabled
    assert not make(env="testing").dev_login_enabled


def test_lists_read_from_comma_separated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_CORS_ORIGINS", "https://a.example, https://b.example")
    assert make().cors_origins == ["https://a.example", "https://b.example"]
