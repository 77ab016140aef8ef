"""The browser-engine preview (Qt WebEngine): what it renders, checked by the pixels of a grab,
and what it loads, checked by the request interceptor's log and a real loopback HTTP server.

The same tests run offscreen (as the rest of tests/gui) and on a real X server (Xvfb), by
``test_the_same_on_a_real_x_server``."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPoint, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest

from mailgui.views.compose import HtmlPreview
from mailgui.views.webpreview import WebPreview, _serve_cids_from, for_colour_mode

ROOT = Path(__file__).parents[2]
RED, GREEN, BLUE, ORANGE = "#ff0000", "#00ff00", "#0000ff", "#ff8000"


def png(colour: str, size: int = 8) -> bytes:
    image = QImage(size, size, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data)


def data_url(colour: str) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png(colour)).decode()


class ImageServer:
    """A loopback HTTP server that serves one green PNG and counts the requests."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        body = png(GREEN)
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                owner.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


@pytest.fixture
def preview(qtbot) -> WebPreview:  # noqa: ANN001 - pytest-qt's fixture
    widget = WebPreview(fallback=HtmlPreview)
    qtbot.addWidget(widget)
    widget.resize(1000, 700)
    widget.show()
    qtbot.waitExposed(widget)
    qtbot.waitUntil(lambda: widget.engine_ready or widget.fallback is not None, timeout=20_000)
    assert widget.engine_ready, widget.note.text()
    return widget


def render(qtbot, preview: WebPreview, html: str, urls: list[str] | None = None,  # noqa: ANN001
           parts: dict[str, tuple[str, bytes]] | None = None) -> None:
    with qtbot.waitSignal(preview.rendered, timeout=20_000) as blocker:
        preview.show_html(html, urls or [], parts)
    assert blocker.args == [True]


def pixel(preview: WebPreview, x: int, y: int) -> str:
    return preview.grab_image().pixelColor(x, y).name()


def wait_pixel(qtbot, preview: WebPreview, x: int, y: int, colour: str) -> None:  # noqa: ANN001
    """Wait until the engine has painted ``colour`` at (x, y) (it paints after loading)."""
    try:
        qtbot.waitUntil(lambda: pixel(preview, x, y) == colour, timeout=10_000)
    except AssertionError:
        raise AssertionError(f"at ({x}, {y}): {pixel(preview, x, y)}, not {colour}") from None


PAGE = """<!DOCTYPE html><html><head><style>
body {{ margin: 0; background: #ffffff; }}
.box {{ max-width: 600px; margin: 0 auto; background: {box}; height: 120px;
        border-radius: 12px; padding: 0; }}
img {{ display: block; width: 40px; height: 40px; }}
</style></head><body><div class="box"></div>
<img id="cid" src="cid:logo@example.test">
<img id="data" src="{data}">
<img id="file" src="file://{file}">
<img id="remote" src="{remote}/pixel.png">
</body></html>"""


def test_a_centred_container_and_inline_images_render_as_in_a_browser(
        qtbot, preview: WebPreview, tmp_path: Path, image_server: ImageServer) -> None:  # noqa: ANN001
    local = tmp_path / "secret.png"
    local.write_bytes(png(ORANGE))
    html = PAGE.format(box=BLUE, data=data_url(RED), file=local, remote=image_server.url)
    remote = f"{image_server.url}/pixel.png"
    render(qtbot, preview, html, [remote], {"logo@example.test": ("image/png", png(GREEN))})
    width = preview.view.width()
    left = (width - 600) // 2
    wait_pixel(qtbot, preview, width // 2, 60, BLUE)
    # the 600 px container is centred: its left edge is where a browser puts it
    assert pixel(preview, left - 3, 60) == "#ffffff"
    assert pixel(preview, left + 3, 60) == BLUE
    assert pixel(preview, width - left + 3, 60) == "#ffffff"
    # the rounded corner is not painted (border-radius applies)
    assert pixel(preview, left + 1, 1) == "#ffffff"
    # cid: served from the message, data: in place
    wait_pixel(qtbot, preview, 20, 120 + 20, GREEN)
    assert pixel(preview, 20, 160 + 20) == RED
    # the file: image never loads, and the remote one is blocked: nothing was asked of the
    # server, and no file: request ever reached the engine's network stack
    assert pixel(preview, 20, 200 + 20) != ORANGE
    assert pixel(preview, 20, 240 + 20) != GREEN
    assert image_server.paths == []
    assert preview.blocked == {remote}
    schemes = {(scheme, allowed) for scheme, _url, allowed in preview.request_log}
    assert ("http", False) in schemes and ("mailpreview", True) in schemes
    assert any(url.endswith("/cid/logo@example.test") for _s, url, _ok in preview.request_log)
    assert not any(scheme == "file" for scheme, _url, _ok in preview.request_log)

    # the person allows remote images for this message: now (and only now) they load
    with qtbot.waitSignal(preview.blocked_changed):
        with qtbot.waitSignal(preview.rendered, timeout=20_000):
            preview.allow_remote()
    wait_pixel(qtbot, preview, 20, 240 + 20, GREEN)
    assert image_server.paths == ["/pixel.png"]
    assert pixel(preview, 20, 200 + 20) != ORANGE  # file: still never
    assert not any(scheme == "file" for scheme, _url, _ok in preview.request_log)

    # the next message starts blocked again
    image_server.paths.clear()
    render(qtbot, preview, html.replace("pixel.png", "other.png"),
           [f"{image_server.url}/other.png"], {"logo@example.test": ("image/png", png(GREEN))})
    wait_pixel(qtbot, preview, width // 2, 60, BLUE)
    assert image_server.paths == []
    assert preview.blocked == {f"{image_server.url}/other.png"}


DARK_CSS = """<html><head><meta name="color-scheme" content="light dark"><style>
body { margin: 0; background: #ffffff; }
@media (prefers-color-scheme: dark) { body { background: #102030; } }
</style></head><body><p style="height: 300px">Dark-mode aware</p></body></html>"""
NO_DARK_CSS = """<html><head><style>body { margin: 0; background: #ffffff; }</style></head>
<body><p style="height: 300px">Plain</p></body></html>"""


def _luma(colour: str) -> float:
    c = QColor(colour)
    return 0.299 * c.red() + 0.587 * c.green() + 0.114 * c.blue()


def test_colour_modes_follow_the_message_css_or_invert_it(qtbot, preview: WebPreview) -> None:  # noqa: ANN001
    render(qtbot, preview, DARK_CSS)
    wait_pixel(qtbot, preview, 500, 250, "#ffffff")  # light
    with qtbot.waitSignal(preview.rendered, timeout=20_000):
        preview.mode_buttons["dark"].click()
    wait_pixel(qtbot, preview, 500, 250, "#102030")  # the message's own dark CSS

    render(qtbot, preview, NO_DARK_CSS)  # the mode stays: dark, but this message has no CSS
    wait_pixel(qtbot, preview, 500, 250, "#ffffff")  # a client's dark mode leaves it light
    with qtbot.waitSignal(preview.rendered, timeout=20_000):
        preview.mode_buttons["inverted"].click()
    qtbot.waitUntil(lambda: _luma(pixel(preview, 500, 250)) < 80, timeout=10_000)  # inverted
    with qtbot.waitSignal(preview.rendered, timeout=20_000):
        preview.mode_buttons["light"].click()
    wait_pixel(qtbot, preview, 500, 250, "#ffffff")


def test_cid_references_are_served_by_this_preview_only() -> None:
    html = ('<img src="cid:a@x"> <td background=\'cid:b@x\'> <div style="background: '
            'url( cid:c@x )"> text that says cid:d@x')
    out = _serve_cids_from(html, "mailpreview:7/")
    assert 'src="mailpreview:7/cid/a@x"' in out and "background='mailpreview:7/cid/b@x'" in out
    assert "url( mailpreview:7/cid/c@x )" in out and "says cid:d@x" in out


def test_the_dark_mode_rewrite_decides_the_media_queries() -> None:
    html = ("<!DOCTYPE html><html><head><style>@media (prefers-color-scheme: dark) {a{}} "
            "@media (prefers-color-scheme:light) {b{}}</style></head></html>")
    dark = for_colour_mode(html, "dark")
    light = for_colour_mode(html, "light")
    assert "(min-width: 0px) {a{}}" in dark and "(max-width: 0px) {b{}}" in dark
    assert "(max-width: 0px) {a{}}" in light and "(min-width: 0px) {b{}}" in light
    assert dark.startswith("<!DOCTYPE html><html><head><style>")  # never before the doctype
    assert "color-scheme: light" in dark  # declares no dark support: the canvas stays light
    declared = for_colour_mode('<meta name="color-scheme" content="light dark">' + html, "dark")
    assert "color-scheme: dark" in declared


RESPONSIVE = """<html><head><style>
body { margin: 0; }
.col { float: left; width: 50%; height: 100px; }
@media (max-width: 600px) { .col { float: none; width: 100%; } }
</style></head><body><div class="col" style="background: #ff0000"></div>
<div class="col" style="background: #0000ff"></div></body></html>"""


def test_widths_show_where_a_responsive_layout_breaks(qtbot, preview: WebPreview) -> None:  # noqa: ANN001
    render(qtbot, preview, RESPONSIVE)
    width = preview.view.width()
    wait_pixel(qtbot, preview, width - 10, 50, BLUE)  # desktop: two columns side by side
    preview.width_buttons["phone"].click()
    qtbot.waitUntil(lambda: preview.view.width() == 375, timeout=5_000)
    wait_pixel(qtbot, preview, 370, 150, BLUE)  # phone: the second column goes below
    assert pixel(preview, 370, 50) == RED
    preview.width_buttons["tablet"].click()
    qtbot.waitUntil(lambda: preview.view.width() == 768, timeout=5_000)
    wait_pixel(qtbot, preview, 760, 50, BLUE)  # tablet: side by side again


def test_links_open_in_the_system_browser_only_when_clicked(qtbot, preview: WebPreview,  # noqa: ANN001
                                                           tmp_path: Path) -> None:
    opened = []
    preview.open_external = opened.append
    html = ('<html><body style="margin:0"><a href="https://example.test/offer" '
            'style="display:block;width:300px;height:100px;background:#0000ff">Offer</a>'
            '</body></html>')
    render(qtbot, preview, html)
    wait_pixel(qtbot, preview, 150, 50, BLUE)
    assert opened == []  # nothing opens by itself
    with qtbot.waitSignal(preview.link_activated, timeout=10_000) as clicked:
        QTest.mouseClick(preview.view.focusProxy(), Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.NoModifier, QPoint(150, 50))
    assert clicked.args[0].toString() == "https://example.test/offer"
    assert [u.toString() for u in opened] == ["https://example.test/offer"]
    assert preview.view.url().scheme() == "mailpreview"  # the preview itself did not navigate
    # Save as PNG saves what is shown
    out = tmp_path / "shown.png"
    preview.choose_png_path = lambda: str(out)
    preview.save_png_button.click()
    assert QImage(str(out)).pixelColor(150, 50).name() == BLUE


def test_without_the_engine_the_simple_preview_stands_in_with_a_note(qtbot, monkeypatch) -> None:  # noqa: ANN001
    # PySide6-Addons missing: the import fails as it would on such a machine
    monkeypatch.setitem(sys.modules, "PySide6.QtWebEngineWidgets", None)
    widget = WebPreview(fallback=HtmlPreview)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitUntil(lambda: widget.fallback is not None, timeout=5_000)
    assert not widget.engine_ready and widget.view is None
    assert widget.note.isVisible() and "could not start" in widget.note.text()
    widget.show_html("<p>Hello <b>there</b></p>", ["http://example.test/x.png"])
    assert isinstance(widget.fallback, HtmlPreview)
    assert "Hello" in widget.fallback.toPlainText()
    assert widget.blocked == {"http://example.test/x.png"}


def test_the_same_on_a_real_x_server(tmp_path: Path) -> None:
    if os.environ.get("QT_QPA_PLATFORM") == "xcb":
        pytest.fail("already on X: this test starts the others there", pytrace=False)
    xvfb_run = shutil.which("xvfb-run")
    assert xvfb_run, "xvfb-run is installed by scripts/bootstrap.sh"
    env = dict(os.environ, QT_QPA_PLATFORM="xcb")
    proc = subprocess.run(
        [xvfb_run, "-a", "-s", "-screen 0 1280x800x24", sys.executable, "-m", "pytest",
         "-p", "no:cacheprovider", "-q", str(Path(__file__)), "-k", "not real_x_server"],
        capture_output=True, text=True, timeout=240, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout[-2000:]


def test_the_inbox_shows_a_received_message_with_its_inline_parts(
        make_gui, qtbot, image_server: ImageServer) -> None:  # noqa: ANN001
    import email.message
    import smtplib

    gui = make_gui()
    inbox = gui.controller.inbox
    qtbot.waitUntil(lambda: inbox.running, timeout=20_000)
    remote = f"{image_server.url}/pixel.png"
    msg = email.message.EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.test", "b@example.test", "Inline"
    msg.set_content("Text version")
    msg.add_alternative(
        '<html><body style="margin:0"><div style="max-width:300px;margin:0 auto;'
        'height:60px;background:#0000ff"></div>'
        '<img src="cid:logo@example.test" style="display:block;width:40px;height:40px">'
        f'<img src="{remote}" style="display:block;width:40px;height:40px"></body></html>',
        subtype="html")
    msg.get_payload()[1].add_related(png(GREEN), "image", "png", cid="<logo@example.test>")
    with smtplib.SMTP("127.0.0.1", inbox.port, timeout=10) as client:
        client.send_message(msg)
    qtbot.waitUntil(lambda: len(inbox.messages) == 1, timeout=10_000)
    view = gui.window.inbox
    gui.window.show_pane(view)
    view.detail.setCurrentIndex(0)
    preview = view.rendered
    view.list.setCurrentItem(view.list.topLevelItem(0))
    qtbot.waitUntil(lambda: preview.engine_ready and not preview.pending
                    and bool(preview.shown.parts), timeout=20_000)
    # the container, centred: blue in the middle, white just left of its 300 px (the viewer
    # is filled a piece per turn of the loop, so the preview's width settles as it is laid out)
    def centred() -> bool:
        width = preview.view.width()
        return (pixel(preview, width // 2, 30) == BLUE
                and pixel(preview, (width - 300) // 2 - 3, 30) == "#ffffff")

    try:
        qtbot.waitUntil(centred, timeout=10_000)
    except AssertionError:
        width = preview.view.width()
        raise AssertionError(f"width {width}: middle {pixel(preview, width // 2, 30)}, left of "
                             f"the box {pixel(preview, (width - 300) // 2 - 3, 30)}") from None
    wait_pixel(qtbot, preview, 20, 60 + 20, GREEN)  # the cid: part of the received message
    assert view.remote_bar.isVisible() and "1 remote image blocked" in view.remote_label.text()
    assert image_server.paths == []
    with qtbot.waitSignal(preview.rendered, timeout=20_000):
        qtbot.mouseClick(view.load_remote, Qt.MouseButton.LeftButton)
    wait_pixel(qtbot, preview, 20, 100 + 20, GREEN)
    assert image_server.paths == ["/pixel.png"] and not view.remote_bar.isVisible()
