"""Regressions found in review: passwords go only where they were asked for, drafts are never
replaced silently (File > Open, ``mailgui FILE.eml``, a second instance), connections and
files are released after failures, a big Sent log, messages over 2 GiB, Test connection after
a keyring failure, the keyring check at start, sizes, and error texts that could quote a
password.

Real parts throughout: aiosmtpd servers, the real keyring (a slow keyring is the real one
behind a gate the test opens), real files, real mailgui processes. Only dialogs are patched.
"""

from __future__ import annotations

import gc
import json
import os
import queue
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from mailcore.wire import serialize
from mailgui import jobs
from mailgui.app import MailGui, lock_data_dir
from mailgui.jobs import Task
from mailgui.model.draft import Draft, DraftStore
from mailgui.model.errors import describe_error
from mailgui.model.message import build_message
from mailgui.model.paths import AppPaths
from mailgui.model.profiles import Profile
from mailgui.model.secrets import SecretStore
from mailgui.model.sending import check_connection, send_draft
from mailgui.model.sentlog import SentEntry, SentLog
from tests.gui.conftest import add_profile
from tests.gui.test_sending import fill, send
from tests.support.servers import NoStartTLSServer, SMTPServer

ROOT = Path(__file__).resolve().parents[2]


def gate_keyring(monkeypatch, secrets: SecretStore, method: str = "get") -> threading.Event:  # noqa: ANN001
    """Make the real keyring's ``method`` wait (on the worker) until the returned event is
    set, as a keyring behind a slow D-Bus or an unlock prompt does."""
    gate = threading.Event()
    real: Callable = getattr(secrets, method)

    def gated(*args: object) -> object:
        gate.wait(20)
        return real(*args)

    monkeypatch.setattr(secrets, method, gated)
    return gate


def patch_password_dialog(monkeypatch, answer: str | None, seen: list) -> None:  # noqa: ANN001
    def ask(parent, name, reason):  # noqa: ANN001, ANN202
        seen.append(name)
        return None if answer is None else (answer, False)

    monkeypatch.setattr("mailgui.views.profiles.PasswordDialog.ask", ask)


# -- 1. the password asked for a profile goes to that profile only ----------------------------


def test_password_retry_goes_to_the_profile_it_was_asked_for(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "A-secret"}) as srv_a, \
            SMTPServer("plain", auth={"mallory": "A-secret"}) as srv_b:
        a = add_profile(paths, name="A work", kind="smtp", host="127.0.0.1", port=srv_a.port,
                        security="none", username="alice", from_email="a@example.com")
        b = add_profile(paths, name="B other", kind="smtp", host="127.0.0.1", port=srv_b.port,
                        security="none", username="mallory", from_email="a@example.com")
        gate = gate_keyring(monkeypatch, secrets)  # nothing stored: the password is asked
        gui = make_gui(secrets, start_inbox=False)
        c, w = gui.controller, gui.window
        asked: list = []
        patch_password_dialog(monkeypatch, "A-secret", asked)
        try:
            assert c.profiles.select(a.id)
            dialog = c.profiles.open_dialog()
            fill(gui, subject="For A only")
            assert w.target.isEnabled() and dialog.use.isEnabled()
            assert c.sending.send() is not None
            # while it is sent, where it goes can't be changed
            assert not w.target.isEnabled() and not dialog.use.isEnabled()
            # ... and if it changes anyway (or the draft does), the job keeps its own
            assert c.profiles.select(b.id)
            w.compose.subject.setText("Edited meanwhile")
            with qtbot.waitSignal(c.sending.finished, timeout=15000) as done:
                gate.set()
            outcome = done.args[0]
        finally:
            gate.set()
        assert outcome.ok, outcome.sentence
        assert asked == ["A work"]
        assert srv_b.handler.login_attempts == [] and srv_b.messages == []
        assert srv_a.handler.login_attempts == [("PLAIN", "alice", True)]
        received = srv_a.wait_for(1)[0]
        assert received.message()["Subject"] == "For A only"
        assert w.target.isEnabled() and dialog.use.isEnabled()


def test_cancel_during_the_keyring_lookup_asks_nothing_and_sends_nothing(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "pw"}) as srv:
        a = add_profile(paths, name="A work", kind="smtp", host="127.0.0.1", port=srv.port,
                        security="none", username="alice", from_email="a@example.com")
        gate = gate_keyring(monkeypatch, secrets)
        gui = make_gui(secrets, start_inbox=False)
        c = gui.controller
        asked: list = []
        patch_password_dialog(monkeypatch, "pw", asked)
        try:
            c.profiles.select(a.id)
            fill(gui, subject="Never mind")
            assert c.sending.send() is not None
            with qtbot.waitSignal(c.sending.finished, timeout=15000) as done:
                gui.window.act_cancel.trigger()  # Esc
                assert gui.window.statusBar().currentMessage() == "Cancelling\u2026"
                gate.set()
        finally:
            gate.set()
        outcome = done.args[0]
        assert outcome.cancelled and not outcome.ok
        assert asked == []
        assert "cancelled" in gui.window.compose.banner.text.text()
        assert srv.handler.connections == 0 and srv.messages == []
        assert gui.window.target.isEnabled() and not c.sending.sending


def test_test_connection_retries_the_profile_it_tested(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "pw"}) as srv_a, \
            SMTPServer("plain", auth={"alice": "pw"}) as srv_b:
        a = add_profile(paths, name="A work", kind="smtp", host="127.0.0.1", port=srv_a.port,
                        security="none", username="alice")
        gate = gate_keyring(monkeypatch, secrets)
        gui = make_gui(secrets, start_inbox=False)
        p = gui.controller.profiles
        asked: list = []
        patch_password_dialog(monkeypatch, "pw", asked)
        d = p.open_dialog()
        p._fill_list(a.id)
        try:
            assert p.test_connection() is not None
            d.port.setValue(srv_b.port)  # the form is edited while the keyring is asked
            gate.set()
            qtbot.waitUntil(lambda: d.test_result.text().startswith("\u2714"), timeout=15000)
        finally:
            gate.set()
        assert asked == ["A work"]
        assert f"Connected to 127.0.0.1:{srv_a.port}" in d.test_result.text()
        assert srv_a.handler.login_attempts == [("PLAIN", "alice", True)]
        assert srv_b.handler.connections == 0


def test_closing_the_editor_during_a_test_asks_nothing(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "pw"}) as srv:
        a = add_profile(paths, name="A work", kind="smtp", host="127.0.0.1", port=srv.port,
                        security="none", username="alice")
        gate = gate_keyring(monkeypatch, secrets)
        gui = make_gui(secrets, start_inbox=False)
        p = gui.controller.profiles
        asked: list = []
        patch_password_dialog(monkeypatch, "pw", asked)
        d = p.open_dialog()
        p._fill_list(a.id)
        try:
            job = p.test_connection()
            assert job is not None
            with qtbot.waitSignal(job.signals.done, timeout=15000):
                d.reject()  # Close
                gate.set()
        finally:
            gate.set()
        qtbot.waitUntil(lambda: d.test.text() == "Test connection")
        assert d.test_result.text() == "Not tested: cancelled."
        assert asked == [] and srv.handler.connections == 0


def test_a_connection_test_that_hangs_can_be_cancelled(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                                        silent_server) -> None:  # noqa: ANN001
    profile = add_profile(paths, name="Mute", kind="smtp", host="127.0.0.1",
                          port=silent_server.port, security="none", timeout=120)
    gui = make_gui(start_inbox=False)
    p = gui.controller.profiles
    d = p.open_dialog()
    p._fill_list(profile.id)
    qtbot.mouseClick(d.test, Qt.MouseButton.LeftButton)
    assert d.test.text() == "Cancel test" and d.test.isEnabled()
    assert d.test_result.text().startswith("Connecting to 127.0.0.1:")
    qtbot.waitUntil(lambda: silent_server.connections >= 1, timeout=5000)
    qtbot.mouseClick(d.test, Qt.MouseButton.LeftButton)  # the server would keep us 120 s
    qtbot.waitUntil(lambda: d.test_result.text() == "Not tested: cancelled.", timeout=5000)
    assert d.test.text() == "Test connection" and d.test.isEnabled()


def test_a_refused_password_in_a_connection_test_is_asked_again(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, failing_keyring, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "right"}) as server:
        profile = add_profile(paths, name="A", kind="smtp", host="127.0.0.1", port=server.port,
                              security="none", username="alice")
        answers = [("typo", True), ("right", True)]  # "Remember until mailgui quits" ticked
        monkeypatch.setattr("mailgui.views.profiles.PasswordDialog.ask",
                            lambda parent, name, reason: answers.pop(0))
        gui = make_gui(failing_keyring, start_inbox=False)
        p = gui.controller.profiles
        d = p.open_dialog()
        p._fill_list(profile.id)
        for expected in ("\u2716", "\u2714"):
            assert p.test_connection() is not None
            qtbot.waitUntil(lambda: d.test.text() == "Test connection", timeout=10000)
            assert d.test_result.text().startswith(expected), d.test_result.text()
            if expected == "\u2716":
                assert "asks for the password again" in d.test_result.text()
                assert profile.id not in p.session_passwords
        assert answers == []  # asked twice: the refused password was not used again
        assert [(u, ok) for _m, u, ok in server.handler.login_attempts] == [
            ("alice", False), ("alice", True)]


# -- 2. opening an .eml never replaces a draft silently -----------------------------------------


def _eml(tmp_path: Path, subject: str) -> Path:
    path = tmp_path / f"{subject.replace(' ', '-')}.eml"
    path.write_bytes(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: " + subject.encode()
                     + b"\r\n\r\nhi\r\n")
    return path


def test_file_open_asks_before_replacing_a_draft(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                                tmp_path: Path, monkeypatch) -> None:
    gui = make_gui(start_inbox=False)
    c = gui.controller
    fill(gui, subject="My important unsent letter", body="Three hours of writing")
    c.save_draft()
    qtbot.waitUntil(lambda: c.runner.busy == 0)
    answers = [False, True]
    asked: list = []
    monkeypatch.setattr(c, "confirm_replace", lambda name: asked.append(name) or answers.pop(0))
    eml = _eml(tmp_path, "someone else")
    monkeypatch.setattr(c, "ask_open_path", lambda: str(eml))
    gui.window.act_open.trigger()  # File > Open, "No"
    assert asked == ["someone-else.eml"]
    qtbot.waitUntil(lambda: c.runner.busy == 0)
    assert c.compose.draft.subject == "My important unsent letter"
    assert DraftStore(paths).load().body == "Three hours of writing"
    gui.window.act_open.trigger()  # again, "Yes"
    qtbot.waitUntil(lambda: c.compose.draft.subject == "someone else")
    qtbot.waitUntil(lambda: DraftStore(paths).load().subject == "someone else")
    assert len(asked) == 2
    # an empty draft is replaced without a question
    c.compose.load(Draft())
    c.open_eml(str(_eml(tmp_path, "third")))
    qtbot.waitUntil(lambda: c.compose.draft.subject == "third")
    assert len(asked) == 2


def test_opening_an_eml_at_start_keeps_the_recovered_draft(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                                          tmp_path: Path, monkeypatch) -> None:
    DraftStore(paths).save(Draft(to="x@example.com", subject="crash-recovered", body="precious"))
    gui = make_gui(start_inbox=False)
    c = gui.controller
    assert c.compose.draft.subject == "crash-recovered"
    monkeypatch.setattr(c, "confirm_replace", lambda name: pytest.fail("asked at start"))
    c.open_eml(str(_eml(tmp_path, "opened")), at_start=True)  # what `mailgui x.eml` does
    qtbot.waitUntil(lambda: c.compose.draft.subject == "opened")
    qtbot.waitUntil(lambda: DraftStore(paths).load().subject == "opened")
    kept = paths.drafts_dir / "kept-draft-1.json"
    recovered = DraftStore.load_file(kept)
    assert (recovered.subject, recovered.body) == ("crash-recovered", "precious")
    assert str(kept) in gui.window.compose.banner.text.text()
    assert str(kept) in gui.window.statusBar().currentMessage()
    # File > Open brings it back (after asking, the current draft is not empty)
    monkeypatch.setattr(c, "confirm_replace", lambda name: True)
    c.open_eml(str(kept))
    qtbot.waitUntil(lambda: c.compose.draft.subject == "crash-recovered")
    assert gui.window.compose.body.toPlainText() == "precious"
    # a second keep never overwrites the first
    assert DraftStore(paths).save_copy(Draft(subject="two")).name == "kept-draft-2.json"


def _mailgui(paths: AppPaths, *args: str) -> list[str]:
    return [sys.executable, "-m", "mailgui", "--config-dir", str(paths.config_dir),
            "--data-dir", str(paths.data_dir), "--no-inbox", *args]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env.update(extra)
    return env


def test_command_line_eml_keeps_the_recovered_draft(paths: AppPaths, tmp_path: Path) -> None:
    DraftStore(paths).save(Draft(to="x@example.com", subject="crash-recovered", body="precious"))
    eml = _eml(tmp_path, "opened")
    done = subprocess.run(_mailgui(paths, str(eml)), cwd=ROOT, capture_output=True, text=True,
                          env=_env(MAILGUI_EXIT_WHEN_READY="1"), timeout=120)
    assert done.returncode == 0, done.stderr
    current = DraftStore(paths).load()
    kept = [DraftStore.load_file(p) for p in paths.drafts_dir.glob("kept-draft-*.json")]
    # It quits as soon as the window is up: the .eml may or may not be loaded by then, but
    # the recovered draft is in one of the two places, never lost.
    if current.subject == "opened":
        assert [(k.subject, k.body) for k in kept] == [("crash-recovered", "precious")]
    else:
        assert (current.subject, current.body) == ("crash-recovered", "precious")


# -- 3. one mailgui per data folder -------------------------------------------------------------


def test_a_second_instance_on_the_same_data_folder_refuses_to_start(tmp_path: Path) -> None:
    paths = AppPaths.under(tmp_path / "one")
    first = subprocess.Popen(_mailgui(paths), cwd=ROOT, env=_env(), text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for text in first.stderr:
            lines.put(text)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        said: list[str] = []
        while not any("mailgui: ready" in x for x in said):
            line = lines.get(timeout=120)
            assert line is not None, f"the first mailgui quit: {''.join(said)}"
            said.append(line)
        second = subprocess.run(_mailgui(paths), cwd=ROOT, env=_env(MAILGUI_EXIT_WHEN_READY="1"),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert (f"mailgui is already running with this data folder (pid {first.pid}): "
                f"{paths.data_dir}. Close it, or start with --data-dir OTHER") in second.stderr
        assert "mailgui: ready" not in second.stderr
        # another data folder is fine meanwhile
        other = subprocess.run(_mailgui(AppPaths.under(tmp_path / "two")), cwd=ROOT,
                               env=_env(MAILGUI_EXIT_WHEN_READY="1"), capture_output=True,
                               text=True, timeout=120)
        assert other.returncode == 0 and "mailgui: ready" in other.stderr
        assert first.poll() is None
    finally:
        first.kill()  # dies without unlocking: the lock it leaves is stale
        first.wait(30)
        first.stderr.close()
    assert (paths.data_dir / "mailgui.lock").exists()
    again = subprocess.run(_mailgui(paths), cwd=ROOT, env=_env(MAILGUI_EXIT_WHEN_READY="1"),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "mailgui: ready" in again.stderr
    assert not (paths.data_dir / "mailgui.lock").exists()  # released on a clean exit


def test_lock_data_dir_in_process(tmp_path: Path) -> None:
    lock, refusal = lock_data_dir(tmp_path / "data")
    assert lock is not None and refusal is None
    again, refusal = lock_data_dir(tmp_path / "data")
    assert again is None and f"(pid {os.getpid()})" in refusal
    lock.unlock()
    lock, refusal = lock_data_dir(tmp_path / "data")
    assert lock is not None and refusal is None
    lock.unlock()


# -- 4. nothing is left open after a failure ---------------------------------------------------


def _unclosed(run: Callable[[], object]) -> list[str]:
    """The sockets ``run`` left open (found when they are garbage collected)."""
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for _ in range(3):
            run()
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)
            and "socket" in str(w.message)]


def test_failed_auth_and_starttls_leave_no_connection_open() -> None:
    with SMTPServer("plain", auth={"alice": "right"}) as server:
        profile = Profile("W", "smtp", host="127.0.0.1", port=server.port, security="none",
                          username="alice", timeout=10, from_email="t@example.com")
        draft = Draft(to="b@example.com")
        assert not send_draft(draft, profile, password="wrong").ok
        assert _unclosed(lambda: send_draft(draft, profile, password="wrong")) == []
        assert _unclosed(lambda: check_connection(profile, password="wrong")) == []
    with NoStartTLSServer() as server:
        profile = Profile("W", "smtp", host="127.0.0.1", port=server.port, security="starttls",
                          timeout=10, from_email="t@example.com")
        outcome = send_draft(Draft(to="b@example.com"), profile)
        assert not outcome.ok and "STARTTLS" in outcome.sentence
        assert _unclosed(lambda: send_draft(Draft(to="b@example.com"), profile)) == []
        assert _unclosed(lambda: check_connection(profile)) == []


# -- 5. a big Sent log -------------------------------------------------------------------------


def test_a_big_sent_log_lists_the_newest_sends(make_gui, qtbot, paths: AppPaths) -> None:  # noqa: ANN001
    paths.sent_log_file.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(asdict(SentEntry(
        profile="Local test inbox", subject=f"Load test {i}", recipients=["bob@example.com"],
        message_id=f"<{i}@x>", result="sent", detail="250 OK", size=5000, time=1.0 + i,
        transcript=[f"C: line {k}" for k in range(30)]))) for i in range(6000)]
    paths.sent_log_file.write_text("\n".join(lines) + "\n")
    gui = make_gui(start_inbox=False)
    view = gui.window.sent
    qtbot.waitUntil(lambda: view.list.topLevelItemCount() == 2000, timeout=10000)
    assert view.list.topLevelItem(0).text(2) == "Load test 5999"
    assert view.list.topLevelItem(1999).text(2) == "Load test 4000"
    assert view.note.isVisibleTo(view)
    assert "newest 2,000 of 6,000 sends" in view.note.text()
    assert str(paths.sent_log_file) in view.note.text()
    view.list.setCurrentItem(view.list.topLevelItem(0))
    assert "C: line 29" in view.detail.toPlainText()
    gui.window.target.setCurrentIndex(gui.window.target.findData("builtin-dummy"))
    fill(gui, subject="One more")
    assert send(gui, qtbot).ok
    assert view.list.topLevelItemCount() == 2000
    assert view.list.topLevelItem(0).text(2) == "One more"
    assert view.list.topLevelItem(1999).text(2) == "Load test 4001"
    assert "newest 2,000 of 6,001 sends" in view.note.text()


def test_sent_log_tail_and_rotation(tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.jsonl")
    assert log.tail(10) == ([], 0)
    for i in range(5):
        log.append(SentEntry("P", f"s{i}", ["b@example.com"], f"<{i}@x>", "sent"))
    with log.path.open("a") as f:
        f.write("{damaged\n")
    entries, total = log.tail(3)
    assert [e.subject for e in entries] == ["s3", "s4"] and total == 6
    log.MAX_BYTES = log.path.stat().st_size + 10  # the next entry does not fit
    log.append(SentEntry("P", "after", ["b@example.com"], "<a@x>", "sent"))
    assert [e.subject for e in log.entries()] == ["after"]
    assert [e.subject for e in SentLog(log.rotated_path).entries()] == [
        f"s{i}" for i in range(5)]


# -- 6. progress of a message over 2 GiB -------------------------------------------------------


def test_progress_carries_sizes_over_2_gib(qapp, qtbot) -> None:  # noqa: ANN001
    from mailgui.jobs import JobRunner

    runner = JobRunner()
    done, total = 3 * 2**30 + 5, 5 * 2**30 + 7
    holder: dict[str, Task] = {}

    def work() -> bool:  # on the worker, like a send job's progress callback
        holder["task"].signals.progress.emit("sending", done, total)
        return True

    task = Task(work)
    holder["task"] = task
    with qtbot.waitSignal(task.signals.progress, timeout=10000) as got:
        runner.start(task)
    assert got.args == ["sending", done, total]
    runner.wait(5000)


# -- 7. Test connection after a keyring failure ------------------------------------------------


class DBusErrorResponse(Exception):  # what jeepney raises when the Secret Service dies
    pass


def test_test_connection_recovers_from_a_keyring_error(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, monkeypatch) -> None:
    with SMTPServer("plain", auth={"alice": "pw"}) as server:
        a = add_profile(paths, name="A", kind="smtp", host="127.0.0.1", port=server.port,
                        security="none", username="alice")

        def broken(profile_id: str) -> str:
            raise DBusErrorResponse("org.freedesktop.DBus.Error.NoReply")

        monkeypatch.setattr(secrets, "get", broken)
        gui = make_gui(secrets, start_inbox=False)
        p = gui.controller.profiles
        d = p.open_dialog()
        p._fill_list(a.id)
        assert p.test_connection() is not None
        qtbot.waitUntil(lambda: d.test.text() == "Test connection", timeout=10000)
        assert d.test_result.text().startswith("\u2716 The system keyring failed")
        assert server.handler.connections == 0
        # Test works again (with a typed password it needs no keyring)
        d.password.setText("pw")
        assert p.test_connection() is not None
        qtbot.waitUntil(lambda: d.test_result.text().startswith("\u2714"), timeout=10000)
        # and a job that crashes outright does not leave the button off either
        monkeypatch.setattr(jobs.TestConnectionJob, "_test",
                            lambda self, *a: (_ for _ in ()).throw(RuntimeError("boom")))
        assert p.test_connection() is not None
        qtbot.waitUntil(lambda: d.test.text() == "Test connection", timeout=10000)
        assert d.test_result.text() == "\u2716 Unexpected error: RuntimeError: boom"


def test_a_keyring_error_is_a_sentence_in_the_model(secrets, monkeypatch) -> None:  # noqa: ANN001
    profile = Profile("A", "smtp", host="127.0.0.1", port=1, security="none", username="alice")
    monkeypatch.setattr(secrets, "get", lambda pid: (_ for _ in ()).throw(DBusErrorResponse("x")))
    outcome = check_connection(profile, secrets=secrets)
    assert not outcome.ok and "system keyring failed" in outcome.sentence
    sent = send_draft(Draft(to="b@example.com"), profile, secrets=secrets)
    assert not sent.ok and not sent.password_needed
    assert "system keyring failed" in sent.sentence


# -- 8. the keyring check at start -------------------------------------------------------------


def test_no_password_typed_before_the_keyring_is_known(qtbot, paths: AppPaths,  # noqa: ANN001
                                                       secrets: SecretStore, monkeypatch) -> None:
    gate = gate_keyring(monkeypatch, secrets, "status")
    gui = MailGui(paths, secrets=secrets, start_inbox=False)
    qtbot.addWidget(gui.window)
    try:
        p = gui.controller.profiles
        d = p.open_dialog()
        p.new_profile()
        d.host.setText("smtp.example.com")
        d.username.setText("alice")
        assert p.keyring_status is None
        assert not d.password.isEnabled()
        assert d.password.placeholderText() == "checking the keyring\u2026"
        d.password.setText("hunter2")  # (a script or an old state could still fill it)
        profile = p.save_profile()
        assert "as soon as the keyring check is done" in d.password_note.text()
        assert profile.id not in p.session_passwords
        gate.set()
        qtbot.waitUntil(lambda: p.keyring_status is not None, timeout=10000)
        assert d.password.isEnabled() and d.password.placeholderText() == ""
        qtbot.waitUntil(lambda: "saved in the system keyring" in d.password_note.text(),
                        timeout=10000)
        assert secrets.get(profile.id) == "hunter2"
        assert profile.id not in p.session_passwords
    finally:
        gate.set()
        gui.shutdown()


# -- 9. the size the console and file backends report ------------------------------------------


def test_console_and_file_sizes_are_what_they_write(tmp_path: Path) -> None:
    draft = Draft(to="bob@example.com", subject="Size", body="line one\nline two\n" * 50)
    separator = len("\n" + "-" * 79 + "\n")
    file_profile = Profile("Files", "file", file_path=str(tmp_path / "out"))
    outcome = send_draft(draft, file_profile)
    assert outcome.ok
    assert outcome.size == Path(outcome.written_file).stat().st_size - separator
    printed: list[str] = []
    outcome = send_draft(draft, Profile("Console", "console"), console=printed.append)
    assert outcome.ok
    assert outcome.size == len("".join(printed).encode()) - separator
    crlf = serialize(build_message(draft, Profile("Memory", "memory"))).size
    assert send_draft(draft, Profile("Memory", "memory")).size == crlf  # as SMTP carries it


# -- 10. errors never quote what could be a password -------------------------------------------


def test_unicode_errors_are_never_quoted() -> None:
    secret = "p\u00e4ssw\u00f6rd\u2603"
    errors: list[BaseException] = [
        UnicodeEncodeError("ascii", secret, 1, 2, "ordinal not in range(128)"),
        UnicodeDecodeError("utf-8", secret.encode("latin-1", "replace"), 1, 2, "invalid"),
    ]
    try:
        try:
            secret.encode("ascii")
        except UnicodeError as exc:
            raise OSError(f"login failed: {exc}") from exc
    except OSError as wrapped:
        errors.append(wrapped)
    profile = Profile("W", "smtp", host="mail.example.com", port=587, username="alice")
    for exc in errors:
        info = describe_error(exc, profile)
        assert info.kind == "encoding"
        for text in (info.sentence, info.reply):
            assert not any(ch in text for ch in "\u00e4\u00f6\u2603")
            assert "\\x" not in text and "\\u" not in text and "p?ss" not in text
    assert "ascii" in describe_error(errors[0]).sentence
