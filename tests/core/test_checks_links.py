"""The links check against real HTTP(S) servers on 127.0.0.1 (nothing else is ever visited).

The servers are ``http.server.ThreadingHTTPServer`` instances started by fixtures; the HTTPS
one has a certificate made by ``trustme``. A plain-HTTP proxy test points ``http_proxy`` at the
loopback server, which answers absolute-URI requests itself, so a ``.invalid`` host name never
leaves the machine.
"""

from __future__ import annotations

import http.server
import os
import ssl
import threading
import urllib.parse
from email.mime.image import MIMEImage

import pytest
import trustme

import mailcore
from mailcore.checks import Location, MessageView, Severity, check_message
from mailcore.checks import links as L

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
    b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _answer(self, status: int, location: str | None = None, body: bytes = b"ok\n") -> None:
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.close_connection = True

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        srv = self.server
        path = self.path
        if path.startswith("http://"):  # asked as a proxy: answer for the absolute URI
            parts = urllib.parse.urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if path == "/hop":
                srv.record(self)
                return self._answer(302, "http://second.invalid/ok")
        srv.record(self)
        with srv.lock:
            srv.active += 1
            srv.max_active = max(srv.max_active, srv.active)
        try:
            self._dispatch(path)
        finally:
            with srv.lock:
                srv.active -= 1

    def _dispatch(self, path: str) -> None:
        srv = self.server
        route = path.split("?")[0]
        if route in ("/ok", "/unsubscribe", "/page", "/img.png") or route.startswith("/ok/"):
            return self._answer(200)
        if route == "/moved":
            return self._answer(301, "/ok")
        if route == "/loop-a":
            return self._answer(302, "/loop-b")
        if route == "/loop-b":
            return self._answer(302, "/loop-a")
        if route.startswith("/chain/"):
            n = int(route.rsplit("/", 1)[1])
            return self._answer(302, f"/chain/{n + 1}")
        if route == "/missing":
            return self._answer(404)
        if route == "/error":
            return self._answer(500)
        if route == "/nohead":
            return self._answer(405 if self.command == "HEAD" else 200)
        if route == "/big":  # HEAD refused; GET would send 64 MB if the client read it all
            if self.command == "HEAD":
                return self._answer(405)
            size = 64 * 1024 * 1024
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(size // len(chunk)):
                    self.wfile.write(chunk)
                srv.big_completed = True
            except OSError:
                srv.big_completed = False
            finally:
                srv.big_done.set()
            self.close_connection = True
            return None
        if route == "/reset-head":
            if self.command == "HEAD":
                self.close_connection = True
                return  # no answer at all: the connection just closes
            return self._answer(200)
        if route == "/to-file":
            return self._answer(302, "file:///etc/passwd")
        if route == "/to-metadata":  # a cloud's metadata service, on a link-local address
            return self._answer(302, "http://169.254.169.254/latest/meta-data/")
        if route == "/to-fifo":
            return self._answer(302, srv.fifo_url)
        if route == "/dir/relative":
            return self._answer(302, "../ok")
        if route == "/downgrade":
            return self._answer(302, srv.downgrade_to)
        if route == "/block":  # answers only when the test lets it (or at teardown)
            srv.entered.set()
            srv.release.wait(30)
            return self._answer(200)
        if route == "/sleep":
            srv.release.wait(float(urllib.parse.parse_qs(path.split("?", 1)[1])["s"][0]))
            return self._answer(200)
        if route == "/busy":
            srv.release.wait(0.15)
            return self._answer(200)
        return self._answer(404)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if context else "http"
        self.lock = threading.Lock()
        self.hits: list[tuple[str, str, dict[str, str]]] = []
        self.active = 0
        self.max_active = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fifo_url = "file:///nonexistent"
        self.downgrade_to = "http://127.0.0.1:1/ok"
        self.big_done = threading.Event()
        self.big_completed: bool | None = None

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that went away (the timeout and cancel tests) is expected

    def record(self, handler: _Handler) -> None:
        with self.lock:
            self.hits.append((handler.command, handler.path, dict(handler.headers.items())))

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}{path}"

    def paths(self) -> list[str]:
        with self.lock:
            return [p for _, p, _ in self.hits]

    def methods(self, path: str) -> list[str]:
        with self.lock:
            return [m for m, p, _ in self.hits if p == path]


def _serve(server: _Server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return thread


def _stop(server: _Server, thread: threading.Thread) -> None:
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def server():
    srv = _Server()
    thread = _serve(srv)
    yield srv
    _stop(srv, thread)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def tls_server(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    srv = _Server(context)
    thread = _serve(srv)
    yield srv
    _stop(srv, thread)


@pytest.fixture
def client_context(ca):
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy",
                 "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def _link(url: str) -> L.Link:
    reason = L.single_use_reason(url)
    return L.Link(url, "href", Location("1", 1, url), bool(reason), reason)


def _check(url: str, **kwargs) -> L.LinkResult:
    (result,) = L.check_links([_link(url)], **kwargs)
    return result


# -- visiting ---------------------------------------------------------------------------------


def test_ok_head_is_enough(server):
    result = _check(server.url("/ok"))
    assert (result.status, result.method, result.error) == (200, "HEAD", "")
    assert result.ok and result.visited and result.redirects == []
    assert server.methods("/ok") == ["HEAD"]


def test_user_agent_and_no_credentials_or_cookies(server):
    url = server.url("/ok").replace("127.0.0.1", "user:secret@127.0.0.1")
    result = _check(url)
    assert result.status == 200
    (_, _, headers), = server.hits
    lowered = {k.lower(): v for k, v in headers.items()}
    assert lowered["user-agent"] == f"mailcore-linkcheck/{mailcore.__version__}"
    assert "authorization" not in lowered and "cookie" not in lowered
    assert "secret" not in result.final_url


def test_moved_permanently_is_followed_and_recorded(server):
    result = _check(server.url("/moved"))
    assert result.status == 200 and result.error == ""
    assert result.redirects == [(301, server.url("/ok"))]
    assert result.final_url == server.url("/ok")
    assert server.paths() == ["/moved", "/ok"]


def test_relative_location_is_resolved(server):
    result = _check(server.url("/dir/relative"))
    assert result.redirects == [(302, server.url("/ok"))]
    assert result.status == 200 and result.final_url == server.url("/ok")


def test_redirect_loop_is_reported(server):
    result = _check(server.url("/loop-a"))
    assert result.error_code == "redirect-loop" and "loop" in result.error.lower()
    assert [u for _, u in result.redirects] == [server.url("/loop-b"), server.url("/loop-a")]
    assert server.paths() == ["/loop-a", "/loop-b"]  # the loop was not walked again


def test_more_than_max_redirects(server):
    limit = 3
    result = _check(server.url("/chain/0"), max_redirects=limit)
    assert result.error_code == "too-many-redirects"
    assert len(result.redirects) == limit + 1
    assert len(server.paths()) == limit + 1  # the hop past the limit was not requested


@pytest.mark.parametrize("path, status", [("/missing", 404), ("/error", 500)])
def test_error_statuses(server, path, status):
    result = _check(server.url(path))
    assert result.status == status and not result.ok


def test_head_refused_falls_back_to_get(server):
    result = _check(server.url("/nohead"))
    assert (result.status, result.method) == (200, "GET")
    assert server.methods("/nohead") == ["HEAD", "GET"]


def test_get_reads_a_few_kb_then_closes(server):
    result = _check(server.url("/big"))
    assert (result.status, result.method, result.error) == (200, "GET", "")
    assert server.big_done.wait(30)
    assert server.big_completed is False  # the client hung up long before 64 MB


def test_head_dropped_falls_back_to_get(server):
    result = _check(server.url("/reset-head"))
    assert (result.status, result.method, result.error) == (200, "GET", "")
    assert server.methods("/reset-head") == ["HEAD", "GET"]


def test_slow_server_times_out(server):
    result = _check(server.url("/block"), timeout=0.5)
    assert result.status is None and result.error_code == "timeout"
    assert "timed out" in result.error.lower()


def test_redirect_to_file_is_refused(server):
    result = _check(server.url("/to-file"))
    assert result.error_code == "redirect-refused"
    assert "refused" in result.error and "file:///etc/passwd" in result.error
    assert result.status == 302 and result.final_url == server.url("/to-file")
    assert result.redirects == [(302, "file:///etc/passwd")]


def test_private_networks_are_not_visited_nor_followed_to(server):
    followed = _check(server.url("/to-metadata"))
    assert followed.error_code == "private-address"
    assert "169.254.169.254 is on a private network" in followed.error
    assert followed.redirects == [(302, "http://169.254.169.254/latest/meta-data/")]
    for url in ("http://10.1.2.3/reboot?now=1", "http://192.168.1.1/", "http://[fd00::1]/",
                "http://[::ffff:172.16.0.9]/", "http://0.0.0.0/"):
        direct = _check(url)
        assert (direct.error_code, direct.visited) == ("private-address", False), url
    # allowed, the request is made (whatever answers there, or fails to connect)
    allowed = _check("http://10.1.2.3/", timeout=1, allow_private=True)
    assert allowed.error_code != "private-address" and allowed.visited
    # loopback is this machine's own servers: visited
    assert _check(server.url("/ok")).status == 200
    assert not L.is_private_address("127.0.0.1") and not L.is_private_address("::1")
    assert not L.is_private_address("93.184.215.14")
    assert L.is_private_address("100.64.0.1") and L.is_private_address("fe80::1")


def test_redirect_to_file_never_opens_it(server, tmp_path):
    """The redirect target is a FIFO: opening it for reading would wake a writer blocked on
    it, so the writer staying blocked shows the file was never opened."""
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    server.fifo_url = fifo.as_uri()
    opened = threading.Event()

    def writer() -> None:
        with open(fifo, "wb"):  # blocks until someone opens the FIFO for reading
            opened.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    result = _check(server.url("/to-fifo"))
    assert result.error_code == "redirect-refused" and "refused" in result.error
    assert not opened.is_set()
    with open(fifo, "rb"):  # let the writer go
        pass
    thread.join(10)
    assert opened.is_set()  # the detector works: a reader does wake it


def test_https_with_trusted_certificate(tls_server, client_context):
    result = _check(tls_server.url("/ok"), ssl_context=client_context)
    assert (result.status, result.error) == (200, "")


def test_https_untrusted_certificate_is_a_tls_error(tls_server):
    result = _check(tls_server.url("/ok"))  # the system's CAs: trustme's CA is not among them
    assert result.status is None and result.error_code == "tls"
    assert "certificate" in result.error and "verif" in result.error
    assert tls_server.hits == []


def test_https_downgrade_and_other_host_warnings(tls_server, server, client_context):
    tls_server.downgrade_to = server.url("/ok")
    view = _view(f'<a href="{tls_server.url("/downgrade")}">x</a>')
    result = L.run(view, ssl_context=client_context)
    codes = {f.code: f for f in result.findings}
    assert codes["links.redirect-downgrade"].severity is Severity.WARNING
    assert codes["links.redirects"].severity is Severity.INFO
    assert result.summary["links"][0]["status"] == 200


def test_concurrency_limit_is_observed_on_the_server(server):
    links = [_link(server.url(f"/busy?n={i}")) for i in range(9)]
    results = L.check_links(links, concurrency=3)
    assert all(r.status == 200 for r in results)
    assert [r.link.url for r in results] == [link.url for link in links]
    assert 1 <= server.max_active <= 3


def test_progress_reports_every_link(server):
    calls: list[tuple[int, int]] = []
    links = [_link(server.url(f"/ok/{i}")) for i in range(5)] + [_link("mailto:a@example.com")]
    L.check_links(links, concurrency=2, progress=lambda d, t: calls.append((d, t)))
    assert [d for d, _ in calls] == list(range(1, len(links) + 1))
    assert {t for _, t in calls} == {len(links)}


def test_cancel_starts_no_new_request(server):
    cancel = threading.Event()
    links = [_link(server.url(f"/ok/{i}")) for i in range(8)]
    results = L.check_links(links, concurrency=1, cancel=cancel,
                            progress=lambda done, total: cancel.set())
    assert len(server.paths()) == 1
    assert results[0].status == 200
    assert all(r.error_code == "cancelled" and not r.visited for r in results[1:])


def test_cancel_closes_the_request_in_flight(server):
    cancel = threading.Event()

    def cancel_once_the_server_has_it() -> None:
        if server.entered.wait(30):
            cancel.set()

    threading.Thread(target=cancel_once_the_server_has_it, daemon=True).start()
    result = _check(server.url("/block"), timeout=60, cancel=cancel)
    assert result.error_code == "cancelled" and "cancelled" in result.error.lower()
    assert not server.release.is_set()  # returned while the server was still holding it


def test_overall_deadline(server):
    links = [_link(server.url("/block")), _link(server.url("/ok"))]
    results = L.check_links(links, concurrency=1, timeout=60, deadline=0.5)
    assert results[0].error_code == "deadline"
    assert results[1].error_code == "deadline" and not results[1].visited
    assert "/ok" not in server.paths()


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/", "http://exa mple/",
                                 "https://"])
def test_bad_urls_never_raise(url):
    result = _check(url)
    assert result.error_code == "bad-url" and result.error and not result.visited


@pytest.mark.parametrize("url, code", [
    ("mailto:someone@example.com", "not-visited"),
    ("tel:+15551234", "not-visited"),
    ("cid:logo@example.com", "not-visited"),
    ("data:image/png;base64,AAAA", "not-visited"),
    ("#top", "not-visited"),
    ("file:///etc/passwd", "refused-scheme"),
    ("ftp://127.0.0.1/x", "refused-scheme"),
    ("javascript:alert(1)", "refused-scheme"),
    ("gopher://127.0.0.1/", "refused-scheme"),
    ("/relative/page", "relative"),
])
def test_schemes_that_are_not_visited(url, code):
    result = _check(url)
    assert result.error_code == code and not result.visited
    assert bool(result.error) == (code != "not-visited")


def test_proxy_from_environment_is_used(server, monkeypatch):
    monkeypatch.setenv("http_proxy", server.url(""))
    result = _check("http://first.invalid/hop")
    assert result.status == 200, result.error
    assert result.redirects == [(302, "http://second.invalid/ok")]
    assert server.paths() == ["http://first.invalid/hop", "http://second.invalid/ok"]
    hosts = [h.get("Host") for _, _, h in server.hits]
    assert hosts == ["first.invalid", "second.invalid"]


def test_proxy_is_not_used_for_loopback(server, monkeypatch):
    dead = _Server()  # bound, then closed: a port where nothing listens
    dead_url = dead.url("")
    dead.server_close()
    monkeypatch.setenv("http_proxy", dead_url)
    result = _check(server.url("/ok"))
    assert result.status == 200 and server.paths() == ["/ok"]


def test_no_proxy_is_honoured(monkeypatch):
    # asked of the proxy chooser only: a request would look skip.invalid up in DNS
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:3128")
    monkeypatch.setenv("no_proxy", "skip.invalid")
    assert L._proxy_for("http", "skip.invalid") is None
    assert L._proxy_for("http", "other.invalid")[:2] == ("127.0.0.1", 3128)
    assert L._proxy_for("http", "localhost") is None


# -- single-use detection -----------------------------------------------------------------------

SINGLE_USE = [
    "https://example.com/unsubscribe?u=42",
    "https://lists.example.com/mailman/options/opt-out",
    "https://example.com/account/confirm/abc123",
    "https://example.com/verify-email?id=7",
    "https://example.com/activate/9",
    "https://example.com/password/reset?id=3",
    "https://example.com/one-click?list=news",
    "https://example.com/x?token=" + "0f3a9c5e7b1d2f4a6c8e0b2d4f6a8c1e",
    "https://example.com/go?t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
    "https://example.com/file.pdf?X-Amz-Signature=ab12cd34ef56ab78",
    "https://example.com/r?k=aZ3kP9qL2mX7vB4nR8tY1wE6",
    "https://example.com/l/aZ3kP9qL2mX7vB4nR8tY1wE6",
]
ORDINARY = [
    "https://example.com/",
    "https://example.com/products/blue-shoes-2024",
    "https://example.com/ProductCategory2024Summer",
    "https://example.com/search?q=shoes&page=2",
    "https://cdn.example.com/images/2024/05/hero_banner_1200x600.jpg",
    "https://example.com/blog/how-to-verify-your-sourdough-starter-is-active".replace(
        "verify", "check"),
    "https://example.com/item?id=12345678",
    "mailto:unsubscribe@example.com",  # not visited anyway: single-use is about visiting
]


@pytest.mark.parametrize("url", SINGLE_USE)
def test_single_use_detected(url):
    assert L.single_use_reason(url)


@pytest.mark.parametrize("url", ORDINARY)
def test_ordinary_links_are_not_single_use(url):
    assert L.single_use_reason(url) == ""


# -- extraction -------------------------------------------------------------------------------

HTML = """<html><head>
<style>
  .hero { background-image: url("https://example.com/css-bg.png"); }
  @import "https://example.com/imported.css";
</style>
</head><body background="https://example.com/body-bg.png">
<p><a href="https://example.com/page?a=1&amp;b=2">first</a></p>
<img alt="" src="cid:logo@example.com"
     srcset="https://example.com/s1.png 1x, https://example.com/s2.png 2x">
<div style="background: url(https://example.com/inline.png)">x</div>
<a href="https://example.com/page?a=1&amp;b=2">again</a>
<a href="  mailto:someone@example.com ">mail</a> <a href="#top">top</a>
</body></html>
"""
TEXT = "Hello,\n\nsee https://example.com/text-link.\n(or https://example.com/paren)\n"


def _line_of(source: str, needle: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if needle in line)


def _message(text: str = TEXT, html: str = HTML) -> mailcore.EmailMultiAlternatives:
    msg = mailcore.EmailMultiAlternatives("Links", text, "from@example.com", ["to@example.com"])
    msg.attach_alternative(html, "text/html")
    return msg


def _view(html: str, text: str = "plain\n") -> MessageView:
    return MessageView.of(_message(text, html))


def test_extract_links_kinds_lines_and_dedup():
    view = MessageView.of(_message())
    links = L.extract_links(view)
    by_url = {link.url: link for link in links}
    assert len(by_url) == len(links)  # deduplicated
    text_part = view.text_parts[0].section
    html_part = view.html_parts[0].section
    expected = {
        "https://example.com/text-link": ("text", text_part, _line_of(TEXT, "text-link")),
        "https://example.com/paren": ("text", text_part, _line_of(TEXT, "paren")),
        "https://example.com/css-bg.png": ("src", html_part, _line_of(HTML, "css-bg")),
        "https://example.com/imported.css": ("src", html_part, _line_of(HTML, "imported")),
        "https://example.com/body-bg.png": ("src", html_part, _line_of(HTML, "body-bg")),
        "https://example.com/page?a=1&b=2": ("href", html_part, _line_of(HTML, "first")),
        "cid:logo@example.com": ("src", html_part, _line_of(HTML, "cid:")),
        "https://example.com/s1.png": ("src", html_part, _line_of(HTML, "srcset")),
        "https://example.com/s2.png": ("src", html_part, _line_of(HTML, "srcset")),
        "https://example.com/inline.png": ("src", html_part, _line_of(HTML, "inline.png")),
        "mailto:someone@example.com": ("href", html_part, _line_of(HTML, "mailto")),
        "#top": ("href", html_part, _line_of(HTML, "#top")),
    }
    got = {u: (k.kind, k.location.part, k.location.line) for u, k in by_url.items()}
    assert got == expected
    assert by_url["https://example.com/page?a=1&b=2"].location.element.startswith("<a href=")


def test_data_urls_are_listed_but_cut_for_display():
    data = "data:image/png;base64," + "A" * 5000
    result = L.run(_view(f'<img alt="" src="{data}">'))
    (row,) = result.summary["links"]
    assert row["visited"] is False and row["url"].startswith("data:image/png")
    assert len(row["url"]) < len(data)
    assert not [f for f in result.findings if f.severity >= Severity.WARNING]


def test_missing_cid_is_an_error_and_a_present_one_is_not():
    html = '<img alt="a" src="cid:present@example.com"><img alt="b" src="cid:absent@example.com">'
    msg = _message("plain\n", html)
    image = MIMEImage(PNG, "png")
    image.add_header("Content-ID", "<present@example.com>")
    msg.attach(image)
    result = L.run(MessageView.of(msg))
    missing = [f for f in result.findings if f.code == "links.missing-cid"]
    assert [f.data["url"] for f in missing] == ["cid:absent@example.com"]
    assert missing[0].severity is Severity.ERROR and missing[0].location.element


# -- the check --------------------------------------------------------------------------------


def test_run_findings_summary_and_single_use_skipped(server):
    html = "\n".join([
        "<html><body>",
        f'<a href="{server.url("/ok")}">ok</a>',
        f'<a href="{server.url("/missing")}">missing</a>',
        f'<img alt="" src="{server.url("/error")}">',
        f'<a href="{server.url("/moved")}">moved</a>',
        f'<a href="{server.url("/unsubscribe")}?u=1">unsubscribe</a>',
        '<a href="javascript:alert(1)">js</a> <a href="mailto:a@example.com">m</a>',
        "</body></html>",
    ])
    view = _view(html)
    result = L.run(view)
    assert result.error == ""
    by_code: dict[str, list] = {}
    for f in result.findings:
        by_code.setdefault(f.code, []).append(f)
    broken = {f.data["url"]: f for f in by_code["links.broken"]}
    assert set(broken) == {server.url("/missing"), server.url("/error")}
    for url, finding in broken.items():
        assert finding.severity is Severity.ERROR and "rfc9110" in finding.reference
        assert finding.location.line == _line_of(html, url)
        assert str(finding.data["status"]) in finding.message
    assert by_code["links.redirects"][0].data["url"] == server.url("/moved")
    assert by_code["links.refused-scheme"][0].severity is Severity.ERROR
    skipped_url = server.url("/unsubscribe") + "?u=1"
    assert result.summary["skipped_single_use"] == [skipped_url]
    (info,) = by_code["links.single-use-skipped"]
    assert info.severity is Severity.INFO and "not visited" in info.message
    assert "/unsubscribe?u=1" not in server.paths()
    rows = {row["url"]: row for row in result.summary["links"]}
    assert rows[server.url("/moved")]["redirects"] == [[301, server.url("/ok")]]
    assert rows[server.url("/missing")]["status"] == 404
    assert rows["mailto:a@example.com"]["visited"] is False
    assert result.summary["total"] == len(rows)

    again = L.run(view, include_single_use=True)
    assert again.summary["skipped_single_use"] == []
    assert "/unsubscribe?u=1" in server.paths()


def test_run_slow_warning(server):
    url = server.url("/sleep?s=0.4")
    result = L.run(_view(f'<a href="{url}">x</a>'), slow=0.2)
    (slow,) = [f for f in result.findings if f.code == "links.slow"]
    assert slow.severity is Severity.WARNING and slow.data["elapsed"] >= 0.2


def test_run_timeout_and_bad_url_are_errors(server):
    html = f'<a href="{server.url("/block")}">slow</a>\n<a href="http://[::1">bad</a>'
    result = L.run(_view(html), timeout=0.5)
    codes = {f.code: f for f in result.findings}
    assert codes["links.timeout"].severity is Severity.ERROR
    assert codes["links.bad-url"].severity is Severity.ERROR
    assert codes["links.bad-url"].location.line == 2


def test_run_other_host_redirect_through_proxy(server, monkeypatch):
    monkeypatch.setenv("http_proxy", server.url(""))
    result = L.run(_view('<a href="http://first.invalid/hop">x</a>'))
    (warning,) = [f for f in result.findings if f.code == "links.redirect-other-host"]
    assert warning.severity is Severity.WARNING and "second.invalid" in warning.message


def test_check_message_runs_links_only_when_asked(server):
    msg = _message("plain\n", f'<a href="{server.url("/ok")}">x</a>')
    report = check_message(msg, checks=[])
    assert report.result("links") is None and server.hits == []
    report = check_message(msg, checks=[], links=True, options={"links": {"timeout": 5}})
    assert report.result("links").summary["ok"] == 1 and server.paths() == ["/ok"]


def test_run_refused_redirect_and_credentials_findings(server):
    with_login = server.url("/ok").replace("127.0.0.1", "user:secret@127.0.0.1")
    html = f'<a href="{server.url("/to-file")}">f</a>\n<a href="{with_login}">login</a>'
    result = L.run(_view(html))
    codes = {f.code: f for f in result.findings}
    refused = codes["links.redirect-refused"]
    assert refused.severity is Severity.ERROR and "file:///etc/passwd" in refused.message
    assert codes["links.credentials-in-url"].severity is Severity.WARNING
    assert codes["links.credentials-in-url"].location.line == 2
    lowered = [{k.lower() for k in h} for _, p, h in server.hits if p == "/ok"]
    assert lowered and all("authorization" not in h for h in lowered)
