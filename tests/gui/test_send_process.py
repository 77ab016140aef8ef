"""The sender process: SMTP, the local inbox and the file backend build and send the message in
a child process; what the window sees of a send is the same as when it ran on the worker
thread (outcome, transcript, progress, refusals, errors), cancel and a dead child included.
Real servers (aiosmtpd, trustme), the real keyring, real child processes."""

from __future__ import annotations

import dataclasses
import os
import re
import secrets as random_secrets
import signal
import threading
import time
from pathlib import Path

import pytest

from mailgui.model import send_process
from mailgui.model.draft import AttachmentRef, Draft
from mailgui.model.profiles import Profile
from mailgui.model.secrets import SecretStore
from mailgui.model.sending import DELIVERIES, Canceller, send_draft
from tests.gui.conftest import add_profile
from tests.support.gui import fill, send
from tests.support.servers import TEST_USER, SMTPServer


def _smtp(server: SMTPServer, **kw: object) -> Profile:
    fields = {"host": "127.0.0.1", "port": server.port, "security": "none", "timeout": 30,
              "from_email": "Tester <tester@example.com>"}
    fields.update(kw)
    return Profile("Server", "smtp", **fields)  # type: ignore[arg-type]


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Switch a delivery back to the worker thread (as a row that is not in the child)."""
    def switch(name: str) -> None:
        monkeypatch.setitem(DELIVERIES, name, dataclasses.replace(DELIVERIES[name],
                                                                  child=False))
    return switch


def _big(tmp_path: Path, mb: int) -> Path:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        for _ in range(mb):
            f.write(os.urandom(1 << 20))
    return path


BIG_LIMIT = 256 * 2**20  # the server takes the big messages (its default is 32 MB)
_TIMING = re.compile(r"\d+(\.\d+)? ?(ms|s)\b")


def _steady(lines: list[str]) -> list[str]:
    """A transcript without its timings ("connected in 3 ms")."""
    return [_TIMING.sub("T", line) for line in lines]


def test_the_heavy_deliveries_run_in_the_child_and_the_others_here() -> None:
    assert {name for name, d in DELIVERIES.items() if d.child} >= {"smtp", "file", "dummy"}
    # the Memory pane needs the message object, the Console pane the printed text
    assert not DELIVERIES["locmem"].child and not DELIVERIES["console"].child


def test_a_send_in_the_child_reports_what_the_worker_thread_did(
        tmp_path: Path, in_process) -> None:  # noqa: ANN001
    attachment = tmp_path / "data.bin"
    attachment.write_bytes(os.urandom(3_000_000))
    refuse = {"bad@example.com": "550 5.1.1 No such user"}
    with SMTPServer("plain", refuse_rcpt=refuse) as server:
        draft = Draft(to="good@example.com, bad@example.com", subject="Both ways",
                      body="text\n", attachments=[AttachmentRef(str(attachment))])
        results = []
        for where in ("child", "thread"):
            if where == "thread":
                in_process("smtp")
            progress: list[tuple[str, int, int]] = []
            heard: list[str] = []
            outcome = send_draft(draft, _smtp(server),
                                 transcript=lambda _e, text, h=heard: h.append(text),
                                 progress=lambda *a, p=progress: p.append(a))
            results.append((outcome, progress, heard))
        received = server.wait_for(2)
    (child, child_progress, child_heard), (thread, thread_progress, _heard) = results
    assert child.ok and thread.ok, (child.sentence, thread.sentence)
    for name in ("sentence", "size", "reply", "refused", "recipients", "message_id", "date",
                 "cancelled"):
        assert getattr(child, name) == getattr(thread, name), name
    assert child.refused == {"bad@example.com": "550 5.1.1 No such user"}
    assert child.sentence == "Sent via Server for 1 recipient. Refused: bad@example.com."
    assert _steady(child.transcript) == _steady(thread.transcript)
    assert len(child_heard) == len(child.transcript)  # every line was heard as it came
    # the same bytes went out both times, and the size is theirs
    assert received[0].data == received[1].data and len(received[0].data) == child.size
    # progress: the phases in order, the content counted to its end
    phases = [p for p, _d, _t in child_progress]
    assert phases[:2] == ["building", "connecting"] and phases[-1] == "done"
    sending = [(d, t) for p, d, t in child_progress if p == "sending"]
    assert len(sending) >= 2 and sending[-1][0] == sending[-1][1] >= 3_000_000
    assert [p for p, _d, _t in thread_progress if p != "sending"] == [
        p for p in phases if p != "sending"]


def test_the_file_backend_writes_in_the_child(tmp_path: Path, in_process) -> None:  # noqa: ANN001
    folder = tmp_path / "out"
    profile = Profile("Files", "file", file_path=str(folder))
    draft = Draft(to="a@example.com", subject="To a file", body="x\n")
    child = send_draft(draft, profile)
    in_process("file")
    thread = send_draft(draft, profile)
    assert child.ok and thread.ok
    assert child.sentence == thread.sentence == "Sent to a file for 1 recipient."
    assert child.written_file and Path(child.written_file).parent == folder
    assert child.size == thread.size
    written = Path(child.written_file).read_bytes()
    assert b"Subject: To a file\n" in written and len(written) > child.size
    assert len(written) == Path(thread.written_file).stat().st_size


def test_a_failure_in_the_child_is_classified_as_before(
        certs, starttls_server: SMTPServer, refused_port: int, tmp_path: Path,  # noqa: ANN001
        in_process) -> None:  # noqa: ANN001
    untrusted = _smtp(starttls_server, security="starttls", username=TEST_USER,
                      ca_file=certs.untrusted.ca_file)
    refused = _smtp(starttls_server, port=refused_port)
    missing = Draft(to="a@example.com", attachments=[AttachmentRef(str(tmp_path / "gone.bin"))])
    cases = [(untrusted, Draft(to="a@example.com"), "tls-untrusted"),
             (refused, Draft(to="a@example.com"), "unreachable"),
             (_smtp(starttls_server), missing, "file")]
    seen = {}
    for where in ("child", "thread"):
        if where == "thread":
            in_process("smtp")
        seen[where] = [send_draft(draft, profile, password="x") for profile, draft, _k in cases]
    for (_p, _d, kind), child, thread in zip(cases, seen["child"], seen["thread"]):
        assert not child.ok and child.error is not None
        assert child.error.kind == thread.error.kind == kind
        assert child.sentence == thread.sentence and child.reply == thread.reply
        assert child.error.hint == thread.error.hint
    # the window's banner finds the file that could not be read, as before
    assert seen["child"][2].error.failure.path == seen["thread"][2].error.failure.path
    assert "not trusted" in seen["child"][0].sentence


def test_the_password_reaches_the_child_only_over_its_pipe(
        secrets: SecretStore) -> None:
    password = "pw-" + random_secrets.token_hex(12)
    seen: dict[int, tuple[bytes, bytes]] = {}

    def look(phase: str, _done: int, _total: int) -> None:
        if phase == "sending":
            for pid in send_process.busy_pids():
                proc = Path(f"/proc/{pid}")
                seen[pid] = ((proc / "cmdline").read_bytes(), (proc / "environ").read_bytes())

    with SMTPServer("plain", auth={TEST_USER: password}, auth_require_tls=False) as server:
        profile = _smtp(server, username=TEST_USER)
        secrets.set(profile.id, password)  # read from the real keyring, on this thread
        outcome = send_draft(Draft(to="bob@example.com", body="x" * 200_000), profile,
                             secrets=secrets, progress=look)
        assert outcome.ok, outcome.sentence
        assert server.wait_for(1)[0].auth_login == TEST_USER  # the child logged in with it
    assert seen, "no child was sending"
    for cmdline, environ in seen.values():
        assert b"send_process" in cmdline or b"--run-sender" in cmdline
        assert password.encode() not in cmdline and password.encode() not in environ
    assert not any(password in line for line in outcome.transcript)


def test_cancel_stops_a_100_mb_send_in_the_child(tmp_path: Path) -> None:
    big = _big(tmp_path, 100)
    canceller = Canceller()
    progress: list[tuple[str, int, int]] = []
    result: dict = {}

    def tell(phase: str, done: int, total: int) -> None:
        progress.append((phase, done, total))
        if phase == "sending" and done and not canceller.cancelled:
            result["at"] = time.monotonic()
            threading.Thread(target=canceller.cancel).start()  # as the GUI thread does

    with SMTPServer("plain", data_size_limit=BIG_LIMIT) as server:
        draft = Draft(to="bob@example.com", attachments=[AttachmentRef(str(big))])
        outcome = send_draft(draft, _smtp(server), canceller=canceller, progress=tell)
        took = time.monotonic() - result["at"]
        assert outcome.cancelled and not outcome.ok
        assert outcome.sentence.startswith("Sending was cancelled")
        sent = [d for p, d, _t in progress if p == "sending"]
        assert sent[-1] < sent[0] + 90 * 2**20  # stopped well before the end
        assert took < send_process.KILL_AFTER + 5  # liveness bound only
        time.sleep(0.5)
        assert server.messages == []  # nothing half-delivered
        again = send_draft(Draft(to="bob@example.com", subject="After"), _smtp(server))
        assert again.ok, again.sentence
        assert len(server.wait_for(1)) == 1


def test_a_child_killed_mid_send_is_a_clear_error_and_the_next_send_works(
        tmp_path: Path) -> None:
    big = _big(tmp_path, 50)
    killed: list[int] = []

    def tell(phase: str, done: int, _total: int) -> None:
        if phase == "sending" and done and not killed:
            for pid in send_process.busy_pids():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    with SMTPServer("plain", data_size_limit=BIG_LIMIT) as server:
        draft = Draft(to="bob@example.com", subject="Killed", attachments=[
            AttachmentRef(str(big))])
        before = draft.copy()
        outcome = send_draft(draft, _smtp(server), progress=tell)
        assert killed
        assert not outcome.ok and not outcome.cancelled
        assert outcome.error is not None and outcome.error.kind == "sender-process"
        assert outcome.sentence == (
            "The sending process was stopped by SIGKILL before the server confirmed the "
            "message, so it was not sent. Your draft is unchanged: send it again.")
        assert outcome.transcript[-1] == "* error: " + outcome.sentence
        assert draft == before  # the snapshot is what it was
        time.sleep(0.5)
        assert server.messages == []
        again = send_draft(draft, _smtp(server))
        assert again.ok, again.sentence
        assert [m.message()["Subject"] for m in server.wait_for(1)] == ["Killed"]
        assert send_process.busy_pids() == [] and killed[0] not in send_process.idle_pids()


def test_the_window_shows_progress_and_keeps_the_draft_when_the_child_dies(
        make_gui, qtbot, paths, tmp_path: Path) -> None:  # noqa: ANN001
    big = _big(tmp_path, 40)
    with SMTPServer("plain", data_size_limit=BIG_LIMIT) as server:
        profile = add_profile(paths, name="Server", kind="smtp", host="127.0.0.1",
                              port=server.port, security="none", timeout=30)
        gui = make_gui(start_inbox=False)
        assert gui.controller.target.select(profile.id)
        fill(gui, subject="Big one")
        gui.controller.compose.add_attachments([str(big)])
        message_id = gui.controller.compose.draft.message_id
        shown: list[int] = []
        bar = gui.window.progress
        bar.valueChanged.connect(lambda v: shown.append(v) if bar.maximum() == 1000 else None)

        def kill_on_progress(value: int) -> None:
            if bar.maximum() == 1000 and value > 0:
                for pid in send_process.busy_pids():
                    os.kill(pid, signal.SIGKILL)

        bar.valueChanged.connect(kill_on_progress)
        outcome = send(gui, qtbot, timeout=60000)
        bar.valueChanged.disconnect(kill_on_progress)
        assert shown and 0 < max(shown) < 1000  # the bar moved, the send did not end
        assert outcome.error.kind == "sender-process"
        banner = gui.window.compose.banner
        assert banner.kind == "error" and "sending process was stopped" in banner.text.text()
        draft = gui.controller.compose.draft
        assert draft.message_id == message_id and draft.subject == "Big one"
        assert [a.path for a in draft.attachments] == [str(big)]
        # and the same draft goes out on the next Send, its progress shown to the end
        shown.clear()
        outcome = send(gui, qtbot, timeout=60000)
        assert outcome.ok, outcome.sentence
        assert shown and max(shown) == 1000
        assert [m.message()["Message-ID"] for m in server.wait_for(1)] == [message_id]


def test_an_idle_child_that_died_is_replaced_without_an_error(smtp_server: SMTPServer) -> None:
    send_process.warm()
    (idle,) = send_process.idle_pids()
    os.kill(idle, signal.SIGKILL)
    outcome = send_draft(Draft(to="bob@example.com", subject="Fresh"), _smtp(smtp_server))
    assert outcome.ok, outcome.sentence
    assert [m.message()["Subject"] for m in smtp_server.wait_for(1)] == ["Fresh"]
    assert idle not in send_process.idle_pids() and len(send_process.idle_pids()) == 1


def test_the_child_runs_below_the_app_in_the_scheduler_s_own_terms(smtp_server: SMTPServer) -> None:
    """SENDER_NICE is heeded. The child leads a session of its own, and with the kernel's
    autogroup scheduling (Linux's desktop default) each session is a group weighed against the
    others as an equal: the child's own nice then ranked it only within its group, against
    nothing. So its group's nice is set too (/proc/PID/autogroup)."""
    outcome = send_draft(Draft(to="bob@example.com", subject="Low"), _smtp(smtp_server))
    assert outcome.ok, outcome.sentence  # the child started and served
    (pid,) = send_process.idle_pids()
    assert os.getsid(pid) == pid
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, mine + send_process.SENDER_NICE)
    group = Path(f"/proc/{pid}/autogroup")
    if Path("/proc/self/autogroup").exists():  # a kernel built with autogroup scheduling
        assert group.read_text().split()[-2:] == ["nice", str(send_process.SENDER_NICE)]
    else:
        assert not group.exists()
