"""The app as a whole: first start, drafts that survive, quitting (at once, nothing lost),
one mailgui per data folder, shortcuts, .eml in and out, profiles, the command line."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox

from mailcore.wire import serialize
from mailgui import __version__
from mailgui.app import display_problem, lock_data_dir
from mailgui.model.draft import AttachmentRef, Draft, DraftStore
from mailgui.model.message import build_message
from mailgui.model.paths import AppPaths
from mailgui.model.secrets import SecretStore
from tests.gui.conftest import add_profile
from tests.support.gui import ROOT, fill, mailgui_command, offscreen_env, quit_window, send
from tests.support.keyrings import ControlledKeyring
from tests.support.servers import SMTPServer


def test_first_start_offers_the_local_inbox(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    w = gui.window
    assert w.target.currentText() == "Local test inbox"
    assert w.compose.banner.isVisible() and "Welcome" in w.compose.banner.text.text()
    port = gui.controller.inbox.port
    assert f"127.0.0.1:{port}" in w.inbox.status.text()
    assert f"127.0.0.1:{port}" in w.target_detail.text()
    assert w.inbox.stack.currentWidget() is w.inbox.hint  # empty pane with a hint
    assert [w.target.itemText(i) for i in range(w.target.count()) if w.target.itemData(i)] == [
        "Local test inbox", "Console", "Files", "Memory", "Dummy"]
    # typing goes to To, not to the banner's button; that button is named by its text
    assert w.focusWidget() is w.compose.address_edits["to"]
    assert w.compose.banner.action.accessibleName() == "Add SMTP profile"
    # the banner's button opens the profile editor with a first SMTP profile
    qtbot.mouseClick(w.compose.banner.action, Qt.MouseButton.LeftButton)
    dialog = gui.controller.profiles.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.name.text() == "New SMTP server"


def test_without_the_inbox_messages_go_to_the_console(make_gui) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)  # mailgui --no-inbox
    w = gui.window
    assert w.target.currentData() == "builtin-console"
    assert not w.compose.banner.isVisible()  # no welcome that promises the inbox
    w.target.setCurrentIndex(w.target.findData("builtin-inbox"))
    assert w.target_detail.text() == "switched off (--no-inbox)"


def test_a_broken_profiles_file_is_reported_in_the_window(make_gui, paths: AppPaths) -> None:  # noqa: ANN001
    paths.profiles_file.parent.mkdir(parents=True, exist_ok=True)
    paths.profiles_file.write_text('{"version": 1, "profiles": [,]}')
    gui = make_gui(start_inbox=False)
    banner = gui.window.compose.banner
    assert banner.isVisible() and banner.kind == "warning"
    assert "could not all be read" in banner.text.text() and "broken-" in banner.text.text()


def test_the_inbox_listens_on_1025_or_says_why_not(make_gui, paths: AppPaths,  # noqa: ANN001
                                                   tmp_path: Path) -> None:
    import socket

    from mailgui.model.inbox import DEFAULT_INBOX_PORT

    with socket.socket() as probe:  # is 1025 free on this machine?
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", DEFAULT_INBOX_PORT))
            free = True
        except OSError:
            free = False
    if free:
        gui = make_gui()
        assert gui.controller.inbox.port == DEFAULT_INBOX_PORT
        gui.shutdown()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        gui = make_gui(app_paths=AppPaths.under(tmp_path / "second"), inbox_port=port)
        assert gui.controller.inbox.port not in (0, port)
        assert f"port {port} is taken" in gui.window.inbox.status.text()


def test_autosave_brings_the_draft_back_after_a_kill(make_gui, qtbot, paths: AppPaths,  # noqa: ANN001
                                                     tmp_path: Path) -> None:
    att = tmp_path / "notes.pdf"
    att.write_bytes(b"%PDF")
    gui = make_gui(start_inbox=False)
    fill(gui, to="carol@example.org", subject="Unsent thoughts", body="Half a sentence")
    gui.window.compose.html.setPlainText("<p>html too</p>")
    gui.window.compose.address_edits["cc"].setText("cc@example.org")
    gui.controller.compose.add_attachments([str(att)])
    gui.window.target.setCurrentIndex(gui.window.target.findData("builtin-memory"))
    store = gui.controller.draft_store
    # the autosave timer writes it within a few seconds, without any explicit save
    qtbot.waitUntil(lambda: (d := store.load()) is not None and d.subject == "Unsent thoughts"
                    and bool(d.attachments), timeout=10000)
    assert not gui.controller.compose.dirty
    # a second window on the same data dir, as after a crash: no shutdown() of the first
    second = make_gui(start_inbox=False)
    draft = second.controller.compose.draft
    assert (draft.to, draft.cc, draft.subject, draft.body, draft.html) == (
        "carol@example.org", "cc@example.org", "Unsent thoughts", "Half a sentence",
        "<p>html too</p>")
    assert [a.path for a in draft.attachments] == [str(att)]
    assert second.window.compose.subject.text() == "Unsent thoughts"
    assert second.window.target.currentData() == "builtin-memory"
    assert "is back" in second.window.compose.banner.text.text()
    qtbot.waitUntil(lambda: second.window.compose.attachments.topLevelItem(0).text(3) == "ok")


def test_quit_saves_the_draft_and_settings(make_gui, qtbot, paths: AppPaths) -> None:  # noqa: ANN001
    paths.settings_file.parent.mkdir(parents=True, exist_ok=True)
    paths.settings_file.write_text('{"inbox_port": 0}')  # set by hand: any free port
    gui = make_gui()
    port = gui.controller.inbox.port
    fill(gui, subject="Saved on quit")
    gui.window.target.setCurrentIndex(gui.window.target.findData("builtin-console"))
    quit_window(gui, qtbot)  # the window closes at once; the writes are back soon after
    assert gui.controller.draft_store.load().subject == "Saved on quit"
    settings = json.loads(paths.settings_file.read_text())
    assert settings["target"] == "builtin-console"
    assert settings["inbox_port"] == 0  # kept, not overwritten
    assert not gui.controller.inbox.running
    import socket

    def port_closed() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) != 0

    qtbot.waitUntil(port_closed, timeout=10000)  # the inbox process ends behind the window
    assert port_closed()  # the inbox port is closed


def _gone(pid: int) -> bool:
    """True when process ``pid`` has exited (a zombie nobody reaps counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_quitting_returns_at_once_while_the_inbox_and_a_stuck_send_end_behind(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore,
        controlled_keyring: ControlledKeyring) -> None:
    """Quitting used to wait on the GUI thread for the inbox process (5 s before a kill) and
    the workers (5 s): here the inbox process does not answer (stopped) and a send waits on
    the keyring. The window closes and the event loop is back at once; the draft and settings
    are written; the process and the send end behind, and finish() sees them gone."""
    with SMTPServer("plain", auth={"alice": "pw"}) as server:
        profile = add_profile(paths, name="Slow keyring", kind="smtp", host="127.0.0.1",
                              port=server.port, security="none", username="alice")
        gui = make_gui(secrets)  # with the real inbox process
        c = gui.controller
        secrets.set(profile.id, "pw")
        gate = controlled_keyring.hold("get")  # a keyring behind an unlock prompt
        assert c.target.select(profile.id)
        fill(gui, subject="Written just before quitting")
        job = c.sending.send()
        assert job is not None
        qtbot.waitUntil(lambda: "get" in controlled_keyring.calls, timeout=10000)
        child = c.inbox.server.pid
        assert child is not None
        os.kill(child, signal.SIGSTOP)  # answers neither the end of its stdin nor SIGTERM
        outcomes: list = []
        c.sending.finished.connect(outcomes.append)
        ready: list[float] = []
        c.quit_ready.connect(lambda: ready.append(time.monotonic()))
        back: list[float] = []
        asked: list[str] = []
        c.confirm_quit_during_send = lambda: asked.append("quit") or "cancel"
        try:
            started = time.monotonic()
            gui.window.close()  # asked first: "Cancel the send and quit"
            QTimer.singleShot(0, lambda: back.append(time.monotonic()))
            qtbot.waitUntil(lambda: bool(back), timeout=1500)
            assert back[0] - started < 1.5, f"the loop was back after {back[0] - started} s"
            qtbot.waitUntil(lambda: bool(ready), timeout=10000)  # the loop may end now
            print(f"\nquit: event loop back after {(back[0] - started) * 1000:.0f} ms, "
                  f"writes back after {(ready[0] - started) * 1000:.0f} ms")
            assert asked == ["quit"]
            assert not gui.window.isVisible() and not c.inbox.running
            # nothing is lost: the draft and the settings are on disk
            draft = DraftStore(paths).load()
            assert draft.subject == "Written just before quitting"
            assert json.loads(paths.settings_file.read_text())["target"] == profile.id
            assert not outcomes  # the send is still ending, behind
        finally:
            gate.set()
        assert gui.finish(30)  # the process is killed after its grace period; the send ends
        assert _gone(child)
        qtbot.waitUntil(lambda: bool(outcomes), timeout=10000)
        assert outcomes[0].cancelled and not outcomes[0].ok
        assert server.messages == []  # cancelled before it connected


def test_quitting_during_a_send_asks_and_wait_lets_it_finish_first(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore,
        controlled_keyring: ControlledKeyring) -> None:
    """Ctrl+Q during a send used to quit at once and record the send as cancelled: now it
    asks; Wait keeps the window until the message is out, then quits by itself."""
    with SMTPServer("plain", auth={"alice": "pw"}) as server:
        profile = add_profile(paths, name="Slow keyring", kind="smtp", host="127.0.0.1",
                              port=server.port, security="none", username="alice")
        gui = make_gui(secrets, start_inbox=False)
        c = gui.controller
        secrets.set(profile.id, "pw")
        gate = controlled_keyring.hold("get")
        assert c.target.select(profile.id)
        fill(gui, subject="Going out while I quit")
        assert c.sending.send() is not None
        qtbot.waitUntil(lambda: "get" in controlled_keyring.calls, timeout=10000)
        asked: list[str] = []
        c.confirm_quit_during_send = lambda: asked.append("quit") or "wait"
        outcomes: list = []
        c.sending.finished.connect(outcomes.append)
        try:
            gui.window.act_quit.trigger()  # Ctrl+Q
            assert asked == ["quit"]
            assert gui.window.isVisible() and c.sending.sending  # still sending
            assert "quits when the message has been sent" in (
                gui.window.statusBar().currentMessage())
        finally:
            gate.set()
        with qtbot.waitSignal(c.quit_ready, timeout=15000):
            qtbot.waitUntil(lambda: bool(outcomes), timeout=15000)
        assert outcomes[0].ok and not outcomes[0].cancelled
        assert len(server.messages) == 1
        assert not gui.window.isVisible()
        assert asked == ["quit"]  # asked once


# -- one mailgui per data folder ---------------------------------------------------------------


def test_a_second_instance_on_the_same_data_folder_refuses_to_start(tmp_path: Path) -> None:
    paths = AppPaths.under(tmp_path / "one")
    first = subprocess.Popen(mailgui_command(paths), cwd=ROOT, env=offscreen_env(), text=True,
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
        second = subprocess.run(mailgui_command(paths), cwd=ROOT,
                                env=offscreen_env(MAILGUI_EXIT_WHEN_READY="1"),
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert (f"mailgui is already running with this data folder (pid {first.pid}): "
                f"{paths.data_dir}. Close it, or start with --data-dir OTHER") in second.stderr
        assert "mailgui: ready" not in second.stderr
        # another data folder is fine meanwhile
        other = subprocess.run(mailgui_command(AppPaths.under(tmp_path / "two")), cwd=ROOT,
                               env=offscreen_env(MAILGUI_EXIT_WHEN_READY="1"), capture_output=True,
                               text=True, timeout=120)
        assert other.returncode == 0 and "mailgui: ready" in other.stderr
        assert first.poll() is None
    finally:
        first.kill()  # dies without unlocking: the lock it leaves is stale
        first.wait(30)
        first.stderr.close()
    assert (paths.data_dir / "mailgui.lock").exists()
    again = subprocess.run(mailgui_command(paths), cwd=ROOT,
                           env=offscreen_env(MAILGUI_EXIT_WHEN_READY="1"),
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


def test_keyboard_shortcuts(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    w = gui.window
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    fill(gui, subject="Shortcuts")
    w.compose.subject.setFocus()
    qtbot.keyClick(w.compose.subject, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier)
    assert w.side.currentWidget() is w.source
    store = gui.controller.draft_store
    qtbot.keyClick(w.compose.subject, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: store.load() is not None and store.load().subject == "Shortcuts")
    # said once the write is back (not before: it may fail)
    qtbot.waitUntil(lambda: "Draft saved" in w.statusBar().currentMessage())
    with qtbot.waitSignal(gui.controller.sending.finished, timeout=10000) as blocker:
        qtbot.keyClick(w.compose.subject, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args[0].ok
    qtbot.waitUntil(lambda: len(gui.controller.inbox.messages) == 1)


def test_delete_key_removes_from_lists(make_gui, qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    gui = make_gui()
    w = gui.window
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    files = []
    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text(name)
        files.append(str(tmp_path / name))
    gui.controller.compose.add_attachments(files)
    tree = w.compose.attachments
    tree.setCurrentItem(tree.topLevelItem(0))
    tree.setFocus()
    qtbot.keyClick(tree, Qt.Key.Key_Delete)
    assert [a.name for a in gui.controller.compose.draft.attachments] == ["b.txt"]
    w.compose.tabs.setCurrentIndex(2)
    gui.controller.compose.add_header_row()
    table = w.compose.headers
    table.setCurrentCell(0, 0)
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_Delete)
    assert table.rowCount() == 0
    fill(gui, subject="To be deleted")
    send(gui, qtbot)
    qtbot.waitUntil(lambda: len(gui.controller.inbox.messages) == 1)
    w.show_pane(w.inbox)
    inbox = w.inbox.list
    inbox.setCurrentItem(inbox.topLevelItem(0))
    inbox.setFocus()
    qtbot.keyClick(inbox, Qt.Key.Key_Delete)
    assert gui.controller.inbox.messages == []


def test_help_lists_the_keyboard_shortcuts(make_gui, monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda _p, _t, text: shown.append(text))
    gui.window.act_keys.trigger()
    (text,) = shown
    keys = dict(gui.controller.shortcuts())
    assert keys["Send"].startswith("Ctrl+Return") and keys["Show source"] == "Ctrl+U"
    assert keys["Inbox pane"] == "Alt+1" and "F1" in keys["Keyboard shortcuts"]
    assert "Ctrl+U" in text and "Alt+1" in text


def test_open_eml_and_save_eml(make_gui, qtbot, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    pdf = tmp_path / "invoice.pdf"
    pdf.write_bytes(b"%PDF-1.7 " + os.urandom(3000))
    original = Draft(to="Dora <dora@example.com>", subject="Invoice 42", body="Attached.\n",
                     html="<p>Attached.</p>", headers=[("X-Order", "42")],
                     attachments=[AttachmentRef(str(pdf))])
    eml = tmp_path / "in.eml"
    eml.write_bytes(serialize(build_message(original)).getvalue())
    gui = make_gui(start_inbox=False)
    gui.controller.open_eml(str(eml))
    qtbot.waitUntil(lambda: gui.controller.compose.draft.subject == "Invoice 42")
    view = gui.window.compose
    assert view.address_edits["to"].text() == "Dora <dora@example.com>"
    assert view.body.toPlainText() == "Attached.\n"
    assert view.html.toPlainText().strip() == "<p>Attached.</p>"
    assert view.headers.item(0, 0).text() == "X-Order"
    saved = Path(gui.controller.compose.draft.attachments[0].path)
    assert saved.read_bytes() == pdf.read_bytes()
    assert saved.is_relative_to(gui.paths.drafts_dir)
    qtbot.waitUntil(lambda: view.attachments.topLevelItem(0).text(2) == "application/pdf")
    # save the source as .eml (the dialog is patched), and copy it
    target = tmp_path / "out.eml"
    monkeypatch.setattr(gui.controller.source, "ask_save_path", lambda: str(target))
    qtbot.mouseClick(gui.window.source.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(target.exists)
    import email
    import email.policy

    again = email.message_from_bytes(target.read_bytes(), policy=email.policy.default)
    assert again["Subject"] == "Invoice 42" and again["X-Order"] == "42"
    qtbot.mouseClick(gui.window.source.copy, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Subject: Invoice 42" in QGuiApplication.clipboard().text())


def test_profiles_duplicate_and_delete(make_gui, qtbot, monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    profiles = gui.controller.profiles
    dialog = profiles.open_dialog()
    qtbot.mouseClick(dialog.new, Qt.MouseButton.LeftButton)
    dialog.name.setText("Staging")
    dialog.host.setText("smtp.staging.example")
    qtbot.mouseClick(dialog.save, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dialog.duplicate, Qt.MouseButton.LeftButton)
    names = [p.name for p in gui.controller.profile_store.user_profiles()]
    assert names == ["Staging", "Staging (copy)"]
    assert gui.window.target.findText("Staging (copy)") >= 0
    dialog.kind.setCurrentIndex(dialog.kind.findData("file"))
    assert dialog.file_group.isVisibleTo(dialog) and not dialog.smtp_group.isVisibleTo(dialog)
    qtbot.mouseClick(dialog.save, Qt.MouseButton.LeftButton)
    assert "Choose a folder" in dialog.test_result.text()
    monkeypatch.setattr(profiles, "confirm_delete", lambda p: True)
    qtbot.mouseClick(dialog.delete, Qt.MouseButton.LeftButton)
    assert [p.name for p in gui.controller.profile_store.user_profiles()] == ["Staging"]
    assert gui.window.target.findText("Staging (copy)") < 0
    # security switches the port between the usual ones
    dialog.security.setCurrentIndex(dialog.security.findData("tls"))
    assert dialog.port.value() == 465


def test_unsaved_profile_edits_are_never_dropped_silently(make_gui, qtbot,  # noqa: ANN001
                                                          monkeypatch) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    profiles, store = gui.controller.profiles, gui.controller.profile_store
    dialog = profiles.open_dialog()
    for name in ("One", "Two"):
        qtbot.mouseClick(dialog.new, Qt.MouseButton.LeftButton)
        dialog.name.setText(name)
        dialog.host.setText(f"{name.lower()}.example.com")
        qtbot.mouseClick(dialog.save, Qt.MouseButton.LeftButton)
    answers: list[str] = []
    asked: list[str] = []

    def ask(name: str, default: str) -> str:
        asked.append(name)
        return answers.pop(0)

    monkeypatch.setattr(profiles, "ask_unsaved", ask)
    dialog.list.setCurrentRow(0)  # "One", nothing changed: no question
    assert asked == [] and dialog.name.text() == "One"
    dialog.host.setText("edited.example.com")
    answers.append("cancel")
    dialog.list.setCurrentRow(1)
    assert asked == ["One"] and dialog.list.currentRow() == 0
    assert dialog.host.text() == "edited.example.com"  # still there to save
    answers.append("save")
    dialog.list.setCurrentRow(1)
    assert dialog.name.text() == "Two" and dialog.list.currentRow() == 1
    assert store.get(store.user_profiles()[0].id).host == "edited.example.com"
    dialog.host.setText("typo.example.com")
    answers.append("cancel")
    dialog.close()  # Esc, Close and the window's X all end here
    assert dialog.isVisible()
    answers.append("discard")
    dialog.close()
    assert not dialog.isVisible()
    assert [p.host for p in store.user_profiles()] == ["edited.example.com", "two.example.com"]
    assert len(asked) == 4


def test_command_line_version_and_no_display(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    done = subprocess.run([sys.executable, "-m", "mailgui", "--version"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"mailgui {__version__}"
    done = subprocess.run([sys.executable, "-m", "mailgui"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "needs a graphical display" in done.stderr
    env["DISPLAY"] = ":987"  # no X server there
    code = "import mailgui.app as a; raise SystemExit(a.main([]))"
    done = subprocess.run([sys.executable, "-c", code],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "can't open the X display ':987'" in done.stderr
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_long_sessions_do_not_leak_references_to_none_or_bools(qapp) -> None:  # noqa: ANN001
    """PySide6-Essentials 6.12.0 on CPython 3.11 dropped a reference to None on every void
    call and to True/False on every emit, and the interpreter aborted after a few thousand
    calls; pyproject.toml keeps PySide6 below 6.12 for that. This fails (or crashes) if a
    build with the bug comes back."""
    import sys

    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QLineEdit

    class Emitter(QObject):
        ping = Signal(str)
        flag = Signal(bool)

    edit = QLineEdit()
    emitter = Emitter()
    emitter.ping.connect(edit.setText)
    emitter.flag.connect(edit.setEnabled)
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(20000):  # more than None's and True's normal reference counts
        emitter.ping.emit("x")
        emitter.flag.emit(True)
        edit.setText("y")
    assert edit.text() == "y"
    after = sys.getrefcount(None), sys.getrefcount(True)
    assert abs(after[0] - before[0]) < 100 and abs(after[1] - before[1]) < 100


def test_inbox_and_sent_log_survive_a_restart(make_gui, qtbot, paths: AppPaths) -> None:  # noqa: ANN001
    gui = make_gui()
    fill(gui, subject="Kept")
    assert send(gui, qtbot).ok
    qtbot.waitUntil(lambda: len(gui.controller.inbox.messages) == 1)
    assert gui.window.windowTitle() == "Kept \u2014 mailgui"
    quit_window(gui, qtbot)
    assert gui.finish(15)  # the inbox process is gone too: the next one has the folder
    again = make_gui()
    qtbot.waitUntil(lambda: len(again.controller.inbox.messages) == 1)
    assert again.window.inbox.list.topLevelItem(0).text(3) == "Kept"
    qtbot.waitUntil(lambda: again.window.sent.list.topLevelItemCount() == 1)
    assert again.window.sent.list.topLevelItem(0).text(2) == "Kept"
    again.window.sent.list.setCurrentItem(again.window.sent.list.topLevelItem(0))
    assert "S: 250" in again.window.sent.detail.toPlainText()


# -- the staged start of main(): the first frame first, the rest right after ---------------------


def _staged(qtbot, paths: AppPaths, **kwargs: object):  # noqa: ANN001, ANN202
    from mailgui.app import MailGui

    gui = MailGui(paths, staged=True, **kwargs)
    qtbot.addWidget(gui.window)
    gui.show()
    qtbot.waitExposed(gui.window)
    return gui


def _end(gui) -> None:  # noqa: ANN001
    gui.shutdown()
    assert gui.finish(30), "a quit left something running"


def test_a_staged_start_shows_the_first_frame_and_keeps_what_is_typed(qtbot, paths: AppPaths,  # noqa: ANN001
                                                                      ) -> None:
    gui = _staged(qtbot, paths)
    try:
        w = gui.window
        assert not gui.controller.started  # no worker pool, no inbox, no mailcore yet
        # the first frame shows what the whole window shows at a first start
        assert w.target.currentText() == "Local test inbox"
        assert w.compose.banner.isVisible() and "Welcome" in w.compose.banner.text.text()
        assert w.compose.banner.action.isVisible()
        assert "(the profile's default From)" in w.compose.from_edit.placeholderText()
        assert w.inbox.stack.currentWidget() is w.inbox.hint
        assert not w.inbox.detail_box.isVisible()  # (so no browser engine starts behind it)
        assert not w.compose.remove_attachment.isEnabled()
        assert [w.side.tabText(i) for i in range(w.side.count())] == [
            "Inbox", "Source", "Transcript", "Console", "Memory", "Sent"]
        to = w.compose.address_edits["to"]
        assert w.focusWidget() is to
        qtbot.keyClicks(to, "ann@example.org")  # typed before the rest is built
        gui.complete()
        assert gui.controller.started
        assert to.text() == "ann@example.org" and to.cursorPosition() == len(to.text())
        assert gui.controller.compose.draft.to == "ann@example.org"
        assert gui.controller.compose.dirty  # typed, so not taken for saved
        assert w.compose.banner.isVisible() and "Welcome" in w.compose.banner.text.text()
        qtbot.waitUntil(lambda: gui.controller.inbox.port != 0, timeout=10000)
        # the panes behind the other tabs are the real ones now
        w.show_pane(w.source)
        assert w.side.currentWidget() is w.source
        assert w.side.tabText(w.side.currentIndex()) == "Source"
        assert gui.checks is not None
    finally:
        _end(gui)
    # what was typed is in the draft written at quit
    assert DraftStore(paths).load().to == "ann@example.org"


def test_a_staged_start_brings_a_draft_back_in_its_first_frame(qtbot, paths: AppPaths,  # noqa: ANN001
                                                               ) -> None:
    DraftStore(paths).save(Draft(to="Bob <bob@example.com>", subject="Half written",
                                 body="Dear Bob,\n", html="<p>Dear <b>Bob</b>,</p>"))
    gui = _staged(qtbot, paths, start_inbox=False)
    try:
        w = gui.window
        assert not gui.controller.started
        assert w.compose.address_edits["to"].text() == "Bob <bob@example.com>"
        assert w.compose.body.toPlainText() == "Dear Bob,\n"
        assert w.windowTitle() == "Half written \u2014 mailgui"
        assert "is back" in w.compose.banner.text.text()
        w.compose.subject.setFocus()
        w.compose.subject.end(False)
        qtbot.keyClicks(w.compose.subject, "!")
        # asking for a part of the controller builds the rest at once
        draft = gui.controller.compose.draft
        assert gui.controller.started
        assert draft.subject == "Half written!" and draft.to == "Bob <bob@example.com>"
        assert w.windowTitle() == "Half written! \u2014 mailgui"
        assert "is back" in w.compose.banner.text.text()
        assert draft.html == "<p>Dear <b>Bob</b>,</p>"  # (on its tab, not in the first frame)
        assert w.compose.html.toPlainText() == draft.html
    finally:
        _end(gui)


def test_a_draft_with_attachments_is_loaded_before_the_first_frame(qtbot, paths: AppPaths,  # noqa: ANN001
                                                                   tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello\n")
    DraftStore(paths).save(Draft(to="bob@example.com", attachments=[AttachmentRef(str(note))]))
    gui = _staged(qtbot, paths, start_inbox=False)
    try:
        # the compose controller shows attachments: the whole window is built at once
        assert gui.controller.started
        assert gui.window.compose.remove_attachment.isEnabled()
    finally:
        _end(gui)


def test_the_side_panes_are_built_when_first_asked_for(qtbot) -> None:  # noqa: ANN001
    from mailgui.views.main_window import LAZY_PANES, MainWindow
    from mailgui.views.panes import SourceView, TranscriptView

    w = MainWindow()
    qtbot.addWidget(w)
    titles = [w.side.tabText(i) for i in range(w.side.count())]
    assert titles == ["Inbox", "Source", "Transcript", "Console", "Memory", "Sent"]
    assert not any(isinstance(w.side.widget(i), SourceView) for i in range(w.side.count()))
    w.side.setCurrentIndex(2)  # the person opens the Transcript tab: it is built then
    assert isinstance(w.side.currentWidget(), TranscriptView)
    assert w.side.currentIndex() == 2 and w.transcript is w.side.currentWidget()
    source = w.source  # a controller asks for one: built in its place, the tab stays
    assert isinstance(source, SourceView) and w.side.indexOf(source) == 1
    assert w.side.currentIndex() == 2
    w.build_panes()
    assert [w.side.tabText(i) for i in range(w.side.count())] == titles
    assert [type(w.side.widget(i + 1)) for i in range(len(LAZY_PANES))] == [
        spec[1] for spec in LAZY_PANES]
    assert not w.side.tabIcon(1).isNull()  # Source keeps its icon


def test_a_staged_start_says_at_once_that_profiles_could_not_be_read(qtbot,  # noqa: ANN001
                                                                    paths: AppPaths) -> None:
    paths.profiles_file.parent.mkdir(parents=True, exist_ok=True)
    paths.profiles_file.write_text('{"version": 1, "profiles": [,]}')
    gui = _staged(qtbot, paths, start_inbox=False)
    try:
        banner = gui.window.compose.banner
        assert not gui.controller.started
        assert banner.isVisible() and banner.kind == "warning"
        first = banner.text.text()
        assert "could not all be read" in first
        gui.complete()
        assert banner.isVisible() and banner.kind == "warning" and banner.text.text() == first
    finally:
        _end(gui)
