"""Where notifier's CPU goes at saturation: py-spy samples the running process from outside
(no code change, no restart) while a closed-loop flood keeps it busy, and the collapsed
stacks are summed up by function (self and inclusive) and by package.

py-spy lives in its own virtualenv, not notifier's (.local/bench-tools, see bench/README.md),
and is found there or on PATH; without it the profile is skipped, not the run.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.processes import TOOLS, Child, Children

# Frames on (nearly) every stack: the event loop's and the threads' entry points.
_ENTRIES = ("Runner.run ", "Thread.run ")
# "function (path/to/module.py)" once line numbers are off.
_FRAME = re.compile(r"^(?P<function>.*) \((?P<path>[^()]*)\)$")


def py_spy() -> str | None:
    local = TOOLS / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def start_recording(
    children: Children, executable: str, pid: int, seconds: float, output: Path
) -> Child:
    child, _ = await children.spawn(
        "py-spy",
        [
            executable,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(round(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nolineno",
            # Only samples holding the GIL: Python's CPU. Threads waiting for the GIL (the
            # aiosqlite workers, mostly) otherwise look busy.
            "--gil",
            # Sampling without pausing notifier: the flood's figures stay its own.
            "--nonblocking",
            "--output",
            str(output),
        ],
        {"PATH": "/usr/bin:/bin"},
        cwd=output.parent,
        read_url=False,
        finite=True,
    )
    return child


@dataclass(frozen=True, slots=True)
class Share:
    name: str
    samples: int
    percent: float


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    samples: int
    self_time: list[Share]
    """Functions where the sampled CPU was spent (the innermost frame)."""
    inclusive: list[Share]
    """Functions on the stack, with everything they called (below the event loop or the
    thread's entry, which are on every stack)."""
    notifier: list[Share]
    """notifier's own functions, inclusive: where in its code the work starts."""
    components: list[Share]
    """Each sample once, by the innermost adapter of notifier's on its stack (store.py,
    kafka_events.py, twilio.py, …: what those calls cost, libraries included), else
    notifier's own code, else the library running without notifier on the stack."""
    packages: list[Share]
    """Self time by the package of the innermost frame."""
    raw_path: str


def summarise(raw: Path, top: int = 15) -> ProfileSummary:
    own: Counter[str] = Counter()
    within: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    components: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(frame) for frame in stack.split(";")]
        total += count
        innermost = frames[-1][0]
        if innermost.startswith("Runner.run "):
            # Nothing of Python's below it: uvloop's C code, polling and dispatching I/O.
            innermost = "Runner.run: the event loop itself (uvloop, C)"
        own[innermost] += count
        packages[frames[-1][1]] += count
        entry = max(
            (i for i, (name, _) in enumerate(frames) if name.startswith(_ENTRIES)), default=-1
        )
        components[_component(frames[entry + 1 :] or frames[-1:])] += count
        for name, package in set(frames[entry + 1 :]):
            within[name] += count
            if package == "notifier":
                ours[name] += count

    def shares(counter: Counter[str]) -> list[Share]:
        return [
            Share(name, samples, 100.0 * samples / total if total else 0.0)
            for name, samples in counter.most_common(top)
        ]

    return ProfileSummary(
        total,
        shares(own),
        shares(within),
        shares(ours),
        shares(components),
        shares(packages),
        str(raw),
    )


def _component(frames: list[tuple[str, str]]) -> str:
    """``frames`` from below the event loop's or thread's entry."""
    for name, package in reversed(frames):
        if package != "notifier":
            continue
        path = name.removesuffix(")").partition(" (")[2]
        if "/adapters/" in path:
            return f"adapter {path}"
        return f"notifier's own code ({path.split('/')[1].removesuffix('.py')})"
    outermost, package = frames[0]
    if outermost.startswith("Runner.run"):
        return "the event loop itself (uvloop, C)"
    if package == "aiosqlite":
        return "aiosqlite's worker threads (SQLite)"
    if package == "sqlalchemy":
        # SQLAlchemy runs a statement in a greenlet whose stack starts there.
        return "SQLAlchemy inside its greenlet (the store's statements)"
    return f"{package} (no notifier frame on the stack)"


def _name(frame: str) -> tuple[str, str]:
    """("function (module path)", package) of a py-spy frame."""
    if not frame:
        return "(a frame py-spy could not name)", "other"
    match = _FRAME.match(frame)
    if match is None:
        return frame, "other"
    path = match["path"]
    return f"{match['function']} ({path})", _package(path)


def _package(path: str) -> str:
    """notifier, sqlalchemy, aiokafka, …; the standard library as "stdlib:<module>"."""
    parts = Path(path).parts
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif any(part.startswith("python3") for part in parts):
        index = next(i for i, part in enumerate(parts) if part.startswith("python3"))
        return "stdlib:" + Path(*parts[index + 1 :]).parts[0].removesuffix(".py")
    head = parts[0] if parts else "other"
    if head.endswith(".py") and len(parts) == 1:
        # py-spy shortens stdlib paths to the bare module file.
        module = head.removesuffix(".py")
        return f"stdlib:{module}" if module in sys.stdlib_module_names else module
    return head.removesuffix(".py")
