"""The built-in local test inbox: an SMTP server on 127.0.0.1 that keeps what it receives.

Messages are stored as ``<id>.eml`` plus ``<id>.json`` (envelope, time, size) and
``<id>.details.json`` (what the viewer shows: headers, parts, bodies, folded source) in the
inbox folder of the data dir, so they survive a restart. No widgets here.

Group commit: the server stores a burst of arrivals as one batch: their bytes and envelopes
are appended to ``ingest.journal`` and made durable with one ``fdatasync``; the client's "250"
comes after that (and after the app has heard of the message). From then on the message is
listed and readable from the journal (``list``, ``read``; the app is told where its record
is). Its ``.eml`` and ``.json`` are written later, by the server's idle thread once no mail
has come in for a moment (``materialise``, an ``.eml`` by a rename), because creating a file
costs more than all the rest of a message (0.7 ms of CPU per file on this ext4, against 3 us
for an append). When every message has its files, a checkpoint (``InboxStore.checkpoint``:
one ``syncfs``, or an ``fsync`` per file where there is none) syncs them and empties the
journal. After a crash or a power loss, ``InboxStore.recover`` (run by the server before it
listens) takes back from the journal every message whose files are missing or short: a "250"
is never lost. Deleted messages get a record in the journal (``forget``) so that they don't
come back; a message the app deleted just before a crash can come back (the retention limits
still apply to it). Messages over ``JOURNAL_INLINE`` bytes are not copied into the journal:
their ``.eml`` is synced on its own before the journal entry.

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
# The server's CPU priority below the app's, in the app's own scheduling group (it shares the
# app's session): while it takes in a big message or a burst it uses a core, and the GUI
# thread, when it wakes for a frame, gets the CPU before it instead of waiting for its time
# slice. Its share against other programs (a client flooding it) is the app's, unchanged.
INBOX_NICE = 5
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
        self._lock = threading.RLock()  # (enforce reads the folder under it: list)
        self._counter = itertools.count(1)
        self.max_messages = max_messages  # 0: no limit
        self.max_bytes = max_bytes  # 0: no limit
        # the server's view of what is kept, oldest first: id -> size; read from the folder
        # once (None: not yet, or told to read it again after the app deleted something)
        self._index: dict[str, int] | None = None
        # messages held by the journal alone (server side), oldest first: id -> (item, offset
        # of the bytes in the journal, size); what it knows of the journal (app side)
        self._unwritten: dict[str, tuple[InboxMessage, int, int]] = {}
        self._pending_bytes = 0
        self._located: dict[str, int] = {}
        self._deleted: set[str] = set()  # (app side) deleted here, still in the journal
        self._made = False  # the folder exists (made once by begin_batch)

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
            if not self.max_messages and not self.max_bytes:
                return []  # no limits (and no walk over every message per batch)
            index = self._load_index()
            if not self.max_bytes and len(index) <= self.max_messages:
                return []
            total = sum(index.values())
            removed: list[str] = []
            for msg_id in list(index):
                over_count = self.max_messages and len(index) > self.max_messages
                over_size = self.max_bytes and total > self.max_bytes
                if not (over_count or over_size) or len(index) <= 1:
                    break
                total -= index.pop(msg_id)
                self._unlink(msg_id)
                gone = self._unwritten.pop(msg_id, None)
                if gone is not None:
                    self._pending_bytes -= gone[2]
                removed.append(msg_id)
            if removed and self._journal.exists():
                self._journal.append([_tombstone(removed)])
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
        self.materialise()
        return batch.items

    def begin_batch(self, arrivals: Sequence[tuple[str, list[str], bytes, str]]) -> Batch:
        """Give each message its id and list entry and append them all to the journal (not
        synced yet; a big message's .eml is written and synced now)."""
        if not self._made:  # (once: a mkdir and a stat per batch showed in the profile)
            self.folder.mkdir(parents=True, exist_ok=True)
            self._made = True
        batch = Batch()
        records: list[bytes] = []
        at = 0
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
                record = _record(item, b"")
                batch.data.append(None)
            else:
                record = _record(item, data)
                batch.data.append(data)
            # where the record and its bytes will be in the journal, from this batch's start
            inline = batch.data[-1] is not None
            batch.spans.append((at, at + len(record) - len(data) if inline else -1,
                                len(data) if inline else 0))
            at += len(record)
            records.append(record)
            batch.items.append(item)
            batch.details.append(details)
        start = self._journal.append(records)
        batch.spans = [(start + rec, start + off if off >= 0 else -1, size)
                       for rec, off, size in batch.spans]
        return batch

    def sync_journal(self) -> None:
        """Make what ``begin_batch`` appended durable (one ``fdatasync``; any thread)."""
        self._journal.sync()

    def write_batch(self, batch: Batch) -> None:
        """Publish a batch whose journal records are durable: each message is listed and
        readable from the journal at once; its ``.eml`` and ``.json`` are written later, when
        the server is idle (``materialise``). Creating a file costs more than a whole message
        otherwise does (0.7 ms of CPU per file on ext4 here, against 3 us for an append), so
        none is made while mail comes in. Big messages (whose ``.eml`` is already written and
        synced, or whose details were worked out) get their files now."""
        with self._lock:
            for item, details, data, (_record_at, offset, size) in zip(
                    batch.items, batch.details, batch.data, batch.spans, strict=True):
                if details is not None:
                    with contextlib.suppress(ValueError, TypeError, OSError):
                        self.save_details(details)
                if data is None:  # a big message: its .eml is there, its .json now
                    _write_plain(self.folder / f"{item.id}.json", _meta_bytes(item))
                    self._journal.written(item.id)
                else:
                    self._unwritten[item.id] = (item, offset, size)
                    self._pending_bytes += size
                if self._index is not None:
                    self._index[item.id] = item.size
        batch.data = []  # the bodies are in the journal: not kept in memory

    # -- the files, written behind ----------------------------------------------------------

    @property
    def unwritten(self) -> int:
        """Messages held only by the journal so far (their files come at ``materialise``)."""
        return len(self._unwritten)

    @property
    def unwritten_bytes(self) -> int:
        return self._pending_bytes

    def locate(self, msg_id: str, record: int) -> None:
        """Where the journal holds a message's record (the app's side hears it from the server
        and reads a message from there until its .eml is written)."""
        if record >= 0:
            with self._lock:
                self._located[msg_id] = record

    def materialise(self, limit: int = 0) -> int:
        """Write the ``.eml`` and ``.json`` of up to ``limit`` (0: all) messages the journal
        holds alone, oldest first, without a sync of their own (the next checkpoint syncs
        them); return how many were written."""
        done = 0
        while not limit or done < limit:
            with self._lock:
                if not self._unwritten:
                    break
                msg_id = next(iter(self._unwritten))
                item, offset, size = self._unwritten[msg_id]
                data = self._journal.read_at(offset, size)
                # (an OSError leaves it to the journal, which then stays: tried again later;
                # a rename, so that the app, reading meanwhile, never sees half a file)
                part = self.folder / f"{msg_id}.eml.part"
                _write_plain(part, data)
                os.replace(part, self.path(msg_id))
                _write_plain(self.folder / f"{msg_id}.json", _meta_bytes(item))
                del self._unwritten[msg_id]
                self._pending_bytes -= size
                self._journal.written(msg_id)
            done += 1
        return done

    def forget(self, ids: Sequence[str]) -> None:
        """Messages deleted (by the app): their files go, the journal forgets them (a record
        that says so, so that neither ``list`` nor ``recover`` brings them back)."""
        ids = [i for i in ids if i]
        if not ids:
            return
        with self._lock:
            for msg_id in ids:
                gone = self._unwritten.pop(msg_id, None)
                if gone is not None:
                    self._pending_bytes -= gone[2]
                self._located.pop(msg_id, None)
                self._unlink(msg_id)
                if self._index is not None:
                    self._index.pop(msg_id, None)
            if self._journal.exists():
                self._journal.append([_tombstone(ids)])

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

    def checkpoint(self) -> bool:
        """Make every file written since the last checkpoint durable, then empty the journal,
        unless it still holds messages without files or took new records meanwhile (then it
        stays, and False is returned)."""
        return self._journal.checkpoint(lambda: not self._unwritten)

    def recover(self, *, defer: bool = False) -> list[str]:
        """After a crash: every message the journal holds whose .eml is missing or short or
        whose .json is missing is written again from it (``defer``: left to ``materialise``,
        as the server does, so that it listens at once), then a checkpoint. Returns the ids
        of those messages. (The server calls this before it listens; nothing else writes the
        folder then.)"""
        repaired: list[str] = []
        for part in self.folder.glob("*.eml.part"):  # a crash while one was written
            with contextlib.suppress(OSError):
                part.unlink()
        records, removed = self._journal.scan()
        for meta, _record_at, offset, size in records:
            try:
                item = InboxMessage.from_dict(meta)
            except (KeyError, TypeError, ValueError):
                continue
            if item.id in removed:
                continue
            eml = self.path(item.id)
            meta_path = self.folder / f"{item.id}.json"
            try:
                have = eml.stat().st_size
            except FileNotFoundError:
                have = -1
            if have != item.size and size != item.size:
                continue  # a big message whose own file never made it: nothing to restore
            if have == item.size and meta_path.exists() and read_json(meta_path) is not None:
                continue
            if have != item.size and size == item.size:
                with self._lock:
                    self._unwritten[item.id] = (item, offset, size)
                    self._pending_bytes += size
            else:  # only its .json is missing
                _write_plain(meta_path, _meta_bytes(item))
                self._journal.written(item.id)
            repaired.append(item.id)
        with self._lock:
            self._index = None
        if not defer:
            self.materialise()
            self.checkpoint()
        return repaired

    def list(self) -> list[InboxMessage]:
        """Oldest first: the messages with files, and those the journal holds alone (just
        received, their files not written yet)."""
        out = []
        seen: set[str] = set()
        for meta in sorted(self.folder.glob("*.json")):
            if meta.name.endswith((".details.json", ".checks.json", ".netchecks.json")) or (
                    meta.name == "read-state.json"):
                continue
            data = read_json(meta)
            if isinstance(data, dict) and (self.folder / f"{meta.stem}.eml").exists():
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    out.append(InboxMessage.from_dict(data))
                    seen.add(out[-1].id)
        with self._lock:
            unwritten = [item for item, _o, _s in self._unwritten.values()]
        if not unwritten and not self._journal.exists():
            self._deleted.clear()  # (checkpointed: nothing left to bring back)
        elif unwritten or self._journal.exists():
            extra: list[InboxMessage] = []
            if unwritten:  # the server's own store: it knows
                extra = unwritten
            else:  # the app's: what the journal holds, less what it says was deleted
                records, removed = self._journal.scan()
                removed |= self._deleted
                for meta, record_at, _offset, size in records:
                    with contextlib.suppress(KeyError, TypeError, ValueError):
                        item = InboxMessage.from_dict(meta)
                        if item.id not in removed and size == item.size:
                            self.locate(item.id, record_at)
                            extra.append(item)
            added = [m for m in extra if m.id not in seen]
            if added:
                out = sorted(out + added, key=lambda m: m.id)
        return out

    def path(self, msg_id: str) -> Path:
        return self.folder / f"{Path(msg_id).name}.eml"

    def file(self, msg_id: str) -> Path:
        """The message's .eml, written now from the journal if it has none yet (for a
        program that wants a file)."""
        path = self.path(msg_id)
        if not path.exists():
            atomic_write_bytes(path, self.read(msg_id))
        return path

    def details_path(self, msg_id: str) -> Path:
        return self.folder / f"{Path(msg_id).name}.details.json"

    def read(self, msg_id: str) -> bytes:
        """The message as received: its .eml, or the journal's copy while it has none."""
        with self._lock:
            unwritten = self._unwritten.get(msg_id)
            if unwritten is not None:  # (the server's side: the journal is the authority)
                return self._journal.read_at(unwritten[1], unwritten[2])
            known = self._located.get(msg_id)
        try:
            return self.path(msg_id).read_bytes()
        except FileNotFoundError:
            if msg_id in self._deleted:
                raise
        data = self._journal.find(msg_id, known)
        if data is not None:
            return data
        return self.path(msg_id).read_bytes()  # written meanwhile, or FileNotFoundError

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
            self._deleted.add(msg_id)  # the journal may still hold it (the server is told)
            self._located.pop(msg_id, None)

    def clear(self, deleted: Callable[[list[str]], None] | None = None) -> None:
        """Delete every message it can (``deleted(ids)`` is told which); then raise the first
        failure, if any."""
        failures: list[OSError] = []
        gone: list[str] = []
        for item in self.list():
            try:
                self.delete(item.id)
            except OSError as exc:
                failures.append(exc)
            else:
                gone.append(item.id)
        if deleted is not None:
            deleted(gone)
        if failures:
            raise failures[0]


@dataclass
class Batch:
    """Messages of one group commit, between ``begin_batch`` and ``write_batch``."""

    items: list[InboxMessage] = field(default_factory=list)
    details: list[MessageDetails | None] = field(default_factory=list)
    data: list[bytes | None] = field(default_factory=list)  # None: the .eml is written
    # (offset of the record, of its bytes (-1: none), their size) in the journal
    spans: list[tuple[int, int, int]] = field(default_factory=list)


def _record(item: InboxMessage, data: bytes) -> bytes:
    meta = json.dumps(item.to_dict(), ensure_ascii=True).encode("ascii")
    crc = zlib.crc32(data, zlib.crc32(meta))
    return b"".join((_RECORD.pack(_MAGIC, len(meta), len(data), crc), meta, data))


def _tombstone(ids: Sequence[str]) -> bytes:
    """A journal record saying that these messages were deleted."""
    meta = json.dumps({"removed": list(ids)}, ensure_ascii=True).encode("ascii")
    return b"".join((_RECORD.pack(_MAGIC, len(meta), 0, zlib.crc32(meta)), meta))


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
    batch. It is where a message lives until its files are written (``materialise``); a
    checkpoint empties it once every message has its files and they are synced. Records that
    say a message was deleted (``{"removed": [...]}``, no bytes) keep ``list`` and ``recover``
    from bringing it back. Only the server appends; the app reads records at known offsets."""

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

    def exists(self) -> bool:
        return self._fd is not None or self.path.exists()

    def append(self, records: list[bytes]) -> int:
        """Append the records in one write; return the offset where the first one starts."""
        data = b"".join(records)
        with self._lock:
            fd = self._open()
            start = self.size
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            self.size += len(data)
        return start

    def read_at(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` (the server's own records: no check needed)."""
        with self._lock:
            fd = self._open()
            data = os.pread(fd, size, offset)
        if len(data) != size:
            raise OSError(f"the journal {self.path} is short at {offset}")
        return data

    def find(self, msg_id: str, known: int | None) -> bytes | None:
        """A message's bytes read from the journal file, its record (at ``known``, the offset
        the server gave, else found by a scan) checked: the app's side, where the journal may
        have been checkpointed and begun again since. None if it is not there."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return None
        with f:
            if known is not None:
                f.seek(known)
                found = _read_record(f)
                if found is not None and found[0].get("id") == msg_id:
                    return found[1]
            records, removed = self._scan_file(f)
            if msg_id in removed:
                return None
            for meta, _record_at, offset, size in records:
                if meta.get("id") == msg_id and size:
                    f.seek(offset)
                    data = f.read(size)
                    return data if len(data) == size else None
        return None

    def sync(self) -> None:
        """(Not under the lock: appends may go on meanwhile; the server runs this and the
        checkpoint, which closes the file, on one thread.)"""
        fd = self._fd
        if fd is not None:
            (getattr(os, "fdatasync", None) or os.fsync)(fd)

    def written(self, msg_id: str) -> None:
        with self._lock:
            self._pending.append(msg_id)

    def scan(self) -> tuple[list[tuple[dict[str, Any], int, int, int]], set[str]]:
        """The whole records in the journal, as (meta, offset of the record, of its bytes, their
        size), and the ids
        it says were deleted (a torn last record, never acknowledged, left out)."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return [], set()
        with f:
            return self._scan_file(f)

    @staticmethod
    def _scan_file(f: IO[bytes]) -> tuple[list[tuple[dict[str, Any], int, int, int]], set[str]]:
        out: list[tuple[dict[str, Any], int, int, int]] = []
        removed: set[str] = set()
        f.seek(0)
        pos = 0
        while True:
            head = f.read(_RECORD.size)
            if len(head) < _RECORD.size:
                break
            magic, meta_len, data_len, crc = _RECORD.unpack(head)
            if magic != _MAGIC or meta_len > HEADER_LIMIT * 4:
                break
            meta = f.read(meta_len)
            data = f.read(data_len)
            if len(meta) != meta_len or len(data) != data_len:
                break
            if zlib.crc32(data, zlib.crc32(meta)) != crc:
                break
            record, start = pos, pos + _RECORD.size + meta_len
            pos = start + data_len
            with contextlib.suppress(ValueError):
                parsed = json.loads(meta)
                if isinstance(parsed, dict):
                    if "removed" in parsed and "id" not in parsed:
                        removed.update(str(i) for i in parsed["removed"] or [])
                    else:
                        out.append((parsed, record, start, data_len))
        return out, removed

    def records(self) -> list[tuple[dict[str, Any], bytes]]:
        """(meta, bytes) of each whole record (tests and tools; ``scan`` for the offsets)."""
        records, _removed = self.scan()
        out = []
        for meta, _record_at, offset, size in records:
            with open(self.path, "rb") as f:
                f.seek(offset)
                out.append((meta, f.read(size)))
        return out

    def checkpoint(self, quiet: Callable[[], bool] = lambda: True) -> bool:
        """Sync the files written since the last checkpoint; then, if ``quiet()`` (no message
        is held by the journal alone) and nothing was appended meanwhile, remove the journal.
        Returns whether it was removed (or there was none)."""
        with self._lock:
            pending = list(self._pending)
            size = self.size if self._fd is not None else -1
            if not pending and self._fd is None and not self.path.exists():
                return True
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
        with self._lock:
            del self._pending[:len(pending)]
            if not quiet() or (self._fd is not None and self.size != size):
                return False  # still needed (or written to while the files were synced)
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.path.unlink(missing_ok=True)  # the folder holds only messages again
            self.size = 0
            return True

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _read_record(f: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """The record at the file's position, if whole and intact."""
    head = f.read(_RECORD.size)
    if len(head) < _RECORD.size:
        return None
    magic, meta_len, data_len, crc = _RECORD.unpack(head)
    if magic != _MAGIC or meta_len > HEADER_LIMIT * 4:
        return None
    meta = f.read(meta_len)
    data = f.read(data_len)
    if len(meta) != meta_len or len(data) != data_len or \
            zlib.crc32(data, zlib.crc32(meta)) != crc:
        return None
    try:
        parsed = json.loads(meta)
    except ValueError:
        return None
    return (parsed, data) if isinstance(parsed, dict) else None


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
               "--max-messages", str(limits[0]), "--max-bytes", str(limits[1]),
               "--nice", str(INBOX_NICE)]
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
                 on_checked: Callable[[str], None] | None = None,
                 on_messages: Callable[[list[InboxMessage]], None] | None = None) -> None:
        self.store = store
        self.on_messages = on_messages  # the messages of one read from the pipe, in one call
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
                heard: list[InboxMessage] = []
                for line in lines:
                    self._line(proc, line.decode("utf-8", "replace").strip(), acks, heard)
                if heard and self.on_messages is not None:  # one call (one signal) per read
                    with contextlib.suppress(Exception):
                        self.on_messages(heard)
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

    def _line(self, proc: subprocess.Popen[bytes], line: str, acks: list[str],
              heard: list[InboxMessage]) -> None:
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
                fields = json.loads(line)
                item = InboxMessage.from_dict(fields)
            except (KeyError, TypeError, ValueError):
                return
            at = fields.get("at")
            if isinstance(at, int):  # read from the journal until its .eml is written
                self.store.locate(item.id, at)
            if self.on_message is not None:
                with contextlib.suppress(Exception):  # the observer must not stop the reader
                    self.on_message(item)
            heard.append(item)
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

    def forget(self, ids: Sequence[str]) -> None:
        """Tell the process that these messages were deleted (``InboxStore.delete``): it
        drops them from the journal and from what it still has to write."""
        ids = list(ids)
        for start in range(0, len(ids), 500):
            self._command("forget " + " ".join(ids[start:start + 500]) + "\n")

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
