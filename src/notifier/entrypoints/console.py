"""The support console (``/console``): server-rendered pages where support staff sign in with
their token, find a person, see their addresses and recent deliveries with the reason for each
channel, reset an address with a note and a confirmation, and read the audit log. It renders
the same views as the API (``handlers.support``) and needs no JavaScript.

Sessions: the cookie holds the bearer token itself (HttpOnly, SameSite=Strict, Secure over
HTTPS, for a working day). Every request verifies it again and takes from the caller's rate
limit, as the API does, so a revoked token stops working at once and no session is kept on
the server.

CSRF: every form carries an HMAC of the session's token keyed by a random nonce kept in a
second cookie (a signed double-submit cookie). A cross-site page can neither read the nonce
nor compute the value without the token; as nothing is kept on the server, any replica can
check it, across restarts. The sign-in form is checked the same way with an empty token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import (
    APIRouter,
    Depends,
    Form,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifier.bootstrap import Container
from notifier.domain.explanations import channel_word, local_time, reason_words
from notifier.domain.model import Channel, ContactStatus, Recipient
from notifier.domain.records import AuditEntry, DeliveryRecord
from notifier.entrypoints.api import Offset, ResettableChannel, valid_address
from notifier.entrypoints.auth import SUPPORT, ScopeRefused, UnknownToken, admit, principal_for
from notifier.handlers.contact_points import (
    Actor,
    ResetRefused,
    SuppressionOutcome,
    reset_contact_point,
)
from notifier.handlers.support import (
    DEFAULT_TIMEZONE,
    ContactPointView,
    address_view,
    recipient_view,
)
from notifier.ports import Principal
from notifier.rate_limit import RateLimited

PREFIX = "/console"
SIGN_IN_URL = PREFIX
HOME_URL = f"{PREFIX}/search"
STATIC_URL = f"{PREFIX}/static/console.css"
SESSION_COOKIE = "notifier_console"
NONCE_COOKIE = "notifier_console_nonce"
NOTICE_COOKIE = "notifier_console_notice"
SESSION_SECONDS = 8 * 3600
NOTICE_SECONDS = 60
TIMELINE_PAGE = 50
AUDIT_PAGE = 50
SEARCH_LIMIT = 25
NOTE_MAX = 2000
TOKEN_MAX = 4096
QUERY_MAX = 320

# Pages show personal data: never cached, framed, or leaked through a Referer; no scripts.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

CHANNEL_LABELS = {Channel.SMS: "Text (SMS)", Channel.EMAIL: "Email", Channel.APP: "App inbox"}


class Refusal(Exception):
    """Ends a console request with an error page (403, 404, 429, ...)."""

    def __init__(
        self,
        status_code: int,
        title: str,
        text: str,
        *,
        session: Session | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status_code} {title}")
        self.status_code = status_code
        self.title = title
        self.text = text
        self.session = session
        self.headers = headers


class SignInFirst(Exception):
    """No session, or one whose token is no longer accepted: back to the sign-in form."""

    def __init__(self, *, forget: bool) -> None:
        super().__init__("not signed in")
        self.forget = forget


@dataclass(frozen=True, slots=True)
class Session:
    container: Container
    principal: Principal
    token: str
    nonce: str

    @property
    def csrf(self) -> str:
        return csrf_value(self.nonce, self.token)


@dataclass(frozen=True, slots=True)
class Notice:
    kind: str
    """success, warning or error: the alert's style and role."""
    text: str


def csrf_value(nonce: str, token: str) -> str:
    return hmac.new(nonce.encode(), b"console-csrf\0" + token.encode(), hashlib.sha256).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def person_url(recipient_id: str, **query: int | str) -> str:
    url = f"{PREFIX}/recipients/{quote(recipient_id, safe='')}"
    return f"{url}?{urlencode(query)}" if query else url


def reset_url(channel: Channel, address: str, *, confirm: bool = False) -> str:
    url = f"{PREFIX}/contact-points/{channel.value}/{quote(address, safe='@+')}/reset"
    return f"{url}/confirm" if confirm else url


def audit_url(**query: int | str) -> str:
    kept = {key: value for key, value in query.items() if value}
    return f"{PREFIX}/audit?{urlencode(kept)}" if kept else f"{PREFIX}/audit"


async def signed_in(request: Request) -> Session:
    """The caller, verified again from the session cookie, within their rate limit."""
    container: Container = request.app.state.container
    token = request.cookies.get(SESSION_COOKIE)
    nonce = request.cookies.get(NONCE_COOKIE)
    if not token or not nonce:
        raise SignInFirst(forget=False)
    try:
        principal = await admit(token, container.bearer_verifiers, container.rate_limiter, SUPPORT)
    except UnknownToken:
        # Revoked or expired: forget it, so the browser stops sending it.
        raise SignInFirst(forget=True) from None
    except ScopeRefused as refused:
        raise Refusal(
            status.HTTP_403_FORBIDDEN,
            "Not for this token",
            "The console needs a support or admin token; this one's scope is "
            f"{refused.principal.scope or 'none'}.",
        ) from None
    except RateLimited as limited:
        raise Refusal(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "Too many requests",
            f"Please wait {limited.retry_after} seconds, then try again.",
            headers={"Retry-After": str(limited.retry_after)},
        ) from None
    return Session(container, principal, token, nonce)


SignedIn = Annotated[Session, Depends(signed_in)]


async def signed_in_form(
    session: SignedIn, csrf: Annotated[str, Form(max_length=128)] = ""
) -> Session:
    """The caller of a form that this session rendered (the CSRF check)."""
    if not same_secret(csrf, session.csrf):
        raise stale_form(session)
    return session


SignedInForm = Annotated[Session, Depends(signed_in_form)]


def stale_form(session: Session | None) -> Refusal:
    return Refusal(
        status.HTTP_403_FORBIDDEN,
        "This form has expired",
        "The form could not be checked (it may be from an earlier sign-in). Nothing was "
        "changed. Go back, reload the page and try again.",
        session=session,
    )


def console_router() -> APIRouter:
    templates = Environment(
        loader=PackageLoader("notifier", "templates"),
        autoescape=select_autoescape(["html"], default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.globals.update(
        person_url=person_url,
        reset_url=reset_url,
        audit_url=audit_url,
        static_url=STATIC_URL,
        channel_label=lambda channel: CHANNEL_LABELS[channel],
        channel_word=channel_word,
    )
    stylesheet = (files("notifier") / "templates" / "console.css").read_bytes()

    def render(
        request: Request,
        template: str,
        *,
        session: Session | None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        html = templates.get_template(template).render(
            session=session,
            request_id=getattr(request.state, "request_id", ""),
            **({"section": ""} | context),
        )
        return HTMLResponse(
            html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
        )

    def error_page(
        request: Request,
        status_code: int,
        title: str,
        text: str,
        *,
        session: Session | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        return render(
            request,
            "error.html",
            session=session,
            status_code=status_code,
            headers=headers,
            title=title,
            text=text,
        )

    class ConsoleRoute(APIRoute):
        """Maps every refusal on a console page to an HTML page (the app's own handler
        answers the API's JSON)."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except SignInFirst as first:
                    return _to_sign_in(forget=first.forget)
                except Refusal as refusal:
                    return error_page(
                        request,
                        refusal.status_code,
                        refusal.title,
                        refusal.text,
                        session=refusal.session,
                        headers=refusal.headers,
                    )
                except HTTPException as error:
                    return error_page(
                        request,
                        error.status_code,
                        "That didn't work",
                        str(error.detail),
                        headers=error.headers,
                    )
                except RequestValidationError:
                    return error_page(
                        request,
                        status.HTTP_422_UNPROCESSABLE_CONTENT,
                        "That didn't work",
                        "Some of what was sent is not valid; go back and check the form.",
                    )
                except Exception as error:
                    if not request.app.state.container.store.database.refuses_data(error):
                        raise
                    return error_page(
                        request,
                        status.HTTP_400_BAD_REQUEST,
                        "That didn't work",
                        "Some of what was sent can't be stored; go back and check the form.",
                    )

            return handle

    router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=ConsoleRoute)

    @router.get("/static/console.css")
    async def console_css() -> Response:
        return Response(
            stylesheet,
            media_type="text/css",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("")
    async def sign_in_page(request: Request) -> Response:
        container: Container = request.app.state.container
        token = request.cookies.get(SESSION_COOKIE)
        if token and request.cookies.get(NONCE_COOKIE):
            principal = await principal_for(token, container.bearer_verifiers)
            if principal is not None and principal.scope in SUPPORT:
                return RedirectResponse(HOME_URL, status.HTTP_303_SEE_OTHER)
        return sign_in_form(request)

    def sign_in_form(
        request: Request, *, error: str | None = None, status_code: int = 200
    ) -> HTMLResponse:
        nonce = request.cookies.get(NONCE_COOKIE) or secrets.token_urlsafe(32)
        response = render(
            request,
            "sign_in.html",
            session=None,
            status_code=status_code,
            csrf=csrf_value(nonce, ""),
            error=error,
        )
        _set_cookie(response, request, NONCE_COOKIE, nonce, max_age=SESSION_SECONDS)
        if error is not None:
            response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @router.post("/sign-in")
    async def sign_in(
        request: Request,
        token: Annotated[str, Form(max_length=TOKEN_MAX)] = "",
        csrf: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        container: Container = request.app.state.container
        nonce = request.cookies.get(NONCE_COOKIE)
        if not nonce or not same_secret(csrf, csrf_value(nonce, "")):
            raise stale_form(None)
        token = token.strip()
        principal = await principal_for(token, container.bearer_verifiers) if token else None
        if principal is None:
            return sign_in_form(
                request,
                error="That token was not recognised. Check that it was copied whole.",
                status_code=status.HTTP_401_UNAUTHORIZED,
            )
        if principal.scope not in SUPPORT:
            return sign_in_form(
                request,
                error=f"This token's scope is {principal.scope or 'none'}; the console needs "
                "a support or admin token.",
                status_code=status.HTTP_403_FORBIDDEN,
            )
        response = RedirectResponse(HOME_URL, status.HTTP_303_SEE_OTHER)
        # A new nonce per sign-in: forms from before it stop working.
        _set_cookie(response, request, NONCE_COOKIE, secrets.token_urlsafe(32), SESSION_SECONDS)
        _set_cookie(response, request, SESSION_COOKIE, token, SESSION_SECONDS)
        return response

    @router.post("/sign-out")
    async def sign_out(
        request: Request, csrf: Annotated[str, Form(max_length=128)] = ""
    ) -> Response:
        # Works with a token that is no longer valid: signing out must always be possible.
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return _to_sign_in()
        nonce = request.cookies.get(NONCE_COOKIE) or ""
        if not nonce or not same_secret(csrf, csrf_value(nonce, token)):
            raise stale_form(None)
        response = _to_sign_in(forget=True)
        response.delete_cookie(NONCE_COOKIE, path=PREFIX)
        return response

    @router.get("/search")
    async def search(
        request: Request,
        session: SignedIn,
        q: Annotated[str, Query(max_length=QUERY_MAX)] = "",
    ) -> Response:
        query = q.strip()
        results = (
            await session.container.store.directory.search_recipients(query, limit=SEARCH_LIMIT)
            if query
            else []
        )
        return render(
            request,
            "search.html",
            session=session,
            section="search",
            q=query,
            results=results,
            limit=SEARCH_LIMIT,
        )

    async def person_page(
        request: Request,
        session: Session,
        recipient_id: str,
        *,
        offset: int = 0,
        notice: Notice | None = None,
        note_errors: Mapping[Channel, str] | None = None,
        notes: Mapping[Channel, str] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        directory = session.container.store.directory
        view = await recipient_view(
            session.container.support, recipient_id, limit=TIMELINE_PAGE, offset=offset
        )
        if view is None:
            return error_page(
                request,
                status.HTTP_404_NOT_FOUND,
                "No such person",
                "Nobody in the directory has this id.",
                session=session,
            )
        district = await directory.district(view.recipient.district_id)
        timezone = district.timezone if district else DEFAULT_TIMEZONE
        points = [
            PointRow(
                view=point,
                also_used_by=[
                    other
                    for other in await directory.recipients_using(
                        point.point.channel, point.point.address
                    )
                    if other.id != recipient_id
                ],
            )
            for point in view.contact_points
        ]
        return render(
            request,
            "person.html",
            session=session,
            status_code=status_code,
            section="search",
            person=view.recipient,
            points=points,
            deliveries=[
                TimelineRow.of(delivery.record, delivery.why, timezone)
                for delivery in view.deliveries
            ],
            timezone=timezone,
            offset=offset,
            page_size=TIMELINE_PAGE,
            notice=notice,
            note_errors=note_errors or {},
            notes=notes or {},
        )

    @router.get("/recipients/{recipient_id}")
    async def person(
        request: Request,
        session: SignedIn,
        recipient_id: Annotated[str, Path(max_length=128)],
        offset: Offset = 0,
    ) -> Response:
        notice = _read_notice(request.cookies.get(NOTICE_COOKIE), session.token)
        response = await person_page(request, session, recipient_id, offset=offset, notice=notice)
        if request.cookies.get(NOTICE_COOKIE) is not None:
            response.delete_cookie(NOTICE_COOKIE, path=PREFIX)
        return response

    async def reset_request(
        request: Request,
        session: Session,
        channel: ResettableChannel,
        address: str,
        note: str,
        recipient_id: str,
    ) -> tuple[Channel, str, str] | HTMLResponse:
        """The checked target and note, or the page saying what is wrong with them."""
        target = Channel(channel.value)
        address = valid_address(target, address)
        # Browsers send a textarea's line breaks as CRLF.
        note = note.replace("\r\n", "\n").strip()
        if not note:
            if not recipient_id:
                return error_page(
                    request,
                    status.HTTP_422_UNPROCESSABLE_CONTENT,
                    "A note is required",
                    "Say why the address can be used again; the note goes in the audit log.",
                    session=session,
                )
            return await person_page(
                request,
                session,
                recipient_id,
                note_errors={target: "Write a note: why can this address be used again?"},
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            )
        known = await session.container.store.contact_points.contact_points([(target, address)])
        if (target, address) not in known:
            return error_page(
                request,
                status.HTTP_404_NOT_FOUND,
                "No such contact point",
                f"Nothing is recorded for the {channel_word(target)} address {address}.",
                session=session,
            )
        return target, address, note

    @router.post("/contact-points/{channel}/{address}/reset")
    async def confirm_reset(
        request: Request,
        session: SignedInForm,
        channel: ResettableChannel,
        address: str,
        note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
        recipient_id: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        checked = await reset_request(request, session, channel, address, note, recipient_id)
        if isinstance(checked, HTMLResponse):
            return checked
        target, address, note = checked
        view = await address_view(session.container.support, target, address, limit=1)
        assert view is not None, "reset_request found the contact point"
        return render(
            request,
            "confirm_reset.html",
            session=session,
            section="search",
            channel=target,
            address=address,
            point=view.contact_point,
            person=next((user for user in view.used_by if user.id == recipient_id), None),
            others=[user for user in view.used_by if user.id != recipient_id],
            note=note,
            recipient_id=recipient_id,
        )

    @router.post("/contact-points/{channel}/{address}/reset/confirm")
    async def reset(
        request: Request,
        session: SignedInForm,
        channel: ResettableChannel,
        address: str,
        note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
        recipient_id: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        checked = await reset_request(request, session, channel, address, note, recipient_id)
        if isinstance(checked, HTMLResponse):
            return checked
        target, address, note = checked
        container, principal = session.container, session.principal
        try:
            result = await reset_contact_point(
                target,
                address,
                Actor(principal.name, principal.scope),
                note,
                request.state.request_id,
                container.follow_up.contact_points,
            )
        except ResetRefused as refused:
            text = f"Not reset: {refused}."
            if recipient_id:
                return await person_page(
                    request,
                    session,
                    recipient_id,
                    notice=Notice("error", text),
                    status_code=status.HTTP_409_CONFLICT,
                )
            return error_page(request, status.HTTP_409_CONFLICT, "Not reset", text, session=session)
        container.metrics.status_reset(target, principal.scope)
        notice = Notice(
            "success",
            f"{CHANNEL_LABELS[target]} {address} is active again "
            f"(it was {result.previous.status.value.replace('_', ' ')}). "
            "Your note is in the audit log.",
        )
        if result.suppression is SuppressionOutcome.FAILED:
            notice = Notice(
                "warning",
                f"{CHANNEL_LABELS[target]} {address} is active again, but the provider's "
                f"block list could not be cleared ({result.suppression_detail}), so the "
                "provider may still drop messages to it. Reset it again later, or remove the "
                "address from the provider's suppression list by hand.",
            )
        response = RedirectResponse(
            person_url(recipient_id) if recipient_id else HOME_URL, status.HTTP_303_SEE_OTHER
        )
        _set_cookie(
            response, request, NOTICE_COOKIE, _write_notice(notice, session.token), NOTICE_SECONDS
        )
        return response

    @router.get("/audit")
    async def audit(
        request: Request,
        session: SignedIn,
        offset: Offset = 0,
        address: Annotated[str, Query(max_length=QUERY_MAX)] = "",
    ) -> Response:
        address = address.strip()
        lookup = address.lower() if "@" in address else address
        # One more than a page tells whether there is an older page.
        entries = await session.container.store.audit.audit_entries(
            AUDIT_PAGE + 1, offset, address=lookup or None
        )
        return render(
            request,
            "audit.html",
            session=session,
            section="audit",
            entries=[AuditRow.of(entry) for entry in entries[:AUDIT_PAGE]],
            more=len(entries) > AUDIT_PAGE,
            offset=offset,
            page_size=AUDIT_PAGE,
            address=address,
        )

    return router


@dataclass(frozen=True, slots=True)
class PointRow:
    view: ContactPointView
    also_used_by: list[Recipient]

    @property
    def resettable(self) -> bool:
        point = self.view.point
        # Only the person lifts an SMS STOP (by texting START): no form that would be refused.
        return point.status is not ContactStatus.ACTIVE and not (
            point.channel is Channel.SMS and point.status is ContactStatus.OPTED_OUT
        )


@dataclass(frozen=True, slots=True)
class TimelineRow:
    when: str
    when_iso: str
    message_id: str
    channel: Channel
    language: str
    status: str
    fallback_from: Channel | None
    why: str

    @classmethod
    def of(cls, record: DeliveryRecord, why: str, timezone: str) -> TimelineRow:
        status_text = record.status.value
        if record.reason is not None:
            status_text += f" ({reason_words(record.reason)})"
        return cls(
            when=local_time(record.created_at, timezone) if record.created_at else "—",
            when_iso=record.created_at.isoformat() if record.created_at else "",
            message_id=record.message_id,
            channel=record.channel,
            language=record.language or "—",
            status=status_text,
            fallback_from=record.fallback_from,
            why=why,
        )


@dataclass(frozen=True, slots=True)
class AuditRow:
    when: str
    when_iso: str
    entry: AuditEntry

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditRow:
        moment = entry.occurred_at
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        utc = moment.astimezone(UTC)
        return cls(f"{utc:%Y-%m-%d %H:%M} UTC", utc.isoformat(), entry)


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _to_sign_in(*, forget: bool = False) -> RedirectResponse:
    response = RedirectResponse(SIGN_IN_URL, status.HTTP_303_SEE_OTHER)
    if forget:
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


def _write_notice(notice: Notice, token: str) -> str:
    """A one-time message for the page after a redirect, signed with the session's token."""
    payload = base64.urlsafe_b64encode(orjson.dumps([notice.kind, notice.text])).decode()
    return f"{payload}.{_notice_signature(payload, token)}"


def _read_notice(cookie: str | None, token: str) -> Notice | None:
    if not cookie:
        return None
    payload, _, signature = cookie.partition(".")
    if not same_secret(signature, _notice_signature(payload, token)):
        return None
    try:
        kind, text = orjson.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        return None
    if kind not in ("success", "warning", "error") or not isinstance(text, str):
        return None
    return Notice(kind, text)


def _notice_signature(payload: str, token: str) -> str:
    return hmac.new(
        token.encode(), b"console-notice\0" + payload.encode(), hashlib.sha256
    ).hexdigest()
