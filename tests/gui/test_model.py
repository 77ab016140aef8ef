"""The model, without a QApplication: addresses, messages, drafts, profiles, keyring wrapper,
source preview, .eml import, Sent log, sending and the local inbox (real servers)."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import keyring.backends.fail
import pytest

import mailcore
from mailcore.message import FileContent
from mailcore.wire import serialize
from mailgui.model.addresses import check_address, check_addresses, split_addresses, valid_list
from mailgui.model.draft import AttachmentRef, Draft, DraftStore
from mailgui.model.eml import draft_from_eml
from mailgui.model.errors import describe_error
from mailgui.model.inbox import InboxServer, InboxStore, message_parts
from mailgui.model.message import build_message, draft_problems
from mailgui.model.paths import AppPaths
from mailgui.model.profiles import BACKENDS, DEFAULT_FROM, KINDS, Profile, ProfileStore
from mailgui.model.secrets import KeyringUnavailable, SecretStore
from mailgui.model.sending import DELIVERIES, Canceller, check_connection, send_draft
from mailgui.model.sentlog import SentEntry, SentLog
from mailgui.model.source import FOLD_MARK, preview
from tests.support.servers import TEST_PASSWORD, TEST_USER, SMTPServer


def test_model_imports_no_qt() -> None:
    code = (
        "import sys\n"
        "import mailgui.model.sending, mailgui.model.source, mailgui.model.inbox, "
        "mailgui.model.inbox_details, mailgui.model.inbox_server, "
        "mailgui.model.eml, mailgui.model.profiles, mailgui.model.secrets, "
        "mailgui.model.passwords, mailgui.model.send_outcome, mailgui.model.cli_profiles\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# -- addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason_part"),
    [
        ("bob", "no @"),
        ("bob@", "domain after @ is missing"),
        ("@example.com", "nothing before the @"),
        ("a@b@example.com", "more than one @"),
        ("Bob Smith bob@example.com", "space inside the address"),
        ("bob@example..com", "empty part"),
        ("<bob@example.com", "no matching >"),
        ('"Bob <bob@example.com>', "quote"),
        ("bob@example.com trailing", "space"),
    ],
)
def test_bad_address_has_a_reason(text: str, reason_part: str) -> None:
    reason = check_address(text)
    assert reason is not None and reason_part in reason


@pytest.mark.parametrize(
    "text",
    ["bob@example.com", "Bob <bob@example.com>", '"Smith, Bob" <bob@example.com>',
     "bob@localhost", "user@exämple.com", "Zoë <zoe@example.org>"],
)
def test_good_addresses(text: str) -> None:
    assert check_address(text) is None


def test_a_non_ascii_local_part_is_good_with_a_warning() -> None:
    """josé@example.com is a real mailbox (SMTPUTF8, RFC 6531): no error, but a note that it
    needs a server that offers SMTPUTF8."""
    from mailgui.model.addresses import SMTPUTF8_WARNING, smtputf8_warning

    assert check_address("josé@example.com") is None
    assert SMTPUTF8_WARNING in smtputf8_warning("bob@example.com, josé@example.com")
    assert smtputf8_warning("user@exämple.com") == ""  # an IDN domain alone needs nothing


def test_split_keeps_quoted_commas_and_reports_spans() -> None:
    text = '"Smith, Bob" <bob@example.com>,  carol ; dave@example.com'
    items = split_addresses(text)
    assert [i[0] for i in items] == ['"Smith, Bob" <bob@example.com>', "carol", "dave@example.com"]
    for value, start, end in items:
        assert text[start:end] == value
    checks = check_addresses(text)
    assert [c.ok for c in checks] == [True, False, True]
    with pytest.raises(ValueError, match="carol"):
        valid_list(text)


# -- building messages ------------------------------------------------------------------------


def _profile(**kw: object) -> Profile:
    return Profile("Test", "memory", from_email="Sender <sender@example.com>", **kw)


def test_build_message_uses_every_field(tmp_path: Path) -> None:
    big = tmp_path / "data.bin"
    big.write_bytes(os.urandom(1024 * 1024 + 1000))  # over mailcore's 1 MiB read limit
    note = tmp_path / "note.txt"
    note.write_text("hello\n")
    draft = Draft(to="Bob <bob@example.com>, carol@example.org", cc="cc@example.com",
                  bcc="hidden@example.com", reply_to="replies@example.com", subject="Hi",
                  body="Text body", html="<p>HTML body</p>", headers=[("X-Tag", "1")],
                  attachments=[AttachmentRef(str(big)), AttachmentRef(str(note))])
    msg = build_message(draft, _profile())
    assert msg.from_email == "Sender <sender@example.com>"
    assert msg.to == ["Bob <bob@example.com>", "carol@example.org"]
    assert msg.cc == ["cc@example.com"] and msg.bcc == ["hidden@example.com"]
    assert msg.reply_to == ["replies@example.com"]
    assert msg.alternatives[0].mimetype == "text/html"
    assert msg.extra_headers["X-Tag"] == "1"
    assert msg.extra_headers["Message-ID"] == draft.message_id
    assert isinstance(msg.attachments[0].content, FileContent)  # streamed, not read
    parsed = email.message_from_bytes(serialize(msg).getvalue(), policy=email.policy.default)
    assert parsed["Message-ID"] == draft.message_id
    assert "hidden@example.com" not in str(parsed)  # Bcc stays in the envelope


def test_from_defaults_to_profile_then_app_default() -> None:
    draft = Draft(to="bob@example.com")
    assert build_message(draft, _profile()).from_email == "Sender <sender@example.com>"
    assert build_message(draft, Profile("P", "dummy")).from_email == DEFAULT_FROM


def test_problems_name_the_bad_field() -> None:
    problems = draft_problems(Draft(to="bob@example.com, nope", headers=[("Bad Name", "x")]))
    fields = [p.field for p in problems]
    assert fields == ["to", "headers"]
    assert "nope" in problems[0].message and "no @" in problems[0].message
    assert draft_problems(Draft())[0].message.startswith("Add at least one recipient")
    with pytest.raises(ValueError, match="nope"):
        build_message(Draft(to="nope"))
    with pytest.raises(mailcore.BadHeaderError):
        build_message(Draft(to="a@example.com", headers=[("X-A", "line\nbreak")]))


def test_missing_attachment_raises_oserror_with_a_sentence(tmp_path: Path) -> None:
    draft = Draft(to="a@example.com", attachments=[AttachmentRef(str(tmp_path / "gone.pdf"))])
    with pytest.raises(FileNotFoundError) as info:
        build_message(draft)
    assert "gone.pdf" in describe_error(info.value).sentence


# -- drafts -----------------------------------------------------------------------------------


def test_draft_store_round_trip_and_generations(paths: AppPaths, tmp_path: Path) -> None:
    store = DraftStore(paths)
    assert store.load() is None
    draft = Draft(to="a@example.com", subject="S", body="B", html="<b>H</b>",
                  headers=[("X-A", "1")], attachments=[AttachmentRef(str(tmp_path / "f.bin"))])
    assert store.save(draft, generation=2)
    older = draft.copy()
    older.subject = "older"
    assert not store.save(older, generation=1)  # an older autosave never wins
    loaded = store.load()
    assert loaded is not None
    assert loaded.fingerprint() == draft.fingerprint()
    assert loaded.attachments[0].path == str(tmp_path / "f.bin")
    assert not list(store.path.parent.glob("*.tmp"))  # atomic: no leftovers
    store.path.write_text("{ not json")
    assert store.load() is None


# -- profiles and secrets ---------------------------------------------------------------------


def test_profile_store_crud_and_no_secret_in_file(paths: AppPaths) -> None:
    store = ProfileStore(paths)
    assert [p.kind for p in store.all()] == ["inbox", "console", "file", "memory", "dummy"]
    p = Profile("Work", "smtp", host="smtp.example.com", port=587, username="me")
    store.upsert(p)
    twin = store.duplicate(p.id)
    assert twin.id != p.id and twin.name == "Work (copy)"
    store.delete(p.id)
    again = ProfileStore(paths)
    assert [x.name for x in again.user_profiles()] == ["Work (copy)"]
    # a password put into the file by hand is ignored and never written back
    data = json.loads(paths.profiles_file.read_text())
    data["profiles"][0]["password"] = "hunter2"
    paths.profiles_file.write_text(json.dumps(data))
    store = ProfileStore(paths)
    store.save()
    assert "hunter2" not in paths.profiles_file.read_text()
    assert store.get("builtin-inbox").builtin


def test_fail_keyring_is_reported_not_used() -> None:
    store = SecretStore(service="mailgui-test", backend=keyring.backends.fail.Keyring())
    status = store.status()
    assert not status.usable
    assert "No secure system keyring" in status.sentence
    with pytest.raises(KeyringUnavailable):
        store.get("x")
    with pytest.raises(KeyringUnavailable):
        store.set("x", "secret")


def test_real_keyring_round_trip(secrets: SecretStore) -> None:
    secrets.set("profile-1", "s3cret")
    assert secrets.get("profile-1") == "s3cret"
    secrets.delete("profile-1")
    assert secrets.get("profile-1") is None


# -- source preview ---------------------------------------------------------------------------


def test_preview_folds_big_attachment_and_reads_only_what_it_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = tmp_path / "big.bin"
    blob.write_bytes(os.urandom(2_000_003))
    draft = Draft(to="a@example.com", subject="Big", body="see attachment",
                  attachments=[AttachmentRef(str(blob))])
    read: list[int] = []
    real_read_bytes = Path.read_bytes
    real_open = Path.open

    def counting_open(self: Path, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        f = real_open(self, *args, **kwargs)
        if self == blob:
            plain_read = f.read
            f.read = lambda n=-1: (data := plain_read(n), read.append(len(data)))[0]
        return f

    monkeypatch.setattr(Path, "open", counting_open)
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(
        AssertionError("the preview read a whole file")) if self == blob else real_read_bytes(self))
    result = preview(draft, None)
    # the preview read a few lines of the 2 MB file, never its middle
    assert 0 < sum(read) < 10_000
    monkeypatch.undo()
    full = serialize(build_message(draft)).getvalue().decode("ascii")
    assert result.folded_parts == 1
    assert result.size == len(full.encode())  # the size of the real message, exactly
    shown = [line for line in result.text.splitlines() if len(line) in (76, 48) or
             line.startswith(FOLD_MARK)]
    assert any(line.startswith(FOLD_MARK) for line in shown)
    for line in result.text.splitlines():
        if not line.startswith(FOLD_MARK):
            # every shown line is a real line of the message: Date and boundaries included
            assert line in full
    unfolded = preview(draft, None, fold=False)
    assert unfolded.folded_parts == 0 and len(unfolded.text) > 2_000_000


def test_preview_text_equals_serialize_for_small_message() -> None:
    draft = Draft(to="a@example.com", subject="Small", body="line one\n.dot line\n")
    text = preview(draft, None).text
    data = serialize(build_message(draft)).getvalue().decode()
    assert text.split("\n") == data.removesuffix("\r\n").split("\r\n")


def test_a_draft_always_gives_the_same_bytes_until_renewed(tmp_path: Path) -> None:
    att = tmp_path / "a.bin"
    att.write_bytes(os.urandom(5000))
    draft = Draft(to="a@example.com", subject="Pinned", body="text", html="<p>html</p>",
                  attachments=[AttachmentRef(str(att))])
    first = serialize(build_message(draft)).getvalue()
    assert serialize(build_message(draft.copy())).getvalue() == first
    assert f"Date: {draft.date}\r\n".encode() in first
    assert Draft.from_dict(draft.to_dict()).date == draft.date  # kept with the draft
    draft.renew()
    renewed = serialize(build_message(draft)).getvalue()
    assert draft.message_id.encode() in renewed and renewed != first
    # a Date typed into the headers table wins over the pinned one
    draft.headers = [("Date", "Mon, 01 Jan 2024 00:00:00 +0000")]
    assert b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n" in serialize(
        build_message(draft)).getvalue()


# -- .eml -------------------------------------------------------------------------------------


def test_eml_round_trip(tmp_path: Path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4 fake" + bytes(range(256)))
    draft = Draft(to="Bob <bob@example.com>", cc="c@example.com", subject="Ünïcode subject",
                  body="Body text\n", html="<p>Body</p>", headers=[("X-Tracking", "42")],
                  attachments=[AttachmentRef(str(pdf))])
    data = serialize(build_message(draft)).getvalue()
    opened = draft_from_eml(data, tmp_path / "att")
    assert opened.subject == "Ünïcode subject"
    assert opened.to == "Bob <bob@example.com>" and opened.cc == "c@example.com"
    assert opened.body == "Body text\n" and opened.html.strip() == "<p>Body</p>"
    assert ("X-Tracking", "42") in opened.headers
    assert Path(opened.attachments[0].path).read_bytes() == pdf.read_bytes()
    assert opened.attachments[0].mimetype == "application/pdf"
    assert opened.id != draft.id


# -- Sent log ---------------------------------------------------------------------------------


def test_sent_log_survives_a_damaged_line(tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.jsonl")
    log.append(SentEntry("P", "one", ["a@example.com"], "<1@x>", "sent"))
    with log.path.open("a") as f:
        f.write("{broken\n")
    log.append(SentEntry("P", "two", ["b@example.com"], "<2@x>", "failed", detail="550"))
    assert [e.subject for e in log.entries()] == ["one", "two"]


# -- sending (real servers) -------------------------------------------------------------------


def _smtp(server: SMTPServer, **kw: object) -> Profile:
    fields = {"host": "127.0.0.1", "port": server.port, "security": "none", "timeout": 10,
              "from_email": "Tester <tester@example.com>"}
    fields.update(kw)
    return Profile("Server", "smtp", **fields)  # type: ignore[arg-type]


def test_send_plain_records_transcript_and_log(smtp_server: SMTPServer, tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.jsonl")
    draft = Draft(to="bob@example.com", subject="Plain", body="hello")
    events: list[tuple[str, str]] = []
    outcome = send_draft(draft, _smtp(smtp_server), transcript=lambda e, t: events.append((e, t)),
                         sent_log=log)
    assert outcome.ok, outcome.sentence
    received = smtp_server.wait_for(1)[0]
    assert received.message()["Message-ID"] == draft.message_id == outcome.message_id
    # SMTP ends DATA with CRLF "." CRLF, so a body without a final newline gains a CRLF
    assert outcome.size in (len(received.data), len(received.data) - 2)
    assert any(e == "client" and t.upper().startswith("MAIL FROM") for e, t in events)
    assert log.entries()[0].result == "sent"
    assert log.entries()[0].transcript


def test_send_starttls_auth_with_keyring_and_ca(starttls_server: SMTPServer, certs,  # noqa: ANN001
                                                secrets: SecretStore) -> None:
    profile = _smtp(starttls_server, security="starttls", username=TEST_USER,
                    ca_file=certs.ca_file)
    secrets.set(profile.id, TEST_PASSWORD)
    outcome = send_draft(Draft(to="bob@example.com", subject="TLS"), profile, secrets=secrets)
    assert outcome.ok, outcome.sentence
    message = starttls_server.wait_for(1)[0]
    assert message.session_tls and message.auth_login == TEST_USER
    assert not any(TEST_PASSWORD in line for line in outcome.transcript)
    assert "* authenticated as alice (PLAIN)" in outcome.transcript
    checked = check_connection(profile, secrets=secrets)
    assert checked.ok and "authenticated as alice (PLAIN)" in checked.sentence
    assert not any(TEST_PASSWORD in line for line in checked.transcript)


@pytest.mark.parametrize(
    ("case", "kind", "words"),
    [
        ("wrong-password", "auth", "refused the user name or password"),
        ("untrusted", "tls-untrusted", "not trusted"),
        ("refused-port", "unreachable", "connection refused"),
        ("no-password", "", "No password is saved"),
    ],
)
def test_send_failures_become_sentences(case: str, kind: str, words: str, starttls_server,  # noqa: ANN001
                                        certs, refused_port: int, secrets: SecretStore) -> None:
    profile = _smtp(starttls_server, security="starttls", username=TEST_USER,
                    ca_file=certs.ca_file)
    password: str | None = "wrong"
    if case == "untrusted":
        profile.ca_file = certs.untrusted.ca_file
        password = TEST_PASSWORD
    elif case == "refused-port":
        profile.port = refused_port
    elif case == "no-password":
        password = None
    outcome = send_draft(Draft(to="bob@example.com"), profile, password=password,
                         secrets=secrets)
    assert not outcome.ok
    assert words in outcome.sentence
    if kind:
        assert outcome.error is not None and outcome.error.kind == kind
    if case == "wrong-password":
        assert outcome.reply.startswith("535")
    if case == "no-password":
        assert outcome.password_needed


def test_partly_refused_recipients_are_reported(tmp_path: Path) -> None:
    with SMTPServer("plain", refuse_rcpt={"bad@example.com": "550 5.1.1 No such user"}) as server:
        outcome = send_draft(Draft(to="good@example.com, bad@example.com"), _smtp(server))
        assert outcome.ok
        assert outcome.refused == {"bad@example.com": "550 5.1.1 No such user"}
        assert server.wait_for(1)[0].rcpt_tos == ["good@example.com"]
        all_bad = send_draft(Draft(to="bad@example.com"), _smtp(server))
        assert not all_bad.ok and all_bad.error.kind == "refused-recipients"
        assert "550" in all_bad.reply


def test_timeout_is_a_sentence(silent_server) -> None:  # noqa: ANN001
    profile = Profile("Silent", "smtp", host="127.0.0.1", port=silent_server.port,
                      security="none", timeout=1, from_email="t@example.com")
    outcome = send_draft(Draft(to="a@example.com"), profile)
    assert outcome.error.kind == "timeout"
    assert "did not answer within 1 seconds" in outcome.sentence


def test_cancel_wakes_a_blocked_send(silent_server) -> None:  # noqa: ANN001
    profile = Profile("Silent", "smtp", host="127.0.0.1", port=silent_server.port,
                      security="none", timeout=60, from_email="t@example.com")
    canceller = Canceller()
    result = {}
    connected = threading.Event()

    def note(event: str, text: str) -> None:
        if event == "connect":
            connected.set()

    thread = threading.Thread(target=lambda: result.update(
        outcome=send_draft(Draft(to="a@example.com"), profile, canceller=canceller,
                           transcript=note)))
    thread.start()
    assert connected.wait(10)
    canceller.cancel()
    thread.join(30)  # liveness bound only; the profile timeout is 60 s
    assert not thread.is_alive()
    assert result["outcome"].cancelled
    assert "cancelled" in result["outcome"].sentence


def test_preview_is_byte_for_byte_what_is_sent(smtp_server: SMTPServer, tmp_path: Path) -> None:
    att = tmp_path / "data.bin"
    att.write_bytes(os.urandom(400_000))  # big enough to be folded in the (folded) preview
    draft = Draft(to="bob@example.com", subject="Exact", body="one\n.two\n", html="<b>x</b>",
                  attachments=[AttachmentRef(str(att))])
    shown = preview(draft, _smtp(smtp_server), fold=False)
    outcome = send_draft(draft, _smtp(smtp_server))
    assert outcome.ok, outcome.sentence
    received = smtp_server.wait_for(1)[0].data
    assert shown.text.replace("\n", "\r\n").encode() + b"\r\n" == received
    assert shown.size == outcome.size == len(received)
    assert outcome.date == draft.date and any(draft.date in line for line in outcome.transcript)


def test_send_progress_counts_the_whole_message(smtp_server: SMTPServer, tmp_path: Path) -> None:
    att = tmp_path / "data.bin"
    att.write_bytes(os.urandom(2_000_000))
    phases: list[tuple[str, int, int]] = []
    outcome = send_draft(Draft(to="bob@example.com", attachments=[AttachmentRef(str(att))]),
                         _smtp(smtp_server), progress=lambda *a: phases.append(a))
    assert outcome.ok, outcome.sentence
    sending = [(d, t) for ph, d, t in phases if ph == "sending"]
    assert sending[0] == (0, outcome.size) and sending[-1] == (outcome.size, outcome.size)
    assert [d for d, _ in sending] == sorted(d for d, _ in sending)
    assert [ph for ph, _, _ in phases][:2] == ["building", "connecting"]
    assert phases[-1][0] == "done"


def test_cancel_during_a_blocking_tcp_connect() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    host, port = listener.getsockname()
    filler = socket.create_connection((host, port), timeout=5)  # the accept queue is full now
    try:
        profile = Profile("Far away", "smtp", host=host, port=port, security="none", timeout=60,
                          from_email="t@example.com")
        canceller = Canceller()
        result = {}
        connecting = threading.Event()

        def note(event: str, text: str) -> None:
            if event == "connect":
                connecting.set()

        thread = threading.Thread(target=lambda: result.update(
            outcome=send_draft(Draft(to="a@example.com"), profile, canceller=canceller,
                               transcript=note)))
        thread.start()
        assert connecting.wait(10)
        threading.Timer(0.2, canceller.cancel).start()
        thread.join(30)  # liveness bound only; the profile timeout is 60 s
        assert not thread.is_alive()
        assert result["outcome"].cancelled
    finally:
        filler.close()
        listener.close()


def test_cancel_before_the_backend_exists_sends_nothing(smtp_server: SMTPServer) -> None:
    canceller = Canceller()
    canceller.cancel()
    outcome = send_draft(Draft(to="a@example.com"), _smtp(smtp_server), canceller=canceller)
    assert outcome.cancelled and smtp_server.connections == 0


def test_test_backends(tmp_path: Path) -> None:
    mailcore.outbox.clear()
    draft = Draft(to="a@example.com", subject="Backends")
    printed: list[str] = []
    assert send_draft(draft, Profile("C", "console"), console=printed.append).ok
    assert "Subject: Backends" in "".join(printed)
    folder = tmp_path / "files"
    outcome = send_draft(draft, Profile("F", "file", file_path=str(folder)))
    assert outcome.ok and Path(outcome.written_file).parent == folder
    assert "Subject: Backends" in Path(outcome.written_file).read_text()
    outcome = send_draft(draft, Profile("M", "memory"))
    assert outcome.captured is mailcore.outbox[-1]
    assert send_draft(draft, Profile("D", "dummy")).ok


def test_each_kind_of_profile_maps_to_one_backend_in_one_place() -> None:
    from mailcore.cli import BACKENDS as COMMAND_BACKENDS

    assert set(BACKENDS) == set(KINDS)
    assert {Profile("P", kind).backend_name for kind in KINDS} == set(DELIVERIES)
    assert set(DELIVERIES) <= set(COMMAND_BACKENDS)  # names `mailcore --backend` takes too
    assert [k for k in KINDS if Profile("P", k).is_smtp] == ["smtp", "inbox"]


# -- local inbox ------------------------------------------------------------------------------


def test_inbox_server_receives_stores_and_stops(tmp_path: Path) -> None:
    store = InboxStore(tmp_path / "inbox")
    seen = []
    server = InboxServer(store, on_message=seen.append)
    port = server.start()
    try:
        profile = Profile("Inbox", "inbox", host="127.0.0.1", port=port, security="none")
        draft = Draft(to="x@example.com", subject="To the inbox", body="b", html="<i>h</i>")
        outcome = send_draft(draft, profile)
        assert outcome.ok and "stored as" in outcome.reply
        assert seen and seen[0].subject == "To the inbox"
        assert [m.id for m in InboxStore(tmp_path / "inbox").list()] == [seen[0].id]
        types = [p.content_type for p in message_parts(store.read(seen[0].id))]
        assert types == ["multipart/alternative", "text/plain", "text/html"]
    finally:
        server.stop()
    assert not server.running
    import socket
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def test_implicit_tls_with_client_certificate(certs) -> None:  # noqa: ANN001
    auth = {TEST_USER: TEST_PASSWORD}
    with SMTPServer("tls", certs=certs, auth=auth, require_client_cert=True) as server:
        profile = _smtp(server, security="tls", username=TEST_USER, ca_file=certs.ca_file,
                        client_cert=certs.client_cert_file, client_key=certs.client_key_file)
        outcome = send_draft(Draft(to="bob@example.com"), profile, password=TEST_PASSWORD)
        assert outcome.ok, outcome.sentence
        message = server.wait_for(1)[0]
        assert message.session_tls and message.auth_login == TEST_USER
        assert message.peer_cert is not None  # the server saw our client certificate
        no_cert = _smtp(server, security="tls", username=TEST_USER, ca_file=certs.ca_file)
        failed = send_draft(Draft(to="bob@example.com"), no_cert, password=TEST_PASSWORD)
        assert not failed.ok and failed.error.kind in ("tls-client-cert", "disconnected")
        assert "client certificate" in failed.sentence


def test_unusable_tls_files_are_named_before_connecting(certs, tmp_path: Path,  # noqa: ANN001
                                                        smtp_server: SMTPServer) -> None:
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate")
    cases = [
        ({"ca_file": str(tmp_path / "gone.pem")}, "The CA file", "does not exist"),
        ({"ca_file": str(not_pem)}, "holds no usable PEM certificate", "notes.txt"),
        ({"client_cert": certs.client_cert_file, "client_key": certs.ca_file},
         "can't be used", certs.client_cert_file),
        ({"client_key": certs.client_key_file}, "no client certificate", ""),
    ]
    for fields, part, name in cases:
        profile = _smtp(smtp_server, security="starttls", **fields)
        outcome = send_draft(Draft(to="bob@example.com"), profile)
        assert outcome.error.kind == "tls-files", (fields, outcome.sentence)
        assert part in outcome.sentence and name in outcome.sentence
        assert not check_connection(profile).ok
    assert smtp_server.handler.connections == 0  # found before anything connected


def test_plain_smtp_to_the_implicit_tls_port_gets_a_hint(silent_server) -> None:  # noqa: ANN001
    """Plain SMTP to a port that waits for a TLS hello: both sides wait, and the timeout alone
    would not say why. (The silent server stands in for port 465.)"""
    from mailgui.model.errors import describe_error

    profile = Profile("Wrong port", "smtp", host="127.0.0.1", port=silent_server.port,
                      security="starttls", timeout=0.5, from_email="t@example.com")
    outcome = send_draft(Draft(to="bob@example.com"), profile)
    assert outcome.error.kind == "timeout" and "Port 465" not in outcome.sentence
    profile.port = 465
    info = describe_error(TimeoutError("timed out"), profile)
    assert "Port 465 speaks implicit TLS" in info.sentence


def test_address_reasons_are_plain_words() -> None:
    reason = check_address("a(b@example.com")
    assert reason is not None and "dot-atom" not in reason and "local-part" not in reason


def test_starttls_not_offered_is_explained(smtp_server: SMTPServer) -> None:
    outcome = send_draft(Draft(to="a@example.com"), _smtp(smtp_server, security="starttls"))
    assert outcome.error.kind == "unsupported"
    assert "does not offer STARTTLS" in outcome.sentence
    assert smtp_server.messages == []  # nothing was sent in the clear instead


# -- the sender, extra headers, unusual attachments ---------------------------------------------


def test_a_real_server_needs_a_real_sender() -> None:
    """No placeholder sender on a real SMTP server: the profile's From, else its login when
    that is an address, else From must be filled. The test targets keep the placeholder."""
    from mailgui.model.message import default_from, from_problem

    bare = Profile("Relay", "smtp", host="mail.example.com", username="relay-user")
    draft = Draft(to="bob@example.com")
    assert default_from(bare) == ""
    problems = draft_problems(draft, bare)
    assert problems[0].field == "from" and "no default From" in problems[0].message
    with pytest.raises(ValueError, match="no default From"):
        build_message(draft, bare)
    login = Profile("Mailbox", "smtp", host="mail.example.com", username="ann@example.com")
    assert build_message(draft, login).from_email == "ann@example.com"
    assert default_from(Profile("Inbox", "inbox")) == DEFAULT_FROM
    two = Draft(from_email="a@example.com, b@example.com", to="bob@example.com")
    assert "one sender address only" in from_problem(two, login)


def test_structure_headers_and_unfoldable_values_are_refused() -> None:
    from mailgui.model.message import check_header

    assert "written by mailgui" in check_header("Content-Type", "text/html")
    assert "written by mailgui" in check_header("MIME-Version", "1.0")
    assert "longer than 900" in check_header("X-Token", "a" * 1200)
    assert check_header("X-Long", " ".join(["word"] * 400)) is None  # folds at the spaces
    draft = Draft(to="bob@example.com", headers=[("Content-Type", "text/html")])
    assert [p.field for p in draft_problems(draft, Profile("M", "memory"))] == ["headers"]


def test_a_pipe_is_not_taken_as_an_attachment(tmp_path: Path) -> None:
    from mailgui.jobs import attachment_info

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (info,) = attachment_info([str(fifo)])  # returns at once: nothing opened the pipe
    assert info.problem == "is not a regular file (a pipe, device or socket)"


def test_a_broken_profiles_file_is_kept_and_reported(tmp_path: Path) -> None:
    paths = AppPaths.under(tmp_path)
    store = ProfileStore(paths)
    store.upsert(Profile("Work", "smtp", host="mail.example.com"))
    text = paths.profiles_file.read_text().replace('"profiles": [', '"profiles": [,')
    paths.profiles_file.write_text(text)
    broken = ProfileStore(paths)
    assert "not valid JSON" in broken.problem and "a copy is kept as" in broken.problem
    (copy,) = paths.profiles_file.parent.glob("profiles.json.broken-*")
    assert copy.read_text() == text
    broken.upsert(Profile("New", "smtp", host="new.example.com"))  # the next save
    assert copy.read_text() == text  # the person's profiles are still there to recover


def test_an_eml_with_nested_parts_and_inline_images_keeps_every_part(tmp_path: Path) -> None:
    """As Thunderbird writes it: mixed( related( alternative(text, html), image ), mixed(pdf) ),
    signed by the server it came through."""
    from email.message import EmailMessage as Std

    outer = Std()
    outer["From"] = "Ann <ann@example.com>"
    outer["To"] = "bob@example.com"
    outer["Subject"] = "Report"
    outer["DKIM-Signature"] = "v=1; a=rsa-sha256; d=example.com; b=abc"
    outer["User-Agent"] = "Mozilla Thunderbird"
    outer["X-Ticket"] = "T-42"
    outer.set_content("the text")
    outer.add_alternative('<p>the html <img src="cid:logo@x"></p>', subtype="html")
    outer.get_payload()[1].add_related(b"\x89PNG fake", maintype="image", subtype="png",
                                       cid="<logo@x>", filename="logo.png")
    outer.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf",
                         filename="report.pdf")
    notes: list[str] = []
    draft = draft_from_eml(outer.as_bytes(), tmp_path / "att", notes=notes)
    assert draft.body.strip() == "the text" and "cid:logo@x" in draft.html
    names = sorted(Path(a.path).name for a in draft.attachments)
    assert names == ["logo.png", "report.pdf"]
    assert (tmp_path / "att" / "report.pdf").read_bytes() == b"%PDF-1.4 fake"
    assert [n for n, _v in draft.headers] == ["X-Ticket"]
    assert len(notes) == 1 and notes[0].startswith("1 inline image became attachment ")


def test_a_file_that_is_not_a_message_is_not_opened(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an email message"):
        draft_from_eml(bytes(range(256)) * 4, tmp_path)
    with pytest.raises(ValueError, match="not an email message"):
        draft_from_eml(b"just some notes\nwithout headers\n", tmp_path)


def test_a_send_that_fails_before_the_message_is_built_logs_its_recipients(
        tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.jsonl")
    draft = Draft(to="Ann <ann@example.com>, bob@example.com", bcc="hidden@example.com",
                  attachments=[AttachmentRef(str(tmp_path / "gone.pdf"))])
    outcome = send_draft(draft, Profile("M", "memory"), sent_log=log)
    assert not outcome.ok and "gone.pdf" in outcome.sentence
    (entry,) = log.entries()
    assert entry.recipients == ["Ann <ann@example.com>", "bob@example.com", "hidden@example.com"]
    assert entry.result == "failed"


def test_the_inbox_summary_names_the_people_attachments_and_blocked_images() -> None:
    from mailgui.controllers.inbox import summary_html
    from mailgui.model.inbox_details import MessageDetails, MessagePart

    details = MessageDetails(
        "m1", [("From", "Ann <ann@example.com>"), ("To", "bob@example.com"),
               ("Subject", "Q3 <report>"), ("Date", "Mon, 30 Nov 2026 12:00:00 -0000")],
        [MessagePart(0, "multipart/mixed", "", 0, ""),
         MessagePart(1, "text/plain", "", 10, "", "utf-8"),
         MessagePart(1, "application/pdf", "q3.pdf", 2048, "attachment")],
        "", "text", "")
    text = summary_html(details, blocked_images=2)
    assert "<b>From:</b> Ann &lt;ann@example.com&gt;" in text
    assert "Q3 &lt;report&gt;" in text  # escaped, never rendered as markup
    assert "<b>Attachments:</b> q3.pdf (2.0 KB)" in text
    assert "2 remote images not loaded" in text
