"""The ``notifier`` command: run the service, show its configuration, migrate, make topics,
and the demo."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from notifier.config import Settings
from notifier.domain.model import Scope
from notifier.logs import configure_logging


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notifier", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the stream consumer and the HTTP server")
    run.add_argument(
        "--only",
        choices=["consumer", "http"],
        help="run one side only: 'consumer' (with ops endpoints) or 'http' (no subscribers)",
    )
    commands.add_parser("config", help="print the effective configuration, secrets redacted")
    commands.add_parser("migrate", help="apply database migrations")
    commands.add_parser("topics", help="create the contract's Kafka topics if missing")
    docs = commands.add_parser("docs", help="write the AsyncAPI and OpenAPI documents")
    docs.add_argument("--output", default="docs", help="directory to write them to")
    tokens = commands.add_parser("tokens", help="API tokens")
    token_commands = tokens.add_subparsers(dest="tokens_command", required=True)
    create = token_commands.add_parser("create", help="create a token and print it once")
    create.add_argument("--name", required=True, help="who holds it (kept in the audit log)")
    create.add_argument("--scope", required=True, choices=list(Scope))
    create.add_argument("--recipient", help="the recipient a self-service token acts for")
    demo = commands.add_parser("demo", help="load a demo directory, send messages, show results")
    demo.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for results")

    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(settings.log.level, settings.log.format)

    if args.command == "config":
        json.dump(settings.redacted(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if args.command == "run":
        return _run(settings, only=args.only)
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        return 0
    if args.command == "topics":
        asyncio.run(_topics(settings))
        return 0
    if args.command == "tokens":
        return asyncio.run(_create_token(settings, args.name, args.scope, args.recipient))
    if args.command == "docs":
        from pathlib import Path

        from notifier.entrypoints.docs import documented_settings, write_documents

        for path in write_documents(documented_settings(), Path(args.output)):
            print(f"wrote {path}")
        return 0
    if args.command == "demo":
        from notifier.entrypoints.demo import run_demo

        return asyncio.run(run_demo(settings, wait_seconds=args.timeout))
    parser.error(f"unknown command {args.command}")
    return 2


def _run(settings: Settings, *, only: str | None) -> int:
    import uvicorn

    from notifier.entrypoints.http import create_app

    app = create_app(settings, consume=only != "http", serve_api=only != "consumer")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.http.host,
            port=settings.http.port,
            # No handlers of uvicorn's own: its access and error logs go to the root
            # handler (notifier.logs), which formats and masks every line.
            log_config=None,
            lifespan="on",
            # Open HTTP requests get a few seconds; the lifespan shutdown then drains the
            # consumer within kafka.graceful_timeout_seconds.
            timeout_graceful_shutdown=5,
        )
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then raises the signal again for
    # the handler it found. By then the consumer has drained and committed, so that handler
    # is a no-op and a clean shutdown exits 0 (not 143, which Kubernetes reports as failure).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _already_handled)
    server.run()
    return 0


def _already_handled(signum: int, frame: FrameType | None) -> None:
    return None


async def _migrate(settings: Settings) -> None:
    from notifier.bootstrap import migrate_database

    await migrate_database(settings)


async def _create_token(settings: Settings, name: str, scope: str, recipient: str | None) -> int:
    from notifier.bootstrap import create_api_token
    from notifier.handlers.tokens import TokenRequestInvalid

    try:
        token = await create_api_token(
            settings, name, scope, recipient, actor=f"cli:{getpass.getuser()}"
        )
    except TokenRequestInvalid as invalid:
        print(f"notifier tokens create: {invalid}", file=sys.stderr)
        return 2
    print(token)
    print(
        "This is the only time the token is shown; only its hash is kept. "
        "Send it as 'Authorization: Bearer <token>'.",
        file=sys.stderr,
    )
    return 0


async def _topics(settings: Settings) -> None:
    from notifier.bootstrap import create_topics

    created = await create_topics(settings)
    print("created: " + (", ".join(created) if created else "nothing, all topics exist"))


if __name__ == "__main__":
    raise SystemExit(main())
