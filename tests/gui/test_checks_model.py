"""mailgui.model.checks without a QApplication: settings, the local checks on real bytes, the
badge, the stored ``<id>.checks.json``, and the inbox server process checking what it
receives (a real process on loopback, real SMTP)."""

from __future__ import annotations

import base64
import smtplib
import threading
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailcore import EmailMultiAlternatives
from mailcore.checks import MessageView, Report, Severity
from mailcore.wire import serialize
from mailgui.model.checks import (
    CheckSettings,
    badge,
    check_key_lines,
    check_stored,
    checks_path,
    clients_score,
    dkim_verdict,
    load_checks,
    load_net_checks,
    net_checks_path,
    parse_key_lines,
    run_local,
    save_net_checks,
    section_numbers,
    summary_line,
)
from mailgui.model.inbox import InboxServer, InboxStore
from mailgui.model.inbox_details import message_parts

HTML = """<html><head><style>.box { display: flex; position: fixed; }</style></head>
<body>
<div class="box">
<img src="https://cdn.example.com/logo.png">
<p>Spring sale: everything must go.</p>
</div>
</body></html>"""


def html_message(**extra: object) -> bytes:
    msg = EmailMultiAlternatives("Spring sale", "Spring sale: everything must go.",
                                 "Shop <shop@example.com>", ["qa@example.com"], **extra)
    msg.attach_alternative(HTML, "text/html")
    msg.attach("notes.txt", "some notes\n", "text/plain")
    return serialize(msg, linesep="\r\n").getvalue()


def rsa_key() -> tuple[bytes, str]:
    """A private key (PEM) and its DKIM TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def signed(raw: bytes, pem: bytes, selector: str = "s1", domain: str = "example.com") -> bytes:
    signature = dkim.sign(raw, selector.encode(), domain.encode(), pem,
                          include_headers=[b"from", b"to", b"subject", b"date"])
    return signature + raw


# -- settings --------------------------------------------------------------------------------

def test_settings_from_the_settings_file_and_back() -> None:
    settings = CheckSettings.from_settings({
        "checks_dkim_keys": {" S1._domainkey.Example.com. ": " v=DKIM1; p=AB ", "x": ""},
        "checks_dkim_dns": True,
    })
    assert settings.dkim_keys == {"s1._domainkey.example.com": "v=DKIM1; p=AB"}
    assert settings.dkim_dns is True
    assert CheckSettings.from_settings(settings.to_settings()) == settings
    assert CheckSettings.from_json(settings.to_json()) == settings
    # DNS is off unless the setting says True; wrong shapes are ignored
    off = CheckSettings.from_settings({"checks_dkim_keys": ["no"], "checks_dkim_dns": "yes"})
    assert off == CheckSettings() and off.dkim_dns is False
    assert settings.fingerprint() != off.fingerprint()
    assert settings.options()["dkim"] == {"keys": settings.dkim_keys, "dns": True}


def test_pasted_key_lines_as_dns_panels_and_zone_files_show_them() -> None:
    text = ('# a comment\n'
            's1._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; " "p=MIIBIjAN"\n'
            'mail._domainkey.example.org = v=DKIM1; p=QUJD\n'
            '\n')
    assert parse_key_lines(text) == {
        "s1._domainkey.example.com": "v=DKIM1; k=rsa; p=MIIBIjAN",
        "mail._domainkey.example.org": "v=DKIM1; p=QUJD",
    }


# -- the local checks ------------------------------------------------------------------------

def test_section_numbers_of_the_inbox_parts_list_match_the_checks_sections() -> None:
    raw = html_message()
    parts = message_parts(raw)
    sections = section_numbers([p.depth for p in parts])
    leaves = {s: p.content_type for s, p in zip(sections, parts, strict=True)
              if not p.content_type.startswith("multipart/")}
    view = MessageView(raw)
    assert leaves == {p.section: p.content_type for p in view.parts}
    single = b"From: a@example.com\r\nSubject: x\r\n\r\nhello\r\n"
    assert section_numbers([p.depth for p in message_parts(single)]) == ["1"]


def test_local_checks_badge_and_summary_come_from_the_findings() -> None:
    raw = html_message()
    report = run_local(raw)
    assert [r.check for r in report.results] == ["clients", "lint", "dkim"]
    assert not any(r.error for r in report.results), [r.error for r in report.results]
    html_part = MessageView(raw).html_parts[0].section
    clients = report.result("clients")
    assert clients is not None and clients.findings
    # display:flex is on line 1 of the HTML part, as the source says
    flex = [f for f in clients.findings if "flex" in (f.location.element or "")]
    assert flex and flex[0].location.part == html_part
    assert flex[0].location.line == next(i for i, line in enumerate(HTML.splitlines(), 1)
                                         if "flex" in line)
    counts = report.counts()
    shown = badge(report)
    assert shown.count == counts["error"] + counts["warning"]
    assert shown.worst == report.worst.label
    assert shown.text.endswith(str(shown.count))
    # the badge leads with the score: the client support of the HTML, until a spam score
    assert shown.text.startswith(f"{clients_score(report):.0f}% ")
    assert summary_line(report) in shown.tooltip
    verdict, reason = dkim_verdict(report)
    assert verdict == "none" and reason  # not signed: said why


def test_pasted_key_verifies_and_an_altered_message_fails() -> None:
    pem, record = rsa_key()
    raw = signed(html_message(), pem)
    settings = CheckSettings({"s1._domainkey.example.com": record})
    assert dkim_verdict(run_local(raw, settings))[0] == "pass"
    altered = raw.replace(b"everything must go", b"everything must GO", 1)
    verdict, reason = dkim_verdict(run_local(altered, settings))
    assert verdict == "fail" and reason
    # without the key and without DNS nothing is looked up: the signature can't pass
    assert dkim_verdict(run_local(raw, CheckSettings()))[0] != "pass"


def test_stored_checks_round_trip(tmp_path: Path) -> None:
    (tmp_path / "m1.eml").write_bytes(html_message())
    settings = CheckSettings({"s1._domainkey.example.com": "v=DKIM1; p="})
    report = check_stored(tmp_path, "m1", settings)
    assert report is not None
    stored = load_checks(tmp_path, "m1")
    assert stored is not None
    assert stored.report.to_json() == report.to_json()
    assert stored.badge == badge(report)
    assert stored.settings == settings.fingerprint()
    assert stored.part_lines == {p.section: p.start_line for p in MessageView(
        (tmp_path / "m1.eml").read_bytes()).parts}
    assert Report.from_json(report.to_json()).counts() == report.counts()
    # a message deleted before it is checked leaves nothing behind
    assert check_stored(tmp_path, "gone", settings) is None
    assert not checks_path(tmp_path, "gone").exists()


def test_a_broken_message_is_checked_without_raising() -> None:
    raw = (b"Content-Type: multipart/mixed; boundary=\"zz\"\r\nFrom: <>\r\n\r\n--zz\r\n"
           b"Content-Type: text/html; charset=nonsense\r\n\r\n<p><img src=x\r\n")
    report = run_local(raw)
    assert len(report.results) == 3
    assert badge(report).text


# -- the inbox server process ----------------------------------------------------------------

def test_inbox_process_checks_what_it_receives_and_what_it_had(tmp_path: Path) -> None:
    pem, record = rsa_key()
    folder = tmp_path / "inbox"
    store = InboxStore(folder)
    old = store.add("shop@example.com", ["qa@example.com"], html_message())  # no checks yet
    checked: list[str] = []
    arrived = threading.Event()

    def on_checked(msg_id: str) -> None:
        checked.append(msg_id)
        arrived.set()

    server = InboxServer(store, on_checked=on_checked)
    server.set_check_settings(CheckSettings({"s1._domainkey.example.com": record}).to_json())
    port = server.start()
    try:
        raw = signed(html_message(), pem)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.sendmail("shop@example.com", ["qa@example.com"], raw)
        new = [m.id for m in store.list() if m.id != old.id]
        assert len(new) == 1
        for _ in range(60):
            if {old.id, new[0]} <= set(checked):
                break
            arrived.wait(1)
            arrived.clear()
        assert {old.id, new[0]} <= set(checked)
    finally:
        server.stop()
    stored = load_checks(folder, new[0])
    assert stored is not None
    # what the process wrote is what the checks say of the stored bytes, with the pasted key
    again = run_local(store.read(new[0]), CheckSettings({"s1._domainkey.example.com": record}))
    assert stored.badge == badge(again)
    assert dkim_verdict(stored.report)[0] == "pass"
    backlog = load_checks(folder, old.id)
    assert backlog is not None and dkim_verdict(backlog.report)[0] == "none"
    assert backlog.badge.worst in {s.label for s in Severity}
    # a deleted message takes its checks with it
    store.delete(new[0])
    assert not checks_path(folder, new[0]).exists()
    assert [m.id for m in store.list()] == [old.id]



# -- what the tester found (issue 14) ----------------------------------------------------------

def test_a_signature_without_its_key_is_not_verified_not_failed() -> None:
    pem, _record = rsa_key()
    report = run_local(signed(html_message(), pem), CheckSettings())
    verdict, reason = dkim_verdict(report)
    raw_results = {v["result"] for v in report.result("dkim").summary["verdicts"]}
    assert raw_results == {"temperror"}  # what the DKIM check said: no key at hand
    assert verdict == "not verified" and "DNS lookups are off" in reason
    assert "DKIM: not verified (no key; DNS lookups are off)" in summary_line(report)
    assert "DKIM: fail" not in summary_line(report)


def test_pasted_key_lines_are_checked_line_by_line() -> None:
    _pem, record = rsa_key()
    text = "\n".join([
        f"s1._domainkey.example.com {record}",          # 1: a key
        "# a comment",                                   # 2: ignored
        f"www.example.com {record}",                     # 3: not a DKIM name
        "s2._domainkey.example.com v=DKIM1; k=rsa; p=not*base64",  # 4
        "s3._domainkey.example.com v=DKIM1; k=rsa",      # 5: no p=
        "justoneword",                                   # 6: no record
        f"s4._domainkey.example.com = {record}",         # 7: a key, NAME = RECORD
        "s5._domainkey.example.com v=spf1; p=AAAA",       # 8: not v=DKIM1
    ])
    keys, problems = check_key_lines(text)
    assert keys == {"s1._domainkey.example.com": record, "s4._domainkey.example.com": record}
    assert [p.split(" ", 2)[1].rstrip(":") for p in problems] == ["3", "4", "5", "6", "8"]
    assert "base64" in problems[1] and "p=" in problems[2] and "DKIM1" in problems[4]
    # every line is either a key or a problem: nothing is dropped silently
    assert len(keys) + len(problems) == 7


def test_the_message_id_takes_the_from_domain_and_the_bytes_keep_it() -> None:
    from mailgui.model.draft import DEFAULT_MSGID_DOMAIN, Draft
    from mailgui.model.source import preview, serialized_draft

    draft = Draft(to="qa@example.com", subject="Hi", body="Hello")
    assert draft.message_id.endswith(f"@{DEFAULT_MSGID_DOMAIN}>")
    unique = draft.message_id.split("@")[0]
    draft.from_email = "Shop <news@Shop.Example.COM>"
    assert draft.message_id == f"{unique}@shop.example.com>"  # the unique part stays
    draft.from_email = "news@"  # half-typed: the domain it had stays
    assert draft.message_id == f"{unique}@shop.example.com>"
    draft.from_email = ""
    draft.use_profile_domain("dkim.example.net")  # the profile's DKIM domain
    assert draft.message_id == f"{unique}@dkim.example.net>"
    draft.from_email = "ann@example.org"
    draft.use_profile_domain("dkim.example.net")  # a typed From wins
    assert draft.message_id == f"{unique}@example.org>"
    # the preview and the bytes that go out carry the draft's ID
    raw = serialized_draft(draft, None).getvalue()
    assert MessageView(raw).header("Message-ID") == draft.message_id
    assert preview(draft, None).message_id == draft.message_id
    assert serialized_draft(draft.copy(), None).getvalue() == raw
    lint = run_local(raw, checks=["lint"]).result("lint")
    assert "lint.message-id" not in {f.code for f in lint.findings}
    draft.renew()
    assert draft.message_id.endswith("@example.org>") and unique not in draft.message_id
    saved = Draft.from_dict(draft.to_dict())
    assert saved.message_id == draft.message_id


def test_network_checks_are_kept_beside_the_message_and_deleted_with_it(
        tmp_path: Path) -> None:
    from mailcore.checks import CheckResult

    store = InboxStore(tmp_path)
    item = store.add("shop@example.com", ["qa@example.com"], html_message())
    spam = CheckResult("spam", summary={"score": 1.5, "threshold": 5.0, "is_spam": False})
    links = CheckResult("links", summary={"links": [], "skipped_single_use": []})
    assert save_net_checks(tmp_path, item.id, [spam, links, run_local(html_message()).results[0]])
    loaded = load_net_checks(tmp_path, item.id)
    assert [r.to_json() for r in loaded] == [spam.to_json(), links.to_json()]
    assert [m.id for m in store.list()] == [item.id]  # not taken for a message
    store.delete(item.id)
    assert not net_checks_path(tmp_path, item.id).exists()
    # a message deleted meanwhile: nothing is written
    assert not save_net_checks(tmp_path, item.id, [spam])
    assert not net_checks_path(tmp_path, item.id).exists()
    # during a burst a message is in the journal before it has an .eml: the inbox says it is
    # there, and its results are kept; once it is gone they are not
    assert save_net_checks(tmp_path, "in-journal", [spam], alive=lambda: True)
    assert load_net_checks(tmp_path, "in-journal")[0].to_json() == spam.to_json()
    assert not save_net_checks(tmp_path, "deleted", [spam], alive=lambda: False)
    assert not net_checks_path(tmp_path, "deleted").exists()


def test_a_message_without_html_has_no_client_score() -> None:
    from mailcore import EmailMessage

    raw = serialize(EmailMessage("Hi", "plain", "a@example.com", ["b@example.com"]),
                    linesep="\r\n").getvalue()
    report = run_local(raw)
    assert report.result("clients").summary["html_parts"] == 0
    assert clients_score(report) is None and "Clients:" not in summary_line(report)
    assert clients_score(run_local(html_message())) is not None
