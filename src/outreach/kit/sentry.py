"""Error reports to Sentry, when ``OUTREACH_SENTRY_DSN`` is set (otherwise nothing
is initialised and every function here is a no-op).

The API (FastAPI/Starlette integration, plus the request middleware's own
report of an unhandled error, which it answers as a 500 problem) and the jobs
(:class:`SentryJobMiddleware`: task name, job id, attempt) report errors.
Before an event leaves the process, :func:`scrub_event` removes tokens,
cookies, authorization headers and email addresses, wherever they sit:
request headers and query strings, exception messages, stack frame variables,
breadcrumbs.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.types import Event, Hint
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult

from outreach.config import Settings
from outreach.kit.logging import get_logger

log = get_logger("outreach.sentry")

FILTERED = "[Filtered]"
EMAIL_PLACEHOLDER = "[email]"

# A key naming any of these holds a secret, whatever its case or affixes
# ("X-CSRF-Token", "refresh_token", "razorpay_key_secret", "Set-Cookie").
_SENSITIVE_NAME = (
    r"[\w-]*(?:token|secret|passw|authorization|cookie|csrf|signature|api[-_]?key|"
    r"credential|private[-_]?key|session|dsn|code[-_]?verifier)[\w-]*"
)
_SENSITIVE_KEY = re.compile(_SENSITIVE_NAME, re.IGNORECASE)
# Addresses, also URL-encoded ("ada%40example.com" in a query string).
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_AUTH_VALUE = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# A quoted value after a secret's name, as reprs, JSON and source lines show them:
# {'x-csrf-token': 'abc'}, (b'cookie', b'session=abc'), api_token = "abc".
_QUOTED_SECRET = re.compile(
    rf"(\b{_SENSITIVE_NAME}['\"]?\s*[:=,]\s*b?)(['\"])(.*?)\2", re.IGNORECASE
)
# An unquoted name=value pair: query strings, cookies (OAuth code and state too).
_SECRET_PARAMETER = re.compile(
    rf"((?:^|[?&;\s'\"(,])(?:{_SENSITIVE_NAME}|code|state|key)=)[^&;#\s'\"]+", re.IGNORECASE
)
# One-click unsubscribe links carry a signed token that encodes the address.
_UNSUBSCRIBE_TOKEN = re.compile(r"(/u/)[A-Za-z0-9._~=-]{8,}")
# Sentry's own identifiers: never rewritten, or the event cannot be stored.
_KEPT_KEYS = frozenset({"event_id", "trace_id", "span_id", "parent_span_id", "timestamp"})


def scrub_text(text: str) -> str:
    """``text`` without email addresses, authorization values, secret query
    parameters or unsubscribe tokens."""
    text = _EMAIL.sub(EMAIL_PLACEHOLDER, text)
    text = _AUTH_VALUE.sub(lambda match: f"{match.group(1)} {FILTERED}", text)
    text = _QUOTED_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{FILTERED}{m.group(2)}", text)
    text = _SECRET_PARAMETER.sub(lambda match: f"{match.group(1)}{FILTERED}", text)
    return _UNSUBSCRIBE_TOKEN.sub(lambda match: f"{match.group(1)}{FILTERED}", text)


def _scrub(value: Any, key: str | None = None) -> Any:
    if key is not None and key in _KEPT_KEYS:
        return value
    if key is not None and _SENSITIVE_KEY.search(key) and value not in (None, "", [], {}):
        return FILTERED
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub(v, k if isinstance(k, str) else None) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_pair(item) for item in value]
    return value


def _scrub_pair(item: Any) -> Any:
    # Headers may come as [name, value] pairs: the name decides, as for a dict key.
    if (
        isinstance(item, list | tuple)
        and len(item) == 2
        and isinstance(item[0], str)
        and _SENSITIVE_KEY.search(item[0])
    ):
        return [item[0], FILTERED]
    return _scrub(item)


def scrub_event(event: Event, hint: Hint | None = None) -> Event:
    """``before_send``: the event without tokens, cookies, authorization headers or
    email addresses (keys naming a secret lose their value; every string loses
    addresses and inline secrets)."""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("cookies", None)
        request.pop("data", None)  # bodies are never sent (max_request_body_size too)
    user = event.get("user")
    if isinstance(user, dict):
        event["user"] = {k: v for k, v in user.items() if k == "id"}
    scrubbed: Event = _scrub(event)
    return scrubbed


def _scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    scrubbed: dict[str, Any] = _scrub(crumb)
    return scrubbed


def _release() -> str | None:
    try:
        return f"outreach@{version('outreach')}"
    except PackageNotFoundError:
        return None


def init_sentry(settings: Settings, *, component: str) -> bool:
    """Start reporting to Sentry when a DSN is set; returns whether it did.
    ``component`` (api, worker, scheduler) becomes a tag on every event."""
    if settings.sentry_dsn is None:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.env.value,
        release=_release(),
        # Personal data stays off (the SDK's default) and bodies are never read: they
        # hold recipients, resumes and templates.
        max_request_body_size="never",
        traces_sample_rate=settings.sentry_traces_sample_rate,
        trace_propagation_targets=[],  # no trace headers to Google, Razorpay or LLMs
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        before_breadcrumb=_scrub_breadcrumb,
    )
    # taskiq logs a job's exception before its middlewares run; the job middleware
    # reports it with the task and job id, so the log line must not report it first.
    ignore_logger("taskiq.receiver.receiver")
    sentry_sdk.set_tag("component", component)
    log.info("sentry reporting on", component=component, environment=settings.env.value)
    return True


def close_sentry(timeout: float = 2.0) -> None:
    """Send what is queued and stop reporting (tests, and processes on the way out)."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.close(timeout=timeout)
    sentry_sdk.get_global_scope().set_client(None)


def flush_sentry(timeout: float = 2.0) -> None:
    if sentry_sdk.get_client().is_active():
        sentry_sdk.flush(timeout=timeout)


def report_request_error(exc: BaseException, *, request_id: str, user_id: object) -> None:
    """Report an unhandled request error (the middleware answers it with a 500)."""
    if not sentry_sdk.get_client().is_active():
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("request_id", request_id)
        if user_id is not None:
            scope.set_user({"id": str(user_id)})
        sentry_sdk.capture_exception(exc)


class SentryJobMiddleware(TaskiqMiddleware):
    """Reports a job's exception with its task name, job id and attempt: a warning
    while retries remain, an error on the last attempt."""

    def __init__(self, *, max_attempts: int) -> None:
        super().__init__()
        self.max_attempts = max_attempts

    def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        if not sentry_sdk.get_client().is_active():
            return
        attempt = int(message.labels.get("attempt", 1))
        max_attempts = int(message.labels.get("max_attempts", self.max_attempts))
        with sentry_sdk.new_scope() as scope:
            scope.set_tag("task", message.task_name)
            scope.set_tag("job_id", message.task_id)
            scope.set_tag("attempt", str(attempt))
            scope.set_tag("final_attempt", "yes" if attempt >= max_attempts else "no")
            scope.set_level("error" if attempt >= max_attempts else "warning")
            scope.set_transaction_name(message.task_name)
            sentry_sdk.capture_exception(exception)
