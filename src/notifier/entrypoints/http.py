"""The HTTP edge: one FastAPI app whose lifespan owns the container (and so the broker).

Ops endpoints (/healthz, /readyz, /metrics) are always served, so a consumer-only pod can
still be probed and scraped. With ``consume=False`` the app runs no subscribers, so
production can scale the stream consumer and the HTTP API apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from notifier.bootstrap import Container, open_container
from notifier.config import Settings
from notifier.entrypoints.api import api_router
from notifier.entrypoints.auth import NoToken, ScopeRefused, UnknownToken
from notifier.entrypoints.body_limit import BodyLimit
from notifier.entrypoints.console import console_router
from notifier.entrypoints.consumer import register_subscribers, run_overdue_timer
from notifier.entrypoints.webhooks import webhook_router
from notifier.handlers.contact_points import ResetRefused
from notifier.rate_limit import RateLimited
from notifier.request_context import REQUEST_ID_HEADER, current_request_id, request_id_from

READINESS_TIMEOUT_SECONDS = 2.0
_ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    422: "invalid",
    429: "too_many_requests",
}


REFUSALS = (NoToken, UnknownToken, ScopeRefused, RateLimited, ResetRefused)
"""The refusals the API's routes let through, each answered by ``refusal_answer``."""


def refusal_answer(error: Exception) -> StarletteHTTPException:
    """The API's answer to a refusal raised below its routes: the one map from these errors
    to HTTP (the console answers them with pages of its own)."""
    match error:
        case NoToken():
            return StarletteHTTPException(
                401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        case UnknownToken():
            return StarletteHTTPException(
                401,
                "unknown or invalid token",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        case ScopeRefused(principal=principal, allowed=allowed):
            held = (
                f"the token's is {principal.scope}"
                if principal.scope
                else "the token grants none of notifier's scopes"
            )
            return StarletteHTTPException(
                403, f"this needs a scope of {', '.join(allowed)}; {held}"
            )
        case RateLimited(retry_after=retry_after):
            return StarletteHTTPException(
                429, str(error), headers={"Retry-After": str(retry_after)}
            )
        case ResetRefused():
            return StarletteHTTPException(409, str(error))
    raise TypeError(f"no answer for {type(error).__name__}") from error


def _settle_garbage_collection() -> None:
    """What is alive once the service has started (modules, catalogs, the schema, pools)
    lives as long as the process: frozen out of the collector's scans. And young objects are
    collected less often: a batch allocates tens of thousands of short-lived ones, and at
    CPython's default (a collection every 700 allocations) the collector took a few percent
    of the CPU. Memory stays bounded by the open batches."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


GC_YOUNG_THRESHOLD = 20_000


def create_app(settings: Settings, *, consume: bool = True, serve_api: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = await open_container(settings)
        if consume:
            register_subscribers(container)
        await container.start()
        app.state.container = container
        _settle_garbage_collection()
        timer = asyncio.create_task(run_overdue_timer(container)) if consume else None
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            await container.close()

    app = FastAPI(
        title="notifier",
        summary="Delivery of school Conversation notifications by SMS, email and app inbox.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
    )

    if serve_api:
        app.include_router(webhook_router())
        app.include_router(api_router())
        app.include_router(console_router())

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.state.request_id = request_id
        token = current_request_id.set(request_id)
        try:
            response = await call_next(request)
        except Exception as error:
            container: Container | None = getattr(request.app.state, "container", None)
            if container is None or not container.store.database.refuses_data(error):
                raise
            # The database refused a value of this request (U+0000 in text on PostgreSQL):
            # the sender's input is at fault, and retrying it would not help.
            response = JSONResponse(
                {"error": "invalid", "detail": "The request holds text that can't be stored."},
                status_code=400,
            )
        finally:
            current_request_id.reset(token)
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    inbound_email_paths = "/webhooks/sendgrid/inbound"
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: (
            settings.http.max_inbound_email_bytes
            if path.startswith(inbound_email_paths)
            else settings.http.max_body_bytes
        ),
    )

    # Starlette's own class, so the framework's refusals (no such path, wrong method) have
    # the same shape as ours.
    @app.exception_handler(StarletteHTTPException)
    async def json_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _json_error(error)

    async def refused(request: Request, error: Exception) -> JSONResponse:
        return _json_error(refusal_answer(error))

    for refusal in REFUSALS:
        app.add_exception_handler(refusal, refused)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # The same shape as every other refusal, with one readable line per problem.
        problems = [
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        ]
        return JSONResponse(
            {"error": "invalid", "detail": "; ".join(problems), "problems": problems},
            status_code=422,
        )

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process serves requests.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: broker and database reachable.")
    async def readyz(request: Request) -> JSONResponse:
        container: Container = request.app.state.container
        checks = {
            "database": await _check_database(container),
            "broker": await _check_broker(container),
        }
        ready = all(value == "ok" for value in checks.values())
        # Shown, not judged: a provider's open circuit is handled by failing over, and
        # restarting this pod would not bring the provider back.
        providers = {
            provider: circuit.state.value
            for provider, circuit in container.deliveries.circuits.items()
        }
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks, "providers": providers},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics (text format).")
    async def metrics(request: Request) -> Response:
        container: Container = request.app.state.container
        return Response(generate_latest(container.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _json_error(error: StarletteHTTPException) -> JSONResponse:
    # One error shape for every 4xx: {"error": ..., "detail": ...}.
    return JSONResponse(
        {"error": _ERROR_NAMES.get(error.status_code, "error"), "detail": error.detail},
        status_code=error.status_code,
        headers=error.headers,
    )


async def _check_database(container: Container) -> str:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            await container.store.database.ping()
    except Exception as error:  # any failure means "not ready"; say which
        return f"failing: {type(error).__name__}"
    return "ok"


async def _check_broker(container: Container) -> str:
    try:
        reachable = await container.broker.ping(timeout=READINESS_TIMEOUT_SECONDS)
    except Exception as error:
        return f"failing: {type(error).__name__}"
    return "ok" if reachable else "failing: unreachable"
