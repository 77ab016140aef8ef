"""Hostile values for every header-bearing field, and the oracle that judges a message.

Used by tests/core/test_injection.py (the suite) and scripts/fuzz_headers.py (the long run).

A message built from a spec (see :func:`build`) goes down three paths: ``message().as_bytes()``,
``mailcore.wire.serialize()`` and an SMTP send to a real loopback server. On each path the
call either raises ``ValueError``/``TypeError`` (``BadHeaderError`` and ``InvalidAddressError``
are ValueErrors), or the outcome is judged, independently of mailcore's code, by what a
reader sees:

* the bytes parsed back with ``email.policy.default`` (encoded words decoded) have exactly the
  headers asked for: the same names, each as many times, and decoded values equal to what was
  given, modulo the documented normalisation (runs of spaces and tabs count as one space, and
  leading and trailing ones are dropped: folding; an IDN domain is compared in its Punycode
  form). Every MIME part has exactly its own headers, the content type and filename asked for;
  no line is over 998 octets; the parser finds no broken header block or boundary;
* the envelope the server captured holds exactly the sender and the recipients asked for, in
  order, and no ESMTP parameter but SIZE.

:func:`judge` returns an :class:`Outcome` per path: ``"ok"``, ``"refused"`` (a ValueError or a
TypeError), ``"injection"`` (the message is not what was asked for: ``problems`` say how) or
``"unexpected"`` (any other exception).
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import email.utils
import mimetypes
import random
import re
import smtplib
import string
from collections import Counter
from dataclasses import dataclass, field
from email.headerregistry import Address
from typing import Any

from hypothesis import strategies as st

import mailcore
from mailcore.backends.smtp import EmailBackend
from mailcore.message import message_needs_smtputf8, utf8_headers
from mailcore.wire import serialize

from .mimeview import normalise

# Every character str.splitlines() splits on, and NUL: computed here, not taken from mailcore.
LINE_BREAKS = "".join(
    sorted({"\x00"} | {chr(i) for i in range(0x3000) if len(f"a{chr(i)}b".splitlines()) == 2})
)
assert LINE_BREAKS == "\x00\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029", repr(LINE_BREAKS)

INJECTIONS = [
    "\r\nBcc: victim@evil.test",
    "\nX-Injected: 1",
    "\rX-Injected: 1",
    "\x0bBcc :victim@evil.test",
    "\x0c<p>x</p>",
    "\x1cX-Injected: 1",
    "\x85Bcc: victim@evil.test",
    "\u2028X-Injected: 1",
    "\r\n\r\n<script>alert(1)</script>",
    "\r\n Folded: continuation",
    "> NOTIFY=NEVER ORCPT=rfc822;x",
    " RET=HDRS",
]
ENCODED_WORDS = [
    "=?utf-8?b?QmNjOiB2aWN0aW1AZXZpbC50ZXN0?=",  # "Bcc: victim@evil.test"
    "=?utf-8?q?a=0D=0ABcc:_victim@evil.test?=",
    "=?utf-8?q?=E2=80=A8X-Injected:_1?=",
    "=?iso-8859-1?q?caf=E9?=",
    "=?utf-8?b?w6k=?=",
    "=?UTF-8?Q?hello_world?=",
    "=?x?q??=",
    "=?utf-8?b?",
]
# Pieces that no header may hold (the rule refuses them) ...
BREAKING = [*LINE_BREAKS, *INJECTIONS, "\ud800", "\udcff"]
# ... and pieces it must carry as they are.
TRICKY = [
    *ENCODED_WORDS,
    *'"<>@,;:\\()[]=?.',
    " ",
    "\t",
    "  ",
    "\x01",
    "\x1f",
    "\x7f",
    "é",
    "Grüße",
    "日本語",
    "🚚",
    "\u200b",
    "\xa0",
    "a@b.example",
    "<x@y.example>",
]
RUNS = ["a", "é", "ab ", "字", "-", "=", "x y"]
# Code points for random text: printable ASCII, C0 controls, Latin-1, the rest of the BMP,
# private use, astral planes (each range as likely as the others).
_RANGES = [(0x20, 0x7E), (0x00, 0x1F), (0x7F, 0xFF), (0x100, 0x2FFF), (0x3000, 0x9FFF),
           (0xE000, 0xFFFD), (0x10000, 0x10FFFF)]
_PLAIN = string.ascii_letters + string.digits + " .,-"

# The values are made by seeded generators, one hypothesis draw each (hypothesis draws
# character by character otherwise, which costs ten times the check itself); hypothesis
# makes the structure: which fields, how many items, which branch.


def _seeded(make: Any, *args: Any) -> Any:
    return st.integers(0, 2**32 - 1).map(lambda seed: make(random.Random(seed), *args))


def _chars(rng: random.Random, breaking: bool) -> str:
    out = []
    for _ in range(rng.randint(0, 8)):
        lo, hi = rng.choice(_RANGES)
        ch = chr(rng.randint(lo, hi))
        if not breaking and ch in LINE_BREAKS:
            continue
        out.append(ch)
    if breaking and rng.random() < 0.05:
        out.append(chr(rng.randint(0xD800, 0xDFFF)))  # a lone surrogate
    return "".join(out)


def _text(rng: random.Random, breaking: bool, run_max: int) -> str:
    """Up to five pieces: a hostile or tricky piece, random characters, a plain word, or a
    long run (one in ten): the ones that break a header line only when ``breaking``."""
    pieces = BREAKING + TRICKY if breaking else TRICKY
    parts = []
    for _ in range(rng.randint(0, 5)):
        r = rng.random()
        if r < 0.35:
            parts.append(rng.choice(pieces))
        elif r < 0.7:
            parts.append(_chars(rng, breaking))
        elif r < 0.9:
            parts.append("".join(rng.choice(_PLAIN) for _ in range(rng.randint(1, 12))))
        else:
            parts.append(rng.choice(RUNS) * rng.randint(60, run_max))
    return "".join(parts)


def _plain(rng: random.Random) -> str:
    return "".join(rng.choice(_PLAIN) for _ in range(rng.randint(0, 30)))


hostile_text = _seeded(_text, True, 1100)
tricky_text = _seeded(_text, False, 1100)
plain_text = _seeded(_plain)
text_value = st.one_of(hostile_text, tricky_text, plain_text)

GOOD_LOCALS = ["user", "first.last", "o'neil", "a+tag", "x_y", "tó", "用户", "tester", "a=b"]
GOOD_DOMAINS = ["example.com", "bücher.example", "例え.テスト", "[127.0.0.1]", "EXAMPLE.org"]
ODD_ADDRESSES = [
    '"x@example.com> NOTIFY=NEVER ORCPT=rfc822;x',
    '"a@example.com> RET=HDRS',
    '"',
    "a@example.com, b@example.com",
    "x\x0b@example.com",
    '"x\x00"@example.com',
    "Bob\x1cBcc: x <b@example.com>",
    "Eve <eve@example.com> trailing",
    "x@example.com NOTIFY=NEVER",
    "tester",
    "=?utf-8?q?x?=@example.com",
    "x@=?utf-8?q?example?=.com",
    "=?utf-8?q?Boss?= <boss@example.com>",
    "Long " + "x" * 600 + " <long@example.com>",
    '"Last, First" <l@example.com>',
    "John Q. Public <j@example.com>",
    "b@example.com (Bob)",
    "undisclosed-recipients:;",
]


def _address(rng: random.Random) -> str:
    """An address from hostile parts: (display name,) local part, domain, in one of the
    forms, or an odd address of the issue, or hostile text."""
    r = rng.random()
    if r < 0.15:
        return rng.choice(ODD_ADDRESSES)
    if r < 0.25:
        return _text(rng, True, 300)
    part = [lambda: rng.choice(GOOD_LOCALS), lambda: _text(rng, rng.random() < 0.5, 300)]
    local = rng.choice(part)()
    if rng.random() < 0.2:
        local = f'"{local}"'
    dom = rng.choice(GOOD_DOMAINS) if rng.random() < 0.6 else _text(rng, rng.random() < 0.5, 300)
    spec = f"{local}@{dom}"
    form = rng.randint(0, 2)
    name = "" if rng.random() < 0.3 else rng.choice(
        [lambda: _plain(rng), lambda: _text(rng, rng.random() < 0.5, 300)])()
    if form == 0 or not name:
        return spec
    return f"{name} <{spec}>" if form == 1 else f'"{name}" <{spec}>'


address = _seeded(_address)
HEADER_NAMES = ["X-Tag", "Comments", "Keywords", "Message-ID", "Date", "References",
                "In-Reply-To", "List-Id", "Sender", "To", "From", "Cc", "Reply-To", "x-tag",
                "Resent-To"]
ADDRESS_NAMES = {"sender", "to", "from", "cc", "reply-to", "resent-to"}


def _header(rng: random.Random) -> tuple[str, str]:
    r = rng.random()
    if r < 0.6:
        name = rng.choice(HEADER_NAMES)
    elif r < 0.8:
        name = "X-" + _text(rng, rng.random() < 0.5, 100)
    else:
        name = _text(rng, True, 1100)
    if name.lower() in ADDRESS_NAMES:
        return name, _address(rng)
    return name, rng.choice([_plain, lambda g: _text(g, True, 1100),
                             lambda g: _text(g, False, 1100)])(rng)


MIMETYPES = ["application/octet-stream", "application/pdf", "image/png", "text/plain",
             "text/html", "text/csv", "Text/HTML", "application/vnd.ms-excel"]


def _mimetype(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return rng.choice(MIMETYPES)
    if r < 0.7:
        return rng.choice(["application/", "text/", "image/"]) + _text(rng, rng.random() < 0.5,
                                                                        300)
    if r < 0.85:
        return "application/octet-stream" + rng.choice(INJECTIONS)
    return _text(rng, True, 300)



# Each optional field is hostile or absent; the required ones are hostile or benign.
GOOD_ADDRESSES = ["a@example.com", "Ann <ann@example.com>", "Zoë <zoe@bücher.example>",
                  '"Last, First" <l@x.org>']
SUBTYPES = ["plain", "html", "mixed", "related", "alternative"]
FILENAMES = ["report.pdf", "a.bin", "ünïcode näme.txt", ""]


def _spec(rng: random.Random) -> dict:
    """A whole message, every field hostile or benign and every optional one present or
    not (one draw: see _seeded)."""

    def addr() -> str:
        return rng.choice(GOOD_ADDRESSES) if rng.random() < 0.5 else _address(rng)

    def text(choices: list[str]) -> str:
        r = rng.random()
        if r < 0.4:
            return rng.choice(choices)
        return _plain(rng) if r < 0.55 else _text(rng, r < 0.8, 1100)

    spec: dict[str, Any] = {
        "subject": text(["Hello"]),
        "body": rng.choice(["", "Hi.\n", "é\n"]),
        "from_email": addr(),
        "to": [addr() for _ in range(rng.randint(1, 3))],
    }
    for key in ("cc", "bcc", "reply_to"):
        if rng.random() < 0.3:
            spec[key] = [addr() for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.3:
        spec["headers"] = dict(_header(rng) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.3:
        spec["alternatives"] = [(rng.choice(["<p>x</p>", b"<p>x</p>", "x"]), _mimetype(rng))
                                for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.3:
        spec["attachments"] = [(text(FILENAMES), rng.choice([b"\x00\x01data", "text\n"]),
                                _mimetype(rng)) for _ in range(rng.randint(1, 2))]
    for key in ("content_subtype", "mixed_subtype", "alternative_subtype"):
        if rng.random() < 0.15:
            spec[key] = text(SUBTYPES)
    return spec


specs = _seeded(_spec)


def _envelope(rng: random.Random) -> dict:
    """Benign but for the addresses: to, cc, bcc and from_email (one draw)."""

    def addr() -> str:
        return rng.choice(GOOD_ADDRESSES) if rng.random() < 0.3 else _address(rng)

    return dict(BENIGN, from_email=addr(), to=[addr() for _ in range(rng.randint(0, 3))],
                cc=[addr() for _ in range(rng.randint(0, 2))],
                bcc=[addr() for _ in range(rng.randint(0, 2))])


envelopes = _seeded(_envelope)

# One field at a time: the rest benign, so that what is refused is that field.
def _many(make: Any, most: int) -> Any:
    """1 to ``most`` values from ``make(rng)``, in one draw."""
    return _seeded(lambda rng: [make(rng) for _ in range(rng.randint(1, most))])


def _name_or_text(choices: list[str]) -> Any:
    def make(rng: random.Random) -> str:
        r = rng.random()
        if r < 0.3:
            return rng.choice(choices)
        return _plain(rng) if r < 0.4 else _text(rng, r < 0.7, 1100)

    return make


FIELDS = {
    "subject": st.one_of(text_value, st.text(max_size=40)),  # and hypothesis's own text
    "from_email": address,
    "to": _many(_address, 3),
    "cc": _many(_address, 2),
    "bcc": _many(_address, 2),
    "reply_to": _many(_address, 2),
    "headers": _many(_header, 3).map(dict),
    "attachments": _many(lambda rng: (_name_or_text(FILENAMES)(rng), b"data",
                                      "application/pdf"), 2),
    "attachment mimetypes": _many(lambda rng: ("a.bin", b"data", _mimetype(rng)), 2),
    "alternatives": _many(lambda rng: (rng.choice(["<p>x</p>", b"<p>x</p>"]), _mimetype(rng)),
                          2),
    "content_subtype": _seeded(_name_or_text(SUBTYPES)),
    "mixed_subtype": _seeded(_name_or_text(SUBTYPES)),
    "alternative_subtype": _seeded(_name_or_text(SUBTYPES)),
}
BENIGN = {"subject": "Hello", "body": "Hi.\n", "from_email": "a@example.com",
          "to": ["b@example.com"]}


def one_field(name: str) -> Any:
    """Specs with one field (of FIELDS) hostile and the rest benign."""
    key = {"attachment mimetypes": "attachments"}.get(name, name)

    def spec(value: Any) -> dict:
        s = dict(BENIGN)
        s[key] = value
        if key in ("mixed_subtype",):
            s["attachments"] = [("a.bin", b"data", "application/pdf")]
        if key in ("alternative_subtype",):
            s["alternatives"] = [("<p>x</p>", "text/html")]
        return s

    return FIELDS[name].map(spec)


# -- building ---------------------------------------------------------------------------------


def build(spec: dict, mail: Any = mailcore) -> mailcore.EmailMultiAlternatives:
    """The message ``spec`` describes, built with ``mail`` (mailcore, or Django's
    ``django.core.mail`` for the comparison)."""
    msg = mail.EmailMultiAlternatives(
        spec["subject"], spec["body"], spec["from_email"], spec["to"], spec.get("bcc"),
        headers=spec.get("headers"), cc=spec.get("cc"), reply_to=spec.get("reply_to"),
    )
    for content, mt in spec.get("alternatives", []):
        msg.attach_alternative(content, mt)
    for name, content, mt in spec.get("attachments", []):
        msg.attach(name, content, mt)
    for key in ("content_subtype", "mixed_subtype", "alternative_subtype"):
        if key in spec:
            setattr(msg, key, spec[key])
    return msg


# -- the reader's view ------------------------------------------------------------------------

WS = re.compile(r"[ \t]+")
STRUCTURED = {"message-id", "date"}  # the reader decodes no encoded word in these
BROKEN = (
    email.errors.MissingHeaderBodySeparatorDefect,
    email.errors.FirstHeaderLineIsContinuationDefect,
    email.errors.MisplacedEnvelopeHeaderDefect,
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.CloseBoundaryNotFoundDefect,
    email.errors.MultipartInvariantViolationDefect,
)


def norm(text: str) -> str:
    """Folding whitespace: runs of spaces and tabs are one space, none at the ends."""
    return WS.sub(" ", text).strip(" \t")


def norm_name(text: str) -> str:
    """A display name, without its whitespace: CPython's parser (policy.default) puts a
    space between two encoded words of a phrase, which RFC 2047 section 6.2 says to drop,
    so a long non-ASCII display name comes back with spaces in it (email's own generator
    gives the same bytes)."""
    return "".join(text.split())


def _idna(dom: str) -> str:
    if dom.isascii():
        return dom
    try:
        return dom.encode("idna").decode("ascii")
    except UnicodeError:
        return f"<not IDNA: {dom!r}>"


# Stands in for "=?" while the value given is parsed, so that the text given is what counts
# (the parser would decode an encoded word in it: the caller wrote the characters "=?").
_EW_MARK = "=\ue000"


# The one defect of an address that Django takes on purpose (#15042: "localpartonly").
NO_DOMAIN = "addr-spec local part with no domain"


def reader_addresses(value: str, given: bool = False,
                     strict: bool = True) -> list[tuple[str, str, str]] | None:
    """What a reader makes of ``value`` as an address header: (display name, local part,
    Punycode domain) for each mailbox; None if it is not an address list at all (with
    ``strict``, none with a defect either). With ``given``, ``value`` is the caller's text,
    encoded-word look-alikes included."""
    if not value.strip(" \t"):
        return []  # Django joins an empty item in: "a@example.com, "
    if given:
        value = value.replace("=?", _EW_MARK)
    try:
        header = email.policy.default.header_factory("To", value)
        found = header.addresses
    except Exception:  # noqa: BLE001 - a value a reader can't read
        return None
    broken = [d for d in header.defects
              if isinstance(d, email.errors.InvalidHeaderDefect | email.errors.NonPrintableDefect)
              and str(d) != NO_DOMAIN]
    if (broken and strict) or not (found or header.groups):
        return None  # an invalid address (or none): no header can hold it as asked

    def back(text: str) -> str:
        return text.replace(_EW_MARK, "=?")

    out = [(norm_name(back(a.display_name)), back(a.username), _idna(back(a.domain)))
           for a in found]
    if given:
        if len(out) == 1 and not out[0][0]:
            # "b@example.com (Bob)": the modern parser sees no display name, the old one
            # (getaddresses(), which Django uses for a non-ASCII list) takes the comment
            # for it. Either reading is the caller's.
            old = email.utils.getaddresses([value.replace(_EW_MARK, "=?")])
            if len(old) == 1 and old[0][0]:
                out = [(out[0][0] + "\0" + norm_name(old[0][0]), *out[0][1:])]
    return out


def _names(expected: tuple) -> set[str]:
    """The display names a reader may show for an expected address (see above)."""
    return set(expected[0].split("\0"))


def envelope_spec(value: str) -> str | None:
    """The addr-spec the SMTP envelope must carry for ``value``: the local part and the
    Punycode domain of its one mailbox as a reader parses it."""
    found = reader_addresses(value, given=True, strict=False)  # the display name aside
    if not found or len(found) != 1:
        return None
    _name, local, dom = found[0]
    return Address(username=local, domain=dom).addr_spec if dom else local


def expected_headers(spec: dict) -> list[tuple[str, str, Any]]:
    """(lower-case name, kind, value) of each top-level header the message must have, in
    Django's rules: kind is "text", "raw", "address" (one header string), "addresses"
    (a list of items) or "any" (made by the library: Date, Message-ID)."""
    extra = spec.get("headers") or {}
    out: list[tuple[str, str, Any]] = [("subject", "text", str(spec["subject"]))]
    sender = spec["from_email"] or mailcore.settings.DEFAULT_FROM_EMAIL
    out.append(("from", "address", extra["From"] if "From" in extra else sender))
    for name, key in (("To", "to"), ("Cc", "cc"), ("Reply-To", "reply_to")):
        if name in extra:
            out.append((name.lower(), "address", extra[name]))
        elif spec.get(key):
            out.append((name.lower(), "addresses", spec[key]))
    lower = {k.lower() for k in extra}
    if "date" not in lower:
        out.append(("date", "any", None))
    if "message-id" not in lower:
        out.append(("message-id", "any", None))
    for name, value in extra.items():
        lname = name.lower()
        if lname in {"from", "to", "cc", "reply-to"}:
            continue
        if lname in ADDRESS_NAMES or lname.startswith("resent-") and lname != "resent-date":
            kind = "address"
        else:
            kind = "raw" if lname in STRUCTURED else "text"
        out.append((lname, kind, str(value)))
    return out


def expected_leaves(spec: dict) -> list[tuple[str, Any]]:
    """(content type, filename) of the leaf parts in order, by Django's rules."""
    body_type = f"text/{spec.get('content_subtype', 'plain')}".lower()
    alts = [(mt.lower(), None) for _c, mt in spec.get("alternatives", [])]
    atts = [
        ((mt or mimetypes.guess_type(name)[0] or "application/octet-stream").lower(),
         name or None)
        for name, _c, mt in spec.get("attachments", [])
    ]
    leaves = [(body_type, None)] if spec["body"] or not (alts or atts) else []
    return leaves + alts + atts


def _leaves(part: Any) -> list[Any]:
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        return [leaf for sub in part.get_payload() for leaf in _leaves(sub)]
    return [part]


def _walk(part: Any) -> list[Any]:
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        return [part] + [p for sub in part.get_payload() for p in _walk(sub)]
    return [part]


def _name(filename: str | None) -> str | None:
    """A filename as compared: whitespace at the ends is dropped (get_filename() strips it)
    and, on the side of the name given, one pair of surrounding double quotes (CPython's
    get_filename() unquotes the value once more, whatever the encoding)."""
    return None if filename is None else norm(filename).strip()


def _values(values: list[Any]) -> list[str]:
    return sorted(norm(str(v)) for v in values)


def problems_in(spec: dict, raw: bytes) -> list[str]:
    """How the bytes differ from what the spec asked for (empty: they don't)."""
    found: list[str] = []
    long_lines = [line for line in raw.split(b"\r\n") if len(line) > 998]
    if long_lines:
        found.append(f"a line of {len(long_lines[0])} octets")
    if b"\r\n" in raw:
        bare = raw.replace(b"\r\n", b"")
        if b"\r" in bare or b"\n" in bare:
            found.append("a bare CR or LF")
    # read as UTF-8 (RFC 6532): a message for SMTPUTF8 carries its address headers so (the
    # bytes parser would turn them into surrogates)
    msg = email.message_from_string(raw.decode("utf-8", "surrogateescape"),
                                    policy=email.policy.default)
    for part in _walk(msg):
        bad = [type(d).__name__ for d in part.defects if isinstance(d, BROKEN)]
        if bad:
            found.append(f"parser defects {bad}")
        for name, value in part.raw_items():
            # What str.splitlines() splits on breaks the line when the email package refolds
            # the header (a list manager, a forwarding agent): an injection in waiting.
            text = f"{name}{value}"
            try:
                text += str(part[name])  # decoded
            except Exception:  # noqa: BLE001, S110 - the raw text is checked all the same
                pass
            unfolded = re.sub(r"\r?\n(?=[ \t])", "", text)
            breaks = sorted({f"U+{ord(c):04X}" for c in unfolded if c in LINE_BREAKS})
            if breaks:
                found.append(f"header {name} holds {', '.join(breaks)}")
    expected = expected_headers(spec)
    names = Counter(k.lower() for k in msg.keys())
    leaves = expected_leaves(spec)
    structure = Counter({"content-type": 1, "mime-version": 1})
    if not (spec.get("alternatives") or spec.get("attachments")):
        structure["content-transfer-encoding"] = 1
    want = Counter(name for name, _k, _v in expected) + structure
    if names != want:
        found.append(f"headers {sorted(names.items())} instead of {sorted(want.items())}")
        return found
    by_name: dict[str, list[tuple[str, Any]]] = {}
    for name, kind, value in expected:
        by_name.setdefault(name, []).append((kind, value))
    for name, wanted in by_name.items():
        kinds = {k for k, _v in wanted}
        if kinds == {"any"}:
            continue
        if kinds <= {"text"}:
            got, exp = _values(msg.get_all(name)), _values([v for _k, v in wanted])
        elif kinds <= {"raw"}:
            old = email.message_from_bytes(raw)  # compat32: the raw values
            raw_values = [re.sub(r"\r?\n(?=[ \t])", "", v) for v in old.get_all(name)]
            got, exp = _values(raw_values), _values([v for _k, v in wanted])
        else:
            exp_addresses: list[Any] = []
            for kind, value in wanted:
                items = value if kind == "addresses" else [value]
                for item in items:
                    parsed = reader_addresses(str(item), given=True)
                    exp_addresses.extend(parsed if parsed is not None else [("?", str(item))])
            got_addresses: list[Any] = []
            try:
                for header in msg.get_all(name):
                    got_addresses.extend(
                        (norm_name(a.display_name), a.username, _idna(a.domain))
                        for a in header.addresses
                    )
            except Exception as exc:  # noqa: BLE001 - the reader can't read the header
                found.append(f"{name}: the parser fails on it ({type(exc).__name__})")
                continue
            got, exp = got_addresses, exp_addresses
            if len(got) == len(exp) and all(
                g[1:] == e[1:] and g[0] in _names(e) for g, e in zip(got, exp, strict=True)
            ):
                continue
        if got != exp:
            found.append(f"{name}: {got!r} instead of {exp!r}")
    parts = _leaves(msg)
    got_leaves = [(p.get_content_type(), _name(p.get_filename())) for p in parts]
    leaves = [(t, _name(n and email.utils.unquote(n))) for t, n in leaves]
    if got_leaves != leaves:
        found.append(f"parts {got_leaves} instead of {leaves}")
    for part in _walk(msg)[1:]:
        keys = Counter(k.lower() for k in part.keys())
        allowed = {"content-type", "mime-version", "content-transfer-encoding",
                   "content-disposition"}
        if set(keys) - allowed or any(n > 1 for n in keys.values()):
            found.append(f"part headers {sorted(keys.items())}")
    return found


# -- the three paths --------------------------------------------------------------------------


class DjangoPathBackend(EmailBackend):
    """The SMTP backend on Django's own path (``_send_django``: ``message()`` and smtplib's
    ``sendmail()``), which mailcore takes for a connection class that is not its own."""

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        return smtplib.SMTP


def open_senders(piped: Any, plain: Any) -> dict[str, tuple[EmailBackend, Any]]:
    """An open backend for each SMTP send path, with the server it sends to: ``piped`` is a
    tests.support SMTPServer with PIPELINING, ``plain`` one without."""
    senders = {
        "pipelined": (EmailBackend(host=piped.host, port=piped.port, timeout=10), piped),
        "one at a time": (EmailBackend(host=plain.host, port=plain.port, timeout=10), plain),
        "django": (DjangoPathBackend(host=plain.host, port=plain.port, timeout=10), plain),
    }
    for backend, _server in senders.values():
        backend.open()
    return senders


@dataclass
class Outcome:
    path: str
    kind: str  # "ok", "refused", "injection", "unexpected"; "unsent" (no recipients)
    problems: list[str] = field(default_factory=list)
    exception: BaseException | None = None
    raw: bytes | None = field(default=None, repr=False)

    def __str__(self) -> str:
        what = self.problems or ([repr(self.exception)] if self.exception else [])
        return f"{self.path}: {self.kind} {'; '.join(what)}"


def _caught(path: str, exc: Exception) -> Outcome:
    kind = "refused" if isinstance(exc, ValueError | TypeError) else "unexpected"
    if kind == "refused" and type(exc).__module__.startswith(("email", "encodings")):
        kind = "unexpected"  # a stdlib ValueError (UnicodeError, ...) that nobody named
    if kind == "refused" and isinstance(exc, UnicodeError):
        kind = "unexpected"
    return Outcome(path, kind, exception=exc)


def _raw(spec: dict, path: str) -> bytes:
    """The bytes of the path; a message with an address only SMTPUTF8 carries is written as
    for a server that offers it (the one the SMTP path talks to does), in UTF-8 headers."""
    msg = build(spec)
    utf8 = message_needs_smtputf8(msg)
    if path == "message":
        with utf8_headers(utf8):
            return msg.message().as_bytes(linesep="\r\n")
    return serialize(msg, "\r\n", utf8=utf8).getvalue()


def judge_bytes(spec: dict, path: str, like: tuple[bytes, Outcome] | None = None) -> Outcome:
    """The outcome of the ``message`` or ``wire`` path. ``like`` is another path's bytes and
    outcome: when these bytes are the same (boundaries, Date and Message-ID aside), so is
    the verdict, and the parser is spared."""
    try:
        raw = _raw(spec, path)
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome
        return _caught(path, exc)
    return _verdict(spec, path, raw, like)


def _verdict(spec: dict, path: str, raw: bytes, like: tuple[bytes, Outcome] | None) -> Outcome:
    if like is not None and like[1].kind in ("ok", "injection") and (
        normalise(raw) == normalise(like[0])
    ):
        return Outcome(path, like[1].kind, list(like[1].problems))
    problems = problems_in(spec, raw)
    outcome = Outcome(path, "injection" if problems else "ok", problems)
    outcome.raw = raw
    return outcome


def judge_smtp(spec: dict, backend: Any, server: Any,
               like: tuple[bytes, Outcome] | None = None) -> Outcome:
    """The outcome of an SMTP send with ``backend`` to ``server`` (a tests.support SMTPServer):
    the bytes the server received, and the envelope it captured."""
    before = len(server.messages)
    try:
        msg = build(spec)
        recipients = msg.recipients()
        sent = backend.send_messages([msg])
    except Exception as exc:  # noqa: BLE001 - the exception is the outcome
        after = server.messages[before:]
        outcome = _caught("smtp", exc)
        if after:
            outcome.kind = "injection"
            outcome.problems = [f"refused with {exc!r} but {len(after)} message(s) delivered"]
        return outcome
    after = server.messages[before:]
    if not recipients:  # nothing to send: Django returns 0 without connecting
        return Outcome("smtp", "unsent" if sent == 0 and not after else "injection",
                       [] if not after else ["a message without recipients was sent"])
    if sent != 1 or len(after) != 1:
        return Outcome("smtp", "injection", [f"sent={sent}, {len(after)} delivered"])
    record = after[0]
    outcome = _verdict(spec, "smtp", record.data, like)
    problems = outcome.problems
    want_from = envelope_spec(str(spec["from_email"] or mailcore.settings.DEFAULT_FROM_EMAIL))
    want_to = [envelope_spec(str(r)) for r in recipients]
    if record.mail_from != want_from:
        problems.append(f"MAIL FROM {record.mail_from!r} instead of {want_from!r}")
    if record.rcpt_tos != want_to:
        problems.append(f"RCPT TO {record.rcpt_tos!r} instead of {want_to!r}")
    # the parameters mailcore itself adds: SIZE always, SMTPUTF8 for an address only it
    # carries (RFC 6531), BODY=8BITMIME for 8-bit content (RFC 6152); anything else came in
    allowed = ["SIZE="]
    if message_needs_smtputf8(msg):
        allowed.append("SMTPUTF8")
    if not record.data.isascii():
        allowed.append("BODY=8BITMIME")
    if record.rcpt_options or any(
            not (o.upper().startswith("SIZE=") or o.upper() in allowed)
            for o in record.mail_options):
        problems.append(f"ESMTP parameters {record.mail_options} {record.rcpt_options}")
    outcome.kind = "injection" if problems else "ok"
    return outcome


def judge(spec: dict, backend: Any = None, server: Any = None) -> list[Outcome]:
    """The outcome of each path (the SMTP one only with a backend and its server), and a
    consistency check: message() and serialize() refuse the same inputs, and whatever they
    refuse is not sent."""
    message = judge_bytes(spec, "message")
    like = (message.raw, message) if message.raw is not None else None
    wire = judge_bytes(spec, "wire", like)
    outcomes = [message, wire]
    if backend is not None:
        outcomes.append(judge_smtp(spec, backend, server, like))
    if (message.kind == "refused") != (wire.kind == "refused"):
        outcomes.append(Outcome("consistency", "injection",
                                [f"message() {message.kind}, serialize() {wire.kind}"]))
    if len(outcomes) > 2 and message.kind == "refused" and outcomes[2].kind == "ok":
        outcomes.append(Outcome("consistency", "injection",
                                ["message() refused what the SMTP send delivered"]))
    return outcomes
