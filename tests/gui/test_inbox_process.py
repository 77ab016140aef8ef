"""The local test inbox as a child process: its SMTP server (real aiosmtpd on 127.0.0.1), its
line protocol, its lifetime (stop, a killed parent), the viewer's precomputed details and the
streamed "Save part"."""

from __future__ import annotations

import email
import email.errors
import email.feedparser
import email.parser
import email.policy
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

import mailcore
from mailcore.wire import serialize
from mailgui.controllers import inbox as inbox_controller
from mailgui.controllers.inbox import read_details
from mailgui.model.draft import Draft
from mailgui.model.inbox import (
    InboxServer,
    InboxServerError,
    InboxStore,
    server_command,
)
from mailgui.model.inbox_details import (
    TEXT_CAP,
    Skeleton,
    compute_details,
    header_defects,
    message_parts,
    part_payload,
    write_part,
)
from mailgui.model.profiles import Profile
from mailgui.model.sending import send_draft
from mailgui.views.common import human_size
from tests.gui.conftest import tree_items
from tests.support.gui import fill, preview_text, send

ROOT = Path(__file__).parents[2]


# -- helpers -----------------------------------------------------------------------------------


def _gone(pid: int) -> bool:
    """True when process ``pid`` has exited (a zombie nobody reaps counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _children() -> list[int]:
    """Our live child processes, from /proc."""
    me = str(os.getpid())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[InboxServer, list]]:
    seen: list = []
    srv = InboxServer(InboxStore(tmp_path / "inbox"), on_message=seen.append)
    srv.start()
    yield srv, seen
    srv.stop()


def _profile(port: int) -> Profile:
    return Profile("Inbox", "inbox", host="127.0.0.1", port=port, security="none")


# -- the process -------------------------------------------------------------------------------


def test_server_is_a_child_process_and_stop_leaves_none(tmp_path: Path) -> None:
    before = set(_children())
    srv = InboxServer(InboxStore(tmp_path / "inbox"))
    port = srv.start()
    pid = srv.pid
    assert pid is not None and pid != os.getpid()
    assert srv.running and srv.port == port
    assert set(_children()) - before == {pid}
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"mailgui.model.inbox_server" in cmdline
    srv.stop()
    assert not srv.running and srv.port == 0
    with pytest.raises(ChildProcessError):  # already reaped: no zombie left behind
        os.waitpid(pid, os.WNOHANG)
    assert _gone(pid)
    assert set(_children()) == before
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    srv.stop()  # idempotent


def test_the_server_runs_below_the_app_s_cpu_priority_in_the_app_s_session(server) -> None:  # noqa: ANN001
    """While it takes in a big message it uses a core: the GUI thread, when it wakes for a
    frame, comes first (INBOX_NICE). It stays in the app's session, so the kernel's autogroup
    weighs that nice against the app's own threads, not against other programs."""
    from mailgui.model.inbox import INBOX_NICE

    srv, _seen = server
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, srv.pid) == min(19, mine + INBOX_NICE) > mine
    assert os.getsid(srv.pid) == os.getsid(0)


def test_message_sent_by_mailcore_is_stored_reported_and_acknowledged(server) -> None:  # noqa: ANN001
    srv, seen = server
    draft = Draft(to="x@example.com", subject="Through the process", body="plain",
                  html="<p>rich</p>")
    outcome = send_draft(draft, _profile(srv.port))
    assert outcome.ok, outcome.sentence
    # the reply waits for the app's acknowledgement: the app knew before the client did
    assert [m.subject for m in seen] == ["Through the process"]
    msg_id = seen[0].id
    assert f"250 2.0.0 Ok: stored as {msg_id}" in outcome.reply
    store = srv.store
    assert [m.id for m in store.list()] == [msg_id]  # details.json is not a message
    # the viewer's details are worked out once the server is idle, and the journal of the
    # group commit is emptied then: the folder holds the message's files only (its checks
    # come after its details)
    def files() -> list[str]:
        return sorted(p.name for p in store.folder.iterdir()
                      if p.name != f"{msg_id}.checks.json")

    assert _wait_for(lambda: files() == [
        f"{msg_id}.details.json", f"{msg_id}.eml", f"{msg_id}.json"]), files()
    details = store.details(msg_id)
    assert details is not None and details.id == msg_id
    assert [p.content_type for p in details.parts] == [
        "multipart/alternative", "text/plain", "text/html"]
    assert details.html.strip() == "<p>rich</p>" and details.text.strip() == "plain"
    assert "Subject: Through the process" in details.source
    assert ("Subject", "Through the process") in details.headers
    assert seen[0].size == len(store.read(msg_id))


def test_pipelining_is_offered_and_several_messages_share_a_connection(server) -> None:  # noqa: ANN001
    srv, seen = server
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("pipelining")
    conn = mailcore.get_connection("mailcore.backends.smtp.EmailBackend", host="127.0.0.1",
                                   port=srv.port, use_tls=False, use_ssl=False)
    messages = [mailcore.EmailMessage(f"Batch {i}", f"body {i}", "a@example.com",
                                      ["b@example.com"]) for i in range(3)]
    assert conn.send_messages(messages) == 3
    assert sorted(m.subject for m in seen) == ["Batch 0", "Batch 1", "Batch 2"]


def _raw_session(port: int, script: bytes, replies: int) -> list[bytes]:
    """Send ``script`` in one write (commands pipelined) and read ``replies`` reply lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220")
        s.sendall(b"EHLO test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(script)
        return [f.readline() for _ in range(replies)]


def test_data_end_dot_stuffing_and_commands_after_the_final_dot(server) -> None:  # noqa: ANN001
    srv, seen = server
    first = (b"Subject: one\r\n\r\n..starts with a dot\r\nends with a dot.\r\n.\r\n"
             b"not the end\r\n....\r\nlast line.")
    script = (b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
              b"Subject: one\r\n\r\n...starts with a dot\r\nends with a dot.\r\n..\r\n"
              b"not the end\r\n.....\r\nlast line.\r\n.\r\n"
              # pipelined right after the final dot, in the same packet: a second message
              b"MAIL FROM:<c@example.com>\r\nRCPT TO:<d@example.com>\r\nDATA\r\n"
              b".\r\n"  # an empty message
              b"QUIT\r\n")
    replies = _raw_session(srv.port, script, 9)
    codes = [r[:3] for r in replies]
    assert codes == [b"250", b"250", b"354", b"250", b"250", b"250", b"354", b"250", b"221"]
    assert b"stored as" in replies[3] and b"stored as" in replies[7]
    assert [m.mail_from for m in seen] == ["a@example.com", "c@example.com"]
    assert srv.store.read(seen[0].id) == first + b"\r\n"
    assert srv.store.read(seen[1].id) == b""


def test_startup_errors_are_reported_with_what_the_process_said(tmp_path: Path,
                                                                monkeypatch) -> None:  # noqa: ANN001
    before = set(_children()) if Path("/proc").exists() else set()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        srv = InboxServer(InboxStore(tmp_path / "inbox"), port=port)
        with pytest.raises(InboxServerError) as failure:
            srv.start(fallback=False)
        assert f"127.0.0.1:{port}" in str(failure.value)
        assert "address already in use" in str(failure.value).lower()
        assert not srv.running
        # by default a taken port gives way to a free one, and the reason is kept
        other = srv.start()
        try:
            assert other not in (0, port) and srv.running
            assert srv.fallback_reason.startswith(f"port {port} is taken")
        finally:
            srv.stop()
    # aiosmtpd missing (a package that fails to import stands in for it)
    fake = tmp_path / "fake"
    (fake / "aiosmtpd").mkdir(parents=True)
    (fake / "aiosmtpd" / "__init__.py").write_text("raise ImportError('no aiosmtpd here')\n")
    monkeypatch.setenv("PYTHONPATH", str(fake))
    srv = InboxServer(InboxStore(tmp_path / "inbox"))
    with pytest.raises(InboxServerError) as failure:
        srv.start()
    assert str(failure.value) == "ImportError: no aiosmtpd here"
    assert "Traceback" in failure.value.stderr
    if Path("/proc").exists():
        assert set(_children()) == before


_ORPHAN_PARENT = """
import sys, time
from pathlib import Path
from mailgui.model.inbox import InboxServer, InboxStore
server = InboxServer(InboxStore(Path(sys.argv[1])))
port = server.start()
print(server.pid, port, flush=True)
time.sleep(600)
"""


def test_server_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN_PARENT, str(tmp_path / "inbox")],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        child_pid, port = (int(x) for x in parent.stdout.readline().split())
        assert not _gone(child_pid)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            assert client.noop()[0] == 250
        parent.send_signal(signal.SIGKILL)  # no chance to stop() anything
        parent.wait(10)
        assert _wait_for(lambda: _gone(child_pid), timeout=10), "the inbox server outlived it"
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()


def test_frozen_app_runs_the_server_through_its_own_binary(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    folder = tmp_path / "inbox"
    assert server_command(folder, port=0)[:3] == [sys.executable, "-m",
                                                  "mailgui.model.inbox_server"]
    with monkeypatch.context() as frozen:
        frozen.setattr(sys, "frozen", True, raising=False)
        command = server_command(folder, port=0)
    assert command[:3] == [sys.executable, "--run-inbox-server", str(folder)]
    # what the frozen binary runs, through mailgui's own main(): no window, no display needed
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY="", WAYLAND_DISPLAY="")
    proc = subprocess.Popen([sys.executable, "-m", "mailgui", *command[1:]], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        ready = proc.stdout.readline().split()
        assert ready[0] == b"READY", proc.stderr.read()
        port = int(ready[1])
        replies: list[str] = []

        def client() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                smtp.sendmail("a@example.com", ["b@example.com"],
                              b"Subject: frozen\r\n\r\nhi\r\n")
                replies.append("sent")

        sender = threading.Thread(target=client)
        sender.start()
        item = json.loads(proc.stdout.readline())  # reported before the client's reply...
        assert item["subject"] == "frozen"
        assert sender.is_alive() and replies == []  # ...which waits for the app's ack
        proc.stdin.write(f"ack {item['id']}\n".encode())
        proc.stdin.flush()
        sender.join(30)
        assert replies == ["sent"]
        # the details are worked out once the server is idle
        assert _wait_for(lambda: (folder / f"{item['id']}.details.json").exists())
        proc.stdin.close()  # end of stdin: the server stops, cleanly
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            stream.close()


# -- details without the email package in the GUI process --------------------------------------


def _big_message(tmp_path: Path, size: int) -> tuple[bytes, bytes]:
    payload = os.urandom(size)
    msg = mailcore.EmailMultiAlternatives("Big", "Text body", "a@example.com", ["b@example.com"])
    msg.attach_alternative("<p>HTML body</p>", "text/html")
    msg.attach("big.bin", payload, "application/octet-stream")
    inner = mailcore.EmailMessage("Inner", "inner body", "c@example.com", ["d@example.com"])
    inner.attach("inner.bin", payload[:200_000], "application/octet-stream")
    msg.attach(None, inner.message(), "message/rfc822")
    return serialize(msg, linesep="\r\n").getvalue(), payload


def test_the_headers_of_a_multipart_entity_are_read_without_its_parts(tmp_path: Path) -> None:
    # On some Python releases (Debian 12's 3.11.2) the header-only parse of a multipart entity
    # reports a MultipartInvariantViolationDefect; the skeleton must still follow the structure
    # on the Python this machine has, or every big multipart message is parsed in full.
    data, _payload = _big_message(tmp_path, 2_000_000)
    skeleton = Skeleton(data)
    assert not skeleton.opaque
    types = [e.content_type for e in skeleton.entities]
    assert types[:2] == ["multipart/mixed", "multipart/alternative"]
    assert skeleton.reduced
    headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(data)
    headers.defects.append(email.errors.MultipartInvariantViolationDefect())
    assert header_defects(headers) == []  # what 3.11.2 adds is not a fault of the headers
    # a real defect in the headers still makes the skeleton step aside
    broken = b"Content-Type: multipart/mixed; boundary=x\r\nnot a header\r\n\r\n"
    assert Skeleton(broken + b"--x\r\n\r\nhi\r\n--x--\r\n").opaque


def test_details_of_a_big_message_match_the_email_package(tmp_path: Path) -> None:
    data, payload = _big_message(tmp_path, 3_000_000)
    skeleton = Skeleton(data)
    assert skeleton.reduced  # the big bodies are not given to the email package
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    walked = list(parsed.walk())
    details = compute_details(data, "x")
    assert [(p.content_type, p.filename) for p in details.parts] == [
        (p.get_content_type(), p.get_filename() or "") for p in walked]
    sizes = [len(p.get_payload(decode=True)) if not p.is_multipart() else 0 for p in walked]
    assert [p.size for p in details.parts] == sizes
    assert [p.size for p in message_parts(data)] == sizes
    assert [p.depth for p in details.parts] == [0, 1, 2, 2, 1, 1, 2, 3, 3]
    assert details.text.strip() == "Text body" and details.html.strip() == "<p>HTML body</p>"
    assert details.headers == [(k, str(v)) for k, v in parsed.items()]
    # the big base64 body is folded in the source: head lines, a marker, the last line
    assert "lines of base64 folded" in details.source and len(details.source) < 20_000
    big = next(i for i, p in enumerate(walked) if p.get_filename() == "big.bin")
    assert part_payload(data, big) == ("big.bin", payload)
    eml = tmp_path / "m.eml"
    eml.write_bytes(data)
    assert write_part(eml, big, tmp_path / "out" / "big.bin") == ("big.bin", len(payload))
    assert (tmp_path / "out" / "big.bin").read_bytes() == payload
    inner = next(i for i, p in enumerate(walked) if p.get_content_type() == "message/rfc822")
    name, attached = part_payload(data, inner)
    assert name == f"part-{inner}.eml"
    assert email.message_from_bytes(attached)["Subject"] == "Inner"
    assert payload[:200_000] in b"".join(
        p.get_payload(decode=True) or b"" for p in email.message_from_bytes(attached).walk()
        if not p.is_multipart())
    with pytest.raises(IndexError):
        part_payload(data, 0)  # a container


def test_a_long_text_body_is_cut_with_a_note() -> None:
    body = "".join(f"line {i} of a long text\n" for i in range(100_000))  # ~2.5 MB
    msg = mailcore.EmailMessage("Long", body, "a@example.com", ["b@example.com"])
    data = serialize(msg, linesep="\r\n").getvalue()
    details = compute_details(data)
    assert details.text.startswith("line 0 of a long text")
    assert len(details.text) < TEXT_CAP + 1000
    assert "Cut here" in details.text and "only the start is shown" in details.text
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert details.parts[0].size == len(parsed.get_payload(decode=True))
    assert "more lines not shown" in details.source
    assert len(details.source.splitlines()) <= 20_001


def test_big_attachment_is_listed_without_the_gui_process_parsing_it(
        make_gui, qtbot, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui()
    # every parse by the email package in this (the GUI's) process goes through FeedParser
    parsed: list[int] = []
    original_feed = email.feedparser.FeedParser.feed

    def counting_feed(self, data: str) -> None:  # noqa: ANN001
        parsed.append(len(data))
        original_feed(self, data)

    monkeypatch.setattr(email.feedparser.FeedParser, "feed", counting_feed)
    computed: list[str] = []
    monkeypatch.setattr(inbox_controller, "compute_details",
                        lambda data, msg_id="": computed.append(msg_id))
    payload = os.urandom(24 * 1024 * 1024)
    big = tmp_path / "big.bin"
    big.write_bytes(payload)
    fill(gui, subject="Twenty-four megabytes", html="<p>see attached</p>")
    gui.controller.compose.add_attachments([str(big)])
    qtbot.waitUntil(lambda: gui.window.compose.attachments.topLevelItem(0).text(3) == "ok",
                    timeout=10000)
    assert send(gui, qtbot, timeout=60000).ok
    inbox = gui.controller.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=10000)
    msg_id = inbox.messages[0].id
    assert inbox.store.details_path(msg_id).exists()
    view = gui.window.inbox
    assert view.list.topLevelItem(0).text(3) == "Twenty-four megabytes"
    qtbot.waitUntil(lambda: view.parts.topLevelItemCount() == 1, timeout=10000)
    items = tree_items(view.parts)
    part = next(i for i in items if i.text(1) == "big.bin")
    assert part.text(2) == human_size(len(payload))
    # (the viewer fills its tabs a piece per turn of the event loop: the source comes next)
    qtbot.waitUntil(lambda: "lines of base64 folded" in view.source.toPlainText(),
                    timeout=10000)
    assert "see attached" in preview_text(qtbot, view.rendered)
    assert parsed == [] and computed == []  # shown from details.json alone
    # "Save part" decodes on a worker, chunk by chunk, and writes the same bytes
    view.parts.setCurrentItem(part)
    target = tmp_path / "saved" / "copy.bin"
    monkeypatch.setattr(type(inbox), "choose_part_path", lambda self, suggested: str(target))
    with qtbot.waitSignal(inbox.status, timeout=30000) as said:
        qtbot.mouseClick(view.save_part, Qt.MouseButton.LeftButton)
    assert "Saved" in said.args[0]
    assert target.read_bytes() == payload


def test_a_message_stored_before_details_existed_is_read_once(tmp_path: Path) -> None:
    data, payload = _big_message(tmp_path, 300_000)
    store = InboxStore(tmp_path / "inbox")
    item = store.add("a@example.com", ["b@example.com"], data)
    kept = store.details(item.id)
    store.details_path(item.id).unlink()  # as an older mailgui left it
    assert store.details(item.id) is None
    details = read_details(store, item.id)
    assert details == kept
    assert store.details(item.id) == kept  # worked out once, kept for next time
    store.details_path(item.id).write_text("{not json")
    assert read_details(store, item.id) == kept
    store.delete(item.id)
    assert list(store.folder.iterdir()) == []


def test_sigterm_and_sigint_stop_the_server_cleanly(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailgui.model.inbox_server", "--dir", str(tmp_path / "in")],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            ready = proc.stdout.readline().split()
            assert ready[0] == b"READY", proc.stderr.read()
            port = int(ready[1])
            proc.send_signal(sig)  # stdin stays open: the signal alone stops it
            assert proc.wait(10) == 0
            assert proc.stderr.read() == b""
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", port)) != 0
        finally:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                stream.close()


def test_the_window_says_so_when_the_server_process_dies(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    inbox = gui.controller.inbox
    assert inbox.running
    os.kill(inbox.server.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: "stopped" in gui.window.inbox.status.text(), timeout=10000)
    assert not inbox.running
    fill(gui, subject="Nowhere to go")
    gui.window.act_send.trigger()
    assert "not running" in gui.window.compose.banner.text.text()
