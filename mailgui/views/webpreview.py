"""The browser-engine preview of an HTML message: Qt WebEngine (Chromium), as mail clients that
are browser engines (Apple Mail, Gmail on the web, Thunderbird) render it.

Nothing is loaded that the message does not carry, unless the person asks:

* the HTML and its ``cid:`` parts are served from memory by a URL scheme handler; ``data:``
  images render in place; ``file:`` and every other scheme are refused (Chromium refuses local
  files to a non-local page, and the request interceptor refuses the rest);
* remote ``http(s)`` resources are refused until :meth:`WebPreview.allow_remote` is called for
  the message shown (the "Load remote images" bar), and again for the next message;
* JavaScript, plugins, favicons and DNS prefetching are off; links open in the system browser,
  and only when clicked.

How it will look: a phone (375 px), tablet (768 px) or desktop width, and three colour modes:
light, the client's dark mode as the message's own CSS defines it (``prefers-color-scheme:
dark``), and the forced inversion the Gmail and Outlook apps apply to messages without
dark-mode CSS (Chromium's automatic dark mode). "Save as PNG" saves what is shown.

Qt WebEngine takes about a second to start, so the engine is created only when the preview is
first shown, after the window has painted. When it can't start (a missing library, no
PySide6-Addons), the simpler QTextBrowser preview stands in, with a note that says so.
"""

from __future__ import annotations

import atexit
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import shiboken6
from PySide6.QtCore import QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStackedLayout,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mailgui.views import style
from mailgui.views.common import named

PAGE_SCHEME = b"mailpreview"
# The widths of the preview, in CSS pixels (None: as wide as the pane)
WIDTHS: dict[str, int | None] = {"phone": 375, "tablet": 768, "desktop": None}
COLOUR_MODES = ("light", "dark", "inverted")
EXTERNAL_SCHEMES = ("http", "https", "mailto")


# -- the message as the engine is given it (plain Python, no Qt) --------------------------------

_DARK_QUERY = re.compile(r"prefers-color-scheme\s*:\s*dark", re.IGNORECASE)
_LIGHT_QUERY = re.compile(r"prefers-color-scheme\s*:\s*light", re.IGNORECASE)
_DECLARES_DARK = re.compile(
    r"""(?:color-scheme|supported-color-schemes)["']?\s*(?::|content\s*=\s*["'])[^;"'>}]*\bdark""",
    re.IGNORECASE)
_HEAD_OPEN = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_HTML_OPEN = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_DOCTYPE = re.compile(r"\s*<!doctype[^>]*>", re.IGNORECASE)
_TRUE_QUERY = "min-width: 0px"  # a media feature every screen matches
_FALSE_QUERY = "max-width: 0px"  # and one none does


def for_colour_mode(html: str, mode: str) -> str:
    """``html`` as a client in colour ``mode`` sees it.

    The engine's own ``prefers-color-scheme`` follows the desktop's theme, so the media queries
    are decided here: in "dark" the message's dark rules apply and its light-only ones don't,
    and a message that declares dark support (``color-scheme``) gets the dark canvas; "light"
    and "inverted" see the light rules (the inversion itself is the engine's, see WebPreview).
    """
    dark = mode == "dark"
    html = _DARK_QUERY.sub(_TRUE_QUERY if dark else _FALSE_QUERY, html)
    html = _LIGHT_QUERY.sub(_FALSE_QUERY if dark else _TRUE_QUERY, html)
    scheme = "dark" if dark and _DECLARES_DARK.search(html) else "light"
    return _inject_style(html, f":root {{ color-scheme: {scheme} !important; }}")


def _inject_style(html: str, css: str) -> str:
    """``html`` with a ``<style>`` first in its head (never before a doctype: that would put the
    engine in quirks mode and change the layout)."""
    tag = f"<style>{css}</style>"
    for pattern in (_HEAD_OPEN, _HTML_OPEN, _DOCTYPE):
        m = pattern.match(html) if pattern is _DOCTYPE else pattern.search(html)
        if m:
            return html[:m.end()] + tag + html[m.end():]
    return tag + html


@dataclass
class Shown:
    """What the preview shows: the HTML, its inline parts by Content-ID, and whether remote
    resources may load for it."""

    html: str = ""
    parts: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # cid -> (type, bytes)
    remote_allowed: bool = False  # every remote resource of this HTML may load
    allowed: set[str] = field(default_factory=set)  # and these URLs (normalised) in any case
    generation: int = 0


def normalised(url: str) -> str:
    """A URL as the engine requests it, to compare what a scan found with what is asked."""
    return QUrl(url.strip()).toString(QUrl.ComponentFormattingOption.FullyEncoded)


def content_id(url_path: str) -> str:
    """The Content-ID a ``cid:`` URL names (RFC 2392: URL-encoded, without angle brackets)."""
    from urllib.parse import unquote

    return unquote(url_path).strip().strip("<>")


# -- the widget ---------------------------------------------------------------------------------


class WebPreview(QWidget):
    """A browser-engine preview with width, colour-mode and Save as PNG controls.

    ``show_html(html, urls, parts)`` renders a message (``urls``: its remote URLs, found on a
    worker; ``parts``: its inline parts by Content-ID). ``blocked`` holds the remote URLs not
    loaded; ``allow_remote()`` loads them for this message only. ``request_log`` records every
    request the engine made, with the verdict."""

    blocked_changed = Signal(int)
    rendered = Signal(bool)  # a render finished (ok or not)
    link_activated = Signal(QUrl)  # a link the person clicked (opened in the system browser)
    engine_failed = Signal(str)  # the engine could not start; the simple preview stands in

    def __init__(self, parent: QWidget | None = None, *, fallback: Callable[[], QWidget]) -> None:
        super().__init__(parent)
        self.blocked: set[str] = set()
        self.request_log: list[tuple[str, str, bool]] = []  # (scheme, url, allowed)
        self.width_name = "desktop"
        self.colour_mode = "light"
        self.shown = Shown()
        self.engine_ready = False
        self.pending = False  # a render is on its way (the engine answers with ``rendered``)
        self.open_external: Callable[[QUrl], object] = QDesktopServices.openUrl  # a seam
        self._fallback_factory = fallback
        self._fallback: QWidget | None = None
        self._engine: _Engine | None = None
        self._started = False
        self._build()

    # layout
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        # two short rows, so the controls fit a preview beside the HTML editor
        widths = QHBoxLayout()
        widths.setContentsMargins(0, 0, 0, 0)
        widths.setSpacing(2)
        self.width_buttons = self._choice(widths, "Width", [
            ("phone", "Phone", "375 px, as on a phone"),
            ("tablet", "Tablet", "768 px, as on a tablet"),
            ("desktop", "Desktop", "as wide as the pane")], self.set_width, self.width_name)
        widths.addStretch(1)
        self.save_png_button = QToolButton(text="Save as PNG\u2026")
        named(self.save_png_button, "Save the preview as PNG")
        self.save_png_button.setToolTip("Save what the preview shows as a PNG image")
        self.save_png_button.setAutoRaise(True)
        self.save_png_button.clicked.connect(self._save_png_clicked)
        widths.addWidget(self.save_png_button)
        modes = QHBoxLayout()
        modes.setContentsMargins(0, 0, 0, 0)
        modes.setSpacing(2)
        self.mode_buttons = self._choice(modes, "Colours", [
            ("light", "Light", "light mode"),
            ("dark", "Dark", "the client's dark mode, as the message's own CSS defines it "
                             "(prefers-color-scheme: dark)"),
            ("inverted", "Inverted", "forced inversion, as the Gmail and Outlook apps apply to "
                                     "messages without dark-mode CSS")], self.set_colour_mode,
            self.colour_mode)
        modes.addStretch(1)
        outer.addLayout(widths)
        outer.addLayout(modes)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet(style.problem_label())
        self.note.hide()
        outer.addWidget(self.note)
        self.frame = QWidget()  # the device: the page centred in it at the chosen width
        self.frame.setObjectName("previewFrame")
        self.frame.setStyleSheet(f"#previewFrame {{ background: {style.PREVIEW_FRAME}; }}")
        frame_layout = self.frame_layout = QHBoxLayout(self.frame)
        frame_layout.setContentsMargins(0, 0, 0, 0)
        frame_layout.addStretch(1)
        self.stack_host = QWidget()
        self.stack = QStackedLayout(self.stack_host)
        self.waiting = QLabel("Starting the browser-engine preview\u2026",
                              alignment=Qt.AlignmentFlag.AlignCenter)
        self.waiting.setStyleSheet(f"background: white; {style.muted_label()}")
        self.stack.addWidget(self.waiting)
        self.stack_host.setSizePolicy(QSizePolicy.Policy.Expanding,
                                      QSizePolicy.Policy.Expanding)
        frame_layout.addWidget(self.stack_host, 100)
        frame_layout.addStretch(1)
        outer.addWidget(self.frame, 1)

    def _choice(self, bar: QHBoxLayout, title: str, choices: list[tuple[str, str, str]],
                slot: Callable[[str], None], initial: str) -> dict[str, QToolButton]:
        label = QLabel(title + ":")
        label.setMinimumWidth(label.sizeHint().width())
        label.setFixedWidth(60)
        bar.addWidget(label)
        group = QButtonGroup(self)
        group.setExclusive(True)
        buttons = {}
        for key, text, tip in choices:
            button = QToolButton(text=text, checkable=True)
            named(button, f"Preview {title.lower()}: {text}")
            button.setToolTip(tip)
            button.setAutoRaise(True)
            button.clicked.connect(lambda _checked=False, k=key: slot(k))
            group.addButton(button)
            bar.addWidget(button)
            buttons[key] = button
        buttons[initial].setChecked(True)
        return buttons

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(480, 360)

    # the engine, created on first show
    def showEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt API
        super().showEvent(event)
        if not self._started:
            self._started = True
            # after the window's first paint: the engine takes a while to start
            QTimer.singleShot(50, self.start_engine)

    def start_engine(self) -> None:
        """Create the engine now (it is otherwise created when the preview is first shown)."""
        self._started = True
        if self._engine is not None or self._fallback is not None:
            return
        # The engine's view is composited with OpenGL. Put into a shown window, it makes Qt
        # destroy and make anew the native (X11) window it lands in, so that window blinks and
        # keys typed in it at that moment are lost. Born in a native window of its own (the
        # page's area, not its ancestors), only that one is made anew: the main window and
        # its focus stay (measured under Xvfb: the main window's X window id changed in every
        # start before, and stays the same now).
        host = self.stack_host
        host.setAttribute(Qt.WidgetAttribute.WA_DontCreateNativeAncestors)
        host.setAttribute(Qt.WidgetAttribute.WA_NativeWindow)
        try:
            self._engine = _Engine(self)
        except Exception as exc:  # noqa: BLE001 - any failure to start means: fall back
            self._use_fallback(f"{type(exc).__name__}: {exc}")
            return
        self.stack.addWidget(self._engine.view)
        self.stack.setCurrentWidget(self._engine.view)
        self.engine_ready = True
        self._apply_width()
        self._render()

    def _use_fallback(self, reason: str) -> None:
        self._fallback = self._fallback_factory()
        self.stack.addWidget(self._fallback)
        self.stack.setCurrentWidget(self._fallback)
        for button in (*self.width_buttons.values(), *self.mode_buttons.values()):
            button.setEnabled(False)
        self.note.setText("The browser-engine preview could not start, so this is a simpler "
                          f"rendering that differs from mail clients ({reason}).")
        self.note.show()
        self.engine_failed.emit(reason)
        self._render()

    def _engine_gone(self) -> None:
        self._engine = None
        self.engine_ready = False

    @property
    def fallback(self) -> QWidget | None:
        """The simple preview, when the engine could not start."""
        return self._fallback

    @property
    def view(self) -> QWidget | None:
        """The engine's view (a QWebEngineView), once started."""
        return self._engine.view if self._engine else None

    # what is shown
    def show_html(self, html: str, urls: list[str],
                  parts: dict[str, tuple[str, bytes]] | None = None, *,
                  same_message: bool = False) -> None:
        """Render ``html``; ``urls`` are its remote URLs (never loaded until allowed).

        ``same_message``: a new version of the message shown (the draft being typed), so the
        remote URLs already allowed for it stay allowed; any new one is blocked again."""
        if not shiboken6.isValid(self):
            return  # a worker's answer for a window that is gone
        allowed = self.shown.allowed if same_message else set()
        fresh = {u for u in urls if normalised(u) not in allowed}
        everything = same_message and self.shown.remote_allowed and not fresh
        self.shown = Shown(html, dict(parts or {}), everything, set(allowed),
                           self.shown.generation + 1)
        self.blocked = fresh
        self._render()
        self.blocked_changed.emit(len(self.blocked))

    def show_text(self, text: str) -> None:
        """Render a plain-text message (no HTML part) as a mail reader shows it."""
        import html as html_module

        self.show_html("<pre style='white-space: pre-wrap; font-family: monospace; margin: 8px'>"
                       f"{html_module.escape(text)}</pre>", [])

    def clear(self) -> None:
        self.show_html("", [])

    def plain_text(self, callback: Callable[[str], None]) -> None:
        """Call ``callback`` with the text the preview shows (the engine answers later)."""
        if self._engine is not None:
            self._engine.page.toPlainText(callback)
        elif self._fallback is not None and hasattr(self._fallback, "toPlainText"):
            callback(self._fallback.toPlainText())
        else:
            callback("")

    def allow_remote(self) -> None:
        """Load the remote resources of the message shown (and of no other)."""
        self.shown.remote_allowed = True
        self.shown.allowed |= {normalised(u) for u in self.blocked}
        self.blocked.clear()
        self._render()
        self.blocked_changed.emit(0)

    def set_width(self, name: str) -> None:
        self.width_name = name
        self.width_buttons[name].setChecked(True)
        self._apply_width()

    def set_colour_mode(self, mode: str) -> None:
        self.colour_mode = mode
        self.mode_buttons[mode].setChecked(True)
        self._render()

    def _apply_width(self) -> None:
        width = WIDTHS[self.width_name]
        if width is None:  # the whole pane, no frame around it
            self.stack_host.setMinimumWidth(0)
            self.stack_host.setMaximumWidth(16777215)
        else:
            self.stack_host.setFixedWidth(width)
        side = 0 if width is None else 1
        self.frame_layout.setStretch(0, side)
        self.frame_layout.setStretch(2, side)

    def _render(self) -> None:
        if self._engine is not None:
            self.pending = True
            self._engine.load(self.shown, self.colour_mode)
        elif self._fallback is not None:
            show = getattr(self._fallback, "show_html", None)
            if show is not None:
                show(self.shown.html, sorted(self.blocked))

    # saving what is shown
    def grab_image(self):  # noqa: ANN201 - a QImage
        """What the preview shows, as an image."""
        widget = self.view or self._fallback or self.waiting
        return widget.grab().toImage()

    def save_png(self, path: str) -> bool:
        return bool(path) and self.grab_image().save(path, "PNG")

    def choose_png_path(self) -> str:
        """Ask where to save the PNG (tests replace this)."""
        path, _filter = QFileDialog.getSaveFileName(self, "Save preview as PNG",
                                                    os.path.expanduser("~/preview.png"),
                                                    "PNG image (*.png)")
        return path

    def _save_png_clicked(self) -> None:
        path = self.choose_png_path()
        if path and not self.save_png(path):
            self.note.setText(f"Could not save {path}.")
            self.note.show()

    # called by the engine
    def _link_clicked(self, url: QUrl) -> None:
        self.link_activated.emit(url)
        if url.scheme() in EXTERNAL_SCHEMES:
            self.open_external(url)


_CID_REFERENCE = re.compile(
    r"""(?i)((?:\bsrc|\bhref|\bbackground|\bposter|\bsrcset)\s*=\s*["']?\s*|url\(\s*["']?\s*)cid:""")


def _serve_cids_from(html: str, base: str) -> str:
    """``html`` with its ``cid:`` references made URLs of this preview's own scheme, so the
    parts are served from the message shown in this preview (and a stray ``cid:`` is refused)."""
    return _CID_REFERENCE.sub(lambda m: m.group(1) + base + "cid/", html)


class _Shared:
    """What every preview shares for the app's lifetime: the URL schemes, one off-the-record
    profile (no cache, no cookies on disk) and the scheme handler that serves each preview's
    message by the preview's number in the URL (``mailpreview:N/render`` and
    ``mailpreview:N/cid/CONTENT-ID``)."""

    instance: _Shared | None = None

    def __init__(self) -> None:
        from PySide6.QtCore import QBuffer, QByteArray, QIODevice
        from PySide6.QtWebEngineCore import (
            QWebEngineProfile,
            QWebEngineUrlRequestJob,
            QWebEngineUrlScheme,
            QWebEngineUrlSchemeHandler,
        )
        from PySide6.QtWidgets import QApplication

        scheme = QWebEngineUrlScheme(PAGE_SCHEME)
        scheme.setSyntax(QWebEngineUrlScheme.Syntax.Path)
        scheme.setFlags(QWebEngineUrlScheme.Flag.SecureScheme)
        QWebEngineUrlScheme.registerScheme(scheme)
        self.engines: dict[int, _Engine] = {}
        self.next_number = 1
        shared = self

        class Handler(QWebEngineUrlSchemeHandler):
            def requestStarted(self, job: QWebEngineUrlRequestJob) -> None:  # noqa: N802
                found = shared.resource(job.requestUrl().path())
                if found is None:
                    job.fail(QWebEngineUrlRequestJob.Error.UrlNotFound)
                    return
                mime, body = found
                buffer = QBuffer(job)
                buffer.setData(QByteArray(body))
                buffer.open(QIODevice.OpenModeFlag.ReadOnly)
                job.reply(mime, buffer)

        # parented to the application, so it outlives every page that uses it
        self.profile = QWebEngineProfile(QApplication.instance())
        self.profile.setHttpCacheType(QWebEngineProfile.HttpCacheType.NoCache)
        self.profile.setPersistentCookiesPolicy(
            QWebEngineProfile.PersistentCookiesPolicy.NoPersistentCookies)
        self.handler = Handler(self.profile)
        self.profile.installUrlSchemeHandler(PAGE_SCHEME, self.handler)
        # Qt WebEngine must see every page deleted before its profile, or it crashes on the
        # way out: both are deleted when the application is about to quit, and at exit for a
        # program that never ran its event loop to the end (a test session).
        QApplication.instance().aboutToQuit.connect(self.shutdown)
        atexit.register(self.shutdown)

    def shutdown(self) -> None:
        """Delete every preview's view (and page), then the profile."""
        import shiboken6

        for engine in list(self.engines.values()):
            view = engine.view
            if view is not None and shiboken6.isValid(view):
                shiboken6.delete(view)
        self.engines.clear()
        if self.profile is not None and shiboken6.isValid(self.profile):
            shiboken6.delete(self.profile)
        self.profile = None  # type: ignore[assignment]
        _Shared.instance = None

    @classmethod
    def get(cls) -> _Shared:
        if cls.instance is None:
            cls.instance = cls()
        return cls.instance

    def resource(self, path: str) -> tuple[bytes, bytes] | None:
        number, _, rest = path.partition("/")
        engine = self.engines.get(int(number)) if number.isdigit() else None
        if engine is None:
            return None
        if rest.startswith("cid/"):
            part = engine.shown.parts.get(content_id(rest[4:]))
            return (part[0].encode("ascii", "replace"), part[1]) if part else None
        body = engine.documents.get(rest)
        return (b"text/html;charset=utf-8", body) if body is not None else None


class _Engine:
    """Qt WebEngine's parts for one preview: the page with its request interceptor and its
    settings, and the view. The page belongs to the view and the interceptor to the page, so
    they go in that order when the preview goes."""

    def __init__(self, owner: WebPreview) -> None:
        if os.geteuid() == 0:
            # Chromium's sandbox can't run as root; only then is it turned off
            os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
        from PySide6.QtWebEngineCore import (
            QWebEnginePage,
            QWebEngineSettings,
            QWebEngineUrlRequestInterceptor,
        )
        from PySide6.QtWebEngineWidgets import QWebEngineView

        shared = _Shared.get()
        self.number = shared.next_number
        shared.next_number += 1
        self.base = f"{PAGE_SCHEME.decode()}:{self.number}/"
        self.owner = owner
        self.shown = Shown()
        self.documents: dict[str, bytes] = {}
        self.renders = 0
        engine = self

        class Interceptor(QWebEngineUrlRequestInterceptor):
            def interceptRequest(self, info) -> None:  # noqa: ANN001, N802 - Qt API
                url = info.requestUrl()
                scheme = url.scheme()
                shown = engine.shown
                if scheme == PAGE_SCHEME.decode():  # this preview's own, no other's
                    allowed = url.path().startswith(f"{engine.number}/")
                else:
                    allowed = scheme == "data" or (
                        scheme in ("http", "https") and (shown.remote_allowed or url.toString(
                            QUrl.ComponentFormattingOption.FullyEncoded) in shown.allowed))
                engine.owner.request_log.append((scheme, url.toString(), allowed))
                if not allowed:
                    info.block(True)

        class Page(QWebEnginePage):
            def acceptNavigationRequest(self, url: QUrl, kind, is_main_frame: bool) -> bool:  # noqa: ANN001, N802, E501
                if kind == QWebEnginePage.NavigationType.NavigationTypeLinkClicked:
                    engine.owner._link_clicked(url)
                    return False
                # only the message itself is ever loaded (no meta refresh, no form posts)
                return url.toString().startswith(engine.base) or not is_main_frame

            def createWindow(self, _kind):  # noqa: ANN001, ANN202, N802 - Qt API
                # a target="_blank" link: catch its URL, open no window
                return engine.popup

        class Popup(QWebEnginePage):
            def acceptNavigationRequest(self, url: QUrl, kind, is_main_frame: bool) -> bool:  # noqa: ANN001, N802, E501
                if url.isValid() and not url.isEmpty():
                    engine.owner._link_clicked(url)
                return False

        self.view = QWebEngineView(owner.stack_host)  # born in its native host
        self.page = Page(shared.profile, self.view)
        self.interceptor = Interceptor(self.page)
        self.page.setUrlRequestInterceptor(self.interceptor)
        self.popup = Popup(shared.profile, self.page)
        self.popup.setUrlRequestInterceptor(self.interceptor)
        attr = QWebEngineSettings.WebAttribute
        # (no reference to the page's settings is kept: PySide can't tell when the page
        # deletes them, and a stale wrapper would be handed out for whatever object Qt
        # builds at that address next)
        settings = self.page.settings()
        for name, on in (("JavascriptEnabled", False), ("PluginsEnabled", False),
                         ("AutoLoadIconsForPage", False), ("DnsPrefetchEnabled", False),
                         ("HyperlinkAuditingEnabled", False), ("ErrorPageEnabled", False),
                         ("LocalContentCanAccessFileUrls", False),
                         ("LocalContentCanAccessRemoteUrls", False), ("WebGLEnabled", False),
                         ("PdfViewerEnabled", False), ("ScreenCaptureEnabled", False),
                         ("NavigateOnDropEnabled", False), ("AutoLoadImages", True)):
            settings.setAttribute(getattr(attr, name), on)
        self.force_dark = attr.ForceDarkMode
        self.view.setPage(self.page)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.view.setAcceptDrops(False)
        self.page.loadFinished.connect(self._finished)
        shared.engines[self.number] = self
        self.view.destroyed.connect(self._gone)

    def _gone(self, *_args: object) -> None:
        """The view (and with it the page, its settings, the interceptor) was deleted by Qt:
        drop every Python reference to them."""
        _Shared.get().engines.pop(self.number, None)
        self.page = self.popup = self.interceptor = self.view = None  # type: ignore[assignment]
        self.owner._engine_gone()

    def _finished(self, ok: bool) -> None:
        if self.page is None:
            return
        if self.page.url().toString() == f"{self.base}{self.renders}":  # the newest render
            self.owner.pending = False
        self.owner.rendered.emit(ok)

    def load(self, shown: Shown, mode: str) -> None:
        self.shown = shown
        if self.page is None:
            return
        self.page.settings().setAttribute(self.force_dark, mode == "inverted")
        self.renders += 1  # a new URL for every render: nothing is reused
        key = str(self.renders)
        html = _serve_cids_from(for_colour_mode(shown.html, mode), self.base)
        self.documents = {key: html.encode("utf-8")}
        self.page.load(QUrl(self.base + key))
