"""Contract fuzzing: every operation of the OpenAPI document, called with generated
requests as an anonymous caller, a user and an admin, must answer as documented.

schemathesis generates the requests (valid ones, invalid ones, methods the path
does not have) and checks each response: no 5xx, a documented status code, a
documented content type, a body matching its schema, documented headers, a 405
with a truthful ``Allow``, invalid input refused. ``make test`` runs a few
examples per operation with a fixed seed; ``make fuzz`` runs many more
(``OUTREACH_FUZZ_EXAMPLES``, default 100 there).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from schemathesis import Case, Response
from schemathesis.config import SchemathesisConfig

from outreach.app import create_app
from outreach.auth.dependencies import session_cookie_name
from outreach.config import Environment, Settings, use_settings
from tests.contract.conftest import ContractApi

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("OUTREACH_FUZZ_EXAMPLES", "3"))
SEED = int(os.environ.get("OUTREACH_FUZZ_SEED", "20261125"))
ROLES = ["anonymous", "user", "admin"]


def _openapi_document() -> dict[str, Any]:
    """The document of an app configured like the fuzzed one (built, never started)."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env=Environment.testing,
        secret_key="contract-document-secret-key-long-enough-0123456789",
        database_url="sqlite+aiosqlite://",
        enable_dev_login=True,
    )
    try:
        return create_app(settings).openapi()
    finally:
        use_settings(None)


DOCUMENT = _openapi_document()

schema = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {"max-examples": EXAMPLES, "deterministic": True},
            # Per-operation conformance; stateful link-following is not part of this suite.
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                # "A schema-valid request is accepted" cannot hold here: signed values (a
                # pagination cursor, an unsubscribe token, Razorpay's signatures), rules no
                # JSON Schema states (IANA time zones, deliverable domains, a readable file)
                # and state (an Idempotency-Key already used with another body) are refused
                # with their documented 400/422 problem. Every other check stays on.
                "positive_data_acceptance": {"enabled": False},
            },
        }
    ),
)


@schema.hook
def map_body(context: Any, body: Any) -> Any:
    # An SMTP mailbox is checked by connecting to its host: keep generated hosts off the
    # internet. Loopback is refused as a private address (422) before any connection.
    operation = context.operation
    smtp = operation is not None and operation.label == "POST /v1/mailboxes/smtp"
    if smtp and isinstance(body, dict) and isinstance(body.get("host"), str):
        body["host"] = "127.0.0.1"
    return body


def _session_may_have_ended(response: Response, cookie: str) -> bool:
    # Signing out, signing in again or deleting the account sets or clears the session
    # cookie (and ends the caller's session server side); a revoked session answers 401.
    set_cookies = " ".join(response.headers.get("set-cookie", []))
    return response.status_code == 401 or f"{cookie}=" in set_cookies


def test_fuzzed_document_is_the_apps(contract_api: ContractApi) -> None:
    assert contract_api.app.openapi() == DOCUMENT


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
def test_operation_keeps_its_contract(case: Case, role: str, contract_api: ContractApi) -> None:
    caller = contract_api.callers[role]
    response = case.call_and_validate(
        app=contract_api.app,
        cookies=dict(caller.cookies) if caller else None,
        headers=dict(caller.headers) if caller else None,
    )
    cookie = session_cookie_name(contract_api.app.state.settings)
    if caller is not None and _session_may_have_ended(response, cookie):
        caller.sign_in()
