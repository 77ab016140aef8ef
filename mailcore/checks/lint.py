"""A deliverability lint: what filters, providers and clients will hold against a message.

Local and fast: it reads the headers, the body text and HTML parts that :class:`MessageView`
already holds, and the raw bytes only to measure them; attachments are never decoded. Every
finding has a stable code (``lint.<name>``), a sentence, how to fix it, where it is, and the
reference it relies on (an RFC section, Gmail's or Yahoo's sender guidelines).

Text against HTML: the two alternatives are compared by the Jaccard index of their word sets
(case-folded words, URLs and e-mail addresses left out). A set measure is linear in the length
of the texts (``difflib.SequenceMatcher`` is quadratic in the worst case) and does not punish
what a good plain-text version does on purpose: links moved to the end, table cells read in
another order, a footer written differently. It is low when the two say different things, which
is what this finding is for ("view this message in an HTML-capable client" next to a newsletter).
"""

from __future__ import annotations

import binascii
import bisect
import codecs
import email.utils
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from mailcore.checks.base import CheckResult, Finding, Location, MessageView, Part, Severity

NAME = "lint"

# thresholds (named so a reader and the tests see where a number comes from)
SIMILARITY_THRESHOLD = 0.5  # Jaccard of word sets below this: the alternatives differ
MIN_WORDS_TO_COMPARE = 3  # distinct words each side needs before a comparison means anything
GMAIL_CLIP_BYTES = 102 * 1024  # Gmail shows "[Message clipped]" above about 102 KB of HTML
SIZE_WARNING_BYTES = 10_000_000  # several providers refuse over 10 MB (decimal, to warn early)
SIZE_ERROR_BYTES = 25_000_000  # Gmail, Outlook.com and Yahoo refuse over 25 MB
MAX_LINE_OCTETS = 998  # RFC 5322 2.1.1, without the CRLF
MANY_RECIPIENTS = 20  # visible To + Cc addresses that make a message look bulk
IMAGE_ONLY_WORDS = 5  # fewer visible words than this next to images: an image-only message
REMOTE_ONLY_WORDS = 20  # fewer than this and every image remote: blank when images are blocked
DATE_FUTURE = timedelta(hours=6)
DATE_PAST = timedelta(hours=96)  # SpamAssassin's DATE_IN_PAST_96_XX
MAX_PER_CODE = 20  # findings per code before the rest are only counted in the summary

RFC = "https://www.rfc-editor.org/rfc/"
REF = {
    "alternative": RFC + "rfc2046#section-5.1.4",
    "cte": RFC + "rfc2045#section-6",
    "qp": RFC + "rfc2045#section-6.7",
    "mime-version": RFC + "rfc2045#section-4",
    "mime-structure": RFC + "rfc2046#section-5.1.1",
    "charset": RFC + "rfc2046#section-4.1.2",
    "gmail-clipping": "https://www.spamresource.com/2022/01/what-is-gmail-clipping-and-what-to-do.html",
    "size": "https://support.google.com/mail/answer/6584",
    "alt": "https://html.spec.whatwg.org/multipage/images.html#alt",
    "gmail-guidelines": "https://support.google.com/a/answer/81126",
    "yahoo-guidelines": "https://senders.yahooinc.com/best-practices/",
    "list-unsubscribe": RFC + "rfc2369#section-3.2",
    "one-click": RFC + "rfc8058#section-3.1",
    "one-click-dkim": RFC + "rfc8058#section-4",
    "message-id": RFC + "rfc5322#section-3.6.4",
    "date": RFC + "rfc5322#section-3.6.1",
    "from": RFC + "rfc5322#section-3.6.2",
    "line-length": RFC + "rfc5322#section-2.1.1",
    "gmail-html": "https://developers.google.com/gmail/design/reference/supported_css",
    "form": "https://www.caniemail.com/features/html-form/",
}

_WORD = re.compile(r"[^\W_]+")
_URLISH = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.|\bmailto:)\S+|\S+@\S+\.\S+", re.I)
_URL_BYTES = re.compile(rb"(?:https?|ftp)://[^\s<>\"']+", re.I)
_BULK_WORDS = re.compile(
    r"\bunsubscribe\b|\bopt[- ]?out\b|\bemail preferences\b|\bmanage (?:your )?subscription",
    re.I,
)
_MSGID = re.compile(r"^<([^<>@\s]+)@([^<>@\s]+)>$")
_ODD_TLDS = {
    "local", "localdomain", "localhost", "invalid", "test", "example", "lan", "internal",
    "home", "corp", "intranet", "private",
}
_SKIP_TEXT = {"head", "style", "script", "title", "template", "noscript"}
_BLOCK = {
    "p", "div", "br", "tr", "td", "th", "li", "ul", "ol", "table", "tbody", "thead", "h1", "h2",
    "h3", "h4", "h5", "h6", "blockquote", "section", "article", "header", "footer", "hr", "pre",
    "center", "dd", "dt", "dl", "body", "img",
}
_ACTIVE_TAGS = {"script", "form", "iframe", "object", "embed", "applet"}


class _Lint:
    """One run: the view, the options and the findings gathered so far."""

    def __init__(self, view: MessageView, bulk: bool | None, now: datetime | None) -> None:
        self.view = view
        self.bulk_override = bulk
        self.now = now or datetime.now(UTC)
        if self.now.tzinfo is None:
            self.now = self.now.replace(tzinfo=UTC)
        self.findings: list[Finding] = []
        self.summary: dict[str, Any] = {}
        self._per_code: dict[str, int] = {}

    def add(
        self,
        code: str,
        severity: Severity,
        message: str,
        fix: str,
        location: Location,
        reference: str,
        **data: Any,
    ) -> None:
        full = f"lint.{code}"
        count = self._per_code.get(full, 0) + 1
        self._per_code[full] = count
        if count > MAX_PER_CODE:
            self.summary.setdefault("not_shown", {})[full] = count - MAX_PER_CODE
            return
        self.findings.append(
            Finding(NAME, full, severity, message, fix, location, reference, data)
        )

    # -- shared derived data -----------------------------------------------------------------

    def headers(self, name: str) -> list[str]:
        """Every occurrence of a header, unfolded, as written."""
        out = []
        for key, value in self.view.message.raw_items():
            if key.lower() == name.lower():
                out.append(" ".join(str(value).split()))
        return out

    def visible_text(self, part: Part) -> str:
        return self.view.cached(f"lint:text:{part.section}", lambda: _visible_text(
            self.view.html_tree(part)))

    def body_text_parts(self) -> list[Part]:
        return [p for p in self.view.parts
                if p.content_type in ("text/plain", "text/html") and not p.is_attachment]


# -- the rules, one function each ------------------------------------------------------------


def _alternatives(lint: _Lint) -> None:
    view = lint.view
    html_parts, text_parts = view.html_parts, view.text_parts
    if html_parts and not text_parts:
        part = html_parts[0]
        lint.add(
            "no-text-alternative", Severity.WARNING,
            "The message has HTML but no plain-text alternative; spam filters score HTML-only "
            "mail and text-only clients show nothing readable.",
            "Send the HTML as an alternative of a plain-text body "
            "(EmailMultiAlternatives(body=text).attach_alternative(html, 'text/html')).",
            Location(part.section), REF["alternative"],
        )
    if html_parts:
        for part in text_parts:
            if not part.text.strip():
                lint.add(
                    "no-text-alternative", Severity.WARNING,
                    "The plain-text part next to the HTML is empty, so text-only clients and "
                    "filters that read the text see an empty message.",
                    "Write the plain-text body: the same content as the HTML, without markup.",
                    Location(part.section), REF["alternative"], empty_text_part=True,
                )
    for section, children in _alternative_groups(view.message):
        kinds = [_kind(child) for child in children]
        if kinds and kinds[-1] == "text" and "html" in kinds[:-1]:
            lint.add(
                "alternative-order", Severity.ERROR,
                "The plain text comes after the HTML in multipart/alternative, so clients, which "
                "show the last alternative they can, show the plain text.",
                "Put the text/plain part first and the text/html part last.",
                Location(section or "0", element="multipart/alternative"), REF["alternative"],
            )


def _similarity(lint: _Lint) -> None:
    text_parts = [p for p in lint.view.text_parts if p.text.strip()]
    if not text_parts:
        return
    for html_part in lint.view.html_parts:
        text_part = max(text_parts, key=lambda p: _common_prefix(p.section, html_part.section))
        html_words = words(lint.visible_text(html_part))
        text_words = words(text_part.text)
        if min(len(html_words), len(text_words)) < MIN_WORDS_TO_COMPARE:
            continue
        score = jaccard(text_words, html_words)
        lint.summary.setdefault("similarity", {})[html_part.section] = round(score, 3)
        if score >= SIMILARITY_THRESHOLD:
            continue
        # the longest words first: they say most about what one side has and the other lacks
        only_html = sorted(html_words - text_words, key=lambda w: (-len(w), w))[:8]
        only_text = sorted(text_words - html_words, key=lambda w: (-len(w), w))[:8]
        lint.add(
            "text-html-differ", Severity.WARNING,
            f"The plain text (part {text_part.section}) and the HTML (part {html_part.section}) "
            f"say different things: only {score:.0%} of their words are shared (word-set "
            f"similarity {score:.2f}, below {SIMILARITY_THRESHOLD}).",
            "Make the plain-text part carry the same content as the HTML; filters treat "
            "alternatives that differ as a sign of hidden content.",
            Location(html_part.section), REF["alternative"],
            similarity=score, threshold=SIMILARITY_THRESHOLD, measure="jaccard-word-sets",
            text_part=text_part.section, html_part=html_part.section,
            text_words=len(text_words), html_words=len(html_words),
            only_in_html=only_html, only_in_text=only_text,
        )


def _encodings(lint: _Lint) -> None:
    for part in lint.view.parts:
        if not part.content_type.startswith("text/") or part.is_attachment:
            continue
        enc = part.transfer_encoding
        content = part.content
        eight_bit = not content.isascii()
        longest = _longest_line(content)
        header = f"Content-Transfer-Encoding: {enc}"
        seven_bit_would_do = not eight_bit and longest <= MAX_LINE_OCTETS and b"\0" not in content
        if _broken_encoding(part):
            continue  # said by lint.mime-defect; what it decodes to is not the text
        if enc in ("base64", "quoted-printable") and seven_bit_would_do:
            lint.add(
                "needless-encoding",
                Severity.WARNING if enc == "base64" else Severity.INFO,
                f"The {part.content_type} part is {enc}-encoded although it is plain ASCII with "
                f"lines of at most {MAX_LINE_OCTETS} octets"
                + ("; spam filters score base64-encoded text." if enc == "base64" else "."),
                "Send it as Content-Transfer-Encoding: 7bit (mailcore does so for ASCII text).",
                Location(part.section, element=header), REF["cte"],
                encoding=enc, longest_line=longest,
            )
        elif enc == "8bit" and seven_bit_would_do:
            lint.add(
                "needless-encoding", Severity.INFO,
                f"The {part.content_type} part is declared 8bit although it is plain ASCII.",
                "Declare it Content-Transfer-Encoding: 7bit, which every server accepts.",
                Location(part.section, element=header), REF["cte"],
                encoding=enc, longest_line=longest,
            )
        elif enc in ("7bit", "") and eight_bit:
            lint.add(
                "undeclared-8bit", Severity.WARNING,
                f"The {part.content_type} part has 8-bit bytes but is declared 7bit; servers "
                "without 8BITMIME may refuse or mangle it.",
                "Declare 8bit, or encode the part as quoted-printable or base64.",
                Location(part.section, element=header), REF["cte"],
            )
        _charset(lint, part, content, eight_bit)


_DEFECT_WORDS = {
    "InvalidBase64CharactersDefect": "its base64 has characters that are not base64",
    "InvalidBase64PaddingDefect": "its base64 is cut short (bad padding)",
    "InvalidBase64LengthDefect": "its base64 has a length no base64 can have",
    "CloseBoundaryNotFoundDefect": "its closing boundary is missing (the message was cut off?)",
    "StartBoundaryNotFoundDefect": "its boundary never appears, so it has no parts",
    "NoBoundaryInMultipartDefect": "it is multipart but names no boundary",
    "MultipartConversionError": "it is multipart but can't be split into parts",
    "MissingHeaderBodySeparatorDefect": "a header line is not a header (no blank line before "
                                        "the body?)",
    "FirstHeaderLineIsContinuationDefect": "its first header line is a continuation line",
    "MisplacedEnvelopeHeaderDefect": "it has a 'From ' mbox line among its headers",
    "InvalidMultipartContentTransferEncodingDefect": "it is multipart with a transfer encoding "
                                                     "other than 7bit, 8bit or binary",
}
_ENCODING_DEFECTS = {"InvalidBase64CharactersDefect", "InvalidBase64PaddingDefect",
                     "InvalidBase64LengthDefect"}


def _broken_encoding(part: Part) -> bool:
    _ = part.content  # decoding is what records base64 defects on the part
    return any(type(d).__name__ in _ENCODING_DEFECTS for d in part.message.defects)


def _defects(lint: _Lint) -> None:
    """What the email parser found broken in the structure: clients show such parts wrongly
    or not at all, and filters score them."""
    view = lint.view
    nodes = [("1" if not view.message.is_multipart() else None, view.message)]
    nodes += [(p.section, p.message) for p in view.parts if p.message is not view.message]
    for part in view.parts:
        _ = part.content  # decode, so base64 defects are recorded
    for section, node in nodes:
        for defect in node.defects:
            name = type(defect).__name__
            words = _DEFECT_WORDS.get(name)
            if words is None:
                continue
            where = "the message" if section is None or node is view.message else (
                f"part {section}")
            lint.add(
                "mime-defect", Severity.ERROR,
                f"The MIME structure is broken: in {where}, {words}.",
                "Build the message with a MIME library (mailcore does) instead of by hand, "
                "and send it whole.",
                Location(section or None, element=name), REF["mime-structure"], defect=name,
            )


def _charset(lint: _Lint, part: Part, content: bytes, eight_bit: bool) -> None:
    charset = part.message.get_param("charset")
    if not eight_bit:
        if isinstance(charset, str) and charset.strip():
            try:
                codecs.lookup(charset.strip())
            except LookupError:
                lint.add(
                    "charset", Severity.WARNING,
                    f"The {part.content_type} part declares charset {charset!r}, which is not "
                    "a known character set; some clients refuse to show it.",
                    "Declare charset=\"utf-8\" (or us-ascii) in its Content-Type.",
                    Location(part.section, element=f"charset={charset}"), REF["charset"],
                    charset=charset,
                )
        return
    if not isinstance(charset, str) or not charset.strip():
        lint.add(
            "charset", Severity.WARNING,
            f"The {part.content_type} part has non-ASCII text but no charset, so clients guess "
            "and may show garbled characters.",
            "Add charset=\"utf-8\" (or the text's real charset) to its Content-Type.",
            Location(part.section, element="Content-Type"), REF["charset"],
        )
        return
    try:
        content.decode(charset.strip())
    except LookupError:
        problem = f"declares charset {charset!r}, which is not a known character set"
    except UnicodeDecodeError as exc:
        problem = f"is not valid {charset} (byte {exc.start} of its text)"
    else:
        return
    lint.add(
        "charset", Severity.WARNING,
        f"The {part.content_type} part {problem}, so recipients see garbled characters.",
        "Encode the text in the charset its Content-Type declares (utf-8 is the safe choice).",
        Location(part.section, element=f"charset={charset}"), REF["charset"], charset=charset,
    )


def _qp_urls(lint: _Lint) -> None:
    for part in lint.body_text_parts():
        if part.transfer_encoding != "quoted-printable":
            continue
        raw = part.raw_body
        if b"://" not in raw and b"=3A//" not in raw.upper():
            continue
        decoded, breaks, break_lines = _qp_decode(raw)
        for match in _URL_BYTES.finditer(decoded):
            i = bisect.bisect_right(breaks, match.start())
            if i >= len(breaks) or breaks[i] >= match.end():
                continue
            url = match.group().decode("ascii", "replace")
            lint.add(
                "qp-breaks-url", Severity.WARNING,
                f"Quoted-printable splits the URL {_short(url)} with a soft line break (line "
                f"{break_lines[i]} of the encoded part); some clients and link scanners break "
                "such links.",
                "Send the part as 7bit or 8bit (lines under 998 octets need no "
                "quoted-printable), or shorten the URL so it fits on one encoded line.",
                Location(part.section, break_lines[i], url), REF["qp"],
                url=url, encoded_line=break_lines[i],
                decoded_line=decoded.count(b"\n", 0, match.start()) + 1,
            )


def _sizes(lint: _Lint) -> None:
    size = len(lint.view.raw)
    lint.summary["size"] = size
    if size > SIZE_ERROR_BYTES:
        lint.add(
            "size", Severity.ERROR,
            f"The message is {size / 1e6:.1f} MB; Gmail, Outlook.com and Yahoo refuse messages "
            f"over {SIZE_ERROR_BYTES / 1e6:.0f} MB.",
            "Link to large files (a download or a shared drive) instead of attaching them.",
            Location(), REF["size"], size=size, limit=SIZE_ERROR_BYTES,
        )
    elif size > SIZE_WARNING_BYTES:
        lint.add(
            "size", Severity.WARNING,
            f"The message is {size / 1e6:.1f} MB; some providers refuse messages over "
            f"{SIZE_WARNING_BYTES / 1e6:.0f} MB and most over {SIZE_ERROR_BYTES / 1e6:.0f} MB.",
            "Link to large files instead of attaching them, or compress them.",
            Location(), REF["size"], size=size, limit=SIZE_WARNING_BYTES,
        )
    for part in lint.view.html_parts:
        html_bytes = len(part.content)
        if html_bytes > GMAIL_CLIP_BYTES:
            lint.add(
                "gmail-clipping", Severity.WARNING,
                f"The HTML is {html_bytes / 1024:.0f} KB; Gmail clips HTML over about 102 KB "
                "behind a \"[Message clipped]\" link, hiding the rest (often the unsubscribe "
                "link).",
                "Shrink the HTML below 102 KB: remove unused CSS, comments and whitespace, and "
                "move content to a web page.",
                Location(part.section), REF["gmail-clipping"],
                html_bytes=html_bytes, limit=GMAIL_CLIP_BYTES,
            )
    lines = lint.view.raw.split(b"\n")
    if max(map(len, lines), default=0) > MAX_LINE_OCTETS + 1:  # +1: a CR before the LF
        for number, line in enumerate(lines, 1):
            length = len(line.rstrip(b"\r"))
            if length > MAX_LINE_OCTETS:
                part = _part_at_line(lint.view, number)
                lint.add(
                    "long-line", Severity.ERROR,
                    f"Line {number} of the message is {length} octets; SMTP allows "
                    f"{MAX_LINE_OCTETS}, so servers refuse the message or break the line.",
                    "Encode the part as quoted-printable or base64 (mailcore does so for text "
                    "with long lines), or wrap the line.",
                    Location(part.section if part else "0", number), REF["line-length"],
                    octets=length, message_line=number,
                )
                break  # one is enough to act on; the fix covers the rest


def _images(lint: _Lint) -> None:
    from mailcore.checks.html import describe, elements, source_lines

    for part, tree in lint.view.iter_html():
        lines = source_lines(lint.view, part)
        images = [el for el in elements(tree) if el.tag == "img"]
        missing = [el for el in images if "alt" not in el.attrib]
        for el in missing:
            number = images.index(el) + 1
            src = _short((el.get("src") or "").strip() or "no src", 50).strip("'\"")
            lint.add(
                "img-no-alt", Severity.WARNING,
                f"Image {number} of {len(images)} ({src}) has no alt text"
                + (f" ({len(missing)} in this part have none)" if len(missing) > 1 else "")
                + "; when images are blocked, readers and screen readers get nothing.",
                "Add an alt attribute saying what the image shows (alt=\"\" for decorative "
                "images and spacers).",
                Location(part.section, lines.start(el), describe(el, "src")), REF["alt"],
                without_alt=len(missing), images=len(images),
            )
        content = [el for el in images if not _is_pixel(el)]
        if not content:
            continue
        n_words = len(_WORD.findall(lint.visible_text(part)))
        remote = [el for el in content
                  if (el.get("src") or "").strip().lower().startswith(("http:", "https:", "//"))]
        all_remote = len(remote) == len(content)
        first = content[0]
        where = Location(part.section, lines.start(first), describe(first, "src"))
        if n_words < IMAGE_ONLY_WORDS:
            lint.add(
                "image-only", Severity.WARNING,
                f"The HTML is images with almost no text ({_n(n_words, 'word')}, "
                f"{_n(len(content), 'image')}); spam filters score image-only mail"
                + (", and clients that block remote images show it blank." if all_remote
                   else "."),
                "Put the message in HTML text, with images as illustration only.",
                where, REF["gmail-guidelines"], words=n_words, images=len(content),
                remote=len(remote),
            )
        elif all_remote and n_words < REMOTE_ONLY_WORDS:
            lint.add(
                "remote-images-only", Severity.WARNING,
                f"Every image is remote and there is little text ({_n(n_words, 'word')}); Outlook, "
                "Gmail on some settings and many corporate clients block remote images by "
                "default, so the message looks empty.",
                "Say the message in text as well, or embed key images (cid: attachments).",
                where, REF["gmail-guidelines"], words=n_words, images=len(content),
            )


def _active_content(lint: _Lint) -> None:
    from mailcore.checks.html import describe, elements, source_lines

    for part, tree in lint.view.iter_html():
        for el in elements(tree):
            tag = el.tag.lower()
            js_attr = next(
                (name for name, value in el.attrib.items()
                 if name.lower().startswith("on")
                 or (name.lower() in ("href", "src", "action")
                     and "".join(value.split()).lower().startswith(("javascript:", "vbscript:")))),
                None,
            )
            if tag not in _ACTIVE_TAGS and js_attr is None:
                continue
            if tag in _ACTIVE_TAGS:
                what = f"<{tag}>"
            elif js_attr.lower().startswith("on"):
                what = f"a script in the {js_attr} attribute"
            else:
                what = f"a javascript: URL in the {js_attr} attribute"
            lint.add(
                "active-content", Severity.WARNING,
                f"The HTML uses {what}; email clients remove scripts, forms and embedded "
                "content, and spam filters score them.",
                "Remove it: link to a web page for anything interactive.",
                Location(part.section, source_lines(lint.view, part).start(el),
                         describe(el, js_attr)),
                REF["form"] if tag == "form" else REF["gmail-html"],
            )


def _list_unsubscribe(lint: _Lint) -> None:
    values = lint.headers("List-Unsubscribe")
    reasons = _bulk_reasons(lint)
    bulk = lint.bulk_override if lint.bulk_override is not None else bool(reasons)
    lint.summary["bulk"] = bulk
    lint.summary["bulk_reasons"] = reasons if lint.bulk_override is None else ["bulk option"]
    where = Location("0", element="List-Unsubscribe")
    if not values:
        if bulk:
            lint.add(
                "no-list-unsubscribe", Severity.WARNING,
                "The message looks like bulk mail ("
                + ", ".join(lint.summary["bulk_reasons"])
                + ") but has no List-Unsubscribe header; Gmail and Yahoo require one from bulk "
                "senders.",
                "Add List-Unsubscribe: <https://...> (and List-Unsubscribe-Post: "
                "List-Unsubscribe=One-Click), or pass bulk=False if this is one person's mail.",
                where, REF["gmail-guidelines"], reasons=lint.summary["bulk_reasons"],
            )
        return
    uris, junk = _parse_list_unsubscribe(" ".join(values))
    bad = [u for u in uris if not u.lower().startswith(("https:", "http:", "mailto:"))]
    if junk or not uris or bad:
        lint.add(
            "list-unsubscribe", Severity.WARNING,
            "List-Unsubscribe is not a list of <https:...> or <mailto:...> URIs in angle "
            f"brackets ({_short(values[0])}), so clients ignore it.",
            "Write it as List-Unsubscribe: <https://example.com/unsub?id=...>, "
            "<mailto:unsub@example.com>.",
            where, REF["list-unsubscribe"], value=values[0], unparsed=junk, bad=bad,
        )
    https = [u for u in uris if u.lower().startswith("https:")]
    post = [" ".join(v.split()).lower() for v in lint.headers("List-Unsubscribe-Post")]
    one_click = "list-unsubscribe=one-click" in post
    if https and not one_click:
        lint.add(
            "no-one-click", Severity.WARNING,
            "List-Unsubscribe has an https URL but no List-Unsubscribe-Post: "
            "List-Unsubscribe=One-Click, so Gmail and Yahoo do not offer one-click "
            "unsubscribe (RFC 8058), which they require from bulk senders.",
            "Add the header List-Unsubscribe-Post: List-Unsubscribe=One-Click and accept a POST "
            "at the https URL.",
            Location("0", element="List-Unsubscribe-Post"), REF["one-click"],
        )
    elif bulk and not https and not one_click:
        lint.add(
            "no-one-click", Severity.WARNING,
            "The message looks like bulk mail but List-Unsubscribe has no https URL, so "
            "Gmail and Yahoo cannot offer the one-click unsubscribe they require from bulk "
            "senders (RFC 8058).",
            "Add an <https://...> URL to List-Unsubscribe that unsubscribes on a POST, and "
            "the header List-Unsubscribe-Post: List-Unsubscribe=One-Click.",
            where, REF["one-click"], reasons=lint.summary["bulk_reasons"],
        )
    elif one_click and not https:
        lint.add(
            "no-one-click", Severity.WARNING,
            "List-Unsubscribe-Post asks for one-click unsubscribe but List-Unsubscribe has no "
            "https URL to POST to, so it is ignored.",
            "Add an <https://...> URL to List-Unsubscribe that unsubscribes on a POST.",
            where, REF["one-click"],
        )
    elif one_click:
        sigs = [_dkim_tags(v) for v in lint.headers("DKIM-Signature")]
        signed = [
            s for s in sigs
            if {"list-unsubscribe", "list-unsubscribe-post"}
            <= {h.strip().lower() for h in s.get("h", "").split(":")}
        ]
        if sigs and not signed:
            lint.add(
                "one-click-unsigned", Severity.WARNING,
                "The DKIM signature does not cover List-Unsubscribe and List-Unsubscribe-Post, "
                "so receivers ignore one-click unsubscribe (RFC 8058 section 4).",
                "Sign both headers: add them to the DKIM h= list when signing.",
                Location("0", element="DKIM-Signature"), REF["one-click-dkim"],
            )


def _message_id(lint: _Lint) -> None:
    values = lint.headers("Message-ID")
    where = Location("0", element="Message-ID")
    fix_make = ("Make the Message-ID with your sending domain: <unique@your-domain.example> "
                "(in code, make_msgid(domain=...)).")
    if not values:
        lint.add(
            "message-id", Severity.ERROR,
            "The message has no Message-ID; Gmail and others refuse or junk mail without one.",
            "Add a Message-ID (mailcore adds one unless headers= gives another).",
            where, REF["message-id"],
        )
        return
    if len(values) > 1:
        lint.add(
            "message-id", Severity.ERROR,
            f"The message has {len(values)} Message-ID headers; RFC 5322 allows one.",
            "Keep one Message-ID header.", where, REF["message-id"], count=len(values),
        )
    value = values[0].strip()
    match = _MSGID.match(value)
    if not match:
        lint.add(
            "message-id", Severity.WARNING,
            f"The Message-ID {_short(value)} is not <unique@domain>: angle brackets and one @ "
            "are required.",
            fix_make, where, REF["message-id"], value=value,
        )
        return
    domain = match.group(2).lower().rstrip(".")
    tld = domain.rsplit(".", 1)[-1]
    if "." not in domain or tld in _ODD_TLDS:
        lint.add(
            "message-id", Severity.WARNING,
            f"The Message-ID's domain is {domain!r}, not a public domain; spam filters score "
            "IDs made on a machine without a real host name.",
            fix_make, where, REF["message-id"],
            value=value, domain=domain,
        )


def _date(lint: _Lint) -> None:
    values = lint.headers("Date")
    where = Location("0", element="Date")
    if not values:
        lint.add(
            "date", Severity.ERROR,
            "The message has no Date header, which RFC 5322 requires; spam filters score its "
            "absence.",
            "Add a Date header (mailcore adds one unless headers= removes it).",
            where, REF["date"],
        )
        return
    if len(values) > 1:
        lint.add(
            "date", Severity.ERROR,
            f"The message has {len(values)} Date headers; RFC 5322 allows one.",
            "Keep one Date header.", where, REF["date"], count=len(values),
        )
    when = _parse_date(values[0])
    if when is None:
        lint.add(
            "date", Severity.ERROR,
            f"The Date {_short(values[0])} cannot be parsed as an RFC 5322 date.",
            "Write the Date as email.utils.formatdate() does: 'Tue, 01 Jul 2025 10:00:00 +0000'.",
            where, REF["date"], value=values[0],
        )
        return
    reference, against = lint.now, "now"
    received = lint.headers("Received")
    if received:
        top = _parse_date(received[0].rpartition(";")[2])
        if top is not None:
            reference, against = top, "when the first server received it"
    delta = when - reference
    if delta > DATE_FUTURE or -delta > DATE_PAST:
        hours = abs(delta.total_seconds()) / 3600
        span = f"{hours:.0f} hours" if hours < 72 else f"{hours / 24:.0f} days"
        direction = "after" if delta > DATE_FUTURE else "before"
        # an old Date checked against the clock is most often a saved message, not a fault
        old_file = against == "now" and delta < timedelta(0)
        lint.add(
            "date", Severity.INFO if old_file else Severity.WARNING,
            f"The Date is {span} {direction} {against}; filters score mail dated in the future "
            "or the past.",
            "Set the Date when the message is sent (leave it to mailcore) and check the "
            "sending machine's clock.",
            where, REF["date"], value=values[0], offset_seconds=delta.total_seconds(),
            against=against,
        )


def _from(lint: _Lint) -> None:
    values = lint.headers("From")
    where = Location("0", element="From")
    if not values:
        lint.add(
            "from", Severity.ERROR,
            "The message has no From header, which RFC 5322 requires; providers refuse it.",
            "Set from_email (or DEFAULT_FROM_EMAIL).", where, REF["from"],
        )
        return
    if len(values) > 1:
        lint.add(
            "from", Severity.ERROR,
            f"The message has {len(values)} From headers; Gmail refuses such mail (RFC 5322 "
            "allows one).",
            "Keep one From header.", where, REF["from"], count=len(values),
        )
    addresses = [a for _, a in email.utils.getaddresses(values) if a]
    if not addresses or any("@" not in a for a in addresses):
        lint.add(
            "from", Severity.ERROR,
            f"The From header {_short(values[0])} has no valid address.",
            "Write From as 'Name <user@example.com>'.", where, REF["from"], value=values[0],
        )
    elif len(values) == 1 and len(addresses) > 1 and not lint.headers("Sender"):
        lint.add(
            "from", Severity.ERROR,
            f"From has {len(addresses)} addresses but there is no Sender header, which RFC "
            "5322 then requires.",
            "Use one From address, or add a Sender header with the address that sends it.",
            where, REF["from"], addresses=addresses,
        )
    lint.summary["from_domain"] = _domain(addresses[0]) if addresses else None


def _headers_misc(lint: _Lint) -> None:
    msg = lint.view.message
    mime_headers = [k for k, _ in msg.raw_items()
                    if k.lower() in ("content-type", "content-transfer-encoding")]
    if mime_headers and not lint.headers("MIME-Version"):
        lint.add(
            "mime-version", Severity.WARNING,
            "The message has MIME headers but no MIME-Version: 1.0, so strict readers treat it "
            "as plain text and filters score it.",
            "Add the header MIME-Version: 1.0.",
            Location("0", element="MIME-Version"), REF["mime-version"],
        )
    subjects = lint.headers("Subject")
    where = Location("0", element="Subject")
    subject = (lint.view.header("Subject") or "").strip()
    if not subjects or not subject:
        lint.add(
            "subject", Severity.WARNING,
            "The message has " + ("no Subject" if not subjects else "an empty Subject")
            + "; spam filters score it and recipients skip it.",
            "Write a short subject that says what the message is about.",
            where, REF["gmail-guidelines"],
        )
        return
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 10 and len(subject.split()) >= 2 and all(c.isupper() for c in letters):
        lint.add(
            "subject", Severity.WARNING,
            f"The Subject {_short(subject)} is all capitals, which spam filters score.",
            "Write the subject in sentence case.", where, REF["gmail-guidelines"],
            value=subject,
        )


RULES: tuple[Callable[[_Lint], None], ...] = (
    _defects, _alternatives, _similarity, _encodings, _qp_urls, _sizes, _images, _active_content,
    _list_unsubscribe, _message_id, _date, _from, _headers_misc,
)


def run(view: MessageView, *, bulk: bool | None = None, now: datetime | None = None,
        ) -> CheckResult:
    """Lint a message for deliverability; local, never raises for a malformed message.

    ``bulk`` says whether the message is bulk mail (None: guess from Precedence, List-Id, the
    number of recipients and unsubscribe words in the body). ``now`` is the time a Date is
    compared with when the message has no Received header (default: the clock).
    """
    lint = _Lint(view, bulk, now)
    for rule in RULES:
        try:
            rule(lint)
        except Exception as exc:  # noqa: BLE001 - one rule failing must not hide the others
            lint.summary.setdefault("rule_errors", {})[rule.__name__.lstrip("_")] = (
                f"{type(exc).__name__}: {exc}"
            )
    return CheckResult(NAME, lint.findings, lint.summary)


# -- helpers -----------------------------------------------------------------------------------


def words(text: str) -> set[str]:
    """The case-folded words of a text, without URLs and e-mail addresses."""
    return set(_WORD.findall(_URLISH.sub(" ", text.casefold())))


def jaccard(a: set[str], b: set[str]) -> float:
    """|a & b| / |a | b|: 1.0 for the same words, 0.0 for none shared."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _visible_text(tree: Any) -> str:
    """What a reader sees of an HTML document: body text, no head/style/script, without
    changing the shared tree."""
    if tree is None:
        return ""
    from lxml import etree

    body = tree.find(".//body")
    root = body if body is not None else tree
    out: list[str] = []
    skipping = 0
    for event, el in etree.iterwalk(root, events=("start", "end")):
        tag = el.tag.lower() if isinstance(el.tag, str) else None
        if event == "start":
            if skipping or tag in _SKIP_TEXT:
                skipping += 1
            else:
                if tag in _BLOCK:
                    out.append(" ")
                if tag is not None and el.text:
                    out.append(el.text)
        else:
            if skipping:
                skipping -= 1
            elif tag in _BLOCK:
                out.append(" ")
            if not skipping and el is not root and el.tail:
                out.append(el.tail)
    return "".join(out)


def _alternative_groups(root: Any) -> Iterator[tuple[str, list[Any]]]:
    """(section, children) of every multipart/alternative, numbered as MessageView does."""
    stack = [("", root)]
    while stack:
        section, node = stack.pop()
        if not node.is_multipart():
            continue
        children = node.get_payload()
        if not isinstance(children, list):
            continue
        if node.get_content_type() == "multipart/alternative":
            yield section, children
        for i, child in enumerate(children, 1):
            stack.append((f"{section}.{i}" if section else str(i), child))


def _kind(node: Any) -> str:
    ctype = node.get_content_type()
    if ctype == "text/plain":
        return "text"
    if ctype == "text/html":
        return "html"
    if node.is_multipart() and isinstance(node.get_payload(), list):
        return "html" if any(_kind(c) == "html" for c in node.get_payload()) else "other"
    return "other"


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x != y:
            break
        n += 1
    return n


def _longest_line(data: bytes) -> int:
    return max((len(line.rstrip(b"\r")) for line in data.split(b"\n")), default=0)


def _qp_decode(raw: bytes) -> tuple[bytes, list[int], list[int]]:
    """Decode quoted-printable, keeping where each soft line break fell: (decoded, offsets in
    the decoded bytes, 1-based encoded lines)."""
    out = bytearray()
    breaks: list[int] = []
    lines_at: list[int] = []
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, 1):
        line = line.rstrip(b"\r")
        stripped = line.rstrip(b" \t")
        if stripped.endswith(b"="):
            out += binascii.a2b_qp(stripped[:-1])
            breaks.append(len(out))
            lines_at.append(number)
        else:
            out += binascii.a2b_qp(stripped)
            if number < len(lines):
                out += b"\n"
    return bytes(out), breaks, lines_at


def _part_at_line(view: MessageView, line: int) -> Part | None:
    found = None
    for part in view.parts:
        if part.start_line <= line:
            found = part
    return found


def _is_pixel(el: Any) -> bool:
    """A tracking pixel or spacer: width or height of at most 2 pixels."""
    for name in ("width", "height"):
        value = (el.get(name) or "").strip().lower().removesuffix("px")
        if value.isdigit() and int(value) <= 2:
            return True
    return False


def _bulk_reasons(lint: _Lint) -> list[str]:
    reasons = []
    precedence = " ".join(lint.headers("Precedence")).strip().lower()
    if precedence in ("bulk", "list", "junk"):
        reasons.append(f"Precedence: {precedence}")
    if lint.headers("List-Id"):
        reasons.append("a List-Id header")
    recipients = email.utils.getaddresses(lint.headers("To") + lint.headers("Cc"))
    count = sum(1 for _, addr in recipients if addr)
    if count >= MANY_RECIPIENTS:
        reasons.append(f"{count} visible recipients")
    bodies = [p.text for p in lint.view.text_parts] + [
        lint.visible_text(p) for p in lint.view.html_parts
    ]
    if any(_BULK_WORDS.search(text) for text in bodies):
        reasons.append("unsubscribe wording in the body")
    return reasons


def _parse_list_unsubscribe(value: str) -> tuple[list[str], str]:
    """The <uri> entries of a List-Unsubscribe value and whatever is left outside them."""
    uris = [u.strip() for u in re.findall(r"<([^<>]*)>", value)]
    rest = re.sub(r"<[^<>]*>", "", value)
    rest = re.sub(r"\([^()]*\)", "", rest)  # comments are allowed
    rest = rest.replace(",", "").strip()
    return [u for u in uris if u], rest


def _dkim_tags(value: str) -> dict[str, str]:
    tags = {}
    for item in value.split(";"):
        name, sep, tag_value = item.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(tag_value.split())
    return tags


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip().strip("<>").lower().rstrip(".")


def _parse_date(value: str) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
