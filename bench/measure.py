"""What is measured and how: deliveries as the fake providers count them, latency from a
request's created_at to the provider's receipt, CPU and memory of a process from /proc, and
the fakes' own ceiling.
"""

from __future__ import annotations

import asyncio
import base64
import math
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import httpx

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as stat:
        # The command name may contain spaces; the fields after it are fixed.
        return stat.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the process, all its threads (aiosqlite's included)."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS


def descendants(pid: int) -> list[int]:
    """The process's children, theirs, and so on (a Celery prefork worker's pool)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
            except FileNotFoundError:
                continue
        if parent != pid:
            found.append(parent)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU of the process and every descendant, those that ended and were waited for
    included (their time is in their parent's cutime and cstime)."""
    total = 0
    for member in [pid, *descendants(pid)]:
        try:
            fields = _stat_fields(member)
        except FileNotFoundError:  # ended between the listing and now
            continue
        total += sum(int(value) for value in fields[11:15])
    return total / _TICKS


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the most resident memory the process has had."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def tree_peak_rss_bytes(pid: int) -> int:
    """The peak RSS of the process and of each live descendant, added up (an upper bound:
    forked processes share the pages they did not write)."""
    return sum(peak_rss_bytes(member) for member in [pid, *descendants(pid)])


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks; ``values`` sorted."""
    if not values:
        return math.nan
    position = (len(values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class Sample:
    """A closed loop's progress at one moment: texts and emails received, CPU spent."""

    at: float
    delivered: int
    cpu: float


@dataclass(frozen=True, slots=True)
class Steady:
    seconds: float
    delivered: int
    cpu: float

    @property
    def per_second(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_delivery(self) -> float:
        """CPU milliseconds per delivery (= CPU seconds per 1,000)."""
        return self.cpu * 1000 / self.delivered if self.delivered else 0.0


def steady(samples: Sequence[Sample], warmup_seconds: float) -> Steady:
    """The steady part of a flood: from ``warmup_seconds`` after the first delivery (the
    connections, caches and first batches before it are not counted) to the last sample."""
    first = next((s for s in samples if s.delivered > samples[0].delivered), samples[0])
    window = [s for s in samples if s.at - first.at >= warmup_seconds]
    begin, end = (window[0], window[-1]) if len(window) >= 2 else (samples[0], samples[-1])
    return Steady(end.at - begin.at, end.delivered - begin.delivered, end.cpu - begin.cpu)


@dataclass
class Receipts:
    """Every marked message the fakes took, fetched incrementally: request number and
    arrival (Unix seconds)."""

    numbers: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)


class Providers:
    """The two fakes as the benchmark reads them: counts, and receipts since last asked."""

    def __init__(self, twilio_url: str, sendgrid_url: str) -> None:
        self.urls = {"twilio": twilio_url, "sendgrid": sendgrid_url}
        self._client = httpx.AsyncClient(timeout=30.0)
        self._offsets = {"twilio": 0, "sendgrid": 0}

    async def close(self) -> None:
        await self._client.aclose()

    async def set_latency(self, milliseconds: float) -> None:
        """Every provider answer from now on waits ``milliseconds``."""
        for url in self.urls.values():
            answer = await self._client.post(
                f"{url}/_bench/latency", params={"ms": str(milliseconds)}
            )
            answer.raise_for_status()

    async def stats(self) -> dict[str, dict[str, int]]:
        answers = await asyncio.gather(
            *(self._client.get(f"{url}/_bench/stats") for url in self.urls.values())
        )
        return {name: answer.json() for name, answer in zip(self.urls, answers, strict=True)}

    async def marked(self) -> int:
        """Texts and emails of the benchmark's requests taken so far, both providers."""
        return sum(stats["marked"] for stats in (await self.stats()).values())

    async def fetch_receipts(self) -> Receipts:
        """The receipts that arrived since the previous call."""
        fresh = Receipts()
        for name, url in self.urls.items():
            answer = await self._client.get(
                f"{url}/_bench/receipts", params={"start": self._offsets[name]}
            )
            payload = answer.json()
            self._offsets[name] += len(payload["numbers"])
            fresh.numbers += payload["numbers"]
            fresh.times += payload["times"]
        return fresh


@dataclass(frozen=True, slots=True)
class Completeness:
    expected: int
    received: int
    lost: int
    """Expected texts and emails that never arrived, counted per request."""
    duplicated: int


def completeness(expected: dict[int, int], numbers: Iterable[int]) -> Completeness:
    got = Counter(number for number in numbers if number in expected)
    lost = sum(max(0, sends - got[number]) for number, sends in expected.items())
    duplicated = sum(max(0, got[number] - sends) for number, sends in expected.items())
    return Completeness(sum(expected.values()), sum(got.values()), lost, duplicated)


def latencies_ms(created: dict[int, float], receipts: Receipts) -> list[float]:
    """Sorted milliseconds from created_at to receipt, for receipts of ``created``."""
    return sorted(
        (arrived - created[number]) * 1000.0
        for number, arrived in zip(receipts.numbers, receipts.times, strict=True)
        if number in created
    )


@dataclass(frozen=True, slots=True)
class Ceiling:
    provider: str
    requests_per_second: float
    """What one httpx client got: usually the client's limit, not the fake's."""
    fake_cpu_share: float
    """The fake's CPU over the hammering, in cores: near 1.0 means it was the limit."""
    seconds: float

    @property
    def per_fake_core(self) -> float:
        """Requests per second the fake would answer with a whole core to itself."""
        return self.requests_per_second / self.fake_cpu_share if self.fake_cpu_share else 0.0


async def hammer(
    provider: str, url: str, pid: int, credentials: dict[str, str], seconds: float
) -> Ceiling:
    """The fake's throughput under one httpx client, and its CPU meanwhile.

    Eight requests in flight: httpx's pool costs more CPU per request the more requests
    share it (at 64 it managed a fifth of the rate on this machine), so more concurrency
    measures the client, not the fake."""
    if provider == "twilio":
        sid = credentials["account_sid"]
        token = base64.b64encode(f"{sid}:{credentials['auth_token']}".encode()).decode()
        endpoint = f"{url}/2010-04-01/Accounts/{sid}/Messages.json"
        headers = {"Authorization": f"Basic {token}"}
        form: dict[str, str] | None = {
            "To": "+16170000001",
            "MessagingServiceSid": "MG" + "0" * 32,
            "Body": "ping",
        }
        mail: dict[str, object] | None = None
    else:
        endpoint = f"{url}/v3/mail/send"
        headers = {"Authorization": f"Bearer {credentials['api_key']}"}
        form = None
        mail = {
            "personalizations": [{"to": [{"email": "ping@bench.example"}]}],
            "from": {"email": "no-reply@bench.example"},
            "subject": "ping",
            "content": [{"type": "text/plain", "value": "ping"}],
        }
    done = 0
    deadline = 0.0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            response = await client.post(endpoint, headers=headers, data=form, json=mail)
            response.raise_for_status()
            done += 1

    in_flight = 8
    async with httpx.AsyncClient(timeout=10.0) as client:
        deadline = time.monotonic() + 0.2  # connections opened, code paths warm
        await asyncio.gather(*(worker(client) for _ in range(in_flight)))
        done = 0
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(worker(client) for _ in range(in_flight)))
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
    return Ceiling(provider, done / elapsed, cpu / elapsed, elapsed)
