"""Links and images: is every ``href`` and ``src`` of the message reachable?

This is the one check that touches the network, so it runs only when asked
(``check_message(..., links=True)``, ``mailcore check --links``, the window's button).

    from mailcore.checks import MessageView
    from mailcore.checks.links import extract_links, check_links, run

    links = extract_links(MessageView.of(message))   # local: no network
    results = check_links(links, timeout=5)          # visits the http(s) ones

What it does, and what it never does:

- Only ``http:`` and ``https:`` are visited. ``mailto:``, ``tel:``, ``cid:``, ``data:`` and
  ``#fragment`` links are listed but not visited (a ``cid:`` link is checked against the
  message's own Content-IDs); ``file:``, ``ftp:``, ``javascript:`` and every other scheme are
  never visited and are a finding. A redirect to another scheme is refused, never followed.
- HEAD first; GET (reading at most :data:`GET_READ_LIMIT` bytes, then closing) when a server
  refuses HEAD (405, 501, 400, 403, or a connection dropped on HEAD). Redirects are followed
  by hand, every hop recorded; loops and more than ``max_redirects`` hops are reported.
- TLS certificates are verified (``ssl.create_default_context()``). Each request has a hard
  ``timeout`` (connect, TLS, headers and body together: a server that drips bytes is cut off),
  the whole run an overall ``deadline``; at most ``concurrency`` requests are in flight;
  ``cancel`` starts no new request and closes the in-flight ones.
- No cookies, no credentials (user:password in a URL is stripped and reported), a clear
  ``User-Agent``. The ``http_proxy``/``https_proxy``/``no_proxy`` environment variables are
  honoured, except for loopback hosts, which are always reached directly.
- Links that look single-use (unsubscribe, confirm, verify, reset, one-click, token-like query
  strings, JWTs) are skipped by :func:`run` unless ``include_single_use=True``: visiting them
  could unsubscribe or confirm on the recipient's behalf.
- Nothing here raises for a bad URL (``http://[::1``): a bad URL is a finding.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import ipaddress
import logging
import math
import re
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mailcore.checks.base import CheckResult, Finding, Location, MessageView, Part, Severity

NAME = "links"
log = logging.getLogger(__name__)
GET_READ_LIMIT = 4096  # bytes of a GET body read before the connection is closed
DEFAULT_DEADLINE = 120.0  # seconds for a whole run unless ``deadline`` says otherwise
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HEAD_REFUSED_STATUSES = frozenset({400, 403, 405, 501})
VISITED_SCHEMES = frozenset({"http", "https"})
LISTED_SCHEMES = frozenset({"mailto", "tel", "sms", "cid", "data", ""})  # "" = #fragment only
_WATCH_INTERVAL = 0.05  # how often the watchdog looks at in-flight requests

RFC9110 = "https://www.rfc-editor.org/rfc/rfc9110"
RFC3986 = "https://www.rfc-editor.org/rfc/rfc3986"
RFC2392 = "https://www.rfc-editor.org/rfc/rfc2392"
RFC8058 = "https://www.rfc-editor.org/rfc/rfc8058#section-1"
_STATUS_SECTIONS = {
    200: "15.3.1", 201: "15.3.2", 202: "15.3.3", 203: "15.3.4", 204: "15.3.5", 205: "15.3.6",
    206: "15.3.7",
    300: "15.4.1", 301: "15.4.2", 302: "15.4.3", 303: "15.4.4", 304: "15.4.5", 305: "15.4.6",
    306: "15.4.7", 307: "15.4.8", 308: "15.4.9",
    400: "15.5.1", 401: "15.5.2", 402: "15.5.3", 403: "15.5.4", 404: "15.5.5", 405: "15.5.6",
    406: "15.5.7", 407: "15.5.8", 408: "15.5.9", 409: "15.5.10", 410: "15.5.11",
    411: "15.5.12", 412: "15.5.13", 413: "15.5.14", 414: "15.5.15", 415: "15.5.16",
    416: "15.5.17", 417: "15.5.18", 418: "15.5.19", 421: "15.5.20", 422: "15.5.21",
    426: "15.5.22",
    500: "15.6.1", 501: "15.6.2", 502: "15.6.3", 503: "15.6.4", 504: "15.6.5", 505: "15.6.6",
}


def _user_agent() -> str:
    try:
        from mailcore import __version__
    except ImportError:  # pragma: no cover - mailcore is always importable here
        __version__ = "0"
    return f"mailcore-linkcheck/{__version__}"


def status_reference(status: int | None) -> str:
    """The RFC section that defines an HTTP status code (RFC 9110, RFC 6585 for 429)."""
    if status is None:
        return RFC9110 + "#section-15"
    if status == 429:
        return "https://www.rfc-editor.org/rfc/rfc6585#section-4"
    section = _STATUS_SECTIONS.get(status) or f"15.{min(max(status // 100, 1), 6) + 1}"
    return f"{RFC9110}#section-{section}"


# -- what a link is ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """One URL of the message, where it first appears and whether it looks single-use."""

    url: str  # as written (entities decoded, stripped; resolved against <base href> if any)
    kind: str  # "href", "src" (src, srcset, background, poster, CSS url()) or "text"
    location: Location
    single_use: bool = False
    reason: str = ""  # why it looks single-use ("" if not)

    @property
    def scheme(self) -> str:
        return _scheme(self.url)


def _scheme(url: str) -> str:
    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", url)
    return match.group(1).lower() if match else ""


# -- single-use detection -----------------------------------------------------------------------

_SINGLE_USE_WORDS = [
    (re.compile(r"un-?subscri|opt-?out|optout|remove-?me|list-?manage", re.I), "an unsubscribe"),
    (re.compile(r"one-?click|1-?click", re.I), "a one-click action"),
    (re.compile(r"confirm", re.I), "a confirmation"),
    (re.compile(r"verif(y|ication)", re.I), "a verification"),
    (re.compile(r"activat(e|ion)", re.I), "an activation"),
    (re.compile(r"(^|[^a-z])reset([^a-z]|$)|password-?reset|reset-?password", re.I),
     "a password reset"),
    (re.compile(r"magic-?link|(^|[^a-z])(login|signin|sign-in)[-_]?(link|token)", re.I),
     "a sign-in"),
    (re.compile(r"(^|[^a-z])(accept|decline)[-_]?invit", re.I), "an invitation answer"),
]
_TOKEN_PARAMS = re.compile(
    r"^(token|access_token|auth|auth_token|authtoken|key|api_?key|sig|signature|hmac|hash|"
    r"code|otp|nonce|ticket|secret|session|sid|jwt|x-amz-signature|x-goog-signature|"
    r"expires_signature|confirmation|verification)$",
    re.I,
)
_JWT = re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*")
_HEX_TOKEN = re.compile(r"[0-9a-fA-F]{32,}")
_B64_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.~%]{20,}")


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_random(value: str) -> bool:
    """A long value that looks like a token: 32+ hex digits, or 20+ characters of mixed
    letters and digits switching class often (not words run together, not a date)."""
    value = urllib.parse.unquote(value)
    if _HEX_TOKEN.fullmatch(value) and len(set(value.lower())) >= 8:
        return True
    if not _B64_TOKEN.fullmatch(value):
        return False
    core = re.sub(r"[^A-Za-z0-9]", "", value)
    if len(core) < 20 or not re.search(r"\d", core) or not re.search(r"[A-Za-z]", core):
        return False
    classes = ["d" if c.isdigit() else "u" if c.isupper() else "l" for c in core]
    switches = sum(1 for a, b in zip(classes, classes[1:]) if a != b)
    return switches >= len(core) / 4 and _entropy(core) >= 3.5


def single_use_reason(url: str) -> str:
    """Why ``url`` looks single-use (visiting it may act on the recipient's behalf), or ""."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        parts = urllib.parse.SplitResult("", "", url, "", "")
    if parts.scheme.lower() not in VISITED_SCHEMES:
        return ""
    path = urllib.parse.unquote(parts.path)
    query = parts.query
    for pattern, what in _SINGLE_USE_WORDS:
        if pattern.search(path):
            return f"its path looks like {what} link"
    if _JWT.search(url):
        return "it carries a JSON Web Token"
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    except ValueError:
        pairs = []
    for name, value in pairs:
        for pattern, what in _SINGLE_USE_WORDS:
            if pattern.search(name) or (len(value) < 40 and pattern.search(value)):
                return f"its query string looks like {what} link ({name}=…)"
    for name, value in pairs:
        if _TOKEN_PARAMS.match(name) and len(value) >= 8:
            return f"its query parameter {name!r} holds a token or signature"
        if looks_random(value):
            return f"its query parameter {name!r} holds a long random-looking value"
    for segment in path.split("/"):
        if looks_random(segment):
            return "its path holds a long random-looking token"
    return ""


# -- extraction -------------------------------------------------------------------------------

# element -> attributes holding one URL, with the link's kind
_URL_ATTRIBUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "a": (("href", "href"),),
    "area": (("href", "href"),),
    "link": (("href", "href"),),
    "form": (("action", "href"),),
    "img": (("src", "src"),),
    "image": (("src", "src"),),
    "script": (("src", "src"),),
    "iframe": (("src", "src"),),
    "frame": (("src", "src"),),
    "embed": (("src", "src"),),
    "audio": (("src", "src"),),
    "video": (("src", "src"), ("poster", "src")),
    "source": (("src", "src"),),
    "track": (("src", "src"),),
    "input": (("src", "src"),),
    "object": (("data", "src"),),
    "body": (("background", "src"),),
    "table": (("background", "src"),),
    "tr": (("background", "src"),),
    "td": (("background", "src"),),
    "th": (("background", "src"),),
}
_TEXT_URL = re.compile(r"\b(?:https?|ftp|file)://[^\s<>\"'`\x00-\x1f\x7f]+", re.I)
_TRAILING = ".,;:!?'\"*"


def clean_url(value: str) -> str:
    """A URL as a browser reads it from an attribute: stripped, tabs and newlines removed."""
    return re.sub(r"[\t\n\r]", "", value.strip(" \t\n\r\f"))


def parse_srcset(value: str) -> list[str]:
    """The URLs of a ``srcset`` (HTML's candidate-string grammar: URL, descriptors, comma)."""
    urls: list[str] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and (value[i].isspace() or value[i] == ","):
            i += 1
        start = i
        while i < n and not value[i].isspace():
            i += 1
        url = value[start:i]
        if url.endswith(","):
            url = url.rstrip(",")
        else:  # skip the descriptors up to the next comma outside parentheses
            depth = 0
            while i < n and (depth or value[i] != ","):
                depth += {"(": 1, ")": -1}.get(value[i], 0)
                depth = max(depth, 0)
                i += 1
        if url:
            urls.append(url)
    return urls


def _trim_text_url(url: str) -> str:
    """Drop trailing punctuation a sentence put after a URL (a ')' only if unbalanced)."""
    while url:
        if url[-1] in _TRAILING:
            url = url[:-1]
        elif url[-1] == ")" and url.count("(") < url.count(")"):
            url = url[:-1]
        elif url[-1] == "]" and url.count("[") < url.count("]"):
            url = url[:-1]
        else:
            break
    return url


def _css_urls(css: str) -> list[tuple[str, int]]:
    """URLs of CSS text (``url(...)``, ``url("...")``, ``@import "..."``) with their 1-based
    line in ``css``; tokenised by tinycss2, so comments and strings never look like URLs."""
    import tinycss2

    found: list[tuple[str, int]] = []

    def walk(tokens: Any) -> None:
        previous_import = False
        for token in tokens or ():
            kind = token.type
            if kind == "url":
                found.append((token.value, token.source_line))
            elif kind == "function":
                if token.lower_name in ("url", "src"):
                    for arg in token.arguments:
                        if arg.type == "string":
                            found.append((arg.value, arg.source_line))
                            break
                else:
                    walk(token.arguments)
            elif kind in ("() block", "[] block", "{} block"):
                walk(token.content)
            elif kind == "string" and previous_import:
                found.append((token.value, token.source_line))
            if kind == "at-keyword":
                previous_import = token.lower_value == "import"
            elif kind not in ("whitespace", "comment"):
                previous_import = False

    walk(tinycss2.parse_component_value_list(css, skip_comments=True))
    return found


def _html_links(part: Part, tree: Any) -> list[tuple[str, str, Location]]:
    from mailcore.checks import html

    out: list[tuple[str, str, Location]] = []
    everything = list(html.elements(tree))
    base = ""
    for el in everything:
        if el.tag == "base" and el.attrib.get("href"):
            candidate = clean_url(el.attrib["href"])
            if _scheme(candidate) in VISITED_SCHEMES:
                base = candidate
            break
    source = html.SourceLines(part.text)
    source.locate(everything)

    def add(url: str, kind: str, line: int | None, element: str) -> None:
        url = clean_url(url)
        if not url:
            return
        if base and not _scheme(url) and not url.startswith("#"):
            try:
                url = urllib.parse.urljoin(base, url)
            except ValueError:
                pass
        out.append((url, kind, Location(part.section, line, element)))

    for el in everything:
        tag = el.tag.lower()
        for attribute, kind in _URL_ATTRIBUTES.get(tag, ()):
            value = el.attrib.get(attribute)
            if value is not None:
                add(value, kind, source.attribute_line(el, attribute),
                    html.describe(el, attribute))
        if tag in ("img", "source") and el.attrib.get("srcset"):
            line = source.attribute_line(el, "srcset")
            for url in parse_srcset(el.attrib["srcset"]):
                add(url, "src", line, html.describe(el, "srcset"))
        if el.attrib.get("style"):
            line = source.attribute_line(el, "style") or 1
            for url, offset in _css_urls(el.attrib["style"]):
                add(url, "src", line + offset - 1, html.describe(el, "style"))
        if tag == "style" and el.text:  # the text starts on the line where the start tag ends
            for url, offset in _css_urls(el.text):
                add(url, "src", (el.sourceline or 1) + offset - 1, f"url({url})")
    return out


def _text_links(part: Part) -> list[tuple[str, str, Location]]:
    out: list[tuple[str, str, Location]] = []
    text = part.text
    for match in _TEXT_URL.finditer(text):
        url = _trim_text_url(match.group(0))
        if url:
            line = text.count("\n", 0, match.start()) + 1
            out.append((url, "text", Location(part.section, line, url)))
    return out


def extract_links(view: MessageView) -> list[Link]:
    """Every URL of the message's HTML and text parts, first occurrence first, each once.

    Local: nothing is visited. Needs lxml and tinycss2 for HTML parts (``mailcore[checks]``);
    raises :class:`mailcore.checks.html.MissingParser` without them."""
    raw: list[tuple[str, str, Location]] = []
    for part in view.parts:
        if part.is_attachment:
            continue
        if part.content_type == "text/html":
            tree = view.html_tree(part)
            if tree is not None:
                raw.extend(_html_links(part, tree))
        elif part.content_type == "text/plain":
            raw.extend(_text_links(part))
    links: list[Link] = []
    seen: set[str] = set()
    for url, kind, location in raw:
        if url in seen:
            continue
        seen.add(url)
        reason = single_use_reason(url)
        links.append(Link(url, kind, location, bool(reason), reason))
    return links


# -- visiting ---------------------------------------------------------------------------------


@dataclass
class LinkResult:
    """What visiting one link gave."""

    link: Link
    status: int | None = None  # the last HTTP status received (None: no answer)
    method: str = ""  # "HEAD" or "GET": the method of the last request
    final_url: str = ""  # where the redirects ended (the last URL requested)
    redirects: list[tuple[int, str]] = field(default_factory=list)  # (status, Location target)
    error: str = ""  # "" when answered; else a sentence
    elapsed: float = 0.0  # seconds, the whole chain
    visited: bool = True  # False: never requested (scheme not visited, bad URL, cancelled)
    error_code: str = ""  # "timeout", "tls", "unreachable", "refused-scheme", "bad-url",
    #   "relative", "redirect-refused", "redirect-loop", "too-many-redirects", "cancelled",
    #   "deadline", "not-visited" (mailto: and friends, no error), "" when answered

    @property
    def ok(self) -> bool:
        return not self.error and self.status is not None and self.status < 400


class _Killed(Exception):
    """The watchdog closed the request (its reason is in ``_Request.killed``)."""


class _Request:
    """An in-flight request the watchdog can cut off."""

    def __init__(self, expires: float, reason: str) -> None:
        self.expires = expires
        self.expiry_reason = reason  # "timeout" or "deadline"
        self.killed = ""
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.killed:
                _shutdown(sock)

    def kill(self, reason: str) -> None:
        with self._lock:
            if self.killed:
                return
            self.killed = reason
            _shutdown(self._sock)


def _shutdown(sock: socket.socket | None) -> None:
    """Wake a thread blocked reading ``sock`` (shutdown, not close: close does not wake it).
    The plain socket's shutdown, so an SSL socket's state is not torn down under the reader."""
    if sock is None:
        return
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class _Watchdog:
    """One thread that cuts off requests past their time, and all of them on cancel."""

    def __init__(self, cancel: threading.Event | None) -> None:
        self._cancel = cancel
        self._active: set[_Request] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="linkcheck-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def add(self, request: _Request) -> None:
        with self._lock:
            self._active.add(request)
        if self._cancel is not None and self._cancel.is_set():
            request.kill("cancelled")

    def remove(self, request: _Request) -> None:
        with self._lock:
            self._active.discard(request)

    def _run(self) -> None:
        while not self._stop.wait(_WATCH_INTERVAL):
            cancelled = self._cancel is not None and self._cancel.is_set()
            now = time.monotonic()
            with self._lock:
                active = list(self._active)
            for request in active:
                if cancelled:
                    request.kill("cancelled")
                elif now >= request.expires:
                    request.kill(request.expiry_reason)


_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class _PrivateAddress(Exception):  # noqa: N818 - a decision, not an error
    """The host resolves to an address on a private network (not visited unless allowed)."""


def is_private_address(address: str) -> bool:
    """An address on a private or special network: RFC 1918, link-local (169.254/16: cloud
    metadata), carrier-grade NAT, unique-local and link-local IPv6, multicast, unspecified.
    Loopback is not: links to this machine's own servers are what a developer tests."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return False
    return (not ip.is_global or ip.is_multicast or ip.is_unspecified or ip.is_reserved
            or ip.is_link_local or ip.is_private)


def _resolve(host: str, port: int, allow_private: bool) -> tuple[Any, ...]:
    """The address to connect to (the first of getaddrinfo's); _PrivateAddress if the host
    resolves to an address on a private network and those are not allowed. The connection is
    made to this very address, so a second lookup can't send it elsewhere (DNS rebinding)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not allow_private:
        for info in infos:
            if is_private_address(str(info[4][0])):
                raise _PrivateAddress(str(info[4][0]))
    return infos[0]


def _proxy_for(scheme: str, host: str) -> tuple[str, int, dict[str, str]] | None:
    """The proxy the environment names for this scheme and host (never for loopback)."""
    if is_loopback(host):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(scheme)
    if not proxy or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    try:
        parts = urllib.parse.urlsplit(proxy)
        port = parts.port or 8080
    except ValueError:
        return None
    if not parts.hostname:
        return None
    headers: dict[str, str] = {}
    if parts.username is not None:  # the user's own proxy login, from the environment
        user = urllib.parse.unquote(parts.username)
        login = f"{user}:{urllib.parse.unquote(parts.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(login.encode()).decode()
    return parts.hostname, port, headers


@dataclass
class _Target:
    scheme: str
    host: str  # IDNA-encoded, no brackets
    port: int
    path: str  # path and query, percent-encoded, never empty
    url: str  # the URL without userinfo and fragment
    netloc: str  # host[:port] as sent in Host


def _target(url: str) -> _Target:
    """Split an http(s) URL for a request; ValueError (with a sentence) if it cannot be."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{url!r} names no host")
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise ValueError(f"the host of {url!r} is not a valid domain name") from None
    if re.search(r"[\x00-\x20\x7f]", ascii_host):
        raise ValueError(f"the host of {url!r} contains spaces or control characters")
    safe = "/%:@!$&'()*+,;=-._~"
    path = urllib.parse.quote(parts.path or "/", safe=safe)
    if parts.query:
        path += "?" + urllib.parse.quote(parts.query, safe=safe + "?")
    netloc = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    if port is not None:
        netloc += f":{port}"
    return _Target(
        scheme, ascii_host, port or (443 if scheme == "https" else 80), path,
        urllib.parse.urlunsplit((scheme, netloc, path.split("?")[0], parts.query, "")),
        netloc,
    )


class _Checker:
    """Visits links; shared by the worker threads (it keeps no per-link state)."""

    def __init__(self, *, timeout: float, max_redirects: int, deadline_at: float,
                 ssl_context: ssl.SSLContext, watchdog: _Watchdog,
                 cancel: threading.Event | None, allow_private: bool = False) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.deadline_at = deadline_at
        self.ssl_context = ssl_context
        self.watchdog = watchdog
        self.cancel = cancel
        self.user_agent = _user_agent()

    def stopped(self) -> str:
        if self.cancel is not None and self.cancel.is_set():
            return "cancelled"
        if time.monotonic() >= self.deadline_at:
            return "deadline"
        return ""

    def request(self, method: str, target: _Target) -> tuple[int, str | None]:
        """One request: (status, Location header). Raises OSError, ssl.SSLError,
        http.client.HTTPException, or _Killed(reason) when the watchdog cut it off."""
        now = time.monotonic()
        left = self.deadline_at - now
        limit, reason = (self.timeout, "timeout") if self.timeout <= left else (left, "deadline")
        req = _Request(now + limit, reason)
        proxy = _proxy_for(target.scheme, target.host)
        host, port = (proxy[0], proxy[1]) if proxy else (target.host, target.port)
        path = target.path
        headers = {
            "User-Agent": self.user_agent,
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            "Connection": "close",
        }
        conn: http.client.HTTPConnection
        if target.scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=max(limit, 0.001), context=self.ssl_context
            )
            if proxy:  # CONNECT through the proxy, TLS to the target inside it
                conn.set_tunnel(target.host, target.port, headers=proxy[2])
        else:
            conn = http.client.HTTPConnection(host, port, timeout=max(limit, 0.001))
            if proxy:  # a plain proxy is asked for the absolute URL
                path = f"http://{target.netloc}{target.path}"
                headers.update(proxy[2])
        self.watchdog.add(req)
        try:
            try:
                if req.killed:
                    raise _Killed(req.killed)
                if proxy:  # the user's own proxy resolves and connects
                    conn.connect()
                else:
                    family, kind, proto, _, address = _resolve(host, port, self.allow_private)
                    sock = socket.socket(family, kind, proto)
                    req.attach(sock)
                    sock.settimeout(max(limit, 0.001))
                    try:
                        sock.connect(address)
                        if target.scheme == "https":
                            sock = self.ssl_context.wrap_socket(sock, server_hostname=host)
                    except BaseException:
                        sock.close()
                        raise
                    conn.sock = sock
                req.attach(conn.sock)
                conn.putrequest(method, path, skip_host=bool(proxy and target.scheme == "http"),
                                skip_accept_encoding=True)
                if proxy and target.scheme == "http":
                    conn.putheader("Host", target.netloc)
                for name, value in headers.items():
                    conn.putheader(name, value)
                conn.endheaders()
                response = conn.getresponse()
                status = response.status
                location = response.getheader("Location")
                if method == "GET":
                    response.read(GET_READ_LIMIT)
            except Exception as exc:
                if req.killed:
                    raise _Killed(req.killed) from None
                if isinstance(exc, TimeoutError):  # the socket's own timeout: the same limit
                    raise _Killed(req.expiry_reason) from None
                raise
            if req.killed:
                raise _Killed(req.killed)
            return status, location
        finally:
            self.watchdog.remove(req)
            _shutdown(conn.sock)
            conn.close()

    def visit(self, link: Link) -> LinkResult:
        start = time.monotonic()
        result = LinkResult(link, final_url=link.url)
        try:
            if _scheme_visited(link, result):
                self._follow(link.url, result)
        except Exception as exc:  # noqa: BLE001 - a link check never raises
            result.error = f"The check of {link.url} failed unexpectedly ({exc!r})."
            result.error_code = "unreachable"
        result.elapsed = time.monotonic() - start
        return result

    def _follow(self, url: str, result: LinkResult) -> None:
        """Request ``url`` and follow its redirects by hand, recording every hop."""
        seen: set[str] = set()
        while True:
            try:
                target = _target(url)
            except ValueError as exc:
                result.error, result.error_code = f"{exc}.", "bad-url"
                result.visited = bool(result.redirects)
                return
            seen.add(target.url)
            result.final_url = target.url
            status, location = self._ask(target, result)
            if status is None or status not in REDIRECT_STATUSES or not location:
                return
            try:
                next_url = urllib.parse.urljoin(target.url, location.strip())
            except ValueError:
                next_url = location.strip()
            result.redirects.append((status, next_url))
            next_scheme = _scheme(next_url)
            if next_scheme not in VISITED_SCHEMES:
                result.error = (
                    f"{target.url} redirects ({status}) to {next_url}, a "
                    f"{next_scheme + ':' if next_scheme else 'schemeless'} URL: refused, not "
                    "followed (only http and https are visited)."
                )
                result.error_code = "redirect-refused"
                return
            if next_url.split("#")[0] in seen:
                result.error = (
                    f"Redirect loop: {target.url} redirects ({status}) back to {next_url}, "
                    "which was already visited."
                )
                result.error_code = "redirect-loop"
                return
            if len(result.redirects) > self.max_redirects:
                result.error = f"More than {self.max_redirects} redirects; stopped at {next_url}."
                result.error_code = "too-many-redirects"
                return
            url = next_url

    def _ask(self, target: _Target, result: LinkResult) -> tuple[int | None, str | None]:
        """HEAD, then GET if HEAD is refused. (None, None) with ``result.error`` set when
        there was no usable answer; else the status and Location, recorded in ``result``."""
        for method in ("HEAD", "GET"):
            stopped = self.stopped()
            if stopped:
                _stop_error(result, stopped, target.url)
                return None, None
            result.method = method
            try:
                status, location = self.request(method, target)
            except _Killed as killed:
                _killed_error(result, str(killed), target.url, self.timeout)
                return None, None
            except _PrivateAddress as private:
                hop = " (reached by a redirect)" if result.redirects else ""
                result.error = (
                    f"{target.host} is on a private network ({private}){hop}: not visited, as a "
                    "message could use links to reach devices and services inside your network."
                )
                result.error_code = "private-address"
                result.visited = bool(result.redirects)
                return None, None
            except (ConnectionResetError, http.client.RemoteDisconnected,
                    http.client.BadStatusLine) as exc:
                if method == "HEAD":
                    continue  # some servers drop HEAD: ask with GET
                _network_error(result, exc, target)
                return None, None
            except Exception as exc:  # noqa: BLE001 - every failure is a sentence
                _network_error(result, exc, target)
                return None, None
            result.status = status
            if method == "HEAD" and status in HEAD_REFUSED_STATUSES:
                continue  # HEAD refused: ask with GET
            return status, location
        return None, None  # pragma: no cover - the GET above always returns


def _scheme_visited(link: Link, result: LinkResult) -> bool:
    """Whether this link is to be requested; if not, say why in ``result``."""
    url, scheme = link.url, link.scheme
    if scheme in VISITED_SCHEMES:
        return True
    result.visited = False
    if url.startswith("#") or (scheme in LISTED_SCHEMES and scheme):
        result.error_code = "not-visited"
        return False
    if not scheme:
        result.error = (
            f"{url!r} is a relative URL: in an email it has no page to be relative to, so it "
            "leads nowhere."
        )
        result.error_code = "relative"
        return False
    result.error = (
        f"{url} is a {scheme}: URL; only http and https links are visited, and a {scheme}: link "
        "in an email does not work for most recipients (or is unsafe)."
    )
    result.error_code = "refused-scheme"
    return False


def _stop_error(result: LinkResult, why: str, url: str) -> None:
    result.visited = bool(result.redirects)
    result.error_code = why
    if why == "cancelled":
        result.error = f"Not checked: the check was cancelled before {url} was visited."
    else:
        result.error = f"Not checked: the overall deadline passed before {url} was visited."


def _killed_error(result: LinkResult, why: str, url: str, timeout: float) -> None:
    result.error_code = why
    if why == "cancelled":
        result.error = f"Cancelled while waiting for {url}."
    elif why == "deadline":
        result.error = f"The overall deadline passed while waiting for {url}."
    else:
        result.error = f"Timed out after {timeout:g} s waiting for {url}."


def _network_error(result: LinkResult, exc: BaseException, target: _Target) -> None:
    where = f"{target.host}:{target.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        result.error_code = "tls"
        why = getattr(exc, "verify_message", "") or exc.reason or str(exc)
        result.error = f"The TLS certificate of {where} could not be verified ({why})."
    elif isinstance(exc, ssl.SSLError):
        result.error_code = "tls"
        result.error = f"The TLS handshake with {where} failed ({exc.reason or exc})."
    elif isinstance(exc, (TimeoutError, socket.timeout)):
        result.error_code = "timeout"
        result.error = f"Timed out waiting for {where}."
    elif isinstance(exc, socket.gaierror):
        result.error_code = "unreachable"
        result.error = f"The host {target.host} could not be found ({exc.strerror or exc})."
    elif isinstance(exc, ConnectionRefusedError):
        result.error_code = "unreachable"
        result.error = f"{where} refused the connection (nothing is listening there)."
    elif isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected)):
        result.error_code = "unreachable"
        result.error = f"{where} closed the connection without answering."
    elif isinstance(exc, http.client.HTTPException):
        result.error_code = "unreachable"
        result.error = f"{where} did not answer with valid HTTP ({type(exc).__name__})."
    elif isinstance(exc, OSError):
        result.error_code = "unreachable"
        result.error = f"Could not reach {where} ({exc.strerror or exc})."
    else:
        result.error_code = "unreachable"
        result.error = f"Could not check {target.url} ({exc!r})."


def check_links(
    links: Sequence[Link],
    *,
    timeout: float = 10.0,
    concurrency: int = 4,
    max_redirects: int = 10,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    deadline: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    allow_private: bool = False,
) -> list[LinkResult]:
    """Visit the http(s) links (the network); one result per link, in the order given.

    ``timeout`` bounds each request (connect, TLS, headers, the GET's few KB), ``deadline``
    the whole run (default :data:`DEFAULT_DEADLINE` seconds); links not started by then are
    reported, not visited. ``progress(done, total)`` is called (from a worker thread) after
    each link, the last call being ``(total, total)``. ``cancel`` set: no new request starts
    and the in-flight ones are closed. ``ssl_context`` replaces the default verifying one.
    Hosts on private networks (see :func:`is_private_address`; loopback is allowed) are not
    visited, nor followed to, unless ``allow_private``."""
    total = len(links)
    results: list[LinkResult | None] = [None] * total
    start = time.monotonic()
    deadline_at = start + (DEFAULT_DEADLINE if deadline is None else max(deadline, 0.0))
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    lock = threading.Lock()
    done = 0

    def finish(index: int, result: LinkResult) -> None:
        nonlocal done
        with lock:
            results[index] = result
            done += 1
            if progress is not None:
                try:
                    progress(done, total)
                except Exception:  # noqa: BLE001 - a failing progress callback stops nothing
                    log.exception("the link check's progress callback failed")

    with _Watchdog(cancel) as watchdog:
        checker = _Checker(
            timeout=max(timeout, 0.001), max_redirects=max(max_redirects, 0),
            deadline_at=deadline_at, ssl_context=context, watchdog=watchdog, cancel=cancel,
            allow_private=allow_private,
        )

        def task(index: int) -> None:
            link = links[index]
            probe = LinkResult(link, final_url=link.url)
            if _scheme_visited(link, probe):
                stopped = checker.stopped()
                if not stopped:
                    finish(index, checker.visit(link))
                    return
                _stop_error(probe, stopped, link.url)
            finish(index, probe)

        with concurrent.futures.ThreadPoolExecutor(max(1, int(concurrency)), "linkcheck") as pool:
            for future in [pool.submit(task, i) for i in range(total)]:
                future.result()
    return [r for r in results if r is not None]


# -- the check --------------------------------------------------------------------------------


def _host(url: str) -> str:
    try:
        host = (urllib.parse.urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""
    return host[4:] if host.startswith("www.") else host


def _content_ids(view: MessageView) -> set[str]:
    ids: set[str] = set()
    for part in view.parts:
        value = part.message.get("Content-ID")
        if value:
            ids.add(str(value).strip().strip("<>").strip())
    return ids


def _short(url: str, limit: int = 200) -> str:
    """A data: URL (an inline image can be 100 KB) cut for display; other URLs as they are."""
    if url[:5].lower() == "data:" and len(url) > limit:
        return url[: limit - 1] + "…"
    return url


def _link_json(link: Link, result: LinkResult | None) -> dict[str, Any]:
    return {
        "url": _short(link.url),
        "kind": link.kind,
        "status": result.status if result else None,
        "method": result.method if result else "",
        "final_url": result.final_url if result else link.url,
        "redirects": [[s, u] for s, u in result.redirects] if result else [],
        "error": result.error if result else "",
        "error_code": result.error_code if result else "",
        "visited": result.visited if result else False,
        "elapsed": round(result.elapsed, 3) if result else 0.0,
        "single_use": link.single_use,
        "reason": link.reason,
        "location": link.location.to_json(),
    }


def _finding(code: str, severity: Severity, message: str, link: Link, *, fix: str = "",
             reference: str = "", **data: Any) -> Finding:
    return Finding(NAME, f"links.{code}", severity, message, fix, link.location, reference,
                   {"url": link.url, **data})


_ERROR_FIX = {
    "timeout": "Check that the server is up and answers quickly, or raise the timeout.",
    "tls": "Fix the server's certificate (expired, wrong name, or not from a trusted CA).",
    "unreachable": "Check the host name and that the server is up.",
    "bad-url": "Correct the URL.",
    "relative": "Use an absolute URL (https://...).",
    "refused-scheme": "Link to an https:// page instead.",
    "redirect-refused": "Make the server redirect to an https:// page.",
    "redirect-loop": "Fix the server's redirects.",
    "too-many-redirects": "Link to the final address directly.",
    "private-address": "A link in mail sent to others should be public; to check it from a "
                       "machine on that network, allow private addresses (--private).",
}
_ERROR_REFERENCE = {
    "tls": RFC9110 + "#section-4.3.4",
    "bad-url": RFC3986,
    "relative": RFC3986 + "#section-4.2",
    "refused-scheme": RFC3986 + "#section-3.1",
    "redirect-refused": RFC9110 + "#section-15.4",
    "redirect-loop": RFC9110 + "#section-15.4",
    "too-many-redirects": RFC9110 + "#section-15.4",
}


def _findings_for(result: LinkResult, slow: float) -> list[Finding]:
    link = result.link
    out: list[Finding] = []
    code = result.error_code
    if code in ("cancelled", "deadline", "not-visited"):
        return out  # said once for the whole run
    if result.error:
        out.append(_finding(
            code or "unreachable",
            Severity.WARNING if code == "private-address" else Severity.ERROR, result.error,
            link, fix=_ERROR_FIX.get(code, ""),
            reference=_ERROR_REFERENCE.get(code, status_reference(result.status)
                                           if result.status else ""),
            status=result.status, redirects=[list(r) for r in result.redirects],
        ))
    elif result.status is not None and result.status >= 400:
        reason = http.client.responses.get(result.status, "")
        out.append(_finding(
            "broken", Severity.ERROR,
            f"{link.url} answers {result.status} {reason}".rstrip()
            + (f" (after {len(result.redirects)} redirects, at {result.final_url})"
               if result.redirects else "") + ".",
            link, fix="Fix the link or the page it points to.",
            reference=status_reference(result.status), status=result.status,
            method=result.method, final_url=result.final_url,
        ))
    elif result.status is not None and result.status >= 300:
        out.append(_finding(
            "redirect-unfollowed", Severity.WARNING,
            f"{link.url} answers {result.status} without a Location to follow.",
            link, fix="Link to the page's real address.",
            reference=status_reference(result.status), status=result.status,
        ))
    if result.redirects:
        hops = len(result.redirects)
        first, last = _host(link.url), _host(result.redirects[-1][1])
        if not result.error and first and last and first != last:
            out.append(_finding(
                "redirect-other-host", Severity.WARNING,
                f"{link.url} redirects to another host, {last}.",
                link, fix="Link to the final address, or check the redirect is meant "
                "(link trackers and URL shorteners look like phishing to filters).",
                reference=RFC9110 + "#section-15.4", final_url=result.final_url,
            ))
        chain = [link.url] + [u for _, u in result.redirects]
        for before, after in zip(chain, chain[1:]):
            if _scheme(before) == "https" and _scheme(after) == "http":
                out.append(_finding(
                    "redirect-downgrade", Severity.WARNING,
                    f"{before} redirects from https to plain http ({after}).",
                    link, fix="Make every hop https.", reference=RFC9110 + "#section-4.2.2",
                    final_url=result.final_url,
                ))
                break
        if not result.error:
            out.append(_finding(
                "redirects", Severity.INFO,
                f"{link.url} redirects {hops} time{'s' if hops != 1 else ''}, to "
                f"{result.final_url}.",
                link, fix="Link to the final address to save the recipient the hops."
                if hops > 1 else "",
                reference=status_reference(result.redirects[0][0]),
                redirects=[list(r) for r in result.redirects],
            ))
    if result.visited and not result.error and result.elapsed >= slow:
        out.append(_finding(
            "slow", Severity.WARNING,
            f"{link.url} took {result.elapsed:.1f} s to answer.",
            link, fix="Images and pages that slow make the message look broken.",
            elapsed=round(result.elapsed, 3),
        ))
    if link.scheme in VISITED_SCHEMES:
        try:
            parts = urllib.parse.urlsplit(link.url)
            credentials = parts.username is not None or parts.password is not None
        except ValueError:
            credentials = False
        if credentials:
            out.append(_finding(
                "credentials-in-url", Severity.WARNING,
                f"{link.url} carries a user name or password; they were not sent.",
                link, fix="Remove the credentials from the link: every recipient can read them.",
                reference=RFC3986 + "#section-3.2.1",
            ))
    return out


def run(
    view: MessageView,
    *,
    timeout: float = 10.0,
    concurrency: int = 4,
    include_single_use: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    max_redirects: int = 10,
    deadline: float | None = None,
    slow: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    allow_private: bool = False,
) -> CheckResult:
    """Extract every link and visit the http(s) ones (single-use ones only if asked).

    ``slow`` (default: half the timeout, at most 5 s) is when an answer is worth a warning.
    Never raises for a malformed message or a bad URL."""
    from mailcore.checks.html import MissingParser

    try:
        view = MessageView.of(view)
        links = extract_links(view)
    except MissingParser as exc:
        return CheckResult(NAME, error=str(exc))
    except ImportError as exc:
        return CheckResult(NAME, error=f"the links check needs {exc.name or exc}: "
                                       "pip install 'mailcore[checks]'")
    except Exception as exc:  # noqa: BLE001 - a check never raises for a malformed message
        return CheckResult(NAME, error=f"the links of this message could not be read ({exc!r})")
    slow = min(5.0, timeout / 2) if slow is None else slow
    findings: list[Finding] = []
    content_ids = _content_ids(view)
    lowered_ids = {c.lower() for c in content_ids}
    for link in links:
        if link.scheme != "cid":
            continue
        cid = urllib.parse.unquote(link.url[4:]).strip().strip("<>")
        if cid not in content_ids and cid.lower() not in lowered_ids:
            findings.append(_finding(
                "missing-cid", Severity.ERROR,
                f"{link.url} names a part (Content-ID <{cid}>) that is not in the message.",
                link, fix="Attach the image with that Content-ID, or correct the cid: link.",
                reference=RFC2392, content_id=cid,
            ))
    skipped = [link for link in links
               if link.single_use and link.scheme in VISITED_SCHEMES and not include_single_use]
    for link in skipped:
        findings.append(_finding(
            "single-use-skipped", Severity.INFO,
            f"{link.url} was not visited: {link.reason}, and visiting it could act on the "
            "recipient's behalf.",
            link, fix="Check it by hand, or ask for single-use links to be visited too.",
            reference=RFC8058, reason=link.reason,
        ))
    skipped_urls = {link.url for link in skipped}
    to_visit = [link for link in links if link.url not in skipped_urls]
    results = check_links(
        to_visit, timeout=timeout, concurrency=concurrency, max_redirects=max_redirects,
        progress=progress, cancel=cancel, deadline=deadline, ssl_context=ssl_context,
        allow_private=allow_private,
    )
    by_url = {r.link.url: r for r in results}
    for result in results:
        findings.extend(_findings_for(result, slow))
    stopped = Counter(r.error_code for r in results if r.error_code in ("cancelled", "deadline"))
    if stopped["cancelled"]:
        findings.append(Finding(
            NAME, "links.cancelled", Severity.INFO,
            f"The check was cancelled; {stopped['cancelled']} link"
            f"{'s were' if stopped['cancelled'] != 1 else ' was'} not checked.",
            "Run the check again to see them.", Location(), "",
            {"count": stopped["cancelled"]},
        ))
    if stopped["deadline"]:
        findings.append(Finding(
            NAME, "links.deadline", Severity.WARNING,
            f"The overall deadline passed; {stopped['deadline']} link"
            f"{'s were' if stopped['deadline'] != 1 else ' was'} not checked.",
            "Run the check again with a longer deadline or a higher concurrency.",
            Location(), "", {"count": stopped["deadline"]},
        ))
    visited = [r for r in results if r.visited]
    summary: dict[str, Any] = {
        "total": len(links),
        "visited": len(visited),
        "ok": sum(1 for r in visited if r.ok),
        "failed": sum(1 for r in results if r.error or (r.status or 0) >= 400),
        "redirected": sum(1 for r in visited if r.redirects),
        "not_visited": sum(1 for r in results if not r.visited) + len(skipped),
        "cancelled": bool(stopped["cancelled"]),
        "skipped_single_use": [link.url for link in skipped],
        "links": [_link_json(link, by_url.get(link.url)) for link in links],
    }
    return CheckResult(NAME, findings, summary)
