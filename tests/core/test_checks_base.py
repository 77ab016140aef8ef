"""The view every check reads: MIME leaves, their section numbers and source lines, and the
shared HTML/CSS parsing."""

from __future__ import annotations

import email
import email.policy

import pytest

import mailcore
from mailcore.checks import (
    CheckResult,
    Finding,
    Location,
    MessageView,
    Report,
    Severity,
    check_message,
    run_check,
)
from mailcore.checks import html as chtml


def newsletter() -> mailcore.EmailMultiAlternatives:
    msg = mailcore.EmailMultiAlternatives(
        "News", "plain words\n", "a@example.com", ["b@example.com"]
    )
    msg.attach_alternative(
        "<html><head><style>\n/* display: grid */ .x { display: flex; color: red }\n"
        "@media (prefers-color-scheme: dark) { p { color: white } }\n</style></head>\n"
        "<body>\n<p style=\"position: absolute; content: 'a;b'\">Hi</p>\n"
        "<img src=\"cid:logo\"></body></html>",
        "text/html",
    )
    msg.attach("notes.txt", "attached words\n", "text/plain")
    return msg


def test_parts_have_imap_section_numbers_and_point_at_their_headers() -> None:
    view = MessageView.of(newsletter())
    assert [(p.section, p.content_type, p.is_attachment) for p in view.parts] == [
        ("1.1", "text/plain", False),
        ("1.2", "text/html", False),
        ("2", "text/plain", True),
    ]
    lines = view.raw.decode().split("\r\n")
    for part in view.parts:
        first = lines[part.start_line - 1]
        assert first.lower().startswith("content-type: " + part.content_type)
    assert [p.section for p in view.html_parts] == ["1.2"]
    assert [p.section for p in view.text_parts] == ["1.1"]
    assert view.part("2").text == "attached words\r\n"  # as on the wire


def test_a_single_part_message_is_section_1_at_line_1() -> None:
    view = MessageView(b"Subject: x\r\n\r\nbody\r\n")
    assert [(p.section, p.start_line, p.text) for p in view.parts] == [("1", 1, "body\r\n")]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage without headers",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nno end",
        b"Subject: =?bogus?Q?x?=\r\nContent-Type: text/html; charset=nonsense\r\n\r\n<p>\xff",
        b"Content-Transfer-Encoding: base64\r\nContent-Type: text/html\r\n\r\n!!!notbase64",
    ],
)
def test_malformed_messages_never_raise(raw: bytes) -> None:
    report = check_message(raw, ["clients", "lint", "dkim"])
    assert {r.check for r in report.results} == {"clients", "lint", "dkim"}
    view = MessageView(raw)
    for part in view.parts:
        assert isinstance(part.text, str)
    view.header("Subject")


def test_the_view_takes_bytes_str_email_messages_and_serialized() -> None:
    msg = newsletter()
    a = MessageView.of(msg)
    from mailcore.wire import serialize

    b = MessageView.of(serialize(msg, linesep="\r\n"))
    assert b.header("Subject") == "News" and len(b.parts) == 3
    c = MessageView.of(email.message_from_bytes(a.raw, policy=email.policy.default))
    assert [p.section for p in c.parts] == [p.section for p in a.parts]
    d = MessageView.of(a.raw.decode())
    assert d.header("From") == "a@example.com"
    with pytest.raises(TypeError, match="cannot check"):
        MessageView.of(42)


def test_css_comes_from_a_real_parser_with_lines() -> None:
    view = MessageView.of(newsletter())
    tree = view.html_tree(view.html_parts[0])
    assert view.html_tree(view.html_parts[0]) is tree  # parsed once, shared
    css = chtml.all_css(tree)
    decls, at_rules = css.declarations, css.at_rules
    got = {(d.property, d.value, d.line, d.source) for d in decls}
    # the comment's "display: grid" is not a declaration; the string's ';' does not split
    assert ("display", "flex", 2, "style-element") in got
    assert ("color", "white", 3, "style-element") in got
    assert ("position", "absolute", 6, "style-attribute") in got
    assert ("content", "\"a;b\"", 6, "style-attribute") in got
    assert not any(d.value == "grid" for d in decls)
    assert [(a.name, a.prelude, a.line) for a in at_rules] == [
        ("media", "(prefers-color-scheme: dark)", 3)
    ]
    img = next(e for e in chtml.elements(tree) if e.tag == "img")
    assert chtml.describe(img) == '<img src="cid:logo">'
    assert img.sourceline == 7


def test_report_counts_and_json() -> None:
    f1 = Finding("lint", "lint.a", Severity.WARNING, "A.", location=Location("0", None, "Date"))
    f2 = Finding("lint", "lint.b", Severity.ERROR, "B.", fix="Do b.")
    report = Report([CheckResult("lint", [f1, f2]), CheckResult("spam", error="no spamd")])
    assert report.counts() == {"info": 0, "warning": 1, "error": 1}
    assert report.worst is Severity.ERROR
    assert report.result("spam").error == "no spamd"
    data = report.to_json()
    assert data["results"][0]["findings"][1] == {
        "check": "lint", "code": "lint.b", "severity": "error", "message": "B.",
        "fix": "Do b.", "location": {"part": None, "line": None, "element": None},
        "reference": "", "data": {},
    }
    assert f1.location.describe() == "headers, Date"
    assert Location("1.2", 7, "<img>").describe() == "part 1.2, line 7, <img>"


def test_unknown_check_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown check 'nope'"):
        run_check("nope", MessageView(b"Subject: x\r\n\r\n"))


def test_a_start_tag_over_several_lines_is_found_where_it_begins() -> None:
    """lxml gives an element the line where its start tag ends; findings point at its start."""
    msg = mailcore.EmailMultiAlternatives("x", "hello there", "a@example.com", ["b@example.com"])
    msg.attach_alternative('<p>hello there</p>\n<img\n  src="https://x.example/a.png">\n',
                           "text/html")
    view = MessageView.of(msg)
    part = view.html_parts[0]
    img = next(e for e in chtml.elements(view.html_tree(part)) if e.tag == "img")
    assert img.sourceline == 3
    assert chtml.source_lines(view, part).start(img) == 2
    lint = check_message(view, ["lint"]).result("lint")
    assert [f.location.line for f in lint.findings if f.code == "lint.img-no-alt"] == [2]
