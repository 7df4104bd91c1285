"""The support API (/api/v1) as its callers use it: each endpoint with each scope, and each
refusal (no token, wrong scope, self-service on someone else's address, bad input). The real
app over ASGI, on a service running on the real broker with fake providers (tests/api_world.py);
data arrives as directory events and send requests, failures as signed provider webhooks."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from notifier.adapters.api_tokens import token_digest
from notifier.domain.model import Channel, ContactStatus, Reason
from notifier.entrypoints import cli
from tests.api_world import (
    ADMIN,
    DENNIS,
    LUCIA,
    LUCIA_PHONE,
    MARIA,
    MARIA_EMAIL,
    MARIA_PHONE,
    MARIA_SELF,
    MAYA,
    OTHER_SUPPORT,
    PARK_EMAIL,
    SUPPORT,
    ApiWorld,
    api_world,
)

pytestmark = pytest.mark.kafka

GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
DISTRICT_TIMEZONE = ZoneInfo("America/Chicago")

BOTH_DATABASES = pytest.mark.parametrize(
    "world", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    """On SQLite unless a test asks for both databases (BOTH_DATABASES)."""
    async with api_world(tmp_path, database=getattr(request, "param", "sqlite")) as running:
        yield running


def local_time(moment: str) -> str:
    """As support staff read times: "Nov 3, 07:42" in the district's time zone."""
    local = datetime.fromisoformat(moment).astimezone(DISTRICT_TIMEZONE)
    return f"{local:%b} {local.day}, {local:%H:%M}"


def by_channel(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["channel"]: item for item in items}


def delivery_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [d["delivery_id"] for d in response.json()["deliveries"]]


# -- GET /api/v1/recipients/{id} -------------------------------------------------------------


@BOTH_DATABASES
async def test_support_and_admin_see_a_person_with_address_status_and_deliveries_newest_first(
    world: ApiWorld,
) -> None:
    await world.load_directory([MARIA])
    await world.deliver("msg-1", ["guardian-maria"], 2)
    await world.bounce(MARIA_EMAIL)
    await world.line.final_events("msg-1", 3)
    await world.deliver("msg-2", ["guardian-maria"], 2)

    response = await world.get("/api/v1/recipients/guardian-maria", token=SUPPORT)
    as_admin = await world.get("/api/v1/recipients/guardian-maria", token=ADMIN)

    assert response.status_code == 200, response.text
    assert as_admin.status_code == 200, as_admin.text
    assert as_admin.json() == response.json()
    body = response.json()
    profile = body["recipient"]
    assert (profile["id"], profile["display_name"], profile["language"]) == (
        "guardian-maria",
        "Maria Park",
        "es",
    )
    assert (profile["email"], profile["phone"], profile["preferred_channel"]) == (
        MARIA_EMAIL,
        MARIA_PHONE,
        "email",
    )

    points = by_channel(body["contact_points"])
    email = points["email"]
    assert (email["address"], email["status"], email["reason"]) == (
        MARIA_EMAIL,
        "failing",
        "mailbox_full",
    )
    assert email["since"] is not None
    assert email["badge"] == f"failing: mailbox full since {local_time(email['since'])}"
    assert (points["sms"]["address"], points["sms"]["status"], points["sms"]["badge"]) == (
        MARIA_PHONE,
        "active",
        "active",
    )

    deliveries = body["deliveries"]
    created = [datetime.fromisoformat(d["created_at"]) for d in deliveries]
    assert created == sorted(created, reverse=True), "newest first"
    assert [d["message_id"] for d in deliveries] == ["msg-2"] * 2 + ["msg-1"] * 3
    first = {(d["message_id"], d["channel"]): d for d in deliveries}
    bounced = first[("msg-1", "email")]
    assert (bounced["status"], bounced["reason"]) == ("bounced", "mailbox_full")
    assert [e["status"] for e in bounced["events"]] == ["queued", "sent", "bounced"]
    assert bounced["events"][-1]["reason"] == "mailbox_full"
    assert bounced["why"] == "sent by email — their preferred channel"
    fallback = first[("msg-1", "sms")]
    assert (fallback["route"], fallback["fallback_from"], fallback["status"]) == (
        "failover_bounce",
        "email",
        "sent",
    )
    assert fallback["why"] == "email bounced (mailbox full) — so sent by text instead"
    straight_to_sms = first[("msg-2", "sms")]
    assert straight_to_sms["route"] == "contact_point_failing"
    assert straight_to_sms["why"] == (
        f"email failing since {local_time(email['since'])} — mailbox full — so sent by text"
    )
    assert [e["status"] for e in straight_to_sms["events"]] == ["queued", "sent"]
    assert (body["limit"], body["offset"]) == (50, 0)


@BOTH_DATABASES
async def test_a_persons_deliveries_page_with_limit_and_offset(world: ApiWorld) -> None:
    await world.load_directory([LUCIA])
    for n in range(3):
        await world.deliver(f"msg-{n}", ["guardian-lucia"], 2)
    path = "/api/v1/recipients/guardian-lucia"

    everything = delivery_ids(await world.get(path))
    first_page = await world.get(path, limit=4, offset=0)
    second_page = await world.get(path, limit=4, offset=4)
    past_the_end = await world.get(path, limit=4, offset=6)

    assert len(everything) == 6
    assert delivery_ids(first_page) + delivery_ids(second_page) == everything
    assert (first_page.json()["limit"], second_page.json()["offset"]) == (4, 4)
    assert delivery_ids(past_the_end) == []
    assert past_the_end.json()["contact_points"], "the person is still shown past the last page"


@pytest.mark.parametrize("paging", [{"limit": 201}, {"limit": 0}, {"offset": -1}, {"limit": "ten"}])
async def test_a_page_bigger_than_200_or_out_of_range_is_refused(
    world: ApiWorld, paging: dict[str, Any]
) -> None:
    await world.load_directory([MARIA])

    response = await world.get("/api/v1/recipients/guardian-maria", **paging)

    assert response.status_code == 422, response.text


async def test_a_self_service_token_sees_its_own_person_and_nobody_else(world: ApiWorld) -> None:
    await world.load_directory([MARIA, DENNIS])

    own = await world.get("/api/v1/recipients/guardian-maria", token=MARIA_SELF)
    someone_else = await world.get("/api/v1/recipients/guardian-dennis", token=MARIA_SELF)
    nobody = await world.get("/api/v1/recipients/guardian-nobody", token=MARIA_SELF)

    assert own.status_code == 200, own.text
    assert own.json()["recipient"]["id"] == "guardian-maria"
    assert someone_else.status_code == 403
    assert someone_else.json()["error"] == "forbidden"
    assert "guardian-dennis" not in someone_else.text
    assert nobody.status_code == 403, "whether someone exists is not for a self-service token"


async def test_an_unknown_person_is_not_found(world: ApiWorld) -> None:
    await world.load_directory([MARIA])

    response = await world.get("/api/v1/recipients/guardian-nobody")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "no such recipient"}


# -- GET /api/v1/contact-points ---------------------------------------------------------------


@BOTH_DATABASES
async def test_a_shared_inbox_shows_both_guardians_its_failing_status_and_its_deliveries(
    world: ApiWorld,
) -> None:
    await world.load_directory([DENNIS, MAYA, MARIA])
    await world.deliver("msg-1", ["guardian-dennis", "guardian-maya", "guardian-maria"], 6)
    await world.bounce(PARK_EMAIL)
    await world.line.final_events("msg-1", 8)

    response = await world.get("/api/v1/contact-points", email=PARK_EMAIL)
    as_typed = await world.get("/api/v1/contact-points", email="  Park.Family@Example.ORG ")

    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["id"] for r in body["used_by"]] == ["guardian-dennis", "guardian-maya"]
    point = body["contact_point"]
    assert (point["channel"], point["address"], point["status"], point["reason"]) == (
        "email",
        PARK_EMAIL,
        "failing",
        "mailbox_full",
    )
    assert point["badge"] == f"failing: mailbox full since {local_time(point['since'])}"
    deliveries = body["deliveries"]
    assert {(d["recipient_id"], d["channel"], d["address"]) for d in deliveries} == {
        ("guardian-dennis", "email", PARK_EMAIL),
        ("guardian-maya", "email", PARK_EMAIL),
    }, "only what was sent to this address, not Maria's mail nor the fallback texts"
    assert all(d["events"][0]["status"] == "queued" for d in deliveries)
    assert "bounced" in {d["status"] for d in deliveries}
    assert as_typed.status_code == 200, as_typed.text
    assert as_typed.json() == body, "an address is found however support types it"


async def test_a_phone_number_shows_who_uses_it_and_what_was_texted_to_it(
    world: ApiWorld,
) -> None:
    await world.load_directory([LUCIA])
    await world.deliver("msg-1", ["guardian-lucia"], 2)

    response = await world.get("/api/v1/contact-points", phone=LUCIA_PHONE)

    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["id"] for r in body["used_by"]] == ["guardian-lucia"]
    assert (body["contact_point"]["status"], body["contact_point"]["badge"]) == (
        "active",
        "active",
    )
    [texted] = body["deliveries"]
    assert (texted["channel"], texted["address"], texted["status"]) == ("sms", LUCIA_PHONE, "sent")
    assert texted["why"] == "sent by text — the district's default for their role"


async def test_a_phone_number_typed_with_an_unencoded_plus_is_still_found(
    world: ApiWorld,
) -> None:
    # What support types in a browser or curl: the "+" arrives as a space (form encoding).
    await world.load_directory([LUCIA])

    response = await world.http.get(
        f"/api/v1/contact-points?phone={LUCIA_PHONE}",
        headers={"Authorization": f"Bearer {SUPPORT}"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["contact_point"]["address"] == LUCIA_PHONE


@pytest.mark.parametrize(
    "query", [{}, {"email": MARIA_EMAIL, "phone": MARIA_PHONE}], ids=["neither", "both"]
)
async def test_an_address_lookup_takes_exactly_one_of_email_or_phone(
    world: ApiWorld, query: dict[str, Any]
) -> None:
    await world.load_directory([MARIA])

    response = await world.get("/api/v1/contact-points", **query)

    assert response.status_code == 422
    assert response.json() == {"error": "invalid", "detail": "give exactly one of email or phone"}


@pytest.mark.parametrize(
    ("query", "hint"),
    [
        ({"email": "maria.example.org"}, "name@example.org"),
        ({"email": "maria@example"}, "name@example.org"),
        ({"phone": "555-0144"}, "E.164"),
        ({"phone": "15555550144"}, "E.164"),
        ({"phone": "+1 555 555 0144"}, "E.164"),
    ],
)
async def test_a_malformed_address_is_refused_with_a_clear_message(
    world: ApiWorld, query: dict[str, Any], hint: str
) -> None:
    response = await world.get("/api/v1/contact-points", **query)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid"
    assert hint in response.json()["detail"]


async def test_an_address_nobody_uses_is_not_found(world: ApiWorld) -> None:
    await world.load_directory([MARIA])

    response = await world.get("/api/v1/contact-points", email="nobody@example.org")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_a_self_service_token_may_not_look_up_addresses_even_its_own(
    world: ApiWorld,
) -> None:
    await world.load_directory([MARIA])

    response = await world.get("/api/v1/contact-points", token=MARIA_SELF, email=MARIA_EMAIL)

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


# -- POST /api/v1/contact-points/{channel}/{address}/reset ------------------------------------


@BOTH_DATABASES
async def test_support_resets_a_failing_address_and_the_audit_log_records_who_why_and_request(
    world: ApiWorld,
) -> None:
    await world.load_directory([MARIA])
    failing = await world.mark_failing(Channel.EMAIL, MARIA_EMAIL)
    before = datetime.now(UTC)

    response = await world.reset(
        "email",
        MARIA_EMAIL,
        "Maria called: she emptied her inbox",
        headers={"X-Request-Id": "support-call-42"},
    )

    assert response.status_code == 200, response.text
    assert response.headers["X-Request-Id"] == "support-call-42"
    body = response.json()
    assert (body["channel"], body["address"], body["status"]) == ("email", MARIA_EMAIL, "active")
    assert body["previous"]["status"] == "failing"
    assert body["previous"]["reason"] == "mailbox_full"
    assert datetime.fromisoformat(body["previous"]["since"]) == failing.since
    assert body["provider_suppression"]["outcome"] == "removed"
    assert (await world.contact_point(Channel.EMAIL, MARIA_EMAIL)).status is ContactStatus.ACTIVE
    [entry] = await world.audit()
    assert (entry.actor, entry.scope, entry.action) == ("alice", "support", "reset_contact_point")
    assert (entry.channel, entry.address) == (Channel.EMAIL, MARIA_EMAIL)
    assert entry.note == "Maria called: she emptied her inbox"
    assert entry.request_id == "support-call-42"
    assert before - timedelta(seconds=1) <= entry.occurred_at <= datetime.now(UTC)
    shown = await world.get("/api/v1/recipients/guardian-maria")
    assert by_channel(shown.json()["contact_points"])["email"]["badge"] == "active"


async def test_a_self_service_token_resets_its_own_address(world: ApiWorld) -> None:
    await world.load_directory([MARIA])
    await world.mark_failing(Channel.EMAIL, MARIA_EMAIL)

    response = await world.reset("email", MARIA_EMAIL, "I emptied my inbox", token=MARIA_SELF)

    assert response.status_code == 200, response.text
    assert (await world.contact_point(Channel.EMAIL, MARIA_EMAIL)).status is ContactStatus.ACTIVE
    [entry] = await world.audit()
    assert (entry.actor, entry.scope, entry.note) == (
        "maria-app",
        "self-service",
        "I emptied my inbox",
    )


@pytest.mark.parametrize(
    ("channel", "address"),
    [("email", PARK_EMAIL), ("sms", "+15555550123"), ("email", "nobody@example.org")],
    ids=["their email", "their phone", "an unknown address"],
)
async def test_a_self_service_token_may_not_reset_someone_elses_address_and_nothing_changes(
    world: ApiWorld, channel: str, address: str
) -> None:
    await world.load_directory([MARIA, DENNIS])
    await world.mark_failing(Channel.EMAIL, PARK_EMAIL)
    await world.mark_failing(Channel.SMS, "+15555550123")

    response = await world.reset(channel, address, "not mine", token=MARIA_SELF)

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert (await world.contact_point(Channel.EMAIL, PARK_EMAIL)).status is ContactStatus.FAILING
    assert (await world.contact_point(Channel.SMS, "+15555550123")).status is (
        ContactStatus.FAILING
    )
    assert await world.audit() == []


@pytest.mark.parametrize(
    "body",
    [None, {}, {"note": ""}, {"note": "   "}, {"note": None}, {"reason": "forgot the field"}],
    ids=["no body", "empty object", "empty note", "blank note", "null note", "no note field"],
)
async def test_a_reset_without_a_note_is_refused_and_changes_nothing(
    world: ApiWorld, body: dict[str, Any] | None
) -> None:
    await world.load_directory([MARIA])
    await world.mark_failing(Channel.EMAIL, MARIA_EMAIL)

    response = await world.http.post(
        f"/api/v1/contact-points/email/{MARIA_EMAIL}/reset",
        json=body,
        headers={"Authorization": f"Bearer {SUPPORT}"},
    )

    assert response.status_code == 422, response.text
    assert (await world.contact_point(Channel.EMAIL, MARIA_EMAIL)).status is ContactStatus.FAILING
    assert await world.audit() == []


async def test_resetting_an_address_nobody_uses_is_not_found(world: ApiWorld) -> None:
    await world.load_directory([MARIA])

    response = await world.reset("email", "nobody@example.org")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "no such contact point"}
    assert await world.audit() == []


@pytest.mark.parametrize(
    ("channel", "address"),
    [("fax", MARIA_EMAIL), ("app", "guardian-maria"), ("sms", "555-0144"), ("email", "maria")],
)
async def test_a_reset_of_a_bad_channel_or_malformed_address_is_refused(
    world: ApiWorld, channel: str, address: str
) -> None:
    await world.load_directory([MARIA])

    response = await world.reset(channel, address)

    assert response.status_code == 422, response.text
    assert await world.audit() == []


async def test_support_cannot_lift_an_sms_stop(world: ApiWorld) -> None:
    await world.load_directory([LUCIA])
    assert (await world.text_in(LUCIA_PHONE, "STOP")).status_code == 200

    response = await world.reset("sms", LUCIA_PHONE, "she asked us to")

    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert "START" in response.json()["detail"]
    point = await world.contact_point(Channel.SMS, LUCIA_PHONE)
    assert (point.status, point.reason) == (ContactStatus.OPTED_OUT, Reason.OPTED_OUT)
    assert [e.action for e in await world.audit()] == ["opt_out"], "no reset was recorded"


# -- GET /api/v1/messages/{id}/deliveries -----------------------------------------------------


@BOTH_DATABASES
async def test_every_delivery_of_a_message_is_listed_with_its_events_and_pages(
    world: ApiWorld,
) -> None:
    await world.load_directory([MARIA, DENNIS, LUCIA])
    await world.deliver("msg-1", ["guardian-maria", "guardian-dennis", "guardian-lucia"], 6)
    await world.deliver("msg-other", ["guardian-maria"], 2)
    path = "/api/v1/messages/msg-1/deliveries"

    response = await world.get(path)
    as_admin = await world.get(path, token=ADMIN)
    first_page = await world.get(path, limit=4)
    second_page = await world.get(path, limit=4, offset=4)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["message_id"] == "msg-1"
    assert {(d["recipient_id"], d["channel"]) for d in body["deliveries"]} == {
        ("guardian-maria", "email"),
        ("guardian-maria", "app"),
        ("guardian-dennis", "email"),
        ("guardian-dennis", "app"),
        ("guardian-lucia", "sms"),
        ("guardian-lucia", "app"),
    }
    assert all(d["message_id"] == "msg-1" for d in body["deliveries"])
    # Texts and emails are claimed "queued" and then sent; an inbox copy is one "sent".
    assert all(
        [e["status"] for e in d["events"]]
        == (["sent"] if d["channel"] == "app" else ["queued", "sent"])
        for d in body["deliveries"]
    )
    assert all(d["why"] for d in body["deliveries"])
    assert as_admin.json() == body
    assert delivery_ids(first_page) + delivery_ids(second_page) == delivery_ids(response)
    assert len(delivery_ids(second_page)) == 2


async def test_a_message_never_sent_has_no_deliveries(world: ApiWorld) -> None:
    response = await world.get("/api/v1/messages/msg-never/deliveries")

    assert response.status_code == 200
    assert response.json()["deliveries"] == []


async def test_a_self_service_token_may_not_list_a_messages_deliveries(world: ApiWorld) -> None:
    await world.load_directory([MARIA])
    await world.deliver("msg-1", ["guardian-maria"], 2)

    response = await world.get("/api/v1/messages/msg-1/deliveries", token=MARIA_SELF)

    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


# -- GET /api/v1/audit ------------------------------------------------------------------------


@pytest.mark.parametrize("token", [SUPPORT, MARIA_SELF], ids=["support", "self-service"])
async def test_only_an_admin_reads_the_audit_log(world: ApiWorld, token: str) -> None:
    await world.load_directory([MARIA])
    await world.mark_failing(Channel.EMAIL, MARIA_EMAIL)
    assert (await world.reset("email", MARIA_EMAIL)).status_code == 200

    refused = await world.get("/api/v1/audit", token=token)
    allowed = await world.get("/api/v1/audit", token=ADMIN)

    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert "admin" in refused.json()["detail"]
    assert allowed.status_code == 200
    assert len(allowed.json()["entries"]) == 1


@BOTH_DATABASES
async def test_the_audit_log_is_newest_first_filters_by_address_and_pages(
    world: ApiWorld,
) -> None:
    await world.load_directory([MARIA, DENNIS, MAYA])
    for n, address in enumerate([MARIA_EMAIL, PARK_EMAIL, MARIA_EMAIL], start=1):
        await world.mark_failing(Channel.EMAIL, address)
        reset = await world.reset(
            "email", address, f"call {n}", headers={"X-Request-Id": f"call-{n}"}
        )
        assert reset.status_code == 200, reset.text

    everything = await world.get("/api/v1/audit", token=ADMIN)
    marias = await world.get("/api/v1/audit", token=ADMIN, address=MARIA_EMAIL)
    second = await world.get("/api/v1/audit", token=ADMIN, limit=1, offset=1)
    too_big = await world.get("/api/v1/audit", token=ADMIN, limit=201)

    assert everything.status_code == 200, everything.text
    entries = everything.json()["entries"]
    assert [e["note"] for e in entries] == ["call 3", "call 2", "call 1"]
    occurred = [datetime.fromisoformat(e["occurred_at"]) for e in entries]
    assert occurred == sorted(occurred, reverse=True)
    assert {(e["actor"], e["scope"], e["action"]) for e in entries} == {
        ("alice", "support", "reset_contact_point")
    }
    assert [e["request_id"] for e in entries] == ["call-3", "call-2", "call-1"]
    assert [(e["address"], e["note"]) for e in marias.json()["entries"]] == [
        (MARIA_EMAIL, "call 3"),
        (MARIA_EMAIL, "call 1"),
    ]
    assert [e["note"] for e in second.json()["entries"]] == ["call 2"]
    assert (second.json()["limit"], second.json()["offset"]) == (1, 1)
    assert too_big.status_code == 422


# -- refusals on every endpoint ---------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/api/v1/recipients/guardian-maria", None),
    ("GET", f"/api/v1/contact-points?email={MARIA_EMAIL}", None),
    ("POST", f"/api/v1/contact-points/email/{MARIA_EMAIL}/reset", {"note": "let me in"}),
    ("GET", "/api/v1/messages/msg-1/deliveries", None),
    ("GET", "/api/v1/audit", None),
]
CREDENTIALS = {
    "no header": None,
    "unknown token": "Bearer ntf_not-a-token-anyone-issued",
    "empty bearer": "Bearer ",
    "basic scheme": "Basic YWxpY2U6c2VjcmV0",
    "a valid token under the basic scheme": f"Basic {SUPPORT}",
    "a valid token without a scheme": SUPPORT,
}


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
async def test_every_endpoint_refuses_a_caller_without_a_valid_bearer_token(
    world: ApiWorld, method: str, path: str, body: dict[str, str] | None
) -> None:
    await world.load_directory([MARIA])
    await world.mark_failing(Channel.EMAIL, MARIA_EMAIL)

    refusals = {}
    for credential, authorization in CREDENTIALS.items():
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await world.http.request(method, path, json=body, headers=headers)
        refusals[credential] = (
            response.status_code,
            response.json().get("error"),
            response.headers.get("WWW-Authenticate", "").split(" ")[0],
        )

    assert refusals == dict.fromkeys(CREDENTIALS, (401, "unauthorized", "Bearer"))
    assert (await world.contact_point(Channel.EMAIL, MARIA_EMAIL)).status is ContactStatus.FAILING
    assert await world.audit() == []


async def test_a_refusal_says_why_in_the_json_error_shape(world: ApiWorld) -> None:
    missing = await world.get("/api/v1/audit", token=None)
    unknown = await world.get("/api/v1/audit", token="ntf_not-a-token-anyone-issued")
    wrong_scope = await world.get("/api/v1/audit", token=SUPPORT)

    assert missing.json() == {"error": "unauthorized", "detail": "a bearer token is required"}
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert unknown.json() == {"error": "unauthorized", "detail": "unknown or invalid token"}
    assert unknown.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert wrong_scope.status_code == 403
    assert wrong_scope.json()["error"] == "forbidden"
    assert "support" in wrong_scope.json()["detail"], "it says which scope the token has"
    assert "WWW-Authenticate" not in wrong_scope.headers


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/recipients/guardian-maria?limit=201", None),
        ("POST", f"/api/v1/contact-points/email/{MARIA_EMAIL}/reset", {"note": ""}),
        ("POST", f"/api/v1/contact-points/fax/{MARIA_EMAIL}/reset", {"note": "x"}),
    ],
    ids=["page too big", "empty note", "unknown channel"],
)
async def test_a_validation_error_has_the_same_json_shape_as_every_other_refusal(
    world: ApiWorld, method: str, path: str, body: dict[str, str] | None
) -> None:
    # http.py: one error shape for every 4xx, {"error": ..., "detail": ...}; clients read
    # "error" to tell a refusal apart, as they do for a malformed address's 422.
    await world.load_directory([MARIA])

    response = await world.http.request(
        method, path, json=body, headers={"Authorization": f"Bearer {SUPPORT}"}
    )

    assert response.status_code == 422
    assert response.json().get("error") == "invalid", response.text
    assert response.json().get("detail")


# -- tokens made with `notifier tokens create` ------------------------------------------------


async def table_values(world: ApiWorld) -> dict[str, list[str]]:
    """Every value in every table of the database, as text, by table."""
    schema = sa.MetaData()
    async with world.store.engine.connect() as connection:
        await connection.run_sync(schema.reflect)
        return {
            table.name: [
                str(value) for row in await connection.execute(sa.select(table)) for value in row
            ]
            for table in schema.sorted_tables
        }


async def test_a_token_made_with_the_cli_works_is_audited_and_is_kept_only_as_a_hash(
    world: ApiWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await world.load_directory([MARIA])
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", world.settings.database.url)

    code = await asyncio.to_thread(
        cli.main, ["tokens", "create", "--name", "bob", "--scope", "support"]
    )

    printed = capsys.readouterr()
    assert code == 0, printed.err
    token = printed.out.strip()
    assert re.fullmatch(r"ntf_[A-Za-z0-9_-]{40,}", token), printed.out
    assert "only time" in printed.err
    response = await world.get("/api/v1/recipients/guardian-maria", token=token)
    assert response.status_code == 200, response.text

    [entry] = await world.audit()
    assert entry.action == "create_token"
    assert entry.actor.startswith("cli:")
    assert entry.note is not None
    assert "'bob'" in entry.note
    assert "support" in entry.note
    assert entry.occurred_at <= datetime.now(UTC)

    values = await table_values(world)
    assert token_digest(token) in values["api_tokens"], "the hash is what is kept"
    leaks = [name for name, cells in values.items() if any(token in cell for cell in cells)]
    assert leaks == [], "the token itself is stored nowhere"
    assert {"api_tokens", "audit_log"} <= values.keys()


async def test_a_self_service_token_made_with_the_cli_acts_for_its_recipient_only(
    world: ApiWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await world.load_directory([MARIA, DENNIS])
    await world.mark_failing(Channel.EMAIL, PARK_EMAIL)
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", world.settings.database.url)
    argv = ["tokens", "create", "--name", "dennis-app", "--scope", "self-service"]

    code = await asyncio.to_thread(cli.main, [*argv, "--recipient", "guardian-dennis"])

    assert code == 0
    token = capsys.readouterr().out.strip()
    assert (await world.get("/api/v1/recipients/guardian-dennis", token=token)).status_code == 200
    assert (await world.get("/api/v1/recipients/guardian-maria", token=token)).status_code == 403
    own_reset = await world.reset("email", PARK_EMAIL, "inbox emptied", token=token)
    assert own_reset.status_code == 200, own_reset.text
    assert (await world.audit())[0].actor == "dennis-app"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--name", "kid", "--scope", "self-service"], "needs --recipient"),
        (["--name", "alice", "--scope", "support", "--recipient", "guardian-maria"], "--recipient"),
        (["--name", "  ", "--scope", "support"], "needs a name"),
    ],
    ids=["self-service without --recipient", "support with --recipient", "blank name"],
)
async def test_the_cli_refuses_an_inconsistent_token_request_and_creates_nothing(
    world: ApiWorld,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    complaint: str,
) -> None:
    monkeypatch.setenv("NOTIFIER_DATABASE_URL", world.settings.database.url)

    code = await asyncio.to_thread(cli.main, ["tokens", "create", *argv])

    printed = capsys.readouterr()
    assert code == 2
    assert printed.out == "", "no token is printed"
    [message] = [line for line in printed.err.splitlines() if "tokens create:" in line]
    assert complaint in message
    values = await table_values(world)
    assert values["api_tokens"] == []
    assert values["audit_log"] == []


# -- rate limit -------------------------------------------------------------------------------


async def test_a_token_over_its_rate_gets_429_with_retry_after_and_other_tokens_go_on(
    tmp_path: Path,
) -> None:
    async with api_world(tmp_path, rate_limit_per_minute=60, rate_limit_burst=3) as world:
        await world.load_directory([MARIA])
        await world.mark_failing(Channel.EMAIL, MARIA_EMAIL)
        path = "/api/v1/recipients/guardian-maria"

        burst = [(await world.get(path, token=SUPPORT)).status_code for _ in range(3)]
        limited = await world.reset("email", MARIA_EMAIL, token=SUPPORT)
        other_token = await world.get(path, token=OTHER_SUPPORT)

        assert burst == [200, 200, 200]
        assert limited.status_code == 429, limited.text
        assert limited.headers["Retry-After"] == "1", "60 a minute: one more a second later"
        assert limited.json()["detail"]
        assert "X-Request-Id" in limited.headers
        assert (await world.contact_point(Channel.EMAIL, MARIA_EMAIL)).status is (
            ContactStatus.FAILING
        ), "a refused reset changes nothing"
        assert await world.audit() == []
        assert other_token.status_code == 200, "each token has its own allowance"

        await asyncio.sleep(int(limited.headers["Retry-After"]) + 0.05)
        assert (await world.reset("email", MARIA_EMAIL, token=SUPPORT)).status_code == 200


# -- request ids ------------------------------------------------------------------------------


async def test_every_response_carries_a_request_id(world: ApiWorld) -> None:
    await world.load_directory([MARIA])
    requests: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/healthz", {}),
        ("GET", "/readyz", {}),
        ("GET", "/metrics", {}),
        ("GET", "/api/openapi.json", {}),
        ("GET", "/api/v1/recipients/guardian-maria", {"Authorization": f"Bearer {SUPPORT}"}),
        ("GET", "/api/v1/recipients/guardian-nobody", {"Authorization": f"Bearer {SUPPORT}"}),
        ("GET", "/api/v1/recipients/guardian-maria", {}),
        ("GET", "/api/v1/audit", {"Authorization": f"Bearer {SUPPORT}"}),
        ("GET", "/api/v1/audit?limit=0", {"Authorization": f"Bearer {ADMIN}"}),
        ("POST", "/webhooks/sendgrid/events", {}),
        ("POST", "/webhooks/twilio/status", {}),
        ("GET", "/r/not-a-valid-link", {}),
    ]

    seen = {}
    for method, path, headers in requests:
        response = await world.http.request(method, path, headers=headers)
        seen[f"{method} {path} -> {response.status_code}"] = response.headers.get("X-Request-Id")
    signed = await world.sendgrid_events([])

    assert [key for key, value in seen.items() if not value] == []
    assert all(GENERATED_REQUEST_ID.match(value or "") for value in seen.values()), seen
    assert len(set(seen.values())) == len(seen), "each request gets its own id"
    assert signed.status_code == 200
    assert GENERATED_REQUEST_ID.match(signed.headers["X-Request-Id"])


@pytest.mark.parametrize(
    "sent", ["abc-123", "0f5c6a52-7a0e-4b5e-9d1f-6f3c2a1b9e77", "req_1.2", "a" * 64]
)
async def test_a_sane_request_id_from_the_client_is_echoed(world: ApiWorld, sent: str) -> None:
    api = await world.get("/api/v1/recipients/guardian-nobody", headers={"X-Request-Id": sent})
    health = await world.http.get("/healthz", headers={"X-Request-Id": sent})

    assert api.headers["X-Request-Id"] == sent
    assert health.headers["X-Request-Id"] == sent


@pytest.mark.parametrize(
    "sent",
    ["a" * 65, "two words", "semi;colon", "<script>", "../../etc"],
    ids=["too long", "spaces", "semicolon", "markup", "slashes"],
)
async def test_an_unsafe_request_id_is_replaced_and_the_audit_log_keeps_the_new_one(
    world: ApiWorld, sent: str
) -> None:
    await world.load_directory([MARIA])
    await world.mark_failing(Channel.EMAIL, MARIA_EMAIL)

    response = await world.reset("email", MARIA_EMAIL, headers={"X-Request-Id": sent})

    assert response.status_code == 200, response.text
    replaced = response.headers["X-Request-Id"]
    assert replaced != sent
    assert GENERATED_REQUEST_ID.match(replaced)
    [entry] = await world.audit()
    assert entry.request_id == replaced
