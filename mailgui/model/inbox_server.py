"""The local test inbox's SMTP server, run as its own process (no Qt, plain Python).

    python -m mailgui.model.inbox_server --dir DIR [--host 127.0.0.1] [--port 0] [--ack]

(or ``mailgui --run-inbox-server DIR ...`` in the frozen app, where ``sys.executable`` is the
mailgui binary). It listens with aiosmtpd, stores each message with ``InboxStore`` (the .eml,
its .json and the viewer's precomputed details), and speaks a line protocol on stdout:

    READY <port>            once, when it listens
    {"id": ..., ...}        one JSON object (an InboxMessage) per stored message
    REMOVED <id> ...        messages the retention limits removed (oldest first)
    CHECKED <id>            the local checks of a message are in ``<id>.checks.json``

and reads ``ack <id>``, ``limits <max messages> <max bytes>`` (applied at once),
``rescan`` (the app deleted messages: read the folder again before the next limit check),
``check <id>`` (check this one next: it is being shown) and ``checks <json>`` (the checks'
settings: pasted DKIM keys, DNS or not; see ``mailgui.model.checks.CheckSettings``).

The local checks (client support, lint, DKIM) run on a thread of their own (``_Checker``),
one message at a time and only while no DATA is being received: they never stand between a
client and its "250", and a burst of mail is checked once it is over.

With ``--ack``, the reply to the client waits (up to ACK_TIMEOUT) until ``ack <id>`` comes back
on stdin, so that when the client sees "250 ... stored as <id>" the app already knows the
message. It exits on SIGTERM/SIGINT, and when stdin reaches end of file: a parent that is killed
closes the pipe, so this process never outlives the app.

Why a process: aiosmtpd reads DATA line by line in Python and the message is measured and
folded for the viewer here; in the GUI's process that work held the GIL for seconds while a
big attachment arrived, and the window froze. DATA is also read here in big chunks (see
``InboxSMTP.smtp_DATA``), so 100 MB arrive in about the time the bytes take.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO

from aiosmtpd.smtp import SMTP

from mailgui.model.inbox import DEFAULT_MAX_BYTES, DEFAULT_MAX_MESSAGES, InboxMessage, InboxStore

__all__ = ["ACK_TIMEOUT", "InboxSMTP", "main"]

ACK_TIMEOUT = 5.0
DATA_BUFFER = 4 << 20  # bytes of DATA the reader may buffer (the transport pauses at twice that)
CHECK_IDLE = 0.3  # seconds without DATA before the checker takes the next message


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
    """stdout lines out, ``ack <id>`` lines in; stdin's end of file stops the server."""

    def __init__(self, out: BinaryIO, loop: asyncio.AbstractEventLoop, *, ack: bool,
                 store: InboxStore | None = None) -> None:
        self.out = out
        self.store = store
        self.loop = loop
        self.ack = ack
        self.lock = threading.Lock()
        self.waiting: dict[str, asyncio.Future[None]] = {}
        self.closed = asyncio.Event()
        self.checker: _Checker | None = None

    def say(self, line: str) -> None:
        with self.lock:
            self.out.write(line.encode("utf-8") + b"\n")
            self.out.flush()

    async def announce(self, item: InboxMessage) -> None:
        future: asyncio.Future[None] = self.loop.create_future()
        if self.ack:
            self.waiting[item.id] = future
        try:
            self.say(json.dumps(item.to_dict(), ensure_ascii=True))
        except (OSError, ValueError):
            self.waiting.pop(item.id, None)
            return
        if self.ack:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(future, ACK_TIMEOUT)
            self.waiting.pop(item.id, None)

    def removed(self, ids: list[str]) -> None:
        if ids:
            with contextlib.suppress(OSError, ValueError):
                self.say("REMOVED " + " ".join(ids))

    def _acked(self, msg_id: str) -> None:
        future = self.waiting.get(msg_id)
        if future is not None and not future.done():
            future.set_result(None)

    def watch_stdin(self, fd: int) -> None:
        """In a thread: read acks until end of file, then stop the server. (``os.read`` on the
        descriptor, not ``sys.stdin``: a daemon thread blocked inside a buffered reader can
        abort the interpreter's shutdown.)"""
        pending = b""
        try:
            while chunk := os.read(fd, 4096):
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    words = raw.decode("utf-8", "replace").split()
                    if self.checker is not None and len(words) == 2 and words[0] == "check":
                        self.checker.add(words[1], first=True)
                    elif self.checker is not None and words[:1] == ["checks"]:
                        self.checker.set_settings(raw.decode("utf-8", "replace")[6:])
                    elif len(words) == 2 and words[0] == "ack":
                        self.loop.call_soon_threadsafe(self._acked, words[1])
                    elif self.store is not None and words[:1] == ["rescan"]:
                        self.store.rescan()
                    elif (self.store is not None and len(words) == 3 and words[0] == "limits"
                          and words[1].isdigit() and words[2].isdigit()):
                        self.store.set_limits(int(words[1]), int(words[2]))
                        self.removed(self.store.enforce())
        except OSError:
            pass
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self.loop.call_soon_threadsafe(self.closed.set)


class _Checker:
    """The local checks of received mail, off the ingest path: a daemon thread that takes one
    message at a time (those being shown first: ``check <id>``), waits while DATA is being
    received and for CHECK_IDLE after it, also between two checks of one message, writes
    ``<id>.checks.json`` and says ``CHECKED <id>``. Messages stored without checks (by an
    older mailgui, or before a restart) are checked too, newest first, after the new ones."""

    def __init__(self, store: InboxStore, protocol: _Protocol) -> None:
        self.store = store
        self.protocol = protocol
        self.cond = threading.Condition()
        self.queue: deque[str] = deque()
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
        with self.cond:
            self.busy += 1 if started else -1
            if not started:
                self.last = time.monotonic()
                self.cond.notify_all()

    def add(self, msg_id: str, *, first: bool = False) -> None:
        with self.cond:
            if msg_id in self.queue:
                self.queue.remove(msg_id)
            (self.queue.appendleft if first else self.queue.append)(msg_id)
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

    def _next(self) -> str | None:
        with self.cond:
            while not self.queue and not self.stopped:
                self.cond.wait()
            return None if self.stopped else self.queue.popleft()

    def _run(self) -> None:
        # imported here, not at start: the server listens at once, lxml loads behind
        from mailgui.model.checks import CheckSettings, check_stored, checks_path

        with contextlib.suppress(OSError):
            backlog = [m.id for m in reversed(self.store.list())
                       if not checks_path(self.store.folder, m.id).exists()]
            with self.cond:
                self.queue.extend(i for i in backlog if i not in self.queue)
        while (msg_id := self._next()) is not None:
            self.wait_idle()
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


class _Handler:
    def __init__(self, store: InboxStore, protocol: _Protocol,
                 checker: _Checker | None = None) -> None:
        self.store = store
        self.protocol = protocol
        self.checker = checker

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,  # noqa: N802
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        # commands may be sent without waiting for each reply (RFC 2920): aiosmtpd reads them
        # in order, and DATA leaves what follows the final dot in the reader
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    def _store(self, mail_from: str, rcpt_tos: list[str], data: bytes, peer: str
               ) -> tuple[InboxMessage, list[str]]:
        item = self.store.add(mail_from, rcpt_tos, data, peer)
        try:
            removed = self.store.enforce()
        except OSError:  # a file that can't be removed now goes at a later arrival
            removed = []
        return item, removed

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        peer = session.peer
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        loop = asyncio.get_running_loop()
        try:  # stored, then the retention limits applied (oldest first), in one hop
            item, removed = await loop.run_in_executor(
                None, self._store, envelope.mail_from, list(envelope.rcpt_tos), data, peer_text
            )
        except OSError as exc:
            return f"451 4.3.0 mailgui could not store the message: {exc.strerror}"
        await self.protocol.announce(item)
        self.protocol.removed(removed)
        if self.checker is not None:
            self.checker.add(item.id)
        return f"250 2.0.0 Ok: stored as {item.id}"


async def serve(folder: Path, host: str, port: int, *, ack: bool, out: BinaryIO,
                stdin_fd: int | None, max_messages: int = DEFAULT_MAX_MESSAGES,
                max_bytes: int = DEFAULT_MAX_BYTES, checks: bool = True) -> int:
    loop = asyncio.get_running_loop()
    store = InboxStore(folder, max_messages, max_bytes)
    protocol = _Protocol(out, loop, ack=ack, store=store)
    checker = _Checker(store, protocol) if checks else None
    protocol.checker = checker
    handler = _Handler(store, protocol, checker)
    connections: set[SMTP] = set()

    def factory() -> SMTP:
        smtp = InboxSMTP(handler, hostname="mailgui-inbox", ident="mailgui local test inbox",
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
    if stdin_fd is not None:
        threading.Thread(target=protocol.watch_stdin, args=(stdin_fd,), name="inbox-stdin",
                         daemon=True).start()
    protocol.say(f"READY {server.sockets[0].getsockname()[1]}")
    if checker is not None:
        checker.start()
    try:
        await protocol.closed.wait()
    finally:
        if checker is not None:
            checker.stop()
        server.close()
        for smtp in list(connections):
            transport = getattr(smtp, "transport", None)
            if transport is not None:
                transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 2)
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
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
        return asyncio.run(serve(args.dir, args.host, args.port, ack=args.ack, out=out,
                                 stdin_fd=stdin_fd, max_messages=args.max_messages,
                                 max_bytes=args.max_bytes, checks=not args.no_checks))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
