"""The support API (``/api/v1``): bearer tokens with scopes; input validated with clear 4xx;
lists paginated with ``limit`` and ``offset``."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from notifier.bootstrap import Container
from notifier.domain.model import Channel, Recipient, Scope
from notifier.entrypoints.auth import ADMIN, ANYONE, SUPPORT, admit, bearer_token
from notifier.handlers.contact_points import Actor, reset_contact_point
from notifier.handlers.support import (
    ContactPointView,
    DeliveryView,
    address_view,
    message_deliveries,
    recipient_view,
)
from notifier.ports import Principal

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
# Bounded so a huge number is a 422, not an overflow in the database's OFFSET.
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip")]


class ResettableChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class ResetBody(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    note: str = Field(
        min_length=1, max_length=2000, description="Why: kept in the audit log with who and when."
    )


class ContactPointOut(BaseModel):
    channel: str
    address: str
    status: str
    reason: str | None
    since: datetime | None
    badge: str = Field(description='e.g. "failing: mailbox full since Nov 3, 07:42"')

    @classmethod
    def of(cls, view: ContactPointView) -> ContactPointOut:
        point = view.point
        return cls(
            channel=point.channel.value,
            address=point.address,
            status=point.status.value,
            reason=point.reason.value if point.reason else None,
            since=point.since,
            badge=view.badge,
        )


class EventOut(BaseModel):
    status: str
    reason: str | None
    provider: str | None
    occurred_at: datetime


class DeliveryOut(BaseModel):
    delivery_id: str
    message_id: str
    conversation_id: str
    recipient_id: str
    channel: str
    address: str | None
    status: str
    reason: str | None
    route: str | None
    fallback_from: str | None
    language: str | None
    provider: str | None
    provider_message_id: str | None
    created_at: datetime | None
    why: str = Field(description="Why this channel, in plain language")
    events: list[EventOut]

    @classmethod
    def of(cls, view: DeliveryView) -> DeliveryOut:
        record = view.record
        return cls(
            delivery_id=record.delivery_id,
            message_id=record.message_id,
            conversation_id=record.conversation_id,
            recipient_id=record.recipient_id,
            channel=record.channel.value,
            address=record.address,
            status=record.status.value,
            reason=record.reason.value if record.reason else None,
            route=record.route.value if record.route else None,
            fallback_from=record.fallback_from.value if record.fallback_from else None,
            language=record.language,
            provider=record.provider,
            provider_message_id=record.provider_message_id,
            created_at=record.created_at,
            why=view.why,
            events=[
                EventOut(
                    status=event.status.value,
                    reason=event.reason.value if event.reason else None,
                    provider=event.provider,
                    occurred_at=event.occurred_at,
                )
                for event in view.history
            ],
        )


class RecipientOut(BaseModel):
    id: str
    district_id: str
    display_name: str
    role: str
    language: str | None
    preferred_channel: str | None
    phone: str | None
    email: str | None
    app: bool

    @classmethod
    def of(cls, recipient: Recipient) -> RecipientOut:
        return cls(
            id=recipient.id,
            district_id=recipient.district_id,
            display_name=recipient.display_name,
            role=recipient.role.value,
            language=recipient.language,
            preferred_channel=recipient.preferred_channel.value
            if recipient.preferred_channel
            else None,
            phone=recipient.phone,
            email=recipient.email,
            app=recipient.app,
        )


class RecipientDetail(BaseModel):
    recipient: RecipientOut
    contact_points: list[ContactPointOut]
    deliveries: list[DeliveryOut] = Field(description="Newest first")
    limit: int
    offset: int


class AddressDetail(BaseModel):
    contact_point: ContactPointOut
    used_by: list[RecipientOut]
    deliveries: list[DeliveryOut] = Field(description="Newest first")
    limit: int
    offset: int


class MessageDeliveries(BaseModel):
    message_id: str
    deliveries: list[DeliveryOut]
    limit: int
    offset: int


class ContactPointState(BaseModel):
    status: str
    reason: str | None
    since: datetime | None


class ProviderSuppression(BaseModel):
    outcome: str = Field(description="removed, not_applicable, or failed (see detail)")
    detail: str | None = None


class ResetResponse(BaseModel):
    channel: str
    address: str
    status: str
    previous: ContactPointState
    provider_suppression: ProviderSuppression


class AuditOut(BaseModel):
    occurred_at: datetime
    actor: str
    scope: str
    action: str
    channel: str | None
    address: str | None
    note: str | None
    request_id: str | None
    outcome: str | None


class AuditPage(BaseModel):
    entries: list[AuditOut] = Field(description="Newest first")
    limit: int
    offset: int


REFUSALS: dict[int | str, dict[str, str]] = {
    401: {"description": "No token, or an unknown or invalid one"},
    403: {"description": "The token's scope doesn't allow this"},
    429: {"description": "Too many requests for this token (see Retry-After)"},
}


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["support"], responses=REFUSALS)

    @router.get(
        "/recipients/{recipient_id}",
        summary="A person: contact points with status, and recent deliveries with events",
        response_model=RecipientDetail,
        responses={404: {"description": "Not in the directory"}},
    )
    async def get_recipient(
        request: Request,
        recipient_id: Annotated[str, Path(min_length=1, max_length=128)],
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> RecipientDetail:
        container, caller = await _caller(request, ANYONE)
        if caller.scope == Scope.SELF_SERVICE and caller.recipient_id != recipient_id:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a self-service token sees only its own")
        view = await recipient_view(container.support, recipient_id, limit=limit, offset=offset)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such recipient")
        return RecipientDetail(
            recipient=RecipientOut.of(view.recipient),
            contact_points=[ContactPointOut.of(p) for p in view.contact_points],
            deliveries=[DeliveryOut.of(d) for d in view.deliveries],
            limit=limit,
            offset=offset,
        )

    @router.get(
        "/contact-points",
        summary="An address (give email or phone): its status, who uses it, its deliveries",
        response_model=AddressDetail,
        responses={404: {"description": "Nobody uses it"}},
    )
    async def find_contact_point(
        request: Request,
        email: Annotated[str | None, Query(max_length=320)] = None,
        phone: Annotated[str | None, Query(max_length=32)] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> AddressDetail:
        container, _ = await _caller(request, SUPPORT)
        if (email is None) == (phone is None):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "give exactly one of email or phone"
            )
        channel = Channel.EMAIL if email is not None else Channel.SMS
        if phone is not None and phone[:1] == " " and phone.strip()[:1].isdigit():
            # "+1555…" typed into a URL arrives as " 1555…" (a + in a query is a space).
            phone = "+" + phone.strip()
        address = valid_address(channel, email if email is not None else phone or "")
        view = await address_view(container.support, channel, address, limit=limit, offset=offset)
        if view is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "nobody uses this address")
        return AddressDetail(
            contact_point=ContactPointOut.of(view.contact_point),
            used_by=[RecipientOut.of(r) for r in view.used_by],
            deliveries=[DeliveryOut.of(d) for d in view.deliveries],
            limit=limit,
            offset=offset,
        )

    @router.post(
        "/contact-points/{channel}/{address}/reset",
        summary="Set a contact point back to active (audited)",
        response_model=ResetResponse,
        responses={
            404: {"description": "No such contact point"},
            409: {"description": "An SMS STOP, which only the person can lift"},
        },
    )
    async def reset(
        request: Request,
        channel: ResettableChannel,
        address: Annotated[str, Path(max_length=320)],
        body: Annotated[ResetBody, Body()],
    ) -> ResetResponse:
        container, caller = await _caller(request, ANYONE)
        target = Channel(channel.value)
        address = valid_address(target, address)
        if caller.scope == Scope.SELF_SERVICE:
            await _check_own_address(caller, target, address, container)
        known = await container.store.contact_points.contact_points([(target, address)])
        if (target, address) not in known:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such contact point")
        # A refused reset (ResetRefused) is answered by the app's map of refusals (http.py).
        result = await reset_contact_point(
            target,
            address,
            Actor(caller.name, caller.scope),
            body.note,
            request.state.request_id,
            container.follow_up.contact_points,
        )
        container.metrics.status_reset(target, caller.scope)
        previous = result.previous
        return ResetResponse(
            channel=target.value,
            address=address,
            status="active",
            previous=ContactPointState(
                status=previous.status.value,
                reason=previous.reason.value if previous.reason else None,
                since=previous.since,
            ),
            provider_suppression=ProviderSuppression(
                outcome=result.suppression.value, detail=result.suppression_detail
            ),
        )

    @router.get(
        "/messages/{message_id}/deliveries",
        summary="Every delivery of one message, with events",
        response_model=MessageDeliveries,
    )
    async def deliveries_of_message(
        request: Request,
        message_id: Annotated[str, Path(min_length=1, max_length=128)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Offset = 0,
    ) -> MessageDeliveries:
        container, _ = await _caller(request, SUPPORT)
        views = await message_deliveries(container.support, message_id, limit=limit, offset=offset)
        return MessageDeliveries(
            message_id=message_id,
            deliveries=[DeliveryOut.of(d) for d in views],
            limit=limit,
            offset=offset,
        )

    @router.get(
        "/audit",
        summary="Who reset what, when and why (admin)",
        response_model=AuditPage,
    )
    async def audit(
        request: Request,
        address: Annotated[str | None, Query(max_length=320)] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> AuditPage:
        container, _ = await _caller(request, ADMIN)
        entries = await container.store.audit.audit_entries(limit, offset, address=address)
        return AuditPage(
            entries=[
                AuditOut(
                    occurred_at=e.occurred_at,
                    actor=e.actor,
                    scope=e.scope,
                    action=e.action,
                    channel=e.channel.value if e.channel else None,
                    address=e.address,
                    note=e.note,
                    request_id=e.request_id,
                    outcome=e.outcome,
                )
                for e in entries
            ],
            limit=limit,
            offset=offset,
        )

    return router


async def _caller(request: Request, allowed: tuple[Scope, ...]) -> tuple[Container, Principal]:
    """The container and the admitted caller; a refusal is answered by the app's map of
    refusals (http.py)."""
    container: Container = request.app.state.container
    caller = await admit(
        bearer_token(request), container.bearer_verifiers, container.rate_limiter, allowed
    )
    return container, caller


def valid_address(channel: Channel, address: str) -> str:
    address = address.strip()
    if channel is Channel.SMS and not E164.match(address):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="a phone number must be in E.164 format, e.g. +15555550123",
        )
    if channel is Channel.EMAIL:
        if not EMAIL.match(address):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail="an email address looks like name@example.org",
            )
        return address.lower()
    return address


async def _check_own_address(
    caller: Principal, channel: Channel, address: str, container: Container
) -> None:
    recipient = (
        (await container.store.directory.recipients([caller.recipient_id])).get(caller.recipient_id)
        if caller.recipient_id
        else None
    )
    if recipient is None or recipient.address_for(channel) != address:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="a self-service token may reset only its own recipient's addresses",
        )
