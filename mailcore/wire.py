"""Write a message's bytes in chunks, without building an ``email`` object tree.

``serialize(message, linesep)`` returns a :class:`Serialized`: the exact bytes
that ``message.message().as_bytes(linesep=linesep)`` gives (apart from the
random multipart boundaries, and the Date and Message-ID that are made anew
each time), as a sequence of chunks with a known total size. A message whose
``boundary_seed`` is an int gets its boundaries from ``random.Random(seed)``,
made anew for each serialisation: with Date and Message-ID set as headers, an
unchanged message then gives the same bytes every time. Attachments added
with ``attach_file`` are read, base64-encoded and yielded a chunk at a time, so
a 1 GB file never sits in memory.

It takes the fast path only for messages whose MIME-building methods are
Django's own (not overridden in a subclass) and whose charset is UTF-8; any
other message, and any part it does not build itself (a ``MIMEBase`` passed to
``attach()``, a ``message/rfc822`` attachment), is written by the ``email``
package exactly as ``message()`` would, so the output never differs.

Each fallback says so, with its reason, on the ``mailcore.wire`` logger: at DEBUG when it
is deliberate (a builder overridden or patched, a patched helper, another charset, a part
the fast writer leaves to the email package), at WARNING when the fast writer raised on a
message that ``message()`` builds, which is a bug in the fast writer. With the environment
variable ``MAILCORE_STRICT_WIRE=1`` at import (the test suite sets it), or ``STRICT = True``,
that bug raises :class:`WireFallbackError` instead.
"""

from __future__ import annotations

import binascii
import functools
import logging
import operator
import os
import random
import re
import struct
import sys
import time
from collections.abc import Iterator
from email import generator, quoprimime
from email.message import Message
from email.mime.base import MIMEBase
from email.policy import compat32
from email.utils import formatdate, make_msgid
from io import BytesIO
from typing import Any

import mailcore.message as _message_module
from mailcore.conf import settings
from mailcore.message import (
    _GOOD_HEADER_NAMES,
    _HEADER_UNSAFE,
    _UTF8_HEADERS,
    ADDRESS_HEADERS,
    RFC5322_EMAIL_LINE_LENGTH_LIMIT,
    EmailMessage,
    EmailMultiAlternatives,
    FileContent,
    MIMEMixin,
    _disposition,
    _filename,
    _mime_subtype,
    _mime_type,
    check_address_list,
    check_header_line,
    check_header_name,
    check_header_text,
    check_mailbox,
    check_mime_part,
    encoded_header_value,
    forbid_multi_line_headers,
    sanitize_address,
    utf8_enabled,
)
from mailcore.utils import DNS_NAME

__all__ = ["Base64Piece", "FileChangedError", "Serialized", "WireFallbackError", "serialize",
           "serialize_in", "can_stream", "stream_refusal", "BASE64_READ_SIZE", "STRICT"]

logger = logging.getLogger("mailcore.wire")

# Raise, rather than fall back, when the fast writer fails on a message message() builds.
STRICT = os.environ.get("MAILCORE_STRICT_WIRE", "") not in ("", "0")


class WireFallbackError(RuntimeError):
    """The fast writer failed on a message that ``message()`` builds (raised in STRICT mode;
    its ``__cause__`` is the fast writer's exception)."""

# Bytes of a file read (and base64-encoded) at a time: a multiple of 57, the
# input length of one 76-character base64 line, so chunks join seamlessly.
BASE64_READ_SIZE = 57 * 16384  # 912 KiB in, 1.2 MiB out

_POLICIES = {
    "\n": compat32,
    "\r\n": compat32.clone(linesep="\r\n"),
}
_FOLD_CACHE: dict[tuple[str, str, str], bytes] = {}
_FOLD_CACHE_MAX = 4096
_PLAIN_HEADER = re.compile(r"[\t\x20-\x7e]*\Z")
_TOKEN = re.compile(r"[A-Za-z0-9!#$&^_.+-]+\Z")
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))

# The methods that decide what message() builds. If a subclass overrides any
# of them, only message() itself knows what the bytes are.
_BUILDERS = (
    "message",
    "_create_message",
    "_create_attachments",
    "_create_alternatives",
    "_create_mime_attachment",
    "_create_attachment",
    "_set_list_header_if_not_empty",
    "attach_alternative",
)


# The builders as mailcore defines them, kept at import: a builder replaced later (a
# subclass's, or one patched onto EmailMessage itself in a test) means message() decides.
_ORIGINAL_BUILDERS = {
    base: {name: getattr(base, name, None) for name in _BUILDERS}
    for base in (EmailMessage, EmailMultiAlternatives)
}
# What the fast writer calls by name in mailcore.message (Django's patch points are
# django.core.mail.message.make_msgid, .formatdate and .DNS_NAME).
_ORIGINAL_HELPERS = {"make_msgid": make_msgid, "formatdate": formatdate, "DNS_NAME": DNS_NAME}


def stream_refusal(email_message: Any) -> str | None:
    """Why the fast writer leaves ``email_message`` to ``message()``, or None if it knows
    exactly what ``message()`` would build."""
    if not isinstance(email_message, EmailMessage):
        return f"{type(email_message).__qualname__} is not an EmailMessage"
    return _refusal(email_message, email_message.encoding or settings.DEFAULT_CHARSET)


# The same checks, all at once in C for the usual answer (every builder and helper mailcore's).
_HELPER_NAMES = tuple(_ORIGINAL_HELPERS)
_HELPER_ORIGINALS = tuple(_ORIGINAL_HELPERS.values())
_GET_HELPERS = operator.attrgetter(*_HELPER_NAMES)
_BUILDER_GETTERS = {
    base: operator.attrgetter(*(n for n in _BUILDERS if _ORIGINAL_BUILDERS[base][n] is not None))
    for base in _ORIGINAL_BUILDERS
}
_BUILDER_ORIGINALS = {
    base: tuple(f for f in _ORIGINAL_BUILDERS[base].values() if f is not None)
    for base in _ORIGINAL_BUILDERS
}
_BUILDERS_ABSENT = {  # builders the base does not have (attach_alternative on EmailMessage)
    base: tuple(n for n in _BUILDERS if _ORIGINAL_BUILDERS[base][n] is None)
    for base in _ORIGINAL_BUILDERS
}


def _all_originals(email_message: Any, cls: type, base: type) -> bool:
    try:
        if not all(map(operator.is_, _BUILDER_GETTERS[base](cls), _BUILDER_ORIGINALS[base])):
            return False
        if not all(map(operator.is_, _GET_HELPERS(_message_module), _HELPER_ORIGINALS)):
            return False
    except AttributeError:
        return False
    for name in _BUILDERS_ABSENT[base]:
        if getattr(cls, name, None) is not None:
            return False
    instance_dict = getattr(email_message, "__dict__", None)
    return not instance_dict or instance_dict.keys().isdisjoint(_BUILDERS)


def _refusal(email_message: Any, encoding: str) -> str | None:
    """:func:`stream_refusal` for an EmailMessage whose charset is ``encoding``."""
    cls = type(email_message)
    base = (
        EmailMultiAlternatives
        if isinstance(email_message, EmailMultiAlternatives)
        else (EmailMessage)
    )
    if _all_originals(email_message, cls, base):
        return None if encoding == "utf-8" else f"charset {encoding!r}"
    instance_dict = getattr(email_message, "__dict__", {})
    originals = _ORIGINAL_BUILDERS[base]
    for name in _BUILDERS:
        if name in instance_dict:
            return f"{name}() is set on the message"
        if getattr(cls, name, None) is not originals[name]:
            return f"{cls.__qualname__}.{name}() is not mailcore's"
    for name, original in _ORIGINAL_HELPERS.items():
        if getattr(_message_module, name, None) is not original:
            return f"mailcore.message.{name} is patched"
    if encoding != "utf-8":
        return f"charset {encoding!r}"
    return None


def can_stream(email_message: Any) -> bool:
    """True if the fast writer knows exactly what ``message()`` would build."""
    return stream_refusal(email_message) is None


def fold_header(name: str, value: Any, linesep: str) -> bytes:
    """One header, folded exactly as ``email.generator.BytesGenerator`` does
    with the compat32 policy (Django's)."""
    if type(value) is not str:  # a UTF8AddressHeader (RFC 6532): it folds itself
        return _POLICIES[linesep].fold_binary(name, value)
    if len(name) + len(value) <= 76 and _PLAIN_HEADER.match(value):
        return f"{name}: {value}{linesep}".encode("ascii")
    if value.isascii() and len(value) < 4000:
        folded = _fold_words(name, value, linesep)
        if folded is None:
            folded = _fold_ascii(name, value, linesep)
        if folded is not None:
            return folded.encode("ascii")
    key = (name, value, linesep)
    folded = _FOLD_CACHE.get(key)
    if folded is None:
        folded = _POLICIES[linesep].fold_binary(name, value)
        if len(_FOLD_CACHE) >= _FOLD_CACHE_MAX:
            _FOLD_CACHE.clear()
        _FOLD_CACHE[key] = folded
    return folded


_FWS_SPLIT = re.compile("([ \t]+)")
_EMBEDDED_HEADER = re.compile(r"\n[^ \t]+:")
_MAXLINELEN = 78  # compat32's max_line_length


class _Folder:
    """``email.header._ValueFormatter`` for a US-ASCII value, its lengths kept as it goes
    (the standard library sums every part again at each one)."""

    __slots__ = ("cur", "initial", "length", "lines")

    def __init__(self, headerlen: int) -> None:
        self.lines: list[str] = []
        self.cur: list[tuple[str, str]] = []
        self.initial = self.length = headerlen

    def push(self, fws: str, part: str) -> None:
        self.cur.append((fws, part))
        self.length += len(fws) + len(part)

    def pop(self) -> tuple[str, str]:
        if not self.cur:
            return ("", "")
        fws, part = self.cur.pop()
        self.length -= len(fws) + len(part)
        return fws, part

    def text(self) -> str:
        return "".join([fws + part for fws, part in self.cur])

    def reset(self, start: list[tuple[str, str]] | None = None) -> None:
        self.cur = start or []
        self.initial = 0
        self.length = sum(len(fws) + len(part) for fws, part in self.cur)

    def newline(self) -> None:
        end = self.pop()
        if end != (" ", ""):
            self.push(*end)
        if self.length > 0:
            text = self.text()
            if self.initial == 0 and text.isspace() and self.lines:
                self.lines[-1] += text
            else:
                self.lines.append(text)
        self.reset()

    def feed(self, fws: str, string: str) -> None:  # _ascii_split
        parts = _FWS_SPLIT.split(fws + string)
        if parts[0]:
            parts[:0] = [""]
        else:
            parts.pop(0)
        for index in range(0, len(parts) - 1, 2):
            self.append_chunk(parts[index], parts[index + 1])

    def append_chunk(self, fws: str, string: str) -> None:
        self.push(fws, string)
        if self.length <= _MAXLINELEN:
            return
        cur = self.cur
        for ch in ";, \t":
            for i in range(len(cur) - 1, 0, -1):
                if ch in " \t":
                    before = cur[i][0]
                    if before and before[0] == ch:
                        break
                prevpart = cur[i - 1][1]
                if prevpart and prevpart[-1] == ch:
                    break
            else:
                continue
            break
        else:
            fws, part = self.pop()
            if self.initial > 0:
                self.newline()
                if not fws:
                    fws = " "
            self.push(fws, part)
            return
        remainder = cur[i:]
        del cur[i:]
        self.lines.append(self.text())
        self.reset(remainder)


def _fold_words(name: str, value: str, linesep: str) -> str | None:
    """:func:`_fold_ascii` for the usual value: words separated by single spaces, no tab or
    ";", continuation lines (an encoded header's) starting with one space. Each line is
    filled greedily to 78 characters and broken after the last comma that lets it, else
    before the last word, as ``_ValueFormatter`` does for such words; a first word too long
    for the first line goes alone on the next one. None for any other value."""
    if "\t" in value or "  " in value or ";" in value:
        return None
    lines = value.splitlines()
    if not lines:
        return None
    first = lines[0]
    if not first or first[0] == " " or first[-1] == " ":
        return None
    out: list[str] = []
    cur: list[str] = []  # the current line's words, each with the space before it
    initial = length = len(name) + 2
    for index, line in enumerate(lines):
        if index:
            if len(line) < 2 or line[0] != " " or line[-1] == " ":
                return None
            out.append("".join(cur))
            cur = []
            initial = length = 0
            words = line[1:].split(" ")
            fws = " "
        else:
            words = line.split(" ")
            fws = ""
        for word in words:
            piece = fws + word
            fws = " "
            cur.append(piece)
            length += len(piece)
            if length <= _MAXLINELEN:
                continue
            i = len(cur) - 1
            while i >= 1 and cur[i - 1][-1] != ",":
                i -= 1
            if i < 1:
                i = len(cur) - 1
            if i >= 1:
                out.append("".join(cur[:i]))
                cur = cur[i:]
                initial = 0
                length = sum(map(len, cur))
            elif initial > 0:  # one word, too long for the header's first line
                out.append("")
                initial = 0
                cur = [piece if piece[0] == " " else " " + piece]
                length = len(cur[0])
    out.append("".join(cur))
    folded = linesep.join(out)
    if _EMBEDDED_HEADER.search(folded):
        return None
    return f"{name}: {folded}{linesep}"


def _fold_ascii(name: str, value: str, linesep: str) -> str | None:
    """``compat32.fold_binary(name, value)`` as text for an ASCII ``value`` (what
    ``Header(value, header_name=name).encode(linesep=linesep, maxlinelen=78)`` makes), or
    None if the standard library should say (it raises on an embedded header)."""
    folder = _Folder(len(name) + 2)
    lines = value.splitlines()
    folder.feed("", lines[0] if lines else "")
    for line in lines[1:]:
        folder.newline()
        stripped = line.lstrip()
        folder.feed(line[: len(line) - len(stripped)], stripped)
    if len(lines) > 1:
        folder.newline()
    folder.push(" ", "")  # add_transition()
    folder.newline()
    folded = linesep.join(folder.lines)
    if _EMBEDDED_HEADER.search(folded):
        return None
    return f"{name}: {folded}{linesep}"


_DATE_CACHE: list[Any] = [None, ""]  # [(second, localtime), formatdate()'s text for it]


def _formatdate(localtime: bool) -> str:
    """``formatdate(localtime=localtime)``: the same text, made once per second (it has
    whole seconds only, and mass mail asks for it thousands of times a second)."""
    now = time.time()
    key = (int(now), bool(localtime))
    cached = _DATE_CACHE
    if cached[0] != key:
        cached[1] = formatdate(key[0], localtime=localtime)
        cached[0] = key
    return cached[1]


_PID = [os.getpid()]  # os.getpid() is a system call; a forked child sets its own
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


_DATE_HEADER: list[Any] = [None, None]  # [(date text, charset), ("Date", stored value)]


def _date_header(localtime: bool, encoding: str) -> tuple[str, str]:
    date = _formatdate(localtime)
    cached = _DATE_HEADER
    if cached[0] != (date, encoding):
        cached[1] = ("Date", _header_value("Date", date, encoding))
        cached[0] = (date, encoding)
    return cached[1]


def _make_msgid() -> str:
    """``make_msgid(domain=DNS_NAME)``, the same form and randomness (a hundredth of a
    second, the process id, 64 random bits of the ``random`` module, the cached FQDN),
    without its keyword handling."""
    return (f"<{int(time.time() * 100)}.{_PID[0]}.{random.getrandbits(64)}"
            f"@{DNS_NAME.get_fqdn()}>")


def _header_value(name: str, value: Any, encoding: str) -> str:
    """What ``msg[name] = value`` stores on a SafeMIME object (forbid_multi_line_headers:
    the same checks, the same result), with a shortcut for short ASCII values and a
    cache for the rest (mass mail repeats senders, subjects and headers)."""
    if type(value) is not str:
        return forbid_multi_line_headers(name, value, encoding)[1]  # converts or raises
    if name not in _GOOD_HEADER_NAMES:
        check_header_name(name)
    if _HEADER_UNSAFE.search(value) is not None:
        check_header_text(name, value)  # raises, naming the character
    lname = name.lower()
    if lname in ADDRESS_HEADERS:
        check_address_list(name, value)
    if value.isascii() and len(name) + len(value) <= _SHORT and "=?" not in value:
        if lname != "subject":
            return value  # stored as it is
        if len(value) <= 60 and _PLAIN_HEADER.match(value):
            if value.strip(" \t") == value and "  " not in value and "\t" not in value:
                return value  # Header(value).encode() would give it back unchanged
    return _cached_header_value(name, value, encoding, utf8_enabled())


# An ASCII value this long or shorter can't make a header line over 998 octets.
_SHORT = RFC5322_EMAIL_LINE_LENGTH_LIMIT - 80


@functools.lru_cache(maxsize=4096)
def _cached_header_value(name: str, value: str, encoding: str, utf8: bool) -> Any:
    # Only the arguments decide the result (errors are raised, never cached): ``utf8`` is
    # utf8_enabled(), which encoded_header_value() reads. Addresses are cached on their own
    # too: lists differ, addresses repeat.
    return encoded_header_value(name, value, encoding, sanitize=_sanitized)


@functools.lru_cache(maxsize=4096)
def _sanitized(pair: tuple[str, str], encoding: str) -> str:
    return sanitize_address(pair, encoding)


def _has_long_lines(content: str) -> bool:
    """Django's test: a line over 998 octets once encoded (lines split as
    str.splitlines() splits them). Cheap answers first: a UTF-8 character is
    at most 4 octets, an ASCII one exactly 1."""
    limit = RFC5322_EMAIL_LINE_LENGTH_LIMIT
    end = len(content)
    if end * 4 <= limit:  # (a character is at most 4 octets in UTF-8)
        return False
    if content.isascii():
        # Jump from line feed to line feed, a window of limit + 1 characters at a time: a
        # window with one means every line started before it is short enough (str.splitlines
        # breaks at more characters than \n, which only makes lines shorter); one without a
        # line feed may be a long line, which the exact test below decides.
        pos = 0
        while pos + limit < end:
            found = content.rfind("\n", pos, pos + limit + 1)
            if found < 0:
                break
            pos = found + 1
        else:
            return False
    lines = content.splitlines()
    longest = max(map(len, lines), default=0)
    if longest * 4 <= RFC5322_EMAIL_LINE_LENGTH_LIMIT:
        return False
    if content.isascii():
        return longest > RFC5322_EMAIL_LINE_LENGTH_LIMIT
    return any(
        len(line.encode(errors="surrogateescape")) > RFC5322_EMAIL_LINE_LENGTH_LIMIT
        for line in lines
    )


def _fix_eols(data: bytes, nl: bytes) -> bytes:
    """Turn every \\r\\n, \\r and \\n into ``nl``, as the generator does."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if nl != b"\n":
        data = data.replace(b"\n", nl)
    return data


def _new_boundary(rng: Any = random) -> str:
    token = rng.randrange(sys.maxsize)
    return ("=" * 15) + ("%0*d" % (_BOUNDARY_WIDTH, token)) + "=="


def _boundary_random(email_message: Any) -> Any:
    """``random.Random(seed)`` for a message with a ``boundary_seed``, else the module."""
    seed = getattr(email_message, "boundary_seed", None)
    return random if seed is None else random.Random(seed)


class _SeededBytesGenerator(generator.BytesGenerator):
    """``BytesGenerator`` whose boundaries (made as the standard library makes them) come
    from one ``random.Random``, shared with the generators it clones for subparts."""

    _rng: Any = random

    def clone(self, fp: Any) -> _SeededBytesGenerator:
        clone = super().clone(fp)
        clone._rng = self._rng
        return clone

    def _make_boundary(self, text: Any = None) -> str:  # type: ignore[override]
        boundary = _new_boundary(self._rng)
        if text is None:
            return boundary
        b = boundary
        counter = 0
        while True:
            cre = self._compile_re("^--" + re.escape(b) + "(--)?$", re.MULTILINE)
            if not cre.search(text):
                break
            b = boundary + "." + str(counter)
            counter += 1
        return b


def _flatten(msg: Message, linesep: str, rng: Any) -> bytes:
    """``BytesGenerator(fp, mangle_from_=False).flatten(msg, ...)`` (what Django's
    ``as_bytes`` does), with the boundaries drawn from ``rng``."""
    fp = BytesIO()
    if rng is random:
        g: generator.BytesGenerator = generator.BytesGenerator(fp, mangle_from_=False)
    else:
        g = _SeededBytesGenerator(fp, mangle_from_=False)
        g._rng = rng
    g.flatten(msg, unixfrom=False, linesep=linesep)
    return fp.getvalue()


class FileChangedError(OSError):
    """An attached file changed size between ``attach_file`` (or the start of the send, when
    its size was announced) and the moment it was read: the message is not completed."""

    def __init__(self, source: FileContent, expected: int, found: int) -> None:
        how = "grew" if found > expected else "shrank"
        self.text = (f"The attached file {source.path} {how} while the message was being sent "
                     f"({expected:,} bytes when the send began, "
                     f"{'more' if found > expected else f'{found:,}'} read); the message was "
                     "not sent whole.")
        super().__init__(self.text)
        self.filename = str(source.path)

    def __str__(self) -> str:
        return self.text


class Base64Piece:
    """The base64 body of an attachment, produced a chunk at a time.

    Besides ``chunks()``, a viewer can ask for ``head(n)`` and ``tail(n)``, the
    first and last n encoded lines, reading only the bytes they encode.
    """

    stuffing_needed = False  # base64 lines never start with a dot

    def __init__(self, source: FileContent | bytes | bytearray, nl: bytes) -> None:
        self.source = source
        self.nl = nl
        # stat() now: a missing file fails before any byte is sent
        self.length = source.size() if isinstance(source, FileContent) else len(source)

    def size(self) -> int:
        # base64.encodebytes: 76-character lines, each ending in a newline
        encoded = 4 * ((self.length + 2) // 3)
        lines = (encoded + 75) // 76
        return encoded + lines * len(self.nl)

    def _blocks(self) -> Iterator[bytes | memoryview]:
        """The source in blocks of whole 57-byte lines (the last maybe shorter). A file is
        read into one buffer, reused for every block: each block is only valid until the
        next is asked for (``chunks()`` encodes it at once)."""
        if isinstance(self.source, FileContent):
            with self.source.open() as f:
                buf = bytearray(BASE64_READ_SIZE)
                view = memoryview(buf)
                filled = 0  # bytes in buf: a short read's unfinished line, kept for the next
                read = 0
                while True:
                    # never past the size announced (SIZE, Content-Length of progress): a file
                    # that grew is caught below instead of sending more than was counted
                    want = min(BASE64_READ_SIZE - filled, self.length - read + 1)
                    got = f.readinto(view[filled : filled + want]) or 0
                    read += got
                    if read > self.length or (not got and read != self.length):
                        raise FileChangedError(self.source, self.length, read)
                    if not got:
                        break
                    filled += got
                    if filled < BASE64_READ_SIZE:
                        # a short read before the end: keep whole 57-byte lines
                        cut = filled - filled % 57
                        if not cut:
                            continue
                        yield view[:cut]
                        buf[: filled - cut] = buf[cut:filled]
                        filled -= cut
                    else:
                        yield view[:filled]
                        filled = 0
                if filled:
                    yield view[:filled]
        else:
            view = memoryview(self.source)
            for start in range(0, len(view), BASE64_READ_SIZE):
                yield view[start : start + BASE64_READ_SIZE]

    def chunks(self) -> Iterator[bytes]:
        nl = self.nl
        for block in self._blocks():
            yield from _base64_lines(block, nl)

    def _encode(self, block: bytes) -> bytes:
        return b"".join(_base64_lines(block, self.nl))

    @property
    def line_count(self) -> int:
        """How many encoded lines (of 76 characters, the last maybe shorter)."""
        return (self.length + 56) // 57

    def _read(self, start: int, stop: int) -> bytes:
        if isinstance(self.source, FileContent):
            with self.source.open() as f:
                f.seek(start)
                return f.read(stop - start)
        return bytes(self.source[start:stop])

    def head(self, lines: int) -> bytes:
        """The first ``lines`` encoded lines (reads ``57 * lines`` bytes at most)."""
        return self._encode(self._read(0, min(self.length, 57 * max(0, lines))))

    def tail(self, lines: int) -> bytes:
        """The last ``lines`` encoded lines (reads only the bytes they encode)."""
        first = max(0, self.line_count - max(0, lines))
        return self._encode(self._read(57 * first, self.length)) if lines > 0 else b""


# base64 is encoded this many input bytes at a time (1,024 lines of 76 characters): small
# enough that a block and its output stay in the CPU's cache, big enough that the per-block
# calls cost nothing.
_B64_BLOCK = 57 * 1024
_LINE_STRUCTS: dict[int, struct.Struct] = {}


def _line_struct(lines: int) -> struct.Struct:
    found = _LINE_STRUCTS.get(lines)
    if found is None:
        if len(_LINE_STRUCTS) > 64:
            _LINE_STRUCTS.clear()
        found = _LINE_STRUCTS[lines] = struct.Struct("76s" * lines)
    return found


def _base64_lines(data: bytes | memoryview, nl: bytes) -> Iterator[bytes]:
    """``base64.encodebytes(data)`` with ``nl`` line ends, in pieces of about 77 KB: the
    same bytes, at C speed (encodebytes calls binascii once per 57-byte line). Each block
    is encoded as one line and cut into 76-character lines by ``struct`` (in C), then
    joined with ``nl``."""
    view = memoryview(data)
    for start in range(0, len(view), _B64_BLOCK):
        line = binascii.b2a_base64(view[start : start + _B64_BLOCK], newline=False)
        full, rest = divmod(len(line), 76)
        out = nl.join(_line_struct(full).unpack_from(line)) + nl if full else b""
        if rest:
            out += line[full * 76 :] + nl
        yield out


class Serialized:
    """A message's bytes as chunks; ``size`` is exact before any file is read."""

    def __init__(
        self,
        pieces: list[Any],
        headers: list[tuple[str, str]],
        linesep: str,
        charset: str = "utf-8",
    ) -> None:
        self._pieces = pieces
        # (a UTF-8 address header, RFC 6532, as its text)
        self.headers = [(n, v if type(v) is str else _text(v)) for n, v in headers]
        self.linesep = linesep
        # The charset Django's console backend decodes the message with.
        self.charset = charset

    @property
    def size(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else p.size() for p in self._pieces)

    @property
    def eight_bit(self) -> bool:
        """True if a byte of the message is not ASCII (8bit text parts, UTF-8 headers): an
        SMTP client announces ``BODY=8BITMIME`` for it. Base64 bodies are never 8-bit, and
        no file is read to answer."""
        return any(isinstance(p, bytes) and not p.isascii() for p in self._pieces)

    @property
    def pieces(self) -> tuple[bytes | Base64Piece, ...]:
        """The message in order: bytes, and Base64Piece for each base64 body the
        writer streams. ``b"".join(p if bytes else p.chunks())`` is the message."""
        return tuple(self._pieces)

    @property
    def message_id(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "message-id":
                return value
        return None

    def chunks(self) -> Iterator[bytes]:
        """The bytes, in order. Files are opened and read as this is iterated."""
        for piece in self._pieces:
            if isinstance(piece, bytes):
                if piece:
                    yield piece
            else:
                yield from piece.chunks()

    def stuffable_chunks(self) -> Iterator[tuple[bytes, bool]]:
        """Chunks with a flag saying whether a line in them may start with a
        dot (and so may need dot-stuffing for SMTP)."""
        for piece in self._pieces:
            if isinstance(piece, bytes):
                if piece:
                    yield piece, True
            else:
                flag = piece.stuffing_needed
                for chunk in piece.chunks():
                    yield chunk, flag

    def getvalue(self) -> bytes:
        return b"".join(self.chunks())

    def byte_pieces(self) -> list[bytes] | None:
        """The pieces, if every one is bytes (nothing is read from a file or encoded as it is
        sent) and they are what :meth:`stuffable_chunks` yields (not overridden); else None."""
        if type(self).stuffable_chunks is not Serialized.stuffable_chunks:
            return None
        pieces = self._pieces
        for piece in pieces:
            if type(piece) is not bytes:
                return None
        return pieces

    def __repr__(self) -> str:
        return f"<Serialized {self.size} bytes in {len(self._pieces)} pieces>"


def _text(value: Any) -> str:
    """A header value as text: a UTF8AddressHeader's, or a value the email package holds
    with its 8-bit bytes as surrogate escapes (a UTF-8 header the fallback wrote)."""
    text = str(value)
    if not text.isascii():
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


# Headers the writer makes itself from a handful of values (text parts' Content-Type with
# charset="utf-8", MIME-Version, Content-Transfer-Encoding): their folded bytes are kept.
_CONSTANT_NAMES = frozenset(("MIME-Version", "Content-Transfer-Encoding"))
_CONSTANT_FOLDS: dict[tuple[str, str, str], bytes] = {}


class _Writer:
    """Builds the list of pieces for one message."""

    def __init__(self, email_message: EmailMessage, linesep: str,
                 encoding: str | None = None) -> None:
        self.m = email_message
        self.linesep = linesep
        self.nl = linesep.encode("ascii")
        self.encoding = encoding or email_message.encoding or settings.DEFAULT_CHARSET
        self.pieces: list[Any] = []
        self.rng = _boundary_random(email_message)

    # -- pieces -----------------------------------------------------------
    def emit(self, data: bytes) -> None:
        pieces = self.pieces
        if pieces and isinstance(pieces[-1], bytes):
            pieces[-1] += data
        else:
            pieces.append(data)

    def emit_headers(self, headers: list[tuple[str, str]]) -> None:
        linesep = self.linesep
        self.emit(b"".join(fold_header(n, v, linesep) for n, v in headers) + self.nl)

    # -- parts ------------------------------------------------------------
    def text_headers(self, subtype: str, content: str) -> tuple[list[tuple[str, str]], bytes]:
        """Headers and encoded body of a SafeMIMEText(content, subtype, "utf-8")."""
        if not _TOKEN.match(subtype):
            raise _Fallback(f"text subtype {subtype!r} is not a token")
        has_long_lines = _has_long_lines(content)
        raw = content.encode("utf-8")
        if has_long_lines:
            cte = "quoted-printable"
            body = quoprimime.body_encode(raw.decode("latin1")).encode("ascii")
        else:
            cte = "7bit" if raw.isascii() else "8bit"
            body = raw
        headers = [
            ("Content-Type", f'text/{subtype}; charset="utf-8"'),
            ("MIME-Version", "1.0"),
            ("Content-Transfer-Encoding", cte),
        ]
        return headers, _fix_eols(body, self.nl)

    def part_via_email_package(self, part: Message) -> bytes:
        return _flatten(part, self.linesep, self.rng)

    def attachment(self, attachment: Any) -> list[Any]:
        """The pieces of one entry of ``message.attachments``."""
        if isinstance(attachment, MIMEBase):
            check_mime_part("attachment", attachment)
            return [self.part_via_email_package(attachment)]
        filename, content, mimetype = attachment  # else message() says what is wrong
        basetype, subtype = _mime_type("attachment mimetype", mimetype)
        disposition = self.disposition(filename)
        if basetype == "text" and isinstance(content, str):
            headers, body = self.text_headers(subtype, content)
            return [self.header_block(headers + disposition) + body]
        if basetype not in ("text", "message") and isinstance(
            content, bytes | bytearray | FileContent
        ):
            if not _TOKEN.match(basetype) or not _TOKEN.match(subtype):
                raise _Fallback(f"attachment type {mimetype!r} is not two tokens")
            headers = [
                ("Content-Type", mimetype),
                ("MIME-Version", "1.0"),
                ("Content-Transfer-Encoding", "base64"),
                *disposition,
            ]
            return [self.header_block(headers), Base64Piece(content, self.nl)]
        return [self.part_via_email_package(self.m._create_attachment(*attachment))]

    def alternative(self, content: Any, mimetype: Any) -> list[Any]:
        if isinstance(mimetype, str) and "/" in mimetype:
            basetype, subtype = _mime_type("mimetype", mimetype)
            if basetype == "text" and isinstance(content, str):
                headers, body = self.text_headers(subtype, content)
                return [self.header_block(headers) + body]
            if basetype not in ("text", "message") and isinstance(content, bytes | bytearray):
                if _TOKEN.match(basetype) and _TOKEN.match(subtype):
                    headers = [
                        ("Content-Type", mimetype),
                        ("MIME-Version", "1.0"),
                        ("Content-Transfer-Encoding", "base64"),
                    ]
                    return [self.header_block(headers), Base64Piece(content, self.nl)]
        return [self.part_via_email_package(self.m._create_mime_attachment(content, mimetype))]

    def disposition(self, filename: Any) -> list[tuple[str, str]]:
        filename = _filename("attachment filename", filename)
        if not filename:
            return []
        holder = Message()
        holder.add_header("Content-Disposition", "attachment", filename=_disposition(filename))
        check_header_line("Content-Disposition", holder["Content-Disposition"])
        return [("Content-Disposition", holder["Content-Disposition"])]

    def header_block(self, headers: list[tuple[str, str]]) -> bytes:
        linesep = self.linesep
        cache = _CONSTANT_FOLDS
        lines = []
        for name, value in headers:
            if name in _CONSTANT_NAMES:  # the same few values on every part: folded once
                key = (name, value, linesep)
                line = cache.get(key)
                if line is None:
                    line = fold_header(name, value, linesep)
                    if len(cache) < 256:
                        cache[key] = line
            else:
                line = fold_header(name, value, linesep)
            lines.append(line)
        lines.append(self.nl)
        return b"".join(lines)

    def multipart(
        self, subtype: str, children: list[list[Any]], extra_headers: list[tuple[str, str]]
    ) -> list[Any]:
        """A multipart: headers (content headers first, then ``extra_headers``)
        and the children's pieces between boundaries."""
        if not _TOKEN.match(subtype):
            raise _Fallback(f"multipart subtype {subtype!r} is not a token")
        nl = self.nl
        while True:
            boundary = _new_boundary(self.rng)
            marker = b"--" + boundary.encode("ascii")
            if not any(isinstance(p, bytes) and marker in p for child in children for p in child):
                break
        headers = [
            ("Content-Type", f'multipart/{subtype}; boundary="{boundary}"'),
            ("MIME-Version", "1.0"),
            *extra_headers,
        ]
        pieces: list[Any] = [self.header_block(headers) + marker + nl]
        for index, child in enumerate(children):
            if index:
                pieces.append(nl + marker + nl)
            pieces.extend(child)
        pieces.append(nl + marker + b"--" + nl)
        return pieces

    # -- the message --------------------------------------------------------
    def message_headers(self) -> list[tuple[str, str]]:
        """Subject, From, To, Cc, Reply-To, Date, Message-ID and the extra
        headers, in the order and form that ``message()`` sets them."""
        m = self.m
        enc = self.encoding
        extra = m.extra_headers
        sender = extra["From"] if "From" in extra else check_mailbox("from_email", m.from_email)
        headers = [
            ("Subject", _header_value("Subject", m.subject, enc)),
            ("From", _header_value("From", sender, enc)),
        ]
        for name, field, values in (
            ("To", "to", m.to), ("Cc", "cc", m.cc), ("Reply-To", "reply_to", m.reply_to)
        ):
            if name in extra:
                headers.append((name, _header_value(name, extra[name], enc)))
            elif values:
                joined = ", ".join(check_mailbox(field, v) for v in values)
                headers.append((name, _header_value(name, joined, enc)))
        header_names = [key.lower() for key in extra]
        if "date" not in header_names:
            headers.append(_date_header(settings.EMAIL_USE_LOCALTIME, enc))
        if "message-id" not in header_names:
            headers.append(("Message-ID", _header_value("Message-ID", _make_msgid(), enc)))
        for name, value in extra.items():
            if name.lower() not in {"from", "to", "cc", "reply-to"}:
                headers.append((name, _header_value(name, value, enc)))
        return headers

    def build(self) -> Serialized:
        m = self.m
        if not isinstance(m.body, str):
            raise _Fallback(f"the body is a {type(m.body).__name__}, not a str")
        content_subtype = _mime_subtype("content_subtype", m.content_subtype)
        message_headers = self.message_headers()
        body_headers, body = self.text_headers(content_subtype, m.body)

        # The body, or the alternatives around it.
        alternatives = (
            getattr(m, "alternatives", None) if isinstance(m, EmailMultiAlternatives) else None
        )
        top: tuple[str, Any]
        if alternatives:
            children = []
            if m.body:
                children.append([self.header_block(body_headers) + body])
            for alternative in alternatives:
                content, mimetype = alternative
                children.append(self.alternative(content, mimetype))
            top = ("multipart", (_mime_subtype("alternative_subtype", m.alternative_subtype),
                                 children))
        else:
            top = ("text", (body_headers, body))

        if m.attachments:
            children = []
            if m.body or top[0] == "multipart":
                children.append(self.render(top, []))
            for attachment in m.attachments:
                children.append(self.attachment(attachment))
            pieces = self.multipart(_mime_subtype("mixed_subtype", m.mixed_subtype), children,
                                    message_headers)
        else:
            pieces = self.render(top, message_headers)
        for piece in pieces:
            if isinstance(piece, bytes):
                self.emit(piece)
            else:
                self.pieces.append(piece)
        return Serialized(self.pieces, message_headers, self.linesep)

    def render(self, node: tuple[str, Any], extra_headers: list[tuple[str, str]]) -> list[Any]:
        kind, data = node
        if kind == "text":
            headers, body = data
            return [self.header_block(headers + extra_headers) + body]
        subtype, children = data
        return self.multipart(subtype, children, extra_headers)


class _Fallback(Exception):  # noqa: N818 - a decision, not an error
    """The fast writer does not handle this message; use message() (the argument says why)."""


def serialize(email_message: Any, linesep: str = "\r\n", *, utf8: bool = False) -> Serialized:
    """The bytes of ``email_message`` with ``linesep`` line endings, in chunks.

    ``utf8`` (mailcore only) is for a server that offers SMTPUTF8 (RFC 6531), with MAIL
    carrying it: an address header with a mailbox whose local part is not ASCII
    (``jörg@example.test``) is written in UTF-8 (RFC 6532), that mailbox's display name too;
    other headers and mailboxes are written as always (the Subject keeps its encoded words,
    which RFC 6532 still allows, so a message with ASCII local parts only gives the very
    same bytes either way). Without ``utf8`` such a mailbox raises
    :class:`mailcore.message.NeedsSMTPUTF8Error` (an ``InvalidAddressError``, a
    ``ValueError``): mailcore never writes a local part as an encoded word, which is another
    mailbox. The fast writer and the email package (``message()`` inside
    :func:`mailcore.message.utf8_headers`) give the same bytes.
    """
    if linesep not in _POLICIES:
        raise ValueError("linesep must be '\\n' or '\\r\\n'")
    token = _UTF8_HEADERS.set(bool(utf8))  # what utf8_headers(utf8) does, without its frame
    try:
        return _serialize(email_message, linesep)
    finally:
        _UTF8_HEADERS.reset(token)


def serialize_in(email_message: Any, linesep: str, encoding: str, *,
                 utf8: bool = False) -> Serialized:
    """:func:`serialize` for a caller that has read the message's charset already
    (``email_message.encoding or settings.DEFAULT_CHARSET``), so it is read once per message
    (the SMTP backend, which needs it for the envelope too)."""
    if linesep not in _POLICIES:
        raise ValueError("linesep must be '\\n' or '\\r\\n'")
    token = _UTF8_HEADERS.set(bool(utf8))
    try:
        return _serialize(email_message, linesep, encoding)
    finally:
        _UTF8_HEADERS.reset(token)


def _serialize(email_message: Any, linesep: str, encoding: str = "") -> Serialized:
    failure: Exception | None = None
    if isinstance(email_message, EmailMessage):
        encoding = encoding or email_message.encoding or settings.DEFAULT_CHARSET
        refusal = _refusal(email_message, encoding)
    else:
        encoding = ""
        refusal = stream_refusal(email_message)
    if refusal is None:
        try:
            return _Writer(email_message, linesep, encoding).build()
        except _Fallback as exc:
            refusal = str(exc)
        except Exception as exc:  # noqa: BLE001 - told apart just below
            failure = exc
    # Most often a failure means the message itself is wrong: message() raises its own
    # error for it (raised here, outside the handler, as message() alone would raise it).
    msg = email_message.message()
    if failure is not None:
        # message() built it, so the fast writer has a bug.
        if STRICT:
            raise WireFallbackError(
                f"the fast writer failed on a message that message() builds: {failure!r}"
            ) from failure
        logger.warning("serialising with the email package: the fast writer failed (%r)",
                       failure, exc_info=failure)
    else:
        logger.debug("serialising with the email package: %s", refusal)
    rng = _boundary_random(email_message)
    if rng is random or getattr(type(msg), "as_bytes", None) is not MIMEMixin.as_bytes:
        data = msg.as_bytes(linesep=linesep)
    else:  # what MIMEMixin.as_bytes does, with seeded boundaries
        data = _flatten(msg, linesep, rng)
    headers = [(name, str(value)) for name, value in msg.items()]
    charset = msg.get_charset().get_output_charset() if msg.get_charset() else "utf-8"
    return Serialized([data], headers, linesep, charset)
