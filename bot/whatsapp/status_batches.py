"""Group commit of status webhooks: one writer per process records many webhooks' statuses in
ONE transaction.

A broadcast brings three status webhooks per message (sent, delivered, read). One transaction
each made the commit rate the bound of the whole path (84-100 webhooks/s on SQLite on a loaded
2-core machine, against 240/s at 80 sends/s), and each webhook took a worker thread and the
database's write lock, so customers' own messages queued behind them (docs/benchmarks.md).

Here a webhook handler hands its statuses to the process's `StatusWriter` and awaits the commit
of the batch they joined; the writer takes whatever is queued when its previous commit ends (up
to `max_statuses`, never splitting one webhook), records it in one transaction in its own thread,
then resolves every waiter: all answer 200 once the batch is durably committed. If the database is
unavailable every webhook of that batch answers non-200 and WhatsApp retries it; if the batch
failed otherwise (one webhook's data refused), its webhooks are committed one by one, so only the
one that fails answers non-200. Recording a status is
idempotent and forward-only (bot/whatsapp/inbox.py), so a retry, or sent/delivered/read of one
message in one batch in any order, ends in the same state as one webhook at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bot.whatsapp.inbound import StatusUpdate

logger = logging.getLogger(__name__)

MAX_STATUSES = 300  # per transaction: a commit of a few hundred rows stays in the tens of ms


class WriterClosed(RuntimeError):
    """The writer ended (cancelled, or its event loop is gone) before the batch was committed: the
    webhook is answered non-200 and WhatsApp delivers it again."""


@dataclass(frozen=True, slots=True)
class Waiter:
    statuses: Sequence[StatusUpdate]
    done: asyncio.Future[None]


def next_batch(queued: Sequence[Waiter], max_statuses: int) -> int:
    """Pure: how many of the queued webhooks (from the front) the next transaction takes. Whole
    webhooks only; at least one, even a webhook larger than the cap on its own."""
    taken = total = 0
    for waiter in queued:
        if taken and total + len(waiter.statuses) > max_statuses:
            break
        taken += 1
        total += len(waiter.statuses)
    return taken


def unavailable(error: Exception) -> bool:
    """Pure: the database itself failed (unreachable, disconnected, locked past the busy timeout),
    not one webhook's data: retrying the batch's webhooks one by one would only wait again."""
    return isinstance(error, (OperationalError, InterfaceError)) or bool(
        isinstance(error, DBAPIError) and error.connection_invalidated
    )


def in_lock_order(statuses: Sequence[StatusUpdate]) -> list[StatusUpdate]:
    """Pure: the batch sorted by message id, each message's statuses in arrival order (a stable
    sort). Two replicas committing batches that touch the same messages then lock their rows in
    the same order, so PostgreSQL never has to break a deadlock between them (a 500 for a whole
    batch); which message is written first changes nothing else."""
    return sorted(statuses, key=lambda status: status.message_id)


class StatusWriter:
    """One per process (per event loop). `record` is called from the webhook handlers;
    `commit(statuses)` is the blocking transaction, run in the writer's own thread so that it
    never waits for (or holds) one of the threads customers' messages use (bot.db.run_sync)."""

    def __init__(
        self,
        commit: Callable[[Sequence[StatusUpdate]], None],
        max_statuses: int = MAX_STATUSES,
    ) -> None:
        self._commit = commit
        self._max = max_statuses
        self._queue: list[Waiter] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._closing = False
        self.commits = 0  # transactions committed (the tests count them)
        self.writing = 0  # webhooks in the transaction being committed right now

    async def record(self, statuses: Sequence[StatusUpdate]) -> None:
        """Return once `statuses` are committed; raise what the batch's commit raised."""
        wake = self._ensure_running()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(Waiter(tuple(statuses), done))
        wake.set()
        # A cancelled handler (the client went away) leaves its statuses in the batch: recording
        # them anyway is harmless, WhatsApp's retry is a no-op then.
        await done

    def _ensure_running(self) -> asyncio.Event:
        """The running loop's wake-up event, with a writer waiting on it."""
        loop = asyncio.get_running_loop()
        wake = self._wake
        if self._loop is not loop or wake is None:
            # A new loop (tests, a reload): what belonged to the old one cannot be awaited here.
            self._fail_all(WriterClosed("the event loop changed"))
            wake = asyncio.Event()
            self._loop, self._wake, self._task = loop, wake, None
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="status-writer")
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(wake), name="status-writer")
            self._task.add_done_callback(self._ended)
        return wake

    async def _run(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            while self._queue:
                await self._write_one_batch()
            if self._closing and not self._queue:
                return  # nothing awaited between the check and here: no webhook is left behind

    async def _write_one_batch(self) -> None:
        taken = next_batch(self._queue, self._max)
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        self.writing = len(batch)
        try:
            # Everything after the batch left the queue is in here: whatever fails, its waiters
            # get an answer.
            statuses = in_lock_order([status for waiter in batch for status in waiter.statuses])
            await asyncio.get_running_loop().run_in_executor(self._thread, self._commit, statuses)
        except BaseException as error:
            # After a cancellation every webhook of the batch answers non-200 and the writer ends
            # (`_ended` says so); after an Exception it answers them below and goes on.
            if not isinstance(error, Exception):
                self._fail(batch, WriterClosed("stopped mid-batch"))
                raise
            logger.exception("could not record a batch of %d status webhook(s)", len(batch))
            if len(batch) > 1 and not unavailable(error):
                # One webhook's statuses may be what the database refuses: alone, the others are
                # recorded, and a webhook that always fails cannot fail every batch it joins.
                await self._write_one_by_one(batch)
            else:
                self._fail(batch, error)
            return
        finally:
            self.writing = 0
        self.commits += 1
        self._succeed(batch)

    async def _write_one_by_one(self, batch: Sequence[Waiter]) -> None:
        loop = asyncio.get_running_loop()
        for waiter in batch:
            try:
                await loop.run_in_executor(self._thread, self._commit, in_lock_order(waiter.statuses))
            except Exception as error:
                logger.exception("could not record a status webhook of %d status(es)", len(waiter.statuses))
                self._fail([waiter], error)
                continue
            self.commits += 1
            self._succeed([waiter])

    @staticmethod
    def _succeed(batch: Sequence[Waiter]) -> None:
        for waiter in batch:
            if not waiter.done.done():
                waiter.done.set_result(None)

    @staticmethod
    def _fail(batch: Sequence[Waiter], error: BaseException) -> None:
        for waiter in batch:
            if not waiter.done.done():
                waiter.done.set_exception(error)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The writer must never stop silently: whatever ended it fails the waiters, is logged,
        and the next `record` starts a new writer."""
        if task.cancelled():
            self._fail_all(WriterClosed("the status writer was cancelled"))
            return
        error = task.exception()
        if error is not None:
            logger.error("the status writer stopped", exc_info=error)
            self._fail_all(error if isinstance(error, Exception) else WriterClosed(str(error)))

    def _fail_all(self, error: Exception) -> None:
        queued, self._queue = self._queue, []
        self._fail(queued, error)

    async def close(self) -> None:
        """At server stop: commit what is queued, then end the writer and its thread. A webhook
        arriving meanwhile is still committed (a server stopping answers what it has accepted);
        one arriving later starts a new writer (a server started again in this process, tests)."""
        self._closing = True
        task, wake = self._task, self._wake
        if (
            task is not None
            and wake is not None  # set with the task: a writer is waiting on it
            and not task.done()
            and task.get_loop() is asyncio.get_running_loop()
        ):
            wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=30)
            except asyncio.TimeoutError:
                logger.error("the status writer did not finish within 30 s of the server stopping")
                task.cancel()  # its waiters answer non-200 (`_ended`): WhatsApp retries them
        self._closing = False
        if self._task is None or self._task.done():  # no webhook started a new writer meanwhile
            self._task = None
            thread, self._thread = self._thread, None
            if thread is not None:
                thread.shutdown(wait=False)  # idle: the writer that used it has ended

    @property
    def queued(self) -> int:
        """Webhooks waiting for the next transaction (not the one being committed)."""
        return len(self._queue)
