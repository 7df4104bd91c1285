"""``python -m bench.lockstep A B``: which of two versions of notifier spends less CPU per
delivery, to within a few percent, on a machine whose speed drifts by ±20 % within the hour.

A single ``bench/run`` cannot tell a 5 % change from the drift. Here both versions run at
once, each in a process of its own, and take turns: one batch of 100 bench requests each
(``deliver_and_fail_over_all``: directory reads, plans, claims, provider calls, outcomes and
events, on SQLite, against the bench's fake providers over HTTP and the local Kafka broker),
so that both see the same minute of the machine. What it prints is the CPU per text or
email of each (inbox copies and events included) and the median of the paired batches'
ratios; an A/A run shows the noise (about ±3 % here with 80 pairs).

    .venv/bin/python -m bench.lockstep HEAD~1 .        # a commit against the working tree
    .venv/bin/python -m bench.lockstep main my-branch --batches 120

A and B are git revisions (checked out under .local/lockstep/) or ``.``, the working tree.
It needs the broker (``scripts/kafka-local start``). Not a measure of throughput: no
consumer, no pipeline, one batch at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import orjson

from bench.load import Topics
from bench.population import RequestFactory, build_directory
from bench.processes import REPO

WARM_UP_BATCHES = 5
REQUESTS_PER_BATCH = 100


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _worker(port: int, warm_up: int) -> None:
    """One version's side: set up, then a batch for every "go" line on stdin, answering
    with its CPU seconds and its texts and emails."""
    run = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"lockstep-{run}-"))
    fakes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(REPO / "bench" / "fakes.py"),
            name,
            "--port",
            str(port + n),
            stdout=subprocess.DEVNULL,
        )
        for n, name in enumerate(("twilio", "sendgrid"))
    ]
    os.environ.update(
        {
            "NOTIFIER_CONFIG_FILE": str(workdir / "absent.yaml"),
            "NOTIFIER_SECRETS_DIR": str(workdir / "absent"),
            "NOTIFIER_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/notifier.sqlite",
            "NOTIFIER_LOG_LEVEL": "WARNING",
            "NOTIFIER_TWILIO_API_BASE_URL": f"http://127.0.0.1:{port}",
            "NOTIFIER_TWILIO_ACCOUNT_SID": "AC" + "0" * 31 + "1",
            "NOTIFIER_TWILIO_AUTH_TOKEN": "bench-twilio-token",
            "NOTIFIER_SENDGRID_API_BASE_URL": f"http://127.0.0.1:{port + 1}",
            "NOTIFIER_SENDGRID_API_KEY": "SG.bench-key.bench-secret",
        }
        | Topics(f"lockstep-{run}-").env()
    )
    # The version under test: imported only now, from the PYTHONPATH its driver gave.
    from notifier.bootstrap import migrate_database, open_container
    from notifier.config import Settings
    from notifier.handlers.directory import apply_district, apply_recipient
    from notifier.handlers.follow_up import deliver_and_fail_over_all
    from notifier.wire import DistrictWire, RecipientWire, SendRequestWire

    logging.disable(logging.WARNING)
    settings = Settings()
    await migrate_database(settings)
    container = await open_container(settings)
    try:
        await container.start()
        directory = build_directory(10_000, 20, seed=7)
        for district in directory.districts:
            wire = DistrictWire.model_validate(district.wire())
            await apply_district(wire.to_domain(), container.store.directory)
        for person in directory.people:
            wire_person = RecipientWire.model_validate(person.wire())
            await apply_recipient(wire_person.to_domain(), container.store.directory)
        # The same requests, in the same order, for both versions.
        factory = RequestFactory(directory, run, seed=11)
        # As the service settles its collector after start-up (entrypoints/http.py).
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, *gc.get_threshold()[1:])

        async def batch() -> tuple[float, int]:
            requests = [
                SendRequestWire.model_validate(
                    orjson.loads(orjson.dumps(factory.make().payload))
                ).to_domain()
                for _ in range(REQUESTS_PER_BATCH)
            ]
            started = _cpu_seconds()
            reports = await deliver_and_fail_over_all(requests, container.follow_up)
            spent = _cpu_seconds() - started
            sends = sum(
                1
                for report in reports
                for event in getattr(report, "outcomes", ())
                if event.channel.value != "app"
            )
            return spent, sends

        for _ in range(warm_up):
            await batch()
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "go":
            spent, sends = await batch()
            print(f"{spent} {sends}", flush=True)
    finally:
        await container.close()
        for fake in fakes:
            fake.terminate()
            await fake.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _checkout(revision: str, n: int) -> Path | None:
    """A worktree of ``revision``; None for the working tree itself."""
    if revision == ".":
        return None
    checkout = REPO / ".local" / "lockstep" / str(n)
    _remove(checkout)
    _git("worktree", "add", "--detach", "-q", str(checkout), revision)
    return checkout


def _remove(checkout: Path | None) -> None:
    if checkout is not None and checkout.exists():
        _git("worktree", "remove", "--force", str(checkout))


def _git(*arguments: str) -> None:
    git = shutil.which("git") or sys.exit("lockstep needs git")
    subprocess.run([git, *arguments], cwd=REPO, check=True)  # noqa: S603 (our own arguments)


def _drive(revisions: list[str], batches: int, warm_up: int) -> None:
    checkouts = [_checkout(revision, n) for n, revision in enumerate(revisions)]
    try:
        _compare(revisions, [c / "src" if c else REPO / "src" for c in checkouts], batches, warm_up)
    finally:
        for checkout in checkouts:
            _remove(checkout)


def _compare(revisions: list[str], sources: list[Path], batches: int, warm_up: int) -> None:
    workers = []
    for n, source in enumerate(sources):
        environment = os.environ | {"PYTHONPATH": str(source)}
        workers.append(
            subprocess.Popen(  # noqa: S603 (this interpreter, this module)
                [
                    sys.executable,
                    "-m",
                    "bench.lockstep",
                    "--worker",
                    str(18_400 + 10 * n),
                    "--warm-up",
                    str(warm_up),
                ],
                cwd=REPO,
                env=environment,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for worker in workers:
        assert worker.stdout is not None
        while (line := worker.stdout.readline().strip()) != "ready":
            if not line and worker.poll() is not None:
                sys.exit("a worker died while setting up")
    results: list[list[tuple[float, int]]] = [[], []]
    for number in range(batches):
        # Each goes first every other time: neither always gets the warmer cache.
        for n in (0, 1) if number % 2 == 0 else (1, 0):
            worker = workers[n]
            assert worker.stdin is not None
            assert worker.stdout is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
            spent, sends = worker.stdout.readline().split()
            results[n].append((float(spent), int(sends)))
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("stop\n")
        worker.stdin.flush()
        worker.wait()
    per_delivery = [
        1000 * sum(spent for spent, _ in side) / sum(sends for _, sends in side) for side in results
    ]
    ratios = sorted(b[0] / a[0] for a, b in zip(*results, strict=True))
    print(
        f"A {revisions[0]}: {per_delivery[0]:.3f} ms of CPU per text or email; "
        f"B {revisions[1]}: {per_delivery[1]:.3f} ms; B/A {per_delivery[1] / per_delivery[0]:.3f}"
        f" (paired batches: median {ratios[len(ratios) // 2]:.3f}, quartiles "
        f"{ratios[len(ratios) // 4]:.3f}-{ratios[3 * len(ratios) // 4]:.3f}, {batches} pairs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revisions", nargs="*", help="A and B: git revisions, or . (the tree)")
    parser.add_argument("--batches", type=int, default=80, help="paired batches measured")
    parser.add_argument(
        "--warm-up",
        type=int,
        default=WARM_UP_BATCHES,
        metavar="N",
        help="batches each side runs first, unmeasured: some hundreds grow its database to "
        "make bench's size, where index and page-cache changes show",
    )
    parser.add_argument("--worker", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        import uvloop

        uvloop.run(_worker(args.worker, args.warm_up))
        return
    if len(args.revisions) != 2:
        parser.error("give two revisions, A and B")
    _drive(args.revisions, args.batches, args.warm_up)


if __name__ == "__main__":
    main()
