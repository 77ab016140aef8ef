"""Addresses with a non-ASCII local part (``jörg@example.test``) in the window: the local test
inbox (its real child process, aiosmtpd with SMTPUTF8) takes them and shows them as written, and
the composer warns as they are typed that they need a server with SMTPUTF8.

Real parts: the inbox server process on 127.0.0.1, mailcore's SMTP backend and smtplib, the
files the inbox writes.
"""

from __future__ import annotations

import json
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from mailcore import EmailMessage
from mailcore.backends.smtp import EmailBackend
from mailgui.controllers.inbox import read_details, summary_html
from mailgui.model.addresses import SMTPUTF8_WARNING, check_addresses, smtputf8_warning
from mailgui.model.draft import Draft
from mailgui.model.inbox import InboxServer, InboxStore
from mailgui.model.message import draft_problems
from tests.gui.conftest import tree_items
from tests.support.gui import fill, send

JOERG = "Jörg Müller <jörg@example.test>"


def type_text(widget, text: str) -> None:  # noqa: ANN001
    """Key presses that carry each character, as a keyboard with those letters sends them
    (QTest.keyClicks aborts on characters outside ASCII)."""
    for ch in text:
        key = Qt.Key(ord(ch.upper())) if ch.isascii() else Qt.Key.Key_unknown
        if ch == "ö":
            key = Qt.Key.Key_Odiaeresis
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(widget, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier,
                                                     ch))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[InboxServer, list]]:
    seen: list = []
    srv = InboxServer(InboxStore(tmp_path / "inbox"), on_message=seen.append)
    srv.start()
    yield srv, seen
    srv.stop()


def test_the_inbox_takes_joerg_with_smtputf8_and_keeps_the_envelope_in_utf8(server) -> None:  # noqa: ANN001
    srv, seen = server
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("smtputf8") and client.has_extn("8bitmime")
    m = EmailMessage("Grüße", "Hallo Jörg", "Ännchen <ännchen@example.test>", [JOERG],
                     cc=["ann@bücher.example"])
    with EmailBackend(host="127.0.0.1", port=srv.port, timeout=10) as backend:
        assert backend.send_messages([m]) == 1
    [item] = seen
    assert item.mail_from == "ännchen@example.test"
    assert item.rcpt_tos == ["jörg@example.test", "ann@xn--bcher-kva.example"]
    assert item.to_header == JOERG
    assert item.from_header == "Ännchen <ännchen@example.test>"
    raw = srv.store.read(item.id)
    assert "To: Jörg Müller <jörg@example.test>\r\n".encode() in raw  # RFC 6532, as sent
    assert b"=?utf-8?b?asO2cmc" not in raw
    # what a restart reads: the .json holds the envelope as text, not escapes of bytes
    # (the files of a message are written once the server is idle: the journal holds it till)
    meta = srv.store.folder / f"{item.id}.json"
    deadline = time.monotonic() + 30
    while not meta.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    stored = json.loads(meta.read_text(encoding="utf-8"))
    assert stored["rcpt_tos"][0] == "jörg@example.test" and stored["to_header"] == JOERG
    [again] = InboxStore(srv.store.folder).list()
    assert (again.mail_from, again.rcpt_tos, again.to_header) == (
        item.mail_from, item.rcpt_tos, item.to_header)
    details = read_details(srv.store, item.id)
    headers = dict(details.headers)
    assert headers["To"] == JOERG and headers["From"] == "Ännchen <ännchen@example.test>"
    assert headers["Subject"] == "Grüße"
    summary = summary_html(details, message=item)
    assert "jörg@example.test" in summary and "Jörg Müller" in summary
    assert "Bcc" not in summary  # jörg is in To: the envelope and the header agree


def test_the_window_sends_to_joerg_and_the_inbox_shows_him(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui()
    fill(gui, to=JOERG, subject="Für Jörg", body="Hallo Jörg")
    view = gui.window.compose
    warning = view.address_warnings["to"]
    assert warning.isVisibleTo(view) and "SMTPUTF8" in warning.text()
    assert not view.address_errors["to"].isVisibleTo(view)
    outcome = send(gui, qtbot)
    assert outcome.ok, outcome.sentence
    inbox = gui.controller.inbox
    qtbot.waitUntil(lambda: len(inbox.messages) == 1)
    assert inbox.messages[0].rcpt_tos == ["jörg@example.test"]
    rows = tree_items(gui.window.inbox.list)
    assert rows[0].text(2) == JOERG
    assert "jörg@example.test" in rows[0].toolTip(2)
    gui.window.inbox.list.setCurrentItem(rows[0])
    headers = gui.window.inbox.headers
    qtbot.waitUntil(lambda: any(headers.topLevelItem(i).text(0) == "To"
                                for i in range(headers.topLevelItemCount())))
    shown = {headers.topLevelItem(i).text(0): headers.topLevelItem(i).text(1)
             for i in range(headers.topLevelItemCount())}
    assert shown["To"] == JOERG


def test_the_composer_warns_as_you_type_an_address_that_needs_smtputf8(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    view = gui.window.compose
    to = view.address_edits["to"]
    warning = view.address_warnings["to"]
    qtbot.keyClicks(to, "ann@example.test, j")
    assert not warning.isVisibleTo(view)
    type_text(to, "ö")
    assert not warning.isVisibleTo(view)  # "jö" is no address yet: its own sentence comes
    type_text(to, "rg@example.test")
    assert warning.isVisibleTo(view)  # as typed: the keystrokes themselves showed it
    assert "\u201cj\u00f6rg@example.test\u201d" in warning.text().replace("\u200b", "")
    assert "SMTPUTF8" in warning.text()
    # a warning, not an error: nothing is marked, and the draft can be sent
    # (the controller's address check runs once its short timer is out)
    qtbot.waitUntil(lambda: not gui.controller.compose.check_timer.isActive())
    assert not view.address_errors["to"].isVisibleTo(view)
    draft = gui.controller.compose.draft
    assert not [p for p in draft_problems(draft) if p.field == "to"]
    # an IDN domain alone needs nothing; taking the ö out takes the warning away
    to.clear()
    type_text(to, "ann@bücher.example")
    assert not warning.isVisibleTo(view)
    type_text(view.address_edits["cc"], "Jörg <jörg@example.test>")
    assert view.address_warnings["cc"].isVisibleTo(view)


def test_the_address_model_says_warning_not_error() -> None:
    [check] = check_addresses(JOERG)
    assert check.ok and check.warning == SMTPUTF8_WARNING
    [idn] = check_addresses("ann@bücher.example")
    assert idn.ok and idn.warning is None
    [spoof] = check_addresses("j\u202eörg@example.test")  # a right-to-left override
    assert not spoof.ok and "U+202E" in spoof.reason and spoof.warning is None
    assert smtputf8_warning("ann@example.test") == ""
    assert smtputf8_warning("x@example.test, jörg@example.test").startswith(
        "\u201cjörg@example.test\u201d: needs a server that offers SMTPUTF8")
    assert not [p for p in draft_problems(Draft(to=JOERG, from_email="ann@example.test"))
                if p.field in ("to", "from")]


def test_the_source_preview_shows_such_an_address_as_it_goes_out() -> None:
    from mailgui.model.draft import Draft
    from mailgui.model.source import serialized_draft

    draft = Draft(from_email="ann@example.test", to="Jörg <jörg@example.test>",
                  subject="Hallo", body="Grüße")
    raw = serialized_draft(draft, None).getvalue()
    assert "To: Jörg <jörg@example.test>".encode() in raw
    assert b"=?utf-8?b?asO2cmc=?=" not in raw
