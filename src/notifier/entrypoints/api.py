"""The support API (``/api/v1``): bearer tokens with scopes; input validated with clear 4xx."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from notifier.bootstrap import Container
from notifier.domain.model import Channel
from notifier.entrypoints.auth import Caller, authenticate
from notifier.handlers.contact_points import Actor, ResetRefused, reset_contact_point

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ResettableChannel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class ResetBody(BaseModel):
    note: str = Field(
        min_length=1, max_length=2000, description="Why: kept in the audit log with who and when."
    )


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


def api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["support"])

    @router.post(
        "/contact-points/{channel}/{address}/reset",
        summary="Set a contact point back to active (audited)",
        response_model=ResetResponse,
        responses={
            401: {"description": "No or unknown token"},
            403: {"description": "Wrong scope, or not the caller's own address"},
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
        container: Container = request.app.state.container
        caller = authenticate(
            request, container.settings.api.tokens, ("support", "admin", "self-service")
        )
        target = Channel(channel.value)
        address = _valid_address(target, address)
        if caller.scope == "self-service":
            await _check_own_address(caller, target, address, container)
        known = await container.store.contact_points([(target, address)])
        if (target, address) not in known:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such contact point")
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        try:
            result = await reset_contact_point(
                target,
                address,
                Actor(caller.name, caller.scope),
                body.note,
                request_id,
                container.follow_up.contact_points,
            )
        except ResetRefused as refused:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(refused)) from None
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

    return router


def _valid_address(channel: Channel, address: str) -> str:
    if channel is Channel.SMS and not E164.match(address):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="an SMS address is a phone number in E.164 format, e.g. +15555550123",
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
    caller: Caller, channel: Channel, address: str, container: Container
) -> None:
    recipient = (
        (await container.store.recipients([caller.recipient_id])).get(caller.recipient_id)
        if caller.recipient_id
        else None
    )
    if recipient is None or recipient.address_for(channel) != address:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="a self-service token may reset only its own recipient's addresses",
        )
