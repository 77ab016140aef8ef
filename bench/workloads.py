"""The messages the benchmarks build. Each function takes the mail module
(``django.core.mail`` or ``mailcore``: same API) so both build the very same
messages."""

from __future__ import annotations

import random
from typing import Any

FROM = "sender@example.com"
TO = "rcpt@example.com"

_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua enim ad minim veniam quis nostrud "
    "exercitation ullamco laboris nisi aliquip ex ea commodo consequat"
).split()


def text(size: int, seed: int = 1) -> str:
    """ASCII prose of exactly ``size`` characters in lines of at most 72."""
    rng = random.Random(seed)
    lines, total = [], 0
    while total < size:
        line = []
        while sum(len(w) + 1 for w in line) < 64:
            line.append(rng.choice(_WORDS))
        s = " ".join(line)
        if s.startswith("."):
            s = s[1:]
        lines.append(s)
        total += len(s) + 1
    return ("\n".join(lines) + "\n")[:size]


SMALL_BODY = "Hello,\n\nthis is a short message from the benchmark.\n\nRegards\n"
HTML = (
    "<!doctype html><html><body><h1>Monthly report</h1>\n"
    + "".join(
        f"<p>Line {i}: <b>{w}</b> <a href=\"https://example.com/{i}\">link</a></p>\n"
        for i, w in enumerate(_WORDS * 2)
    )
    + "</body></html>\n"
)
ATTACHMENT_20K = random.Random(20).randbytes(20 * 1024)
MASS_BODY = text(5120, seed=5)
RICH_BODY = text(1500, seed=2)  # made once: building it per message was half of the 1b row


def compose_small(mail: Any, i: int) -> Any:
    return mail.EmailMessage(f"Hello number {i}", SMALL_BODY, FROM, [f"user{i}@example.com"])


def compose_rich(mail: Any, i: int) -> Any:
    m = mail.EmailMultiAlternatives(
        f"Monthly report {i}", RICH_BODY, FROM, [f"user{i}@example.com"],
        cc=["boss@example.com"], reply_to=["noreply@example.com"],
    )
    m.attach_alternative(HTML, "text/html")
    m.attach("report.bin", ATTACHMENT_20K, "application/octet-stream")
    return m


# Pieces of names and domains: every message gets its own display names and domains from
# its number (in a mixed radix, so no two messages share one), as a real mailing has new
# people on every message; no cache of names or domains sees a repeat.
_LATIN = ("Jö", "Mül", "Grü", "Ång", "Zoë", "Ré", "Fran", "çoi", "Bjør", "Łu", "Søn", "Dvoř",
          "Ñu", "Ø", "Hä", "Kö", "Strö", "Eß", "Žu", "Ča", "Weiß", "Mø", "Ár", "Þó", "Ævi",
          "Ilç", "Şe", "Ğü", "Ïn", "Ëo", "Ôm", "Ûl", "Ça", "Fã", "Nõ", "Pé", "Lü")
_CJK = ("李", "小", "龙", "王", "芳", "张", "伟", "刘", "洋", "陈", "静", "杨", "明", "黄", "丽",
        "赵", "军", "周", "敏", "吴", "强", "徐", "磊", "孙", "霞", "马", "超", "朱", "秀")


def _name(pieces: tuple[str, ...], i: int, length: int = 3) -> str:
    out = []
    for _ in range(length):
        i, r = divmod(i, len(pieces))
        out.append(pieces[r])
    return "".join(out)


def compose_intl(mail: Any, i: int) -> Any:
    """Non-ASCII subject, display names and IDN domains, every one of them new."""
    latin, cjk = _name(_LATIN, i), _name(_CJK, i)
    return mail.EmailMessage(
        f"Grüße aus Köln – Ihre Bestellung Nr. {i} ist unterwegs 🚚 日本語の件名",
        "Hallo Zoë,\n\nvielen Dank für Ihre Bestellung. Größe: 42, Farbe: Grün.\n\n"
        "Mit freundlichen Grüßen\nJörg\n",
        f"Jörg {latin}müller <joerg@bücher-{latin.lower()}.example>",
        [f"Zoë {latin}ström <zoe{i}@exämple-{latin.lower()}.de>",
         f"{cjk}龙 <li@例子{cjk}.测试>"],
        cc=[f"Renée {latin}çoise <renee@société-{latin.lower()}.fr>"],
        headers={"X-Bestellung": f"Größe {i} – Grün"},
    )


COMPOSE = {"small": compose_small, "rich": compose_rich, "intl": compose_intl}
COMPOSE_TITLES = {
    "small": "small text message",
    "rich": "text + HTML alternative + 20 KB attachment",
    "intl": "non-ASCII subject, display names, IDN domains (all new)",
}


def mass_datatuple(n: int, offset: int = 0) -> list[tuple[str, str, str, list[str]]]:
    """``send_mass_mail`` input: n messages of ~5 KB, one recipient each."""
    return [(f"Newsletter {i}", MASS_BODY, FROM, [f"reader{i}@example.com"])
            for i in range(offset, offset + n)]


def large_message(mail: Any, path: str) -> Any:
    m = mail.EmailMessage("A large attachment", "See the attached file.\n", FROM, [TO])
    m.attach_file(path)
    return m
