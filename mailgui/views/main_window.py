"""The main window: toolbar with the "Send via" switch, compose form, side panes, status bar."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QTabBar,
    QTabWidget,
    QToolBar,
    QWidget,
)

from mailgui.views import style
from mailgui.views.common import BlockSignals, MessageBanner, human_size, icon, named
from mailgui.views.compose import ComposeView
from mailgui.views.inbox import InboxView
from mailgui.views.panes import ConsoleView, MemoryView, SentLogView, SourceView, TranscriptView

# (attribute, view class, icon, tab text) of the side panes after Inbox, in tab order
LAZY_PANES = (
    ("source", SourceView, "source", "Source"),
    ("transcript", TranscriptView, None, "Transcript"),
    ("console", ConsoleView, None, "Console"),
    ("memory", MemoryView, None, "Memory"),
    ("sent", SentLogView, None, "Sent"),
)
DETAIL_MAX_WIDTH = 300  # px the "Send via" detail may take in the toolbar; the rest is elided


class ElidedLabel(QLabel):
    """A one-line label that asks for at most ``max_hint`` pixels and elides what does not
    fit ("smtp.example.com:587, STARTTLS, as …"); the whole text is its tooltip. A long
    text never pushes the toolbar's last buttons into its overflow menu."""

    def __init__(self, max_hint: int = DETAIL_MAX_WIDTH) -> None:
        super().__init__()
        self.max_hint = max_hint
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        super().setText(text)
        self.setToolTip(text)
        self.updateGeometry()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        hint = super().sizeHint()
        return QSize(min(hint.width(), self.max_hint), hint.height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(min(super().minimumSizeHint().width(), 60), super().minimumSizeHint().height())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight,
                                             rect.width())
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(rect, int(self.alignment() | Qt.AlignmentFlag.AlignVCenter), text)


class CountBadge(QWidget):
    """The unread count on the Inbox tab: a pill beside the tab's text, empty at 0. Its size
    is fixed and changes only with the count's number of digits: a new count repaints the
    pill alone, where a new tab text lays out the tab bar and every pane again (2.8 ms idle,
    6-19 ms during a burst of arrivals, measured in bench/gui_bench.py case 1c). At 0 it
    keeps the room of one digit, painted empty: the first unread message (what was just
    sent, often) does not resize the tab (3.5 ms of the GUI thread, against 0.9 ms for a
    new count of the same width)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)  # clicks: the tab
        font = self.font()
        font.setBold(True)
        self.setFont(font)
        self._size_for(self._room())

    def text(self) -> str:
        return f"{self.count:,}" if self.count else ""

    def set_count(self, n: int) -> bool:
        """Show ``n``; True if the pill changed size (its tab must make room)."""
        if n == self.count:
            return False
        before = self._room()
        self.count = n
        self.update()
        if self._room() == before:
            return False
        self._size_for(self._room())
        return True

    def _room(self) -> int:
        """Characters of room the pill takes: its text's, one at least (see the class)."""
        return max(1, len(self.text()))

    def _size_for(self, chars: int) -> None:
        metrics = self.fontMetrics()
        height = metrics.height()
        self.setFixedSize(metrics.horizontalAdvance("8" * chars) + height, height)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        if not self.count:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        palette = self.palette()
        painter.setBrush(palette.color(palette.ColorRole.Highlight))
        rect = self.rect()
        radius = rect.height() / 2
        painter.drawRoundedRect(rect, radius, radius)
        painter.setPen(palette.color(palette.ColorRole.HighlightedText))
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignCenter), self.text())


class MainWindow(QMainWindow):
    close_requested = Signal()
    activated = Signal()  # the window became the active one (the person came back to it)

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("mailgui")
        self.setWindowIcon(icon("mailgui"))
        self.resize(1280, 800)
        self.allow_close = False
        # asked before the window closes (the controller: a send is running); False keeps it
        # open. ``force_close`` closes without asking (a signal: SIGTERM, Ctrl+C).
        self.can_close: Callable[[], bool] | None = None

        self.compose = ComposeView()
        self.inbox = InboxView()
        self.side = QTabWidget()
        named(self.side, "Side panes")
        self.side.tabBar().setAccessibleName("Side panes: inbox, source, transcript, console, "
                                             "memory, sent")
        self.side.addTab(self.inbox, icon("inbox"), "Inbox")
        self.inbox_badge = CountBadge()
        self.side.tabBar().setTabButton(0, QTabBar.ButtonPosition.RightSide, self.inbox_badge)
        # The panes behind the other tabs are built when first asked for (their controllers,
        # or the tab being opened), not before the window's first frame.
        self._panes: dict[str, QWidget] = {}
        self._placeholders: dict[str, QWidget] = {}
        for name, _cls, icon_name, title in LAZY_PANES:
            holder = QWidget()
            self._placeholders[name] = holder
            if icon_name:
                self.side.addTab(holder, icon(icon_name), title)
            else:
                self.side.addTab(holder, title)
        self.side.currentChanged.connect(self._build_current_pane)
        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.addWidget(self.compose)
        self.split.addWidget(self.side)
        self.split.setStretchFactor(0, 5)
        self.split.setStretchFactor(1, 6)
        self.split.setChildrenCollapsible(False)
        self.split.setSizes([560, 720])
        self.setCentralWidget(self.split)

        # -- actions --------------------------------------------------------------------------
        def action(text: str, icon_name: str | None, shortcuts: list, tip: str) -> QAction:
            act = QAction(text, self)
            if icon_name:
                act.setIcon(icon(icon_name))
            if shortcuts:
                act.setShortcuts([QKeySequence(s) for s in shortcuts])
            keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            act.setToolTip(f"{tip} ({keys})" if shortcuts else tip)
            act.setStatusTip(tip)
            self.addAction(act)
            return act

        self.act_send = action("&Send", "send", ["Ctrl+Return", "Ctrl+Enter"],
                               "Send the message now")
        self.act_save = action("Save &draft", "save", [QKeySequence.StandardKey.Save],
                               "Save the draft now (it is also saved automatically)")
        self.act_source = action("Show &source", "source", ["Ctrl+U"],
                                 "Show the MIME source that would be sent")
        self.act_attach = action("&Attach files\u2026", "attach", ["Ctrl+Shift+A"],
                                 "Attach files to the message")
        # it shows the inbox's messages; where messages go is "Send via" (this button is not
        # a switch to deliver there)
        self.act_inbox = action("Show &inbox", "inbox", ["Ctrl+I"],
                                "Show the messages the local test inbox received")
        self.act_profiles = action("&Profiles\u2026", "profile", ["Ctrl+Shift+P"],
                                   "Create and edit SMTP and test profiles")
        self.act_queue = action("&Queue\u2026", None, ["Ctrl+Shift+Q"],
                                "Watch a queue profile's queue drain; push copies of the draft")
        self.act_new = action("&New draft", "new", [QKeySequence.StandardKey.New],
                              "Start a new, empty draft")
        self.act_open = action("&Open .eml\u2026", "open", [QKeySequence.StandardKey.Open],
                               "Open an .eml file as a draft")
        self.act_save_eml = action("Save source as .&eml\u2026", None, ["Ctrl+Shift+S"],
                                   "Save the message as an .eml file")
        self.act_open_folder = action("Open output &folder", "folder", [],
                                      "Open the folder where the file backend writes")
        self.act_quit = action("&Quit", None, [QKeySequence.StandardKey.Quit], "Quit mailgui")
        self.act_about = action("&About mailgui", None, [], "About mailgui")
        self.act_keys = action("&Keyboard shortcuts", None, [QKeySequence.StandardKey.HelpContents],
                               "List the keyboard shortcuts")
        self.act_check = action("C&heck message", None, ["Ctrl+K"],
                                "Run every local check (client support, deliverability, "
                                "DKIM) on the exact bytes the source shows")
        self.act_cancel = action("&Cancel sending", "cancel", [], "Stop the send in progress")
        self.act_cancel.setShortcut(QKeySequence("Escape"))
        self.act_cancel.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.act_cancel.setEnabled(False)

        self.target = QComboBox()
        named(self.target, "Send via", "Where the next message goes")
        # as wide as 22 characters whatever the profile names are (a long one is elided in
        # the box and shown whole in its list): the toolbar keeps its width at 1280 px
        self.target.setMinimumContentsLength(22)
        self.target.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.target.view().setTextElideMode(Qt.TextElideMode.ElideNone)
        self.target_detail = ElidedLabel()
        self.target_detail.setStyleSheet(style.muted_label("padding-left: 6px;"))
        named(self.target_detail, "Where the message goes")

        bar = QToolBar("Main")
        bar.setObjectName("main_toolbar")
        bar.setMovable(False)
        bar.setIconSize(QSize(22, 22))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        bar.addAction(self.act_send)
        bar.addAction(self.act_save)
        bar.addAction(self.act_attach)
        bar.addSeparator()
        via = QLabel("Send via: ")
        via.setBuddy(self.target)
        bar.addWidget(via)
        bar.addWidget(self.target)
        bar.addWidget(self.target_detail)
        bar.addAction(self.act_open_folder)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        bar.addWidget(spacer)
        bar.addAction(self.act_profiles)
        bar.addAction(self.act_source)
        bar.addAction(self.act_inbox)
        self.toolbar = bar
        self.addToolBar(bar)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for act in (self.act_new, self.act_open, self.act_save, self.act_save_eml, None,
                    self.act_open_folder, None, self.act_quit):
            file_menu.addSeparator() if act is None else file_menu.addAction(act)
        msg_menu = menu.addMenu("&Message")
        for act in (self.act_send, self.act_cancel, self.act_attach, self.act_check):
            msg_menu.addAction(act)
        view_menu = menu.addMenu("&View")
        view_menu.addAction(self.act_source)
        view_menu.addAction(self.act_inbox)
        self.pane_actions = []
        for index in range(self.side.count()):
            act = QAction(f"{self.side.tabText(index)} pane", self)
            act.setShortcut(QKeySequence(f"Alt+{index + 1}"))
            act.triggered.connect(lambda _=False, i=index: self.show_pane(i))
            view_menu.addAction(act)
            self.pane_actions.append(act)
        profiles_menu = menu.addMenu("&Profiles")
        profiles_menu.addAction(self.act_profiles)
        profiles_menu.addAction(self.act_queue)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.act_keys)
        help_menu.addAction(self.act_about)

        # -- status bar -----------------------------------------------------------------------
        self.progress = QProgressBar()
        named(self.progress, "Sending progress")
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel = QPushButton(icon("cancel"), "Cancel")
        named(self.cancel, "Cancel sending")
        self.cancel.hide()
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel)

    # -- the side panes, built on first use ---------------------------------------------------
    def _pane(self, name: str) -> QWidget:
        pane = self._panes.get(name)
        if pane is not None:
            return pane
        cls = next(spec[1] for spec in LAZY_PANES if spec[0] == name)
        pane = cls()
        self._panes[name] = pane
        holder = self._placeholders.pop(name)
        index = self.side.indexOf(holder)
        current = self.side.currentIndex()
        with BlockSignals(self.side):
            self.side.removeTab(index)
            spec = next(spec for spec in LAZY_PANES if spec[0] == name)
            if spec[2]:
                self.side.insertTab(index, pane, icon(spec[2]), spec[3])
            else:
                self.side.insertTab(index, pane, spec[3])
            self.side.setCurrentIndex(current)
        holder.deleteLater()
        return pane

    def _build_current_pane(self, index: int) -> None:
        widget = self.side.widget(index)
        for name, holder in list(self._placeholders.items()):
            if holder is widget:
                self._pane(name)

    @property
    def source(self) -> SourceView:
        return self._pane("source")  # type: ignore[return-value]

    @property
    def transcript(self) -> TranscriptView:
        return self._pane("transcript")  # type: ignore[return-value]

    @property
    def console(self) -> ConsoleView:
        return self._pane("console")  # type: ignore[return-value]

    @property
    def memory(self) -> MemoryView:
        return self._pane("memory")  # type: ignore[return-value]

    @property
    def sent(self) -> SentLogView:
        return self._pane("sent")  # type: ignore[return-value]

    def build_panes(self) -> None:
        """Build every side pane now (after the first frame: nothing waits for it later)."""
        for name, *_rest in LAZY_PANES:
            self._pane(name)
        # the status bar's busy parts, made ready while hidden: their first show (the
        # first Send) otherwise polishes them and renders Cancel's icon in the click's frame
        for widget in (self.progress, self.cancel):
            widget.ensurePolished()
        self.cancel.icon().pixmap(self.cancel.iconSize())

    @property
    def banner(self) -> MessageBanner:
        """The message banner above the compose form."""
        return self.compose.banner

    # -- sending ----------------------------------------------------------------------------
    def show_sending(self, busy: bool, text: str = "") -> None:
        """While a message goes out: Send off, Cancel on, a progress bar saying ``text``."""
        self.act_send.setEnabled(not busy)
        self.act_cancel.setEnabled(busy)
        self.cancel.setVisible(busy)
        self.cancel.setEnabled(busy)
        self.progress.setVisible(busy)
        if busy:
            self.show_waiting(text)
            self.statusBar().showMessage(text)

    def show_waiting(self, text: str, *, can_cancel: bool | None = None) -> None:
        """A busy bar with no known end ("Connecting…", "Cancelling…"); ``can_cancel``
        switches the Cancel button (None leaves it as it is)."""
        self.progress.setRange(0, 0)
        self.progress.setFormat(text)
        if can_cancel is not None:
            self.cancel.setEnabled(can_cancel)

    def show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * done / total))
        self.progress.setFormat(f"{human_size(done)} of {human_size(total)}")

    def show_unread(self, n: int) -> None:
        """The Inbox tab's count of unread messages (none shown at 0)."""
        bar = self.side.tabBar()
        index = self.side.indexOf(self.inbox)
        if self.inbox_badge.set_count(n):
            bar.setTabText(index, bar.tabText(index))  # (the tab bar sizes its tabs anew)
        bar.setAccessibleTabName(index, f"Inbox, {n:,} unread" if n else "Inbox")
        bar.setTabToolTip(index, f"{n:,} unread message{'s' if n != 1 else ''}" if n else "")

    def show_status(self, text: str, ms: int = 0) -> None:
        self.statusBar().showMessage(text, ms)

    def show_inbox(self) -> None:
        """The Inbox pane, with the keyboard in its list of messages (Ctrl+I); in its search
        field while it has none (the list is not shown then)."""
        self.show_pane(self.inbox)
        target = self.inbox.list if self.inbox.list.isVisibleTo(self) else self.inbox.search
        target.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def show_pane(self, index_or_widget: int | QWidget) -> None:
        if isinstance(index_or_widget, int):
            self.side.setCurrentIndex(index_or_widget)
        else:
            self.side.setCurrentWidget(index_or_widget)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt API
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self.activated.emit()
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        if not self.allow_close and self.can_close is not None and not self.can_close():
            event.ignore()
            return
        self.close_requested.emit()
        event.accept()

    def force_close(self) -> None:
        """Close without asking (the process was told to end)."""
        self.allow_close = True
        self.close()
