"""The fake Gmail's history, threads and incoming mail, spoken over raw HTTP as Gmail
answers (every request is checked against the discovery document)."""

from __future__ import annotations

import base64
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import httpx

from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle

ADDRESS = "asha.rao@gmail.com"
SCOPES = [
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.metadata",
]


def _headers(fake_google: FakeGoogle) -> dict[str, str]:
    grant = fake_google.oauth.issue_grant(email=ADDRESS, scopes=SCOPES)
    return {"Authorization": f"Bearer {fake_google.oauth.issue_access_token(grant)}"}


def _raw(subject: str, *, message_id: str, in_reply_to: str | None = None) -> str:
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = ADDRESS
    message["To"] = "lead@firm.com"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content("Hello\n")
    return base64.urlsafe_b64encode(message.as_bytes()).decode()


async def _send(http: httpx.AsyncClient, headers: dict[str, str], body: dict) -> dict:  # type: ignore[type-arg]
    response = await http.post("/gmail/v1/users/me/messages/send", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


class TestHistory:
    async def test_nothing_new_is_one_record_free_answer_with_the_current_id(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        headers = _headers(fake_google)
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            profile = (await http.get("/gmail/v1/users/me/profile", headers=headers)).json()
            page = await http.get(
                "/gmail/v1/users/me/history",
                params={"startHistoryId": profile["historyId"], "historyTypes": "messageAdded"},
                headers=headers,
            )
        assert page.status_code == 200
        assert page.json() == {"historyId": profile["historyId"]}

    async def test_added_messages_are_listed_after_the_start_id_page_by_page(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        headers = _headers(fake_google)
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            start = (await http.get("/gmail/v1/users/me/profile", headers=headers)).json()
            sent = await _send(http, headers, {"raw": _raw("Hi", message_id="<a@x>")})
            stored = fake_gmail.sent(ADDRESS)[0]
            reply = fake_gmail.deliver_reply(ADDRESS, stored)
            first = await http.get(
                "/gmail/v1/users/me/history",
                params={"startHistoryId": start["historyId"], "maxResults": "1"},
                headers=headers,
            )
            second = await http.get(
                "/gmail/v1/users/me/history",
                params={
                    "startHistoryId": start["historyId"],
                    "maxResults": "1",
                    "pageToken": first.json()["nextPageToken"],
                },
                headers=headers,
            )
        added = [
            record["messagesAdded"][0]["message"]
            for page in (first.json(), second.json())
            for record in page["history"]
        ]
        assert [m["id"] for m in added] == [sent["id"], reply.id]
        assert added[1]["threadId"] == sent["threadId"]
        assert added[1]["labelIds"] == ["INBOX", "UNREAD"]
        assert "nextPageToken" not in second.json()
        assert int(second.json()["historyId"]) > int(start["historyId"])

    async def test_only_the_history_types_asked_for_are_listed(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        headers = _headers(fake_google)
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            start = (await http.get("/gmail/v1/users/me/profile", headers=headers)).json()
            fake_gmail.deliver(ADDRESS, b"From: lead@firm.com\r\nSubject: Hi\r\n\r\nhello")
            pages = {
                kind: (
                    await http.get(
                        "/gmail/v1/users/me/history",
                        params={"startHistoryId": start["historyId"], "historyTypes": kind},
                        headers=headers,
                    )
                ).json()
                for kind in ("labelAdded", "messageAdded")
            }
        current = str(fake_gmail.mailbox(ADDRESS).history_id)
        assert pages["labelAdded"] == {"historyId": current}  # a message added is not one
        assert len(pages["messageAdded"]["history"]) == 1
        assert pages["messageAdded"]["historyId"] == current

    async def test_an_expired_start_id_is_a_404_and_a_missing_one_a_400(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        headers = _headers(fake_google)
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            start = (await http.get("/gmail/v1/users/me/profile", headers=headers)).json()
            fake_gmail.expire_history(ADDRESS)
            old = await http.get(
                "/gmail/v1/users/me/history",
                params={"startHistoryId": start["historyId"]},
                headers=headers,
            )
            missing = await http.get("/gmail/v1/users/me/history", headers=headers)
            unknown = await http.get(
                "/gmail/v1/users/me/history",
                params={"startHistoryId": "1", "historyTypes": "messageMoved"},
                headers=headers,
            )
        assert old.status_code == 404
        assert old.json()["error"]["status"] == "NOT_FOUND"
        assert missing.status_code == 400
        assert unknown.status_code == 400  # not in the document's enum


class TestThreads:
    async def test_metadata_thread_lists_every_message_with_the_asked_headers(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        headers = _headers(fake_google)
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            sent = await _send(http, headers, {"raw": _raw("Hi", message_id="<a@x>")})
            fake_gmail.deliver_auto_reply(ADDRESS, fake_gmail.sent(ADDRESS)[0])
            thread = await http.get(
                f"/gmail/v1/users/me/threads/{sent['threadId']}",
                params=[
                    ("format", "metadata"),
                    ("metadataHeaders", "Auto-Submitted"),
                    ("metadataHeaders", "Subject"),
                ],
                headers=headers,
            )
            full = await http.get(f"/gmail/v1/users/me/threads/{sent['threadId']}", headers=headers)
            missing = await http.get(
                "/gmail/v1/users/me/threads/ffff", params={"format": "minimal"}, headers=headers
            )
        body = thread.json()
        assert [m["id"] for m in body["messages"]][0] == sent["id"]
        names = [{h["name"] for h in m["payload"]["headers"]} for m in body["messages"]]
        assert names == [{"Subject"}, {"Subject", "Auto-Submitted"}]
        assert full.status_code == 403  # format=full is refused under gmail.metadata
        assert missing.status_code == 404

    async def test_a_thread_id_is_kept_only_for_a_real_answer_under_the_same_subject(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        headers = _headers(fake_google)
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            first = await _send(http, headers, {"raw": _raw("Hi", message_id="<a@x>")})
            answer = await _send(
                http,
                headers,
                {
                    "raw": _raw("Re: Hi", message_id="<b@x>", in_reply_to="<a@x>"),
                    "threadId": first["threadId"],
                },
            )
            stray = await _send(
                http,
                headers,
                {"raw": _raw("Other", message_id="<c@x>"), "threadId": first["threadId"]},
            )
        assert answer["threadId"] == first["threadId"]
        assert stray["threadId"] != first["threadId"]


class TestIncomingMail:
    async def test_a_bounce_is_a_strict_rfc3464_report_naming_our_message(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        headers = _headers(fake_google)
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            await _send(http, headers, {"raw": _raw("Hi", message_id="<a@x>")})
        original = fake_gmail.sent(ADDRESS)[0]
        bounce = fake_gmail.deliver_bounce(ADDRESS, original)
        parsed = BytesParser(policy=policy.strict).parsebytes(bounce.raw)
        assert bounce.thread_id == original.thread_id
        assert parsed["From"].addresses[0].addr_spec == "mailer-daemon@googlemail.com"
        assert parsed["X-Failed-Recipients"] == "lead@firm.com"
        assert parsed["In-Reply-To"] == "<a@x>"
        assert parsed.get_content_type() == "multipart/report"
        assert parsed.get_param("report-type") == "delivery-status"
        status = [p for p in parsed.walk() if p.get_content_type() == "message/delivery-status"]
        assert len(status) == 1
        fields = b"".join(bytes(part) for part in status[0].get_payload())
        assert b"Final-Recipient: rfc822; lead@firm.com" in fields
        assert b"Status: 5.1.1" in fields
        rfc822 = [p for p in parsed.walk() if p.get_content_type() == "text/rfc822-headers"]
        assert "Message-ID: <a@x>" in rfc822[0].get_content()

    async def test_a_reply_answers_the_message_in_its_thread(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        headers = _headers(fake_google)
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            await _send(http, headers, {"raw": _raw("Hi", message_id="<a@x>")})
        original = fake_gmail.sent(ADDRESS)[0]
        reply = BytesParser(policy=policy.strict).parsebytes(
            fake_gmail.deliver_reply(ADDRESS, original).raw
        )
        assert reply["From"] == "lead@firm.com"
        assert reply["Subject"] == "Re: Hi"
        assert (reply["In-Reply-To"], reply["References"]) == ("<a@x>", "<a@x>")
        assert "Auto-Submitted" not in reply
