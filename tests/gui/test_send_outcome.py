"""What the window shows after a send, as ``model.send_outcome.present`` words it: plain Python,
no QApplication. Outcomes come from real sends (aiosmtpd servers, the test backends, a closed
port) as well as built by hand for the cases a server has to be coaxed into."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mailgui.model.draft import Draft
from mailgui.model.profiles import Profile
from mailgui.model.send_outcome import (
    CANCELLED,
    NO_PASSWORD,
    Banner,
    BannerAction,
    from_server,
    present,
)
from mailgui.model.sending import SendOutcome, send_draft
from tests.support.servers import TEST_PASSWORD, TEST_USER, SMTPServer


def _smtp(server: SMTPServer, **fields: object) -> Profile:
    return Profile("Relay", "smtp", host="127.0.0.1", port=server.port, security="none",
                   timeout=10, from_email="Tester <tester@example.com>", **fields)


def test_the_presenter_needs_no_qt() -> None:
    code = ("import sys, mailgui.model.send_outcome, mailgui.model.passwords\n"
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_a_sent_message_is_a_success_with_its_message_id_under_details(
        smtp_server: SMTPServer) -> None:
    outcome = send_draft(Draft(to="bob@example.com", subject="Hi"), _smtp(smtp_server))
    assert outcome.ok, outcome.sentence
    shown = present(outcome)
    banner = shown.banner
    assert banner.severity == "success" and banner.title == "" and banner.hint == ""
    assert banner.text == outcome.sentence == "Sent via Relay for 1 recipient."
    assert banner.details.startswith(f"Message-ID: {outcome.message_id}\n250")
    assert banner.details_label == "Details" and banner.action is BannerAction.NONE
    assert (shown.status, shown.status_ms, shown.ok) == (outcome.sentence, 8000, True)
    assert shown.result.startswith("\u2714 Sent via Relay for 1 recipient. \u00b7 ")
    assert shown.result.endswith(f"\nServer: {outcome.reply}") and " s\n" in shown.result
    assert shown.folder == ""


def test_a_message_written_to_a_file_offers_its_folder(tmp_path: Path) -> None:
    outcome = send_draft(Draft(to="bob@example.com"),
                         Profile("Files", "file", file_path=str(tmp_path / "out")))
    shown = present(outcome)
    assert shown.banner.action is BannerAction.OPEN_FOLDER
    assert shown.banner.action.value == "Open folder"
    assert shown.banner.text == (f"Sent to a file for 1 recipient. Written to "
                                 f"{outcome.written_file}.")
    assert shown.folder == str(tmp_path / "out")
    # the status line says what was sent, not where the file is
    assert shown.status == "Sent to a file for 1 recipient."


def test_partly_refused_recipients_are_a_warning_with_each_reply() -> None:
    outcome = SendOutcome(True, "Relay", "Hi", ["a@example.com", "b@example.com"],
                          message_id="<1@x>", size=2048, reply="250 OK",
                          refused={"b@example.com": "550 no such user"},
                          sentence="Sent via Relay for 1 recipient. Refused: b@example.com.",
                          seconds=0.25)
    shown = present(outcome)
    assert shown.banner.severity == "warning"
    assert shown.banner.details == "Message-ID: <1@x>\nb@example.com: 550 no such user\n250 OK"
    assert shown.result == ("\u2714 Sent via Relay for 1 recipient. Refused: b@example.com."
                            " \u00b7 2.0 KB \u00b7 0.25 s\nServer: 250 OK")


def test_a_refused_login_is_an_error_with_the_server_reply(smtp_auth_server: SMTPServer) -> None:
    outcome = send_draft(Draft(to="bob@example.com"),
                         _smtp(smtp_auth_server, username=TEST_USER),
                         password=TEST_PASSWORD + "-wrong")
    assert not outcome.ok and outcome.error is not None and outcome.error.kind == "auth"
    shown = present(outcome)
    banner = shown.banner
    assert banner.severity == "error" and banner.title == "Not sent."
    assert banner.text == f"Not sent. {outcome.sentence}"
    assert banner.details.startswith("535") and banner.details_label == "Server reply"
    assert banner.action is BannerAction.TRANSCRIPT
    assert (shown.status, shown.status_ms, shown.ok) == ("Not sent.", 8000, False)
    assert shown.result.startswith("\u2716 ") and "\nServer: 535" in shown.result


def test_a_local_failure_has_details_not_a_server_reply(refused_port: int) -> None:
    profile = Profile("Relay", "smtp", host="127.0.0.1", port=refused_port, security="none",
                      timeout=5, from_email="t@example.com")
    outcome = send_draft(Draft(to="bob@example.com"), profile)
    assert not outcome.ok and outcome.reply
    shown = present(outcome)
    assert shown.banner.details_label == "Details" and not from_server(outcome.reply)
    assert f"\nDetails: {outcome.reply}" in shown.result


def test_cancelled_and_no_password_are_warnings() -> None:
    outcome = SendOutcome(False, "Relay", "Hi", ["a@example.com"], cancelled=True,
                          sentence=CANCELLED.banner.sentence)
    shown = present(outcome)
    assert shown.banner == Banner("warning", "Sending was cancelled. Your draft is unchanged.")
    assert (shown.status, shown.status_ms) == ("Cancelled.", 5000)
    assert (CANCELLED.status, CANCELLED.result, CANCELLED.ok) == ("Cancelled.", "Cancelled.", None)
    assert NO_PASSWORD.banner.text == "Not sent: no password was given."
    assert (NO_PASSWORD.banner.severity, NO_PASSWORD.status, NO_PASSWORD.result) == (
        "warning", "Not sent.", "")


def test_server_replies_are_told_from_local_errors() -> None:
    assert from_server("535 5.7.8 Authentication credentials invalid")
    assert from_server("b@example.com: 550 no such user")
    assert not from_server("[Errno 111] Connection refused")
    assert not from_server("timed out")


def test_a_title_and_a_hint_frame_the_sentence() -> None:
    banner = Banner("error", "The server refused.", title="Not sent.", hint="Try again later.")
    assert banner.text == "Not sent. The server refused. Try again later."
