"""The built-in local test inbox: an aiosmtpd server on 127.0.0.1 that keeps what it receives.

Messages are stored as ``<id>.eml`` plus ``<id>.json`` (envelope, time, size) in the inbox
folder of the data dir, so they survive a restart. No widgets here: the app is told about a new
message through the ``on_message`` callback, which runs on the server's own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP

from mailgui.model.paths import atomic_write_bytes, atomic_write_json, read_json

__all__ = ["InboxMessage", "InboxServer", "InboxStore", "MessagePart", "message_parts"]


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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InboxMessage:
        return cls(
            id=str(data["id"]), mail_from=str(data.get("mail_from", "")),
            rcpt_tos=[str(r) for r in data.get("rcpt_tos") or []],
            received_at=float(data.get("received_at") or 0), size=int(data.get("size") or 0),
            subject=str(data.get("subject", "")), from_header=str(data.get("from_header", "")),
            to_header=str(data.get("to_header", "")), peer=str(data.get("peer", "")),
        )


def _headers_of(data: bytes) -> tuple[str, str, str]:
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    msg = BytesHeaderParser(policy=default_policy).parsebytes(head + b"\r\n\r\n")

    def get(name: str) -> str:
        try:
            return str(msg.get(name, "") or "")
        except (ValueError, IndexError, TypeError):
            return ""

    return get("Subject"), get("From"), get("To")


class InboxStore:
    """The received messages on disk. Thread-safe; all methods do file I/O (worker side)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def add(self, mail_from: str, rcpt_tos: list[str], data: bytes, peer: str = "") -> InboxMessage:
        subject, from_header, to_header = _headers_of(data)
        stamp = time.time()
        with self._lock:
            msg_id = f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(stamp))}-" \
                     f"{int(stamp * 1000) % 1000:03d}-{next(self._counter):04d}"
            item = InboxMessage(msg_id, mail_from, list(rcpt_tos), stamp, len(data), subject,
                                from_header, to_header, peer)
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.folder / f"{msg_id}.eml", data)
            atomic_write_json(self.folder / f"{msg_id}.json", item.to_dict())
        return item

    def list(self) -> list[InboxMessage]:
        """Oldest first."""
        out = []
        for meta in sorted(self.folder.glob("*.json")):
            data = read_json(meta)
            if isinstance(data, dict) and (self.folder / f"{meta.stem}.eml").exists():
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    out.append(InboxMessage.from_dict(data))
        return out

    def path(self, msg_id: str) -> Path:
        return self.folder / f"{Path(msg_id).name}.eml"

    def read(self, msg_id: str) -> bytes:
        return self.path(msg_id).read_bytes()

    def delete(self, msg_id: str) -> None:
        with self._lock:
            for suffix in (".eml", ".json"):
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / f"{Path(msg_id).name}{suffix}").unlink()

    def clear(self) -> None:
        for item in self.list():
            self.delete(item.id)


class _Handler:
    def __init__(self, store: InboxStore, on_message: Callable[[InboxMessage], None] | None):
        self.store = store
        self.on_message = on_message

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        data = envelope.original_content or envelope.content or b""
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        peer = session.peer
        peer_text = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        loop = asyncio.get_running_loop()
        try:
            item = await loop.run_in_executor(
                None, self.store.add, envelope.mail_from, list(envelope.rcpt_tos), data, peer_text
            )
        except OSError as exc:
            return f"451 4.3.0 mailgui could not store the message: {exc.strerror}"
        if self.on_message is not None:
            try:
                self.on_message(item)
            except Exception:  # noqa: BLE001, S110 - the observer must not break the server
                pass
        return f"250 2.0.0 Ok: stored as {item.id}"


class InboxServer:
    """aiosmtpd on 127.0.0.1, on a free port (read back from the bound socket), in a thread.

    ``start()`` blocks until the server listens (call it from a worker); ``stop()`` closes the
    listener and every open connection, stops the loop and joins the thread.
    """

    def __init__(self, store: InboxStore, on_message: Callable[[InboxMessage], None] | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = store
        self.host = host
        self._wanted_port = port
        self.port = 0
        self._handler = _Handler(store, on_message)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._protocols: set[Any] = set()
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self.port != 0

    def start(self, timeout: float = 10.0) -> int:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._run, name="mailgui-inbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the local inbox did not start in time")
        if self._error is not None:
            error = self._error
            self._thread.join(1)
            self._thread = None
            raise error
        return self.port

    def _factory(self) -> SMTP:
        protocol = SMTP(self._handler, hostname="mailgui-inbox", ident="mailgui local test inbox",
                        data_size_limit=0, enable_SMTPUTF8=True, decode_data=False,
                        loop=self._loop)
        self._protocols.add(protocol)
        return protocol

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(
                loop.create_server(self._factory, host=self.host, port=self._wanted_port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for protocol in list(self._protocols):
                transport = getattr(protocol, "transport", None)
                if transport is not None:
                    transport.abort()
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._server.wait_closed())
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    def stop(self, timeout: float = 5.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None
        self.port = 0


@dataclass
class MessagePart:
    depth: int
    content_type: str
    filename: str
    size: int
    disposition: str
    charset: str = ""


def message_parts(data: bytes) -> list[MessagePart]:
    """The MIME tree of a message, flattened with depths (for the inbox viewer)."""
    from mailgui.model.eml import parse_message

    msg = parse_message(data)
    out: list[MessagePart] = []

    def walk(part: Any, depth: int) -> None:
        payload = part.get_payload(decode=not part.is_multipart())
        size = len(payload) if isinstance(payload, bytes | str) else 0
        out.append(MessagePart(depth, part.get_content_type(), part.get_filename() or "", size,
                               part.get_content_disposition() or "",
                               part.get_content_charset() or ""))
        if part.is_multipart():
            for child in part.get_payload():
                walk(child, depth + 1)

    walk(msg, 0)
    return out


def part_payload(data: bytes, index: int) -> tuple[str, bytes]:
    """The suggested file name and the decoded bytes of part ``index`` of a message, numbered
    as ``message_parts`` lists them. Raises IndexError for a multipart container or a bad
    index."""
    import mimetypes

    from mailgui.model.eml import parse_message

    parts = list(parse_message(data).walk())
    part = parts[index]
    if part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        body = payload[0].as_bytes() if isinstance(payload, list) and payload else b""
    elif part.is_multipart():
        raise IndexError("a multipart container has no content of its own")
    else:
        body = part.get_payload(decode=True) or b""
    name = part.get_filename() or ""
    name = name.replace("/", "_").replace("\\", "_").strip(". ") or (
        f"part-{index}{mimetypes.guess_extension(part.get_content_type()) or '.bin'}"
    )
    return name, body
