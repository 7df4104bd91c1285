"""Provider webhooks: SendGrid's Event Webhook and Inbound Parse, Twilio's status callbacks
and inbound texts, and the person's resume-email link. Authenticated by the providers'
signatures (Inbound Parse, which signs nothing, by a configured secret); a request that
fails verification gets 403 and changes nothing."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from notifier.bootstrap import Container
from notifier.domain.model import Channel, ReplyAttachment
from notifier.domain.resume_links import InvalidResumeToken, read_token
from notifier.handlers.contact_points import (
    Actor,
    apply_sms_keyword,
    reset_contact_point,
    sms_keyword,
)
from notifier.handlers.follow_up import record_provider_report
from notifier.handlers.replies import receive_email_reply, receive_text_reply
from notifier.ports import WebhookRejected

log = logging.getLogger(__name__)

MAX_ATTACHMENTS = 50
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


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

    @router.get(
        "/r/{token}",
        summary="The person's resume-email link from a fallback text",
        response_class=HTMLResponse,
    )
    async def resume_email(token: str, request: Request) -> HTMLResponse:
        container: Container = request.app.state.container
        secret = container.settings.delivery.resume_link_secret
        if secret is None:
            return _page("This link is not in use.", status_code=404)
        try:
            address = read_token(token, secret.get_secret_value().encode(), _now())
        except InvalidResumeToken:
            return _page(
                "This link has expired or is not valid. Ask your school to turn email back on.",
                status_code=400,
            )
        await reset_contact_point(
            Channel.EMAIL,
            address,
            Actor.person("resume link"),
            None,
            request.state.request_id,
            container.follow_up.contact_points,
        )
        container.metrics.status_reset(Channel.EMAIL, "person")
        return _page(f"Thank you. Messages will go to {address} again.")

    return router


def _twiml_message(text: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Message>{escape(text, quote=False)}</Message></Response>"
    )


def _refused(reason: str) -> JSONResponse:
    log.warning("webhook refused: %s", reason)
    return JSONResponse({"error": "forbidden", "detail": reason}, status_code=403)


def _page(text: str, *, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Email notifications</title></head><body><main><p>{escape(text)}</p></main>"
        "</body></html>",
        status_code=status_code,
    )


def _now() -> datetime:
    return datetime.now(UTC)
