"""The checks in the window: the inbox's badge column and Checks tab on what the real inbox
process received, going from a finding to its line, the composer's Check (Ctrl+K) on the
bytes the source shows, the link check against a loopback HTTP server (asked first, single-use
links skipped), the spam score from a real spamd, pasted DKIM keys."""

from __future__ import annotations

import http.server
import smtplib
import threading
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QPoint, QRect

from mailcore.checks import MessageView, Severity
from mailgui.model.checks import (
    PENDING,
    CheckSettings,
    badge,
    dkim_verdict,
    run_local,
    summary_line,
)
from mailgui.model.source import serialized_draft
from tests.gui.test_checks_model import HTML, html_message, rsa_key, signed
from tests.support.gui import fill


def deliver(gui, raw: bytes) -> None:  # noqa: ANN001
    with smtplib.SMTP("127.0.0.1", gui.controller.inbox.port, timeout=10) as smtp:
        smtp.sendmail("shop@example.com", ["qa@example.com"], raw)


def shown_report(qtbot, gui, msg_id: str):  # noqa: ANN001, ANN201
    """Select the message and wait for its checks in the Checks tab."""
    inbox = gui.controller.inbox
    qtbot.waitUntil(lambda: inbox._find_item(msg_id) is not None, timeout=10000)  # noqa: SLF001
    gui.window.inbox.list.setCurrentItem(inbox._find_item(msg_id))  # noqa: SLF001
    checks = inbox.checks.checks
    qtbot.waitUntil(lambda: checks.key == msg_id and checks.report is not None, timeout=60000)
    return checks.report


def test_inbox_badge_and_checks_tab_and_a_finding_goes_to_its_line(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(inbox_port=0)
    inbox = gui.controller.inbox
    deliver(gui, html_message())
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=15000)
    msg_id = inbox.messages[0].id
    item = inbox._find_item(msg_id)  # noqa: SLF001
    column = inbox.checks.BADGE_COLUMN
    # the badge comes once the inbox process has checked the message
    qtbot.waitUntil(lambda: inbox._find_item(msg_id).text(column) != PENDING.text,  # noqa: SLF001
                    timeout=60000)
    expected = run_local(inbox.store.read(msg_id))
    item = inbox._find_item(msg_id)  # noqa: SLF001
    assert item.text(column) == badge(expected).text
    assert summary_line(expected) in item.toolTip(column)
    assert "DKIM none" in item.toolTip(column)

    report = shown_report(qtbot, gui, msg_id)
    v = gui.window.inbox
    assert v.checks.summary.text() == summary_line(report)
    serious = sum(1 for f in report.findings if f.severity >= Severity.WARNING)
    assert v.detail.tabText(v.detail.indexOf(v.checks)) == f"Checks ({serious})"
    assert len(v.checks.finding_items()) == len(report.findings)
    assert v.checks.clients.topLevelItemCount() == len(
        report.result("clients").summary["families"])

    # an HTML finding with a line: the HTML source tab, that line
    qtbot.waitUntil(lambda: inbox._shown is not None, timeout=10000)  # noqa: SLF001
    html_part = MessageView(inbox.store.read(msg_id)).html_parts[0].section
    target = next(i for i in v.checks.finding_items()
                  if (f := v.checks.finding_of(i)).location.part == html_part
                  and f.location.line and f.location.line > 1)
    finding = v.checks.finding_of(target)
    v.detail.setCurrentWidget(v.checks)
    v.checks.tree.setCurrentItem(target)
    assert finding.message in v.checks.detail.text() or finding.fix
    v.checks.go.click()
    assert v.detail.currentIndex() == 0 and v.body.currentWidget() is v.html_source
    cursor = v.html_source.textCursor()
    assert cursor.blockNumber() + 1 == finding.location.line
    assert cursor.selectedText() == HTML.splitlines()[finding.location.line - 1]

    # a finding on a header the message has: the Headers tab, that header selected
    names = {name.lower() for name, _value in inbox._shown.headers}  # noqa: SLF001
    header = next(i for i in v.checks.finding_items()
                  if v.checks.finding_of(i).location.part == "0"
                  and (v.checks.finding_of(i).location.element or "").lower() in names)
    v.detail.setCurrentWidget(v.checks)
    v.checks.tree.itemActivated.emit(header, 0)
    assert v.detail.currentIndex() == 1
    name = v.checks.finding_of(header).location.element.lower()
    assert v.headers.currentItem().text(0).lower().endswith(name)

def test_composer_check_runs_on_the_bytes_the_source_shows(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(inbox_port=0)
    w = gui.window
    assert w.act_check.shortcut().toString() == "Ctrl+K"
    fill(gui, to="qa@example.com", subject="Spring sale", body="Spring sale", html=HTML)
    w.act_check.trigger()
    composer = gui.checks
    qtbot.waitUntil(lambda: composer.checks is not None and composer.checks.report is not None,
                    timeout=60000)
    report = composer.checks.report
    assert composer.dialog.isVisible()
    # the checks of these very bytes: the source pane's serialisation
    raw = composer._raw  # noqa: SLF001
    draft = gui.controller.compose.draft
    again = run_local(serialized_draft(draft, gui.controller.target.current()).getvalue())
    assert sorted(f.code for f in report.findings) == sorted(f.code for f in again.findings)
    assert MessageView(raw).html_parts[0].text.replace("\r\n", "\n").strip() == HTML.strip()
    panel = composer.dialog.panel
    assert panel.summary.text() == summary_line(report)

    html_part = MessageView(raw).html_parts[0].section
    target = next(i for i in panel.finding_items()
                  if panel.finding_of(i).location.part == html_part
                  and panel.finding_of(i).location.line)
    line = panel.finding_of(target).location.line
    # the draft's signature is checked with the profile's key: no keys to paste here
    assert panel.keys.isHidden() and not panel.keys.isVisible()
    assert target.statusTip(0) == panel.finding_of(target).message
    panel.tree.itemActivated.emit(target, 0)
    assert w.compose.tabs.currentWidget() is w.compose.html_page
    assert w.compose.html.textCursor().blockNumber() + 1 == line
    # the dialog steps aside: it no longer covers the editor it went to
    editor = QRect(w.compose.html.mapToGlobal(QPoint(0, 0)), w.compose.html.size())
    assert not composer.dialog.frameGeometry().intersects(editor)
    assert composer.dialog.isVisible()

    # Check again after a change: the new bytes are checked
    w.compose.html.setPlainText("<p>plain</p>")
    before = composer._generation  # noqa: SLF001
    composer.dialog.recheck.click()
    qtbot.waitUntil(lambda: composer._generation > before  # noqa: SLF001
                    and composer.checks.report is not None
                    and b"<p>plain</p>" in composer._raw, timeout=60000)  # noqa: SLF001


class _Pages(http.server.BaseHTTPRequestHandler):
    release = threading.Event()  # a /slow page answers once this is set

    def do_HEAD(self) -> None:  # noqa: N802
        if self.path.startswith("/slow"):
            _Pages.release.wait(20)
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        self.do_HEAD()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[str]:
    _Pages.release.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Pages.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_link_check_asks_first_and_skips_single_use_links(make_gui, qtbot, web) -> None:  # noqa: ANN001
    gui = make_gui(inbox_port=0)
    inbox = gui.controller.inbox
    page = (f'<p><a href="{web}/ok">ok</a> <a href="{web}/missing">gone</a> '
            f'<a href="{web}/unsubscribe?token=8f14e45fceea167a5a36dedd4bea2543">stop</a></p>')
    from mailcore import EmailMultiAlternatives
    from mailcore.wire import serialize

    msg = EmailMultiAlternatives("Links", "see the links", "shop@example.com",
                                 ["qa@example.com"])
    msg.attach_alternative(page, "text/html")
    deliver(gui, serialize(msg, linesep="\r\n").getvalue())
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=15000)
    msg_id = inbox.messages[0].id
    shown_report(qtbot, gui, msg_id)
    asked: list[list] = []

    def confirm(links: list) -> tuple[bool, bool]:
        asked.append(links)
        return True, False  # visit, but not the single-use ones

    checks = inbox.checks.checks
    checks.confirm_links = confirm
    panel = gui.window.inbox.checks
    panel.links.click()
    qtbot.waitUntil(lambda: checks.report is not None and checks.report.result("links")
                    is not None, timeout=60000)
    assert not checks.running and panel.links.isEnabled()
    links = asked[0]
    single = [link.url for link in links if link.single_use]
    assert single == [f"{web}/unsubscribe?token=8f14e45fceea167a5a36dedd4bea2543"]
    result = checks.report.result("links")
    assert not result.error, result.error
    entries = {entry["url"]: entry for entry in result.summary["links"]}
    visited = {url: e for url, e in entries.items() if e["status"] is not None}
    assert set(visited) == {link.url for link in links if not link.single_use}
    assert result.summary["visited"] == len(visited)
    assert visited[f"{web}/ok"]["status"] == 200
    assert visited[f"{web}/missing"]["status"] == 404
    assert result.summary["skipped_single_use"]
    group = next(panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount())
                 if panel.tree.topLevelItem(i).text(0).startswith("Links"))
    assert f"{len(visited)} visited" in group.text(0)
    # the local results stay beside it
    assert checks.report.result("clients") is not None


def test_pasted_dkim_key_makes_a_received_signature_pass(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(inbox_port=0)
    inbox = gui.controller.inbox
    pem, record = rsa_key()
    deliver(gui, signed(html_message(), pem))
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=15000)
    msg_id = inbox.messages[0].id
    report = shown_report(qtbot, gui, msg_id)
    assert dkim_verdict(report)[0] != "pass"  # no key, and DNS is off
    assert gui.controller.settings.get("checks_dkim_dns") in (None, False)
    # not a failure: the key is not at hand; the group says where to give it
    panel = gui.window.inbox.checks
    assert "DKIM: not verified (no key; DNS lookups are off)" in panel.summary.text()
    assert "DKIM: fail" not in panel.summary.text()
    group = next(panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount())
                 if panel.tree.topLevelItem(i).text(0).startswith("DKIM"))
    assert "DKIM keys\u2026" in group.text(0) and not panel.keys.isHidden()

    inbox.checks.choose_keys = lambda text, dns: (f"s1._domainkey.example.com {record}", False)
    gui.window.inbox.checks.keys.click()
    assert gui.controller.settings["checks_dkim_keys"] == {"s1._domainkey.example.com": record}
    checks = inbox.checks.checks
    qtbot.waitUntil(lambda: checks.report is not None and dkim_verdict(checks.report)[0]
                    == "pass", timeout=60000)
    assert "DKIM: pass" in gui.window.inbox.checks.summary.text()
    # the composer's check uses the same keys
    assert CheckSettings.from_settings(gui.controller.settings).dkim_keys == {
        "s1._domainkey.example.com": record}


def test_spam_score_from_a_real_spamd(make_gui, qtbot) -> None:  # noqa: ANN001
    from mailcore.checks import spam

    if spam.find_spamd() is None:
        pytest.fail("spamd is not installed (scripts/bootstrap.sh installs it)", pytrace=False)
    gui = make_gui(inbox_port=0)
    inbox = gui.controller.inbox
    deliver(gui, html_message())
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=15000)
    shown_report(qtbot, gui, inbox.messages[0].id)
    checks = inbox.checks.checks
    panel = gui.window.inbox.checks
    gui.window.inbox.detail.setCurrentWidget(panel)
    panel.spam.click()
    assert panel.progress.isVisible() and panel.cancel.isVisible()
    # the bar with no known end is labelled: what it waits for
    assert panel.busy.isVisible() and panel.busy.text() == "Starting SpamAssassin\u2026"
    qtbot.waitUntil(lambda: checks.report.result("spam") is not None
                    or panel.busy.text() == "Asking SpamAssassin\u2026", timeout=180000)
    qtbot.waitUntil(lambda: checks.report.result("spam") is not None, timeout=180000)
    result = checks.report.result("spam")
    assert not result.error, result.error
    score = result.summary["score"]
    assert f"Spam: {score:g}" in panel.summary.text()
    fired = {rule.get("name") for rule in result.summary["rules"]}
    assert {f.data.get("name") for f in result.findings} <= fired
    assert not panel.progress.isVisible() and not panel.busy.isVisible()


def test_link_check_can_be_cancelled(make_gui, qtbot, web) -> None:  # noqa: ANN001
    gui = make_gui(inbox_port=0)
    inbox = gui.controller.inbox
    from mailcore import EmailMultiAlternatives
    from mailcore.wire import serialize

    page = "".join(f'<a href="{web}/slow/{i}">page {i}</a> ' for i in range(8))
    msg = EmailMultiAlternatives("Slow", "slow links", "shop@example.com", ["qa@example.com"])
    msg.attach_alternative(f"<p>{page}</p>", "text/html")
    deliver(gui, serialize(msg, linesep="\r\n").getvalue())
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=15000)
    shown_report(qtbot, gui, inbox.messages[0].id)
    checks = inbox.checks.checks
    checks.confirm_links = lambda links: (True, False)
    panel = gui.window.inbox.checks
    gui.window.inbox.detail.setCurrentWidget(panel)
    panel.links.click()
    qtbot.waitUntil(lambda: checks._cancel is not None, timeout=20000)  # noqa: SLF001 - visiting
    assert panel.cancel.isVisible() and panel.progress.isVisible()
    panel.cancel.click()
    _Pages.release.set()  # the requests under way answer; no new one starts
    qtbot.waitUntil(lambda: not checks.running, timeout=60000)
    result = checks.report.result("links")
    assert result is not None and result.summary["cancelled"] is True
    assert result.summary["visited"] < result.summary["total"]
    assert not panel.cancel.isVisible() and panel.links.isEnabled()


def test_a_check_that_cannot_run_is_a_line_not_a_crash(qtbot) -> None:  # noqa: ANN001
    from mailcore.checks import CheckResult, Report
    from mailgui.views.checks import ChecksPanel

    panel = ChecksPanel()
    qtbot.addWidget(panel)
    panel.show()
    local = run_local(html_message())
    sentence = "SpamAssassin is not installed \u2014 apt install spamassassin spamc"
    panel.show_report(Report([*local.results, CheckResult("spam", error=sentence)]))
    assert panel.errors.isVisible() and sentence in panel.errors.text()
    group = next(panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount())
                 if panel.tree.topLevelItem(i).text(0).startswith("Spam score"))
    assert group.text(1) == "could not run" and group.toolTip(0) == sentence
    assert len(panel.finding_items()) == len(local.findings)


def test_composer_check_signs_as_the_profile_will_and_says_when_it_cannot(  # noqa: ANN001
        make_gui, qtbot, paths, secrets, tmp_path) -> None:
    """Ctrl+K with a signing profile: without its key, an error (a send would refuse); with it,
    the signature verifies with the profile's key and the check says the record was not looked
    up."""
    from mailgui.model import dkim
    from tests.gui.test_dkim_profiles import rsa_pem, signing_profile

    profile = signing_profile(paths, 2525)
    gui = make_gui(secrets, start_inbox=False)
    gui.controller.target.fill_combo()
    gui.controller.target.select(profile.id)
    fill(gui, to="qa@example.com", subject="Signed", body="Spring sale", html=HTML)

    def check() -> list:
        composer = gui.checks
        before = composer._generation  # noqa: SLF001
        gui.window.act_check.trigger()
        qtbot.waitUntil(lambda: composer._generation > before  # noqa: SLF001
                        and composer.checks.report is not None, timeout=60000)
        return composer.checks.report.result("dkim").findings

    findings = check()
    assert findings[0].code == "dkim.profile-cannot-sign"
    assert findings[0].severity is Severity.ERROR
    assert "no DKIM key is stored" in findings[0].message
    key = dkim.import_key(secrets, profile.id, rsa_pem(tmp_path))
    findings = check()
    assert [f.code for f in findings][:2] == ["dkim.pass", "dkim.record-not-checked"]
    assert key.record in findings[1].fix


def _links_message(web: str, subject: str) -> bytes:
    from mailcore import EmailMultiAlternatives
    from mailcore.wire import serialize

    page = f'<p><a href="{web}/ok">ok</a> <a href="{web}/missing">gone</a></p>'
    msg = EmailMultiAlternatives(subject, "see the links", "shop@example.com",
                                 ["qa@example.com"])
    msg.attach_alternative(page, "text/html")
    return serialize(msg, linesep="\r\n").getvalue()


def test_a_burst_gets_every_badge_while_one_message_is_read(make_gui, qtbot) -> None:  # noqa: ANN001
    """The messages not shown get their badges from the inbox process's checks in batches
    (one job for the CHECKED lines of a moment), the one shown its own at once."""
    gui = make_gui(inbox_port=0)
    inbox = gui.controller.inbox
    column = inbox.checks.BADGE_COLUMN
    deliver(gui, html_message())
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=15000)
    first = inbox.messages[0].id
    qtbot.waitUntil(lambda: inbox.selected_id() == first, timeout=10000)  # shown as it came
    bursts = [html_message(cc=[f"cc{i}@example.com"]) if i % 2 else
              html_message(headers={"List-Unsubscribe": "<https://example.com/u>"})
              for i in range(6)]
    for raw in bursts:
        deliver(gui, raw)
    qtbot.waitUntil(lambda: len(inbox.messages) == 7, timeout=15000)
    ids = [m.id for m in inbox.messages]

    def badged() -> bool:
        items = [inbox._find_item(i) for i in ids]  # noqa: SLF001
        return all(it is not None and it.text(column) != PENDING.text for it in items)

    qtbot.waitUntil(badged, timeout=60000)
    assert inbox.selected_id() == first  # the one being read stayed
    for msg_id in ids:
        item = inbox._find_item(msg_id)  # noqa: SLF001
        expected = badge(run_local(inbox.store.read(msg_id)))
        assert item.text(column) == expected.text, msg_id
        assert item.toolTip(column) == expected.tooltip, msg_id
    assert inbox.checks._checked == []  # noqa: SLF001 - nothing left waiting


def test_link_results_stay_with_their_message_and_the_badge_counts_them(  # noqa: ANN001
        make_gui, qtbot, web) -> None:
    from mailgui.model.checks import net_checks_path

    gui = make_gui(inbox_port=0)
    inbox = gui.controller.inbox
    deliver(gui, _links_message(web, "First"))
    deliver(gui, html_message())
    qtbot.waitUntil(lambda: len(inbox.messages) == 2, timeout=15000)
    first = next(m.id for m in inbox.messages if m.subject == "First")
    other = next(m.id for m in inbox.messages if m.id != first)
    shown_report(qtbot, gui, first)
    checks = inbox.checks.checks
    checks.confirm_links = lambda links: (True, False)
    v = gui.window.inbox
    v.checks.links.click()
    qtbot.waitUntil(lambda: checks.report.result("links") is not None and not checks.running,
                    timeout=60000)
    links = checks.report.result("links")
    assert links.findings, "a 404 is a finding"
    # the row's badge and the tab count what the panel shows, links included
    column = inbox.checks.BADGE_COLUMN
    assert inbox._find_item(first).text(column) == badge(checks.report).text  # noqa: SLF001
    serious = sum(1 for f in checks.report.findings if f.severity >= Severity.WARNING)
    assert v.detail.tabText(v.detail.indexOf(v.checks)) == f"Checks ({serious})"
    assert badge(checks.report).count == serious
    # kept beside the message, in a file of the GUI's own
    path = net_checks_path(inbox.store.folder, first)
    qtbot.waitUntil(path.exists, timeout=10000)

    # another message, then back: the link results are there again
    shown_report(qtbot, gui, other)
    assert checks.report.result("links") is None
    report = shown_report(qtbot, gui, first)
    assert report.result("links").to_json() == links.to_json()
    assert inbox._find_item(first).text(column) == badge(report).text  # noqa: SLF001
    # and from the file, as in the next session
    checks.network.clear()
    shown_report(qtbot, gui, other)
    gui.window.inbox.list.setCurrentItem(inbox._find_item(first))  # noqa: SLF001
    qtbot.waitUntil(lambda: checks.key == first and checks.report is not None
                    and checks.report.result("links") is not None, timeout=60000)
    assert checks.report.result("links").to_json() == links.to_json()


def _qp_message() -> tuple[bytes, str]:
    """An HTML part in quoted-printable whose long URL a soft line break splits."""
    import quopri

    url = "https://shop.example.com/" + "spring-sale/" * 8 + "index.html?utm=newsletter"
    html = f'<html><body>\n<p>Sale</p>\n<p><a href="{url}">Shop now</a></p>\n</body></html>\n'
    body = quopri.encodestring(html.encode()).replace(b"\n", b"\r\n")
    raw = (b"From: Shop <shop@example.com>\r\nTo: qa@example.com\r\nSubject: QP\r\n"
           b"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\nMessage-ID: <qp1@example.com>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n"
           b"\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSale " + url.encode()
           + b"\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + body + b"--b1--\r\n")
    return raw, url


def test_a_finding_on_an_encoded_line_goes_to_that_line_of_the_source(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(inbox_port=0)
    inbox = gui.controller.inbox
    raw, _url = _qp_message()
    deliver(gui, raw)
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=15000)
    msg_id = inbox.messages[0].id
    shown_report(qtbot, gui, msg_id)
    qtbot.waitUntil(lambda: inbox._shown is not None, timeout=10000)  # noqa: SLF001
    v = gui.window.inbox
    item = next(i for i in v.checks.finding_items()
                if v.checks.finding_of(i).code == "lint.qp-breaks-url")
    finding = v.checks.finding_of(item)
    encoded = finding.data["encoded_line"]
    stored = inbox.store.read(msg_id)
    part = MessageView(stored).part(finding.location.part)
    expected = part.raw_body.splitlines()[encoded - 1].decode().rstrip("\r")
    v.detail.setCurrentWidget(v.checks)
    v.checks.tree.itemActivated.emit(item, 0)
    assert v.detail.currentWidget() is v.source
    assert v.source.textCursor().selectedText() == expected
    assert expected.endswith("=")  # the soft line break inside the URL


def test_clients_table_worst_first_sortable_no_data_and_no_html(qtbot) -> None:  # noqa: ANN001
    from PySide6.QtCore import Qt

    from mailcore import EmailMessage
    from mailcore.wire import serialize
    from mailgui.views.checks import NO_DATA, SORT_ROLE, ChecksPanel

    panel = ChecksPanel()
    qtbot.addWidget(panel)
    panel.resize(900, 600)
    panel.show()
    report = run_local(html_message())
    panel.show_report(report)
    families = report.result("clients").summary["families"]
    rows = [panel.clients.topLevelItem(i) for i in range(panel.clients.topLevelItemCount())]
    assert len(rows) == len(families)
    known = [r.data(1, SORT_ROLE) for r in rows if r.data(1, SORT_ROLE) is not None]
    assert known == sorted(known)  # the worst supported first
    no_data = [f["name"] for f in families if not f.get("tests")]
    shown_no_data = [r.text(0) for r in rows if r.text(1) == NO_DATA]
    assert sorted(shown_no_data) == sorted(no_data)
    assert all(r.text(1) != NO_DATA for r in rows[:len(known)])  # "no data" last
    assert all(r.text(c) for r in rows for c in (1, 2, 3))  # no empty cells
    # any column sorts, by its numbers
    panel.clients.sortByColumn(3, Qt.SortOrder.DescendingOrder)
    rows = [panel.clients.topLevelItem(i) for i in range(panel.clients.topLevelItemCount())]
    worst = [r.data(3, SORT_ROLE) for r in rows if r.data(3, SORT_ROLE) is not None]
    assert worst == sorted(worst, reverse=True)
    # the headers fit their text
    header = panel.clients.header()
    for column in range(4):
        text = panel.clients.headerItem().text(column)
        assert header.sectionSize(column) >= header.fontMetrics().horizontalAdvance(text)

    plain = serialize(EmailMessage("Hi", "plain", "a@example.com", ["b@example.com"]),
                      linesep="\r\n").getvalue()
    panel.show_report(run_local(plain))
    assert panel.tabs.tabText(1) == "Clients (no HTML part)"
    assert not panel.tabs.isTabEnabled(1) and panel.clients.topLevelItemCount() == 0
    group = next(panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount())
                 if panel.tree.topLevelItem(i).text(0).startswith("Client support"))
    assert group.text(0) == "Client support: no HTML part"
    assert "Clients:" not in panel.summary.text()


def test_findings_wrap_instead_of_being_cut(qtbot) -> None:  # noqa: ANN001
    from mailgui.views.checks import ChecksPanel

    panel = ChecksPanel()
    qtbot.addWidget(panel)
    panel.resize(520, 700)
    panel.show()
    report = run_local(html_message())
    panel.show_report(report)
    qtbot.wait(50)  # the delayed layout of the rows
    items = panel.finding_items()
    longest = max(items, key=lambda i: len(i.text(0)))
    metrics = panel.tree.fontMetrics()
    assert metrics.horizontalAdvance(longest.text(0)) > panel.tree.columnWidth(0)
    assert panel.tree.visualItemRect(longest).height() > 1.5 * metrics.lineSpacing()
    assert longest.toolTip(0).startswith(longest.text(0))
    assert panel.tree.columnWidth(1) >= 240


def test_dkim_keys_dialog_names_the_lines_that_are_not_keys(qtbot) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QDialog

    from mailgui.views.checks import DkimKeysDialog

    _pem, record = rsa_key()
    dialog = DkimKeysDialog(None, f"s1._domainkey.example.com {record}\nmail.example.com x",
                            False)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.accept()
    assert dialog.result() != QDialog.DialogCode.Accepted and dialog.isVisible()
    assert dialog.problems.isVisible() and dialog.problems.text().startswith("Line 2")
    dialog.text.setPlainText(f"s1._domainkey.example.com {record}")
    dialog.accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.keys == {"s1._domainkey.example.com": record}
