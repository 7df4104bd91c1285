"""``python -m bench``: notifier's throughput, latency, CPU and memory on the real local
broker, with the real ``notifier run --only consumer`` process(es) and fake providers, and
the peer (a Celery worker, bench/peer.py) on the same fakes beside it.

    .venv/bin/python -m bench                       # full run on SQLite (~8 min)
    .venv/bin/python -m bench --db both --replicas 2 --profile
    .venv/bin/python -m bench --smoke               # seconds-long phases, for CI

Exits 1 when a delivery was lost (or a process died): speed is reported, never judged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import traceback
import uuid
from dataclasses import replace
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from bench.databases import drop_database, fresh_database
from bench.load import Load, Topics, delete_topics
from bench.measure import Ceiling, Providers, hammer
from bench.peer_flood import CONFIGURATIONS, PeerRun, run_peer
from bench.population import RequestFactory, build_directory
from bench.processes import REPO, Children, start_fake
from bench.report import RunResult, machine, markdown, versions, write
from bench.scenario import Context, Params, run_scenario

FULL = Params(
    recipients=10_000,
    districts=20,
    flood_seconds=40.0,
    warmup_seconds=8.0,
    level_seconds=25.0,
    levels=(0.25, 0.5, 0.75),
    ceiling_seconds=4.0,
    profile_seconds=20.0,
    drain_seconds=120.0,
    partitions=6,
    backlog_seconds=2.0,
    # About two of notifier's batches (100 requests of ~6 sends): one being worked on,
    # one waiting, so it never waits for the load generator.
    minimum_backlog=1_200,
    limit_records=50_000,
    seed=7,
    extra_env={},
    latency_flood_seconds=30.0,
    peer_flood_seconds=30.0,
)
SMOKE = replace(
    FULL,
    recipients=500,
    flood_seconds=5.0,
    warmup_seconds=1.5,
    level_seconds=2.0,
    ceiling_seconds=0.5,
    profile_seconds=4.0,
    drain_seconds=30.0,
    minimum_backlog=250,
    limit_records=10_000,
    latency_flood_seconds=5.0,
    peer_flood_seconds=6.0,
)
TWILIO = {"account_sid": "AC" + "b" * 32, "auth_token": "bench-twilio-token"}
SENDGRID = {"api_key": "SG.bench-key.bench-secret"}


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--smoke", action="store_true", help="small and short, one peer configuration (CI)"
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="also flood N notifier processes in one consumer group (N > 1)",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy during a second flood")
    parser.add_argument(
        "--provider-latency-ms",
        type=float,
        nargs="+",
        default=[0.0],
        metavar="MS",
        help="how long the fake providers take to answer: every phase at the first, then a"
        " flood of notifier and of the peer at each other (make bench: 0 150)",
    )
    parser.add_argument("--no-peer", action="store_true", help="notifier alone, no Celery peer")
    parser.add_argument(
        "--postgres-url",
        help="a SQLAlchemy URL of the PostgreSQL server (default: NOTIFIER_BENCH_POSTGRES_URL,"
        " else `scripts/postgres-local url`); the benchmark uses its own database there",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NOTIFIER_NAME=VALUE",
        help="a setting for notifier beyond the benchmark's (repeatable), e.g."
        " NOTIFIER_DELIVERY_MAX_IN_FLIGHT=128",
    )
    parser.add_argument("--flood-seconds", type=float, help="override the saturation phase")
    parser.add_argument("--level-seconds", type=float, help="override each open-loop phase")
    parser.add_argument("--keep", action="store_true", help="keep .local/bench/<run> (logs)")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if min(args.provider_latency_ms) < 0 or len(set(args.provider_latency_ms)) != len(
        args.provider_latency_ms
    ):
        parser.error("--provider-latency-ms: distinct latencies of 0 ms or more")
    for setting in args.env:
        if not setting.startswith("NOTIFIER_") or "=" not in setting:
            parser.error(f"--env {setting}: expected NOTIFIER_NAME=VALUE")
    return args


def _postgres_url(given: str | None) -> str:
    if given or os.environ.get("NOTIFIER_BENCH_POSTGRES_URL"):
        return given or os.environ["NOTIFIER_BENCH_POSTGRES_URL"]
    # The project's own script, not input.
    answer = subprocess.run(  # noqa: S603
        [str(REPO / "scripts" / "postgres-local"), "url"],
        capture_output=True,
        text=True,
        check=True,
    )
    return answer.stdout.strip()


async def run(args: argparse.Namespace, signalled: asyncio.Event) -> int:
    params = SMOKE if args.smoke else FULL
    params = replace(
        params,
        flood_seconds=args.flood_seconds or params.flood_seconds,
        level_seconds=args.level_seconds or params.level_seconds,
        extra_env=dict(setting.split("=", 1) for setting in args.env),
    )
    databases = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    postgres_url = _postgres_url(args.postgres_url) if "postgresql" in databases else ""
    bootstrap = os.environ.get("NOTIFIER_KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"
    run_id = uuid.uuid4().hex[:8]
    run_dir = REPO / ".local" / "bench" / run_id
    run_dir.mkdir(parents=True)
    children = Children(run_dir)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    providers: Providers | None = None
    results: list[RunResult] = []
    """Each database's, once its scenarios are done: written even if a later one fails."""
    failed = True
    print(f"bench: run {run_id}, logs in {run_dir}", flush=True)
    try:
        twilio_url = await start_fake(
            children,
            "twilio",
            ["--account-sid", TWILIO["account_sid"], "--auth-token", TWILIO["auth_token"]],
        )
        sendgrid_url = await start_fake(children, "sendgrid", ["--api-key", SENDGRID["api_key"]])
        providers = Providers(twilio_url, sendgrid_url)
        ceilings = await _ceilings(children, providers, params.ceiling_seconds)
        await producer.start()
        directory = build_directory(params.recipients, params.districts, params.seed)
        load = Load(producer, Topics(""), RequestFactory(directory, run_id, params.seed))
        ctx = Context(
            params=params,
            bootstrap=bootstrap,
            run_id=run_id,
            run_dir=run_dir,
            children=children,
            providers=providers,
            load=load,
            directory=directory,
            provider_env={
                "NOTIFIER_TWILIO_API_BASE_URL": twilio_url,
                "NOTIFIER_TWILIO_ACCOUNT_SID": TWILIO["account_sid"],
                "NOTIFIER_TWILIO_AUTH_TOKEN": TWILIO["auth_token"],
                "NOTIFIER_SENDGRID_API_BASE_URL": sendgrid_url,
                "NOTIFIER_SENDGRID_API_KEY": SENDGRID["api_key"],
            },
            profile=args.profile,
            latencies=tuple(args.provider_latency_ms),
        )
        await ctx.set_latency(ctx.latencies[0])
        for kind in databases:
            results.append(await _run_database(ctx, kind, args, postgres_url, ceilings))
            if results[-1].problems:
                break
        problems = [problem for result in results for problem in result.problems]
        if not problems and not args.no_peer:
            peer = await _run_peer(ctx, args.smoke)
            problems += peer.problems
            for result in results:
                result.peer = peer
        _report(results)
        results = []
        for problem in problems:
            print(f"bench: FAILED: {problem}", file=sys.stderr, flush=True)
        failed = bool(problems)
        return 1 if failed else 0
    except (Exception, asyncio.CancelledError):
        if signalled.is_set():
            raise
        # A library's stray cancellation is a failure like any other, not an interrupt.
        traceback.print_exc()
        for child in children.started:
            if child.name.startswith("notifier"):
                print(child.tail(), file=sys.stderr)
        _report(results)
        return 1
    finally:
        await children.close()
        if providers is not None:
            await providers.close()
        await producer.stop()
        try:
            deleted = await delete_topics(bootstrap, f"bench-{run_id}-")
            print(f"bench: deleted {len(deleted)} topics", flush=True)
        except Exception as error:  # the broker may be what failed
            print(f"bench: could not delete topics bench-{run_id}-*: {error!r}", file=sys.stderr)
        if failed or args.keep:
            print(f"bench: logs kept in {run_dir}", flush=True)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def _report(results: list[RunResult]) -> None:
    for result in results:
        text = markdown(result)
        print(text, flush=True)
        for path in write(result, text):
            print(f"bench: wrote {path.relative_to(REPO)}", flush=True)


async def _run_database(
    ctx: Context,
    kind: str,
    args: argparse.Namespace,
    postgres_url: str,
    ceilings: list[Ceiling],
) -> RunResult:
    """notifier's scenarios on one database."""
    result = RunResult(
        started_at=datetime.now(UTC),
        database=kind,
        smoke=args.smoke,
        machine=machine(),
        versions=versions(),
        params=ctx.params,
        provider_latencies_ms=ctx.latencies,
        ceilings=ceilings,
    )
    started = time.monotonic()
    layouts = [("single", 1)] + ([("replicas", args.replicas)] if args.replicas > 1 else [])
    for name, processes in layouts:
        print(f"bench: {kind}: {name} ({processes} process(es))", flush=True)
        database = await fresh_database(kind, ctx.run_dir, name, postgres_url)
        result.versions["database"] = database.version
        try:
            result.scenarios.append(await run_scenario(ctx, name, processes, database))
        finally:
            await drop_database(database, postgres_url)
        if result.problems:
            break
    result.wall_seconds = time.monotonic() - started
    return result


async def _run_peer(ctx: Context, smoke: bool) -> PeerRun:
    """The peer at every latency: every configuration, or (smoke) the first only."""
    configurations = CONFIGURATIONS[:1] if smoke else CONFIGURATIONS
    print(
        f"bench: peer: Celery {', '.join(c.name for c in configurations)} at "
        + ", ".join(f"{latency:g} ms" for latency in ctx.latencies),
        flush=True,
    )
    started = time.monotonic()
    try:
        peer = await run_peer(ctx, TWILIO, SENDGRID, configurations)
    except Exception as error:
        # notifier's results are still written, with the peer's failure among the problems.
        traceback.print_exc()
        for child in ctx.children.started:
            if child.name.startswith(("peer", "redis")):
                print(child.tail(), file=sys.stderr)
        peer = PeerRun(problems=[f"the peer failed: {error!r}"])
    peer.wall_seconds = time.monotonic() - started
    return peer


async def _ceilings(children: Children, providers: Providers, seconds: float) -> list[Ceiling]:
    """The fakes' own ceiling, measured before any notifier runs beside them."""
    pids = {child.name: child.pid for child in children.started}
    return [
        await hammer("twilio", providers.urls["twilio"], pids["fake-twilio"], TWILIO, seconds),
        await hammer(
            "sendgrid", providers.urls["sendgrid"], pids["fake-sendgrid"], SENDGRID, seconds
        ),
    ]


async def _main(args: argparse.Namespace) -> int:
    # SIGTERM (CI, make) ends the run the way Ctrl-C does: through every finally above.
    task = asyncio.current_task()
    assert task is not None
    signalled = asyncio.Event()

    def stop(signum: int) -> None:
        signalled.set()
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)
    return await run(args, signalled)


class _OncePerMinute(logging.Filter):
    """aiokafka logs every reconnection attempt while the broker is away (several a
    second): show each kind of message once a minute."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self._last.get(key, -60.0) < 60.0:
            return False
        self._last[key] = now
        return True


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("bench: %(name)s: %(message)s"))
    handler.addFilter(_OncePerMinute())
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # "NotLeaderForPartition, retrying" right after notifier creates the topics: the broker
    # is still electing leaders, and the producer retries. A real failure still shows.
    logging.getLogger("aiokafka.producer.sender").setLevel(logging.ERROR)
    started = time.monotonic()
    try:
        code = asyncio.run(_main(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; processes stopped, topics deleted", file=sys.stderr)
        return 130
    print(f"bench: wall time {time.monotonic() - started:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
