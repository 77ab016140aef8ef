"""An .eml saved by the composer and opened again gives back the same draft: the subject
without added spaces (however it was folded), Bcc kept (a saved draft carries it, the sent
bytes never do), IDN addresses in Unicode, extra headers, text, HTML and attachments."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgui.model.addresses import valid_list
from mailgui.model.draft import AttachmentRef, Draft
from mailgui.model.eml import draft_from_eml
from mailgui.model.message import build_message
from mailgui.model.source import write_source

# printable text, as typed into a one-line field: letters of several scripts, digits,
# punctuation and single spaces between words (leading and trailing space is not part of a
# header's value in any reader)
WORD = st.text(st.characters(categories=("L", "N", "P", "S"), exclude_characters="\x7f"),
               min_size=1, max_size=30)
ONE_LINE = st.lists(WORD, min_size=1, max_size=25).map(" ".join)
LOCAL = st.sampled_from(["bob", "alice.smith", "x+tag", "o'neil", "j_d"])
DOMAIN = st.sampled_from(["example.com", "bücher.de", "müller.example", "例え.jp",
                          "sub.example.org"])
# display names of letters and digits (a quoted "<" in a name is refused by the address
# check, a separate matter)
NAME_WORD = st.text(st.characters(categories=("L", "N")), min_size=1, max_size=12)
NAME = st.one_of(st.just(""), st.lists(NAME_WORD, min_size=1, max_size=3).map(" ".join))


@st.composite
def address(draw: st.DrawFn) -> str:
    local, domain, name = draw(LOCAL), draw(DOMAIN), draw(NAME)
    from email.headerregistry import Address
    return str(Address(name, local, domain))


ADDRESSES = st.lists(address(), min_size=0, max_size=3).map(", ".join)
BODY = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\r\x00"),
               max_size=300)


def normal_addresses(text: str) -> list[str]:
    """The addresses of a field, as the message is built from them (a domain in Unicode)."""
    return valid_list(text)


def same_draft(a: Draft, b: Draft) -> None:
    assert b.subject == a.subject
    for field in ("from_email", "to", "cc", "bcc", "reply_to"):
        assert normal_addresses(getattr(b, field)) == normal_addresses(getattr(a, field)), field
    assert "xn--" not in b.to + b.cc + b.bcc + b.from_email  # shown as people write them
    assert b.body == a.body
    assert b.html == a.html
    assert b.headers == a.headers
    assert [Path(x.path).read_bytes() for x in b.attachments] == [
        Path(x.path).read_bytes() for x in a.attachments]
    assert [x.name for x in b.attachments] == [x.name for x in a.attachments]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=ONE_LINE, to=address(), cc=ADDRESSES, bcc=ADDRESSES, body=BODY,
       html=st.one_of(st.just(""), BODY.map(lambda t: f"<p>{t}</p>")),
       header=st.one_of(st.just([]), ONE_LINE.map(lambda v: [("X-Note", v)])),
       attachment=st.one_of(st.none(), st.binary(max_size=200)))
def test_a_saved_eml_opens_as_the_same_draft(subject: str, to: str, cc: str, bcc: str,
                                            body: str, html: str, header: list,
                                            attachment: bytes | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        draft = Draft(from_email="Me <me@bücher.de>", to=to, cc=cc, bcc=bcc, subject=subject,
                      body=body, html=html, headers=header)
        if attachment is not None:
            (folder / "data.bin").write_bytes(attachment)
            draft.attachments = [AttachmentRef(str(folder / "data.bin"))]
        eml = folder / "saved.eml"
        write_source(draft, None, eml)
        opened = draft_from_eml(eml.read_bytes(), folder / "opened")
        same_draft(draft, opened)
        # and again: a second round trip changes nothing (no space added per trip)
        write_source(opened, None, folder / "again.eml")
        same_draft(draft, draft_from_eml((folder / "again.eml").read_bytes(), folder / "o2"))


def test_a_subject_folded_after_its_colon_has_no_leading_space(tmp_path: Path) -> None:
    subject = "A rather long subject that mailcore folds right after the colon: ünïcödé " * 2
    draft = Draft(to="bob@example.com", subject=subject.strip())
    write_source(draft, None, tmp_path / "a.eml")
    raw = (tmp_path / "a.eml").read_bytes()
    assert b"Subject: \r\n " in raw or b"Subject:\r\n " in raw  # it was folded there
    assert draft_from_eml(raw).subject == subject.strip()


def test_a_saved_draft_carries_bcc_but_the_sent_bytes_never_do(tmp_path: Path) -> None:
    from mailcore.wire import serialize

    draft = Draft(to="bob@example.com", bcc="Hidden <hidden@bücher.de>", subject="s")
    write_source(draft, None, tmp_path / "d.eml")
    saved = (tmp_path / "d.eml").read_bytes()
    assert b"\r\nBcc: " in saved
    assert draft_from_eml(saved).bcc == "Hidden <hidden@bücher.de>"
    sent = serialize(build_message(draft), linesep="\r\n").getvalue()
    assert b"Bcc" not in sent and b"hidden@" not in sent


def test_idn_addresses_open_in_unicode(tmp_path: Path) -> None:
    raw = (b"From: =?utf-8?q?J=C3=BCrgen?= <j@xn--bcher-kva.de>\r\n"
           b"To: undisclosed-recipients:;\r\nCc: a@xn--nxasmq6b.example\r\n"
           b"Subject: x\r\n\r\nhi\r\n")
    draft = draft_from_eml(raw)
    assert draft.from_email == "Jürgen <j@bücher.de>"
    assert draft.cc == "a@\u03b2\u03cc\u03bb\u03bf\u03c3.example"
    assert draft.to == "undisclosed-recipients:;"




def test_the_window_saves_and_opens_back_the_same_draft(make_gui, qtbot, tmp_path: Path,  # noqa: ANN001
                                                       monkeypatch) -> None:
    from PySide6.QtCore import Qt

    gui = make_gui(start_inbox=False)
    c, view = gui.controller, gui.window.compose
    subject = ("Quarterly figures for the Düsseldorf office, with the notes from Monday's "
               "call and the revised forecast")
    view.address_edits["to"].setText("Jürgen Weiß <juergen@bücher.de>")
    view.address_edits["bcc"].setText("Auditor <audit@example.com>")
    view.subject.setText(subject)
    view.body.setPlainText("See the figures.\n")
    typed = c.compose.draft.copy()
    for trip in range(3):  # each trip used to add a space before the subject
        target = tmp_path / f"trip{trip}.eml"
        monkeypatch.setattr(c.source, "ask_save_path", lambda t=target: str(t))
        qtbot.mouseClick(gui.window.source.save, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(target.exists, timeout=10000)
        assert b"\r\nBcc: " in target.read_bytes()
        monkeypatch.setattr(c, "confirm_replace", lambda name: True)
        before = c.compose.draft.id
        c.open_eml(str(target))
        qtbot.waitUntil(lambda b=before: c.compose.draft.id != b, timeout=10000)
        assert view.subject.text() == subject
        assert view.address_edits["to"].text() == "Jürgen Weiß <juergen@bücher.de>"
        assert view.address_edits["bcc"].text() == "Auditor <audit@example.com>"
        assert view.body.toPlainText() == typed.body
