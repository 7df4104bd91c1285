"""One scenario: notifier process(es) on fresh topics, group and database, the directory
loaded through Kafka, then the phases, each drained and checked before the next:

1. saturation: a closed-loop flood; deliveries per second and CPU over its steady part;
2. the LIMIT: a bare aiokafka consumer reads the flood's topic (single process only);
3. open loop at 25 %, 50 % and 75 % of the saturation rate: latency percentiles;
4. a second flood with py-spy attached (``--profile``);
5. a flood at each further provider latency of the run (``--provider-latency-ms``), the
   fakes answering that much later (single process only).

Phases 1–4 run at the run's first latency.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.databases import Database
from bench.load import Load, Topics, bare_consumer, closed_loop, open_loop
from bench.measure import (
    Completeness,
    Providers,
    Receipts,
    Sample,
    completeness,
    cpu_seconds,
    latencies_ms,
    peak_rss_bytes,
    percentile,
    steady,
)
from bench.population import Directory
from bench.processes import Children, Service, metric_sum, start_service
from bench.profile import ProfileSummary, py_spy, start_recording, summarise


@dataclass(frozen=True, slots=True)
class Params:
    recipients: int
    districts: int
    flood_seconds: float
    warmup_seconds: float
    level_seconds: float
    levels: tuple[float, ...]
    ceiling_seconds: float
    profile_seconds: float
    drain_seconds: float
    partitions: int
    backlog_seconds: float
    minimum_backlog: int
    limit_records: int
    seed: int
    extra_env: dict[str, str]
    latency_flood_seconds: float
    """notifier's flood at each provider latency after the first."""
    peer_flood_seconds: float
    """Each of the peer's floods, its worker's start included."""


@dataclass
class PhaseResult:
    scenario: str
    phase: str
    processes: int
    provider_latency_ms: float
    """How long each of the fakes' answers waited."""
    offered_requests_per_second: float | None
    """None for the closed loop (it offers what completes)."""
    achieved_requests_per_second: float
    requests: int
    deliveries: int
    """Texts and emails of the phase's requests received by the fakes."""
    deliveries_per_second: float
    """Over the steady window (flood) or the publishing time (open loop)."""
    window_seconds: float
    latency_ms: dict[str, float] | None
    cpu_seconds_per_1000: float
    inbox_copies: int
    expected_inbox_copies: int
    lost: int
    duplicated: int


@dataclass
class ScenarioResult:
    name: str
    processes: int
    kind: str
    """sqlite or postgresql."""
    database: str
    directory_seconds: float
    directory_events: int
    phases: list[PhaseResult] = field(default_factory=list)
    limit_requests_per_second: float | None = None
    limit_records: int = 0
    limit_passes: int = 0
    mean_sends_per_request: float = 0.0
    peak_rss_bytes: list[int] = field(default_factory=list)
    exit_codes: list[int | None] = field(default_factory=list)
    profile: ProfileSummary | None = None
    problems: list[str] = field(default_factory=list)
    """What makes the run fail: lost deliveries, a process that died or exited badly."""
    notes: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What every scenario of a run shares."""

    params: Params
    bootstrap: str
    run_id: str
    run_dir: Path
    children: Children
    providers: Providers
    load: Load
    directory: Directory
    provider_env: dict[str, str]
    profile: bool
    latencies: tuple[float, ...]
    """The run's provider latencies (ms), the first one the fakes' usual."""
    latency_ms: float = 0.0
    """The fakes' latency now."""

    async def set_latency(self, milliseconds: float) -> None:
        if milliseconds != self.latency_ms:
            await self.providers.set_latency(milliseconds)
            self.latency_ms = milliseconds


def _service_env(ctx: Context, topics: Topics, group: str, database: Database) -> dict[str, str]:
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith("NOTIFIER_")
    }
    return (
        inherited
        | {
            "PYTHONUNBUFFERED": "1",
            # Only what is set here: no config file, no mounted secrets.
            "NOTIFIER_CONFIG_FILE": str(ctx.run_dir / "absent-notifier.yaml"),
            "NOTIFIER_SECRETS_DIR": str(ctx.run_dir / "absent-secrets"),
            "NOTIFIER_KAFKA_BOOTSTRAP_SERVERS": ctx.bootstrap,
            "NOTIFIER_KAFKA_GROUP_ID": group,
            "NOTIFIER_KAFKA_PARTITIONS": str(ctx.params.partitions),
            "NOTIFIER_DATABASE_URL": database.url,
            # Per-request INFO lines would be a large share of the CPU measured.
            "NOTIFIER_LOG_LEVEL": "WARNING",
        }
        | topics.env()
        | ctx.provider_env
        | ctx.params.extra_env
    )


async def run_scenario(
    ctx: Context, name: str, processes: int, database: Database
) -> ScenarioResult:
    topics = Topics(f"bench-{ctx.run_id}-{name}-")
    ctx.load.topics = topics
    env = _service_env(ctx, topics, f"bench-{ctx.run_id}-{name}", database)
    services: list[Service] = []
    # One at a time: the first migrates the empty database, the others find it migrated.
    for number in range(processes):
        services.append(await start_service(ctx.children, f"notifier-{name}-{number + 1}", env))

    started = time.monotonic()
    events = await ctx.load.publish_directory(ctx.directory)
    await _wait_for_directory(services, ctx.directory, ctx.params.drain_seconds)
    result = ScenarioResult(
        name, processes, database.kind, database.version, time.monotonic() - started, events
    )
    _say(f"{name}: directory applied ({events:,} events in {result.directory_seconds:.0f} s)")
    try:
        await _phases(ctx, result, services, topics)
        result.peak_rss_bytes = [peak_rss_bytes(service.child.pid) for service in services]
    finally:
        for service in services:
            result.exit_codes.append(await service.child.stop())
    result.problems += [
        f"{service.child.name} exited with {code} on SIGTERM"
        for service, code in zip(services, result.exit_codes, strict=True)
        if code != 0
    ]
    return result


async def _phases(
    ctx: Context, result: ScenarioResult, services: list[Service], topics: Topics
) -> None:
    """The phases in order. The first that loses a delivery ends the scenario: what would
    follow measures a broken service, and CI learns it sooner."""
    flood = await _flood(ctx, result, services, saturation_phase(), ctx.params.flood_seconds)
    if result.problems or len(services) > 1:
        return
    limit = await bare_consumer(
        ctx.bootstrap,
        topics.name("SEND_REQUESTS"),
        ctx.params.partitions,
        records=ctx.params.limit_records,
    )
    result.limit_requests_per_second = limit.per_second
    result.limit_records = limit.records
    result.limit_passes = limit.passes
    _say(f"{result.name}: LIMIT, a bare consumer reads {limit.per_second:,.0f} requests/s")
    for level in ctx.params.levels:
        await _level(ctx, result, services, flood, level)
        if result.problems:
            return
    if ctx.profile:
        result.profile = await _profiled_flood(ctx, result, services)
    for latency in ctx.latencies[1:]:
        await ctx.set_latency(latency)
        try:
            await _flood(
                ctx, result, services, saturation_phase(latency), ctx.params.latency_flood_seconds
            )
        finally:
            await ctx.set_latency(ctx.latencies[0])
        if result.problems:
            return


def saturation_phase(latency_ms: float | None = None) -> str:
    """The name of notifier's flood at a further provider latency (None: the first)."""
    return "saturation" if latency_ms is None else f"saturation at {latency_ms:g} ms"


async def _wait_for_directory(
    services: list[Service], directory: Directory, seconds: float
) -> None:
    """The requests name people on other topics: they must not overtake the profiles."""
    deadline = time.monotonic() + seconds
    wanted = {"district": len(directory.districts), "recipient": len(directory.people)}
    while True:
        counts = {kind: 0.0 for kind in wanted}
        for service in services:
            samples = await service.metrics()
            for kind in wanted:
                counts[kind] += metric_sum(samples, "notifier_directory_events_total", kind=kind)
        if all(counts[kind] >= wanted[kind] for kind in wanted):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"directory not applied after {seconds:.0f} s: {counts} of {wanted}")
        await asyncio.sleep(0.25)


async def _inbox_copies(services: list[Service]) -> int:
    total = 0.0
    for service in services:
        samples = await service.metrics()
        total += metric_sum(samples, "notifier_deliveries_total", channel="app", status="sent")
    return round(total)


def _cpu(services: list[Service]) -> float:
    return sum(cpu_seconds(service.child.pid) for service in services)


async def _flood(
    ctx: Context, result: ScenarioResult, services: list[Service], phase: str, seconds: float
) -> PhaseResult:
    load, providers = ctx.load, ctx.providers
    first_number = load.factory.next_number
    inbox_before = await _inbox_copies(services)
    samples: list[Sample] = []

    async def tick() -> None:
        samples.append(Sample(time.monotonic(), await providers.marked(), _cpu(services)))

    await tick()
    await closed_loop(
        load,
        providers.marked,
        seconds=seconds,
        backlog_seconds=ctx.params.backlog_seconds,
        minimum_backlog=ctx.params.minimum_backlog,
        on_tick=tick,
    )
    await tick()
    # Until publishing stopped.
    window = steady(samples, ctx.params.warmup_seconds)
    if window.seconds < 0.5 * (seconds - ctx.params.warmup_seconds):
        result.notes.append(
            f"{result.name}/{phase}: measured over {window.seconds:.1f} s only: publishing stalled"
            " (was the broker away?); its rate means little"
        )
    drained = await _drain(ctx, result, services, phase, first_number, inbox_before)
    numbers = drained.numbers
    result.mean_sends_per_request = (
        sum(load.expected[n] for n in numbers) / len(numbers) if numbers else 0.0
    )
    outcome = drained.phase_result(
        offered=None,
        achieved=len(numbers) / (samples[-1].at - samples[0].at),
        deliveries_per_second=window.per_second,
        window=window.seconds,
        cpu_seconds_per_1000=window.cpu_ms_per_delivery,
        latency_ms=None,
    )
    result.phases.append(outcome)
    _say(
        f"{result.name}: {phase}: {outcome.deliveries_per_second:,.0f} deliveries/s,"
        f" {outcome.cpu_seconds_per_1000:.2f} CPU seconds per 1,000"
    )
    return outcome


async def _level(
    ctx: Context,
    result: ScenarioResult,
    services: list[Service],
    saturation: PhaseResult,
    level: float,
) -> None:
    load = ctx.load
    rate = level * saturation.deliveries_per_second / max(result.mean_sends_per_request, 0.1)
    first_number = load.factory.next_number
    inbox_before = await _inbox_copies(services)
    cpu_before = _cpu(services)
    achieved = await open_loop(load, rate, seconds=ctx.params.level_seconds)
    drained = await _drain(ctx, result, services, f"{level:.0%} load", first_number, inbox_before)
    cpu = _cpu(services) - cpu_before
    created = {n: load.created[n] for n in drained.numbers}
    latencies = latencies_ms(created, drained.receipts)
    received = drained.check.received
    _say(
        f"{result.name}: {level:.0%} load ({rate:.1f} requests/s):"
        f" p50 {percentile(latencies, 0.5):,.0f} ms, p99 {percentile(latencies, 0.99):,.0f} ms"
    )
    result.phases.append(
        drained.phase_result(
            offered=rate,
            achieved=achieved,
            deliveries_per_second=received / ctx.params.level_seconds,
            window=ctx.params.level_seconds,
            # The drain's idle tail is included: a little CPU for no deliveries.
            cpu_seconds_per_1000=cpu * 1000 / received if received else 0.0,
            latency_ms={
                "p50": percentile(latencies, 0.50),
                "p95": percentile(latencies, 0.95),
                "p99": percentile(latencies, 0.99),
                "max": latencies[-1] if latencies else float("nan"),
            },
        )
    )


@dataclass(frozen=True, slots=True)
class _Drained:
    scenario: str
    phase: str
    processes: int
    provider_latency_ms: float
    numbers: range
    receipts: Receipts
    check: Completeness
    inbox: int
    expected_inbox: int

    def phase_result(
        self,
        *,
        offered: float | None,
        achieved: float,
        deliveries_per_second: float,
        window: float,
        cpu_seconds_per_1000: float,
        latency_ms: dict[str, float] | None,
    ) -> PhaseResult:
        return PhaseResult(
            scenario=self.scenario,
            phase=self.phase,
            processes=self.processes,
            provider_latency_ms=self.provider_latency_ms,
            offered_requests_per_second=offered,
            achieved_requests_per_second=achieved,
            requests=len(self.numbers),
            deliveries=self.check.received,
            deliveries_per_second=deliveries_per_second,
            window_seconds=window,
            latency_ms=latency_ms,
            cpu_seconds_per_1000=cpu_seconds_per_1000,
            inbox_copies=self.inbox,
            expected_inbox_copies=self.expected_inbox,
            lost=self.check.lost,
            duplicated=self.check.duplicated,
        )


async def _drain(
    ctx: Context,
    result: ScenarioResult,
    services: list[Service],
    phase: str,
    first_number: int,
    inbox_before: int,
) -> _Drained:
    """Wait until every text and email of the phase's requests has arrived (or the drain
    time is up), then check each request: lost and duplicated messages are counted per
    request, not in total, so a duplicate cannot hide a loss."""
    load, providers = ctx.load, ctx.providers
    deadline = time.monotonic() + ctx.params.drain_seconds
    while await providers.marked() < load.published_sends and time.monotonic() < deadline:
        check_alive(ctx)
        await asyncio.sleep(0.1)
    # Inbox copies are recorded beside the provider calls: let the last ones land.
    numbers = range(first_number, load.factory.next_number)
    expected_inbox = sum(load.inbox[n] for n in numbers)
    inbox = await _inbox_copies(services) - inbox_before
    while inbox < expected_inbox and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        inbox = await _inbox_copies(services) - inbox_before
    receipts = await providers.fetch_receipts()
    check = completeness({n: load.expected[n] for n in numbers}, receipts.numbers)
    if check.lost:
        result.problems.append(
            f"{result.name}/{phase}: {check.lost} of {check.expected} texts and emails lost"
            f" (not received {ctx.params.drain_seconds:.0f} s after the load)"
        )
    if check.duplicated:
        result.notes.append(f"{result.name}/{phase}: {check.duplicated} duplicated sends")
    if inbox < expected_inbox:
        result.problems.append(
            f"{result.name}/{phase}: {expected_inbox - inbox} of {expected_inbox} inbox copies"
            " missing"
        )
    return _Drained(
        result.name,
        phase,
        len(services),
        ctx.latency_ms,
        numbers,
        receipts,
        check,
        inbox,
        expected_inbox,
    )


def _say(line: str) -> None:
    print(f"bench:   {line}", flush=True)


def check_alive(ctx: Context) -> None:
    died = ctx.children.died()
    if died:
        raise RuntimeError("a child process died: " + ", ".join(died))


async def _profiled_flood(
    ctx: Context, result: ScenarioResult, services: list[Service]
) -> ProfileSummary | None:
    executable = py_spy()
    if executable is None:
        result.notes.append("--profile: py-spy not found (see bench/README.md); skipped")
        return None
    # Kept after the run's directory is removed: .local/bench/profiles/<run>-<scenario>.txt
    output = ctx.run_dir.parent / "profiles" / f"{ctx.run_id}-{result.kind}-{result.name}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    seconds = ctx.params.profile_seconds
    recorder = await start_recording(
        ctx.children, executable, services[0].child.pid, seconds, output
    )
    await _flood(ctx, result, services, "saturation, profiled", seconds + 1.0)
    code = await recorder.process.wait()
    if code != 0 or not output.exists():
        result.notes.append(f"py-spy failed (exit {code})\n{recorder.tail()}")
        return None
    return summarise(output)
