"""The peer (bench/peer.py, a Celery worker on Redis calling the twilio and sendgrid SDKs)
flooded like notifier, on the same fakes, with the same notifications.

Redis (Debian's redis-server, no persistence) is started once for the run on a free
loopback port. For each provider latency and each configuration (prefork ×2, prefork ×8,
threads ×32): a fresh worker, and an enqueuer (``python -m bench.peer enqueue``) fed by the
same ``RequestFactory`` notifier's load uses, one task per text or email, the bodies with
the request's marker so that the fakes' receipts count them. The closed loop of
bench/load.py keeps about two seconds of work queued; deliveries per second and the
worker's CPU (its pool's processes included) are taken over the steady part, as for
notifier; then the queue drains and every request is checked for lost sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench.load import closed_loop
from bench.measure import (
    Sample,
    completeness,
    steady,
    tree_cpu_seconds,
    tree_peak_rss_bytes,
)
from bench.population import RequestFactory
from bench.processes import REPO, START_SECONDS, STOP_SECONDS, TOOLS, Child, free_port
from bench.scenario import Context, check_alive


@dataclass(frozen=True, slots=True)
class Configuration:
    pool: str
    """Celery's --pool: prefork (processes) or threads."""
    concurrency: int

    @property
    def name(self) -> str:
        return f"{self.pool} ×{self.concurrency}"


CONFIGURATIONS = (
    Configuration("prefork", 2),
    Configuration("prefork", 8),
    Configuration("threads", 32),
)


@dataclass
class PeerResult:
    configuration: str
    pool: str
    concurrency: int
    provider_latency_ms: float
    tasks: int
    """Tasks enqueued, one per text or email."""
    deliveries: int
    """Texts and emails of those tasks received by the fakes."""
    deliveries_per_second: float
    window_seconds: float
    worker_cpu_ms_per_delivery: float
    """The worker's CPU, every process of its pool, over the steady part."""
    worker_peak_rss_bytes: int
    """The worker's processes' peak RSS, added up."""
    lost: int
    duplicated: int


@dataclass
class PeerRun:
    versions: dict[str, str] = field(default_factory=dict)
    results: list[PeerResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0

    def best(self, latency_ms: float) -> PeerResult | None:
        """The configuration that delivered the most at this latency."""
        measured = [r for r in self.results if r.provider_latency_ms == latency_ms]
        return max(measured, key=lambda r: r.deliveries_per_second, default=None)


def _python() -> str:
    python = TOOLS / "python"
    if not python.exists():
        raise RuntimeError(f"the peer needs {python} with Celery and the SDKs: make bench-tools")
    return str(python)


def _redis_server() -> str:
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError(
            "the peer's broker, redis-server, is not installed: make bench-tools"
            " (Debian: apt-get install -y redis-server)"
        )
    return executable


async def run_peer(
    ctx: Context,
    twilio: dict[str, str],
    sendgrid: dict[str, str],
    configurations: tuple[Configuration, ...],
) -> PeerRun:
    """Every configuration at every latency of the run; the fakes' latency is set here and
    left at the run's first latency."""
    python = _python()
    run = PeerRun(versions=await _versions(python))
    broker_url = await _start_redis(ctx)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        # bench/peer.py's PeerSettings.
        "BENCH_PEER_BROKER_URL": broker_url,
        "BENCH_PEER_TWILIO_URL": ctx.providers.urls["twilio"],
        "BENCH_PEER_TWILIO_ACCOUNT_SID": twilio["account_sid"],
        "BENCH_PEER_TWILIO_AUTH_TOKEN": twilio["auth_token"],
        "BENCH_PEER_SENDGRID_URL": ctx.providers.urls["sendgrid"],
        "BENCH_PEER_SENDGRID_API_KEY": sendgrid["api_key"],
    }
    try:
        for latency in ctx.latencies:
            await ctx.set_latency(latency)
            for configuration in configurations:
                result = await _flood(ctx, python, env, configuration)
                run.results.append(result)
                if result.lost:
                    run.problems.append(
                        f"peer {configuration.name} at {latency:g} ms: {result.lost} of"
                        f" {result.tasks} texts and emails lost"
                    )
                    return run
    finally:
        await ctx.set_latency(ctx.latencies[0])
    return run


async def _versions(python: str) -> dict[str, str]:
    answer = await asyncio.create_subprocess_exec(
        python, "-m", "bench.peer", "versions", cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await answer.communicate()
    found: dict[str, str] = json.loads(out)
    server = await asyncio.create_subprocess_exec(
        _redis_server(), "--version", stdout=asyncio.subprocess.PIPE
    )
    line, _ = await server.communicate()
    # "Redis server v=7.0.15 sha=… malloc=… bits=64 build=…"
    found["redis-server"] = next(
        (part[2:] for part in line.decode().split() if part.startswith("v=")), "unknown"
    )
    return found


async def _start_redis(ctx: Context) -> str:
    port = free_port()
    await ctx.children.spawn(
        "redis",
        [
            _redis_server(),
            *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(ctx.run_dir)),
            # A broker for one run: nothing written to disk.
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            *("--loglevel", "warning"),
        ],
        {"PATH": "/usr/bin:/bin"},
        cwd=ctx.run_dir,
        read_url=False,
    )
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PING\r\n")
            answer = await reader.readline()
            writer.close()
            if answer == b"+PONG\r\n":
                return f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        died = ctx.children.died()
        if died or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer on port {port}: {died}")
        await asyncio.sleep(0.1)


@dataclass
class _PeerLoad:
    """Publishes the run's requests to the peer: one task per text or email."""

    factory: RequestFactory
    enqueuer: Child
    senders: dict[str, dict[str, str]]
    expected: dict[int, int] = field(default_factory=dict)
    published_sends: int = 0
    _pending: list[list[Any]] = field(default_factory=list)

    async def publish_request(self) -> None:
        request = self.factory.make()
        self.expected[request.number] = request.sends
        self.published_sends += request.sends
        sender = self.senders[request.payload["district_id"]]
        self._pending += [[n.channel, n.address, n.body, sender] for n in request.notifications]

    async def flush(self) -> None:
        if not self._pending:
            return
        stdin = self.enqueuer.process.stdin
        assert stdin is not None
        stdin.write(orjson.dumps(self._pending) + b"\n")
        self._pending = []
        await stdin.drain()


def _senders(ctx: Context) -> dict[str, dict[str, str]]:
    """What each district sends from, as notifier has it from the directory."""
    senders = {}
    for district in ctx.directory.districts:
        wire = district.wire()
        senders[district.id] = {
            "sms": wire["sms_sender"],
            "email": wire["email_from"]["email"],
            "name": wire["email_from"]["name"],
        }
    return senders


async def _flood(
    ctx: Context, python: str, env: dict[str, str], configuration: Configuration
) -> PeerResult:
    params, providers = ctx.params, ctx.providers
    label = f"peer-{configuration.pool}-{configuration.concurrency}-{ctx.latency_ms:g}ms"
    base = await providers.marked()
    worker, _ = await ctx.children.spawn(
        label,
        [
            *(python, "-m", "bench.peer", "worker", "--loglevel", "WARNING"),
            *("--pool", configuration.pool, "--concurrency", str(configuration.concurrency)),
            # What a deployment that counts its CPU turns off: no worker-to-worker chatter.
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            *("--hostname", f"{label}@bench"),
        ],
        env,
        cwd=ctx.run_dir,
        read_url=False,
    )
    enqueuer, _ = await ctx.children.spawn(
        f"{label}-enqueuer",
        [python, "-m", "bench.peer", "enqueue"],
        env,
        cwd=ctx.run_dir,
        read_url=False,
        piped=True,
    )
    load = _PeerLoad(ctx.load.factory, enqueuer, _senders(ctx))
    samples: list[Sample] = []

    async def delivered() -> int:
        return await providers.marked() - base

    async def tick() -> None:
        check_alive(ctx)
        samples.append(Sample(time.monotonic(), await delivered(), tree_cpu_seconds(worker.pid)))

    try:
        await tick()
        await closed_loop(
            load,
            delivered,
            seconds=params.peer_flood_seconds,
            backlog_seconds=params.backlog_seconds,
            # Enough that no pool slot waits: each process or thread may hold a few
            # prefetched tasks.
            minimum_backlog=8 * configuration.concurrency,
            on_tick=tick,
        )
        await tick()
        window = steady(samples, params.warmup_seconds)
        deadline = time.monotonic() + params.drain_seconds
        while await delivered() < load.published_sends and time.monotonic() < deadline:
            check_alive(ctx)
            await asyncio.sleep(0.1)
        rss = tree_peak_rss_bytes(worker.pid)
    finally:
        # The enqueuer ends at the end of its input, once it has sent what it read.
        enqueuer.expected_exit = True
        if enqueuer.process.stdin is not None:
            enqueuer.process.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enqueuer.process.wait(), STOP_SECONDS)
        await enqueuer.stop()
        await worker.stop()
    receipts = await providers.fetch_receipts()
    check = completeness(load.expected, receipts.numbers)
    result = PeerResult(
        configuration=configuration.name,
        pool=configuration.pool,
        concurrency=configuration.concurrency,
        provider_latency_ms=ctx.latency_ms,
        tasks=load.published_sends,
        deliveries=check.received,
        deliveries_per_second=window.per_second,
        window_seconds=window.seconds,
        worker_cpu_ms_per_delivery=window.cpu_ms_per_delivery,
        worker_peak_rss_bytes=rss,
        lost=check.lost,
        duplicated=check.duplicated,
    )
    print(
        f"bench:   peer {configuration.name} at {ctx.latency_ms:g} ms:"
        f" {result.deliveries_per_second:,.0f} deliveries/s,"
        f" {result.worker_cpu_ms_per_delivery:.2f} ms of worker CPU each",
        flush=True,
    )
    return result
