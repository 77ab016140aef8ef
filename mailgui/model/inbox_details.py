"""What the inbox viewer shows of a received message, without the email package reading big bodies.

A message with a 100 MB attachment is 1.4 million lines of base64. The ``email`` package parses
it line by line in Python: seconds of work that hold the GIL. Here a ``Skeleton`` finds the MIME
structure with ``bytes.find`` (C speed), leaves every big body out of the copy that the email
package parses, and measures, folds or decodes those bodies itself in chunks. Every C call
covers at most ``WINDOW`` bytes, so this can run on a worker thread of the GUI process without
holding the GIL for long.

The email package stays the authority on everything else (headers, part types, file names,
which part is the body): if the skeleton and the parsed copy disagree on the structure, the
whole message is parsed the old way.

The inbox server computes ``MessageDetails`` when a message arrives and stores them next to the
``.eml`` (``InboxStore``), so the viewer only loads a small JSON file.
"""

from __future__ import annotations

import binascii
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from email.errors import MultipartInvariantViolationDefect
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from mailgui.model.eml import part_text
from mailgui.model.paths import atomic_write_chunks
from mailgui.model.source import FOLD_MARK, HEAD_LINES, TAIL_LINES, SourceFolder

__all__ = [
    "DETAILS_FORMAT",
    "SOURCE_MAX_LINES",
    "TEXT_CAP",
    "MessageDetails",
    "MessagePart",
    "Skeleton",
    "compute_details",
    "message_parts",
    "part_payload",
    "write_part",
]

DETAILS_FORMAT = 2  # 2: headers as a reader reads them, their raw form and notes
BIG_BODY = 64 * 1024  # bodies larger than this are measured and decoded here, in chunks
TEXT_CAP = 1_000_000  # characters of text and of HTML kept for the viewer
SOURCE_MAX_LINES = 20000
WINDOW = 1 << 20  # bytes per C call: a worker holds the GIL for about a millisecond at most
HEADER_LIMIT = 1 << 20  # a header block longer than this is left to the email package
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_NOT_B64 = bytes(c for c in range(256) if c not in _B64_ALPHABET)  # also drops "=" padding
_SIMPLE_CTE = ("", "7bit", "8bit", "binary", "base64", "quoted-printable")


@dataclass
class MessagePart:
    depth: int
    content_type: str
    filename: str
    size: int
    disposition: str
    charset: str = ""


@dataclass
class MessageDetails:
    id: str
    headers: list[tuple[str, str]]
    parts: list[MessagePart]
    source: str
    text: str  # the text/plain body ("" when there is none)
    html: str
    raw_headers: list[tuple[str, str]] = field(default_factory=list)  # as received, unfolded
    header_notes: list[str] = field(default_factory=list)  # per header: "" or what is wrong

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = DETAILS_FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MessageDetails:
        if data.get("format") != DETAILS_FORMAT:
            raise ValueError(f"unknown details format {data.get('format')!r}")
        return cls(
            id=str(data["id"]),
            headers=[(str(n), str(v)) for n, v in data["headers"]],
            parts=[MessagePart(**p) for p in data["parts"]],
            source=str(data["source"]), text=str(data["text"]), html=str(data["html"]),
            raw_headers=[(str(n), str(v)) for n, v in data.get("raw_headers") or []],
            header_notes=[str(n) for n in data.get("header_notes") or []],
        )


# -- chunked byte work (each C call over at most WINDOW bytes) -------------------------------


def _find(data: bytes, needle: bytes, start: int, end: int) -> int:
    step = WINDOW
    while start < end:
        stop = min(end, start + step + len(needle))
        i = data.find(needle, start, stop)
        if i >= 0:
            return i
        if stop >= end:
            return -1
        start = stop - len(needle) + 1
    return -1


def _count(data: bytes, needle: bytes, start: int, end: int) -> int:
    """Occurrences of a one-byte ``needle``."""
    return sum(data.count(needle, i, min(end, i + WINDOW)) for i in range(start, end, WINDOW))


def _line_windows(data: bytes, start: int, end: int) -> Iterator[tuple[int, int]]:
    """About WINDOW bytes at a time, each ending after a line end when there is one."""
    while start < end:
        stop = min(end, start + WINDOW)
        if stop < end:
            nl = data.rfind(b"\n", start, stop)
            if nl >= 0:
                stop = nl + 1
        yield start, stop
        start = stop


def _decoded(data: bytes, start: int, end: int, cte: str) -> Iterator[bytes]:
    """The decoded body ``data[start:end]``, in chunks (as ``get_payload(decode=True)``)."""
    if cte == "base64":
        carry = b""
        for i in range(start, end, WINDOW):
            chunk = carry + data[i:min(end, i + WINDOW)].translate(None, _NOT_B64)
            whole = len(chunk) // 4 * 4
            if whole:
                yield binascii.a2b_base64(chunk[:whole])
            carry = chunk[whole:]
        if len(carry) > 1:
            yield binascii.a2b_base64(carry + b"=" * (4 - len(carry)))
    elif cte == "quoted-printable":
        for i, j in _line_windows(data, start, end):
            yield binascii.a2b_qp(data[i:j])
    else:
        for i in range(start, end, WINDOW):
            yield data[i:min(end, i + WINDOW)]


def _decoded_size(data: bytes, start: int, end: int, cte: str) -> int:
    if cte == "base64":
        chars = sum(len(data[i:min(end, i + WINDOW)].translate(None, _NOT_B64))
                    for i in range(start, end, WINDOW))
        return chars * 3 // 4
    if cte == "quoted-printable":
        return sum(len(chunk) for chunk in _decoded(data, start, end, cte))
    return end - start


# -- the skeleton ------------------------------------------------------------------------------


@dataclass
class _Entity:
    """One MIME entity (the message, a part, an attached message), by byte offsets."""

    body_start: int
    end: int
    content_type: str
    cte: str = ""
    big: bool = False  # its body (beyond ``kept_end``) is left out of the parsed copy
    kept_end: int = 0
    size: int = 0  # decoded size of a big body
    cut: bool = False  # a big text body: only its first TEXT_CAP bytes are parsed


def split_headers(data: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of the header block, start of the body); (-1, -1) if there is no blank line in the
    first HEADER_LIMIT bytes."""
    if data.startswith(b"\r\n", start, end):
        return start, start + 2
    if data.startswith(b"\n", start, end):
        return start, start + 1
    limit = min(end, start + HEADER_LIMIT)
    crlf = data.find(b"\n\r\n", start, limit)
    lf = data.find(b"\n\n", start, limit)
    found = [p for p in (crlf, lf) if p >= 0]
    if not found:
        return (end, end) if limit == end else (-1, -1)
    p = min(found)
    return p + 1, p + (3 if p == crlf else 2)


def header_defects(msg: Message) -> list[Any]:
    """The defects of a header-only parse that say something is wrong with the headers.

    Parsing only the headers of a multipart entity leaves it without parts, which some Python
    releases (Debian 12's 3.11.2) report as a ``MultipartInvariantViolationDefect``: that one
    says nothing about the headers, so it is not counted."""
    return [d for d in msg.defects if not isinstance(d, MultipartInvariantViolationDefect)]


class Skeleton:
    """The MIME structure of ``data`` found with byte searches; big bodies left out.

    ``entities`` are in the order of ``Message.walk()``. ``parse()`` returns the parsed
    message and its walked parts, each paired with its entity (None when the whole message had
    to be parsed)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.entities: list[_Entity] = []
        self.opaque = False  # something the skeleton does not follow: parse it all
        self._scan(0, len(data), "text/plain")

    @property
    def reduced(self) -> bool:
        return not self.opaque and any(e.big for e in self.entities)

    def _headers(self, start: int, end: int, default_type: str) -> Message | None:
        msg = BytesHeaderParser(policy=default_policy).parsebytes(self.data[start:end])
        if header_defects(msg):
            return None
        msg.set_default_type(default_type)
        return msg

    def _scan(self, start: int, end: int, default_type: str) -> None:
        data = self.data
        header_end, body_start = split_headers(data, start, end)
        headers = self._headers(start, header_end, default_type) if header_end >= 0 else None
        if headers is None:
            self.opaque = True
            return
        ctype = headers.get_content_type()
        entity = _Entity(body_start, end, ctype)
        self.entities.append(entity)
        maintype = headers.get_content_maintype()
        if maintype == "multipart":
            boundary = headers.get_boundary()
            if boundary:
                self._multipart(boundary.encode("ascii", "surrogateescape"), body_start, end,
                                ctype == "multipart/digest")
            return
        if maintype == "message" and ctype != "message/delivery-status":
            self._scan(body_start, end, "text/plain")
            return
        cte = str(headers.get("content-transfer-encoding", "") or "").strip().lower()
        entity.cte = cte
        size = end - body_start
        if size <= BIG_BODY or cte not in _SIMPLE_CTE:
            return
        if maintype == "text":
            if size <= TEXT_CAP:
                return
            cut = body_start + TEXT_CAP
            nl = data.rfind(b"\n", body_start, cut)
            entity.kept_end = nl + 1 if nl >= 0 else cut
            entity.cut = True
        else:
            entity.kept_end = body_start
        entity.big = True
        entity.size = _decoded_size(data, body_start, end, cte)

    def _delimiter(self, delim: bytes, at: int, end: int) -> tuple[int, bool] | None:
        """If a delimiter line starts at ``at``: (where the next line starts, closing?)."""
        data = self.data
        q = at + len(delim)
        closing = data.startswith(b"--", q, end)
        if closing:
            q += 2
        while q < end and data[q] in (32, 9):
            q += 1
        if q >= end:
            return end, closing
        if data[q] == 10:
            return q + 1, closing
        if data[q] == 13:
            return (q + 2 if data.startswith(b"\n", q + 1, end) else q + 1), closing
        return None

    def _multipart(self, boundary: bytes, body_start: int, end: int, digest: bool) -> None:
        data = self.data
        delim = b"--" + boundary
        found: list[tuple[int, int, bool]] = []  # line start, next line start, closing
        if data.startswith(delim, body_start, end):
            hit = self._delimiter(delim, body_start, end)
            if hit:
                found.append((body_start, *hit))
        needle = b"\n" + delim
        pos = body_start
        while not (found and found[-1][2]):
            i = _find(data, needle, pos, end)
            if i < 0:
                break
            hit = self._delimiter(delim, i + 1, end)
            if hit:
                found.append((i + 1, *hit))
            pos = i + 1
        if not found or found[0][2]:
            self.opaque = True  # no parts at all: leave the oddity to the email package
            return
        child_type = "message/rfc822" if digest else "text/plain"
        for k, (_line, after, closing) in enumerate(found):
            if closing:
                break
            if k + 1 < len(found):
                stop = found[k + 1][0] - 1  # the line end before a delimiter belongs to it
                if stop > after and data[stop - 1] == 13:
                    stop -= 1
                stop = max(stop, after)
            else:
                stop = end  # no closing delimiter: the last part runs to the end
            self._scan(after, stop, child_type)

    # -- what is built from it ---------------------------------------------------------------
    def _reduced_bytes(self) -> bytes:
        pieces, pos = [], 0
        for e in self.entities:
            if e.big:
                pieces.append(self.data[pos:e.kept_end])
                pos = e.end
        pieces.append(self.data[pos:])
        return b"".join(pieces)

    def parse(self) -> tuple[Message, list[tuple[Message, _Entity | None]]]:
        from mailgui.model.eml import parse_message

        reduced = self.reduced
        msg = parse_message(self._reduced_bytes() if reduced else self.data)
        walked = list(msg.walk())
        if not self.opaque and len(walked) == len(self.entities) and all(
                p.get_content_type() == e.content_type
                for p, e in zip(walked, self.entities, strict=True)):
            return msg, list(zip(walked, self.entities, strict=True))
        if reduced:  # the skeleton got the structure wrong: the email package decides
            msg = parse_message(self.data)
            walked = list(msg.walk())
        return msg, [(p, None) for p in walked]

    def source(self, max_lines: int = SOURCE_MAX_LINES) -> str:
        """The folded source text, as ``fold_bytes(max_lines=...)`` shows it; a big base64 body
        is folded without being read line by line."""
        data = self.data
        folder = SourceFolder(max_lines=max_lines)
        pos = 0
        bigs = [e for e in self.entities if e.big] if not self.opaque else []
        for e in [*bigs, None]:
            stop = e.body_start if e is not None else len(data)
            if not self._feed(folder, pos, stop):
                return folder.text()
            if e is None:
                break
            if e.cte == "base64":
                self._fold_base64(folder, e.body_start, e.end)
            elif not self._feed(folder, e.body_start, e.end):
                return folder.text()
            pos = e.end
        return folder.text()

    def _feed(self, folder: SourceFolder, start: int, end: int) -> bool:
        """Feed ``data[start:end]``; once the folder is full, count the rest of the message
        instead and return False."""
        for i, j in _line_windows(self.data, start, end):
            if folder.full:
                rest = len(self.data)
                folder.skip(_count(self.data, b"\n", i, rest) + (not self.data.endswith(b"\n")))
                return False
            folder.feed(self.data[i:j])
        return True

    def _fold_base64(self, folder: SourceFolder, start: int, end: int) -> None:
        data = self.data
        head_end = start
        for _ in range(HEAD_LINES):
            nl = _find(data, b"\n", head_end, end)
            head_end = end if nl < 0 else nl + 1
        tail_start = end
        for _ in range(TAIL_LINES):
            nl = data.rfind(b"\n", max(head_end, tail_start - 4096), max(head_end, tail_start - 1))
            tail_start = head_end if nl < 0 else nl + 1
        folder.feed(_clip_lines(data[start:head_end]))
        hidden = _count(data, b"\n", head_end, tail_start)
        if hidden:
            folder.fold_here(hidden, (tail_start - head_end - 2 * hidden) * 3 // 4)
        elif tail_start > head_end:
            folder.feed(_clip_lines(data[head_end:tail_start]))
        folder.feed(_clip_lines(data[tail_start:end]))


def _clip_lines(chunk: bytes, limit: int = 4096) -> bytes:
    """A few lines for display; a single absurdly long line is cut."""
    if len(chunk) <= limit * (HEAD_LINES + 1):
        return chunk
    return b"\n".join(line[:limit] for line in chunk.split(b"\n"))


# -- headers as a reader reads them ----------------------------------------------------------

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([^?\s]*)\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"[ \t]+")


def unfold(raw: str) -> str:
    """A header value on one line (RFC 5322 2.2.3 unfolding), without the space that folding
    or ``Name: `` leaves at its start and end."""
    return _FOLD.sub("", raw).strip(" \t\r\n")


def _decode_word(charset: str, encoding: str, text: str) -> str | None:
    """One RFC 2047 encoded word's text, or None if it is malformed."""
    charset = charset.split("*", 1)[0]  # RFC 2231 language tag
    try:
        if encoding in ("b", "B"):
            padded = text + "=" * (-len(text) % 4)
            data = binascii.a2b_base64(padded.encode("ascii"), strict_mode=True)
        elif encoding in ("q", "Q"):
            data = binascii.a2b_qp(text.replace("_", " ").encode("ascii"), header=False)
        else:
            return None
        return data.decode(charset or "ascii")
    except (binascii.Error, UnicodeError, LookupError, ValueError):
        return None


def reader_value(raw: str) -> tuple[str, str]:
    """(the value as a mail reader shows it, a note when something in it is malformed).

    Unfolded, encoded words decoded (adjacent ones joined, RFC 2047 6.2); an encoded word that
    can't be decoded is shown exactly as received, and the note says which, never dropped."""
    value = unfold(raw)
    out: list[str] = []
    bad: list[str] = []
    pos = 0
    last_was_word = False
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos:match.start()]
        decoded = _decode_word(*match.groups())
        if decoded is None:
            bad.append(match.group(0))
            out.append(between + match.group(0))
            last_was_word = False
        else:
            if not (last_was_word and _BETWEEN_WORDS.fullmatch(between)):
                out.append(between)
            out.append(decoded)
            last_was_word = True
        pos = match.end()
    out.append(value[pos:])
    note = ("malformed encoded word shown as received: " + ", ".join(bad)) if bad else ""
    return "".join(out), note


# -- details and parts -------------------------------------------------------------------------


def _part_size(part: Message, entity: _Entity | None) -> int:
    if entity is not None and entity.big:
        return entity.size
    payload = part.get_payload(decode=not part.is_multipart())
    return len(payload) if isinstance(payload, bytes | str) else 0


def _capped(part: Any, entity: _Entity | None, *, html: bool) -> str:
    text = part_text(part) if part is not None else ""
    total = entity.size if entity is not None and entity.cut else 0
    if len(text) > TEXT_CAP:
        total = total or len(text)
        text = text[:TEXT_CAP]
    if not total:
        return text
    note = (f"{FOLD_MARK} Cut here: this body is {total:,} bytes long; only the start is shown. "
            f"Save its part (Parts tab) to read all of it. {FOLD_MARK}")
    return text + (f"<hr><p><i>{note}</i></p>" if html else f"\n\n{note}\n")


def _walk_depths(part: Message, depth: int = 0) -> Iterator[int]:
    """The depth of each part, in the order of ``Message.walk()``."""
    yield depth
    if part.is_multipart():
        for child in part.get_payload():
            yield from _walk_depths(child, depth + 1)


def _parts(msg: Message, walked: list[tuple[Message, _Entity | None]]) -> list[MessagePart]:
    return [
        MessagePart(depth, part.get_content_type(), part.get_filename() or "",
                    _part_size(part, entity), part.get_content_disposition() or "",
                    part.get_content_charset() or "")
        for (part, entity), depth in zip(walked, _walk_depths(msg), strict=False)
    ]


def compute_details(data: bytes, msg_id: str = "") -> MessageDetails:
    """Headers, parts, text and HTML bodies (capped) and folded source of a message."""
    skeleton = Skeleton(data)
    msg, walked = skeleton.parse()
    entity_of = {id(p): e for p, e in walked}
    headers, raw_headers, notes = [], [], []
    for name, raw in msg.raw_items():
        raw = raw if isinstance(raw, str) else str(raw)
        # 8-bit header bytes arrive as surrogates: shown as UTF-8 (what readers assume today)
        raw = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        value, note = reader_value(raw)
        headers.append((name, value))
        raw_headers.append((name, unfold(raw)))
        notes.append(note)
    try:
        body_html = msg.get_body(preferencelist=("html",))  # type: ignore[attr-defined]
        body_text = msg.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
    except (AttributeError, KeyError, TypeError):  # a broken tree
        body_html = body_text = None
    return MessageDetails(
        msg_id, headers, _parts(msg, walked), skeleton.source(SOURCE_MAX_LINES),
        _capped(body_text, entity_of.get(id(body_text)), html=False),
        _capped(body_html, entity_of.get(id(body_html)), html=True), raw_headers, notes,
    )


def message_parts(data: bytes) -> list[MessagePart]:
    """The MIME tree of a message, flattened with depths (for the inbox viewer)."""
    msg, walked = Skeleton(data).parse()
    return _parts(msg, walked)


def _part_name(part: Message, index: int) -> str:
    name = part.get_filename() or ""
    return name.replace("/", "_").replace("\\", "_").strip(". ") or (
        f"part-{index}{mimetypes.guess_extension(part.get_content_type()) or '.bin'}"
    )


def _part_chunks(data: bytes, index: int) -> tuple[str, Iterator[bytes]]:
    skeleton = Skeleton(data)
    _msg, walked = skeleton.parse()
    part, entity = walked[index]
    name = _part_name(part, index)
    if entity is not None and entity.big:
        return name, _decoded(data, entity.body_start, entity.end, entity.cte)
    if part.get_content_type() == "message/rfc822":
        if entity is not None:  # the attached message as it was received
            return name, _decoded(data, entity.body_start, entity.end, "")
        payload = part.get_payload()
        return name, iter([payload[0].as_bytes() if isinstance(payload, list) and payload
                           else b""])
    if part.is_multipart():
        raise IndexError("a multipart container has no content of its own")
    return name, iter([part.get_payload(decode=True) or b""])


def part_payload(data: bytes, index: int) -> tuple[str, bytes]:
    """The suggested file name and the decoded bytes of part ``index`` of a message, numbered
    as ``message_parts`` lists them. Raises IndexError for a multipart container or a bad
    index."""
    name, chunks = _part_chunks(data, index)
    return name, b"".join(chunks)


INLINE_LIMIT = 32 * 1024 * 1024  # the inline parts handed to the preview, in all


def inline_parts(data: bytes, limit: int = INLINE_LIMIT) -> dict[str, tuple[str, bytes]]:
    """The parts an HTML part can show by ``cid:`` URL (RFC 2392), by Content-ID (without its
    angle brackets): (content type, decoded bytes); at most ``limit`` bytes in all, the rest
    left out (worker side)."""
    skeleton = Skeleton(data)
    _msg, walked = skeleton.parse()
    found: dict[str, tuple[str, bytes]] = {}
    total = 0
    for index, (part, entity) in enumerate(walked):
        cid = str(part.get("content-id", "") or "").strip().strip("<>").strip()
        if not cid or part.is_multipart() or cid in found:
            continue
        size = entity.size if entity is not None and entity.big else 0
        if total + size > limit:
            continue
        _name, chunks = _part_chunks(data, index)
        body = b"".join(chunks)
        if total + len(body) > limit:
            continue
        total += len(body)
        found[cid] = (part.get_content_type(), body)
    return found


def write_part(eml: Path | bytes, index: int, target: Path) -> tuple[str, int]:
    """Decode part ``index`` of the message in ``eml`` (a file, or its bytes) into ``target``
    chunk by chunk (a temp file, then a rename); return (suggested name, bytes written).
    Worker side; no single step holds the GIL for long, even for a 100 MB attachment."""
    data = eml if isinstance(eml, bytes) else eml.read_bytes()
    name, chunks = _part_chunks(data, index)
    written = atomic_write_chunks(target, chunks)
    return name, written
