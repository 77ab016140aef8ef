"""The compose form: address fields, subject, text and HTML bodies, headers, attachments."""

from __future__ import annotations

import html
import re

from PySide6.QtCore import (
    QCoreApplication,
    QEvent,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QClipboard,
    QColor,
    QContextMenuEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QInputMethodEvent,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QTextCharFormat,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTabWidget,
    QTextBrowser,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from mailgui.model.draft import one_line
from mailgui.views import style
from mailgui.views.common import MessageBanner, Pane, delete_key, icon, mono_font, named
from mailgui.views.webpreview import WebPreview

BREAK_EVERY = 24  # characters of a word in a problem sentence between two break chances
ADDRESS_FIELDS = (("from_email", "From"), ("to", "To"), ("cc", "Cc"), ("bcc", "Bcc"),
                  ("reply_to", "Reply-To"))
# Alt+letter for each field's label (File, Message, View, Profiles and Help take F, M, V, P, H)
MNEMONICS = {"from_email": "F&rom", "to": "&To", "cc": "&Cc", "bcc": "&Bcc",
             "reply_to": "Reply-T&o"}
# The window's own shortcuts that a line edit would otherwise take: on X11, Qt binds Ctrl+U
# in a QLineEdit to "delete the whole line", so Ctrl+U (show the source) emptied the field.
WINDOW_KEYS = ((Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier),)


class OneLineEdit(QLineEdit):
    """A line edit for one header line (Subject, addresses, a header's name or value).

    Text pasted into it (Ctrl+V, Shift+Insert, the context menu, a middle click, a drop, an
    input method) has each run of line breaks made one space as it is inserted, as in
    Thunderbird (``one_line``); other control characters are inserted as they are, and the
    controller shows them under the field. ``mark`` underlines spans of the text in red.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.marked_spans: list[tuple[int, int]] = []

    # -- paste ------------------------------------------------------------------------------
    def paste_as_one_line(self, mode: QClipboard.Mode = QClipboard.Mode.Clipboard) -> None:
        """Paste the clipboard (or the X11 selection) with its line breaks made spaces."""
        if self.isReadOnly():
            return
        text = QGuiApplication.clipboard().text(mode)
        if text or self.hasSelectedText():
            self._new_undo_step()
            self.insert(one_line(text))
            self._new_undo_step()

    def _new_undo_step(self) -> None:
        """Make the next edit its own undo step, as QLineEdit's own paste does: it starts
        one whenever the cursor moves, so move it away and back (keeping the selection)."""
        if not self.text():
            return
        pos = self.cursorPosition()
        start, length = self.selectionStart(), len(self.selectedText())
        self.setCursorPosition(pos - 1 if pos else pos + 1)
        if length and pos == start:
            self.setSelection(start + length, -length)
        elif length:
            self.setSelection(start, length)
        else:
            self.setCursorPosition(pos)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.matches(QKeySequence.StandardKey.Paste):
            # X11's Ctrl+Shift+Insert pastes the selection, as QLineEdit does
            selection = (event.key() == Qt.Key.Key_Insert and event.modifiers() == (
                Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
                and QGuiApplication.clipboard().supportsSelection())
            self.paste_as_one_line(QClipboard.Mode.Selection if selection
                                   else QClipboard.Mode.Clipboard)
            event.accept()
            return
        super().keyPressEvent(event)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:  # noqa: N802 - Qt API
        menu = self.createStandardContextMenu()
        for action in menu.actions():
            if action.objectName() == "edit-paste":
                action.triggered.disconnect()
                action.triggered.connect(lambda: self.paste_as_one_line())
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(event.globalPos())

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if (event.button() == Qt.MouseButton.MiddleButton and not self.isReadOnly()
                and QGuiApplication.clipboard().supportsSelection()):
            self.deselect()
            self.paste_as_one_line(QClipboard.Mode.Selection)
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        text = event.mimeData().text()
        if not text or one_line(text) == text:
            super().dropEvent(event)
            return
        mime = QMimeData()
        mime.setText(one_line(text))
        cleaned = QDropEvent(event.position(), event.possibleActions(), mime, event.buttons(),
                             event.modifiers())
        super().dropEvent(cleaned)
        event.setDropAction(cleaned.dropAction())
        event.setAccepted(cleaned.isAccepted())

    def inputMethodEvent(self, event: QInputMethodEvent) -> None:  # noqa: N802 - Qt API
        commit = event.commitString()
        if commit and one_line(commit) != commit:
            cleaned = QInputMethodEvent(event.preeditString(), event.attributes())
            cleaned.setCommitString(one_line(commit), event.replacementStart(),
                                    event.replacementLength())
            super().inputMethodEvent(cleaned)
            event.accept()
            return
        super().inputMethodEvent(event)

    # -- marks ------------------------------------------------------------------------------
    def mark(self, spans: list[tuple[int, int]]) -> None:
        """Underline ``(start, end)`` spans of the text (an empty list clears the marks)."""
        if spans == self.marked_spans:
            return
        self.marked_spans = list(spans)
        self.setProperty("invalid", bool(spans))
        self.style().unpolish(self)
        self.style().polish(self)
        fmt = QTextCharFormat()
        fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
        fmt.setUnderlineColor(QColor(style.FIELD_UNDERLINE))
        fmt.setForeground(QColor(style.FIELD_PROBLEM))
        cursor = self.cursorPosition()
        attributes = [
            QInputMethodEvent.Attribute(
                QInputMethodEvent.AttributeType.TextFormat, start - cursor, end - start, fmt
            )
            for start, end in spans
        ]
        # The well-known way to format parts of a QLineEdit: an input method event that
        # commits nothing and only carries text formats (so it goes to QLineEdit's own
        # handler, not through the paste cleaning above).
        QCoreApplication.sendEvent(self, QInputMethodEvent("", attributes))


class AddressEdit(OneLineEdit):
    """A line edit for an address list that can underline the bad addresses in red."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setClearButtonEnabled(True)


class OneLineDelegate(QStyledItemDelegate):
    """Edits the cells of a table (the extra headers) in a ``OneLineEdit``."""

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem,  # noqa: N802 - Qt API
                     index: QModelIndex | QPersistentModelIndex) -> QWidget:
        editor = OneLineEdit(parent)
        editor.setFrame(False)
        return editor


_LONG_WORD = re.compile(r"\S{%d,}" % BREAK_EVERY)


def breakable(text: str) -> str:
    """``text`` with a zero-width space every ``BREAK_EVERY`` characters of a long word (an
    address, a path): a label wraps only between words, so one long word made it, and the
    pane it is in, as wide as the word."""
    return _LONG_WORD.sub(
        lambda m: "\u200b".join(m.group()[i:i + BREAK_EVERY]
                                for i in range(0, len(m.group()), BREAK_EVERY)), text)


def show_problem(label: QLabel, text: str, fix: str = "") -> None:
    """Show ``text`` (plain text, never read as HTML) in a problem label, with a link that
    says ``fix`` after it when given (the label's ``linkActivated`` does it); hide the label
    when ``text`` is empty. Long words are made breakable, so the sentence wraps in the
    field's column."""
    text = breakable(text)
    if fix:
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setText(f'{html.escape(text, quote=False)} '
                      f'<a href="fix">{html.escape(fix, quote=False)}</a>')
    else:
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setText(text)
    label.setVisible(bool(text))


class HtmlPreview(QTextBrowser):
    """Renders the HTML alternative. Remote images are blocked unless loaded on purpose:
    the controller fetches them on a worker and hands them over with ``add_image``."""

    blocked_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.blocked: set[str] = set()
        self.images: dict[str, QImage] = {}
        self._placeholder = QImage(32, 24, QImage.Format.Format_RGB32)
        self._placeholder.fill(QColor(style.IMAGE_PLACEHOLDER))

    def show_html(self, html: str, urls: list[str]) -> None:
        """Render ``html``; ``urls`` are its remote URLs, found on a worker
        (``mailgui.model.remote.remote_urls``: the parse is too slow for this thread)."""
        self.blocked = {u for u in urls if u not in self.images}
        self.setHtml(html)
        self.blocked_changed.emit(len(self.blocked))

    def add_image(self, url: str, image: QImage) -> None:
        self.images[url] = image
        self.document().addResource(QTextDocument.ResourceType.ImageResource, QUrl(url), image)
        self.blocked.discard(url)

    def loadResource(self, kind: int, url: QUrl) -> object:  # noqa: N802 - Qt API
        if url.scheme() in ("http", "https", "ftp"):
            text = url.toString()
            if text in self.images:
                return self.images[text]
            if kind == QTextDocument.ResourceType.ImageResource.value or kind == (
                QTextDocument.ResourceType.ImageResource
            ):
                self.blocked.add(text)
                return self._placeholder
            return None
        if url.scheme() in ("file", "") and kind != QTextDocument.ResourceType.ImageResource:
            return None
        return super().loadResource(kind, url)


def _placeholder_preview() -> HtmlPreview:
    """The simple preview, for when the browser engine can't start."""
    preview = HtmlPreview()
    preview.setPlaceholderText("The rendered HTML appears here.")
    return preview


def _warning_label(name: str) -> QLabel:
    """The amber sentence under a field that says what to know before sending (hidden until
    then): a warning, never a reason not to send."""
    warning = _problem_label(name)
    warning.setStyleSheet(f"color: {style.BANNERS['warning'].text};")
    return warning


def _problem_label(name: str) -> QLabel:
    """The red sentence under a field that says what is wrong with it (hidden until then)."""
    error = QLabel()
    error.setStyleSheet(style.problem_label())
    error.setWordWrap(True)
    error.setTextFormat(Qt.TextFormat.PlainText)
    # its width follows the field's column, never the other way round
    error.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    error.setMinimumWidth(1)
    named(error, name)
    error.hide()
    return error


def _notice_bar(button_text: str, severity: str) -> tuple[QFrame, QLabel, QPushButton]:
    """A thin strip in a banner's colours with a sentence and a button (hidden until needed)."""
    background, border, color = style.notice_bar(severity)
    label = QLabel()
    label.setWordWrap(True)
    button = QPushButton(button_text)
    named(button, button_text)
    bar = QFrame()
    bar.setStyleSheet(f"QFrame {{ background: {background}; border: 1px solid {border}; "
                      f"border-radius: 3px; }} QLabel {{ border: none; color: {color}; }}")
    row = QHBoxLayout(bar)
    row.setContentsMargins(6, 2, 2, 2)
    row.addWidget(label, 1)
    row.addWidget(button)
    bar.hide()
    return bar, label, button


class ComposeView(Pane):
    """All the compose widgets, exposed as attributes; signals for the controller."""

    files_dropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._drop_shown = False
        self._hint_before = ""
        self.banner = MessageBanner()

        # -- addresses and subject ---------------------------------------------------------
        self.address_edits: dict[str, AddressEdit] = {}
        self.address_errors: dict[str, QLabel] = {}
        # an address that needs a server with SMTPUTF8, said as it is typed
        self.address_warnings: dict[str, QLabel] = {}
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        row = 0
        for key, label_text in ADDRESS_FIELDS:
            edit = AddressEdit()
            named(edit, label_text, f"{label_text} addresses, separated by commas")
            edit.setPlaceholderText(
                "Name <name@example.com>, other@example.com" if key != "from_email" else ""
            )
            label = QLabel(f"{MNEMONICS[key]}:")
            label.setBuddy(edit)
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            error = _problem_label(f"{label_text} problem")
            warning = _warning_label(f"{label_text} warning")
            notes = QVBoxLayout()  # the problem, then the warning (hidden ones take no room)
            notes.setContentsMargins(0, 0, 0, 0)
            notes.setSpacing(0)
            notes.addWidget(error)
            notes.addWidget(warning)
            grid.addWidget(label, row, 0)
            grid.addWidget(edit, row, 1)
            grid.addLayout(notes, row + 1, 1)
            self.address_edits[key] = edit
            self.address_errors[key] = error
            self.address_warnings[key] = warning
            row += 2
        self.subject = OneLineEdit()
        named(self.subject, "Subject")
        subject_label = QLabel("&Subject:")
        subject_label.setBuddy(self.subject)
        subject_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.subject_error = _problem_label("Subject problem")
        grid.addWidget(subject_label, row, 0)
        grid.addWidget(self.subject, row, 1)
        grid.addWidget(self.subject_error, row + 1, 1)
        grid.setColumnStretch(1, 1)
        # a few pixels of room: a right-aligned label exactly as wide as its text lost the
        # first pixels of "Reply-To:" on X11
        widest = max(grid.itemAtPosition(r, 0).widget().sizeHint().width()
                     for r in range(0, row + 1, 2))
        grid.setColumnMinimumWidth(0, widest + 6)
        self.from_edit = self.address_edits["from_email"]
        self.address_edits["to"].setPlaceholderText("Name <name@example.com>, other@example.com")

        # -- bodies ---------------------------------------------------------------------------
        self.body = QPlainTextEdit()
        named(self.body, "Message text", "The plain-text body")
        self.body.setTabChangesFocus(True)
        self.body.setPlaceholderText("Write the plain-text message here.")
        self.html = QPlainTextEdit()
        named(self.html, "HTML source", "The HTML alternative of the message")
        self.html.setTabChangesFocus(True)
        self.html.setFont(mono_font())
        self.html.setPlaceholderText(
            "Optional: an HTML version of the message, e.g. <p>Hello <b>there</b></p>.\n"
            "It is sent as a multipart/alternative beside the text."
        )
        self.html_preview = WebPreview(fallback=_placeholder_preview)
        named(self.html_preview, "HTML preview")
        # Remote images blocked (amber), and a preview too slow to follow the typing (blue)
        self.remote_bar, self.remote_label, self.load_remote = _notice_bar(
            "Load remote images", "warning")
        self.stale_bar, self.stale_label, self.refresh_preview = _notice_bar(
            "Refresh preview", "info")
        preview_box = QWidget()
        pv = QVBoxLayout(preview_box)
        pv.setContentsMargins(0, 0, 0, 0)
        pv.addWidget(self.stale_bar)
        pv.addWidget(self.remote_bar)
        pv.addWidget(self.html_preview, 1)
        self.html_split = QSplitter(Qt.Orientation.Horizontal)
        self.html_split.addWidget(self.html)
        self.html_split.addWidget(preview_box)
        self.html_split.setChildrenCollapsible(False)
        self.html_split.setStretchFactor(0, 1)
        self.html_split.setStretchFactor(1, 1)
        self.html.setMinimumWidth(160)
        preview_box.setMinimumWidth(160)

        # -- extra headers ------------------------------------------------------------------
        self.headers = QTableWidget(0, 2)
        named(self.headers, "Extra headers", "Name and value of each extra header")
        self.headers.setHorizontalHeaderLabels(["Name", "Value"])
        self.headers.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.headers.horizontalHeader().setStretchLastSection(True)
        self.headers.setColumnWidth(0, 180)
        self.headers.verticalHeader().hide()
        self.headers.setTabKeyNavigation(False)
        self.headers.setItemDelegate(OneLineDelegate(self.headers))
        self.headers_delete = delete_key(self.headers)
        self.add_header = QPushButton("Add header")
        named(self.add_header, "Add header")
        self.remove_header = QPushButton("Remove header")
        named(self.remove_header, "Remove header")
        self.header_problem = _problem_label("Header problem")
        headers_box = QWidget()
        hb = QVBoxLayout(headers_box)
        hb.addWidget(self.headers, 1)
        hrow = QHBoxLayout()
        hrow.addWidget(self.add_header)
        hrow.addWidget(self.remove_header)
        hrow.addWidget(self.header_problem, 1)
        hb.addLayout(hrow)

        self.tabs = QTabWidget()
        named(self.tabs, "Message parts")
        self.tabs.tabBar().setAccessibleName("Message parts: text, HTML, headers")
        self.tabs.addTab(self.body, "Text")
        self.tabs.addTab(self.html_split, "HTML")
        self.tabs.addTab(headers_box, "Headers")
        # the tabs' pages by name: tabs.setCurrentWidget(view.headers_page), never an index
        self.text_page, self.html_page, self.headers_page = self.body, self.html_split, headers_box

        # -- attachments ---------------------------------------------------------------------
        self.attachments = QTreeWidget()
        named(self.attachments, "Attachments", "Files attached to the message")
        self.attachments.setHeaderLabels(["Name", "Size", "Type", "Status"])
        self.attachments.setRootIsDecorated(False)
        self.attachments.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.attachments.setAlternatingRowColors(True)
        header = self.attachments.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.attachments.setMinimumHeight(64)
        self.attachments.setMaximumHeight(120)
        self.attachments_delete = delete_key(self.attachments)
        self.attachments_label = QLabel("Attachments")
        self.attachments_hint = QLabel("Drop files here, or use Attach\u2026")
        self.attachments_hint.setStyleSheet("color: palette(placeholder-text);")
        self.add_attachment = QPushButton(icon("attach"), "Attach\u2026")
        named(self.add_attachment, "Attach files")
        self.remove_attachment = QPushButton("Remove")
        named(self.remove_attachment, "Remove attachment")
        self.remove_attachment.setEnabled(False)  # nothing attached yet
        arow = QHBoxLayout()
        arow.addWidget(self.attachments_label)
        arow.addWidget(self.attachments_hint, 1)
        arow.addWidget(self.add_attachment)
        arow.addWidget(self.remove_attachment)

        layout = QVBoxLayout(self.pane_body)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.banner)
        layout.addLayout(grid)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(arow)
        layout.addWidget(self.attachments)

        for widget in (self.body, self.html, self.html_preview, self.attachments, self.headers,
                       self.subject, *self.address_edits.values()):
            widget.installEventFilter(self)
            if hasattr(widget, "viewport"):
                widget.viewport().installEventFilter(self)

        QWidget.setTabOrder(self.address_edits["reply_to"], self.subject)
        # Subject, then the text, as in a mail program (the Text/HTML/Headers tab bar comes
        # after it, or Ctrl+Tab inside)
        QWidget.setTabOrder(self.subject, self.body)

    # -- file drops anywhere on the form -----------------------------------------------------
    @staticmethod
    def _local_files(event: QDropEvent | QDragEnterEvent) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]

    def show_field(self, field: str) -> None:
        """Bring the field a problem is about into view: an address field gets the focus,
        "headers" shows the Headers tab (``draft_problems``' field names)."""
        if field in self.address_edits:
            self.address_edits[field].setFocus()
        elif field == "headers":
            self.tabs.setCurrentWidget(self.headers_page)

    def show_drop_target(self, on: bool) -> None:
        """While files are dragged over the form: say where they go."""
        if on == self._drop_shown:
            return
        self._drop_shown = on
        if on:
            self._hint_before = self.attachments_hint.text()
            self.attachments_hint.setText("Drop the files to attach them")
            self.attachments.setStyleSheet(
                f"QTreeWidget {{ border: 2px dashed {style.DROP_TARGET}; }}")
        else:
            self.attachments_hint.setText(self._hint_before)
            self.attachments.setStyleSheet("")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if self._local_files(event):
            event.acceptProposedAction()
            self.show_drop_target(True)
        else:
            super().dragEnterEvent(event)

    def dragLeaveEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt API
        self.show_drop_target(False)
        super().dragLeaveEvent(event)

    def dragMoveEvent(self, event) -> None:  # noqa: ANN001, N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        self.show_drop_target(False)
        files = self._local_files(event)
        if files:
            event.acceptProposedAction()
            self.files_dropped.emit(files)
        else:
            super().dropEvent(event)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        kind = event.type()
        if kind == QEvent.Type.ShortcutOverride and isinstance(obj, QLineEdit):
            mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            if (event.key(), mods) in WINDOW_KEYS:
                event.ignore()  # not the field's: the window's shortcut runs
                return True
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
                if kind == QEvent.Type.Drop:
                    self.dropEvent(event)
                else:
                    event.acceptProposedAction()
                    self.show_drop_target(True)
                return True
        if kind == QEvent.Type.DragLeave:
            self.show_drop_target(False)
        return super().eventFilter(obj, event)
