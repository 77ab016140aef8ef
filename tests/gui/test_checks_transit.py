"""A message altered in transit fails DKIM in the local test inbox.

Real parts all the way: mailcore signs and sends to a relay on 127.0.0.1 (aiosmtpd) that
forwards each message to the inbox server process over SMTP, as a mailing list does, and that
adds a footer to the body of the ones it is told to alter. The inbox process checks what it
received, with the signer's public record pasted (no DNS)."""

from __future__ import annotations

import smtplib
import threading
from pathlib import Path

import mailcore
from mailcore.checks.dkim import DKIMSigner, dns_name, generate_key, public_record
from mailgui.model.checks import CheckSettings, dkim_verdict, load_checks
from mailgui.model.inbox import InboxServer, InboxStore
from tests.support.servers import ReceivedMessage, SMTPServer

FOOTER = b"\r\n--\r\nYou are receiving this because you joined the list.\r\n"


def test_a_footer_added_by_a_relay_fails_dkim_in_the_inbox(tmp_path: Path) -> None:
    key = generate_key()
    signer = DKIMSigner("example.com", "s1", key)
    settings = CheckSettings({dns_name("s1", "example.com"): public_record(key)})
    store = InboxStore(tmp_path / "inbox")
    checked: dict[str, threading.Event] = {}
    lock = threading.Lock()

    def on_checked(msg_id: str) -> None:
        with lock:
            checked.setdefault(msg_id, threading.Event()).set()

    inbox = InboxServer(store, on_checked=on_checked)
    inbox.set_check_settings(settings.to_json())
    inbox_port = inbox.start()

    def relay(record: ReceivedMessage) -> str | None:
        data = record.data
        if b"[alter]" in data:  # the list adds its footer to the body
            data = data.rstrip(b"\r\n") + b"\r\n" + FOOTER
        with smtplib.SMTP("127.0.0.1", inbox_port, timeout=10) as smtp:
            smtp.sendmail(record.mail_from, record.rcpt_tos, data)
        return None

    try:
        with SMTPServer(data_reply=relay) as relay_server:
            connection = mailcore.get_connection(
                "smtp", host="127.0.0.1", port=relay_server.port, dkim=signer, timeout=10)
            messages = [
                mailcore.EmailMessage(subject, "Spring sale: everything must go.\n",
                                      "Shop <shop@example.com>", ["qa@example.com"])
                for subject in ("Spring sale", "Spring sale [alter]")
            ]
            assert connection.send_messages(messages) == 2
        by_subject = {m.subject: m.id for m in store.list()}
        assert set(by_subject) == {"Spring sale", "Spring sale [alter]"}
        for msg_id in by_subject.values():
            with lock:
                event = checked.setdefault(msg_id, threading.Event())
            assert event.wait(60), f"the inbox did not check {msg_id}"
    finally:
        inbox.stop()
    intact = load_checks(store.folder, by_subject["Spring sale"])
    altered = load_checks(store.folder, by_subject["Spring sale [alter]"])
    assert intact is not None and altered is not None
    assert dkim_verdict(intact.report)[0] == "pass"
    verdict, reason = dkim_verdict(altered.report)
    assert verdict == "fail"
    assert "body" in reason  # the footer changed the body, which the signature covers
    assert FOOTER.strip() in store.read(by_subject["Spring sale [alter]"])
