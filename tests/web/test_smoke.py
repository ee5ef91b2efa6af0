from __future__ import annotations

import httpx

from tests.conftest import wait_for_jobs
from tests.web.conftest import TEMPLATE_BODY, TEMPLATE_SUBJECT, contacts_csv, sign_in_page


async def test_smoke(web_client: httpx.AsyncClient) -> None:
    token = await sign_in_page(web_client)
    r = await web_client.get("/mailboxes")
    assert r.status_code == 200, r.text
    r = await web_client.post("/mailboxes/outbox", data={"csrf_token": token, "address": "asha.rao@example.com", "timezone": "UTC"})
    assert r.status_code == 303, r.text
    r = await web_client.post("/lists", data={"csrf_token": token, "name": "Leads"}, files={"file": ("leads.csv", contacts_csv(), "text/csv")})
    assert r.status_code == 303, r.text
    await wait_for_jobs()
    r = await web_client.get(r.headers["location"])
    print(r.text[:3000])
    assert r.status_code == 200
    for path in ["/", "/lists", "/templates", "/templates/new", "/campaigns", "/campaigns/new", "/credits"]:
        r = await web_client.get(path)
        assert r.status_code == 200, (path, r.text)
