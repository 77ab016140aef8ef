"""mailcore against Django 5.2: the same inputs must give the same messages.

Two views are compared: the raw bytes (with the random multipart boundaries,
the Date and the Message-ID made constant) and what a mail reader sees
(decoded headers, MIME tree, filenames, decoded payloads). The bytes that
mailcore's backends really send (mailcore.wire) are compared too.

Where mailcore refuses an input on purpose (issue 10: safety beats parity), the input is
excluded from the comparison, and counted, only if Django mishandles it: Django's bytes fail
the reader's check of tests/core/injection_oracle.py (an injected or broken header), or
Django raises an internal exception (UnicodeEncodeError, AttributeError, ...) where
mailcore raises a ValueError or TypeError that says what is wrong. Anything else that
mailcore refuses is a failure.
"""

from __future__ import annotations

import os
import string
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mailcore
from mailcore.wire import serialize

from . import injection_oracle
from .mimeview import normalise, reader_view

LINESEPS = ["\n", "\r\n"]


def build(module, spec):
    """Build one message with ``module`` (mailcore or django.core.mail)."""
    cls = module.EmailMultiAlternatives if spec.get("alternatives") else module.EmailMessage
    kwargs = {k: spec[k] for k in ("cc", "reply_to", "headers") if spec.get(k)}
    msg = cls(
        spec["subject"], spec["body"], spec["from_email"], spec["to"], spec.get("bcc"), **kwargs
    )
    for content, mimetype in spec.get("alternatives", []):
        msg.attach_alternative(content, mimetype)
    for filename, content, mimetype in spec.get("attachments", []):
        msg.attach(filename, content, mimetype)
    if spec.get("content_subtype"):
        msg.content_subtype = spec["content_subtype"]
    return msg


def outcome(module, spec, linesep="\r\n", wire=False):
    """The message's bytes, or the name of the exception that building raised."""
    try:
        msg = build(module, spec)
        if wire:
            return serialize(msg, linesep).getvalue()
        return msg.message().as_bytes(linesep=linesep)
    except Exception as exc:  # noqa: BLE001 - the exception class is the outcome
        return f"raises {type(exc).__name__}"


def raised(module, spec):
    """The exception that building the message with ``module`` raises, or None."""
    try:
        build(module, spec).message().as_bytes(linesep="\r\n")
    except Exception as exc:  # noqa: BLE001 - the exception is the answer
        return exc
    return None


def django_mishandles(django_mail, spec) -> str | None:
    """Why Django's message for ``spec`` can't be the reference (None if it can): Django
    raises an internal exception, or its bytes are not what was asked for."""
    exc = raised(django_mail, spec)
    if exc is not None:
        if isinstance(exc, ValueError | TypeError) and not isinstance(exc, UnicodeError):
            return None  # a deliberate refusal: mailcore must raise the same
        return f"Django raises {type(exc).__name__}"
    problems = injection_oracle.problems_in(spec, outcome(django_mail, spec, "\r\n"))
    return f"Django writes a broken message: {problems[0]}" if problems else None


def assert_same(django_mail, spec):
    """Same bytes, same reader's view; or None when mailcore refuses on purpose what Django
    mishandles: then the reason, for the count."""
    for linesep in LINESEPS:
        theirs = outcome(django_mail, spec, linesep)
        ours = outcome(mailcore, spec, linesep)
        sent = outcome(mailcore, spec, linesep, wire=True)
        if isinstance(ours, str) and ours != theirs:
            ours_exc = raised(mailcore, spec)
            assert isinstance(ours_exc, ValueError | TypeError), ours
            theirs_exc = raised(django_mail, spec)
            if isinstance(theirs, str) and isinstance(ours_exc, type(theirs_exc)):
                # the same refusal, said more precisely (InvalidAddressError for ValueError)
                assert sent == ours
                continue
            reason = django_mishandles(django_mail, spec)
            assert reason, f"mailcore {ours} ({ours_exc}) where Django handles the input"
            assert sent == ours
            return reason
        if isinstance(theirs, str):
            assert ours == theirs
            assert sent == theirs
            continue
        assert normalise(ours) == normalise(theirs)
        assert normalise(sent) == normalise(theirs)
        assert reader_view(normalise(sent)) == reader_view(normalise(theirs))
    return None


HAND_PICKED = {
    "plain ascii": dict(
        subject="Hello", body="Hi there.\n", from_email="a@example.com", to=["b@example.com"]
    ),
    "unicode everywhere": dict(
        subject="Grüße aus Köln – ünïcödé ✓",
        body="Ça va? 日本語のテキスト\n",
        from_email="Jörg Müller <joerg@example.com>",
        to=["Zoë <zoe@example.com>", "plain@example.com"],
        cc=["Ünal <unal@example.com>"],
        reply_to=["Réponse <reply@example.com>"],
    ),
    "idn domains": dict(
        subject="IDN",
        body="x",
        from_email="from@bücher.example",
        to=["to@münchen.example", "Ann <ann@straße.example>"],
    ),
    "long subject folded": dict(
        subject="A very long subject line " * 8,
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
    ),
    "long non-ascii subject": dict(
        subject="Ünïcode subject that keeps going " * 6,
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
    ),
    "long body lines become quoted-printable": dict(
        subject="long",
        body="x" * 1500 + "\n" + "é" * 600 + "\nshort\n",
        from_email="a@example.com",
        to=["b@example.com"],
    ),
    "crlf and cr in body": dict(
        subject="eol",
        body="one\r\ntwo\rthree\nfour",
        from_email="a@example.com",
        to=["b@example.com"],
    ),
    "dots and From lines": dict(
        subject="dots",
        body=".leading dot\n..two\nFrom me\n.\n",
        from_email="a@example.com",
        to=["b@example.com"],
    ),
    "extra headers override": dict(
        subject="hdr",
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
        cc=["c@example.com"],
        headers={
            "From": "Override <o@example.com>",
            "To": "Shown <s@example.com>",
            "Reply-To": "r@example.com",
            "Message-ID": "<fixed@example.com>",
            "Date": "Tue, 01 Jan 2030 00:00:00 -0000",
            "X-Mailer": "mailcore",
            "X-Unicode": "välue",
        },
    ),
    "non-ascii header name": dict(
        subject="hdr",
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
        headers={"X-Ünicode": "välue"},
    ),
    "vertical tab in subject": dict(
        subject="Hello\x0bBcc :victim@evil.test",
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
    ),
    "form feed in a display name": dict(
        subject="s",
        body="b",
        from_email="a@example.com",
        to=["Bob\x0cBcc: x <b@example.com>"],
    ),
    "line separator in a header value": dict(
        subject="s",
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
        headers={"X-Tag": "a\u2028Bcc: x@example.com"},
    ),
    "cr lf in an attachment mimetype": dict(
        subject="s",
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
        attachments=[("a.bin", b"x", "application/octet-stream\rX-Injected: 1")],
    ),
    "bytes alternative": dict(
        subject="s",
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
        alternatives=[(b"<p>x</p>", "text/html")],
    ),
    "quote as sender": dict(subject="s", body="b", from_email='"', to=["b@example.com"]),
    "bcc never in headers": dict(
        subject="bcc",
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
        bcc=["hidden@example.com"],
    ),
    "html alternative": dict(
        subject="alt",
        body="plain",
        from_email="a@example.com",
        to=["b@example.com"],
        alternatives=[("<p>Hi <b>there</b></p>", "text/html")],
    ),
    "alternative without body": dict(
        subject="alt",
        body="",
        from_email="a@example.com",
        to=["b@example.com"],
        alternatives=[("<p>only html</p>", "text/html")],
    ),
    "attachments of every kind": dict(
        subject="att",
        body="see attached",
        from_email="a@example.com",
        to=["b@example.com"],
        alternatives=[("<p>html</p>", "text/html")],
        attachments=[
            ("report.pdf", bytes(range(256)) * 40, "application/pdf"),
            ("notes.txt", "plain text attachment\n", "text/plain"),
            ("data.csv", b"a,b\n1,2\n", None),
            ("latin1.txt", "café".encode("latin-1"), "text/plain"),
            ("ünïcode näme.bin", b"\x00\x01\x02\n", "application/octet-stream"),
            ("ends-with-newline.bin", b"abc\n", "application/octet-stream"),
            ("empty.bin", b"", "application/octet-stream"),
            ("guessed.png", b"\x89PNG\r\n\x1a\n" + bytes(100), None),
            ('quote"and\\backslash.txt', "q", "text/plain"),
            ("a" * 120 + ".zip", b"zip", "application/zip"),
        ],
    ),
    "attachment without body": dict(
        subject="att",
        body="",
        from_email="a@example.com",
        to=["b@example.com"],
        attachments=[("x.bin", b"123", "application/octet-stream")],
    ),
    "rfc822 attachment": dict(
        subject="fwd",
        body="forwarded",
        from_email="a@example.com",
        to=["b@example.com"],
        attachments=[
            ("fwd.eml", b"Subject: inner\nFrom: x@example.com\n\ninner body\n", "message/rfc822")
        ],
    ),
    "html main content": dict(
        subject="html",
        body="<p>html body</p>",
        from_email="a@example.com",
        to=["b@example.com"],
        content_subtype="html",
    ),
    "newline in subject": dict(
        subject="evil\nBcc: x@example.com",
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
    ),
    "newline in header value": dict(
        subject="s",
        body="b",
        from_email="a@example.com",
        to=["b@example.com"],
        headers={"X-Evil": "a\r\nBcc: x@example.com"},
    ),
    "invalid address": dict(
        subject="s", body="b", from_email="a@example.com", to=["not an address@@"]
    ),
    "empty everything": dict(subject="", body="", from_email="a@example.com", to=[]),
    "999 octet ascii line": dict(
        subject="s", body="y" * 999, from_email="a@example.com", to=["b@example.com"]
    ),
    "998 octet ascii line": dict(
        subject="s", body="y" * 998, from_email="a@example.com", to=["b@example.com"]
    ),
}


# The hand-picked inputs mailcore refuses on purpose, and why Django's answer is no reference.
EXCLUDED = {
    "non-ascii header name": "Django raises UnicodeEncodeError",
    # (Pythons with the CVE-2024-6923 fix, such as Debian 12's 3.11.2, refuse to write it)
    "vertical tab in subject": ("Django writes a broken message: parser defects",
                                "Django raises HeaderWriteError"),
    "form feed in a display name": "Django raises HeaderParseError",
    "line separator in a header value": "Django writes a broken message",
    "cr lf in an attachment mimetype": "Django raises HeaderParseError",
    "bytes alternative": "Django raises AttributeError",
    "quote as sender": "Django writes a broken message: from",
    "invalid address": "Django writes a broken message: to",
}


@pytest.mark.parametrize("name", sorted(HAND_PICKED))
def test_hand_picked(django_mail, name):
    reason = assert_same(django_mail, HAND_PICKED[name])
    if name in EXCLUDED:
        assert reason is not None and reason.startswith(EXCLUDED[name]), reason
    else:
        assert reason is None, reason


def test_hand_picked_exclusions_are_counted(django_mail):
    excluded = {name for name, spec in HAND_PICKED.items() if assert_same(django_mail, spec)}
    assert excluded == set(EXCLUDED)
    assert len(HAND_PICKED) - len(excluded) == 21  # compared byte for byte


def test_no_line_over_998_octets_and_crlf_only(django_mail):
    spec = HAND_PICKED["long body lines become quoted-printable"]
    raw = serialize(build(mailcore, spec), "\r\n").getvalue()
    assert b"Content-Transfer-Encoding: quoted-printable" in raw
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert b"\r" not in b"".join(lines) and b"\n" not in b"".join(lines)


# -- generated inputs ----------------------------------------------------------

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
ascii_word = st.text(string.ascii_letters + string.digits, min_size=1, max_size=12)
domain_label = st.one_of(
    ascii_word, st.sampled_from(["bücher", "münchen", "例え", "straße", "xn--caf-dma"])
)
domain = st.builds(
    lambda a, b: f"{a}.{b}", domain_label, st.sampled_from(["example", "com", "org"])
)
local = st.text(string.ascii_letters + string.digits + "._+-", min_size=1, max_size=12).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s
)
display = st.one_of(
    st.just(""), st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=20)
)
address = st.builds(
    lambda name, lp, dom: (
        f'"{name}" <{lp}@{dom}>' if name and '"' not in name and "\\" not in name else f"{lp}@{dom}"
    ),
    display,
    local,
    domain,
)
body = st.text(st.characters(exclude_categories=("Cs",)), max_size=400) | st.builds(
    lambda n, c: c * n, st.integers(900, 1100), st.sampled_from(["a", "é", " ", "."])
)
mimetype = st.sampled_from(
    [
        "application/octet-stream",
        "application/pdf",
        "image/png",
        "text/plain",
        "text/csv",
        "text/html",
        None,
    ]
)
attachment = st.tuples(
    st.one_of(
        st.just("file.bin"),
        st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30),
    ),
    st.one_of(
        st.binary(max_size=300), st.text(st.characters(exclude_categories=("Cs",)), max_size=100)
    ),
    mimetype,
)
specs = st.fixed_dictionaries(
    {
        "subject": text,
        "body": body,
        "from_email": address,
        "to": st.lists(address, max_size=3),
    },
    optional={
        "cc": st.lists(address, min_size=1, max_size=2),
        "bcc": st.lists(address, min_size=1, max_size=2),
        "reply_to": st.lists(address, min_size=1, max_size=2),
        "alternatives": st.lists(st.tuples(text, st.just("text/html")), min_size=1, max_size=2),
        "attachments": st.lists(attachment, min_size=1, max_size=3),
        "headers": st.dictionaries(
            st.sampled_from(["X-Tag", "X-Ünicode", "Keywords", "Sender", "Comments"]),
            text,
            max_size=2,
        ),
    },
)


def test_generated(django_mail):
    counts: Counter = Counter()

    @settings(
        max_examples=int(os.environ.get("DIFF_EXAMPLES", "250")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(spec=specs)
    def check(spec):
        # Django only accepts text for text/* attachments and bytes or text otherwise.
        for _filename, content, mt in spec.get("attachments", []):
            assume(not (isinstance(content, str) and mt and not mt.startswith("text/")))
        reason = assert_same(django_mail, spec)
        counts["excluded" if reason else "compared"] += 1
        if reason:
            counts[reason.split(":")[0]] += 1

    check()
    # Every input is compared with Django or excluded for a reason counted here; the
    # exclusions (control characters the strategy puts in subjects, header values and
    # filenames, the non-ASCII header name) stay a minority.
    reasons = {k: v for k, v in counts.items() if k.startswith("Django")}
    print(f"\ndifferential: {counts['compared']} compared, {counts['excluded']} excluded {reasons}")
    assert counts["compared"] > 0
    assert counts["excluded"] == sum(reasons.values())
    assert counts["excluded"] < counts["compared"], counts
