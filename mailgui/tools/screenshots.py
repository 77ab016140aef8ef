"""Regenerate docs/screenshots/*.png: the main states of the window, with fixed content.

    Xvfb :99 -screen 0 1280x800x24 -nolisten tcp &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb bash scripts/sandbox.sh python -m mailgui.tools.screenshots

(scripts/sandbox.sh gives a throwaway HOME and a real keyring; offscreen works too.) Everything
runs against the app's own local test inbox and loopback ports, in a temporary data folder.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication, QWidget

HTML = """<div style="font-family: sans-serif">
<h2 style="color:#2f6fb5">Release 2.4 is out</h2>
<p>Hello team,</p>
<p>the new build passed <b>all 1,284 tests</b>. Highlights:</p>
<ul><li>faster sync</li><li>dark mode</li><li>a smaller installer</li></ul>
<p><img src="https://cdn.example.com/banner.png" width="320" height="60"></p>
<p>Cheers,<br>Alice</p></div>"""

BODY = """Hello team,

the new build passed all 1,284 tests. Highlights:

 * faster sync
 * dark mode
 * a smaller installer

The release notes and the test report are attached.

Cheers,
Alice
"""


def wait(condition: Callable[[], bool], timeout_ms: int = 10000) -> None:
    timer = QElapsedTimer()
    timer.start()
    while not condition():
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        if timer.elapsed() > timeout_ms:
            raise TimeoutError("the app did not reach the expected state")


def settle(ms: int = 300) -> None:
    timer = QElapsedTimer()
    timer.start()
    while timer.elapsed() < ms:
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)


def save(widget: QWidget, path: Path) -> None:
    settle()
    widget.grab().save(str(path))
    print(f"saved {path}")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree_items(tree) -> list:  # noqa: ANN001 - a QTreeWidget
    items, stack = [], [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    while stack:
        item = stack.pop()
        items.append(item)
        stack.extend(item.child(i) for i in range(item.childCount()))
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[2] / "docs" / "screenshots")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("mailgui")
    from mailgui.app import MailGui
    from mailgui.model.paths import AppPaths
    from mailgui.model.profiles import Profile
    from mailgui.views.common import icon

    app.setWindowIcon(icon("mailgui"))
    root = Path(tempfile.mkdtemp(prefix="mailgui-shots-"))
    files = root / "files"
    files.mkdir()
    (files / "release-notes.pdf").write_bytes(b"%PDF-1.7\n" + bytes(180_000))
    (files / "test-report.html").write_text("<h1>1284 passed</h1>\n" * 300)
    (files / "installer.bin").write_bytes(bytes(250 * 1024 * 1024 // 1024) * 1024)

    gui = MailGui(AppPaths.under(root / "app"))
    w = gui.window
    w.resize(1280, 800)
    w.show()
    c = gui.controller
    wait(lambda: c.inbox.port != 0 and c.passwords.broker.keyring_status is not None)

    # 1. first start: the local inbox is offered
    save(w, out / "first-start.png")

    def fill(subject: str = "Release 2.4 is out") -> None:
        v = w.compose
        v.address_edits["to"].setText("Team <team@example.com>, qa@example.com")
        v.address_edits["cc"].setText("Product <product@example.com>")
        v.address_edits["from_email"].setText("Alice Martin <alice@example.com>")
        v.subject.setText(subject)
        v.body.setPlainText(BODY)
        v.html.setPlainText(HTML)

    # a message in the inbox first
    fill("Nightly build #812 failed")
    w.compose.body.setPlainText("The nightly build failed at step 4 (integration tests).\n")
    w.compose.html.setPlainText("")
    c.sending.send()
    wait(lambda: len(c.inbox.messages) == 1)
    c.confirm_discard = lambda: True  # type: ignore[method-assign]
    c.new_draft()
    fill()
    c.compose.add_attachments([str(files / "release-notes.pdf"), str(files / "test-report.html")])
    wait(lambda: len(c.compose.info) == 2)
    fill()
    w.show_pane(w.inbox)
    w.compose.banner.hide()
    wait(lambda: w.inbox.parts.topLevelItemCount() == 1)
    save(w, out / "main.png")

    # 2. HTML editor with the preview, remote image blocked
    w.compose.tabs.setCurrentWidget(w.compose.html_page)
    preview = w.compose.html_preview
    wait(lambda: w.compose.remote_bar.isVisible())
    wait(lambda: (preview.engine_ready or preview.fallback is not None) and not preview.pending,
         20000)
    settle(500)
    save(w, out / "html.png")
    # 2b. the same at a phone's width, as the Gmail and Outlook apps invert it
    preview.set_width("phone")
    preview.set_colour_mode("inverted")
    wait(lambda: not preview.pending, 20000)
    settle(500)
    save(w, out / "preview-phone.png")
    preview.set_width("desktop")
    preview.set_colour_mode("light")
    w.compose.tabs.setCurrentWidget(w.compose.text_page)

    # 3. the source view
    w.show_pane(w.source)
    wait(lambda: c.source.last is not None)
    save(w, out / "source.png")

    # 4. the inbox with a received message (the Parts tab)
    c.sending.send()
    wait(lambda: len(c.inbox.messages) == 2)
    w.compose.banner.hide()
    # the newest is opened (an arrival never takes the selection from the message being read)
    w.inbox.list.setCurrentItem(w.inbox.list.topLevelItem(0))
    wait(lambda: "Release 2.4" in w.inbox.summary.text())
    w.inbox.detail.setCurrentWidget(w.inbox.parts_page)
    report = [i for i in _tree_items(w.inbox.parts) if i.text(1) == "test-report.html"]
    if report:
        w.inbox.parts.setCurrentItem(report[0])  # a part is shown as it is
        wait(lambda: w.inbox.part_view.currentWidget() is w.inbox.part_text)
    save(w, out / "inbox.png")
    # 4b. its Message tab: the HTML as the browser engine renders it
    w.inbox.detail.setCurrentIndex(0)
    rendered = w.inbox.rendered
    wait(lambda: (rendered.engine_ready or rendered.fallback is not None)
         and not rendered.pending, 20000)
    settle(500)
    save(w, out / "inbox-message.png")

    # 5. sending with progress (a 250 MB attachment to the local inbox), then cancel
    c.compose.add_attachments([str(files / "installer.bin")])
    w.compose.subject.setText("Installer build 2.4.0")
    job = c.sending.send()
    progressed: list[int] = []
    job.signals.progress.connect(lambda _p, done, _t: progressed.append(done))
    wait(lambda: any(d > 40_000_000 for d in progressed), 60000)
    save(w, out / "sending.png")
    c.sending.cancel()
    wait(lambda: not c.sending.sending, 20000)
    c.compose.draft.attachments.pop()
    c.compose.load(c.compose.draft)

    # 6. an error: the SMTP server is not there
    relay = Profile("Company relay", "smtp", host="127.0.0.1", port=closed_port(),
                    security="none", from_email="Alice Martin <alice@example.com>", timeout=5)
    c.profile_store.upsert(relay)
    c.target.fill_combo()
    c.target.select(relay.id)
    w.compose.subject.setText("Release 2.4 is out")
    c.sending.send()
    wait(lambda: not c.sending.sending and w.compose.banner.kind == "error")
    w.compose.banner.detail_button.setChecked(True)
    save(w, out / "error.png")

    # 7. the profile editor
    secure = Profile("Example Mail (STARTTLS)", "smtp", host="smtp.example.com", port=587,
                     security="starttls", username="alice@example.com",
                     from_email="Alice Martin <alice@example.com>", timeout=30,
                     dkim_enabled=True, dkim_domain="example.com", dkim_selector="s202612")
    c.profile_store.upsert(secure)
    c.target.fill_combo()
    c.target.select(secure.id)
    dialog = c.profiles.open_dialog()
    dialog.resize(900, 760)  # the DKIM section fits without scrolling
    settle(500)
    save(dialog, out / "profiles.png")
    dialog.close()

    # 8. the Checks tab of a received message with findings (the inbox process checked it)
    checks_html = ('<html><head><style>.card { display: flex; position: fixed; }</style></head>\n'
                   '<body>\n<div class="card" style="background-image: url(bg.png)">\n'
                   '<img src="https://cdn.example.com/sale.png" width="320">\n'
                   '<p>Spring sale: 40 % off everything.</p>\n'
                   '<a href="https://shop.example.com/unsubscribe?u=8f14e45fceea167a">'
                   'Unsubscribe</a>\n</div>\n</body></html>')
    c.compose.draft.attachments.clear()
    c.compose.load(c.compose.draft)
    c.target.select("builtin-inbox")
    w.compose.subject.setText("Spring sale")
    w.compose.body.setPlainText("Spring sale: 40 % off everything.\n")
    w.compose.html.setPlainText(checks_html)
    count = len(c.inbox.messages)
    c.sending.send()
    wait(lambda: len(c.inbox.messages) == count + 1, 20000)
    w.compose.banner.hide()
    w.show_pane(w.inbox)
    newest = c.inbox.messages[-1].id
    w.inbox.list.setCurrentItem(c.inbox._find_item(newest))  # noqa: SLF001
    checks = c.inbox.checks.checks
    wait(lambda: checks.key == newest and checks.report is not None, 30000)
    w.inbox.detail.setCurrentWidget(w.inbox.checks)
    items = w.inbox.checks.finding_items()
    flex = [i for i in items if "flex" in (w.inbox.checks.finding_of(i).location.element or "")]
    if flex or items:
        w.inbox.checks.tree.setCurrentItem((flex or items)[0])
    save(w, out / "checks.png")

    gui.shutdown()
    w.close()
    QTimer.singleShot(0, app.quit)
    shutil.rmtree(root, ignore_errors=True)  # the 250 MB test file included
    return 0


if __name__ == "__main__":
    sys.exit(main())
