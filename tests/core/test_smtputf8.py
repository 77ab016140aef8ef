"""SMTPUTF8 (RFC 6531), UTF-8 headers (RFC 6532) and 8BITMIME, against a real Postfix.

Two private Postfix instances on 127.0.0.1 (tests/support/postfix.py): one with
``smtputf8_enable = yes``, one with ``no``. Messages are sent with smtplib, as mailcore's
backend decides: ``needs_smtputf8`` over the envelope, ``envelope_address`` for MAIL and RCPT,
``serialize(..., utf8=...)`` for the content, ``BODY=8BITMIME`` when ``eight_bit``. Delivery
is read back from the Maildirs.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
import time
from typing import Any

import pytest

import mailcore.wire
from mailcore import EmailMessage, EmailMultiAlternatives
from mailcore.message import (
    InvalidAddressError,
    NeedsSMTPUTF8Error,
    UTF8AddressHeader,
    check_envelope_address,
    envelope_address,
    needs_smtputf8,
    sanitize_address,
    utf8_headers,
)
from mailcore.wire import serialize
from tests.support.postfix import Postfix

JOERG = "jörg@example.test"
ENCODED_JOERG = "=?utf-8?b?asO2cmc=?=@example.test"  # what Django writes for it
MAILBOXES = ("jörg@example.test", "ann@example.test", "ann@xn--bcher-kva.example")


@pytest.fixture(scope="module")
def mx_utf8():
    with Postfix(smtputf8=True, mailboxes=MAILBOXES) as mx:
        yield mx


@pytest.fixture(scope="module")
def mx_ascii():
    with Postfix(smtputf8=False, mailboxes=MAILBOXES) as mx:
        yield mx


def fixed(message: EmailMessage) -> EmailMessage:
    message.extra_headers.setdefault("Date", "Wed, 02 Dec 2026 10:00:00 +0000")
    message.extra_headers.setdefault("Message-ID", "<utf8-test@example.test>")
    message.boundary_seed = 7
    return message


class ViaEmailPackage(EmailMultiAlternatives):
    """The same message, which the fast writer leaves to the email package (message())."""

    def message(self) -> Any:
        return super().message()


def both_writers(message: EmailMultiAlternatives, linesep: str = "\r\n", *, utf8: bool) -> bytes:
    """The bytes from the fast writer and from the email package, which must be equal."""
    fast = serialize(message, linesep, utf8=utf8)
    other = ViaEmailPackage()
    other.__dict__.update(message.__dict__)
    slow = serialize(other, linesep, utf8=utf8)
    assert fast.getvalue() == slow.getvalue()
    slow_headers = dict(slow.headers)
    for name, value in fast.headers:  # (the text of a UTF-8 header, on both paths)
        assert slow_headers[name] == value
    return fast.getvalue()


def send(mx: Postfix, message: EmailMessage) -> tuple[dict, list[str], bytes]:
    """Send as the backend does: SMTPUTF8 when an envelope address needs it and the server
    offers it (else envelope_address raises before MAIL), BODY=8BITMIME for 8-bit content.
    Returns (refused, MAIL options, the bytes sent)."""
    with smtplib.SMTP(mx.host, mx.port, timeout=10) as client:
        client.ehlo()
        addresses = [message.from_email, *message.recipients()]
        utf8 = client.has_extn("smtputf8") and any(needs_smtputf8(a) for a in addresses)
        sender = envelope_address(message.from_email, "utf-8", utf8=utf8)
        recipients = [envelope_address(a, "utf-8", utf8=utf8) for a in message.recipients()]
        data = serialize(message, "\r\n", utf8=utf8)
        options = ["SMTPUTF8"] if utf8 else []
        if data.eight_bit and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        refused = client.sendmail(sender, recipients, data.getvalue(), mail_options=options)
    return refused, options, data.getvalue()


def parsed(raw: bytes) -> Any:
    """A message as an RFC 6532 reader reads it (the email package's bytes parser takes 8-bit
    header bytes for unknown ones: UTF-8 text first)."""
    return email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)


# -- the functions the backend calls ---------------------------------------------------------

def test_needs_smtputf8_is_about_the_local_part_only():
    assert needs_smtputf8(JOERG)
    assert needs_smtputf8("Jörg Müller <jörg@example.test>")
    assert needs_smtputf8('"jö rg"@example.test')
    assert needs_smtputf8(("", JOERG))
    assert needs_smtputf8("用户@例子.广告")
    assert not needs_smtputf8("ann@bücher.example")  # IDNA carries the domain
    assert not needs_smtputf8("Jörg Müller <joerg@example.test>")  # a display name alone
    assert not needs_smtputf8("ann@example.test")
    assert not needs_smtputf8(ENCODED_JOERG)  # ASCII (and refused elsewhere)
    assert not needs_smtputf8("tester")


def test_envelope_address_for_ascii_local_parts_is_what_it_was():
    for addr in ["ann@example.test", "Ann <ann@example.test>", '"a b"@example.test',
                 "Zoë <z@example.test>", "tester", "ann@bücher.example",
                 ("Ann", "ann@example.test")]:
        before = check_envelope_address(sanitize_address(addr, "utf-8"), given=addr)
        assert envelope_address(addr, "utf-8", utf8=False) == before
        assert envelope_address(addr, "utf-8", utf8=True) == before
    assert envelope_address("ann@bücher.example", "utf-8", utf8=False) == (
        "ann@xn--bcher-kva.example")
    for bad in ['"x@example.com> NOTIFY=NEVER', "a@b c", ENCODED_JOERG, "x\x0b@example.test"]:
        for utf8 in (False, True):
            with pytest.raises(InvalidAddressError):
                envelope_address(bad, "utf-8", utf8=utf8)


def test_envelope_address_with_smtputf8_keeps_the_local_part_and_idna_for_the_domain():
    assert envelope_address(JOERG, "utf-8", utf8=True) == JOERG
    assert envelope_address("Jörg <jörg@example.test>", "utf-8", utf8=True) == JOERG
    assert envelope_address(("Jörg", JOERG), "utf-8", utf8=True) == JOERG
    assert envelope_address("jörg@bücher.example", "utf-8", utf8=True) == (
        "jörg@xn--bcher-kva.example")
    assert envelope_address('"jö rg"@example.test', "utf-8", utf8=True) == (
        '"jö rg"@example.test')
    assert smtplib.quoteaddr(envelope_address(JOERG, "utf-8", utf8=True)) == f"<{JOERG}>"


def test_envelope_address_without_smtputf8_is_a_sentence_never_an_encoded_word():
    with pytest.raises(NeedsSMTPUTF8Error) as caught:
        envelope_address("Jörg <jörg@example.test>", "utf-8", utf8=False)
    exc = caught.value
    assert isinstance(exc, InvalidAddressError) and isinstance(exc, ValueError)
    assert exc.address == "Jörg <jörg@example.test>"
    text = str(exc)
    assert "jörg@example.test" in text and "SMTPUTF8" in text and "=?" not in text


@pytest.mark.parametrize("bad", ["j\u202eörg@example.test", "jö\u00a0rg@example.test",
                                 "jö\u0085rg@example.test", "jö\u2028rg@example.test",
                                 "\"jö\u200brg\"@example.test"])
def test_a_utf8_local_part_with_a_control_format_or_space_character_is_refused(bad):
    with pytest.raises(InvalidAddressError, match="Invalid address"):
        envelope_address(bad, "utf-8", utf8=True)
    with pytest.raises(ValueError), utf8_headers():  # InvalidAddressError, BadHeaderError
        serialize(EmailMessage("s", "b", "ann@example.test", [bad]), utf8=True)


def test_joiners_that_scripts_need_are_kept():
    addr = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645@example.test"  # Persian, ZWNJ
    assert envelope_address(addr, "utf-8", utf8=True) == addr


# -- the message: RFC 6532 headers with utf8, a clear error without ---------------------------

def test_utf8_headers_carry_the_local_part_and_its_display_name_raw():
    m = fixed(EmailMultiAlternatives(
        "Grüße", "Hallo Jörg", "Ann <ann@example.test>",
        ["Jörg Müller <jörg@example.test>", "bob@example.test", "Zoë <z@bücher.example>"],
        cc=['"Ö, Ä" <ö@example.test>'], reply_to=["jörg@example.test"],
        headers={"Sender": "sé@example.test"}))
    raw = both_writers(m, utf8=True)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert "To: Jörg Müller <jörg@example.test>, bob@example.test,\r\n".encode() in head
    assert b" =?utf-8?q?Zo=C3=AB?= <z@xn--bcher-kva.example>\r\n" in head  # as before
    assert 'Cc: "Ö, Ä" <ö@example.test>\r\n'.encode() in head
    assert "Reply-To: jörg@example.test\r\n".encode() in head
    assert "Sender: sé@example.test\r\n".encode() in head
    assert b"Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\n" in head  # the subject keeps its words
    assert b"asO2cmc" not in raw and b"=?utf-8?b?w7Y" not in raw
    msg = parsed(raw)
    assert [a.username for a in msg["To"].addresses] == ["jörg", "bob", "z"]
    assert msg["To"].addresses[0].display_name == "Jörg Müller"
    assert msg["Cc"].addresses[0].display_name == "Ö, Ä"
    assert msg["Subject"] == "Grüße"


@pytest.mark.parametrize("linesep", ["\r\n", "\n"])
def test_a_long_utf8_address_list_folds_between_mailboxes_on_both_paths(linesep):
    to = [f"Empfänger {i} <jörg.{i}@example.test>" for i in range(40)]
    m = fixed(EmailMultiAlternatives("s", "b", "ann@example.test", to))
    m.attach_alternative("<p>ä</p>", "text/html")
    m.attach("a.bin", b"\x00" * 100, "application/octet-stream")
    raw = both_writers(m, linesep, utf8=True)
    head = raw.split(linesep.encode() * 2, 1)[0].decode("utf-8")
    lines = head.split(linesep)
    assert all(len(line) <= 78 for line in lines)
    assert [a.username for a in parsed(raw.replace(b"\n", b"\r\n") if linesep == "\n"
                                      else raw)["To"].addresses] == [
        f"jörg.{i}" for i in range(40)]


def test_headers_given_by_hand_and_message_inside_utf8_headers():
    m = fixed(EmailMessage("s", "b", "ann@example.test", ["x@example.test"],
                           headers={"To": "Jörg <jörg@example.test>, ann@example.test",
                                    "Resent-To": "jörg@example.test"}))
    raw = both_writers(m, utf8=True)
    assert "To: Jörg <jörg@example.test>, ann@example.test\r\n".encode() in raw
    assert "Resent-To: jörg@example.test\r\n".encode() in raw
    with utf8_headers():
        built = m.message()
    assert isinstance(built["To"], UTF8AddressHeader)
    assert str(built["To"]) == "Jörg <jörg@example.test>, ann@example.test"
    assert built.as_bytes(linesep="\r\n") == raw


def test_ascii_local_parts_give_the_same_bytes_with_and_without_utf8():
    m = fixed(EmailMultiAlternatives("Grüße", "Hallo", "Zoë <z@example.test>",
                                     ["ann@bücher.example", "Bob <b@example.test>"]))
    m.attach_alternative("<p>Hallo</p>", "text/html")
    assert both_writers(m, utf8=True) == both_writers(m, utf8=False)


@pytest.mark.parametrize("kwargs", [
    dict(to=[JOERG]), dict(cc=["Jörg <jörg@example.test>"]), dict(reply_to=[JOERG]),
    dict(from_email=JOERG), dict(headers={"To": JOERG}), dict(headers={"Sender": JOERG}),
])
def test_without_utf8_such_a_message_is_refused_on_every_path_never_misaddressed(kwargs):
    fields = dict(subject="s", body="b", from_email="ann@example.test", to=["ann@example.test"])
    fields.update(kwargs)
    m = fixed(EmailMessage(**fields))
    for attempt in (lambda: serialize(m), lambda: serialize(ViaEmailPackage(**fields)),
                    m.message):
        with pytest.raises(NeedsSMTPUTF8Error) as caught:
            attempt()
        assert "SMTPUTF8" in str(caught.value) and "=?" not in str(caught.value)
    # (Django's sanitize_address() itself is kept as Django has it, for code that calls it)
    assert sanitize_address(JOERG, "utf-8") == ENCODED_JOERG


def test_eight_bit_says_whether_8bitmime_is_wanted():
    ascii_text = fixed(EmailMessage("Grüße", "plain", "ann@example.test", ["b@example.test"]))
    assert not serialize(ascii_text).eight_bit  # the subject is an encoded word: 7bit
    eight = fixed(EmailMessage("s", "Grüße", "ann@example.test", ["b@example.test"]))
    assert serialize(eight).eight_bit
    assert serialize(ViaEmailPackage("s", "Grüße", "ann@example.test",
                                     ["b@example.test"])).eight_bit
    attached = fixed(EmailMessage("s", "plain", "ann@example.test", ["b@example.test"]))
    attached.attach("x.bin", "ü".encode() * 5000, "application/octet-stream")
    assert not serialize(attached).eight_bit  # base64
    headers_only = fixed(EmailMessage("s", "plain", "ann@example.test", [JOERG]))
    assert serialize(headers_only, utf8=True).eight_bit  # (SMTPUTF8 carries it)


# -- through a real Postfix ------------------------------------------------------------------

def test_joerg_is_delivered_through_postfix_with_smtputf8(mx_utf8):
    m = fixed(EmailMessage("Grüße aus Köln", "Hallo Jörg,\nwie geht's?\n",
                           "Ann <ann@example.test>", ["Jörg Müller <jörg@example.test>"],
                           cc=["ann@example.test"]))
    m.extra_headers["Message-ID"] = "<joerg-1@example.test>"
    refused, options, sent = send(mx_utf8, m)
    assert refused == {} and options == ["SMTPUTF8", "BODY=8BITMIME"]
    raw = mx_utf8.wait_delivered(JOERG, containing=b"<joerg-1@example.test>")[-1]
    head = raw.split(b"\n\n", 1)[0]
    assert "To: Jörg Müller <jörg@example.test>".encode() in head  # raw UTF-8, RFC 6532
    assert b"Message-ID: <joerg-1@example.test>" in head
    msg = parsed(raw)
    assert msg["To"].addresses[0].username == "jörg"
    assert msg["To"].addresses[0].display_name == "Jörg Müller"
    assert msg["Subject"] == "Grüße aus Köln"
    body = email.message_from_bytes(raw, policy=email.policy.default).get_content()
    assert body == "Hallo Jörg,\nwie geht's?\n"
    assert "Delivered-To: jörg@example.test".encode() in head  # Postfix's own, in UTF-8
    assert mx_utf8.wait_delivered("ann@example.test", containing=b"<joerg-1@example.test>")
    sent_to = [line for line in mx_utf8.log_lines("virtual") if "joerg" not in line]
    assert any("to=<jörg@example.test>" in line and "status=sent" in line for line in sent_to)
    assert ENCODED_JOERG not in mx_utf8.log()


def test_a_utf8_sender_is_sent_with_smtputf8(mx_utf8):
    m = fixed(EmailMessage("s", "plain ascii", "Jörg <jörg@example.test>",
                           ["ann@example.test"]))
    m.extra_headers["Message-ID"] = "<from-joerg@example.test>"
    refused, options, _sent = send(mx_utf8, m)
    assert refused == {} and options == ["SMTPUTF8", "BODY=8BITMIME"]
    raw = mx_utf8.wait_delivered("ann@example.test", containing=b"<from-joerg@")[-1]
    assert "Return-Path: <jörg@example.test>".encode() in raw
    assert parsed(raw)["From"].addresses[0].username == "jörg"


def test_without_smtputf8_the_error_names_the_address_and_nothing_is_sent(mx_ascii):
    m = fixed(EmailMessage("s", "b", "ann@example.test", ["Jörg <jörg@example.test>"]))
    with smtplib.SMTP(mx_ascii.host, mx_ascii.port, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("smtputf8")
        with pytest.raises(NeedsSMTPUTF8Error) as caught:
            envelope_address(m.to[0], "utf-8", utf8=client.has_extn("smtputf8"))
    assert "jörg@example.test" in str(caught.value)
    with pytest.raises(NeedsSMTPUTF8Error):
        serialize(m, utf8=False)
    # this session's own disconnect line (the fixture's readiness probe wrote one before)
    mx_ascii.wait_log("ehlo=1")
    mx_ascii.wait_idle()
    assert mx_ascii.queued() == [] and mx_ascii.delivered(JOERG) == []
    smtpd = "\n".join(mx_ascii.log_lines("smtpd"))
    assert "mail=" not in smtpd and "rcpt=" not in smtpd and "ehlo=1" in smtpd


def test_the_encoded_word_mailbox_is_another_mailbox_and_never_produced(mx_ascii):
    """What Django writes is a valid-looking, different address: Postfix says it does not
    exist. mailcore never writes it, on any path."""
    with smtplib.SMTP(mx_ascii.host, mx_ascii.port, timeout=10) as client:
        client.ehlo()
        client.mail("ann@example.test")
        code, reply = client.rcpt(ENCODED_JOERG)
        client.rset()
    assert code == 550 and b"User unknown" in reply
    m = fixed(EmailMessage("s", "b", "ann@example.test", [JOERG], cc=["Jörg <jörg@example.test>"]))
    for utf8 in (False, True):
        try:
            out = serialize(m, utf8=utf8).getvalue() + envelope_address(
                JOERG, "utf-8", utf8=utf8).encode()
        except NeedsSMTPUTF8Error:
            continue
        assert b"asO2cmc" not in out and b"=?utf-8?b?asO2" not in out
    assert not mx_ascii.maildir(ENCODED_JOERG).exists()


def test_an_idn_domain_stays_punycode_without_smtputf8(mx_ascii):
    m = fixed(EmailMessage("s", "plain", "ann@example.test", ["Ann <ann@bücher.example>"]))
    m.extra_headers["Message-ID"] = "<idn@example.test>"
    refused, options, sent = send(mx_ascii, m)
    assert refused == {} and options == []
    raw = mx_ascii.wait_delivered("ann@xn--bcher-kva.example", containing=b"<idn@")[-1]
    assert b"To: Ann <ann@xn--bcher-kva.example>" in raw
    assert raw.isascii() and sent.isascii()
    assert any("to=<ann@xn--bcher-kva.example>" in line and "status=sent" in line
               for line in mx_ascii.log_lines("virtual"))


def test_an_8bit_body_goes_with_body_8bitmime_and_arrives_as_sent(mx_ascii):
    m = fixed(EmailMultiAlternatives("Grüße", "Grüße, Jörg – €\n", "ann@example.test",
                                     ["ann@example.test"]))
    m.attach_alternative("<p>Grüße – €</p>", "text/html")
    m.extra_headers["Message-ID"] = "<eightbit@example.test>"
    refused, options, sent = send(mx_ascii, m)
    assert refused == {} and options == ["BODY=8BITMIME"]
    raw = mx_ascii.wait_delivered("ann@example.test", containing=b"<eightbit@")[-1]
    assert "Grüße, Jörg – €".encode() in raw and b"Content-Transfer-Encoding: 8bit" in raw
    assert sent.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n") in raw


def test_another_charset_is_left_to_the_email_package_which_honours_utf8_too():
    m = fixed(EmailMessage("s", "b", "ann@example.test", ["Jörg <jörg@example.test>"]))
    m.encoding = "iso-8859-1"
    assert mailcore.wire.stream_refusal(m) is not None
    raw = serialize(m, utf8=True).getvalue()
    assert "To: Jörg <jörg@example.test>\r\n".encode() in raw


# -- through mailcore's SMTP backend ---------------------------------------------------------

def test_the_backend_delivers_to_joerg_through_postfix_with_smtputf8(mx_utf8):
    from mailcore.backends.smtp import EmailBackend

    m = fixed(EmailMessage("Grüße", "Hallo Jörg", "Ann <ann@example.test>",
                           ["Jörg Müller <jörg@example.test>"]))
    m.extra_headers["Message-ID"] = "<backend-joerg@example.test>"
    with EmailBackend(host=mx_utf8.host, port=mx_utf8.port, timeout=10) as backend:
        assert backend.send_messages([m]) == 1
    raw = mx_utf8.wait_delivered(JOERG, containing=b"<backend-joerg@")[-1]
    assert "To: Jörg Müller <jörg@example.test>".encode() in raw
    assert parsed(raw)["To"].addresses[0].username == "jörg"
    assert ENCODED_JOERG not in mx_utf8.log()


def test_the_backend_refuses_before_mail_when_postfix_lacks_smtputf8(mx_ascii):
    from mailcore.backends.smtp import EmailBackend
    from mailcore.errors import SMTPUTF8RequiredError

    m = fixed(EmailMessage("s", "b", "ann@example.test", ["Jörg <jörg@example.test>"]))
    m.extra_headers["Message-ID"] = "<backend-refused@example.test>"
    before = len(mx_ascii.log_lines("smtpd"))
    with pytest.raises(SMTPUTF8RequiredError) as caught, EmailBackend(
            host=mx_ascii.host, port=mx_ascii.port, timeout=10) as backend:
        backend.send_messages([m])
    assert "jörg@example.test" in caught.value.address
    assert str(mx_ascii.port) in caught.value.server
    mx_ascii.wait_idle()
    assert mx_ascii.queued() == [] and mx_ascii.delivered(JOERG) == []
    deadline = time.monotonic() + 20  # (postlogd writes the disconnect line a little later)
    while not any("disconnect from" in line for line in mx_ascii.log_lines("smtpd")[before:]):
        assert time.monotonic() < deadline, mx_ascii.log()
        time.sleep(0.05)
    session = mx_ascii.log_lines("smtpd")[before:]
    assert not any("mail=" in line or "rcpt=" in line for line in session)
    assert "backend-refused" not in mx_ascii.log()


def test_console_and_file_backends_write_such_a_message_in_utf8(tmp_path):
    """No server decides there: the message is written as it goes to one with SMTPUTF8."""
    import io

    import mailcore
    from mailcore.message import message_needs_smtputf8

    msg = EmailMessage("Hallo", "Grüße\n", "ann@example.test", [f"Jörg <{JOERG}>"])
    assert message_needs_smtputf8(msg)
    assert not message_needs_smtputf8(EmailMessage("x", "y", "ann@bücher.example", ["b@x.org"]))
    stream = io.StringIO()
    assert mailcore.get_connection("console", stream=stream).send_messages([msg]) == 1
    assert f"To: Jörg <{JOERG}>" in stream.getvalue()
    assert ENCODED_JOERG not in stream.getvalue()
    mailcore.get_connection("file", file_path=str(tmp_path)).send_messages([msg])
    (written,) = tmp_path.iterdir()
    assert f"To: Jörg <{JOERG}>".encode() in written.read_bytes()
