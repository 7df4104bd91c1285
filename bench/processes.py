"""The run's child processes: the two fake providers, the notifier service(s), and the
peer's Redis, worker and enqueuer.

Never an orphan: each child gets PR_SET_PDEATHSIG=SIGKILL, so it dies with the benchmark
even when the benchmark itself is SIGKILLed, and ``Children.close`` (always reached through
``finally``) stops whatever still runs, SIGTERM first, then SIGKILL. Children run in their
own session so that a Ctrl-C at the terminal reaches only the benchmark, which then stops
them in order instead of everything dying at once half-way through a commit.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / ".local" / "bench-tools" / "bin"
"""The bench's own virtualenv (make bench-tools): py-spy, and the peer's Python."""
_PR_SET_PDEATHSIG = 1
START_SECONDS = 60.0
STOP_SECONDS = 30.0
"""notifier drains in-flight batches on SIGTERM (its graceful timeout is 20 s)."""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec; the setting survives exec.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    log: IO[bytes]
    expected_exit: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.returncode is None

    def tail(self, lines: int = 40) -> str:
        if not self.log.closed:
            self.log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} ({self.log_path}) ---\n" + "\n".join(text)

    async def stop(self, seconds: float = STOP_SECONDS) -> int | None:
        """SIGTERM, then SIGKILL after ``seconds``; the exit code (None if it had to be
        killed)."""
        self.expected_exit = True
        code: int | None = self.process.returncode
        if code is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(self.process.wait(), seconds)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                code = None
        self.log.close()
        return code


@dataclass
class Children:
    run_dir: Path
    started: list[Child] = field(default_factory=list)

    async def spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        cwd: Path,
        read_url: bool,
        finite: bool = False,
        piped: bool = False,
    ) -> tuple[Child, str | None]:
        """Start ``argv``; with ``read_url``, its first stdout line (a fake's base URL).
        A ``finite`` child (a tool that ends by itself) may exit without being asked; a
        ``piped`` one reads what the benchmark writes to ``child.process.stdin``."""
        log_path = self.run_dir / f"{name}.log"
        log = log_path.open("ab")
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE if piped else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if read_url else log,
            stderr=log,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        child = Child(name, process, log_path, log, expected_exit=finite)
        self.started.append(child)
        if not read_url:
            return child, None
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_SECONDS)
        if not line:
            raise RuntimeError(f"{name} exited before it served\n{child.tail()}")
        return child, line.decode().strip()

    def died(self) -> list[str]:
        """Children that exited without being asked to."""
        return [
            f"{child.name} (exit {child.process.returncode})"
            for child in self.started
            if not child.running() and not child.expected_exit
        ]

    async def close(self) -> None:
        # Reverse order: the services before the fakes they talk to.
        for child in reversed(self.started):
            if not child.log.closed:
                await child.stop()


async def start_fake(children: Children, provider: str, credentials: list[str]) -> str:
    env = dict(os.environ) | {"PYTHONPATH": str(REPO)}
    _, url = await children.spawn(
        f"fake-{provider}",
        [sys.executable, "-m", "bench.fakes", provider, *credentials],
        env,
        cwd=REPO,
        read_url=True,
    )
    assert url is not None
    return url


def notifier_command() -> list[str]:
    """The installed ``notifier`` console script beside this interpreter (the venv's)."""
    script = Path(sys.executable).parent / "notifier"
    if script.exists():
        return [str(script), "run", "--only", "consumer"]
    return [sys.executable, "-m", "notifier", "run", "--only", "consumer"]


@dataclass
class Service:
    """One ``notifier run --only consumer`` process and its ops endpoints."""

    child: Child
    base_url: str

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0) as client:
            text = (await client.get("/metrics")).text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        last = "no answer yet"
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if not self.child.running():
                    raise RuntimeError(f"notifier exited at start\n{self.child.tail()}")
                try:
                    response = await client.get("/readyz")
                except httpx.TransportError as error:
                    last = repr(error)
                else:
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:500]}"
                await asyncio.sleep(0.2)
        raise RuntimeError(f"notifier not ready after {START_SECONDS:.0f} s: {last}")


async def start_service(children: Children, name: str, env: dict[str, str]) -> Service:
    port = free_port()
    child, _ = await children.spawn(
        name,
        notifier_command(),
        env | {"NOTIFIER_HTTP_HOST": "127.0.0.1", "NOTIFIER_HTTP_PORT": str(port)},
        # Not the repository: its config/notifier.yaml must not be read.
        cwd=children.run_dir,
        read_url=False,
    )
    service = Service(child, f"http://127.0.0.1:{port}")
    await service.wait_ready()
    return service


def metric_sum(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """The sum of ``name`` over every sample whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and wanted <= sample_labels
    )
