import pytest

from outreach.config import ConfigurationError, Environment, Settings, check_settings

# What ``secrets.token_urlsafe(48)`` gives: the documented way to make a key.
STRONG_KEY = "Zq3vT0m4Yb8kR1wN6pXe2sHc9LfGd5JuA7yVhQoBiEaKn-_Wr"
HTTPS_BASE = "https://outreach.example"


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
    assert "OUTREACH_BASE_URL must start with https://" in message


def test_production_with_real_settings_starts() -> None:
    check_settings(
        make(
            secret_key=STRONG_KEY,
            database_url="postgresql+asyncpg://u@db/outreach",
            base_url=HTTPS_BASE,
        )
    )


def test_sqlite_in_production_needs_explicit_permission() -> None:
    check_settings(
        make(secret_key=STRONG_KEY, allow_sqlite_in_production=True, base_url=HTTPS_BASE)
    )


def test_production_refuses_a_plain_http_base_url() -> None:
    # One-click unsubscribe (RFC 8058) needs an https link; development keeps http.
    settings = make(secret_key=STRONG_KEY, allow_sqlite_in_production=True)
    with pytest.raises(ConfigurationError, match="OUTREACH_BASE_URL must start with https://"):
        check_settings(settings)
    check_settings(make(env="development", base_url="http://127.0.0.1:8000"))


def test_dev_login_only_in_development_by_default() -> None:
    assert make(env="development").dev_login_enabled
    assert not make(env="production").dev_login_enabled
    assert not make(env="testing").dev_login_enabled


def test_lists_read_from_comma_separated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTREACH_CORS_ORIGINS", "https://a.example, https://b.example")
    assert make().cors_origins == ["https://a.example", "https://b.example"]


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (" " * 32, "fewer than 32 non-whitespace characters"),
        (" " * 40 + "abcdefghij", "fewer than 32 non-whitespace characters"),
        ("a b c d e f g h i j k l m n o p q r s t u v w x y z", "fewer than 32"),
        ("s" * 40, "too little variety"),
        ("abababababababababababababababab", "too little variety"),
        ("0123456789" * 4, "too little variety"),  # 10 distinct, but one repeated pattern
        ("Zq3vT0m4Y" * 5, "too little variety"),
    ],
)
def test_production_refuses_a_weak_secret_key_naming_the_setting(key: str, why: str) -> None:
    settings = make(secret_key=key, allow_sqlite_in_production=True)
    with pytest.raises(ConfigurationError) as caught:
        check_settings(settings)
    message = str(caught.value)
    assert "OUTREACH_SECRET_KEY" in message
    assert why in message
    assert not key.strip() or key.strip() not in message  # the key is never printed


def test_a_strong_key_with_surrounding_spaces_is_accepted() -> None:
    check_settings(
        make(secret_key=f"  {STRONG_KEY}  ", allow_sqlite_in_production=True, base_url=HTTPS_BASE)
    )


def test_weak_keys_are_fine_outside_production() -> None:
    check_settings(make(env="development", secret_key=" " * 32))
