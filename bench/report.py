"""The results: the machine and versions they were taken on, a Markdown report (printed and
written) and the same as JSON, under bench/results/ named by date, database and size. The
JSON carries the headline figures at its top level (``headline``), read by tools as they
are: deliveries_per_s, cpu_ms_per_delivery, peer_ratio_<latency>ms, p99_ms_at_50pct."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.measure import Ceiling
from bench.peer_flood import PeerResult, PeerRun
from bench.processes import REPO
from bench.scenario import Params, PhaseResult, ScenarioResult, saturation_phase

RESULTS = REPO / "bench" / "results"

# Issue 15's targets, printed beside the figures; the benchmark does not fail on them.
TARGET_PEER_RATIO = {0.0: 2.5, 150.0: 5.0}
"""notifier's deliveries/s over the peer's best configuration's, per provider latency."""
TARGET_P99_MS_AT_HALF = 250.0
TARGET_RSS_MB = 250.0
TARGET_CPU_MS_PER_DELIVERY = 0.7


@dataclass
class RunResult:
    started_at: datetime
    database: str
    smoke: bool
    machine: dict[str, Any]
    versions: dict[str, str]
    params: Params
    provider_latencies_ms: tuple[float, ...]
    """The first is every phase's; each other has a flood of its own."""
    ceilings: list[Ceiling] = field(default_factory=list)
    scenarios: list[ScenarioResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    """notifier's scenarios on this database."""
    peer: PeerRun | None = None
    """The same for every database of a run: the peer has none."""

    @property
    def problems(self) -> list[str]:
        found = [problem for scenario in self.scenarios for problem in scenario.problems]
        return found + (self.peer.problems if self.peer else [])

    @property
    def single(self) -> ScenarioResult | None:
        return next((s for s in self.scenarios if s.processes == 1), None)

    def notifier_at(self, latency_ms: float) -> PhaseResult | None:
        """The single process's flood at this provider latency."""
        single = self.single
        if single is None:
            return None
        names = {saturation_phase(), saturation_phase(latency_ms)}
        return next(
            (p for p in single.phases if p.phase in names and p.provider_latency_ms == latency_ms),
            None,
        )

    def peer_ratio(self, latency_ms: float) -> float | None:
        notifier = self.notifier_at(latency_ms)
        best = self.peer.best(latency_ms) if self.peer else None
        if notifier is None or best is None or best.deliveries_per_second <= 0:
            return None
        return notifier.deliveries_per_second / best.deliveries_per_second

    def headline(self) -> dict[str, float | None]:
        """The figures issue 15 judges, for the run's first latency (normally 0 ms) and the
        ratio to the peer at each latency; None when not measured."""
        first = self.notifier_at(self.provider_latencies_ms[0])
        single = self.single
        half = next((p for p in single.phases if p.phase == "50% load"), None) if single else None
        figures: dict[str, float | None] = {
            "deliveries_per_s": first.deliveries_per_second if first else None,
            "cpu_ms_per_delivery": first.cpu_seconds_per_1000 if first else None,
        }
        for latency in self.provider_latencies_ms:
            figures[f"peer_ratio_{latency:g}ms"] = self.peer_ratio(latency)
        figures["p99_ms_at_50pct"] = half.latency_ms["p99"] if half and half.latency_ms else None
        figures["peak_rss_mb"] = max(single.peak_rss_bytes, default=0) / 1e6 if single else None
        return figures


def machine() -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        # Other work on the machine makes the figures noisy; this says how busy it was.
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "notifier": _git_revision()}
    for package in ("aiokafka", "faststream", "sqlalchemy", "httpx", "uvloop", "pydantic"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "absent"
    found["kafka"] = _kafka_version()
    return found


def _git_revision() -> str:
    executable = shutil.which("git")
    if executable is None:
        return "unknown (no git)"

    def git(*args: str) -> str:
        # Fixed arguments, not input.
        answer = subprocess.run(  # noqa: S603
            [executable, *args], cwd=REPO, capture_output=True, text=True, check=False
        )
        return answer.stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    # Uncommitted changes under src/ change what was measured.
    return revision + (" (src modified)" if git("status", "--porcelain", "--", "src") else "")


def _kafka_version() -> str:
    """The local broker's, from its jars (scripts/kafka-local); an external one is not
    asked (the protocol does not tell)."""
    if os.environ.get("NOTIFIER_KAFKA_BOOTSTRAP_SERVERS"):
        return "external broker"
    for jar in sorted((REPO / ".local" / "kafka" / "lib").glob("kafka-server-[0-9]*.jar")):
        return jar.stem.removeprefix("kafka-server-") + " (scripts/kafka-local)"
    return "unknown"


def _number(value: float | None, digits: int = 0) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value:,.{digits}f}"


def _share(part: float, whole: float) -> str:
    """A percentage readable when tiny (notifier against the bare consumer)."""
    if whole <= 0:
        return "—"
    percent = 100 * part / whole
    return f"{percent:.1f} %" if percent >= 1 else f"{percent:.2g} %"


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def markdown(run: RunResult) -> str:
    params = run.params
    single = run.single
    lines = [
        f"# notifier benchmark: {run.database}{' (smoke)' if run.smoke else ''},"
        f" {run.started_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"- Machine: {run.machine['cores']} cores, {run.machine['cpu_model']},"
        f" {run.machine['memory_gib']} GiB; load average {run.machine['load_average_at_start']}"
        " at start.",
        "- Versions: " + ", ".join(f"{name} {value}" for name, value in run.versions.items()),
        f"- Load: {params.recipients:,} recipients in {params.districts} districts; requests of"
        f" 1–15 recipients (mean {single.mean_sends_per_request if single else 0:.2f} texts"
        " and emails each); flood"
        f" {params.flood_seconds:g} s (first {params.warmup_seconds:g} s not counted), open"
        f" loop {params.level_seconds:g} s at "
        + "/".join(f"{level:.0%}" for level in params.levels)
        + f" of saturation; {params.partitions} partitions; notifier's defaults otherwise"
        + (f" and {params.extra_env}" if params.extra_env else "")
        + ".",
        "- Fake providers answering after "
        + " and ".join(f"{latency:g} ms" for latency in run.provider_latencies_ms)
        + (
            f": every phase at {run.provider_latencies_ms[0]:g} ms, then a"
            f" {params.latency_flood_seconds:g} s flood at each other latency."
            if len(run.provider_latencies_ms) > 1
            else "."
        ),
        "- Directory applied by notifier (districts and recipients through Kafka): "
        + "; ".join(
            f"{s.name} {s.directory_events:,} events in {s.directory_seconds:.0f} s"
            f" ({s.directory_events / s.directory_seconds:,.0f}/s)"
            for s in run.scenarios
            if s.directory_seconds > 0
        )
        + ".",
        f"- Wall time: {run.wall_seconds:.0f} s for notifier on {run.database}"
        + (f", {run.peer.wall_seconds:.0f} s for the peer." if run.peer else "."),
        "",
    ]
    lines += _targets(run)
    if run.peer is not None:
        lines += _beside_the_peer(run, run.peer)
    lines += _phases(run)
    if single is not None:
        lines += _limits(run, single)
    if len(run.scenarios) > 1:
        lines += _scaling(run)
    for scenario in run.scenarios:
        if scenario.profile is not None:
            lines += _profile(scenario)
    notes = [n for s in run.scenarios for n in s.notes]
    if run.problems or notes:
        lines += ["## Problems", ""] + [f"- {p}" for p in run.problems]
        lines += [f"- note: {n}" for n in notes] + [""]
    return "\n".join(lines)


def _saturation(scenario: ScenarioResult) -> PhaseResult | None:
    return next((p for p in scenario.phases if p.phase == saturation_phase()), None)


def _targets(run: RunResult) -> list[str]:
    """Issue 15's targets, beside the headline figures."""
    figures = run.headline()
    rows = ["| measure | result | target | |", "| --- | ---: | ---: | --- |"]
    for latency in run.provider_latencies_ms:
        ratio = figures[f"peer_ratio_{latency:g}ms"]
        target = TARGET_PEER_RATIO.get(latency)
        if ratio is None:
            continue
        rows.append(
            f"| deliveries/s, notifier (1 process) ÷ the peer's best, at {latency:g} ms |"
            f" {ratio:.2f}× | {f'≥ {target:g}×' if target else '—'} |"
            f" {_verdict(ratio >= target) if target else ''} |"
        )
    cpu = figures["cpu_ms_per_delivery"]
    if cpu is not None:
        rows.append(
            "| notifier's CPU per delivery at saturation (inbox copies and events included)"
            f" | {cpu:.3f} ms | ≤ {TARGET_CPU_MS_PER_DELIVERY:g} ms |"
            f" {_verdict(cpu <= TARGET_CPU_MS_PER_DELIVERY)} |"
        )
    p99 = figures["p99_ms_at_50pct"]
    if p99 is not None:
        rows.append(
            f"| p99 created_at → provider at 50 % of saturation | {_number(p99)} ms |"
            f" ≤ {TARGET_P99_MS_AT_HALF:.0f} ms | {_verdict(p99 <= TARGET_P99_MS_AT_HALF)} |"
        )
    rss_mb = figures["peak_rss_mb"]
    if rss_mb is not None:
        rows.append(
            f"| peak RSS | {rss_mb:.0f} MB | ≤ {TARGET_RSS_MB:.0f} MB |"
            f" {_verdict(rss_mb <= TARGET_RSS_MB)} |"
        )
    return ["## Against the targets (issue 15)", "", *rows, ""]


def _beside_the_peer(run: RunResult, peer: PeerRun) -> list[str]:
    latencies = run.provider_latencies_ms
    versions = ", ".join(f"{name} {value}" for name, value in peer.versions.items())
    lines = [
        "## notifier beside the peer",
        "",
        "The peer is GOV.UK Notify's shape: one Celery task per text or email, calling"
        " twilio's `Client.messages.create` or sendgrid's `SendGridAPIClient.send`, Redis as"
        f" the broker, no database (`bench/peer.py`; {versions}). It sends the same"
        " notifications to the same fakes. CPU per delivery: notifier's process, its inbox"
        " copies, ledger and events included; the peer's worker, every process of its pool"
        " (not Redis's).",
        "",
        "| | "
        + " | ".join(f"{lat:g} ms: deliveries/s | CPU ms / delivery" for lat in latencies)
        + " |",
        "| --- |" + " ---: | ---: |" * len(latencies),
    ]
    cells = []
    for latency in latencies:
        phase = run.notifier_at(latency)
        cells += [
            _number(phase.deliveries_per_second) if phase else "—",
            _number(phase.cpu_seconds_per_1000, 2) if phase else "—",
        ]
    lines.append(f"| notifier, 1 process ({run.database}) | " + " | ".join(cells) + " |")
    for name in dict.fromkeys(r.configuration for r in peer.results):
        cells = []
        for latency in latencies:
            result = _peer_result(peer, name, latency)
            cells += [
                _number(result.deliveries_per_second) if result else "—",
                _number(result.worker_cpu_ms_per_delivery, 2) if result else "—",
            ]
        lines.append(f"| peer: Celery {name} | " + " | ".join(cells) + " |")
    cells = []
    for latency in latencies:
        ratio, best = run.peer_ratio(latency), peer.best(latency)
        cells += [f"{ratio:.2f}× ({best.configuration})" if ratio and best else "—", ""]
    lines.append("| notifier ÷ the peer's best | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| peer | latency | tasks | measured over | worker peak RSS (sum) | lost | dup |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| Celery {r.configuration} | {r.provider_latency_ms:g} ms | {r.tasks:,} |"
        f" {r.window_seconds:.0f} s | {r.worker_peak_rss_bytes / 1e6:.0f} MB | {r.lost} |"
        f" {r.duplicated} |"
        for r in peer.results
    ]
    return [*lines, ""]


def _peer_result(peer: PeerRun, configuration: str, latency_ms: float) -> PeerResult | None:
    return next(
        (
            r
            for r in peer.results
            if r.configuration == configuration and r.provider_latency_ms == latency_ms
        ),
        None,
    )


def _phases(run: RunResult) -> list[str]:
    rows = [
        "## Phases",
        "",
        "Deliveries are texts and emails received by the fake providers; inbox copies are"
        " notifier's app deliveries (its metrics). Latency: request created_at to the"
        " provider's receipt.",
        "",
        "| scenario | phase | procs | offered req/s | achieved req/s | requests |"
        " deliveries | deliveries/s | p50 ms | p95 ms | p99 ms | max ms | CPU s / 1k |"
        " inbox copies | lost | dup |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        " ---: | ---: | ---: | ---: |",
    ]
    for scenario in run.scenarios:
        for phase in scenario.phases:
            latency = phase.latency_ms or {}
            offered = (
                "closed loop"
                if phase.offered_requests_per_second is None
                else _number(phase.offered_requests_per_second, 1)
            )
            rows.append(
                f"| {scenario.name} | {phase.phase} | {phase.processes} | {offered} |"
                f" {_number(phase.achieved_requests_per_second, 1)} | {phase.requests:,} |"
                f" {phase.deliveries:,} | {_number(phase.deliveries_per_second)} |"
                f" {_number(latency.get('p50'))} | {_number(latency.get('p95'))} |"
                f" {_number(latency.get('p99'))} | {_number(latency.get('max'))} |"
                f" {_number(phase.cpu_seconds_per_1000, 2)} |"
                f" {phase.inbox_copies:,}/{phase.expected_inbox_copies:,} |"
                f" {phase.lost} | {phase.duplicated} |"
            )
    return [*rows, ""]


def _limits(run: RunResult, single: ScenarioResult) -> list[str]:
    saturation = _saturation(single)
    rate = saturation.deliveries_per_second if saturation else 0.0
    rows = [
        "## Limits",
        "",
        "| what | rate | as deliveries/s | notifier at saturation is |",
        "| --- | ---: | ---: | ---: |",
    ]
    if single.limit_requests_per_second:
        as_deliveries = single.limit_requests_per_second * single.mean_sends_per_request
        rows.append(
            "| LIMIT: bare aiokafka consumer, same topic (read + JSON decode,"
            f" {single.limit_records:,} records in {single.limit_passes} passes) |"
            f" {_number(single.limit_requests_per_second)} req/s | {_number(as_deliveries)} |"
            f" {_share(rate, as_deliveries)} |"
        )
    for ceiling in run.ceilings:
        rows.append(
            f"| fake {ceiling.provider}, hammered by one httpx client (8 in flight):"
            f" {_number(ceiling.requests_per_second)} req/s with the fake at"
            f" {ceiling.fake_cpu_share:.2f} cores |"
            f" ≈ {_number(ceiling.per_fake_core)} req/s per fake core |"
            f" {_number(ceiling.per_fake_core)} |"
            f" {_share(rate, ceiling.per_fake_core)} |"
            if ceiling.per_fake_core
            else f"| fake {ceiling.provider} | not measured | | |"
        )
    return [*rows, ""]


def _scaling(run: RunResult) -> list[str]:
    base = next((_saturation(s) for s in run.scenarios if s.processes == 1), None)
    rows = [
        "## Processes in one consumer group",
        "",
        "| processes | deliveries/s | vs 1 process | CPU s / 1k | peak RSS per process |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario in run.scenarios:
        saturation = _saturation(scenario)
        if saturation is None:
            continue
        ratio = saturation.deliveries_per_second / base.deliveries_per_second if base else 0.0
        rss = ", ".join(f"{value / 1e6:.0f} MB" for value in scenario.peak_rss_bytes)
        rows.append(
            f"| {scenario.processes} | {_number(saturation.deliveries_per_second)} |"
            f" {ratio:.2f}× | {_number(saturation.cpu_seconds_per_1000, 2)} | {rss} |"
        )
    return [*rows, ""]


def _profile(scenario: ScenarioResult) -> list[str]:
    profile = scenario.profile
    assert profile is not None
    lines = [
        f"## Where the CPU goes at saturation ({scenario.name}, py-spy,"
        f" {profile.samples:,} samples)",
        "",
        f"Collapsed stacks (for a flame graph): `{profile.raw_path}`.",
        "",
        "| self % | function (innermost frame) | | inclusive % | function (on the stack) |",
        "| ---: | --- | --- | ---: | --- |",
    ]
    for own, within in zip(profile.self_time, profile.inclusive, strict=False):
        lines.append(
            f"| {own.percent:.1f} | `{own.name}` | | {within.percent:.1f} | `{within.name}` |"
        )
    lines += ["", "| share % | what the samples were doing (each sample counted once) |"]
    lines += ["| ---: | --- |"]
    lines += [f"| {share.percent:.1f} | {share.name} |" for share in profile.components]
    lines += ["", "| inclusive % | notifier's own functions |", "| ---: | --- |"]
    lines += [f"| {share.percent:.1f} | `{share.name}` |" for share in profile.notifier]
    lines += ["", "| self % by package | |", "| ---: | --- |"]
    lines += [f"| {share.percent:.1f} | {share.name} |" for share in profile.packages]
    return [*lines, ""]


def write(run: RunResult, text: str) -> tuple[Path, Path]:
    """bench/results/<date>T<time>Z-<db>[-smoke].md and .json (smoke runs in smoke/)."""
    folder = RESULTS / "smoke" if run.smoke else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{run.started_at:%Y-%m-%dT%H%MZ}-{run.database}" + ("-smoke" if run.smoke else "")
    markdown_path, json_path = folder / f"{stem}.md", folder / f"{stem}.json"
    for path, content in (
        (markdown_path, text),
        (json_path, json.dumps(_plain(run), indent=2, default=str)),
    ):
        # Written whole or not at all (.tmp is ignored by git).
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(content + "\n")
        temporary.replace(path)
    return markdown_path, json_path


def _plain(run: RunResult) -> dict[str, Any]:
    plain = run.headline() | dataclasses.asdict(run)
    plain["problems"] = run.problems
    plain["targets"] = {
        **{f"peer_ratio_{latency:g}ms": ratio for latency, ratio in TARGET_PEER_RATIO.items()},
        "cpu_ms_per_delivery": TARGET_CPU_MS_PER_DELIVERY,
        "p99_ms_at_50pct": TARGET_P99_MS_AT_HALF,
        "peak_rss_mb": TARGET_RSS_MB,
    }
    return plain
