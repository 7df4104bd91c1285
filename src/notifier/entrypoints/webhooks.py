"""Provider webhooks: SendGrid's Event Webhook and Inbound Parse, Twilio's status callbacks
and inbound texts, and the person's resume-email link. Authenticated by the providers'
signatures (Inbound Parse, which signs nothing, by a configured secret); a request that
fails verification gets 403 and changes nothing.

The resume link's token is its only credential, and opening it changes nothing: messaging
apps, carrier URL scanners and mail gateways fetch links for a preview with nobody there.
GET (and HEAD) shows a page in the person's language with a button; the button is a plain
form POST to the same URL, and only that resets (RFC 8058 makes one-click unsubscribe a POST
for the same reason)."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from html import escape
from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from notifier.bootstrap import Container
from notifier.domain.model import Channel, ContactStatus, ReplyAttachment
from notifier.domain.rendering import Wording, text_direction
from notifier.domain.resume_links import InvalidResumeToken, read_token
from notifier.handlers.contact_points import (
    apply_sms_keyword,
    resume_email,
    resume_link_target,
    sms_keyword,
)
from notifier.handlers.follow_up import record_provider_report
from notifier.handlers.replies import receive_email_reply, receive_text_reply
from notifier.ports import WebhookRejected

log = logging.getLogger(__name__)

MAX_ATTACHMENTS = 50
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

SOURCE_LANGUAGE = "en"
"""The catalogs' message ids are English: the page for an address nobody in the directory uses."""

# The resume page's URL holds the token: it is never passed on as a referrer, cached or
# indexed, and its button can't be framed by another site.
RESUME_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}


def webhook_router() -> APIRouter:
    router = APIRouter(tags=["webhooks"])

    @router.post(
        "/webhooks/sendgrid/events",
        summary="SendGrid Event Webhook (signed batch of events)",
        responses={400: {"description": "Not a JSON array"}, 403: {"description": "Bad signature"}},
    )
    async def sendgrid_events(request: Request) -> JSONResponse:
        container: Container = request.app.state.container
        if container.email_events is None:
            return _refused("the Event Webhook verification key is not configured")
        body = await request.body()  # verified exactly as received
        try:
            reports = container.email_events.reports(body, request.headers, _now())
        except WebhookRejected as rejected:
            return _refused(rejected.reason)
        except ValueError as error:
            return JSONResponse({"error": "malformed", "detail": str(error)}, status_code=400)
        outcomes = Counter(
            [
                (await record_provider_report(report, container.follow_up)).value
                for report in reports
            ]
        )
        for outcome, count in outcomes.items():
            container.metrics.webhook_reports("sendgrid", outcome, count)
        return JSONResponse({"received": len(reports), "outcomes": dict(outcomes)})

    @router.post(
        "/webhooks/twilio/status",
        summary="Twilio message status callback",
        status_code=204,
        responses={403: {"description": "Bad signature"}},
    )
    async def twilio_status(request: Request) -> Response:
        container: Container = request.app.state.container
        if container.sms_webhooks is None:
            return _refused("Twilio is not configured")
        form = {key: str(value) for key, value in (await request.form()).items()}
        url = container.settings.twilio.status_callback_url or str(request.url)
        try:
            report = container.sms_webhooks.status_report(url, form, request.headers, _now())
        except WebhookRejected as rejected:
            return _refused(rejected.reason)
        except ValueError as error:
            return JSONResponse({"error": "malformed", "detail": str(error)}, status_code=400)
        outcome = await record_provider_report(report, container.follow_up)
        container.metrics.webhook_reports("twilio", outcome.value, 1)
        return Response(status_code=204)

    @router.post(
        "/webhooks/twilio/inbound",
        summary="Inbound SMS: STOP/START/HELP keywords, or a reply to a conversation",
        response_class=Response,
        responses={200: {"content": {"text/xml": {}}}, 403: {"description": "Bad signature"}},
    )
    async def twilio_inbound(request: Request) -> Response:
        container: Container = request.app.state.container
        if container.sms_webhooks is None:
            return _refused("Twilio is not configured")
        form = {key: str(value) for key, value in (await request.form()).items()}
        url = container.settings.twilio.inbound_url or str(request.url)
        try:
            text = container.sms_webhooks.inbound_text(url, form, request.headers)
        except WebhookRejected as rejected:
            return _refused(rejected.reason)
        except ValueError as error:
            return JSONResponse({"error": "malformed", "detail": str(error)}, status_code=400)
        keyword = sms_keyword(text.body)
        if keyword is not None:
            await apply_sms_keyword(
                text.sender,
                keyword,
                request.state.request_id,
                container.follow_up.contact_points,
            )
        else:
            result = await receive_text_reply(text, _now(), container.replies)
            container.metrics.webhook_reports("twilio-inbound", result.outcome.value, 1)
            if result.answer:
                return Response(_twiml_message(result.answer), media_type="text/xml")
        # Twilio answers the keywords itself (Advanced Opt-Out); an empty TwiML response
        # sends nothing more, and never an error page to a person's phone.
        return Response(EMPTY_TWIML, media_type="text/xml")

    async def sendgrid_inbound(request: Request, path_secret: str | None) -> JSONResponse:
        container: Container = request.app.state.container
        if container.email_inbound is None:
            return _refused("the Inbound Parse secret is not configured")
        try:
            container.email_inbound.authenticate(request.headers, path_secret)
        except WebhookRejected as rejected:
            return _refused(rejected.reason)
        try:
            form = await request.form(max_files=MAX_ATTACHMENTS, max_fields=100)
        except (MultiPartException, ValueError) as error:
            return JSONResponse({"error": "malformed", "detail": str(error)}, status_code=400)
        fields = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        # Only what identifies each file is kept: the content is never read into memory
        # (Starlette spools it to disk) and is gone when the request ends.
        attachments = [
            ReplyAttachment(
                filename=(value.filename or "attachment")[:255],
                content_type=value.content_type or "application/octet-stream",
                size_bytes=value.size or 0,
            )
            for _, value in form.multi_items()
            if isinstance(value, UploadFile)
        ]
        await form.close()
        try:
            email = container.email_inbound.inbound_email(fields, attachments)
        except ValueError as error:
            return JSONResponse({"error": "malformed", "detail": str(error)}, status_code=400)
        result = await receive_email_reply(email, _now(), container.replies)
        container.metrics.webhook_reports("sendgrid-inbound", result.outcome.value, 1)
        # Any 2xx stops SendGrid's retries; the outcome is for the logs and tests.
        return JSONResponse({"outcome": result.outcome.value})

    @router.post(
        "/webhooks/sendgrid/inbound",
        summary="SendGrid Inbound Parse: an email reply (multipart), secret in basic auth",
        responses={400: {"description": "Not an inbound email"}, 403: {"description": "No secret"}},
    )
    async def sendgrid_inbound_basic_auth(request: Request) -> JSONResponse:
        return await sendgrid_inbound(request, None)

    @router.post(
        "/webhooks/sendgrid/inbound/{secret}",
        summary="SendGrid Inbound Parse: an email reply (multipart), secret in the path",
        responses={400: {"description": "Not an inbound email"}, 403: {"description": "No secret"}},
    )
    async def sendgrid_inbound_secret_path(secret: str, request: Request) -> JSONResponse:
        return await sendgrid_inbound(request, secret)

    pages = Environment(
        loader=PackageLoader("notifier", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def resume_page(
        language: str,
        wording: Wording,
        text: str,
        *,
        button: str | None = None,
        status_code: int = status.HTTP_200_OK,
    ) -> HTMLResponse:
        html = pages.get_template("resume_email.html").render(
            language=language,
            direction=text_direction(language),
            title=wording.gettext("Email notifications"),
            text=text,
            button=button,
        )
        return HTMLResponse(html, status_code=status_code, headers=RESUME_PAGE_HEADERS)

    def resume_address(token: str, container: Container) -> str | HTMLResponse:
        """The address the token names, or the page saying why there is none."""
        secret = container.settings.delivery.resume_link_secret
        english = container.deliveries.catalogs.wording(SOURCE_LANGUAGE)
        if secret is None:
            return resume_page(
                SOURCE_LANGUAGE,
                english,
                "This link is not in use.",
                status_code=status.HTTP_404_NOT_FOUND,
            )
        try:
            return read_token(token, secret.get_secret_value().encode(), _now())
        except InvalidResumeToken:
            return resume_page(
                SOURCE_LANGUAGE,
                english,
                "This link has expired or is not valid. Ask your school to turn email back on.",
                status_code=status.HTTP_400_BAD_REQUEST,
            )

    resume_responses: dict[int | str, dict[str, Any]] = {
        400: {"description": "The link has expired or is not valid (a page)"},
        404: {"description": "Resume links are not configured (a page)"},
    }

    @router.head(
        "/r/{token}",
        summary="The resume-email link's page, headers only; changes nothing",
        response_class=HTMLResponse,
        responses=resume_responses,
    )
    @router.get(
        "/r/{token}",
        summary="The person's resume-email link from a fallback text: a page asking, "
        "with a button; changes nothing",
        response_class=HTMLResponse,
        responses=resume_responses,
    )
    async def resume_link(token: str, request: Request) -> HTMLResponse:
        container: Container = request.app.state.container
        address = resume_address(token, container)
        if isinstance(address, HTMLResponse):
            return address
        target = await resume_link_target(address, container.follow_up.contact_points)
        language = target.language or SOURCE_LANGUAGE
        wording = container.deliveries.catalogs.wording(language)
        if target.point.status is ContactStatus.OPTED_OUT:
            return resume_page(language, wording, _unsubscribed(wording, address))
        return resume_page(
            language,
            wording,
            wording.gettext("Get messages by email at {address} again?").format(
                address=_isolated(address)
            ),
            button=wording.gettext("Yes, use email again"),
        )

    @router.post(
        "/r/{token}",
        summary="The button on the resume-email page: a failing address becomes active "
        "again; repeating it changes nothing, and an opt-out stays",
        response_class=HTMLResponse,
        responses=resume_responses
        | {409: {"description": "The address is opted out; the link doesn't lift that"}},
    )
    async def resume_link_pressed(token: str, request: Request) -> HTMLResponse:
        container: Container = request.app.state.container
        address = resume_address(token, container)
        if isinstance(address, HTMLResponse):
            return address
        deps = container.follow_up.contact_points
        target = await resume_link_target(address, deps)
        language = target.language or SOURCE_LANGUAGE
        wording = container.deliveries.catalogs.wording(language)
        result = await resume_email(address, request.state.request_id, deps)
        if result.lifted:
            container.metrics.status_reset(Channel.EMAIL, "person")
        if result.previous.status is ContactStatus.OPTED_OUT:
            return resume_page(
                language,
                wording,
                _unsubscribed(wording, address),
                status_code=status.HTTP_409_CONFLICT,
            )
        return resume_page(
            language,
            wording,
            wording.gettext("Thank you. Messages will go to {address} again.").format(
                address=_isolated(address)
            ),
        )

    return router


def _twiml_message(text: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Message>{escape(text, quote=False)}</Message></Response>"
    )


def _refused(reason: str) -> JSONResponse:
    log.warning("webhook refused: %s", reason)
    return JSONResponse({"error": "forbidden", "detail": reason}, status_code=403)


def _unsubscribed(wording: Wording, address: str) -> str:
    return wording.gettext(
        "{address} is unsubscribed, so this link does not turn email back on. "
        "To get messages by email again, ask your school."
    ).format(address=_isolated(address))


def _isolated(address: str) -> str:
    """The address set apart from the sentence's direction (Unicode first-strong isolate),
    so that in Arabic it still reads left to right and stays whole."""
    return f"\u2068{address}\u2069"


def _now() -> datetime:
    return datetime.now(UTC)
