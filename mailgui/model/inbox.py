"""The built-in local test inbox: an SMTP server on 127.0.0.1 that keeps what it receives.

Messages are stored as ``<id>.eml`` plus ``<id>.json`` (envelope, time, size) and
``<id>.details.json`` (what the viewer shows: headers, parts, bodies, folded source) in the
inbox folder of the data dir, so they survive a restart. No widgets here.

Group commit: the server stores a burst of arrivals as one batch (``InboxStore.add_batch``):
their bytes and envelopes are appended to ``ingest.journal`` with one ``fdatasync``, then the
``.eml`` and ``.json`` files are written without a sync of their own; the client's "250" comes
after that. The files reach the disk at the next checkpoint (``InboxStore.checkpoint``: one
``syncfs``, or an ``fsync`` per file where there is none, then the journal is emptied), which
the server runs once it has been idle for a moment, when the journal grows past
``JOURNAL_MAX``, when the app deleted messages and when it stops. After a crash or a power
loss, ``InboxStore.recover`` (run by the server before it listens) writes again from the
journal every message whose files are missing or short: a "250" is never lost. (A message the
app deleted in the moment between its delete and that checkpoint can come back after a power
loss; the retention limits still apply to it.) Messages over ``JOURNAL_INLINE`` bytes are not
copied into the journal: their ``.eml`` is synced on its own before the journal entry.

The viewer's details are worked out at arrival only for messages over ``DETAILS_EAGER``
bytes (those that would hold the GIL in the app's process); for smaller ones, the server's
idle thread works them out after a burst, and the app works one out itself if it is asked
for first (``read_details``).

The server itself runs in a child process (``mailgui.model.inbox_server``): receiving a big
message is CPU work that, in the GUI's process, held the GIL long enough to freeze the window.
``InboxServer`` starts that process, reads what it reports on a thread of its own and tells the
app about each new message through the ``on_message`` callback (on that thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import re
import site
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import IO, Any

from mailgui.model.inbox_details import (
    HEADER_LIMIT,
    MessageDetails,
    MessagePart,
    compute_details,
    message_parts,
    part_payload,
    split_headers,
)
from mailgui.model.paths import atomic_write_bytes, atomic_write_json, read_json

__all__ = [
    "DEFAULT_INBOX_PORT",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_MESSAGES",
    "InboxMessage",
    "InboxServer",
    "InboxServerError",
    "InboxStore",
    "MessageDetails",
    "MessagePart",
    "message_parts",
    "part_payload",
    "server_command",
]

# Mailpit's and MailHog's SMTP port: programs under test can be pointed at it once. When it is
# taken, the inbox listens on a free port instead (and says so).
DEFAULT_INBOX_PORT = 1025
DEFAULT_MAX_MESSAGES = 500  # Mailpit's default
DEFAULT_MAX_BYTES = 1_000_000_000  # 1 GB of .eml files
RUN_SERVER_OPTION = "--run-inbox-server"  # mailgui's hidden option (the frozen app's way in)
JOURNAL_NAME = "ingest.journal"
JOURNAL_MAX = 32 << 20  # bytes of journal before a checkpoint is made at once
JOURNAL_INLINE = 1 << 20  # bigger messages are synced as .eml files, not copied in the journal
DETAILS_EAGER = 256 << 10  # messages at least this big get their details at arrival
_RECORD = struct.Struct("<4sIQI")  # magic, meta length, data length, crc32 of meta + data
_MAGIC = b"MGJ1"


@dataclass
class InboxMessage:
    id: str
    mail_from: str
    rcpt_tos: list[str]
    received_at: float
    size: int
    subject: str = ""
    from_header: str = ""
    to_header: str = ""
    peer: str = ""
    tls: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # (what ``asdict`` gives, without its deep copies: this runs for every arrival)
        return {"id": self.id, "mail_from": self.mail_from, "rcpt_tos": list(self.rcpt_tos),
                "received_at": self.received_at, "size": self.size, "subject": self.subject,
                "from_header": self.from_header, "to_header": self.to_header,
                "peer": self.peer, "tls": self.tls, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InboxMessage:
        return cls(
            id=str(data["id"]), mail_from=str(data.get("mail_from", "")),
            rcpt_tos=[str(r) for r in data.get("rcpt_tos") or []],
            received_at=float(data.get("received_at") or 0), size=int(data.get("size") or 0),
            subject=str(data.get("subject", "")), from_header=str(data.get("from_header", "")),
            to_header=str(data.get("to_header", "")), peer=str(data.get("peer", "")),
        )


_PLAIN_SUBJECT = re.compile(rb"[\x20-\x7e\t]*")
_ADDR = rb"[A-Za-z0-9._+\-]+@[A-Za-z0-9.\-]+"
_PLAIN_ADDRESS = rb"(?:" + _ADDR + rb"|[A-Za-z0-9]+(?: [A-Za-z0-9]+)* <" + _ADDR + rb">)"
_PLAIN_ADDRESSES = re.compile(rb"(?:" + _PLAIN_ADDRESS + rb"(?:, " + _PLAIN_ADDRESS + rb")*)?")
_ANGLED = re.compile(rb"<(" + _ADDR + rb")>")
_HEADER_LINE = re.compile(rb"(subject|from|to)[ \t]*:(.*)", re.IGNORECASE | re.DOTALL)


def _plain_headers(head: bytes) -> tuple[str, str, str] | None:
    """Subject, From and To of a header block whose values need no decoding (plain ASCII, no
    encoded words, addresses without quotes or comments): what the email package would give,
    in a small fraction of its time; None for anything else."""
    found: dict[bytes, bytes] = {}
    lines = head.split(b"\n")
    for i, line in enumerate(lines):
        m = _HEADER_LINE.match(line)
        if m is None:
            continue
        name = m.group(1).lower()
        if name in found:
            continue
        value = m.group(2).rstrip(b"\r")
        for more in lines[i + 1:]:  # folded lines, unfolded as the email package does
            if more[:1] not in (b" ", b"\t"):
                break
            value += more.rstrip(b"\r")
        if name == b"subject":
            value = value.lstrip(b" \t")
            if b"=?" in value or b"\t" in value or not _PLAIN_SUBJECT.fullmatch(value):
                return None
        else:
            value = value.strip(b" \t")
            angled = _ANGLED.fullmatch(value)  # "<a@x>", as smtp-source writes it: "a@x"
            if angled is not None:
                value = angled.group(1)
            elif not _PLAIN_ADDRESSES.fullmatch(value):
                return None
        found[name] = value
    return tuple(found.get(k, b"").decode("ascii")  # type: ignore[return-value]
                 for k in (b"subject", b"from", b"to"))


def _headers_of(data: bytes, details: MessageDetails | None) -> tuple[str, str, str]:
    """Subject, From and To for the list: from the details when they were worked out (they
    hold every header already), else read from the header block alone."""
    if details is not None:
        first: dict[str, str] = {}
        for name, value in details.headers:
            first.setdefault(name.lower(), value)
        return first.get("subject", ""), first.get("from", ""), first.get("to", "")
    end, _body = split_headers(data, 0, len(data))  # never copies a big body
    head = data[:end] if end >= 0 else data[:HEADER_LIMIT]
    if end >= 0:
        plain = _plain_headers(head)
        if plain is not None:
            return plain
    msg = BytesHeaderParser(policy=default_policy).parsebytes(head + b"\r\n\r\n")

    def get(name: str) -> str:
        try:
            return str(msg.get(name, "") or "")
        except (ValueError, IndexError, TypeError):
            return ""

    return get("Subject"), get("From"), get("To")


class InboxStore:
    """The received messages on disk. Thread-safe; all methods do file I/O (worker side)."""

    def __init__(self, folder: Path, max_messages: int = DEFAULT_MAX_MESSAGES,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self.max_messages = max_messages  # 0: no limit
        self.max_bytes = max_bytes  # 0: no limit
        # the server's view of what is kept, oldest first: id -> size; read from the folder
        # once (None: not yet, or told to read it again after the app deleted something)
        self._index: dict[str, int] | None = None

    # -- retention (the server's side: enforced as messages arrive) -------------------------

    def set_limits(self, max_messages: int, max_bytes: int) -> None:
        with self._lock:
            self.max_messages, self.max_bytes = max(0, max_messages), max(0, max_bytes)

    def rescan(self) -> None:
        """Forget the index: the next ``enforce`` reads the folder again (after a delete made
        by someone else, the app)."""
        with self._lock:
            self._index = None

    def _load_index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {m.id: m.size for m in self.list()}
        return self._index

    def _note(self, item: InboxMessage) -> None:
        with self._lock:
            if self._index is not None:
                self._index[item.id] = item.size

    def enforce(self) -> list[str]:
        """Delete the oldest messages beyond the limits (by count, then by total size; the
        newest message always stays); return their ids."""
        with self._lock:
            index = self._load_index()
            total = sum(index.values())
            removed: list[str] = []
            for msg_id in list(index):
                over_count = self.max_messages and len(index) > self.max_messages
                over_size = self.max_bytes and total > self.max_bytes
                if not (over_count or over_size) or len(index) <= 1:
                    break
                total -= index.pop(msg_id)
                self._unlink(msg_id)
                removed.append(msg_id)
            return removed

    def _unlink(self, msg_id: str) -> None:
        for suffix in (".eml", ".json", ".details.json", ".checks.json", ".netchecks.json"):
            with contextlib.suppress(FileNotFoundError):
                (self.folder / f"{Path(msg_id).name}{suffix}").unlink()

    # -- read state (the app's side) ----------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.folder / "read-state.json"

    def read_ids(self) -> set[str]:
        data = read_json(self.state_path, {})
        read = data.get("read") if isinstance(data, dict) else None
        return {str(i) for i in read} if isinstance(read, list) else set()

    def save_read_ids(self, ids: set[str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.state_path, {"read": sorted(ids)}, compact=True)

    def _new_id(self, stamp: float) -> str:
        with self._lock:
            return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(stamp))}-" \
                   f"{int(stamp * 1000) % 1000:03d}-{next(self._counter):04d}"

    def add(self, mail_from: str, rcpt_tos: list[str], data: bytes, peer: str = "") -> InboxMessage:
        """Store one message (``add_batch`` of one, then a checkpoint): its files are on disk
        when this returns, and no journal is left behind."""
        item = self.add_batch([(mail_from, rcpt_tos, data, peer)])[0]
        self.checkpoint()
        return item

    def add_batch(self, arrivals: Sequence[tuple[str, list[str], bytes, str]]
                  ) -> list[InboxMessage]:
        """Store messages (mail_from, rcpt_tos, data, peer) as one group commit: the journal
        gets them all with one ``fdatasync``, and each gets its files (the .json last: a
        message is listed once all its files are there). When this returns, every message is
        durable (a crash or power loss is repaired by ``recover``). Big ones (over
        DETAILS_EAGER) get their details at once; smaller ones are left to the idle thread.

        The server does the same in three steps (``begin_batch``, then ``sync_journal`` on a
        thread while ``write_batch`` writes the files), so that the sync overlaps the work."""
        batch = self.begin_batch(arrivals)
        self.sync_journal()
        self.write_batch(batch)
        return batch.items

    def begin_batch(self, arrivals: Sequence[tuple[str, list[str], bytes, str]]) -> Batch:
        """Give each message its id and list entry and append them all to the journal (not
        synced yet; a big message's .eml is written and synced now)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        batch = Batch()
        records: list[bytes] = []
        for mail_from, rcpt_tos, data, peer in arrivals:
            stamp = time.time()
            msg_id = self._new_id(stamp)
            details: MessageDetails | None = None
            if len(data) >= DETAILS_EAGER:
                try:
                    details = compute_details(data, msg_id)
                except Exception:  # noqa: BLE001 - the message is kept all the same; the
                    details = None  # viewer then works them out itself
            subject, from_header, to_header = _headers_of(data, details)
            item = InboxMessage(msg_id, mail_from, list(rcpt_tos), stamp, len(data), subject,
                                from_header, to_header, peer)
            if len(data) > JOURNAL_INLINE:  # synced as its own file; the journal says so
                atomic_write_bytes(self.path(msg_id), data)
                records.append(_record(item, b""))
                batch.data.append(None)
            else:
                records.append(_record(item, data))
                batch.data.append(data)
            batch.items.append(item)
            batch.details.append(details)
        self._journal.append(records)
        return batch

    def sync_journal(self) -> None:
        """Make what ``begin_batch`` appended durable (one ``fdatasync``; any thread)."""
        self._journal.sync()

    def write_batch(self, batch: Batch) -> None:
        """The files of a batch, without a sync of their own (the journal holds them)."""
        for item, details, data in zip(batch.items, batch.details, batch.data, strict=True):
            if data is not None:
                _write_plain(self.path(item.id), data)
            if details is not None:
                with contextlib.suppress(ValueError, TypeError):
                    self.save_details(details)
            _write_plain(self.folder / f"{item.id}.json", _meta_bytes(item))
            self._journal.written(item.id)
            self._note(item)
        batch.data = []  # the bodies are on disk: not kept in memory

    @property
    def _journal(self) -> _Journal:
        journal = self.__dict__.get("_journal_obj")
        if journal is None:
            with self._lock:
                journal = self.__dict__.setdefault("_journal_obj", _Journal(self.folder))
        return journal

    @property
    def journal_size(self) -> int:
        """Bytes in the journal not yet checkpointed."""
        return self._journal.size

    def checkpoint(self) -> None:
        """Make every file written since the last checkpoint durable, then empty the journal."""
        self._journal.checkpoint()

    def recover(self) -> list[str]:
        """After a crash: write again, from the journal, every message whose .eml is missing
        or short or whose .json is missing; then checkpoint. Returns the ids written again.
        (The server calls this before it listens; nothing else writes the folder then.)"""
        repaired: list[str] = []
        for meta, data in self._journal.records():
            try:
                item = InboxMessage.from_dict(meta)
            except (KeyError, TypeError, ValueError):
                continue
            eml = self.path(item.id)
            meta_path = self.folder / f"{item.id}.json"
            try:
                size = eml.stat().st_size
            except FileNotFoundError:
                size = -1
            if size != item.size and len(data) == item.size:
                _write_plain(eml, data)
            elif size != item.size:
                continue  # a big message whose own file never made it: nothing to restore
            if size != item.size or not meta_path.exists() or read_json(meta_path) is None:
                _write_plain(meta_path, _meta_bytes(item))
                self._journal.written(item.id)
                repaired.append(item.id)
        self.checkpoint()
        with self._lock:
            self._index = None
        return repaired

    def list(self) -> list[InboxMessage]:
        """Oldest first."""
        out = []
        for meta in sorted(self.folder.glob("*.json")):
            if meta.name.endswith((".details.json", ".checks.json", ".netchecks.json")) or (
                    meta.name == "read-state.json"):
                continue
            data = read_json(meta)
            if isinstance(data, dict) and (self.folder / f"{meta.stem}.eml").exists():
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    out.append(InboxMessage.from_dict(data))
        return out

    def path(self, msg_id: str) -> Path:
        return self.folder / f"{Path(msg_id).name}.eml"

    def details_path(self, msg_id: str) -> Path:
        return self.folder / f"{Path(msg_id).name}.details.json"

    def read(self, msg_id: str) -> bytes:
        return self.path(msg_id).read_bytes()

    def details(self, msg_id: str) -> MessageDetails | None:
        """The stored details of a message, or None (stored by an older mailgui, or broken)."""
        data = read_json(self.details_path(msg_id))
        if not isinstance(data, dict):
            return None
        try:
            return MessageDetails.from_dict(data)
        except (KeyError, TypeError, ValueError):
            return None

    def save_details(self, details: MessageDetails) -> None:
        atomic_write_json(self.details_path(details.id), details.to_dict(), compact=True)

    def delete(self, msg_id: str) -> None:
        """Remove a message's files, the .eml first: once it is gone the message is no longer
        listed, and if it can't be removed nothing is (OSError)."""
        with self._lock:
            self._unlink(msg_id)
            if self._index is not None:
                self._index.pop(msg_id, None)

    def clear(self) -> None:
        """Delete every message it can; then raise the first failure, if any."""
        failures: list[OSError] = []
        for item in self.list():
            try:
                self.delete(item.id)
            except OSError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]


@dataclass
class Batch:
    """Messages of one group commit, between ``begin_batch`` and ``write_batch``."""

    items: list[InboxMessage] = field(default_factory=list)
    details: list[MessageDetails | None] = field(default_factory=list)
    data: list[bytes | None] = field(default_factory=list)  # None: the .eml is written


def _record(item: InboxMessage, data: bytes) -> bytes:
    meta = json.dumps(item.to_dict(), ensure_ascii=True).encode("ascii")
    crc = zlib.crc32(data, zlib.crc32(meta))
    return b"".join((_RECORD.pack(_MAGIC, len(meta), len(data), crc), meta, data))


def _meta_bytes(item: InboxMessage) -> bytes:
    """A message's .json as ``atomic_write_json`` writes it (text; escapes only for what
    UTF-8 can't hold, the lone surrogates of undecodable headers)."""
    try:
        return json.dumps(item.to_dict(), indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(item.to_dict(), indent=2).encode("ascii") + b"\n"


def _write_plain(path: Path, data: bytes) -> None:
    """Write a file without a sync of its own (the journal makes it durable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0),
                 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2) (every dirty file of one filesystem to disk in one call), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int]
    return func


class _Journal:
    """``ingest.journal``: an append-only file of (envelope, bytes) records, synced once per
    batch; emptied by a checkpoint once the files it covers are synced themselves."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / JOURNAL_NAME
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.size = 0
        self._pending: list[str] = []  # ids whose files are not synced yet
        self._syncfs = _syncfs()

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND
                               | getattr(os, "O_BINARY", 0), 0o600)
            self.size = os.fstat(self._fd).st_size
        return self._fd

    def append(self, records: list[bytes]) -> None:
        data = b"".join(records)
        with self._lock:
            fd = self._open()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            self.size += len(data)

    def sync(self) -> None:
        """(Not under the lock: appends may go on meanwhile; the server runs this and the
        checkpoint, which closes the file, on one thread.)"""
        fd = self._fd
        if fd is not None:
            (getattr(os, "fdatasync", None) or os.fsync)(fd)

    def written(self, msg_id: str) -> None:
        with self._lock:
            self._pending.append(msg_id)

    def records(self) -> list[tuple[dict[str, Any], bytes]]:
        """The whole records in the journal (a torn last one, never acknowledged, left out)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[tuple[dict[str, Any], bytes]] = []
        pos = 0
        while pos + _RECORD.size <= len(raw):
            magic, meta_len, data_len, crc = _RECORD.unpack_from(raw, pos)
            start = pos + _RECORD.size
            end = start + meta_len + data_len
            if magic != _MAGIC or end > len(raw):
                break
            meta, data = raw[start:start + meta_len], raw[start + meta_len:end]
            if zlib.crc32(data, zlib.crc32(meta)) != crc:
                break
            with contextlib.suppress(ValueError):
                parsed = json.loads(meta)
                if isinstance(parsed, dict):
                    out.append((parsed, data))
            pos = end
        return out

    def checkpoint(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
            if not pending and self._fd is None and not self.path.exists():
                return
            folder = self.path.parent
            if self._syncfs is not None:
                fd = os.open(folder, os.O_RDONLY)
                try:
                    if self._syncfs(fd) != 0:
                        raise OSError(ctypes.get_errno(), "syncfs failed", str(folder))
                finally:
                    os.close(fd)
            else:  # an fsync per file, then the folder
                for msg_id in pending:
                    for suffix in (".eml", ".json"):
                        with contextlib.suppress(FileNotFoundError):
                            with open(folder / f"{msg_id}{suffix}", "rb+") as f:
                                os.fsync(f.fileno())
                with contextlib.suppress(OSError):
                    dir_fd = os.open(folder, os.O_RDONLY)
                    try:
                        os.fsync(dir_fd)
                    finally:
                        os.close(dir_fd)
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.path.unlink(missing_ok=True)  # the folder holds only messages again
            self.size = 0

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class InboxServerError(OSError):
    """The inbox server process could not start; ``stderr`` holds what it said."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


def server_command(folder: Path, host: str = "127.0.0.1", port: int = 0,
                   limits: tuple[int, int] = (DEFAULT_MAX_MESSAGES, DEFAULT_MAX_BYTES)
                   ) -> list[str]:
    """How to start the inbox server process. In a frozen app (PyInstaller) ``sys.executable``
    is mailgui itself, which runs the server when given RUN_SERVER_OPTION."""
    options = ["--host", host, "--port", str(port), "--ack",
               "--max-messages", str(limits[0]), "--max-bytes", str(limits[1])]
    if getattr(sys, "frozen", False):
        return [sys.executable, RUN_SERVER_OPTION, str(folder), *options]
    return [sys.executable, "-m", "mailgui.model.inbox_server", "--dir", str(folder), *options]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    if getattr(sys, "frozen", False):
        return env
    # the child must import this very mailgui, also from a source tree that is not installed
    root = str(Path(__file__).resolve().parents[2])
    site_dirs = [*getattr(site, "getsitepackages", list)(), site.getusersitepackages()]
    installed = {os.path.realpath(p) for p in site_dirs}
    if os.path.realpath(root) not in installed:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _summary(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    return last.removeprefix("mailgui local inbox: ")


class InboxServer:
    """The inbox SMTP server (aiosmtpd on 127.0.0.1, a free port) in a child process.

    ``start()`` blocks until the server listens (call it from a worker) and returns the port;
    ``on_message(InboxMessage)`` is called on a reader thread for each stored message, before
    the client gets its "250" reply; ``on_exit(text)`` if the process ends without ``stop()``.
    ``stop()`` ends the process (end of its stdin, SIGTERM, then a kill after ``timeout``) and
    waits for it; ``stop(wait=False)`` returns at once (the GUI thread's way) and the process
    is reaped behind, on a thread that ``wait_stopped()`` joins. The process also ends by
    itself when this one dies (its stdin closes).
    """

    def __init__(self, store: InboxStore, on_message: Callable[[InboxMessage], None] | None = None,
                 host: str = "127.0.0.1", port: int = 0,
                 on_exit: Callable[[str], None] | None = None,
                 on_removed: Callable[[list[str]], None] | None = None,
                 on_checked: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.on_checked = on_checked  # a message's checks are stored (reader thread)
        self._check_settings = ""  # the last "checks <json>" line, sent again at each start
        self.host = host
        self.on_message = on_message
        self.on_removed = on_removed  # ids the retention limits removed (reader thread)
        self.on_exit = on_exit
        self._wanted_port = port
        self.port = 0
        self.fallback_reason = ""  # why the server is not on the wanted port
        self._lock = threading.Lock()
        self._stdin_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._stderr: IO[bytes] | None = None
        self._ready = threading.Event()
        self._ended = threading.Event()
        self._reaper: threading.Thread | None = None  # ends a stopped process behind

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self.port != 0 and not self._ended.is_set()

    def start(self, timeout: float = 10.0, *, fallback: bool = True) -> int:
        """Listen on the wanted port; if it can't be had (another server holds it) and
        ``fallback`` is on, on a free port instead, with ``fallback_reason`` saying why."""
        self.fallback_reason = ""
        try:
            return self._start(self._wanted_port, timeout)
        except InboxServerError as exc:
            if not (fallback and self._wanted_port):
                raise
            self.fallback_reason = f"port {self._wanted_port} is taken ({exc})"
        return self._start(0, timeout)

    def _start(self, wanted_port: int, timeout: float) -> int:
        self.wait_stopped(timeout)  # a process stopped without waiting is gone first
        with self._lock:
            if self._proc is not None:
                raise RuntimeError("already started")
            folder = self.store.folder.resolve()
            folder.mkdir(parents=True, exist_ok=True)
            self._ready.clear()
            self._ended.clear()
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in _cleanup
            try:
                proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                    server_command(folder, self.host, wanted_port,
                                   (self.store.max_messages, self.store.max_bytes)),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                    bufsize=0, cwd=folder, env=_child_env(),
                    creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
                )
            except BaseException:
                self._stderr.close()
                self._stderr = None
                raise
            self._proc = proc
            self._reader = threading.Thread(target=self._read, args=(proc,),
                                            name="mailgui-inbox-reader", daemon=True)
            self._reader.start()
        if not self._ready.wait(timeout):
            text = self._stderr_text()
            self.stop()
            raise TimeoutError("the local inbox did not start in time"
                               + (f": {_summary(text)}" if text else ""))
        if self.port == 0:  # the process ended before it listened
            try:
                code = proc.wait(5)
            except subprocess.TimeoutExpired:
                code = None
            text = self._stderr_text()
            self.stop()
            raise InboxServerError(
                _summary(text) or f"the local inbox server exited with code {code}", text)
        return self.port

    def _stderr_text(self) -> str:
        f = self._stderr
        if f is None:
            return ""
        try:
            f.seek(0)
            return f.read()[-16384:].decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        """The reader thread: READY, then one JSON line per message (each acknowledged)."""
        stdout = proc.stdout
        assert stdout is not None
        pending = b""
        try:
            while chunk := stdout.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                acks: list[str] = []
                for line in lines:
                    self._line(proc, line.decode("utf-8", "replace").strip(), acks)
                if acks:  # the messages of one read acknowledged in one write
                    self._write(proc, f"ack {' '.join(acks)}\n".encode())
        except (OSError, ValueError):
            pass
        finally:
            self._ended.set()
            self._ready.set()
        if self.port and proc is self._proc and self.on_exit is not None:  # not stop()
            try:
                code = proc.wait(2)
            except subprocess.TimeoutExpired:
                code = None
            how = (f"its process was killed (signal {-code})" if code is not None and code < 0
                   else f"its process ended (exit code {code})")
            with contextlib.suppress(Exception):
                self.on_exit(_summary(self._stderr_text()) or how)

    def _line(self, proc: subprocess.Popen[bytes], line: str, acks: list[str]) -> None:
        if line.startswith("READY "):
            with contextlib.suppress(ValueError, IndexError):
                self.port = int(line.split()[1])
            if self._check_settings:
                self._write(proc, self._check_settings.encode())
            self._ready.set()
        elif line.startswith("CHECKED "):
            if self.on_checked is not None:
                with contextlib.suppress(Exception):
                    self.on_checked(line.split()[1])
        elif line.startswith("REMOVED "):
            if self.on_removed is not None:
                with contextlib.suppress(Exception):
                    self.on_removed(line.split()[1:])
        elif line.startswith("{"):
            try:
                item = InboxMessage.from_dict(json.loads(line))
            except (KeyError, TypeError, ValueError):
                return
            if self.on_message is not None:
                with contextlib.suppress(Exception):  # the observer must not stop the reader
                    self.on_message(item)
            acks.append(item.id)

    def _write(self, proc: subprocess.Popen[bytes], data: bytes) -> None:
        with self._stdin_lock:
            stdin = proc.stdin
            if stdin is None or stdin.closed:
                return
            try:
                view = memoryview(data)
                while view:
                    view = view[stdin.write(view) or 0:]
            except (OSError, ValueError):
                pass

    def set_limits(self, max_messages: int, max_bytes: int) -> None:
        """New retention limits, for the running process too (it applies them at once and
        reports what it removed). Never blocks for long: one short write to a pipe."""
        self.store.set_limits(max_messages, max_bytes)
        self._command(f"limits {self.store.max_messages} {self.store.max_bytes}\n")

    def check(self, msg_id: str) -> None:
        """Ask the process to check this message next (it is being shown, unchecked)."""
        self._command(f"check {msg_id}\n")

    def set_check_settings(self, settings: dict[str, Any]) -> None:
        """The checks' settings (``CheckSettings.to_json()``), for this run and the next."""
        self._check_settings = f"checks {json.dumps(settings, ensure_ascii=True)}\n"
        self._command(self._check_settings)

    def rescan(self) -> None:
        """Tell the process that messages were deleted behind its back (its index is read
        again before the next limit check)."""
        self._command("rescan\n")

    def _command(self, line: str) -> None:
        proc = self._proc
        if proc is not None:
            self._write(proc, line.encode())

    def stop(self, timeout: float = 5.0, *, wait: bool = True) -> None:
        """End the process: end of its stdin and SIGTERM now (neither blocks), a kill if it
        is still there after ``timeout`` seconds. ``wait``: return once it is gone; else at
        once, with ``running`` already False and the port free soon after."""
        with self._lock:
            proc, reader, stderr = self._proc, self._reader, self._stderr
            if proc is None:
                return
            self._proc, self._reader, self._stderr = None, None, None
            self.port = 0
            with self._stdin_lock, contextlib.suppress(OSError):
                if proc.stdin is not None:
                    proc.stdin.close()  # end of file: the server stops by itself
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.terminate()
            reaper = threading.Thread(target=self._reap, args=(proc, reader, stderr, timeout),
                                      name="mailgui-inbox-stop", daemon=True)
            self._reaper = reaper
            reaper.start()
        if wait:
            reaper.join()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Wait for a stopped process to be gone; True when none is left ending."""
        reaper = self._reaper
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(timeout)
            return not reaper.is_alive()
        return True

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes], reader: threading.Thread | None,
              stderr: IO[bytes] | None, timeout: float) -> None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
        if reader is None or not reader.is_alive():
            with contextlib.suppress(OSError):
                if proc.stdout is not None:
                    proc.stdout.close()
        if stderr is not None:
            stderr.close()
