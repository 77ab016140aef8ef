"""SMTP client connections: ``smtplib.SMTP`` with pipelining, streaming and a
transcript.

:class:`SMTP` and :class:`SMTP_SSL` are subclasses of the standard library's
classes, so everything that works on an ``smtplib`` connection (and every
``smtplib`` exception) works here. They add:

* :meth:`SMTP.send_serialized`, which sends a :class:`mailcore.wire.Serialized`
  message: MAIL, RCPT and DATA in one round trip when the server offers
  PIPELINING (RFC 2920), and the content written in chunks as it is produced;
* a transcript: set ``transcript`` to a callable ``(event, text)`` and it is
  told every line the client sends and the server answers, with AUTH secrets
  replaced by ``********`` and the message content summarised.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mailcore.wire import Serialized

__all__ = ["SMTP", "SMTP_SSL", "TranscriptCallback", "SendReply"]

logger = logging.getLogger("mailcore.smtp")

TranscriptCallback = Callable[[str, str], None]
CRLF = b"\r\n"
REDACTED = "********"


class SendReply(tuple):
    """What the server said about one message: ``(refused, code, text)``.

    ``refused`` maps each refused recipient to ``(code, text)`` (as
    ``smtplib.SMTP.sendmail`` returns), ``code``/``text`` are the server's
    final answer to the message (``250``, ``"2.0.0 Ok: queued as 4F7A"``).
    """

    __slots__ = ()

    def __new__(cls, refused: dict[str, tuple[int, bytes]], code: int, text: bytes) -> SendReply:
        return tuple.__new__(cls, (refused, code, text))

    refused = property(lambda self: self[0])
    code = property(lambda self: self[1])
    text = property(lambda self: self[2])


def _stuff_dots(chunk: bytes, at_line_start: bool) -> bytes:
    """Double every dot that starts a line (RFC 5321 section 4.5.2)."""
    chunk = chunk.replace(b"\r\n.", b"\r\n..")
    if at_line_start and chunk[:1] == b".":
        chunk = b"." + chunk
    return chunk


class _Transcribing:
    """The parts shared by the plain and the implicit-TLS connection."""

    transcript: TranscriptCallback | None = None
    _in_auth = False
    _in_content = False

    # -- transcript -------------------------------------------------------
    def _note(self, event: str, text: str) -> None:
        hook = self.transcript
        if hook is not None:
            try:
                hook(event, text)
            except Exception:  # noqa: BLE001 - a broken observer must not break sending
                logger.exception("transcript callback failed")
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", event, text)

    def _observed(self) -> bool:
        return self.transcript is not None or logger.isEnabledFor(logging.DEBUG)

    def send(self, s: Any) -> None:
        if self._in_content:
            super().send(s)  # type: ignore[misc]
            return
        if self._observed():
            text = s.decode("ascii", "replace") if isinstance(s, bytes) else str(s)
            for line in text.rstrip("\r\n").split("\r\n"):
                upper = line.upper()
                if upper.startswith("AUTH "):
                    mechanism = line.split(" ", 2)[1] if " " in line else ""
                    line = f"AUTH {mechanism} {REDACTED}" if line.count(" ") >= 2 else line
                    self._in_auth = True
                elif self._in_auth:
                    line = REDACTED
                self._note("client", line)
        elif isinstance(s, str | bytes) and s[:5].upper() in ("AUTH ", b"AUTH "):
            self._in_auth = True
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        code, message = super().getreply()  # type: ignore[misc]
        if code != 334:
            self._in_auth = False
        if self._observed():
            lines = message.decode("utf-8", "replace").split("\n") if message else [""]
            for index, line in enumerate(lines):
                sep = " " if index == len(lines) - 1 else "-"
                self._note("server", f"{code}{sep}{line}".rstrip())
        return code, message

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> Any:
        if self._observed():
            self._note("connect", f"{host}:{port}")
        started = time.monotonic()
        result = super().connect(host, port, source_address)  # type: ignore[misc]
        if self._observed():
            version = getattr(self.sock, "version", None)
            tls = f" over {version()}" if callable(version) and version() else ""
            self._note("info", f"connected in {(time.monotonic() - started) * 1000:.0f} ms{tls}")
        return result

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        result = super().starttls(*args, **kwargs)  # type: ignore[misc]
        if self._observed():
            sock = self.sock
            version = sock.version() if hasattr(sock, "version") else "TLS"
            cipher = sock.cipher()[0] if hasattr(sock, "cipher") and sock.cipher() else ""
            self._note("tls", f"TLS started: {version} {cipher}".rstrip())
        return result

    # -- sending ------------------------------------------------------------
    def send_serialized(
        self,
        from_addr: str,
        to_addrs: Sequence[str],
        data: Serialized,
        mail_options: Iterable[str] = (),
        rcpt_options: Iterable[str] = (),
    ) -> SendReply:
        """Send one message, as ``sendmail`` does but pipelined and streamed.

        Raises the same exceptions as ``smtplib.SMTP.sendmail``:
        SMTPSenderRefused, SMTPRecipientsRefused (all refused), SMTPDataError;
        a partial refusal is returned in ``SendReply.refused``.
        """
        self.ehlo_or_helo_if_needed()
        mail_options = list(mail_options)
        rcpt_options = list(rcpt_options)
        esmtp_opts = []
        if self.does_esmtp and self.has_extn("size"):
            esmtp_opts.append("size=%d" % data.size)
        esmtp_opts.extend(mail_options)
        if any(x.lower() == "smtputf8" for x in mail_options):
            if not self.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
            self.command_encoding = "utf-8"
        if isinstance(to_addrs, str):
            to_addrs = [to_addrs]

        mail_cmd = "mail FROM:%s%s" % (smtplib.quoteaddr(from_addr), _options(esmtp_opts))
        rcpt_cmds = [
            "rcpt TO:%s%s" % (smtplib.quoteaddr(addr), _options(rcpt_options)) for addr in to_addrs
        ]
        pipelining = self.does_esmtp and self.has_extn("pipelining")
        senderrs: dict[str, tuple[int, bytes]] = {}
        if pipelining:
            commands = [mail_cmd, *rcpt_cmds, "data"]
            self.send("".join(c + "\r\n" for c in commands).encode(self.command_encoding))
            replies = [self.getreply() for _ in commands]
            mail_reply, rcpt_replies, data_reply = replies[0], replies[1:-1], replies[-1]
            for addr, (code, resp) in zip(to_addrs, rcpt_replies):
                if code not in (250, 251):
                    senderrs[addr] = (code, resp)
        else:
            mail_reply = self.docmd(mail_cmd)
            data_reply = None
            if mail_reply[0] == 250:
                for addr, cmd in zip(to_addrs, rcpt_cmds):
                    code, resp = self.docmd(cmd)
                    if code not in (250, 251):
                        senderrs[addr] = (code, resp)
                        if code == 421:
                            self.close()
                            raise smtplib.SMTPRecipientsRefused(senderrs)
                if len(senderrs) < len(to_addrs):
                    data_reply = self.docmd("data")

        code, resp = mail_reply
        if code != 250:
            self._abandon(data_reply)
            if code == 421:
                self.close()
            else:
                self._rset()
            raise smtplib.SMTPSenderRefused(code, resp, from_addr)
        if len(senderrs) == len(to_addrs):
            self._abandon(data_reply)
            self._rset()
            raise smtplib.SMTPRecipientsRefused(senderrs)
        assert data_reply is not None
        code, resp = data_reply
        if code != 354:
            self._rset()
            raise smtplib.SMTPDataError(code, resp)

        code, resp = self._send_content(data)
        if code != 250:
            if code == 421:
                self.close()
            else:
                self._rset()
            raise smtplib.SMTPDataError(code, resp)
        return SendReply(senderrs, code, resp)

    def _abandon(self, data_reply: tuple[int, bytes] | None) -> None:
        """If the server accepted DATA although the transaction failed, end
        the (empty) content so the conversation stays in step."""
        if data_reply is not None and data_reply[0] == 354:
            self.send(b".\r\n")
            self.getreply()

    def _send_content(self, data: Serialized) -> tuple[int, bytes]:
        """Write the message content (dot-stuffed) and the final dot; return
        the server's reply."""
        if self.sock is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        started = time.monotonic()
        at_line_start = True
        last = b""
        total = 0
        buffer: list[bytes] = []
        buffered = 0
        self._in_content = True
        try:
            for chunk, may_need_stuffing in data.stuffable_chunks():
                if may_need_stuffing:
                    if last == b"\r" and chunk[:2] == b"\n.":
                        chunk = b"\n.." + chunk[2:]
                    chunk = _stuff_dots(chunk, at_line_start)
                at_line_start = chunk[-2:] == CRLF or (last == b"\r" and chunk == b"\n")
                last = chunk[-1:]
                total += len(chunk)
                # Small pieces are gathered into one write; large ones go at once.
                buffer.append(chunk)
                buffered += len(chunk)
                if buffered >= 65536:
                    self.send(b"".join(buffer))
                    buffer.clear()
                    buffered = 0
            buffer.append(b".\r\n" if at_line_start and total else b"\r\n.\r\n")
            self.send(b"".join(buffer))
        finally:
            self._in_content = False
        if self._observed():
            elapsed = (time.monotonic() - started) * 1000
            self._note("data", f"[{total:,} bytes of message content in {elapsed:.0f} ms]")
            self._note("client", ".")
        return self.getreply()


def _options(options: Sequence[str]) -> str:
    return (" " + " ".join(options)) if options else ""


class SMTP(_Transcribing, smtplib.SMTP):
    """``smtplib.SMTP`` with pipelined, streamed sending and a transcript."""

    def __init__(self, *args: Any, transcript: TranscriptCallback | None = None, **kwargs: Any):
        self.transcript = transcript
        super().__init__(*args, **kwargs)


class SMTP_SSL(_Transcribing, smtplib.SMTP_SSL):  # noqa: N801 - mirrors smtplib's name
    """``smtplib.SMTP_SSL`` (implicit TLS) with the same additions."""

    def __init__(self, *args: Any, transcript: TranscriptCallback | None = None, **kwargs: Any):
        self.transcript = transcript
        super().__init__(*args, **kwargs)
