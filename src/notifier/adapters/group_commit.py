"""Group commit: concurrent writes of one kind joined into one transaction.

A delivery makes a few small writes (its claim, its outcome, an inbox copy); with dozens in
flight, a transaction each spends most of the database's time — and on SQLite, whose one
writer serialises them, nearly all of it — beginning and committing. Here each write waits
for the transaction that carries it: the first starts one after a turn of the loop, or
after ``linger_seconds`` where the writes come a little apart (a batch's provider answers),
and the writes that arrive meanwhile and while it runs go together.

Each caller still gets its own result, or the exception of its transaction, once that
transaction has committed, so what a caller does after ``write`` returns is as safe as
before. A batch refused because of one item's data (``isolates``) is written again item by
item, so that one bad value fails only its own write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar, cast

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class GroupCommit(Generic[ItemT, ResultT]):
    def __init__(
        self,
        write_many: Callable[[Sequence[ItemT]], Awaitable[Sequence[ResultT]]],
        *,
        isolates: Callable[[BaseException], bool],
        max_batch: int = 500,
        linger_seconds: float = 0.0,
    ) -> None:
        """``write_many`` writes the items in one transaction and returns a result per
        item, in order; ``isolates`` says whether its error may be one item's fault;
        ``linger_seconds``, how long the first write of an idle writer waits for others."""
        self._write_many = write_many
        self._isolates = isolates
        self._max_batch = max_batch
        self._linger = linger_seconds
        self._pending: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def write(self, item: ItemT) -> ResultT:
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._start_writer()
        return await future

    async def write_all(self, items: Sequence[ItemT]) -> list[ResultT]:
        """Each item as if by its own ``write``, without a task each: the results in order,
        once all are written; the first failure is raised only then."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[ResultT]] = [loop.create_future() for _ in items]
        self._pending.extend(zip(items, futures, strict=True))
        self._start_writer()
        settled = await asyncio.gather(*futures, return_exceptions=True)
        for result in settled:
            if isinstance(result, BaseException):
                raise result
        return cast(list[ResultT], settled)

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_pending())

    async def _write_pending(self) -> None:
        try:
            # At least one turn of the loop, so the writes issued alongside this one join it.
            await asyncio.sleep(self._linger)
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._write_batch(batch)
        except BaseException as error:
            # Cancelled (the loop is closing): nobody may be left waiting forever.
            for _, future in self._pending:
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()
            raise
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        try:
            results = await self._write_many([item for item, _ in batch])
        except Exception as error:
            if len(batch) > 1 and self._isolates(error):
                for entry in batch:
                    await self._write_batch([entry])
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
