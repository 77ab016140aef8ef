"""The MIME source of a draft, as mailcore writes it, folded for reading.

``preview(draft, profile)`` goes through ``build_message`` and ``mailcore.wire.serialize`` like
sending does. Long base64 parts are folded to a few lines; for an attachment that mailcore
streams, only the lines that are shown are read and encoded (``Base64Piece.head``/``tail``),
so a 100 MB attachment costs a few KB per preview.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the inbox server process folds sources without building messages
    from mailgui.model.draft import Draft
    from mailgui.model.profiles import Profile

__all__ = [
    "FOLD_MARK",
    "Preview",
    "SourceFolder",
    "fold_bytes",
    "human_size",
    "preview",
    "write_source",
]

HEAD_LINES = 4
TAIL_LINES = 1
LINE_IN = 57  # bytes of input per 76-character base64 line
FOLD_MARK = "\u22ef"  # the folded-lines marker starts with this character
_BOUNDARY = re.compile(rb'boundary="?([^";\r\n]+)"?', re.IGNORECASE)
_CTE_BASE64 = re.compile(rb"^content-transfer-encoding:\s*base64\s*$", re.IGNORECASE)


def human_size(n: int) -> str:
    """A size as every pane shows it, in decimal units as file managers and disk makers count
    (1 KB = 1000 bytes, 1 MB = 1000 KB): "512 bytes", "10.2 KB", "1.5 GB"."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} bytes"


class SourceFolder:
    """Turns message bytes, fed in chunks of any size, into display text with long base64
    bodies folded to ``head`` + a marker line + ``tail`` lines.

    Knows MIME just enough: it tracks the boundaries declared in Content-Type headers and the
    Content-Transfer-Encoding of each part. ``max_lines`` caps everything else (0 = no cap).
    """

    def __init__(self, *, fold: bool = True, head: int = HEAD_LINES, tail: int = TAIL_LINES,
                 max_lines: int = 0) -> None:
        self.fold = fold
        self.head = head
        self.tail = tail
        self.max_lines = max_lines
        self.lines: list[str] = []
        self.folded_parts = 0
        self._pending = b""
        self._in_headers = True
        self._is_base64 = False
        self._boundaries: set[bytes] = set()
        self._b64_run: list[bytes] = []
        self._b64_hidden = 0
        self._b64_hidden_bytes = 0
        self._dropped = 0

    def feed(self, data: bytes) -> None:
        data = self._pending + data
        parts = data.split(b"\n")
        self._pending = parts.pop()
        for line in parts:
            self._line(line.rstrip(b"\r"))

    def close(self) -> list[str]:
        if self._pending:
            self._line(self._pending.rstrip(b"\r"))
            self._pending = b""
        self._flush_b64()
        if self._dropped:
            self._out(f"{FOLD_MARK} {self._dropped:,} more lines not shown {FOLD_MARK}", force=True)
        return self.lines

    def text(self) -> str:
        return "\n".join(self.close())

    @property
    def full(self) -> bool:
        """True once ``max_lines`` lines are out: whatever is fed from now on is only counted."""
        return bool(self.max_lines) and len(self.lines) >= self.max_lines

    def skip(self, lines: int) -> None:
        """Count ``lines`` more lines as not shown without feeding them (once ``full``, feeding
        them would only count them, one Python call per line)."""
        self._flush_b64()
        self._pending = b""
        self._dropped += lines

    # -- internals -----------------------------------------------------------------------
    def _out(self, text: str, force: bool = False) -> None:
        if not force and self.max_lines and len(self.lines) >= self.max_lines:
            self._dropped += 1
            return
        self.lines.append(text)

    def _decode(self, line: bytes) -> str:
        return line.decode("utf-8", "replace")

    def _line(self, line: bytes) -> None:
        if line.startswith(b"--") and self._boundaries:
            marker = line[2:]
            closing = marker.endswith(b"--")
            name = marker[:-2] if closing else marker
            if name.rstrip() in self._boundaries:
                self._flush_b64()
                self._out(self._decode(line))
                self._in_headers = not closing
                self._is_base64 = False
                return
        if self._in_headers:
            if not line:
                self._in_headers = False
            else:
                match = _BOUNDARY.search(line)
                if match:
                    self._boundaries.add(match.group(1).strip())
                if _CTE_BASE64.match(line):
                    self._is_base64 = True
            self._out(self._decode(line))
            return
        if self._is_base64 and self.fold and line:
            self._b64(line)
            return
        self._flush_b64()
        self._out(self._decode(line))

    def fold_here(self, lines: int, approx_bytes: int) -> None:
        """Mark ``lines`` base64 lines that were never fed (the writer skipped them): the
        lines fed before are shown as they are, then the marker."""
        self._flush_b64()
        self.folded_parts += 1
        self._out(f"{FOLD_MARK} {lines:,} lines of base64 folded (about {approx_bytes:,} bytes) "
                  f"{FOLD_MARK}")

    def _b64(self, line: bytes) -> None:
        keep = self.head + self.tail
        self._b64_run.append(line)
        if len(self._b64_run) > keep + 1:
            # the oldest line beyond the head goes into the hidden middle
            hidden = self._b64_run.pop(self.head)
            self._b64_hidden += 1
            self._b64_hidden_bytes += len(hidden) * 3 // 4

    def _flush_b64(self) -> None:
        run = self._b64_run
        if not run:
            return
        if self._b64_hidden:
            self.folded_parts += 1
            head, tail = run[: self.head], run[self.head :]
            # one of the tail-candidates is also hidden
            hidden = len(tail) - self.tail
            self._b64_hidden += hidden
            self._b64_hidden_bytes += sum(len(x) * 3 // 4 for x in tail[:hidden])
            for line in head:
                self._out(self._decode(line))
            self._out(
                f"{FOLD_MARK} {self._b64_hidden:,} lines of base64 folded "
                f"(about {self._b64_hidden_bytes:,} bytes) {FOLD_MARK}"
            )
            for line in tail[hidden:]:
                self._out(self._decode(line))
        else:
            for line in run:
                self._out(self._decode(line))
        self._b64_run = []
        self._b64_hidden = 0
        self._b64_hidden_bytes = 0


def fold_bytes(
    chunks: Iterable[bytes], *, fold: bool = True, max_lines: int = 0
) -> tuple[str, int]:
    """Display text of a message's bytes and the number of folded parts."""
    folder = SourceFolder(fold=fold, max_lines=max_lines)
    for chunk in chunks:
        folder.feed(chunk)
    return folder.text(), folder.folded_parts


@dataclass
class Preview:
    text: str
    size: int
    message_id: str | None
    folded_parts: int
    error: str = ""


def serialized_draft(draft: Draft, profile: Profile | None, *, with_bcc: bool = False) -> Any:
    """The bytes ``draft`` becomes through ``profile`` (a ``mailcore.wire`` Serialized, CRLF
    line ends): the one serialisation of a draft that the source pane shows, the clipboard
    copies and Save as .eml writes, so each shows the very bytes that go out. ``with_bcc``:
    a saved draft, which keeps its Bcc header as Thunderbird's drafts do (sent bytes never
    do). Raises what ``build_message`` raises."""
    from mailcore.message import message_needs_smtputf8
    from mailcore.wire import serialize
    from mailgui.model.message import build_message

    message = build_message(draft, profile)
    if with_bcc and message.bcc:
        message.extra_headers["Bcc"] = ", ".join(message.bcc)
    # an address only SMTPUTF8 carries: shown as it goes to a server that offers it (one that
    # does not refuses it before anything is sent)
    return serialize(message, linesep="\r\n", utf8=message_needs_smtputf8(message))


def preview(draft: Draft, profile: Profile | None, *, fold: bool = True,
            max_lines: int = 20000) -> Preview:
    """The source text of the message ``draft`` would become (raises what build_message
    raises). With ``fold``, a long streamed attachment is read only where it is shown."""
    data = serialized_draft(draft, profile)
    folder = SourceFolder(fold=fold, max_lines=max_lines if fold else 0)
    keep = folder.head + folder.tail
    for piece in data.pieces:
        if isinstance(piece, bytes):
            folder.feed(piece)
        elif fold and piece.line_count > keep + 1:
            folder.feed(piece.head(folder.head))
            hidden = piece.line_count - keep
            folder.fold_here(hidden, hidden * LINE_IN)
            folder.feed(piece.tail(folder.tail))
        else:
            for chunk in piece.chunks():
                folder.feed(chunk)
    text = folder.text()
    return Preview(text, data.size, data.message_id, folder.folded_parts)


def write_source(draft: Draft, profile: Profile | None, path: Path, *,
                 with_bcc: bool = True) -> int:
    """Write the full message (as an .eml file, CRLF line ends) to ``path``; return its size.

    ``with_bcc``: the file is a saved draft, so it carries the Bcc header, as Thunderbird's
    drafts do (opened again, the Bcc field is back); the bytes that are SENT never hold it
    (``build_message`` and sending leave Bcc to the envelope)."""
    from mailgui.model.paths import atomic_write_bytes

    data = serialized_draft(draft, profile, with_bcc=with_bcc)
    if data.size < 32 * 1024 * 1024:
        atomic_write_bytes(path, data.getvalue())
    else:
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:
            for chunk in data.chunks():
                f.write(chunk)
        os.replace(tmp, path)
    return data.size
