"""The deliverability lint: one message per finding, a clean message with none.

Messages are built with mailcore where mailcore builds them; raw bytes where mailcore refuses
to build something broken (a missing Date, HTML before the text in an alternative, ...).
Every test goes through ``check_message(msg, ["lint"])``, as the CLI and the GUI do.
"""

from __future__ import annotations

import base64
import email.utils
import quopri
from datetime import UTC, datetime, timedelta

import pytest

from mailcore import EmailMessage, EmailMultiAlternatives, make_msgid
from mailcore.checks import MessageView, Severity, check_message
from mailcore.checks import lint as lint_module

TEXT = (
    "Hello Ann,\n\n"
    "Your order 1234 has shipped and will arrive on Friday.\n"
    "Track it here: https://shop.example.com/track/1234\n\n"
    "Thanks, the Example Shop team\n"
)
HTML = """<html><head><title>Order</title><style>p { color: #333 }</style></head>
<body>
<p>Hello Ann,</p>
<p>Your order <b>1234</b> has shipped and will arrive on Friday.</p>
<p><a href="https://shop.example.com/track/1234">Track it here</a></p>
<img src="cid:logo" alt="Example Shop" width="120">
<p>Thanks, the Example Shop team</p>
</body></html>
"""
FROM = "Example Shop <orders@shop.example.com>"


def build(text: str = TEXT, html: str | None = HTML, subject: str = "Your order has shipped",
          headers: dict | None = None, cls=EmailMultiAlternatives, **kw):
    all_headers = {"Message-ID": make_msgid(domain="shop.example.com")}
    all_headers.update(headers or {})
    msg = cls(subject, text, kw.pop("from_email", FROM), kw.pop("to", ["ann@example.org"]),
              headers=all_headers, **kw)
    if html is not None:
        msg.attach_alternative(html, "text/html")
    return msg


def raw_message(*headers: str, body: str | bytes = "Hello Ann, your order has shipped.\n",
                date: bool = True, message_id: bool = True, from_: bool = True) -> bytes:
    """A message written by hand (what mailcore refuses to build)."""
    lines = []
    if from_:
        lines.append(f"From: {FROM}")
    lines += ["To: ann@example.org", "Subject: Your order has shipped"]
    if date:
        lines.append(f"Date: {email.utils.formatdate()}")
    if message_id:
        lines.append(f"Message-ID: {make_msgid(domain='shop.example.com')}")
    lines += list(headers)
    head = "\r\n".join(lines).encode() + b"\r\n\r\n"
    if isinstance(body, str):
        body = body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    return head + body


def lint(msg, **options):
    """The lint's result for a message; a rule that crashed fails the test."""
    report = check_message(msg, ["lint"], options={"lint": options} if options else None)
    result = report.result("lint")
    assert result is not None and not result.error
    assert "rule_errors" not in result.summary, result.summary
    for finding in result.findings:  # every finding is complete and actionable
        assert finding.check == "lint"
        assert finding.code.startswith("lint.")
        assert finding.message and finding.message.endswith(".")
        assert finding.fix and finding.fix.endswith(".")
        assert finding.reference.startswith("https://")
    return result


def codes(result) -> set[str]:
    return {f.code for f in result.findings}


def only(result, code: str):
    found = [f for f in result.findings if f.code == code]
    assert len(found) == 1, [f.to_json() for f in result.findings]
    return found[0]


def html_line(html: str, needle: str) -> int:
    """The 1-based line of the HTML source that holds ``needle``."""
    return next(i for i, line in enumerate(html.splitlines(), 1) if needle in line)


# -- the clean message ---------------------------------------------------------------------------


def test_a_clean_message_has_no_findings():
    result = lint(build())
    assert result.findings == []
    assert result.summary["bulk"] is False


def test_a_clean_bulk_message_has_no_findings():
    text = TEXT + "\nTo unsubscribe from these emails: https://shop.example.com/unsub?u=1\n"
    html = HTML.replace(
        "</body>", '<p><a href="https://shop.example.com/unsub?u=1">Unsubscribe</a> from '
        "these emails</p></body>")
    msg = build(text, html, headers={
        "List-Id": "Shop news <news.shop.example.com>",
        "Precedence": "bulk",
        "List-Unsubscribe": "<https://shop.example.com/unsub?u=1>, "
                            "<mailto:unsubscribe@shop.example.com?subject=u1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    })
    result = lint(msg)
    assert result.findings == []
    assert result.summary["bulk"] is True
    assert "a List-Id header" in result.summary["bulk_reasons"]


def test_a_text_only_message_is_clean():
    assert lint(build(html=None, cls=EmailMessage)).findings == []


# -- alternatives ---------------------------------------------------------------------------------


def test_html_without_a_text_alternative():
    msg = build(html=None, text=HTML, cls=EmailMessage)
    msg.content_subtype = "html"
    result = lint(msg)
    finding = only(result, "lint.no-text-alternative")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "1"
    assert "plain-text" in finding.message and "attach_alternative" in finding.fix
    assert codes(result) == {"lint.no-text-alternative"}


def test_an_empty_text_part_next_to_html():
    result = lint(build(text="\n   \n"))
    finding = only(result, "lint.no-text-alternative")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "1"  # the empty text part
    assert finding.data["empty_text_part"] is True
    assert codes(result) == {"lint.no-text-alternative"}


def test_html_before_text_in_an_alternative():
    boundary = "b0undary"
    body = (
        f"--{boundary}\nContent-Type: text/html; charset=utf-8\n\n{HTML}\n"
        f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{TEXT}\n"
        f"--{boundary}--\n"
    )
    raw = raw_message("MIME-Version: 1.0",
                      f'Content-Type: multipart/alternative; boundary="{boundary}"', body=body)
    result = lint(raw)
    finding = only(result, "lint.alternative-order")
    assert finding.severity is Severity.ERROR
    assert finding.location.part == "0"
    assert finding.location.element == "multipart/alternative"
    assert "text/plain part first" in finding.fix
    assert codes(result) == {"lint.alternative-order"}


def test_text_and_html_that_say_different_things():
    matching = lint(build())
    different = lint(build(text="Please view this message in an email client that shows HTML.\n"))
    finding = only(different, "lint.text-html-differ")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "2"
    similarity = finding.data["similarity"]
    assert 0 <= similarity < lint_module.SIMILARITY_THRESHOLD
    assert f"{similarity:.2f}" in finding.message
    assert finding.data["text_part"] == "1" and finding.data["html_part"] == "2"
    assert "shipped" in finding.data["only_in_html"]
    # measured, not fixed: the matching pair scores higher and is not flagged
    matched = matching.summary["similarity"]["2"]
    assert 0 <= similarity < matched <= 1
    assert matched >= lint_module.SIMILARITY_THRESHOLD
    assert codes(different) == {"lint.text-html-differ"}


def test_similarity_ignores_reordering_and_links():
    reordered = (
        "Thanks, the Example Shop team.\n\nHello Ann, your order 1234 has shipped and will "
        "arrive on Friday. Track it here [1].\n\n[1] https://shop.example.com/track/1234\n"
    )
    result = lint(build(text=reordered))
    assert "lint.text-html-differ" not in codes(result)
    assert result.summary["similarity"]["2"] > lint_module.SIMILARITY_THRESHOLD


def test_visible_text_leaves_out_head_style_and_script():
    html = ("<html><head><title>Secret title</title><style>.hidden{}</style></head><body>"
            "<p>Shown<script>var hidden = 1;</script> words</p><!-- a comment --></body></html>")
    view = MessageView.of(build(html=html))
    text = lint_module._visible_text(view.html_tree(view.html_parts[0]))
    assert lint_module.words(text) == {"shown", "words"}


# -- transfer encodings ------------------------------------------------------------------------


def _single(cte: str, payload: bytes, charset: str | None = "utf-8") -> bytes:
    ctype = "text/plain" + (f"; charset={charset}" if charset else "")
    return raw_message("MIME-Version: 1.0", f"Content-Type: {ctype}",
                       f"Content-Transfer-Encoding: {cte}", body=payload)


def test_base64_text_where_7bit_would_do():
    payload = base64.encodebytes(TEXT.encode())
    result = lint(_single("base64", payload))
    finding = only(result, "lint.needless-encoding")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "1"
    assert finding.location.element == "Content-Transfer-Encoding: base64"
    assert "7bit" in finding.fix
    assert codes(result) == {"lint.needless-encoding"}


def test_quoted_printable_text_where_7bit_would_do():
    payload = quopri.encodestring(TEXT.encode())
    finding = only(lint(_single("quoted-printable", payload)), "lint.needless-encoding")
    assert finding.severity is Severity.INFO
    assert finding.data["encoding"] == "quoted-printable"


def test_8bit_declared_for_ascii_text():
    finding = only(lint(_single("8bit", TEXT.encode())), "lint.needless-encoding")
    assert finding.severity is Severity.INFO
    assert finding.location.element == "Content-Transfer-Encoding: 8bit"


def test_non_ascii_text_is_not_needlessly_encoded():
    text = "Grüße aus Köln, Ihre Bestellung ist unterwegs.\n"
    assert lint(_single("base64", base64.encodebytes(text.encode()))).findings == []
    assert lint(build(text=text, html=None, cls=EmailMessage)).findings == []


def test_8bit_bytes_declared_7bit():
    result = lint(_single("7bit", "Grüße aus Köln.\n".encode()))
    finding = only(result, "lint.undeclared-8bit")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "1"
    assert codes(result) == {"lint.undeclared-8bit"}


def test_non_ascii_text_without_a_charset():
    result = lint(_single("8bit", "Grüße aus Köln.\n".encode(), charset=None))
    finding = only(result, "lint.charset")
    assert finding.severity is Severity.WARNING
    assert "charset" in finding.fix


def test_text_that_is_not_its_declared_charset():
    result = lint(_single("8bit", "Grüße aus Köln.\n".encode("latin-1")))
    finding = only(result, "lint.charset")
    assert "utf-8" in finding.message
    assert finding.location.element == "charset=utf-8"


def test_quoted_printable_soft_break_inside_a_url():
    url = "https://shop.example.com/track/1234?campaign=autumn&token=" + "abcdef0123" * 8
    # one line over 998 octets: mailcore encodes the part as quoted-printable, which breaks
    # every 76 characters, so the URL is cut by a soft line break
    text = "Hello Ann, " + "your order has shipped. " * 40 + f"Track it here: {url} " + "x" * 10
    msg = build(text=text, html=None, cls=EmailMessage)
    view = MessageView.of(msg)
    assert view.parts[0].transfer_encoding == "quoted-printable"
    result = lint(view)
    finding = only(result, "lint.qp-breaks-url")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "1"
    assert finding.data["url"] == url and finding.location.element == url
    encoded = view.parts[0].raw_body.decode().splitlines()
    line = finding.location.line
    assert line == finding.data["encoded_line"]
    assert encoded[line - 1].endswith("=")  # the soft break is on that line of the raw part
    # ...and it falls inside the URL: decoding up to it ends part-way through the URL
    before = quopri.decodestring("\n".join(encoded[:line]).encode()).decode()
    start = view.parts[0].text.index(url)
    assert start < len(before) < start + len(url)
    assert "7bit" in finding.fix
    assert "lint.needless-encoding" not in codes(result)  # quoted-printable was needed here


# -- sizes ---------------------------------------------------------------------------------------


def test_html_over_gmails_clipping_limit():
    paragraph = "<p>Your order has shipped and will arrive on Friday, Ann.</p>\n"
    html = "<html><body>\n" + paragraph * 2000 + "</body></html>\n"
    text = "Your order has shipped and will arrive on Friday, Ann.\n" * 2000
    result = lint(build(text=text, html=html))
    finding = only(result, "lint.gmail-clipping")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "2"
    # the decoded bytes as they travel: the wire writes CRLF line ends
    assert finding.data["html_bytes"] == len(html.replace("\n", "\r\n").encode())
    assert finding.data["html_bytes"] > lint_module.GMAIL_CLIP_BYTES
    assert "102 KB" in finding.fix
    assert codes(result) == {"lint.gmail-clipping"}


def test_html_just_under_the_limit_is_not_clipped():
    line = "<p>Your order has shipped.</p>\n"
    lines = (lint_module.GMAIL_CLIP_BYTES - 100) // (len(line) + 1)  # +1: the CR of CRLF
    html = "<html><body>\n" + line * lines + "</body></html>\n"
    assert len(html.replace("\n", "\r\n").encode()) < lint_module.GMAIL_CLIP_BYTES
    result = lint(build(text="Your order has shipped.\n", html=html))
    assert "lint.gmail-clipping" not in codes(result)


@pytest.mark.parametrize(
    ("attachment_bytes", "severity"),
    [(8_000_000, Severity.WARNING), (19_000_000, Severity.ERROR)],
)
def test_total_size(attachment_bytes, severity):
    msg = build()
    msg.attach("data.bin", bytes(range(256)) * (attachment_bytes // 256),
               "application/octet-stream")
    view = MessageView.of(msg)
    result = lint(view)
    finding = only(result, "lint.size")
    assert finding.severity is severity
    assert finding.data["size"] == len(view.raw)
    assert finding.data["size"] > finding.data["limit"]
    assert finding.location.part is None
    assert "Link to large files" in finding.fix
    assert codes(result) == {"lint.size"}


def test_a_line_over_998_octets():
    long_line = "word " * 240  # 1200 octets on one line of a 7bit part
    raw = raw_message("MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii",
                      body=f"Hello Ann,\n{long_line}\n")
    result = lint(raw)
    finding = only(result, "lint.long-line")
    assert finding.severity is Severity.ERROR
    number = raw.split(b"\r\n").index(long_line.encode()) + 1
    assert finding.location.line == number
    assert finding.data["octets"] == len(long_line)
    assert finding.location.part == "1"


# -- images and active content ----------------------------------------------------------------


def test_images_without_alt():
    html = HTML.replace(
        "<p>Thanks,", '<img src="cid:banner" width="600">\n'
        '<img src="cid:spacer" alt="" width="1" height="1">\n<p>Thanks,')
    result = lint(build(html=html))
    finding = only(result, "lint.img-no-alt")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "2"
    assert finding.location.line == html_line(html, "cid:banner")
    assert 'src="cid:banner"' in finding.location.element
    assert finding.data["without_alt"] == 1 and finding.data["images"] == 3
    assert "alt" in finding.fix
    assert codes(result) == {"lint.img-no-alt"}


def test_one_finding_per_image_without_alt():
    images = "".join(f'<img src="cid:p{i}">\n' for i in range(3))
    result = lint(build(html=HTML.replace("<p>Thanks,", images + "<p>Thanks,")))
    found = [f for f in result.findings if f.code == "lint.img-no-alt"]
    assert len(found) == 3
    assert len({f.location.line for f in found}) == 3


def test_an_image_only_message():
    html = '<html><body><img src="cid:sale" alt="Big sale" width="600"></body></html>'
    result = lint(build(text="Big sale\n", html=html))
    finding = only(result, "lint.image-only")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "2" and "cid:sale" in finding.location.element
    assert finding.data["words"] < lint_module.IMAGE_ONLY_WORDS
    assert codes(result) == {"lint.image-only"}


def test_remote_images_only():
    html = """<html><body>
<p>Our autumn collection is here, Ann.</p>
<img src="https://cdn.example.com/autumn1.jpg" alt="Autumn coats" width="600">
<img src="https://cdn.example.com/autumn2.jpg" alt="Autumn boots" width="600">
</body></html>"""
    result = lint(build(text="Our autumn collection is here, Ann.\n", html=html))
    finding = only(result, "lint.remote-images-only")
    assert finding.severity is Severity.WARNING
    assert finding.location.line == html_line(html, "autumn1.jpg")
    assert "cid:" in finding.fix
    assert codes(result) == {"lint.remote-images-only"}
    # the same with one embedded image: readers see something when remote images are blocked
    embedded = html.replace("https://cdn.example.com/autumn2.jpg", "cid:autumn2")
    assert lint(build(text="Our autumn collection is here, Ann.\n", html=embedded)).findings == []


def test_scripts_forms_and_javascript_urls():
    html = HTML.replace("<p>Thanks,", (
        "<script>alert(1)</script>\n"
        '<form action="https://shop.example.com/rate"><input name="r"></form>\n'
        '<a href=" JavaScript:void(0)">Rate us</a>\n<p>Thanks,'))
    result = lint(build(html=html))
    found = [f for f in result.findings if f.code == "lint.active-content"]
    assert [f.location.line for f in found] == [
        html_line(html, "<script>"), html_line(html, "<form"), html_line(html, "JavaScript:")]
    assert all(f.severity is Severity.WARNING for f in found)
    assert "<script>" in found[0].message and "<form>" in found[1].message
    assert "href" in found[2].message
    assert found[1].reference.endswith("html-form/")


# -- bulk mail and List-Unsubscribe ----------------------------------------------------------


def test_bulk_mail_without_list_unsubscribe():
    result = lint(build(headers={"Precedence": "bulk"}))
    finding = only(result, "lint.no-list-unsubscribe")
    assert finding.severity is Severity.WARNING
    assert finding.location.part == "0" and finding.location.element == "List-Unsubscribe"
    assert "Precedence: bulk" in finding.data["reasons"]
    assert "List-Unsubscribe-Post" in finding.fix
    assert codes(result) == {"lint.no-list-unsubscribe"}


def test_bulk_is_guessed_from_unsubscribe_words_and_many_recipients():
    text = TEXT + "\nTo unsubscribe, reply STOP.\n"
    html = HTML.replace("</body>", "<p>To unsubscribe, reply STOP.</p></body>")
    assert "lint.no-list-unsubscribe" in codes(lint(build(text, html)))
    many = [f"user{i}@example.org" for i in range(lint_module.MANY_RECIPIENTS)]
    finding = only(lint(build(to=many)), "lint.no-list-unsubscribe")
    assert f"{len(many)} visible recipients" in finding.data["reasons"]


def test_the_bulk_option_overrides_the_guess():
    assert only(lint(build(), bulk=True), "lint.no-list-unsubscribe")
    assert lint(build(headers={"List-Id": "<news.shop.example.com>"}), bulk=False).findings == []


def test_list_unsubscribe_https_without_one_click():
    result = lint(build(headers={"List-Unsubscribe": "<https://shop.example.com/unsub?u=1>"}))
    finding = only(result, "lint.no-one-click")
    assert finding.severity is Severity.WARNING
    assert finding.location.element == "List-Unsubscribe-Post"
    assert "List-Unsubscribe=One-Click" in finding.fix
    assert "rfc8058" in finding.reference
    assert codes(result) == {"lint.no-one-click"}


def test_bulk_mail_with_only_a_mailto_unsubscribe():
    headers = {"List-Unsubscribe": "<mailto:unsubscribe@shop.example.com>"}
    result = lint(build(headers=headers), bulk=True)
    finding = only(result, "lint.no-one-click")
    assert finding.location.element == "List-Unsubscribe"
    assert "https" in finding.fix
    assert codes(result) == {"lint.no-one-click"}
    assert lint(build(headers=headers), bulk=False).findings == []  # one person's mail


def test_list_unsubscribe_not_in_angle_brackets():
    result = lint(build(headers={"List-Unsubscribe": "https://shop.example.com/unsub?u=1",
                                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}))
    finding = next(f for f in result.findings if f.code == "lint.list-unsubscribe")
    assert finding.severity is Severity.WARNING
    assert finding.location.element == "List-Unsubscribe"
    assert "<https://" in finding.fix


def test_one_click_headers_not_covered_by_dkim():
    signature = ("v=1; a=rsa-sha256; c=relaxed/relaxed; d=shop.example.com; s=mail; "
                 "h=from:to:subject:date; bh=AAAA; b=BBBB")
    result = lint(build(headers={
        "List-Unsubscribe": "<https://shop.example.com/unsub?u=1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "DKIM-Signature": signature,
    }))
    finding = only(result, "lint.one-click-unsigned")
    assert finding.location.element == "DKIM-Signature"
    assert codes(result) == {"lint.one-click-unsigned"}


# -- Message-ID, Date, From ------------------------------------------------------------------


def test_missing_message_id():
    result = lint(raw_message(message_id=False))
    finding = only(result, "lint.message-id")
    assert finding.severity is Severity.ERROR
    assert finding.location.part == "0" and finding.location.element == "Message-ID"
    assert codes(result) == {"lint.message-id"}


@pytest.mark.parametrize("value", [
    "1234.5678@shop.example.com",  # no angle brackets
    "<1234.5678.shop.example.com>",  # no @
    "<1234.5678@localhost>",
    "<1234.5678@build-box.local>",
    "<1234.5678@mailhost>",
])
def test_odd_message_ids(value):
    result = lint(build(headers={"Message-ID": value}))
    finding = only(result, "lint.message-id")
    assert finding.severity is Severity.WARNING
    assert "make_msgid" in finding.fix
    assert finding.data["value"] == value


def test_two_message_ids():
    raw = raw_message(f"Message-ID: {make_msgid(domain='shop.example.com')}")
    finding = only(lint(raw), "lint.message-id")
    assert finding.severity is Severity.ERROR and finding.data["count"] == 2


def test_missing_date():
    result = lint(raw_message(date=False))
    finding = only(result, "lint.date")
    assert finding.severity is Severity.ERROR
    assert finding.location.element == "Date"
    assert codes(result) == {"lint.date"}


def test_unparseable_date():
    finding = only(lint(build(headers={"Date": "yesterday at noon"})), "lint.date")
    assert finding.severity is Severity.ERROR
    assert "formatdate" in finding.fix


def test_date_in_the_future_and_the_past():
    now = datetime.now(UTC)
    future = email.utils.format_datetime(now + timedelta(days=2))
    finding = only(lint(build(headers={"Date": future})), "lint.date")
    assert finding.severity is Severity.WARNING
    assert finding.data["offset_seconds"] > 0 and "after now" in finding.message
    past = email.utils.format_datetime(now - timedelta(days=30))
    finding = only(lint(build(headers={"Date": past})), "lint.date")
    assert finding.data["offset_seconds"] < 0 and "before now" in finding.message
    # checked later (an old .eml): compared with the time given, not the clock
    assert lint(build(headers={"Date": past}), now=now - timedelta(days=30)).findings == []


def test_date_is_compared_with_the_first_received_header():
    sent = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    received = (f"Received: from mx.example.org by inbox.example.org; "
                f"{email.utils.format_datetime(sent + timedelta(minutes=3))}")
    raw = raw_message(received, date=False).replace(
        b"Subject:", f"Date: {email.utils.format_datetime(sent)}\r\nSubject:".encode())
    assert lint(raw).findings == []
    late = raw_message(received, date=False).replace(
        b"Subject:", f"Date: {email.utils.format_datetime(sent - timedelta(days=9))}\r\n"
                     "Subject:".encode())
    finding = only(lint(late), "lint.date")
    assert "first server received it" in finding.message


def test_missing_from():
    result = lint(raw_message(from_=False))
    finding = only(result, "lint.from")
    assert finding.severity is Severity.ERROR
    assert finding.location.element == "From"


def test_two_from_headers():
    finding = only(lint(raw_message("From: other@example.net")), "lint.from")
    assert finding.severity is Severity.ERROR and finding.data["count"] == 2


def test_several_from_addresses_without_sender():
    msg = build(headers={"From": "ann@shop.example.com, bob@shop.example.com"})
    finding = only(lint(msg), "lint.from")
    assert finding.severity is Severity.ERROR
    assert finding.data["addresses"] == ["ann@shop.example.com", "bob@shop.example.com"]
    assert "Sender" in finding.fix
    with_sender = build(headers={"From": "ann@shop.example.com, bob@shop.example.com",
                                 "Sender": "ann@shop.example.com"})
    assert "lint.from" not in codes(lint(with_sender))


# -- DKIM alignment is the DKIM check's (dkim.not-aligned), judged once --------------------------


def test_alignment_is_left_to_the_dkim_check():
    signed = build(headers={"DKIM-Signature": "v=1; a=rsa-sha256; d=mailer.example.net; "
                                              "s=mail; h=from:to:subject; bh=AAAA; b=BBBB"})
    assert lint(signed).findings == []


# -- other headers ----------------------------------------------------------------------------


def test_mime_headers_without_mime_version():
    raw = raw_message("Content-Type: text/plain; charset=us-ascii")
    result = lint(raw)
    finding = only(result, "lint.mime-version")
    assert finding.severity is Severity.WARNING
    assert "MIME-Version: 1.0" in finding.fix
    assert codes(result) == {"lint.mime-version"}


def test_an_empty_subject():
    finding = only(lint(build(subject="")), "lint.subject")
    assert finding.severity is Severity.WARNING
    assert "empty" in finding.message


def test_an_all_caps_subject():
    finding = only(lint(build(subject="YOUR ORDER HAS SHIPPED!")), "lint.subject")
    assert "capitals" in finding.message
    assert lint(build(subject="Your NASA order has shipped")).findings == []


# -- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage without headers",
    b"Subject: only headers",
    b"From: <<<@@@>>>\r\nDate: Mon, 99 Foo 99999 99:99:99 +9999\r\nMessage-ID: <\r\n\r\nx",
    b"Content-Type: multipart/alternative\r\nMIME-Version: 1.0\r\n\r\nno boundary at all",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64===\r\n--x",  # truncated
    b"Content-Type: text/html; charset=no-such-charset\r\nContent-Transfer-Encoding: "
    b"quoted-printable\r\n\r\n<a href=3D\"https://exa=\r\nmple.com/=ZZ\">\xff</a>=",
    b"List-Unsubscribe: <<>>, ,<\r\nDKIM-Signature: ;;;=;d\r\nReceived: ;\r\n\r\n<html>",
])
def test_malformed_input_does_not_raise(raw):
    result = lint(raw)
    assert all(f.severity in Severity for f in result.findings)
    assert result.to_json()["check"] == "lint"


def test_findings_serialise_to_json():
    import json

    result = lint(raw_message(date=False, message_id=False))
    data = json.loads(json.dumps(result.to_json()))
    assert {f["code"] for f in data["findings"]} == {"lint.date", "lint.message-id"}
    assert all(f["fix"] for f in data["findings"])


# -- what the parser found broken ------------------------------------------------------------


@pytest.mark.parametrize(("extra", "body", "defect"), [
    (["MIME-Version: 1.0", "Content-Type: text/plain", "Content-Transfer-Encoding: base64"],
     "!!!notbase64<<<\n", ("InvalidBase64", )),
    (["MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=zz"],
     "--zz\nContent-Type: text/plain\n\nHello Ann, your order has shipped.\n",
     ("CloseBoundaryNotFoundDefect",)),
    (["MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=zz"],
     "no parts at all here\n", ("StartBoundaryNotFoundDefect",)),
])
def test_a_broken_mime_structure_is_an_error(extra, body, defect) -> None:
    result = lint(raw_message(*extra, body=body))
    found = [f for f in result.findings if f.code == "lint.mime-defect"]
    assert found and all(f.severity is Severity.ERROR for f in found)
    assert any(f.data["defect"].startswith(defect) for f in found), [f.data for f in found]
    assert "The MIME structure is broken" in found[0].message
    # base64 that does not decode is not "plain ASCII that needed no encoding"
    assert "lint.needless-encoding" not in codes(result)


def test_an_unknown_charset_is_said_even_for_ascii_text() -> None:
    raw = raw_message("MIME-Version: 1.0", "Content-Type: text/plain; charset=nonsense-cs")
    finding = only(lint(raw), "lint.charset")
    assert "'nonsense-cs', which is not a known character set" in finding.message
    assert finding.location.element == "charset=nonsense-cs"


def test_an_old_date_against_the_clock_is_informational() -> None:
    """A saved message checked years later is not wrongly dated; one dated in the future is."""
    old = email.utils.format_datetime(datetime.now(UTC) - timedelta(days=900))
    past = only(lint(build(headers={"Date": old})), "lint.date")
    assert past.severity is Severity.INFO and "days before now" in past.message
    ahead = email.utils.format_datetime(datetime.now(UTC) + timedelta(days=3))
    future = only(lint(build(headers={"Date": ahead})), "lint.date")
    assert future.severity is Severity.WARNING


def test_a_javascript_url_is_named_as_such() -> None:
    html = '<p>Hello Ann, your order has shipped.</p><a href="javascript:go()">Track</a>'
    finding = only(lint(build(html=html, text="Hello Ann, your order has shipped. Track")),
                   "lint.active-content")
    assert "a javascript: URL in the href attribute" in finding.message
