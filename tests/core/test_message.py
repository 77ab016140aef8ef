"""Messages are built as Django builds them: the rules on the page, checked one by one."""

from __future__ import annotations

import email
import email.policy
import pickle
from email.mime.image import MIMEImage

import pytest

import mailcore
from mailcore import BadHeaderError, EmailMessage, EmailMultiAlternatives, FileContent
from mailcore.wire import serialize


def parse(msg: EmailMessage) -> email.message.EmailMessage:
    return email.message_from_bytes(serialize(msg).getvalue(), policy=email.policy.default)


def cte(msg) -> str:
    return msg.message()["Content-Transfer-Encoding"]


def test_transfer_encoding_choice():
    assert cte(EmailMessage("s", "plain ascii", "f@example.com", ["t@example.com"])) == "7bit"
    assert cte(EmailMessage("s", "ünïcode", "f@example.com", ["t@example.com"])) == "8bit"
    assert (
        cte(EmailMessage("s", "x" * 999, "f@example.com", ["t@example.com"])) == "quoted-printable"
    )
    assert (
        cte(EmailMessage("s", "é" * 500, "f@example.com", ["t@example.com"])) == "quoted-printable"
    )


def test_no_line_longer_than_998_octets():
    m = EmailMessage("long subject " * 200, "é" * 5000, "f@example.com", ["t@example.com"])
    m.attach("long.txt", "z" * 5000)
    raw = serialize(m).getvalue()
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_rfc2047_subject_and_display_names_and_punycode():
    m = EmailMessage("Grüße", "b", "Jörg <j@bücher.example>", ["Zoë <z@example.com>"])
    raw = serialize(m).getvalue()
    head = raw.split(b"\r\n\r\n")[0]
    assert head.isascii()
    assert b"@xn--bcher-kva.example>" in head
    parsed = parse(m)
    assert parsed["Subject"] == "Grüße"
    assert parsed["From"].addresses[0].display_name == "Jörg"
    assert parsed["To"].addresses[0].display_name == "Zoë"


def test_message_id_and_date_present_and_fresh():
    m = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    first, second = parse(m), parse(m)
    assert first["Message-ID"] != second["Message-ID"]
    assert first["Message-ID"].startswith("<") and first["Message-ID"].endswith(">")
    assert first["Date"].datetime is not None


def test_localtime_setting_changes_date():
    with mailcore.settings.override(EMAIL_USE_LOCALTIME=False):
        assert parse(EmailMessage("s", "b", "f@example.com", ["t@example.com"]))["Date"].endswith(
            "-0000"
        )


def test_headers_override_from_to_cc_reply_to_and_ids():
    m = EmailMessage(
        "s",
        "b",
        "envelope@example.com",
        ["real@example.com"],
        cc=["cc@example.com"],
        reply_to=["r@example.com"],
        headers={
            "From": "Shown <shown@example.com>",
            "To": "list@example.com",
            "Cc": "other@example.com",
            "Reply-To": "rr@example.com",
            "Message-ID": "<mine@example.com>",
            "Date": "Mon, 1 Jan 2029 10:00:00 +0000",
        },
    )
    parsed = parse(m)
    assert parsed["From"] == "Shown <shown@example.com>"
    assert parsed["To"] == "list@example.com"
    assert parsed["Cc"] == "other@example.com"
    assert parsed["Reply-To"] == "rr@example.com"
    assert parsed["Message-ID"] == "<mine@example.com>"
    raw = serialize(m).getvalue()
    assert raw.count(b"\r\nDate: ") == 1
    assert b"\r\nDate: Mon, 1 Jan 2029 10:00:00 +0000\r\n" in raw
    assert m.recipients() == ["real@example.com", "cc@example.com"]  # envelope unchanged


def test_bcc_never_in_headers():
    m = EmailMessage("s", "b", "f@example.com", ["t@example.com"], bcc=["hidden@example.com"])
    assert b"hidden" not in serialize(m).getvalue()
    assert "hidden@example.com" in m.recipients()


@pytest.mark.parametrize("field", ["to", "cc", "bcc", "reply_to"])
def test_string_instead_of_list_is_a_type_error(field):
    with pytest.raises(TypeError, match=field):
        EmailMessage("s", "b", "f@example.com", **{field: "one@example.com"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subject": "a\nb"},
        {"subject": "a\rb"},
        {"subject": "a\r\nBcc: x@example.com"},
        {"from_email": "f@example.com\nBcc: x@example.com"},
        {"headers": {"X-Evil": "v\nBcc: x@example.com"}},
        {"headers": {"X-Evil\nBcc": "v"}},
        {"to": ["t@example.com\n"]},
        {"reply_to": ["r@example.com\r"]},
    ],
)
def test_newlines_in_any_header_raise_bad_header_error(kwargs):
    base = {"subject": "s", "body": "b", "from_email": "f@example.com", "to": ["t@example.com"]}
    m = EmailMessage(**{**base, **kwargs})
    with pytest.raises(ValueError) as caught:
        serialize(m)
    with pytest.raises(ValueError):
        m.message()
    assert isinstance(caught.value, BadHeaderError) or "newline" in str(caught.value)


def test_newline_in_attachment_filename_raises():
    m = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    m.attach("evil\nContent-Type: text/html.txt", "x", "text/plain")
    with pytest.raises(BadHeaderError):
        serialize(m)
    with pytest.raises(BadHeaderError):
        m.message()


@pytest.mark.parametrize(
    "bad", ["a@b@example.com", "@example.com", "x@", "a@example.com, b@example.com"]
)
def test_invalid_addresses_are_value_errors(bad):
    m = EmailMessage("s", "b", "f@example.com", [bad])
    with pytest.raises(ValueError, match="Invalid address"):
        mailcore.get_connection("smtp")._send(m)


def test_rfc822_attachment_is_never_base64():
    inner = EmailMessage("inner", "inner body", "a@example.com", ["b@example.com"])
    m = EmailMessage("outer", "b", "f@example.com", ["t@example.com"])
    m.attach("fwd.eml", inner, "message/rfc822")
    m.attach(None, b"Subject: raw\n\nraw body\n", "message/rfc822")
    raw = serialize(m).getvalue()
    parsed = parse(m)
    rfc822 = [p for p in parsed.walk() if p.get_content_type() == "message/rfc822"]
    assert len(rfc822) == 2
    assert all(p["Content-Transfer-Encoding"] in (None, "7bit", "8bit") for p in rfc822)
    assert b"inner body" in raw and b"raw body" in raw


def test_text_attachment_that_is_not_utf8_becomes_octet_stream(tmp_path):
    m = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    m.attach("latin.txt", "café".encode("latin-1"))
    m.attach("utf8.txt", "café".encode())
    assert m.attachments[0].mimetype == "application/octet-stream"
    assert m.attachments[1] == ("utf8.txt", "café", "text/plain")
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\xff\xfe binary")
    m.attach_file(path)
    assert m.attachments[2].mimetype == "application/octet-stream"


def test_guessed_mime_types(tmp_path):
    m = EmailMessage()
    for name in ("photo.png", "doc.pdf", "page.html", "unknown.zzzz", "noext"):
        m.attach(name, b"data")
    assert [a.mimetype for a in m.attachments] == [
        "image/png",
        "application/pdf",
        "text/html",
        "application/octet-stream",
        "application/octet-stream",
    ]


def test_attach_mimebase_and_its_rules():
    m = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    image = MIMEImage(b"\x89PNG\r\n\x1a\n" + bytes(50), "png")
    image.add_header("Content-ID", "<logo>")
    m.attach(image)
    assert parse(m).get_body(("related", "html", "plain")) is not None
    assert any(p["Content-ID"] == "<logo>" for p in parse(m).walk())
    with pytest.raises(ValueError, match="must not be given"):
        m.attach(image, b"x")
    with pytest.raises(ValueError, match="content must be provided"):
        m.attach("name.txt")


def test_attach_file_keeps_a_reference_until_sending(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(b"version 1")
    m = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    m.attach_file(path)
    (attachment,) = m.attachments
    assert isinstance(attachment.content, FileContent)
    assert attachment == ("report.pdf", b"version 1", "application/pdf")
    path.write_bytes(b"version 2")  # read when the message is written
    (part,) = [p for p in parse(m).walk() if p.get_filename() == "report.pdf"]
    assert part.get_content() == b"version 2"
    assert pickle.loads(pickle.dumps(m)).attachments[0].content == b"version 2"  # noqa: S301


def test_attach_file_errors_at_once_for_missing_files(tmp_path):
    m = EmailMessage()
    with pytest.raises(FileNotFoundError):
        m.attach_file(tmp_path / "nope.pdf")
    assert m.attachments == []


def test_attach_file_text_is_read_like_django(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    m = EmailMessage()
    m.attach_file(path)
    assert m.attachments == [("notes.txt", "hello\n", "text/plain")]


def test_content_subtype_html():
    m = EmailMessage("s", "<p>html</p>", "f@example.com", ["t@example.com"])
    m.content_subtype = "html"
    assert parse(m).get_content_type() == "text/html"


def test_alternatives_nested_inside_mixed_with_attachments():
    m = EmailMultiAlternatives("s", "plain", "f@example.com", ["t@example.com"])
    m.attach_alternative("<p>html</p>", "text/html")
    m.attach("a.pdf", b"%PDF", "application/pdf")
    tree = [p.get_content_type() for p in parse(m).walk()]
    assert tree == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    ]


def test_body_contains():
    m = EmailMultiAlternatives("s", "Hello world", "f@example.com", ["t@example.com"])
    m.attach_alternative("<p>Hello world</p>", "text/html")
    m.attach_alternative(b"binary", "application/octet-stream")
    assert m.body_contains("Hello")
    assert not m.body_contains("<p>")


def test_send_without_recipients_returns_zero():
    assert EmailMessage("s", "b", "f@example.com").send() == 0


def test_lazy_and_non_string_values():
    class Lazy:
        def __str__(self):
            return "lazy subject"

    m = EmailMessage(Lazy(), "b", "f@example.com", ["t@example.com"])
    assert parse(m)["Subject"] == "lazy subject"


def test_attach_file_reads_small_files_at_once_like_django(tmp_path, monkeypatch):
    """Up to ATTACH_FILE_READ_LIMIT the bytes are read by attach_file, so the common
    pattern of attaching a temporary file and sending after it is gone still works."""
    import tempfile

    import mailcore.message

    monkeypatch.setattr(mailcore.message, "ATTACH_FILE_READ_LIMIT", 1024 * 1024)
    m = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    with tempfile.NamedTemporaryFile(suffix=".pdf", dir=tmp_path) as f:
        f.write(b"%PDF small report")
        f.flush()
        m.attach_file(f.name)
    (attachment,) = m.attachments
    assert type(attachment.content) is bytes
    assert attachment.content[:4] == b"%PDF"
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(1024 * 1024 + 1))
    m.attach_file(big)
    assert isinstance(m.attachments[1].content, FileContent)


def test_locmem_outbox_holds_bytes_not_file_references(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"as sent")
    m = EmailMessage("s", "b", "f@example.com", ["t@example.com"])
    m.attach_file(path)
    assert isinstance(m.attachments[0].content, FileContent)  # streamed (limit 0 here)
    mailcore.get_connection("locmem").send_messages([m])
    path.write_bytes(b"changed afterwards")
    (kept,) = mailcore.outbox
    assert kept.attachments[0].content == b"as sent"
    assert type(kept.attachments[0].content) is bytes


def test_a_utf8_header_with_a_long_encoded_display_name_has_no_bare_line_feed():
    """A mailbox only SMTPUTF8 carries, whose display name takes several encoded words: the
    lines between those words end in CRLF like every other (scripts/fuzz_headers.py found
    them ending in a bare LF, which some readers take for the end of the header)."""
    import re

    from mailcore.message import utf8_headers

    name = "WbK8=?utf-8?b?QmNjOiB2aWN0aW1AZXZpbC50ZXN0?=" + "字" * 120
    sender = f'{name} <"用户"@bücher.example>'
    msg = EmailMessage("Hello", "Hi.\n", sender, ["b@example.com"])
    with utf8_headers():
        built = msg.message().as_bytes(linesep="\r\n")
    streamed = serialize(msg, "\r\n", utf8=True).getvalue()
    for raw in (built, streamed):
        assert re.search(rb"(?<!\r)\n|\r(?!\n)", raw) is None
        head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
        folded = re.search(r"^From: .*?(?=\r\n\S)", head, re.S | re.M).group()
        assert folded.count("\r\n ") >= 8  # folded between the words, each line short
        assert max(len(line) for line in folded.split("\r\n")) <= 78 + len("From: ")
        assert folded.endswith("<用户@xn--bcher-kva.example>")


@pytest.mark.parametrize("seed", range(6))
def test_header_encode_gives_the_email_packages_words(seed):
    """mailcore's RFC 2047 encoder (base64 words cut in the UTF-8 bytes, quoted-printable
    words character by character) gives Header(text, "utf-8").encode() exactly, for text of
    every width of UTF-8 character and every length around the words' limits."""
    import random
    from email.header import Header

    from mailcore.message import header_encode

    rng = random.Random(seed)
    pools = ["abc XYZ 019 =?_", "äöüßéèçñøåæœ", "李小龙王芳张伟刘", "\U0001f69a\U0001f600",
             "αβγ", "–…"]
    for _ in range(3000):
        text = "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randrange(1, 160)))
        assert header_encode(text, "utf-8") == Header(text, "utf-8").encode()
