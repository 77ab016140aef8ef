"""The local test inbox's SMTP server, run as its own process (no Qt, plain Python).

    python -m mailgui.model.inbox_server --dir DIR [--host 127.0.0.1] [--port 0] [--ack]

(or ``mailgui --run-inbox-server DIR ...`` in the frozen app, where ``sys.executable`` is the
mailgui binary). It listens with its own lean SMTP loop (``_Session``: an asyncio protocol that
parses commands from the bytes received, with pipelining, and finds the end of DATA with one C
search per chunk; ``--engine aiosmtpd`` uses aiosmtpd instead), stores what arrives in batches
(group commit: the messages that came in while the previous batch was being written are
appended to ``ingest.journal`` in one write; their "250"s go out after it, and the journal
is synced to the disk within ``SYNC_AFTER``, or with ``--sync-each`` before the "250"s; their
``.eml``/``.json`` files are written by the idle thread after the burst, see
``mailgui.model.inbox``), and speaks a line protocol on stdout:

    READY <port>            once, when it listens
    {"id": ..., "at": N}    one JSON object (an InboxMessage) per stored message; "at": where
                            its record is in the journal (the app reads it there until its
                            .eml is written)
    REMOVED <id> ...        messages the retention limits removed (oldest first)
    CHECKED <id>            the local checks of a message are in ``<id>.checks.json``

and reads ``ack <id> [<id> ...]``, ``limits <max messages> <max bytes>`` (applied at once),
``rescan`` (the app deleted messages: read the folder again before the next limit check),
``forget <id> ...`` (the app deleted these: their files go, the journal records it, and those
still to be written are not),
``check <id>`` (check this one next: it is being shown) and ``checks <json>`` (the checks'
settings: pasted DKIM keys, DNS or not; see ``mailgui.model.checks.CheckSettings``).

The local checks (client support, lint, DKIM) run on a thread of their own (``_Checker``),
one message at a time and only while no DATA is being received: they never stand between a
client and its "250", and a burst of mail is checked once it is over. The same thread first
writes the files of the burst's messages (a few at a time, a new burst first), then works out
the viewer's details of the small ones (``<id>.details.json``).
The JSON lines of one batch go out in one write, and the client's "250" is sent once the batch
is durable and (with ``--ack``) acknowledged.

With ``--ack``, the reply to the client waits (up to ACK_TIMEOUT) until ``ack <id>`` comes back
on stdin, so that when the client sees "250 ... stored as <id>" the app already knows the
message. It exits on SIGTERM/SIGINT, and when stdin reaches end of file: a parent that is killed
closes the pipe, so this process never outlives the app.

Why a process: a message is parsed, measured and folded for the viewer here; in the GUI's
process that work held the GIL for seconds while a big attachment arrived, and the window
froze. DATA is read in big chunks, so 100 MB arrive in about the time the bytes take.

Why not aiosmtpd: its per-command coroutines and its reader cost more per message than the
whole store does (a do-nothing aiosmtpd handler takes about 1,200 messages/s here from
``smtp-source``, which opens a connection per message); ``bench/inbox_ingest.py`` measures
both side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, cast

from aiosmtpd.smtp import SMTP

from mailgui.model.inbox import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_MESSAGES,
    DETAILS_EAGER,
    JOURNAL_MAX,
    InboxMessage,
    InboxStore,
)
from mailgui.model.inbox_details import compute_details

__all__ = ["ACK_TIMEOUT", "InboxSMTP", "main"]

ACK_TIMEOUT = 5.0
DATA_BUFFER = 4 << 20  # bytes of DATA the reader may buffer (the transport pauses at twice that)
CHECK_IDLE = 0.3  # seconds without DATA before the checker takes the next message
CHECKPOINT_IDLE = 0.5  # seconds without a batch before the journal is checkpointed
# A batch's "250"s go out once its records are in the journal file (the kernel has them: a
# crash of mailgui or of this process loses nothing); the journal is synced to the disk at
# most this long after (and when the server stops or goes idle), so a power loss or a crash
# of the kernel can lose the mail of this last moment. One fdatasync per batch was 26 % of
# this process's CPU and held every client for it: 1,100 messages/s against 1,800 (bench/
# inbox_ingest.py). ``--sync-each`` gives the old promise back. (SQLite in WAL mode with
# synchronous=NORMAL, the usual setting, makes the same trade; Mailpit's default database
# is a temporary one, gone when it stops.)
SYNC_AFTER = 0.2
BATCH_MAX = 256  # messages in one group commit at most
FILES_AT_ONCE = 32  # messages whose files the idle thread writes between two looks at the wire
LINE_LIMIT = 64 << 10  # bytes of a command line without its end
HOSTNAME = "mailgui-inbox"
IDENT = "mailgui local test inbox"


class InboxSMTP(SMTP):
    """aiosmtpd's SMTP with a DATA phase read in large chunks instead of line by line.

    The end of the data is a line holding just ".": ``readuntil(b".\\r\\n")`` finds each
    candidate with one C search over the buffered bytes, and a candidate counts when it
    starts a line. Bytes after the final dot (pipelined commands) stay in the reader.
    """

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's naming
        checker = getattr(self.event_handler, "checker", None)
        if checker is not None:
            checker.receiving(True)  # the checks wait while mail comes in
        try:
            await self._data(arg)
        finally:
            if checker is not None:
                checker.receiving(False)

    async def _data(self, arg: str) -> None:
        reader = getattr(self, "_reader", None)
        if not isinstance(reader, asyncio.StreamReader) or not hasattr(reader, "_limit"):
            await super().smtp_DATA(arg)  # an aiosmtpd/asyncio we don't know: the slow way
            return
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = await _read_data(reader)
        if self.data_size_limit and len(data) > self.data_size_limit:
            self._set_post_data_state()
            await self.push("552 Error: Too much mail data")
            return
        self.envelope.content = data
        self.envelope.original_content = data
        status = await self.event_handler.handle_DATA(self, self.session, self.envelope)
        self._set_post_data_state()
        await self.push(status)


async def _read_data(reader: asyncio.StreamReader) -> bytes:
    """The DATA content up to the line ".", dot-unstuffed (RFC 5321 4.5.2)."""
    limit = reader._limit  # noqa: SLF001 - no public way to let readuntil look further
    reader._limit = max(limit, DATA_BUFFER)  # noqa: SLF001
    chunks: list[bytes] = []  # joined once at the end (a growing bytearray copies over and over)
    tail = b"\r\n"  # the last two bytes so far: the DATA command's line end to begin with
    try:
        while True:
            try:
                chunk = await reader.readuntil(b".\r\n")
            except asyncio.LimitOverrunError as exc:
                chunk = await reader.read(exc.consumed)  # no end in these bytes: keep them
            else:
                before = chunk[-5:-3] if len(chunk) >= 5 else (tail + chunk[:-3])[-2:]
                if before == b"\r\n":  # "." alone on its line: the end
                    chunks.append(chunk[:-3])
                    break
            chunks.append(chunk)
            tail = chunk[-2:] if len(chunk) >= 2 else (tail + chunk)[-2:]
    finally:
        reader._limit = limit  # noqa: SLF001
    data = b"".join(chunks)
    chunks.clear()
    if data.startswith(b"."):
        data = data[1:]
    if b"\r\n." in data:
        data = data.replace(b"\r\n.", b"\r\n")
    return data


class _Protocol:
    """stdout lines out, ``ack <id> ...`` lines in; stdin's end of file stops the server."""

    def __init__(self, out: BinaryIO, loop: asyncio.AbstractEventLoop, *, ack: bool,
                 store: InboxStore | None = None) -> None:
        self.out = out
        self.store = store
        self.loop = loop
        self.ack = ack
        self.lock = threading.Lock()
        self.waiting: dict[str, Callable[[], None]] = {}  # id -> what to do once acknowledged
        self.closed = asyncio.Event()
        self.checker: _Checker | None = None
        self.ingest: _Ingest | None = None
        self._stdin_pending = b""

    def say(self, line: str) -> None:
        self.say_lines([line])

    def say_lines(self, lines: list[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        with self.lock:
            self.out.write(data)
            self.out.flush()

    def announce_batch(self, items: list[InboxMessage], done: Callable[[InboxMessage], None],
                       spans: list[int] | None = None) -> None:
        """One JSON line per message, in one write (with ``"at"``: where its record is in the
        journal, for the app to read it from there until its file is written); ``done(item)``
        once the app acknowledged it (at once without ``--ack``; after ACK_TIMEOUT at the
        latest)."""
        try:
            lines = []
            for index, item in enumerate(items):
                fields = item.to_dict()
                if spans is not None and spans[index] >= 0:
                    fields["at"] = spans[index]
                lines.append(json.dumps(fields, ensure_ascii=True))
            self.say_lines(lines)
        except (OSError, ValueError):
            for item in items:
                done(item)
            return
        if not self.ack:
            for item in items:
                done(item)
            return
        pending = {item.id for item in items}

        def one(item: InboxMessage) -> Callable[[], None]:
            def acked() -> None:
                if item.id in pending:
                    pending.discard(item.id)
                    self.waiting.pop(item.id, None)
                    done(item)
            return acked

        callbacks = [one(item) for item in items]
        for item, acked in zip(items, callbacks, strict=True):
            self.waiting[item.id] = acked

        def timed_out() -> None:
            for acked in callbacks:
                acked()

        self.loop.call_later(ACK_TIMEOUT, timed_out)

    def removed(self, ids: list[str]) -> None:
        if ids:
            with contextlib.suppress(OSError, ValueError):
                self.say("REMOVED " + " ".join(ids))

    def _acked(self, ids: list[str]) -> None:
        for msg_id in ids:
            acked = self.waiting.get(msg_id)
            if acked is not None:
                acked()

    def read_in_loop(self, fd: int) -> bool:
        """Read stdin in the event loop (no thread to wake, no GIL to share while mail comes
        in); False where the loop can't watch a pipe (Windows): then ``watch_stdin``."""
        if sys.platform == "win32":
            return False
        try:
            os.set_blocking(fd, False)
            self.loop.add_reader(fd, self._stdin_ready, fd)
        except (OSError, NotImplementedError, ValueError):
            with contextlib.suppress(OSError):
                os.set_blocking(fd, True)
            return False
        self._stdin_pending = b""
        return True

    def _stdin_ready(self, fd: int) -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.remove_reader(fd)
            self.closed.set()
            return
        *lines, self._stdin_pending = (self._stdin_pending + chunk).split(b"\n")
        acks = self._commands(lines)
        if acks:
            self._acked(acks)

    def _commands(self, lines: list[bytes]) -> list[str]:
        """Act on the command lines; return the ids acknowledged (for the loop to handle)."""
        acks: list[str] = []
        for raw in lines:
            words = raw.decode("utf-8", "replace").split()
            if self.checker is not None and len(words) == 2 and words[0] == "check":
                self.checker.add(words[1], first=True)
            elif self.checker is not None and words[:1] == ["checks"]:
                self.checker.set_settings(raw.decode("utf-8", "replace")[6:])
            elif len(words) >= 2 and words[0] == "ack":
                acks += words[1:]
            elif self.store is not None and words[:1] == ["forget"]:
                self.store.forget(words[1:])  # deleted by the app (files and journal)
                self.store.rescan()
                if self.ingest is not None:
                    self.loop.call_soon_threadsafe(self.ingest.checkpoint_soon, 0.0)
            elif self.store is not None and words[:1] == ["rescan"]:
                self.store.rescan()
                if self.ingest is not None:  # what was deleted stays deleted
                    self.loop.call_soon_threadsafe(self.ingest.checkpoint_soon, 0.0)
            elif (self.store is not None and len(words) == 3 and words[0] == "limits"
                  and words[1].isdigit() and words[2].isdigit()):
                self.store.set_limits(int(words[1]), int(words[2]))
                self.removed(self.store.enforce())
        return acks

    def watch_stdin(self, fd: int) -> None:
        """In a thread: read acks until end of file, then stop the server. (``os.read`` on the
        descriptor, not ``sys.stdin``: a daemon thread blocked inside a buffered reader can
        abort the interpreter's shutdown.)"""
        pending = b""
        try:
            while chunk := os.read(fd, 65536):
                *lines, pending = (pending + chunk).split(b"\n")
                acks = self._commands(lines)
                if acks:
                    self.loop.call_soon_threadsafe(self._acked, acks)
        except (OSError, RuntimeError):
            pass
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self.loop.call_soon_threadsafe(self.closed.set)


class _Checker:
    """The work on received mail that is off the ingest path: a daemon thread that, while no
    DATA is being received and CHECK_IDLE after it, first works out the viewer's details of
    the messages stored without them (small ones: ``<id>.details.json``), then runs the local
    checks, one message at a time (those being shown first: ``check <id>``), also waiting
    between two checks of one message; it writes ``<id>.checks.json`` and says ``CHECKED
    <id>``. Messages stored without checks (by an older mailgui, or before a restart) are
    checked too, newest first, after the new ones. ``checks=False``: details only."""

    def __init__(self, store: InboxStore, protocol: _Protocol, *, checks: bool = True) -> None:
        self.store = store
        self.protocol = protocol
        self.checks = checks
        self.cond = threading.Condition()
        self.queue: deque[str] = deque()
        self.details: deque[str] = deque()  # ids still without details, oldest first
        self.busy = 0  # DATA phases under way
        self.last = time.monotonic()  # when the last DATA ended (the start counts as one)
        self.settings_json = ""
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="inbox-checks", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    def receiving(self, started: bool) -> None:
        """A DATA phase starts or ends (the loop's thread, twice per message: no lock, no
        wake-up; the thread looks again within CHECK_IDLE)."""
        self.busy += 1 if started else -1
        if not started:
            self.last = time.monotonic()

    def add(self, msg_id: str, *, first: bool = False) -> None:
        if not self.checks:
            return
        with self.cond:
            if msg_id in self.queue:
                self.queue.remove(msg_id)
            (self.queue.appendleft if first else self.queue.append)(msg_id)
            self.cond.notify_all()

    def add_many(self, ids: list[str], *, details: list[str]) -> None:
        """New arrivals: to be checked, and those in ``details`` to get their details first."""
        with self.cond:
            idle = not self.queue and not self.details  # (else it is awake, or looks again)
            self.details.extend(details)
            if self.checks:
                self.queue.extend(ids)
            if idle:  # one wake-up per burst, not one per batch
                self.cond.notify_all()

    def set_settings(self, text: str) -> None:
        with self.cond:
            self.settings_json = text.strip()

    def wait_idle(self) -> None:
        """Return once no mail is coming in (or the server stops)."""
        with self.cond:
            while not self.stopped:
                quiet = time.monotonic() - self.last
                if not self.busy and quiet >= CHECK_IDLE:
                    return
                self.cond.wait(CHECK_IDLE if self.busy else CHECK_IDLE - quiet)

    def _next(self) -> tuple[str, str] | None:
        with self.cond:
            while not (self.queue or self.details or self.stopped or self.store.unwritten):
                self.cond.wait()
            if self.stopped:
                return None
            if self.store.unwritten:
                return "files", ""
            if self.details:
                return "details", self.details.popleft()
            return "check", self.queue.popleft()

    def _details(self, msg_id: str) -> None:
        if self.store.details_path(msg_id).exists():
            return
        try:
            data = self.store.read(msg_id)
        except FileNotFoundError:  # removed since (retention, or the app)
            return
        details = compute_details(data, msg_id)
        if self.store.path(msg_id).exists():
            self.store.save_details(details)

    def _files(self) -> None:
        """Write the files of what the journal alone holds, a few at a time (a new burst
        comes first), then have the journal checkpointed."""
        try:
            self.store.materialise(FILES_AT_ONCE)
        except OSError as exc:
            print(f"mailgui local inbox: could not write the messages' files: {exc}",
                  file=sys.stderr, flush=True)
            with self.cond:
                self.cond.wait(1.0)
            return
        if not self.store.unwritten and self.protocol.ingest is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: stopping anyway
                self.protocol.loop.call_soon_threadsafe(self.protocol.ingest.checkpoint_soon,
                                                        0.0)

    def _run(self) -> None:
        # imported here, not at start: the server listens at once, lxml loads behind
        from mailgui.model.checks import CheckSettings, check_stored, checks_path

        if self.checks:
            with contextlib.suppress(OSError):
                backlog = [m.id for m in reversed(self.store.list())
                           if not checks_path(self.store.folder, m.id).exists()]
                with self.cond:
                    self.queue.extend(i for i in backlog if i not in self.queue)
        while (job := self._next()) is not None:
            what, msg_id = job
            self.wait_idle()
            if what == "files":
                self._files()
                continue
            if what == "details":
                try:
                    self._details(msg_id)
                except Exception as exc:  # noqa: BLE001 - the viewer works them out itself
                    print(f"mailgui local inbox: no details for {msg_id}: {exc!r}",
                          file=sys.stderr, flush=True)
                continue
            with self.cond:
                text = self.settings_json
            try:
                settings = CheckSettings.from_json(json.loads(text)) if text else CheckSettings()
            except ValueError:
                settings = CheckSettings()
            try:
                report = check_stored(self.store.folder, msg_id, settings,
                                      between=self.wait_idle)
            except Exception as exc:  # noqa: BLE001 - one message must not stop the checks
                print(f"mailgui local inbox: could not check {msg_id}: {exc!r}",
                      file=sys.stderr, flush=True)
                continue
            if report is not None and not self.stopped:
                with contextlib.suppress(OSError, ValueError):
                    self.protocol.say(f"CHECKED {msg_id}")


_Arrival = tuple[str, list[str], bytes, str, Callable[[str], None]]


def _sync_failed(exc: BaseException) -> None:
    print(f"mailgui local inbox: could not sync its journal to the disk: {exc}",
          file=sys.stderr, flush=True)


class _Ingest:
    """Group commit. Messages whose DATA is complete wait in ``pending``; while one batch is
    being written (on the writer thread: journal, one sync, files), the next gathers. Once a
    batch is durable it is announced (one write of JSON lines) and each client gets its reply
    when the app acknowledged its message. The journal is checkpointed when the server has
    been idle for CHECKPOINT_IDLE, when the app deleted messages, and when it stops."""

    def __init__(self, store: InboxStore, protocol: _Protocol, checker: _Checker | None,
                 loop: asyncio.AbstractEventLoop, *, sync_each: bool = False) -> None:
        self.store = store
        self.protocol = protocol
        self.checker = checker
        self.loop = loop
        self.sync_each = sync_each  # each batch synced before its 250s (else SYNC_AFTER)
        self.pending: list[_Arrival] = []
        self.writing = False
        self.writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="inbox-sync")
        self._checkpoint_timer: asyncio.TimerHandle | None = None
        self._sync_timer: asyncio.TimerHandle | None = None
        self._syncing = False  # a background sync is on the writer thread
        self._unsynced = False  # appended to the journal since the last background sync began
        self.dirty = False

    def submit(self, mail_from: str, rcpt_tos: list[str], data: bytes, peer: str,
               reply: Callable[[str], None]) -> None:
        self.pending.append((mail_from, rcpt_tos, data, peer, reply))
        if not self.writing:
            self.writing = True
            # what else arrives in this turn of the loop joins the batch (one write to the
            # journal, one announcement to the app)
            self.loop.call_soon(self._write_next)

    def _write_next(self) -> None:
        batch, self.pending = self.pending[:BATCH_MAX], self.pending[BATCH_MAX:]
        if not batch:
            self.writing = False
            self.checkpoint_soon(CHECKPOINT_IDLE)
            return
        self.writing = True
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
            self._checkpoint_timer = None
        # on this thread (no other thread competes for the GIL): the journal appended, its
        # sync started on the writer thread, the files written while the sync runs
        try:
            stored = self.store.begin_batch([(f, r, d, p) for f, r, d, p, _reply in batch])
        except Exception as exc:  # noqa: BLE001 - every client gets an answer
            self._failed(batch, exc)
            self._write_next()
            return
        spans = [span[0] for span in stored.spans]
        if not self.sync_each:
            try:
                self.store.write_batch(stored)
            except Exception as exc:  # noqa: BLE001
                self._failed(batch, exc)
                self.loop.call_soon(self._write_next)
                return
            self._unsynced = True
            self._sync_soon()
            self._published(batch, stored.items, spans)
            return
        future = self.loop.run_in_executor(self.writer, self._sync)
        try:
            self.store.write_batch(stored)
        except Exception as exc:  # noqa: BLE001
            error = exc
            future.add_done_callback(lambda _f: (self._failed(batch, error),
                                                 self._write_next()))
            return
        future.add_done_callback(lambda f: self._written(batch, stored.items, spans, f))

    def _sync_soon(self) -> None:
        if self._sync_timer is None and not self._syncing:
            self._sync_timer = self.loop.call_later(SYNC_AFTER, self._sync_background)

    def _sync_background(self) -> None:
        self._sync_timer = None
        self._syncing = True
        self._unsynced = False
        future = self.loop.run_in_executor(self.writer, self._sync)

        def done(f: asyncio.Future) -> None:
            self._syncing = False
            exc = f.exception()
            if exc is not None:
                _sync_failed(exc)
                self._unsynced = True
            if self._unsynced:  # failed, or appended to while it ran: once more
                self._sync_soon()

        future.add_done_callback(done)

    def _sync(self) -> None:
        self.store.sync_journal()
        if self.store.unwritten_bytes > JOURNAL_MAX:
            # mail without a pause: the journal's backlog gets its files a few at a time
            # here, so that it stays bounded (otherwise the idle thread does it)
            self.store.materialise(FILES_AT_ONCE)

    @staticmethod
    def _failed(batch: list[_Arrival], exc: BaseException) -> None:
        text = exc.strerror or str(exc) if isinstance(exc, OSError) else repr(exc)
        for *_args, reply in batch:
            reply(f"451 4.3.0 mailgui could not store the message: {text}")

    def _written(self, batch: list[_Arrival], items: list[InboxMessage], spans: list[int],
                 future: asyncio.Future) -> None:
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - not durable: no "250"
            self.dirty = True
            self._failed(batch, exc)
            self._write_next()
            return
        self._published(batch, items, spans)

    def _published(self, batch: list[_Arrival], items: list[InboxMessage],
                   spans: list[int]) -> None:
        """The batch is stored: the app hears of it, its clients get their "250"s."""
        self.dirty = True
        try:
            removed = self.store.enforce()
        except OSError:  # a file that can't be removed now goes at a later arrival
            removed = []
        self.loop.call_soon(self._write_next)  # the next batch, once this one is acknowledged
        replies = {item.id: arrival[4] for item, arrival in zip(items, batch, strict=True)}
        self.protocol.announce_batch(
            items, lambda item: replies.pop(item.id)(f"250 2.0.0 Ok: stored as {item.id}"),
            spans)
        self.protocol.removed(removed)
        if self.checker is not None:
            self.checker.add_many([i.id for i in items],
                                  details=[i.id for i in items if i.size < DETAILS_EAGER])

    def checkpoint_soon(self, delay: float) -> None:
        if self._checkpoint_timer is not None:
            self._checkpoint_timer.cancel()
        self._checkpoint_timer = self.loop.call_later(delay, self._checkpoint)

    def _checkpoint(self) -> None:
        self._checkpoint_timer = None
        if self.writing or self.store.unwritten:  # busy again, or files still to write
            return
        self.dirty = False
        self.loop.run_in_executor(self.writer, self._checkpoint_now)

    def _sync_quietly(self) -> None:
        try:
            self.store.sync_journal()
        except OSError as exc:
            _sync_failed(exc)

    def _checkpoint_now(self) -> None:
        try:
            self.store.checkpoint()
        except OSError as exc:
            print(f"mailgui local inbox: could not sync the inbox: {exc}", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        """Sync, checkpoint and stop the writer (at shutdown; waits for the batch being
        written)."""
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        self.writer.submit(self._sync_quietly)
        self.writer.submit(self._checkpoint_now)
        self.writer.shutdown(wait=True)


class _Session(asyncio.Protocol):
    """One SMTP connection, parsed from the bytes as they come: commands by line (pipelined
    ones answered in one write), DATA by searching each chunk for the final dot. While a
    message is being stored the rest of what the client sent waits, so replies keep their
    order."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.replies: list[bytes] = []
        self.helo = ""
        self.mail_from: str | None = None
        self.rcpt_tos: list[str] = []
        self.in_data = False
        self.data_parts: list[bytes] = []
        self.data_size = 0
        self.data_tail = b"\r\n"
        self.waiting = False  # a message is being stored: its reply comes first
        self.closing = False
        self.paused = False
        self.peer = ""

    # -- asyncio -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's TCPTransport is no subclass of asyncio.Transport, but is one in all else)
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        self.server.sessions.add(self)
        transport.write(f"220 {HOSTNAME} ESMTP {IDENT}\r\n".encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.sessions.discard(self)
        if self.in_data:
            self.in_data = False
            self.server.receiving(False)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.in_data and not self.waiting:
            self._data_chunk(data)
        else:
            self.buffer += data
        if not self.waiting:
            self._process()
        self._flow()

    # -- the parser ----------------------------------------------------------------------------

    def _flow(self) -> None:
        transport = self.transport
        if transport is None:
            return
        big = len(self.buffer) > DATA_BUFFER
        if big and not self.paused:
            transport.pause_reading()
            self.paused = True
        elif not big and self.paused:
            transport.resume_reading()
            self.paused = False

    def _process(self) -> None:
        buffer = self.buffer
        while not self.waiting and not self.closing and self.transport is not None:
            if self.in_data:
                if buffer:
                    data = bytes(buffer)
                    buffer.clear()
                    self._data_chunk(data)
                    continue
                break
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > LINE_LIMIT:
                    buffer.clear()
                    self._reply("500 Error: line too long")
                break
            line = bytes(buffer[:end]).rstrip(b"\r")
            del buffer[:end + 1]
            self._command(line)
        self._flush()

    def _flush(self) -> None:
        if self.replies and self.transport is not None:
            self.transport.write(b"".join(self.replies))
        self.replies.clear()
        if self.closing and self.transport is not None:
            self.transport.close()

    def _reply(self, text: str) -> None:
        self.replies.append(text.encode("utf-8", "surrogateescape") + b"\r\n")

    def _data_chunk(self, data: bytes) -> None:
        """Add DATA bytes; at the line "." finish the message (the rest goes back to the
        buffer: pipelined commands)."""
        parts = self.data_parts
        # the end may straddle chunks: search the last 4 bytes received before this one too
        # (at the start, the DATA command's own line end)
        tail = self.data_tail
        joined = tail + data
        at = joined.find(b"\r\n.\r\n")
        if at < 0:
            parts.append(data)
            self.data_size += len(data)
            self.data_tail = joined[-4:]
            return
        cut = at + 2 - len(tail)  # where the content ends in ``data``: before it when < 0
        if cut >= 0:
            parts.append(data[:cut])
            content = b"".join(parts)
        else:
            content = b"".join(parts)[:cut] if parts else b""
        rest = data[at + 5 - len(tail):]
        parts.clear()
        self._data_end(content, rest)

    def _data_end(self, content: bytes, rest: bytes) -> None:
        self.in_data = False
        self.data_size = 0
        self.server.receiving(False)
        if content.startswith(b"."):
            content = content[1:]
        if b"\r\n." in content:
            content = content.replace(b"\r\n.", b"\r\n")
        if rest:
            self.buffer[:0] = rest
        mail_from, rcpt_tos = self.mail_from or "", list(self.rcpt_tos)
        self.mail_from, self.rcpt_tos = None, []
        self.waiting = True
        self.server.ingest.submit(mail_from, rcpt_tos, content, self.peer, self._stored)

    def _stored(self, reply: str) -> None:
        self.waiting = False
        self._reply(reply)
        if self.transport is not None:
            self._process()
            self._flow()

    def _command(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "surrogateescape")
        verb, _, arg = line.partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        handler = _COMMANDS.get(verb)
        if handler is None:
            self._reply(f'500 Error: command "{verb}" not recognized' if verb
                        else "500 Error: bad syntax")
            return
        handler(self, arg)

    # -- the commands --------------------------------------------------------------------------

    def smtp_helo(self, arg: str) -> None:
        if not arg:
            self._reply("501 Syntax: HELO hostname")
            return
        self.helo, self.mail_from, self.rcpt_tos = arg, None, []
        self._reply(f"250 {HOSTNAME}")

    def smtp_ehlo(self, arg: str) -> None:
        if not arg:
            self._reply("501 Syntax: EHLO hostname")
            return
        self.helo, self.mail_from, self.rcpt_tos = arg, None, []
        self.replies.append(
            f"250-{HOSTNAME}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-PIPELINING\r\n"
            "250 HELP\r\n".encode())

    def smtp_mail(self, arg: str) -> None:
        if not self.helo:
            self._reply("503 Error: send HELO first")
            return
        if self.mail_from is not None:
            self._reply("503 Error: nested MAIL command")
            return
        address, params = _path(arg, "FROM:")
        if address is None:
            self._reply("501 Syntax: MAIL FROM: <address>")
            return
        for param in params:
            name, _, value = param.partition("=")
            name = name.upper()
            if name == "BODY" and value.upper() in ("7BIT", "8BITMIME"):
                continue
            if name == "SMTPUTF8" and not value or name == "SIZE" and value.isdigit():
                continue
            self._reply("555 MAIL FROM parameters not recognized or not implemented")
            return
        self.mail_from = address
        self._reply("250 OK")

    def smtp_rcpt(self, arg: str) -> None:
        if not self.helo:
            self._reply("503 Error: send HELO first")
            return
        if self.mail_from is None:
            self._reply("503 Error: need MAIL command")
            return
        address, params = _path(arg, "TO:")
        if address is None:
            self._reply("501 Syntax: RCPT TO: <address>")
            return
        if params:
            self._reply("555 RCPT TO parameters not recognized or not implemented")
            return
        self.rcpt_tos.append(address)
        self._reply("250 OK")

    def smtp_data(self, arg: str) -> None:
        if not self.helo:
            self._reply("503 Error: send HELO first")
        elif not self.rcpt_tos:
            self._reply("503 Error: need RCPT command")
        elif arg:
            self._reply("501 Syntax: DATA")
        else:
            self._reply("354 End data with <CR><LF>.<CR><LF>")
            self._flush()  # the client may wait for it (no pipelining past DATA)
            self.in_data = True
            self.data_size = 0
            self.data_tail = b"\r\n"
            self.server.receiving(True)

    def smtp_rset(self, arg: str) -> None:
        self.mail_from, self.rcpt_tos = None, []
        self._reply("250 OK")

    def smtp_noop(self, arg: str) -> None:
        self._reply("250 OK")

    def smtp_vrfy(self, arg: str) -> None:
        self._reply("252 Cannot VRFY user, but will accept message and attempt delivery"
                    if arg else "501 Syntax: VRFY <address>")

    def smtp_help(self, arg: str) -> None:
        self._reply("250 Supported commands: DATA EHLO HELO HELP MAIL NOOP QUIT RCPT RSET VRFY")

    def smtp_quit(self, arg: str) -> None:
        self._reply("221 Bye")
        self.closing = True

    def smtp_not_here(self, arg: str) -> None:
        self._reply("502 Command not implemented")


_COMMANDS: dict[str, Callable[[_Session, str], None]] = {
    "HELO": _Session.smtp_helo, "EHLO": _Session.smtp_ehlo, "MAIL": _Session.smtp_mail,
    "RCPT": _Session.smtp_rcpt, "DATA": _Session.smtp_data, "RSET": _Session.smtp_rset,
    "NOOP": _Session.smtp_noop, "VRFY": _Session.smtp_vrfy, "HELP": _Session.smtp_help,
    "QUIT": _Session.smtp_quit, "STARTTLS": _Session.smtp_not_here,
    "AUTH": _Session.smtp_not_here, "EXPN": _Session.smtp_not_here,
}


def _path(arg: str, keyword: str) -> tuple[str | None, list[str]]:
    """``FROM:<a@b> PARAM ...`` -> ("a@b", ["PARAM", ...]); (None, []) if malformed."""
    if arg[:len(keyword)].upper() != keyword:
        return None, []
    rest = arg[len(keyword):].lstrip()
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            return None, []
        address, params = rest[1:end], rest[end + 1:].split()
        if ":" in address and address.startswith("@"):  # a source route: the mailbox counts
            address = address.split(":", 1)[1]
        return address, params
    words = rest.split()
    if not words:
        return None, []
    return words[0], words[1:]


class _Server:
    """What the sessions share: the ingest, and the checker's "DATA under way" count."""

    def __init__(self, ingest: _Ingest, checker: _Checker | None) -> None:
        self.ingest = ingest
        self.checker = checker
        self.sessions: set[_Session] = set()

    def receiving(self, started: bool) -> None:
        if self.checker is not None:
            self.checker.receiving(started)


class _Handler:
    """aiosmtpd's handler (``--engine aiosmtpd``): the same ingest as the lean loop."""

    def __init__(self, ingest: _Ingest, checker: _Checker | None = None) -> None:
        self.ingest = ingest
        self.checker = checker

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,  # noqa: N802
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        # commands may be sent without waiting for each reply (RFC 2920): aiosmtpd reads them
        # in order, and DATA leaves what follows the final dot in the reader
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        peer = session.peer
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.ingest.submit(envelope.mail_from, list(envelope.rcpt_tos), data, peer_text,
                           lambda reply: future.done() or future.set_result(reply))
        return await future


async def serve(folder: Path, host: str, port: int, *, ack: bool, out: BinaryIO,
                stdin_fd: int | None, max_messages: int = DEFAULT_MAX_MESSAGES,
                max_bytes: int = DEFAULT_MAX_BYTES, checks: bool = True,
                engine: str = "lean", sync_each: bool = False) -> int:
    loop = asyncio.get_running_loop()
    store = InboxStore(folder, max_messages, max_bytes)
    try:
        repaired = store.recover(defer=True)  # a crash left them in the journal only
    except OSError as exc:
        print(f"mailgui local inbox: can't read its folder {folder}: {exc}", file=sys.stderr,
              flush=True)
        return 2
    if repaired:
        print(f"mailgui local inbox: {len(repaired)} message(s) restored from the journal",
              file=sys.stderr, flush=True)
    protocol = _Protocol(out, loop, ack=ack, store=store)
    checker = _Checker(store, protocol, checks=checks)
    protocol.checker = checker
    ingest = _Ingest(store, protocol, checker, loop, sync_each=sync_each)
    protocol.ingest = ingest
    shared = _Server(ingest, checker)
    connections: set[SMTP] = set()

    def factory() -> asyncio.Protocol:
        if engine != "aiosmtpd":
            return _Session(shared)
        smtp = InboxSMTP(_Handler(ingest, checker), hostname=HOSTNAME, ident=IDENT,
                         data_size_limit=0, enable_SMTPUTF8=True, decode_data=False, loop=loop)
        connections.add(smtp)
        return smtp

    try:
        server = await loop.create_server(factory, host=host, port=port)
    except OSError as exc:
        print(f"mailgui local inbox: can't listen on {host}:{port or 'a free port'}: {exc}",
              file=sys.stderr, flush=True)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows: no such thing
            loop.add_signal_handler(sig, protocol.closed.set)
    if stdin_fd is not None and not protocol.read_in_loop(stdin_fd):
        threading.Thread(target=protocol.watch_stdin, args=(stdin_fd,), name="inbox-stdin",
                         daemon=True).start()
    protocol.say(f"READY {server.sockets[0].getsockname()[1]}")
    checker.start()
    try:
        await protocol.closed.wait()
    finally:
        checker.stop()
        server.close()
        for session in list(shared.sessions):
            if session.transport is not None:
                session.transport.abort()
        for smtp in list(connections):
            transport = getattr(smtp, "transport", None)
            if transport is not None:
                transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
        await loop.run_in_executor(None, ingest.close)
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mailgui-inbox-server",
                                     description="mailgui's local test inbox (SMTP, loopback).")
    parser.add_argument("--dir", type=Path, required=True, help="where messages are stored")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (the default)")
    parser.add_argument("--ack", action="store_true",
                        help="reply to the client once 'ack <id>' is read on stdin")
    parser.add_argument("--max-messages", type=int, default=DEFAULT_MAX_MESSAGES,
                        help="keep at most this many messages, the oldest go first (0: all)")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="keep at most this many bytes of messages (0: no limit)")
    parser.add_argument("--no-checks", action="store_true",
                        help="do not run the local checks on received messages")
    parser.add_argument("--sync-each", action="store_true",
                        help="a message's 250 only once its journal record is on the disk "
                             "(one fdatasync per batch): survives a power loss, slower")
    parser.add_argument("--engine", choices=("lean", "aiosmtpd"), default="lean",
                        help="the SMTP loop: mailgui's own (the default) or aiosmtpd's")
    parser.add_argument("--nice", type=int, default=0, metavar="N",
                        help="run N steps below the caller's CPU priority (the app: 5)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.nice > 0:
        with contextlib.suppress(OSError, AttributeError):
            os.nice(args.nice)
    # The protocol owns stdout: anything else printed (a library's warning) goes to stderr.
    try:
        out = os.fdopen(os.dup(1), "wb")
        stdin_fd: int | None = os.dup(0)
    except OSError as exc:
        print(f"mailgui local inbox: no stdin/stdout to talk on ({exc})", file=sys.stderr)
        return 2
    if sys.stderr is not None:
        sys.stdout = sys.stderr
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        return asyncio.run(serve(args.dir, args.host, args.port, ack=args.ack, out=out,
                                 stdin_fd=stdin_fd, max_messages=args.max_messages,
                                 max_bytes=args.max_bytes, checks=not args.no_checks,
                                 engine=args.engine, sync_each=args.sync_each))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
