"""The remote resources an HTML text would load (plain Python: a worker can find them)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["remote_urls"]


class _RemoteFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if not value:
                continue
            if name in ("src", "background", "srcset", "poster"):
                self.urls += [v.strip().split(" ")[0] for v in value.split(",") if v.strip()]
            elif name == "style":
                self.urls += _CSS_URL.findall(value)


_CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")


def remote_urls(html: str) -> list[str]:
    """The http(s) URLs an HTML text would load (images, backgrounds, CSS url())."""
    finder = _RemoteFinder()
    try:
        finder.feed(html)
        finder.close()
    except (ValueError, AssertionError):
        pass
    urls = finder.urls + _CSS_URL.findall(html)
    return sorted({u for u in urls if u.lower().startswith(("http://", "https://", "//"))})
