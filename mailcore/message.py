"""Email messages, built exactly as Django 5.2's ``django.core.mail.message``.

``EmailMessage.message()`` builds the same ``email`` package objects Django
builds, so code written for Django gets the same MIME tree. Backends do not call
it on the hot path: they use :mod:`mailcore.wire`, which writes the very same
bytes in chunks, without building the object tree and without holding large
attachments in memory.
"""

from __future__ import annotations

import binascii
import contextlib
import contextvars
import functools
import mimetypes
import os
import re
import smtplib
import stringprep
import unicodedata
from collections import namedtuple
from collections.abc import Iterator
from email import charset as Charset
from email import encoders as Encoders
from email import generator, message_from_bytes, quoprimime
from email.errors import HeaderParseError, InvalidHeaderDefect, NonPrintableDefect
from email.header import Header
from email.headerregistry import Address, parser
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import (
    escapesre,
    formataddr,
    formatdate,
    getaddresses,
    make_msgid,
    specialsre,
    unquote,
)
from io import BytesIO, StringIO
from pathlib import Path
from typing import Any
from unicodedata import ucd_3_2_0 as _ucd_3_2_0

from mailcore.conf import settings
from mailcore.utils import DNS_NAME, force_bytes, force_str, punycode

__all__ = [
    "ADDRESS_HEADERS",
    "BadHeaderError",
    "DEFAULT_ATTACHMENT_MIME_TYPE",
    "EmailAlternative",
    "EmailAttachment",
    "EmailMessage",
    "EmailMultiAlternatives",
    "FileContent",
    "InvalidAddressError",
    "NeedsSMTPUTF8Error",
    "UTF8AddressHeader",
    "SafeMIMEMessage",
    "SafeMIMEMultipart",
    "SafeMIMEText",
    "check_envelope_address",
    "check_header_name",
    "check_header_text",
    "envelope_address",
    "forbid_multi_line_headers",
    "make_msgid",
    "needs_smtputf8",
    "sanitize_address",
    "utf8_headers",
]

# Don't BASE64-encode UTF-8 messages so that we avoid unwanted attention from
# some spam filters.
utf8_charset = Charset.Charset("utf-8")
utf8_charset.body_encoding = None  # Python defaults to BASE64
utf8_charset_qp = Charset.Charset("utf-8")
utf8_charset_qp.body_encoding = Charset.QP

# Default MIME type to use on attachments (if it is not explicitly given
# and cannot be guessed).
DEFAULT_ATTACHMENT_MIME_TYPE = "application/octet-stream"

RFC5322_EMAIL_LINE_LENGTH_LIMIT = 998

# mailcore only, for tools that take headers from people: a header name is printable ASCII
# without ":" (RFC 5322 ftext), and these headers are written from the message's structure,
# so an extra one would be a second copy.
HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
STRUCTURE_HEADERS = ("content-type", "content-transfer-encoding", "mime-version")

# mailcore only: characters that end a line for some reader of a header, so none may appear in
# one (a header injection otherwise): CR and LF for SMTP and RFC 5322, NUL, and the others that
# Python's str.splitlines() splits on, which the email package uses when it folds and parses.
HEADER_LINE_BREAKS = "\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

# attach_file() reads files up to this size at once, as Django does; larger
# non-text files are streamed from disk when the message is written.
ATTACH_FILE_READ_LIMIT = 1024 * 1024


class BadHeaderError(ValueError):
    """A header value holds a newline (a header injection attempt)."""


class InvalidAddressError(ValueError):
    """mailcore only: an address that is not one valid mailbox (in a header or the SMTP
    envelope). A ``ValueError``, as Django raises, with the address in the message."""


class NeedsSMTPUTF8Error(InvalidAddressError):
    """mailcore only: an address whose local part is not ASCII (``jörg@example.test``) was to
    be written without SMTPUTF8 (RFC 6531/6532): only a server that offers SMTPUTF8 can take
    it, and mailcore never rewrites a local part as an RFC 2047 encoded word (that is another
    mailbox, which a server refuses or, worse, a catch-all takes). ``address`` is the address
    as given, ``field`` where it was (``to``, ``From``, ``envelope``...)."""

    def __init__(self, message: str, *, address: str = "", field: str = "") -> None:
        super().__init__(message)
        self.address = address
        self.field = field


# -- the one rule for header-bearing values (mailcore only) ---------------------------------

_CHARACTER_NAMES = {
    "\r": "carriage return",
    "\n": "line feed",
    "\x00": "NUL",
    "\x0b": "vertical tab",
    "\x0c": "form feed",
    "\x1c": "file separator",
    "\x1d": "group separator",
    "\x1e": "record separator",
    "\x85": "next line",
    "\u2028": "line separator",
    "\u2029": "paragraph separator",
}
# HEADER_LINE_BREAKS, and the lone surrogates, which no charset can write.
_HEADER_UNSAFE = re.compile(
    "[" + "".join(f"\\u{ord(c):04x}" for c in HEADER_LINE_BREAKS) + "\\ud800-\\udfff]"
)
# What a reader decodes as an RFC 2047 encoded word (email.header.ecre, and the modern
# parser, which also decodes them in quoted strings, local parts and parameters).
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[qQbB]\?.*?\?=", re.DOTALL)
# RFC 5322 2.1.1: a line is at most 998 octets, CRLF excluded.
MAX_HEADER_LINE = RFC5322_EMAIL_LINE_LENGTH_LIMIT


def describe_character(ch: str) -> str:
    """``U+000B (vertical tab)``: a character as an error message names it."""
    if "\ud800" <= ch <= "\udfff":
        name = "a lone surrogate"
    else:
        name = _CHARACTER_NAMES.get(ch) or unicodedata.name(ch, "").lower() or "control character"
    return f"U+{ord(ch):04X} ({name})"


def _shown(value: str, limit: int = 80) -> str:
    """``repr(value)``, cut in the middle when long (error messages stay one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit // 2]}...{text[-limit // 2 :]}"


def _kind(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    return type(value).__name__


def check_header_text(field: str, value: str) -> None:
    """The one rule for every value that ends up in a header (mailcore only).

    ``value`` must be a ``str`` (``TypeError`` otherwise: bytes are refused, not guessed at)
    holding none of :data:`HEADER_LINE_BREAKS` (CR, LF, NUL and every character that
    ``str.splitlines()`` splits on, all of which some reader of a header takes for the end
    of a line) nor a lone surrogate; ``BadHeaderError`` otherwise, naming ``field`` and the
    character. Subjects, addresses, display names, header names and values, attachment
    filenames, MIME types and subtypes all go through it, on every path
    (``message()``, :mod:`mailcore.wire`, the SMTP envelope).
    """
    if not isinstance(value, str):
        raise TypeError(f"{field} must be text (str), not {_kind(value)}")
    found = _HEADER_UNSAFE.search(value)
    if found is not None:
        ch = found.group()
        if "\ud800" <= ch <= "\udfff":
            raise BadHeaderError(
                f"{field} can't contain {describe_character(ch)}: no charset can write it "
                f"(got {_shown(value)})"
            )
        raise BadHeaderError(
            f"{field} can't contain {describe_character(ch)}: Header values can't contain "
            f"newlines or other line breaks (got {_shown(value)})"
        )


def header_text(field: str, value: Any) -> str:
    """``value`` as the text of a header, as Django takes it (``str(value)``: a lazy
    translation, a number), except that bytes are refused; then :func:`check_header_text`."""
    if type(value) is not str:
        if isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"{field} must be text (str), not bytes")
        value = str(value)  # value may be lazy
    check_header_text(field, value)
    return value


_GOOD_HEADER_NAMES: set[str] = set()


def check_header_name(name: str) -> None:
    """A header name is printable ASCII without ":" (RFC 5322 ftext): anything else would
    end the header block or make another header. ``BadHeaderError`` names the character."""
    if type(name) is str and name in _GOOD_HEADER_NAMES:
        return
    if not isinstance(name, str):
        raise TypeError(f"Header names must be text (str), not {_kind(name)}")
    if HEADER_NAME.fullmatch(name) is None:
        bad = next((c for c in name if HEADER_NAME.fullmatch(c) is None), None)
        if bad is None:
            raise BadHeaderError("Header names can't be empty")
        raise BadHeaderError(
            f"Header names can't contain {describe_character(bad)}: a header name is "
            f"printable ASCII without ':' (got {_shown(name)})"
        )
    if len(_GOOD_HEADER_NAMES) < 1024:
        _GOOD_HEADER_NAMES.add(name)


def check_header_line(name: str, value: str) -> None:
    """Refuse a header that can't be folded into lines of at most 998 octets (RFC 5322
    2.1.1; SMTP servers refuse longer lines): one with a word too long to fold. ``value``
    is the value as stored (ASCII: encoded words, RFC 2231 parameters), folded at spaces
    and tabs, so a line holds one word at most once the header is longer than 78."""
    if len(name) + len(value) + 2 <= MAX_HEADER_LINE:
        return  # folding never makes a line longer than the unfolded header
    longest = max(map(len, _WORD.findall(value)), default=0)
    if len(name) + 2 + longest > MAX_HEADER_LINE:
        raise BadHeaderError(
            f"{name} holds a word of {longest} characters, too long to fold into a header "
            f"line of at most {MAX_HEADER_LINE} octets (RFC 5322 section 2.1.1)"
        )


_WORD = re.compile(r"[^ \t\r\n]+")


def has_encoded_word(value: str) -> bool:
    """True if a reader would decode part of ``value`` as an RFC 2047 encoded word."""
    return "=?" in value and _ENCODED_WORD.search(value) is not None


# Headers the modern parser reads as structured (it decodes no encoded word in them).
_STRUCTURED_HEADERS = {
    "message-id", "date", "resent-date", "orig-date", "mime-version", "content-type",
    "content-transfer-encoding", "content-disposition", "resent-message-id",
}


# Header names that contain structured address data (RFC 5322).
ADDRESS_HEADERS = {
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-bcc",
}


# -- SMTPUTF8 (RFC 6531) and UTF-8 headers (RFC 6532), mailcore only -------------------------

_UTF8_HEADERS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "mailcore_utf8_headers", default=False
)


def utf8_enabled() -> bool:
    """True inside :func:`utf8_headers` (on this thread or task)."""
    return _UTF8_HEADERS.get()


@contextlib.contextmanager
def utf8_headers(enabled: bool = True) -> Iterator[None]:
    """Within it, messages built on this thread or task (``message()``, and
    :func:`mailcore.wire.serialize`, which uses it for ``utf8=True``) may hold mailboxes whose
    local part is not ASCII: their address headers are written in UTF-8 (RFC 6532), for a
    server that offers SMTPUTF8. Outside it (the default) such a mailbox raises
    :class:`NeedsSMTPUTF8Error`. Messages with ASCII local parts only give the same bytes
    either way."""
    token = _UTF8_HEADERS.set(bool(enabled))
    try:
        yield
    finally:
        _UTF8_HEADERS.reset(token)


# What the email package's address parser raises for input it can't take: its tokens raise
# IndexError for '"', and CPython 3.11's _get_ptext_to_endchars an UnboundLocalError for a
# domain literal cut short by whitespace ("a@[\t"). Each becomes InvalidAddressError.
_PARSER_FAILURES = (HeaderParseError, ValueError, IndexError, TypeError, AttributeError,
                    UnboundLocalError)


def _local_part(address: str) -> str:
    """The local part of one address as a reader parses it (the raw text before the last "@"
    of the addr-spec when it doesn't parse, or is too long for the parser)."""
    simple = _simple_parts(address)
    if simple is not None:
        return simple[1]
    if len(address) <= MAX_ADDRESS_LENGTH and not _HEADER_UNSAFE.search(address):
        try:
            token, rest = _get_mailbox(address)
            local = token.local_part if not rest.strip() else None  # (a property that raises)
        except _PARSER_FAILURES:
            local = None
        if local is not None:
            return str(local)
    spec = _raw_addr_spec(address).strip()
    return spec.rsplit("@", 1)[0] if "@" in spec else spec


def needs_smtputf8(address: str) -> bool:
    """True if ``address`` (``jörg@example.test``, ``Jörg <jörg@example.test>``, or a
    ``(name, address)`` pair) has a local part that is not ASCII, which only SMTPUTF8
    (RFC 6531) carries. A non-ASCII domain alone does not need it (it goes as IDNA,
    ``xn--...``), nor does a non-ASCII display name (an encoded word is fine there)."""
    if isinstance(address, tuple) and len(address) == 2:
        address = address[1]
    address = force_str(address)
    if address.isascii():
        return False
    return not _local_part(address).isascii()


# Characters refused in a UTF-8 local part: controls, format characters (bidirectional
# overrides make one address look like another) but the joiners some scripts need, unassigned
# and private-use code points, and every kind of space or line separator.
_LOCAL_REFUSED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
_JOINERS = frozenset("\u200c\u200d")


def _utf8_local_problem(local: str) -> str | None:
    for ch in local:
        if ch.isascii() or ch in _JOINERS:
            continue
        if unicodedata.category(ch) in _LOCAL_REFUSED:
            return f"its local part holds {describe_character(ch)}, which no address may hold"
    return None


_ADDRESS_HEADERS = ("from", "sender", "to", "cc", "bcc", "reply-to", "resent-from",
                    "resent-sender", "resent-to", "resent-cc")


def message_needs_smtputf8(email_message: Any) -> bool:
    """True if any address of a mailcore (or Django-style) message, in its envelope fields or
    its address headers, has a local part that is not ASCII: its bytes can then only be
    written for SMTPUTF8 (``serialize(message, utf8=True)``). Where no server decides (the
    console and file backends, a preview) that is how they are written."""
    fields = [getattr(email_message, "from_email", "") or ""]
    for name in ("to", "cc", "bcc", "reply_to"):
        fields.extend(getattr(email_message, name, None) or [])
    for name, value in (getattr(email_message, "extra_headers", None) or {}).items():
        if str(name).lower() in _ADDRESS_HEADERS:
            fields.append(str(value))
    for field in fields:
        text = force_str(field)
        if text.isascii() or _simple_parts(text) is not None:  # (its local part is ASCII)
            continue
        from mailcore.utils import split_addresses

        if any(needs_smtputf8(addr) for addr, _start, _end in split_addresses(text)):
            return True
    return False


def _smtputf8_error(field: str, address: str) -> NeedsSMTPUTF8Error:
    local = _local_part(address)
    where = f"{field}: " if field else ""
    return NeedsSMTPUTF8Error(
        f'{where}Invalid address "{address}": its local part "{local}" is not ASCII, so it '
        "can only be sent with SMTPUTF8 (RFC 6531) through a server that offers it; mailcore "
        "never writes it as an encoded word, which would be another mailbox",
        address=address, field=field,
    )


def _utf8_addr_spec(local: str, domain: str, address: Any) -> str:
    """``local@domain`` for a UTF-8 local part: checked, quoted where RFC 5322 needs it, the
    domain as IDNA."""
    if len(local) > 1 and local[0] == local[-1] == '"':
        local = unquote(local)
    problem = _utf8_local_problem(local)
    if problem is not None:
        raise InvalidAddressError(f'Invalid address "{address}": {problem}')
    if has_encoded_word(local):
        raise InvalidAddressError(
            f'Invalid address "{address}": an addr-spec can\'t hold an RFC 2047 encoded word '
            "(readers decode it into another address)"
        )
    try:
        spec = Address(username=local, domain=_idna(domain, address) if domain else "").addr_spec
    except (ValueError, TypeError, IndexError, HeaderParseError) as exc:
        raise InvalidAddressError(f'Invalid address "{address}": {exc}') from None
    return spec


def _utf8_mailbox(pair: tuple[str, str], encoding: str) -> str:
    """One mailbox of an address header in UTF-8 (RFC 6532): the local part and a non-ASCII
    display name as they are, the domain as IDNA. A display name that looks like an encoded
    word is encoded itself (so a reader shows it as given)."""
    sanitize_address(pair, encoding)  # its checks: line breaks, encoded words, IDNA, empty
    nm, spec = pair
    local, domain = spec.rsplit("@", 1) if "@" in spec else (spec, "")
    addr_spec = _utf8_addr_spec(local, domain, spec)
    if not nm:
        return addr_spec
    if has_encoded_word(nm):
        # encoded itself, so a reader shows the text as given (not what it would decode to)
        return f"{header_encode(nm, 'utf-8')} <{addr_spec}>"
    # formataddr() would refuse the UTF-8 addr-spec (it wants ASCII): quoted here as it would
    quotes = '"' if specialsre.search(nm) else ""
    escaped = escapesre.sub(r"\\\g<0>", nm)
    return f"{quotes}{escaped}{quotes} <{addr_spec}>"


class UTF8AddressHeader:
    """An address header written in UTF-8 (RFC 6532): what a message built inside
    :func:`utf8_headers` holds for an address header with a mailbox whose local part is not
    ASCII (``items``: its mailboxes, each as written). ``str()`` is the text. The email
    package's compat32 policy (Django's) folds it with :meth:`encode` between mailboxes and
    writes its UTF-8 bytes as they are, and so does :mod:`mailcore.wire`."""

    __slots__ = ("items", "name")

    def __init__(self, name: str, items: list[str] | tuple[str, ...]) -> None:
        self.name = name
        self.items = tuple(items)
        for item in self.items:
            if len(name) + 3 + len(item.encode("utf-8")) > MAX_HEADER_LINE:
                raise BadHeaderError(
                    f"{name}: the address {_shown(item)} is too long for a header line of at "
                    f"most {MAX_HEADER_LINE} octets (RFC 5322 section 2.1.1)"
                )

    def __str__(self) -> str:
        return ", ".join(self.items)

    def __repr__(self) -> str:
        return f"UTF8AddressHeader({self.name!r}, {str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, UTF8AddressHeader):
            return (self.name, self.items) == (other.name, other.items)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.name, self.items))

    def encode(self, splitchars: str = ";, \t", maxlinelen: int | None = None,
               linesep: str = "\n") -> str:
        """The value folded at ``maxlinelen`` characters (78 when not given) between
        mailboxes, as the generator writes it: UTF-8 bytes carried as surrogate escapes
        (``fold_binary`` encodes them back with ``surrogateescape``)."""
        limit = maxlinelen or 78
        lines: list[str] = []
        line = ""
        width = len(self.name) + 2  # "Name: "
        last = len(self.items) - 1
        for index, item in enumerate(self.items):
            piece = item + ("," if index < last else "")
            # A display name of several encoded words is already folded between them
            # ("\n "): each of its lines is a line here, ended by ``linesep`` like the others
            # (never a bare line feed inside a CRLF message).
            first, *more = piece.split("\n ")
            if not line:
                line = first
            elif width + len(line) + 1 + len(first) > limit:
                lines.append(line)
                width = 1  # a continuation line starts with a space
                line = first
            else:
                line += " " + first
            for segment in more:
                lines.append(line)
                width = 1
                line = segment
        lines.append(line)
        return (linesep + " ").join(lines).encode("utf-8").decode("ascii", "surrogateescape")


def forbid_multi_line_headers(name: str, val: Any, encoding: str | None) -> tuple[str, str]:
    """Forbid multi-line headers to prevent header injection.

    mailcore goes further than Django: the header name must be RFC 5322 ftext, the value
    passes :func:`check_header_text` (every line break, not only CR and LF), an ASCII value
    that a reader would decode as an encoded word is itself encoded (so the reader shows
    what was given), and a header that can't be folded into 998-octet lines is refused.
    """
    encoding = encoding or settings.DEFAULT_CHARSET
    check_header_name(name)
    val = header_text(name, val)
    if name.lower() in ADDRESS_HEADERS:
        check_address_list(name, val)
    return name, encoded_header_value(name, val, encoding)


def encoded_header_value(
    name: str, val: str, encoding: str, sanitize: Any = None
) -> Any:
    """What Django's forbid_multi_line_headers stores for a checked ``val`` (and mailcore's
    two additions: encoded-word look-alikes are encoded, over-long lines refused).
    ``sanitize`` stands in for :func:`sanitize_address` (mailcore.wire passes a cached one).
    Inside :func:`utf8_headers`, an address header with a mailbox whose local part is not
    ASCII is a :class:`UTF8AddressHeader` (that mailbox in UTF-8, the others as always)."""
    lname = name.lower()
    if lname in _STRUCTURED_HEADERS and not val.isascii():
        raise BadHeaderError(
            f"{name} must be ASCII: readers decode no encoded word in it (got {_shown(val)})"
        )
    if val.isascii() and not (has_encoded_word(val) and lname not in _STRUCTURED_HEADERS):
        if lname == "subject":
            val = Header(val).encode()
    elif lname in ADDRESS_HEADERS:
        sanitize = sanitize or sanitize_address
        simple = _simple_pairs(val)  # (their local parts are ASCII: no SMTPUTF8 needed)
        pairs = simple or getaddresses((val,))
        if simple is None and any(needs_smtputf8(spec) for _nm, spec in pairs):
            if not _UTF8_HEADERS.get():
                raise _smtputf8_error(name, val)
            return UTF8AddressHeader(name, [
                _utf8_mailbox(pair, encoding) if needs_smtputf8(pair[1])
                else sanitize(pair, encoding) for pair in pairs
            ])
        val = ", ".join(sanitize(addr, encoding) for addr in pairs)
    elif val.isascii():
        # An ASCII value that looks like an encoded word: encoded, so that a reader decodes
        # it back to the very text given instead of to what the "word" says.
        val = Header(val, "utf-8").encode()
    else:
        val = header_encode(val, encoding)
    check_header_line(name, val)
    return val


# The parser is slow and mail repeats addresses: sanitize_address() and the header check
# parse each one once (the tokens are only read).
_get_mailbox = functools.lru_cache(maxsize=4096)(parser.get_mailbox)

# mailcore only: an address (display name included) longer than this is refused before it is
# parsed (an addr-spec has at most 254 characters; a header line at most 998 octets).
MAX_ADDRESS_LENGTH = 512


# -- IDNA and RFC 2047 words at C speed, with the standard library's exact results ----------
#
# Domains and display names are mostly new in mass mail, so caching whole values does little:
# these do the standard library's work with its per-character steps memoised, and hand
# anything unusual (a character nameprep prohibits, a right-to-left label, a line break) to
# the standard library itself, so results and errors are the same.

_IDNA_DOTS = re.compile("[\u002e\u3002\uff0e\uff61]")
class _NameprepMap(dict):
    """For ``str.translate``: a code point -> what nameprep's mapping step makes of it
    (table B.1 to nothing, B.2 case folding), worked out once per character."""

    def __missing__(self, code: int) -> str:
        c = chr(code)
        mapped = "" if stringprep.in_table_b1(c) else stringprep.map_table_b2(c)
        if len(self) < 65536:
            self[code] = mapped
        return mapped


class _NameprepUnusual(dict):
    """For ``str.translate``: "" for a code point nameprep neither prohibits (tables C.1.2
    to C.9) nor counts as right-to-left (D.1), "!" for one that the codec must judge."""

    def __missing__(self, code: int) -> str:
        c = chr(code)
        sp = stringprep
        unusual = (
            sp.in_table_c12(c) or sp.in_table_c22(c) or sp.in_table_c3(c)
            or sp.in_table_c4(c) or sp.in_table_c5(c) or sp.in_table_c6(c)
            or sp.in_table_c7(c) or sp.in_table_c8(c) or sp.in_table_c9(c)
            or sp.in_table_d1(c)
        )
        mark = "!" if unusual else ""
        if len(self) < 65536:
            self[code] = mark
        return mark


_NAMEPREP_MAP = _NameprepMap()
_NAMEPREP_UNUSUAL = _NameprepUnusual()


def _label_to_ascii(label: str) -> str | None:
    """``encodings.idna.ToASCII(label)`` as text, or None where the codec should decide
    (it raises, or a right-to-left label needs its bidi rules)."""
    if label.isascii():
        return label if 0 < len(label) < 64 else None
    label = _ucd_3_2_0.normalize("NFKC", label.translate(_NAMEPREP_MAP))
    if label.translate(_NAMEPREP_UNUSUAL):
        return None
    if not label.isascii():
        if label.startswith("xn--"):
            return None
        label = "xn--" + _punycode(label)
    return label if 0 < len(label) < 64 else None


_PUNY_DIGITS = "abcdefghijklmnopqrstuvwxyz0123456789"


def _punycode(label: str) -> str:
    """``label.encode("punycode")`` as text: RFC 3492's encoder, in one loop."""
    codepoints = [ord(c) for c in label]
    output = [c for c in label if c < "\x80"]
    b = h = len(output)
    if b:
        output.append("-")
    n, delta, bias = 128, 0, 72
    digits = _PUNY_DIGITS
    for m in sorted({c for c in codepoints if c >= 128}):  # each code point to insert
        delta += (m - n) * (h + 1)
        n = m
        for c in codepoints:
            if c < n:
                delta += 1
            elif c == n:
                q, k = delta, 36
                while True:
                    t = 1 if k <= bias else (26 if k >= bias + 26 else k - bias)
                    if q < t:
                        break
                    output.append(digits[t + (q - t) % (36 - t)])
                    q = (q - t) // (36 - t)
                    k += 36
                output.append(digits[q])
                # adapt() of RFC 3492 section 6.1
                delta = delta // 700 if h == b else delta // 2
                delta += delta // (h + 1)
                k = 0
                while delta > 455:
                    delta //= 35
                    k += 36
                bias = k + (36 * delta) // (delta + 38)
                delta = 0
                h += 1
        delta += 1
        n += 1
    return "".join(output)


@functools.lru_cache(maxsize=256)
def idna_domain(domain: str) -> str:
    """``domain.encode("idna").decode("ascii")`` (IDNA 2003, as Django writes domains), with
    the same result and the same UnicodeError."""
    if domain.isascii():
        return punycode(domain)  # the codec's own ASCII checks
    labels = _IDNA_DOTS.split(domain)
    trailing = ""
    if labels and not labels[-1]:
        trailing = "."
        del labels[-1]
    out = []
    for label in labels:
        encoded = _label_to_ascii(label)
        if encoded is None:
            return punycode(domain)  # raises as the codec does, or applies the bidi rules
        out.append(encoded)
    return ".".join(out) + trailing


_QP_HEADER_MAP = quoprimime._QUOPRI_HEADER_MAP
_QP_LENGTHS: dict[str, tuple[int, int]] = {}  # a character -> (UTF-8 octets, q-encoded length)


def _qp_lengths(c: str) -> tuple[int, int]:
    found = _QP_LENGTHS.get(c)
    if found is None:
        raw = c.encode("utf-8")
        found = (len(raw), len(raw.decode("latin-1").translate(_QP_HEADER_MAP)))
        if len(_QP_LENGTHS) < 65536:
            _QP_LENGTHS[c] = found
    return found


def _words(text: str, b64: bool, lengths: list[tuple[int, int]]) -> list[str]:
    """``Charset("utf-8").header_encode_lines(text, ...)`` for a Header without a header
    name (lines of 78): greedy runs of characters whose encoded text fits 66 characters on
    the first line, 65 on the next (a space before each), the RFC 2047 chrome aside."""
    words: list[str] = []
    start = 0
    octets = qp = 0
    limit = 66
    for index, (n_octets, n_qp) in enumerate(lengths):
        octets += n_octets
        qp += n_qp
        size = 4 * ((octets + 2) // 3) if b64 else qp
        if size > limit:
            words.append(_word(text[start:index], b64))
            start = index
            octets, qp = n_octets, n_qp
            limit = 65
    words.append(_word(text[start:], b64))
    return words


def _word(text: str, b64: bool) -> str:
    raw = text.encode("utf-8")
    if b64:
        return "=?utf-8?b?" + binascii.b2a_base64(raw, newline=False).decode("ascii") + "?="
    return "=?utf-8?q?" + raw.decode("latin-1").translate(_QP_HEADER_MAP) + "?="


def header_encode(text: str, charset: str | None = None) -> str:
    """``email.header.Header(text, charset).encode()``, the same text; UTF-8 words are made
    here at C speed (the standard library measures every prefix of the text)."""
    if charset != "utf-8" or not text or text.isascii() or len(text.splitlines()) != 1 \
            or len(text) > 400:
        return Header(text, charset).encode()
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: Header raises its own error
        return Header(text, charset).encode()
    q = raw.decode("latin-1").translate(_QP_HEADER_MAP)
    b64_length = 4 * ((len(raw) + 2) // 3)
    b64 = b64_length < len(q)
    if (b64_length if b64 else len(q)) <= 66:  # one word: the whole text fits the first line
        if b64:
            return "=?utf-8?b?" + binascii.b2a_base64(raw, newline=False).decode("ascii") + "?="
        return "=?utf-8?q?" + q + "?="
    if b64:
        # Base64 words of at most 48 octets (64 characters, the most that fits a line's 66 or
        # 65 beside the chrome), each ending at a character's end: _words' greedy runs, cut
        # in the UTF-8 bytes (a continuation byte is 10xxxxxx) instead of character by
        # character.
        words = []
        pos, size = 0, len(raw)
        while size - pos > 48:
            end = pos + 48
            while raw[end] & 0xC0 == 0x80:
                end -= 1
            words.append(raw[pos:end])
            pos = end
        words.append(raw[pos:])
        return "\n ".join(
            ["=?utf-8?b?" + binascii.b2a_base64(w, newline=False).decode("ascii") + "?="
             for w in words])
    return "\n ".join(_words(text, b64, [_qp_lengths(c) for c in text]))


def _idna(domain: str, address: Any) -> str:
    try:
        encoded = idna_domain(domain)
    except UnicodeError as exc:
        raise InvalidAddressError(
            f'Invalid address "{address}": the domain {domain!r} is not a valid '
            f"internationalised domain name ({exc})"
        ) from None
    if not domain.isascii() and _LDH_DOMAIN.fullmatch(encoded) is None:
        # IDNA 2003 maps some characters to others (U+00A0 to a space, for one)
        raise InvalidAddressError(
            f'Invalid address "{address}": the domain {domain!r} is not a valid '
            f"internationalised domain name (it encodes as {encoded!r})"
        )
    return encoded


_LDH_DOMAIN = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")


def sanitize_address(addr: str | tuple[str, str], encoding: str) -> str:
    """Format a pair of (name, address) or an email address string."""
    address = None
    decoded = False  # the parser decoded an encoded word in the addr-spec
    if not isinstance(addr, tuple):
        addr = force_str(addr)
        if len(addr) > MAX_ADDRESS_LENGTH:
            # (before the parser, which is slow on long input)
            raise InvalidAddressError(
                f"Invalid address {_shown(addr)}: {len(addr)} characters, more than the "
                f"{MAX_ADDRESS_LENGTH} an address may have here"
            )
        found = _HEADER_UNSAFE.search(addr)
        if found is not None:
            raise InvalidAddressError(
                "Invalid address; address parts cannot contain newlines. "
                f"{_shown(addr)} contains {describe_character(found.group())}"
            )
        try:
            token, rest = _get_mailbox(addr)
            if not rest:
                nm = token.display_name or ""
                localpart = token.local_part
                domain = token.domain or ""
                # (the parser decodes it, sometimes into plain atoms: the text decides)
                decoded = "=?" in addr and (
                    _encoded_word_in_addr_spec(token) or has_encoded_word(_raw_addr_spec(addr))
                )
        except _PARSER_FAILURES:
            # (the parser's tokens raise IndexError for '"', for instance)
            raise InvalidAddressError('Invalid address "%s"' % addr) from None
        if rest:
            # The entire email address must be parsed.
            raise InvalidAddressError(
                'Invalid address; only %s could be parsed from "%s"' % (token, addr)
            )
    else:
        try:
            nm, address = addr
        except ValueError:
            raise InvalidAddressError(
                f"Invalid address {addr!r}: not a (name, address) pair"
            ) from None
        if not isinstance(nm, str) or not isinstance(address, str):
            raise TypeError(f"Invalid address {addr!r}: name and address must be text (str)")
        if "@" not in address:
            raise InvalidAddressError(f'Invalid address "{address}"')
        localpart, domain = address.rsplit("@", 1)
        if len(localpart) > 1 and localpart[0] == localpart[-1] == '"':
            # mailcore only: a quoted local part (as getaddresses() gives it) is its text;
            # Django quoted the quotes again, which makes another address.
            localpart = unquote(localpart)

    if not localpart:
        # (Django writes "@example.com" for '""@example.com', which is no address)
        raise InvalidAddressError('Invalid address "%s": the local part is empty' % (addr,))
    address_parts = nm + localpart + domain
    found = _HEADER_UNSAFE.search(address_parts)
    if found is not None:
        raise InvalidAddressError(
            "Invalid address; address parts cannot contain newlines. "
            f"{_shown(str(addr))} contains {describe_character(found.group())}"
        )
    if (isinstance(addr, str) and decoded) or has_encoded_word(localpart + "@" + domain):
        raise InvalidAddressError(
            f'Invalid address "{addr}": an addr-spec can\'t hold an RFC 2047 encoded word '
            "(readers decode it into another address)"
        )

    # Avoid UTF-8 encode, if it's possible. (str.isascii() is exactly when encode("ascii")
    # succeeds, without the exception's cost.)
    if nm.isascii():
        # mailcore only: a display name that looks like an encoded word is encoded itself,
        # so that readers show it as given.
        nm = Header(nm, "utf-8" if has_encoded_word(nm) else None).encode()
    else:
        nm = header_encode(nm, encoding)
    if not localpart.isascii():
        localpart = header_encode(localpart, encoding)
    domain = _idna(domain, addr)

    if (domain and parser.DOT_ATOM_ENDS.isdisjoint(localpart)
            and "\n" not in localpart and "\r" not in localpart and "\r" not in domain
            and "\n" not in domain):
        # what Address(username=localpart, domain=domain).addr_spec gives for a local part
        # it does not quote (and with no line break, which Address refuses)
        return formataddr((nm, f"{localpart}@{domain}"))
    try:
        parsed_address = Address(username=localpart, domain=domain)
    except (ValueError, TypeError, IndexError, HeaderParseError) as exc:
        raise InvalidAddressError(f'Invalid address "{addr}": {exc}') from None
    return formataddr((nm, parsed_address.addr_spec))


def _raw_addr_spec(addr: str) -> str:
    """The addr-spec part of an address as written: between the last "<" and ">", or all."""
    found = _ANGLE_ADDR.search(addr)
    return addr if found is None else found.group(1)


_ANGLE_ADDR = re.compile(r"<([^<>]*)>[^<>]*\Z")


# A plain addr-spec, or "Display Name <addr-spec>" with a display name of atoms: forms
# that are one mailbox for certain, checked without the parser.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]{{1,63}}(?:\.[A-Za-z0-9-]{{1,63}})*"
_PLAIN_MAILBOX = re.compile(rf"(?:{_PLAIN_SPEC}|(?:{_ATOM}(?: {_ATOM})* )?<{_PLAIN_SPEC}>)\Z")

# The same forms with letters and digits of any script in the display name and the domain
# (``Zoë Ångström <zoe@exämple.de>``, ``李小龙 <li@例子.测试>``): both of the email package's
# parsers read them as the name, local part and domain written, with no defect, so they are
# taken apart here without the parser (which is slow, and every address of mass mail is new).
_UCHAR = r"[^\W\x00-\x7f]"  # a letter or digit that is not ASCII
_UWORD = rf"(?:[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]|{_UCHAR})+"
_ULABEL = rf"(?:[A-Za-z0-9-]|{_UCHAR})+"
_SIMPLE_LOCAL = rf"{_ATOM}(?:\.{_ATOM})*"
_SIMPLE_DOMAIN = rf"{_ULABEL}(?:\.{_ULABEL})*"
_SIMPLE_ANGLE = re.compile(
    rf"(?:({_UWORD}(?: {_UWORD})*) )?<({_SIMPLE_LOCAL})@({_SIMPLE_DOMAIN})>\Z"
)
_SIMPLE_SPEC = re.compile(rf"({_SIMPLE_LOCAL})@({_SIMPLE_DOMAIN})\Z")


@functools.lru_cache(maxsize=1024)  # (an address is looked at several times per message)
def _simple_parts(addr: str) -> tuple[str, str, str] | None:
    """(display name, ASCII local part, domain) of a mailbox in one of the simple forms
    above, as both parsers read it; None for anything else (an encoded word look-alike
    included)."""
    if "=?" in addr or len(addr) > 254:
        return None
    found = _SIMPLE_ANGLE.match(addr)
    if found is not None:
        return found.group(1) or "", found.group(2), found.group(3)
    found = _SIMPLE_SPEC.match(addr)
    if found is not None:
        return "", found.group(1), found.group(2)
    return None


def _simple_pairs(value: str) -> list[tuple[str, str]] | None:
    """``getaddresses((value,))`` for a list of simple mailboxes joined by ", " (as the
    writer joins them), or None."""
    pairs = []
    for part in value.split(", "):
        parts = _simple_parts(part)
        if parts is None:
            return None
        pairs.append((parts[0], f"{parts[1]}@{parts[2]}"))
    return pairs


def _simple_domain_ok(domain: str) -> bool:
    """True if sanitize_address() takes this domain (IDNA, letters, digits and hyphens)."""
    try:
        encoded = idna_domain(domain)
    except UnicodeError:
        return False
    return domain.isascii() or _LDH_DOMAIN.fullmatch(encoded) is not None


def _text_item(field: str, value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{field} must be text (str), not bytes")
    if isinstance(value, tuple | list | dict | set):
        raise TypeError(f"{field} must be text (str), not {type(value).__name__}")
    return str(value)  # a lazy translation


@functools.lru_cache(maxsize=4096)
def _checked_mailbox(field: str, addr: str, utf8: bool) -> None:
    check_header_text(field, addr)
    try:
        sanitize_address(addr, "utf-8")
    except InvalidAddressError as exc:
        raise InvalidAddressError(f"{field}: {exc}") from None
    # (every problem but the need for SMTPUTF8 first: a broken mailbox is that)
    problem = _mailbox_problem(addr, True)
    if problem is not None:
        raise InvalidAddressError(f'{field}: Invalid address "{addr}": {problem}')
    if needs_smtputf8(addr):
        if not utf8:
            raise _smtputf8_error(field, addr)
        token, _rest = _get_mailbox(addr)
        try:
            _utf8_mailbox((token.display_name or "", addr_spec_of(token)), "utf-8")
        except InvalidAddressError as exc:
            raise InvalidAddressError(f"{field}: {exc}") from None


_LOCAL_ONLY = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")


def addr_spec_of(token: Any) -> str:
    """The addr-spec of a parsed mailbox as ``getaddresses()`` gives it (the local part
    quoted when it must be)."""
    local = token.local_part or ""
    domain = token.domain
    if not local or not parser.DOT_ATOM_ENDS.isdisjoint(local) or ".." in local or (
        local.startswith(".") or local.endswith(".")
    ):
        local = parser.quote_string(local)
    return f"{local}@{domain}" if domain else local


def _mailbox_problem(addr: str, utf8: bool = False) -> str | None:
    """Why a reader of the header would not see ``addr`` as the one mailbox it was meant
    to be (an unclosed quote, a control character, a broken local part), or None.
    sanitize_address() accepted it: it parses whole."""
    token, _rest = _get_mailbox(addr)
    return _token_problem(token, addr, utf8)


def _token_problem(token: Any, text: str, utf8: bool = False) -> str | None:
    """:func:`_mailbox_problem` for a parsed mailbox (``text`` as given)."""
    if token.domain is None:
        # Django takes "localpartonly" (#15042); a plain atom only, then.
        if _LOCAL_ONLY.fullmatch(text.strip(" \t")) is None:
            return "an address without a domain must be a plain word"
        return None
    for defect in token.all_defects:
        if isinstance(defect, InvalidHeaderDefect | NonPrintableDefect):
            return str(defect)
    if _encoded_word_in_addr_spec(token):
        return "an addr-spec can't hold an RFC 2047 encoded word (readers decode it)"
    if not token.local_part:
        return "the local part is empty"
    if not token.local_part.isascii() and not utf8:
        # Django writes it as an encoded word, which is another address on the wire.
        return (f'its local part "{token.local_part}" is not ASCII, so it can only be sent with '
                "SMTPUTF8 (RFC 6531) through a server that offers it; mailcore never writes "
                "it as an encoded word, which would be another mailbox")
    return None


def _encoded_word_in_addr_spec(token: Any, inside: bool = False) -> bool:
    """True if the parser decoded an encoded word inside the addr-spec of ``token``."""
    kind = getattr(token, "token_type", None)
    if inside and kind == "encoded-word":
        return True
    inside = inside or kind == "addr-spec"
    return isinstance(token, list) and any(
        _encoded_word_in_addr_spec(sub, inside) for sub in token
    )


def check_mailbox(field: str, addr: Any) -> str:
    """``addr`` (one item of to, cc, reply_to or from_email) as text, if it is exactly one
    mailbox that a reader sees as given; ``InvalidAddressError`` otherwise
    (``"a@example.com, b@example.com"`` is two, which a reader of the header would see)."""
    addr = _text_item(field, addr)
    if addr and (len(addr) > 254 or "=?" in addr or _PLAIN_MAILBOX.match(addr) is None):
        parts = _simple_parts(addr)
        if parts is None or not _simple_domain_ok(parts[2]):
            _checked_mailbox(field, addr, _UTF8_HEADERS.get())
    return addr


def check_address_list(field: str, value: str) -> None:
    """A header value given for an address header (``headers={"To": ...}``): an RFC 5322
    address list, every mailbox valid (``InvalidAddressError`` otherwise; a non-ASCII local
    part outside :func:`utf8_headers`: :class:`NeedsSMTPUTF8Error`)."""
    _check_address_list(field, value, _UTF8_HEADERS.get())


@functools.lru_cache(maxsize=1024)
def _check_address_list(field: str, value: str, utf8: bool) -> None:
    if "=?" not in value and all(
        not part or _PLAIN_MAILBOX.match(part) or _simple_parts(part)
        for part in value.split(", ")
    ):
        return
    try:
        token, rest = parser.get_address_list(value)
    except _PARSER_FAILURES:
        raise InvalidAddressError(f'{field}: invalid address list "{value}"') from None
    if rest:
        raise InvalidAddressError(f'{field}: invalid address list "{value}": {rest!r} is left')
    # Each mailbox as check_mailbox() takes one (a non-ASCII list is then written by
    # sanitize_address(), which refuses what it can't write).
    without_domain = 0
    for mailbox in token.all_mailboxes:
        # (every problem but the need for SMTPUTF8 first: a broken mailbox is that)
        problem = _token_problem(mailbox, str(mailbox), True)
        invalid = mailbox.token_type == "invalid-mailbox"  # noqa: S105 - a parser token
        if problem is None and invalid and mailbox.domain:
            problem = "it is not one address"  # ("Eve <eve@example.com> trailing")
        if problem is not None:
            raise InvalidAddressError(f'{field}: Invalid address "{str(mailbox).strip()}": '
                                      f"{problem}")
        if not utf8 and mailbox.domain is not None and not mailbox.local_part.isascii():
            raise _smtputf8_error(field, str(mailbox).strip())
        without_domain += mailbox.domain is None
    if "=?" in value or not value.isascii():
        _check_old_parser_agrees(field, value, token.all_mailboxes)
    # What is broken outside the mailboxes (an unclosed comment or group): the one defect
    # each "localpartonly" mailbox has is allowed, no other.
    broken = [d for d in token.all_defects
              if isinstance(d, InvalidHeaderDefect | NonPrintableDefect)]
    if len(broken) > without_domain:
        raise InvalidAddressError(f'{field}: invalid address list "{value}": {broken[-1]}')


def _check_old_parser_agrees(field: str, value: str, mailboxes: list[Any]) -> None:
    """A non-ASCII address list is written as Django writes it, from getaddresses() (the
    old parser); readers use the modern one. Refuse a list that the two read as different
    addresses (an encoded word in an addr-spec, whitespace inside one): what a reader
    would see is not what was asked for."""
    pairs = [pair for pair in getaddresses((value,)) if pair != ("", "")]
    if len(pairs) == len(mailboxes) and all(
        _same_addr_spec(spec, mailbox) for (_name, spec), mailbox in zip(pairs, mailboxes,
                                                                          strict=True)
    ):
        return
    raise InvalidAddressError(
        f'{field}: invalid address list "{value}": its addresses can\'t be written as given'
    )


def _same_addr_spec(spec: str, mailbox: Any) -> bool:
    local, _at, domain = spec.rpartition("@") if "@" in spec else (spec, "", "")
    if len(local) > 1 and local[0] == local[-1] == '"':
        local = unquote(local)
    return local == (mailbox.local_part or "") and domain == (mailbox.domain or "")


# mailcore only: the SMTP envelope. What goes between "<" and ">" in MAIL FROM and RCPT TO:
# a dot-atom or a quoted string (printable ASCII, no "<" or ">"), then "@" and a domain of
# letters, digits, hyphens and underscores or an address literal (or no domain: Django
# sends "localpartonly" as it is). Nothing a caller writes
# can add a space, and so an ESMTP parameter, or a control character.
_QUOTED_LOCAL = r'"(?:[\x20\x21\x23-\x3b\x3d\x3f-\x5b\x5d-\x7e]|\\[\x20-\x3b\x3d\x3f-\x7e])*"'
_ENVELOPE_SPEC = re.compile(
    rf"(?:{_ATOM}(?:\.{_ATOM})*|{_QUOTED_LOCAL})"
    r"(?:@(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[\x21-\x3b\x3d\x3f-\x5a\x5e-\x7e]+\]))?\Z"
)


def check_envelope_address(address: str, given: Any = None) -> str:
    """Refuse, before any SMTP command is written, an envelope address that is not a plain
    addr-spec (mailcore only).

    ``address`` is what the backend hands the SMTP client (:func:`sanitize_address`'s
    result); the check is made on what the client writes between ``<`` and ``>``
    (``smtplib.quoteaddr``), which is returned. ``given`` is the caller's form, named in the
    ``InvalidAddressError`` (a ``ValueError``, as Django's "Invalid address").
    """
    if not isinstance(address, str):
        raise TypeError(f"an envelope address must be text (str), not {_kind(address)}")
    spec, problem = _envelope_spec(address)
    if problem is not None:
        shown = address if given is None else given
        raise InvalidAddressError(
            f"Invalid address {_shown(str(shown))} for the SMTP envelope: {problem}"
        )
    return spec


@functools.lru_cache(maxsize=4096)
def _envelope_spec(address: str) -> tuple[str, str | None]:
    """(what SMTP writes between < and >, None) or (that, why it can't be written)."""
    found = _HEADER_UNSAFE.search(address) or _CONTROL.search(address)
    if found is not None:
        return "", f"it contains {describe_character(found.group())}"
    wire = smtplib.quoteaddr(address)
    spec = wire[1:-1] if wire.startswith("<") and wire.endswith(">") else wire
    if address != spec and not address.endswith(f"<{spec}>"):
        # quoteaddr() read something else than the address (it joins "a@b c" into "a@bc")
        return spec, f"SMTP would write {wire!r} for it"
    if not spec.isascii():
        return spec, ("a non-ASCII address goes only with SMTPUTF8 (envelope_address(..., "
                      "utf8=True)), and a non-ASCII domain as IDNA")
    if len(spec) > 254 or _ENVELOPE_SPEC.match(spec) is None:
        return spec, (
            f"{spec!r} is not an addr-spec (local part, @, domain; no spaces, no < or >)"
        )
    local = spec.rsplit("@", 1)[0]
    if has_encoded_word(local):
        return spec, (
            f"the local part {local!r} is an encoded word, which would be another mailbox "
            "(a non-ASCII local part goes as it is, with SMTPUTF8)"
        )
    return spec, None


def envelope_address(addr: str | tuple[str, str], encoding: str, *, utf8: bool) -> str:
    """The addr-spec for ``MAIL FROM:<...>`` or ``RCPT TO:<...>`` for ``addr`` (an item of
    from_email, to, cc or bcc, or a (name, address) pair), checked before any command is
    written (mailcore only).

    * An ASCII local part: as before, whatever ``utf8`` says: :func:`sanitize_address`
      (Django's), then :func:`check_envelope_address` (``"Bob <b@bücher.example>"`` gives
      ``"b@xn--bcher-kva.example"``).
    * A non-ASCII local part (see :func:`needs_smtputf8`): with ``utf8`` (the server offers
      SMTPUTF8 and MAIL carries it), the local part as it is (sent in UTF-8) and the domain
      as IDNA; without, :class:`NeedsSMTPUTF8Error` (an ``InvalidAddressError``, a
      ``ValueError``) naming the address. Never an encoded word, which is another mailbox.

    A local part with a control, format or space character is refused in any case.
    """
    if not needs_smtputf8(addr):
        return check_envelope_address(sanitize_address(addr, encoding), given=addr)
    shown = addr[1] if isinstance(addr, tuple) else force_str(addr)
    if not utf8:
        raise _smtputf8_error("", shown)
    sanitize_address(addr, encoding)  # its checks: line breaks, the parse, encoded words, IDNA
    if isinstance(addr, tuple):
        spec_text = addr[1]
    else:
        token, _rest = _get_mailbox(shown)
        spec_text = addr_spec_of(token)
    local, domain = spec_text.rsplit("@", 1) if "@" in spec_text else (spec_text, "")
    spec = _utf8_addr_spec(local, domain, shown)
    # what the SMTP client writes between < and > must be it, one addr-spec: checked as
    # check_envelope_address() checks an ASCII one, each non-ASCII letter standing for "a"
    stand_in = "".join(c if c.isascii() else "a" for c in spec)
    _stand_spec, problem = _envelope_spec(stand_in)
    if problem is None and smtplib.quoteaddr(spec) != f"<{spec}>":
        problem = f"SMTP would write {smtplib.quoteaddr(spec)!r} for it"
    if problem is not None:
        raise InvalidAddressError(
            f"Invalid address {_shown(shown)} for the SMTP envelope: {problem}"
        )
    return spec


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _mime_type(field: str, mimetype: Any) -> tuple[str, str]:
    """``(maintype, subtype)`` of a MIME type given for an attachment or an alternative:
    ``type/subtype``, each an RFC 2045 token, no parameters (mailcore writes those)."""
    check_header_text(field, mimetype)
    found = _MIME_TYPE.fullmatch(mimetype)
    if found is None:
        raise BadHeaderError(
            f"{field} must be a MIME type such as 'application/pdf' (type/subtype, each an "
            f"RFC 2045 token, no parameters), not {_shown(mimetype)}"
        )
    return found.group(1), found.group(2)


def _mime_subtype(field: str, subtype: Any) -> str:
    """A subtype set on a message (content_subtype, mixed_subtype, alternative_subtype)."""
    check_header_text(field, subtype)
    if _MIME_TOKEN.fullmatch(subtype) is None:
        raise BadHeaderError(
            f"{field} must be a MIME subtype such as 'html' (an RFC 2045 token), "
            f"not {_shown(subtype)}"
        )
    return subtype


# RFC 2045 token: printable ASCII but SPACE and tspecials ()<>@,;:\"/[]?= (RFC 6838 allows
# 127 characters on each side of the "/").
_MIME_NAME = r"[!#$%&'*+.^_`{|}~0-9A-Za-z-]{1,127}"
_MIME_TOKEN = re.compile(_MIME_NAME)
_MIME_TYPE = re.compile(rf"({_MIME_NAME})/({_MIME_NAME})")


def _filename(field: str, filename: Any) -> Any:
    """An attachment's filename: text under the one header rule (or empty: no filename)."""
    if not filename:
        return filename
    if not isinstance(filename, str):
        if isinstance(filename, tuple) and len(filename) == 3:  # (charset, language, name)
            check_header_text(field, filename[2])
            return filename
        raise TypeError(f"{field} must be text (str), not {_kind(filename)}")
    check_header_text(field, filename)
    return filename


def _disposition(filename: Any) -> Any:
    """The filename as Content-Disposition carries it: ASCII quoted, other text and
    encoded-word look-alikes RFC 2231-encoded (so a reader shows the name as given)."""
    if isinstance(filename, str) and (not filename.isascii() or has_encoded_word(filename)):
        return ("utf-8", "", filename)
    return filename


def _body_text(field: str, content: Any) -> str:
    """The text of a body or a text/* part: bytes are refused, other objects (a lazy
    translation) turned into text."""
    if isinstance(content, str):
        return content
    if isinstance(content, bytes | bytearray | memoryview):
        raise TypeError(f"{field} must be text (str), not bytes: decode it first")
    if content is None:
        raise TypeError(f"{field} must be text (str), not None")
    return str(content)


def _binary(field: str, content: Any) -> bytes | str:
    if isinstance(content, bytes | str):
        return content
    if isinstance(content, bytearray | memoryview):
        return bytes(content)
    raise TypeError(f"{field} must be bytes or str, not {_kind(content)}")


def _attachment_fields(attachment: Any) -> tuple[Any, Any, Any]:
    """An entry of ``attachments``: ``(filename, content, mimetype)``."""
    try:
        filename, content, mimetype = attachment
    except (TypeError, ValueError):
        raise TypeError(
            "an attachment must be a MIMEBase or (filename, content, mimetype), "
            f"not {_shown(repr(attachment))}"
        ) from None
    if content is None:
        raise ValueError("content must be provided.")
    return filename, content, mimetype


def _alternative_fields(alternative: Any) -> tuple[Any, Any]:
    """An entry of ``alternatives``: ``(content, mimetype)``."""
    try:
        content, mimetype = alternative
    except (TypeError, ValueError):
        raise TypeError(
            f"an alternative must be (content, mimetype), not {_shown(repr(alternative))}"
        ) from None
    if content is None or mimetype is None:
        raise ValueError("Both content and mimetype must be provided.")
    return content, mimetype


def check_mime_part(field: str, part: Message) -> None:
    """The headers of a MIME part the caller built (``attach(MIMEBase(...))``), and of the
    parts inside it, under the one rule: their values are written as they are."""
    for name, value in part.items():
        check_header_name(name)
        if isinstance(value, str):
            check_header_text(f"{field} header {name}", value)
    if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
        for sub in part.get_payload():
            if isinstance(sub, Message):
                check_mime_part(field, sub)


class MIMEMixin:
    def as_string(self, unixfrom: bool = False, linesep: str = "\n") -> str:
        """Return the entire formatted message as a string.

        Unlike the standard library, lines that begin with 'From ' are not
        mangled.
        """
        fp = StringIO()
        g = generator.Generator(fp, mangle_from_=False)
        g.flatten(self, unixfrom=unixfrom, linesep=linesep)
        return fp.getvalue()

    def as_bytes(self, unixfrom: bool = False, linesep: str = "\n") -> bytes:
        """Return the entire formatted message as bytes.

        Unlike the standard library, lines that begin with 'From ' are not
        mangled.
        """
        fp = BytesIO()
        g = generator.BytesGenerator(fp, mangle_from_=False)
        g.flatten(self, unixfrom=unixfrom, linesep=linesep)
        return fp.getvalue()


class SafeMIMEMessage(MIMEMixin, MIMEMessage):
    def __setitem__(self, name: str, val: Any) -> None:
        # Per RFC 2046 Section 5.2.1, message/rfc822 attachment headers must be ASCII.
        name, val = forbid_multi_line_headers(name, val, "ascii")
        MIMEMessage.__setitem__(self, name, val)


class SafeMIMEText(MIMEMixin, MIMEText):
    def __init__(self, _text: str, _subtype: str = "plain", _charset: str | None = None) -> None:
        self.encoding = _charset
        MIMEText.__init__(self, _text, _subtype=_subtype, _charset=_charset)

    def __setitem__(self, name: str, val: Any) -> None:
        name, val = forbid_multi_line_headers(name, val, self.encoding)
        MIMEText.__setitem__(self, name, val)

    def set_payload(self, payload: Any, charset: Any = None) -> None:
        if charset == "utf-8" and not isinstance(charset, Charset.Charset):
            has_long_lines = any(
                len(line.encode(errors="surrogateescape")) > RFC5322_EMAIL_LINE_LENGTH_LIMIT
                for line in payload.splitlines()
            )
            # Quoted-Printable encoding has the side effect of shortening long
            # lines, if any (#22561).
            charset = utf8_charset_qp if has_long_lines else utf8_charset
        MIMEText.set_payload(self, payload, charset=charset)


class SafeMIMEMultipart(MIMEMixin, MIMEMultipart):
    def __init__(
        self,
        _subtype: str = "mixed",
        boundary: str | None = None,
        _subparts: Any = None,
        encoding: str | None = None,
        **_params: Any,
    ) -> None:
        self.encoding = encoding
        MIMEMultipart.__init__(self, _subtype, boundary, _subparts, **_params)

    def __setitem__(self, name: str, val: Any) -> None:
        name, val = forbid_multi_line_headers(name, val, self.encoding)
        MIMEMultipart.__setitem__(self, name, val)


EmailAlternative = namedtuple("EmailAlternative", ["content", "mimetype"])
EmailAttachment = namedtuple("EmailAttachment", ["filename", "content", "mimetype"])


class FileContent:
    """The content of an attachment added with ``attach_file``: a reference to
    the file, read only when the message is written.

    It compares equal to the file's bytes, and ``bytes(content)`` reads them,
    so code that inspects ``message.attachments`` keeps working; backends
    stream it in chunks instead of holding it in memory.
    """

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def open(self):  # noqa: ANN201 - a binary file object
        return self.path.open("rb")

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def size(self) -> int:
        return self.path.stat().st_size

    def __bytes__(self) -> bytes:
        return self.read_bytes()

    def __len__(self) -> int:
        return self.size()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FileContent):
            return self.path == other.path
        if isinstance(other, bytes | bytearray | memoryview):
            try:
                return self.read_bytes() == bytes(other)
            except OSError:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"FileContent({str(self.path)!r})"

    def __reduce__(self) -> tuple:
        return (FileContent, (str(self.path),))

    def __deepcopy__(self, memo: dict) -> FileContent:
        return FileContent(self.path)


def _content_bytes(content: Any) -> Any:
    return content.read_bytes() if isinstance(content, FileContent) else content


class EmailMessage:
    """A container for email information."""

    content_subtype = "plain"
    mixed_subtype = "mixed"
    encoding = None  # None => use settings default
    # mailcore only: an int makes mailcore.wire's multipart boundaries deterministic for this
    # message, so two serialisations of an unchanged message give the same bytes. None (the
    # default) gives random boundaries, as Django does.
    boundary_seed: int | None = None

    def __init__(
        self,
        subject: str = "",
        body: str = "",
        from_email: str | None = None,
        to: list[str] | tuple[str, ...] | None = None,
        bcc: list[str] | tuple[str, ...] | None = None,
        connection: Any = None,
        attachments: list[Any] | None = None,
        headers: dict[str, str] | None = None,
        cc: list[str] | tuple[str, ...] | None = None,
        reply_to: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        """Initialize a single email message (which can be sent to multiple
        recipients)."""
        if to:
            if isinstance(to, str):
                raise TypeError('"to" argument must be a list or tuple')
            self.to = list(to)
        else:
            self.to = []
        if cc:
            if isinstance(cc, str):
                raise TypeError('"cc" argument must be a list or tuple')
            self.cc = list(cc)
        else:
            self.cc = []
        if bcc:
            if isinstance(bcc, str):
                raise TypeError('"bcc" argument must be a list or tuple')
            self.bcc = list(bcc)
        else:
            self.bcc = []
        if reply_to:
            if isinstance(reply_to, str):
                raise TypeError('"reply_to" argument must be a list or tuple')
            self.reply_to = list(reply_to)
        else:
            self.reply_to = []
        self.from_email = from_email or settings.DEFAULT_FROM_EMAIL
        self.subject = subject
        self.body = body or ""
        self.attachments = []
        if attachments:
            for attachment in attachments:
                if isinstance(attachment, MIMEBase):
                    self.attach(attachment)
                else:
                    self.attach(*attachment)
        self.extra_headers = headers or {}
        self.connection = connection

    def get_connection(self, fail_silently: bool = False) -> Any:
        from mailcore import get_connection

        if not self.connection:
            self.connection = get_connection(fail_silently=fail_silently)
        return self.connection

    def message(self) -> SafeMIMEText | SafeMIMEMultipart:
        encoding = self.encoding or settings.DEFAULT_CHARSET
        content_subtype = _mime_subtype("content_subtype", self.content_subtype)
        msg = SafeMIMEText(_body_text("body", self.body), content_subtype, encoding)
        msg = self._create_message(msg)
        msg["Subject"] = self.subject
        if "From" in self.extra_headers:
            msg["From"] = self.extra_headers["From"]
        else:
            msg["From"] = check_mailbox("from_email", self.from_email)
        self._set_list_header_if_not_empty(msg, "To", self.to)
        self._set_list_header_if_not_empty(msg, "Cc", self.cc)
        self._set_list_header_if_not_empty(msg, "Reply-To", self.reply_to)

        # Email header names are case-insensitive (RFC 2045), so we have to
        # accommodate that when doing comparisons.
        header_names = [key.lower() for key in self.extra_headers]
        if "date" not in header_names:
            msg["Date"] = formatdate(localtime=settings.EMAIL_USE_LOCALTIME)
        if "message-id" not in header_names:
            # Use cached DNS_NAME for performance
            msg["Message-ID"] = make_msgid(domain=DNS_NAME)
        for name, value in self.extra_headers.items():
            # Avoid headers handled above.
            if name.lower() not in {"from", "to", "cc", "reply-to"}:
                msg[name] = value
        return msg

    def recipients(self) -> list[str]:
        """Return a list of all recipients of the email (includes direct
        addressees as well as Cc and Bcc entries)."""
        return [email for email in (self.to + self.cc + self.bcc) if email]

    def send(self, fail_silently: bool = False) -> int:
        """Send the email message."""
        if not self.recipients():
            # Don't bother creating the network connection if there's nobody to
            # send to.
            return 0
        return self.get_connection(fail_silently).send_messages([self])

    def attach(
        self, filename: Any = None, content: Any = None, mimetype: str | None = None
    ) -> None:
        """Attach a file with the given filename and content. The filename can
        be omitted and the mimetype is guessed, if not provided.

        If the first parameter is a MIMEBase subclass, insert it directly
        into the resulting message attachments.

        For a text/* mimetype (guessed or specified), when a bytes object is
        specified as content, decode it as UTF-8. If that fails, set the
        mimetype to DEFAULT_ATTACHMENT_MIME_TYPE and don't decode the content.
        """
        if isinstance(filename, MIMEBase):
            if content is not None or mimetype is not None:
                raise ValueError(
                    "content and mimetype must not be given when a MIMEBase instance is provided."
                )
            self.attachments.append(filename)
        elif content is None:
            raise ValueError("content must be provided.")
        else:
            if filename and not isinstance(filename, str):
                raise TypeError(f"attachment filename must be text (str), not {_kind(filename)}")
            mimetype = mimetype or mimetypes.guess_type(filename)[0] or DEFAULT_ATTACHMENT_MIME_TYPE
            if not isinstance(mimetype, str):
                raise TypeError(f"attachment mimetype must be text (str), not {_kind(mimetype)}")
            if "/" not in mimetype:
                raise BadHeaderError(
                    "attachment mimetype must be a MIME type such as 'application/pdf' "
                    f"(type/subtype), not {_shown(mimetype)}"
                )
            # (the one header rule applies when the message is built, as Django checks then)
            basetype, subtype = mimetype.split("/", 1)

            if basetype == "text":
                if isinstance(content, FileContent):
                    content = content.read_bytes()
                if isinstance(content, bytes):
                    try:
                        content = content.decode()
                    except UnicodeDecodeError:
                        # If mimetype suggests the file is text but it's
                        # actually binary, read() raises a UnicodeDecodeError.
                        mimetype = DEFAULT_ATTACHMENT_MIME_TYPE

            self.attachments.append(EmailAttachment(filename, content, mimetype))

    def attach_file(self, path: str | os.PathLike[str], mimetype: str | None = None) -> None:
        """Attach a file from the filesystem.

        Set the mimetype to DEFAULT_ATTACHMENT_MIME_TYPE if it isn't specified
        and cannot be guessed.

        For a text/* mimetype (guessed or specified), decode the file's content
        as UTF-8. If that fails, set the mimetype to
        DEFAULT_ATTACHMENT_MIME_TYPE and don't decode the content.

        Other files larger than ATTACH_FILE_READ_LIMIT (1 MiB) are kept as a
        reference (:class:`FileContent`, equal to the file's bytes) and read
        when the message is written, so a large file is streamed rather than
        held in memory: it must still exist then. Smaller files are read now,
        as in Django. The file is opened now in any case, so a missing or
        unreadable file raises here.
        """
        path = Path(path)
        guessed = mimetype or mimetypes.guess_type(path.name)[0] or DEFAULT_ATTACHMENT_MIME_TYPE
        with path.open("rb") as file:
            streamable = guessed.split("/", 1)[0] not in ("text", "message") and "/" in guessed
            if not streamable or os.fstat(file.fileno()).st_size <= ATTACH_FILE_READ_LIMIT:
                content = file.read()
                self.attach(path.name, content, mimetype)
                return
        self.attach(path.name, FileContent(path), mimetype)

    def _create_message(self, msg: Any) -> Any:
        return self._create_attachments(msg)

    def _create_attachments(self, msg: Any) -> Any:
        if self.attachments:
            encoding = self.encoding or settings.DEFAULT_CHARSET
            body_msg = msg
            subtype = _mime_subtype("mixed_subtype", self.mixed_subtype)
            msg = SafeMIMEMultipart(_subtype=subtype, encoding=encoding)
            if self.body or body_msg.is_multipart():
                msg.attach(body_msg)
            for attachment in self.attachments:
                if isinstance(attachment, MIMEBase):
                    check_mime_part("attachment", attachment)
                    msg.attach(attachment)
                else:
                    msg.attach(self._create_attachment(*_attachment_fields(attachment)))
        return msg

    def _create_mime_attachment(self, content: Any, mimetype: str) -> Any:
        """Convert the content, mimetype pair into a MIME attachment object.

        If the mimetype is message/rfc822, content may be an
        email.Message or EmailMessage object, as well as a str.
        """
        content = _content_bytes(content)
        basetype, subtype = _mime_type("mimetype", mimetype)
        if basetype == "text":
            encoding = self.encoding or settings.DEFAULT_CHARSET
            attachment = SafeMIMEText(_body_text(f"{mimetype} content", content), subtype, encoding)
        elif basetype == "message" and subtype == "rfc822":
            # Per RFC 2046 Section 5.2.1, message/rfc822 attachments must not
            # be base64 encoded.
            if isinstance(content, EmailMessage):
                # convert content into an email.Message first
                content = content.message()
            elif not isinstance(content, Message):
                # For compatibility with existing code, parse the message
                # into an email.Message object if it is not one already.
                content = message_from_bytes(force_bytes(_binary(f"{mimetype} content", content)))

            attachment = SafeMIMEMessage(content, subtype)
        else:
            # Encode non-text attachments with base64.
            if not isinstance(content, str):
                content = _binary(f"{mimetype} content", content)
            attachment = MIMEBase(basetype, subtype)
            attachment.set_payload(content)
            Encoders.encode_base64(attachment)
        return attachment

    def _create_attachment(self, filename: Any, content: Any, mimetype: str | None = None) -> Any:
        """Convert the filename, content, mimetype triple into a MIME attachment
        object."""
        filename = _filename("attachment filename", filename)
        _mime_type("attachment mimetype", mimetype)
        attachment = self._create_mime_attachment(content, mimetype)
        if filename:
            attachment.add_header(
                "Content-Disposition", "attachment", filename=_disposition(filename)
            )
            check_header_line("Content-Disposition", attachment["Content-Disposition"])
        return attachment

    def _set_list_header_if_not_empty(self, msg: Any, header: str, values: list[Any]) -> None:
        """Set msg's header, either from self.extra_headers, if present, or from
        the values argument if not empty."""
        try:
            msg[header] = self.extra_headers[header]
        except KeyError:
            if values:
                field = header.lower().replace("-", "_")
                msg[header] = ", ".join(check_mailbox(field, v) for v in values)


class EmailMultiAlternatives(EmailMessage):
    """A version of EmailMessage that makes it easy to send multipart/alternative
    messages. For example, including text and HTML versions of the text is
    made easier."""

    alternative_subtype = "alternative"

    def __init__(
        self,
        subject: str = "",
        body: str = "",
        from_email: str | None = None,
        to: list[str] | tuple[str, ...] | None = None,
        bcc: list[str] | tuple[str, ...] | None = None,
        connection: Any = None,
        attachments: list[Any] | None = None,
        headers: dict[str, str] | None = None,
        alternatives: list[Any] | None = None,
        cc: list[str] | tuple[str, ...] | None = None,
        reply_to: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(
            subject, body, from_email, to, bcc, connection, attachments, headers, cc, reply_to
        )
        self.alternatives = [EmailAlternative(*alternative) for alternative in (alternatives or [])]

    def attach_alternative(self, content: Any, mimetype: str) -> None:
        """Attach an alternative content representation."""
        if content is None or mimetype is None:
            raise ValueError("Both content and mimetype must be provided.")
        self.alternatives.append(EmailAlternative(content, mimetype))

    def _create_message(self, msg: Any) -> Any:
        return self._create_attachments(self._create_alternatives(msg))

    def _create_alternatives(self, msg: Any) -> Any:
        encoding = self.encoding or settings.DEFAULT_CHARSET
        if self.alternatives:
            body_msg = msg
            subtype = _mime_subtype("alternative_subtype", self.alternative_subtype)
            msg = SafeMIMEMultipart(_subtype=subtype, encoding=encoding)
            if self.body:
                msg.attach(body_msg)
            for alternative in self.alternatives:
                content, mimetype = _alternative_fields(alternative)
                msg.attach(self._create_mime_attachment(content, mimetype))
        return msg

    def body_contains(self, text: str) -> bool:
        """Check that ``text`` occurs in the email body and in all attached MIME
        type text/* alternatives."""
        if text not in self.body:
            return False

        for content, mimetype in self.alternatives:
            if mimetype.startswith("text/") and text not in content:
                return False
        return True
