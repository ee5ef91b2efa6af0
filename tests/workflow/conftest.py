"""Workflow fixtures: settings resolving through the fake DNS, with the DNS cache off so
that checking an address twice shows as a second query."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from outreach.config import Settings, use_settings
from tests.fakes.dns import FakeDNS, fake_dns, fake_dns_server  # noqa: F401


@pytest.fixture
def run_settings(settings: Settings, fake_dns: FakeDNS) -> Iterator[Settings]:  # noqa: F811
    changed = settings.model_copy(
        update={
            "dns_nameservers": [fake_dns.nameserver],
            "dns_timeout_seconds": 1.0,
            "dns_cache_ttl_seconds": 0,
            "dns_negative_cache_ttl_seconds": 0,
            "verify_batch_size": 3,
            "enrich_batch_companies": 2,
        }
    )
    use_settings(changed)
    yield changed
    use_settings(settings)
