"""Console, file, locmem and dummy backends, custom backends, get_connection."""

from __future__ import annotations

import email
import io
import os
import threading

import pytest

import mailcore
from mailcore import EmailMessage, EmailMultiAlternatives, get_connection, send_mail, send_mass_mail
from mailcore.backends.base import BaseEmailBackend
from mailcore.conf import ImproperlyConfigured, settings


def msg(subject="Subject", to=("to@example.com",)):
    return EmailMessage(subject, "Content\n", "from@example.com", list(to))


# -- get_connection ------------------------------------------------------------


@pytest.mark.parametrize(
    "name,module",
    [
        ("mailcore.backends.console.EmailBackend", "console"),
        ("django.core.mail.backends.filebased.EmailBackend", "filebased"),
        ("locmem", "locmem"),
        ("memory", "locmem"),
        ("file", "filebased"),
        ("dummy", "dummy"),
        ("smtp", "smtp"),
    ],
)
def test_get_connection_names(tmp_path, name, module):
    conn = (
        get_connection(name, file_path=tmp_path) if module == "filebased" else get_connection(name)
    )
    assert type(conn).__module__ == f"mailcore.backends.{module}"


def test_get_connection_passes_arguments_and_fail_silently():
    conn = get_connection("smtp", fail_silently=True, host="mail.example.com", port=2525)
    assert (conn.host, conn.port, conn.fail_silently) == ("mail.example.com", 2525, True)


def test_get_connection_unknown_backend():
    with pytest.raises(ImportError):
        get_connection("mailcore.backends.nope.EmailBackend")


class RecordingBackend(BaseEmailBackend):
    """A custom backend, as the page describes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent = []
        self.opened = self.closed = 0

    def open(self):
        self.opened += 1
        return True

    def close(self):
        self.closed += 1

    def send_messages(self, email_messages):
        self.sent.extend(email_messages)
        return len(email_messages)


def test_custom_backend_by_dotted_path():
    with settings.override(EMAIL_BACKEND=f"{__name__}.RecordingBackend"):
        conn = get_connection()
        assert isinstance(conn, RecordingBackend)
        assert send_mail("s", "b", "f@example.com", ["t@example.com"], connection=conn) == 1
        assert conn.sent[0].subject == "s"
        with conn:
            pass
        assert (conn.opened, conn.closed) == (1, 1)


# -- console -------------------------------------------------------------------


def test_console_writes_message_and_separator():
    stream = io.StringIO()
    conn = get_connection("console", stream=stream)
    assert conn.send_messages([msg("Première"), msg("Second")]) == 2
    out = stream.getvalue()
    assert out.count("-" * 79 + "\n") == 2
    first = out.split("-" * 79 + "\n")[0]
    parsed = email.message_from_string(first)
    assert (
        str(email.header.make_header(email.header.decode_header(parsed["Subject"]))) == "Première"
    )
    assert "\r" not in out


def test_console_defaults_to_stdout(capsys):
    with settings.override(EMAIL_BACKEND="mailcore.backends.console.EmailBackend"):
        assert send_mail("Hello stdout", "body", "f@example.com", ["t@example.com"]) == 1
    assert "Subject: Hello stdout" in capsys.readouterr().out


def test_console_streams_attachment_file(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024))
    m = msg()
    m.attach_file(path)
    stream = io.StringIO()
    get_connection("console", stream=stream).send_messages([m])
    parsed = email.message_from_string(stream.getvalue().split("-" * 79)[0])
    (attachment,) = [p for p in parsed.walk() if p.get_filename() == "blob.bin"]
    assert attachment.get_payload(decode=True) == path.read_bytes()


def test_console_empty_list_returns_like_django():
    assert get_connection("console", stream=io.StringIO()).send_messages([]) is None


# -- file ----------------------------------------------------------------------


def test_file_backend_one_file_per_session(tmp_path):
    target = tmp_path / "created" / "on" / "demand"
    conn = get_connection("file", file_path=target)
    assert target.is_dir()
    conn.send_messages([msg("one")])
    conn.send_messages([msg("two")])  # each call is its own session...
    assert len(list(target.iterdir())) == 1  # ...but the file name is kept per backend object
    other = get_connection("file", file_path=target)
    with other:
        other.send_messages([msg("three")])
        other.send_messages([msg("four")])
    files = sorted(target.iterdir())
    assert len(files) == 2
    contents = b"".join(f.read_bytes() for f in files)
    for subject in (b"one", b"two", b"three", b"four"):
        assert b"Subject: " + subject in contents
    assert contents.count(b"-" * 79) == 4


def test_file_backend_uses_setting(tmp_path):
    with settings.override(
        EMAIL_BACKEND="mailcore.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(tmp_path)
    ):
        assert send_mail("via setting", "b", "f@example.com", ["t@example.com"]) == 1
    (written,) = tmp_path.iterdir()
    assert b"Subject: via setting" in written.read_bytes()


def test_file_backend_bytes_match_message(tmp_path):
    m = EmailMultiAlternatives("Grüße", "body ü\n", "f@example.com", ["t@example.com"])
    m.attach_alternative("<b>hi</b>", "text/html")
    m.attach("a.bin", b"\x00" * 1000, "application/octet-stream")
    get_connection("file", file_path=tmp_path).send_messages([m])
    (written,) = tmp_path.iterdir()
    data = written.read_bytes()
    assert data.endswith(b"\n" + b"-" * 79 + b"\n")
    parsed = email.message_from_bytes(data[: -(79 + 2)])
    assert [p.get_content_type() for p in parsed.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/octet-stream",
    ]
    assert b"\r\n" not in data


def test_file_backend_errors_are_clear(tmp_path):
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    with pytest.raises(ImproperlyConfigured, match="not a directory"):
        get_connection("file", file_path=not_a_dir)
    with pytest.raises(ImproperlyConfigured, match="EMAIL_FILE_PATH"):
        get_connection("file")


def test_file_backend_streams_large_attachment(tmp_path):
    """The written bytes decode to the very file that was attached."""
    import hashlib

    source = tmp_path / "big.bin"
    with source.open("wb") as f:
        for _ in range(12):
            f.write(os.urandom(1024 * 1024 - 7))
    m = msg()
    m.attach_file(source)
    out = tmp_path / "out"
    get_connection("file", file_path=out).send_messages([m])
    (written,) = out.iterdir()
    parsed = email.message_from_bytes(written.read_bytes())
    (part,) = [p for p in parsed.walk() if p.get_filename() == "big.bin"]
    decoded = part.get_payload(decode=True)
    assert hashlib.sha256(decoded).digest() == hashlib.sha256(source.read_bytes()).digest()


# -- locmem / dummy --------------------------------------------------------------


def test_locmem_outbox_keeps_copies():
    conn = get_connection("locmem")
    m = msg("original")
    assert conn.send_messages([m]) == 1
    m.subject = "changed after sending"
    assert mailcore.outbox[0].subject == "original"
    assert mailcore.outbox[0] is not m


def test_locmem_outbox_created_when_missing():
    del mailcore.outbox
    get_connection("locmem")
    assert mailcore.outbox == []


def test_locmem_validates_headers():
    conn = get_connection("locmem")
    with pytest.raises(mailcore.BadHeaderError):
        conn.send_messages([msg("bad\nsubject")])
    assert mailcore.outbox == []


def test_locmem_is_thread_safe_enough():
    conn = get_connection("locmem")
    threads = [
        threading.Thread(target=conn.send_messages, args=([msg(str(i))],)) for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(m.subject for m in mailcore.outbox) == sorted(str(i) for i in range(20))


def test_dummy_counts_and_does_nothing():
    assert get_connection("dummy").send_messages([msg(), msg()]) == 2
    assert mailcore.outbox == []


# -- the shortcuts -------------------------------------------------------------


@settings.override(EMAIL_BACKEND="mailcore.backends.locmem.EmailBackend")
def test_send_mail_with_html_message():
    assert send_mail("s", "plain", None, ["t@example.com"], html_message="<p>html</p>") == 1
    (sent,) = mailcore.outbox
    assert sent.from_email == "webmaster@localhost"
    assert sent.alternatives == [("<p>html</p>", "text/html")]


@settings.override(EMAIL_BACKEND="mailcore.backends.locmem.EmailBackend")
def test_send_mass_mail_returns_count():
    data = [
        ("s1", "b", "f@example.com", ["a@example.com"]),
        ("s2", "b", "f@example.com", ["b@example.com"]),
    ]
    assert send_mass_mail(data) == 2
    assert [m.to for m in mailcore.outbox] == [["a@example.com"], ["b@example.com"]]


@settings.override(
    EMAIL_BACKEND="mailcore.backends.locmem.EmailBackend",
    ADMINS=[("Ann", "ann@example.com"), ("Bob", "bob@example.com")],
    MANAGERS=[("Cy", "cy@example.com")],
    SERVER_EMAIL="server@example.com",
    EMAIL_SUBJECT_PREFIX="[site] ",
)
def test_mail_admins_and_managers():
    mailcore.mail_admins("Broken", "trace", html_message="<pre>trace</pre>")
    mailcore.mail_managers("Hello", "news")
    admins, managers = mailcore.outbox
    assert (admins.subject, admins.from_email, admins.to) == (
        "[site] Broken",
        "server@example.com",
        ["ann@example.com", "bob@example.com"],
    )
    assert admins.alternatives == [("<pre>trace</pre>", "text/html")]
    assert (managers.subject, managers.to) == ("[site] Hello", ["cy@example.com"])


@settings.override(EMAIL_BACKEND="mailcore.backends.locmem.EmailBackend")
def test_mail_admins_without_admins_sends_nothing():
    assert mailcore.mail_admins("s", "b") is None
    assert mailcore.outbox == []


@settings.override(
    EMAIL_BACKEND="mailcore.backends.locmem.EmailBackend", ADMINS=["ann@example.com"]
)
def test_admins_must_be_pairs():
    with pytest.raises(ValueError, match="2-tuples"):
        mailcore.mail_admins("s", "b")
