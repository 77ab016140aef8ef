"""The Checks panel: what is wrong with a message (client support, deliverability lint, DKIM,
and on request links and spam score), as a summary line, a tree of findings grouped by check,
the selected finding's sentence, fix, place and reference, and the per-client support table.

Widgets and layout only; ``mailgui.controllers.checks`` fills it and reacts to its buttons.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QIcon
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mailgui.views import style
from mailgui.views.common import named

if TYPE_CHECKING:
    from mailcore.checks import Finding, Report, Severity

# The checks' model (mailcore.checks and its parsers) is imported when a report is shown,
# not with the window: the inbox pane holds this panel from the first frame on.

__all__ = ["FINDING_ROLE", "ChecksDialog", "ChecksPanel", "DkimKeysDialog", "LinksDialog",
           "severity_icon"]

FINDING_ROLE = Qt.ItemDataRole.UserRole  # column 0 of a finding row: its index in ``findings``
SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # a client row's number in each column (None: no data)
NO_DATA = "no data"
NO_HTML = "no HTML part"
# by Severity (an IntEnum: ERROR 2, WARNING 1, INFO 0)
BANNER_OF = {2: "error", 1: "warning", 0: "info"}
ORDER = ("lint", "clients", "dkim", "spam", "links")


def severity_icon(severity: Severity | None) -> QIcon:
    pixmap = {
        2: QStyle.StandardPixmap.SP_MessageBoxCritical,  # Severity.ERROR
        1: QStyle.StandardPixmap.SP_MessageBoxWarning,  # Severity.WARNING
        0: QStyle.StandardPixmap.SP_MessageBoxInformation,  # Severity.INFO
        None: QStyle.StandardPixmap.SP_DialogApplyButton,
    }[severity]
    return QApplication.style().standardIcon(pixmap)


def _colour(severity: Severity) -> QBrush:
    return QBrush(QColor(style.BANNERS[BANNER_OF[severity]].text))


def _pct(value: Any) -> str:
    return f"{value:.0f} %" if isinstance(value, (int, float)) else ""


def group_text(check: str, summary: dict[str, Any], report: Report, *,
               keys_hint: bool = True) -> str:
    """The line of a check's group: its title and what it says in short. ``keys_hint``: a
    signature not verified for want of a key points to the DKIM keys… button."""
    from mailgui.model.checks import CHECK_TITLES, NOT_VERIFIED, dkim_verdict, spam_score

    title = CHECK_TITLES.get(check, check)
    extra = ""
    if check == "clients" and summary.get("html_parts") == 0:
        extra = NO_HTML
    elif check == "clients" and isinstance(summary.get("supported"), (int, float)):
        extra = f"{_pct(summary['supported'])} supported"
    elif check == "dkim":
        verdict, reason = dkim_verdict(report)
        extra = verdict + (f" \u2014 {reason}" if reason else "")
        if verdict == NOT_VERIFIED and keys_hint:
            extra += " \u2014 paste the key with DKIM keys\u2026, or allow DNS lookups there"
    elif check == "spam":
        spam = spam_score(report)
        if spam is not None:
            score, threshold, is_spam = spam
            limit = f" / {threshold:g}" if threshold is not None else ""
            extra = f"score {score:g}{limit}: {'spam' if is_spam else 'not spam'}"
    elif check == "links" and isinstance(summary.get("links"), list):
        links = [link for link in summary["links"] if isinstance(link, dict)]
        visited = summary.get("visited")
        if not isinstance(visited, int):
            visited = sum(1 for link in links if link.get("status") or link.get("error"))
        failed = summary.get("failed")
        if not isinstance(failed, int):
            failed = sum(1 for link in links if link.get("error"))
        skipped = len(summary.get("skipped_single_use") or [])
        extra = f"{visited} visited, {failed} failed" + (
            f", {skipped} single-use skipped" if skipped else "")
    return f"{title}: {extra}" if extra else title


class _WrapDelegate(QStyledItemDelegate):
    """Rows as tall as their text wrapped to the column's width (Qt's own size hint does not
    know the width, so a long sentence would end in "…")."""

    def __init__(self, tree: QTreeWidget) -> None:
        super().__init__(tree)
        self.tree = tree

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        hint = super().sizeHint(option, index)
        text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        if not text:
            return hint
        width = self.tree.columnWidth(index.column())
        if index.column() == 0:
            depth, parent = 0, index.parent()
            while parent.isValid():
                depth, parent = depth + 1, parent.parent()
            width -= self.tree.indentation() * (depth + 1)
            if index.data(Qt.ItemDataRole.DecorationRole) is not None:
                width -= self.tree.iconSize().width() if self.tree.iconSize().isValid() \
                    else option.decorationSize.width()
                width -= 8
        width = max(40, width - 10)
        font = index.data(Qt.ItemDataRole.FontRole)
        metrics = self.tree.fontMetrics() if font is None else QFontMetrics(font)
        height = metrics.boundingRect(QRect(0, 0, width, 100000),
                                      int(Qt.TextFlag.TextWordWrap), text).height()
        return QSize(hint.width(), max(hint.height(), height + 4))


class ChecksPanel(QWidget):
    """Summary, buttons for the network checks with progress and Cancel, findings, clients."""

    def __init__(self, parent: QWidget | None = None, *, name: str = "Checks") -> None:
        super().__init__(parent)
        named(self, name)
        self.findings: list[Finding] = []
        self.summary = QLabel("No checks yet.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setStyleSheet("QLabel { font-weight: 600; padding: 2px 0; }")
        named(self.summary, "Checks summary")
        self.errors = QLabel()
        self.errors.setWordWrap(True)
        self.errors.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        background, border, text = style.notice_bar("warning")
        self.errors.setStyleSheet(f"QLabel {{ background: {background}; color: {text}; "
                                  f"border: 1px solid {border}; border-radius: 3px; "
                                  "padding: 4px; }")
        named(self.errors, "Checks that could not run")
        self.errors.hide()

        self.links = QPushButton("Check links\u2026")
        named(self.links, "Check links")
        self.links.setToolTip("Visit every link and image of the message (the network): you "
                              "are asked first, and links that look single-use are skipped "
                              "unless you say otherwise")
        self.spam = QPushButton("Spam score")
        named(self.spam, "Spam score")
        self.spam.setToolTip("Score the message with SpamAssassin, started on this computer "
                             "(127.0.0.1); nothing is sent anywhere")
        self.progress = QProgressBar()
        named(self.progress, "Checks progress")
        self.progress.setTextVisible(True)
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.busy = QLabel()  # what the bar waits for: "Starting SpamAssassin…"
        named(self.busy, "Checks progress text")
        self.busy.hide()
        self.cancel = QPushButton("Cancel")
        named(self.cancel, "Cancel the check")
        self.cancel.hide()
        self.keys = QPushButton("DKIM keys\u2026")
        named(self.keys, "DKIM keys for verification")
        self.keys.setToolTip("Public keys for domains not published in DNS yet, and whether "
                             "DKIM keys may be looked up in DNS (off: nothing leaves this "
                             "computer)")
        self.go = QPushButton("Show in message")
        named(self.go, "Show the finding in the message")
        self.go.setToolTip("Go to the part or line of the selected finding (or double-click "
                           "it, or press Enter)")
        self.go.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        for widget in (self.links, self.spam, self.busy, self.progress, self.cancel):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        buttons.addWidget(self.keys)
        buttons.addWidget(self.go)

        self.tree = QTreeWidget()
        named(self.tree, "Check findings")
        self.tree.setHeaderLabels(["Finding", "Where"])
        self.tree.setAlternatingRowColors(True)
        # a finding's sentence wraps onto more lines rather than ending in "…"
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.tree.setItemDelegate(_WrapDelegate(self.tree))
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setToolTip("Drag the line between the columns to widen Where")
        self.tree.setColumnWidth(1, 260)
        # rows are measured again for the new width (Qt measures them once)
        header.sectionResized.connect(lambda *_a: self.tree.scheduleDelayedItemsLayout())
        self.keys_hint = True  # the DKIM group points to the DKIM keys… button
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setTextFormat(Qt.TextFormat.RichText)
        self.detail.setOpenExternalLinks(True)  # a click on a reference: the person asked
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.detail.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.detail.setStyleSheet("QLabel { background: palette(alternate-base); padding: 6px; "
                                  "border: 1px solid palette(mid); }")
        named(self.detail, "Finding detail")
        # the sentence, the fix, the place and the reference fit without scrolling
        self.detail.setMinimumHeight(self.detail.fontMetrics().lineSpacing() * 8 + 14)
        findings_page = QSplitter(Qt.Orientation.Vertical)
        findings_page.addWidget(self.tree)
        findings_page.addWidget(self.detail)
        findings_page.setStretchFactor(0, 4)
        findings_page.setStretchFactor(1, 1)
        findings_page.setChildrenCollapsible(False)
        self.findings_page = findings_page

        self.clients = QTreeWidget()
        named(self.clients, "Support by email client")
        self.clients.setHeaderLabels(["Client", "Supported", "Partly", "Not supported",
                                      "Features not supported"])
        self.clients.setRootIsDecorated(False)
        self.clients.setAlternatingRowColors(True)
        self.clients.setWordWrap(True)
        self.clients.setUniformRowHeights(False)
        clients_header = self.clients.header()
        for column in range(4):
            clients_header.setSectionResizeMode(column,
                                                QHeaderView.ResizeMode.ResizeToContents)
        clients_header.setStretchLastSection(True)
        self.clients.setSortingEnabled(True)
        self.clients.sortByColumn(1, Qt.SortOrder.AscendingOrder)  # the worst supported first
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        named(self.tabs, "Checks views")
        self.tabs.addTab(findings_page, "Findings")
        self.tabs.addTab(self.clients, "Clients")

        box = QVBoxLayout(self)
        box.setContentsMargins(4, 4, 4, 4)
        box.setSpacing(4)
        box.addWidget(self.summary)
        box.addWidget(self.errors)
        box.addLayout(buttons)
        box.addWidget(self.tabs, 1)
        self.tree.currentItemChanged.connect(lambda item, _p: self._show_detail(item))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.tree.scheduleDelayedItemsLayout()  # wrapped rows: measured for the new width

    # -- filling -------------------------------------------------------------------------
    def clear(self, note: str = "No checks yet.") -> None:
        self.findings = []
        self.tree.clear()
        self.clients.clear()
        self.summary.setText(note)
        self.summary.setToolTip("")
        self.errors.hide()
        self.detail.clear()
        self.go.setEnabled(False)

    def show_report(self, report: Report) -> None:
        """Every result of ``report``: the summary, errors as lines, findings by check."""
        from mailcore.checks import Severity
        from mailgui.model.checks import CHECK_TITLES, summary_line

        selected = self.current_finding()
        self.findings = []
        self.tree.clear()
        self.summary.setText(html.escape(summary_line(report)))
        worst = report.worst
        colour = style.BANNERS[BANNER_OF[worst]].text if worst is not None else style.OK
        self.summary.setStyleSheet(f"QLabel {{ font-weight: 600; padding: 2px 0; "
                                   f"color: {colour}; }}")
        errors = [f"<b>{html.escape(CHECK_TITLES.get(r.check, r.check))}:</b> "
                  f"{html.escape(r.error)}" for r in report.results if r.error]
        self.errors.setText("<br>".join(errors))
        self.errors.setVisible(bool(errors))
        results = sorted(report.results, key=lambda r: ORDER.index(r.check)
                         if r.check in ORDER else len(ORDER))
        again = None
        bold = QFont(self.tree.font())
        bold.setBold(True)
        for result in results:
            title = group_text(result.check, result.summary, report, keys_hint=self.keys_hint)
            group = QTreeWidgetItem([title, ""])
            group.setFont(0, bold)
            if result.error:
                group.setText(1, "could not run")
                group.setToolTip(0, result.error)
                group.setIcon(0, severity_icon(Severity.WARNING))
            else:
                n = len(result.findings)
                group.setText(1, f"{n} finding{'s' if n != 1 else ''}" if n else "nothing found")
                group.setToolTip(0, title)
                group.setIcon(0, severity_icon(result.worst))
            group.setData(0, FINDING_ROLE, -1)
            self.tree.addTopLevelItem(group)
            for finding in sorted(result.findings, key=lambda f: -f.severity):
                item = QTreeWidgetItem([finding.message, finding.location.describe()])
                item.setIcon(0, severity_icon(finding.severity))
                item.setForeground(0, _colour(finding.severity))
                tip = finding.message + (f"\nFix: {finding.fix}" if finding.fix else "")
                item.setToolTip(0, tip)
                item.setToolTip(1, finding.location.describe())
                item.setStatusTip(0, finding.message)  # the sentence, never a bare "warning"
                item.setData(0, FINDING_ROLE, len(self.findings))
                self.findings.append(finding)
                group.addChild(item)
                if selected is not None and finding == selected:
                    again = item
            group.setExpanded(bool(result.findings))
        self._fill_clients(report)
        if again is not None:
            self.tree.setCurrentItem(again)
        else:
            self._show_detail(None)

    def _fill_clients(self, report: Report) -> None:
        self.clients.setSortingEnabled(False)  # filled first, then sorted once
        self.clients.clear()
        result = report.result("clients")
        summary = result.summary if result is not None else {}
        if summary.get("html_parts") == 0:  # nothing to match against the clients' data
            self.tabs.setTabText(1, f"Clients ({NO_HTML})")
            self.tabs.setTabEnabled(1, False)
            self.clients.setSortingEnabled(True)
            return
        families = summary.get("families") or summary.get("clients_by_family") or []
        for family in families:
            if not isinstance(family, dict):
                continue

            def pct(key: str, family: dict = family) -> str:
                return _pct(family.get(key))

            def names(key: str, family: dict = family) -> str:
                value = family.get(key)
                if not isinstance(value, (list, tuple)):
                    return ""
                return ", ".join(str(v) for v in value[:5]) + (
                    f" and {len(value) - 5} more" if len(value) > 5 else "")

            name = str(family.get("name") or family.get("family") or "")
            known = isinstance(family.get("supported"), (int, float)) and (
                family.get("tests") is None or family.get("tests"))
            numbers = [family.get(k) if known else None
                       for k in ("supported", "partial", "unsupported")]
            row = _ClientRow([
                name, *(_pct(n) if n is not None else NO_DATA for n in numbers),
                names("unsupported_features") if known else "",
            ])
            row.setData(0, SORT_ROLE, name.lower())
            for column, number in enumerate(numbers, 1):
                row.setData(column, SORT_ROLE, number)
                row.setTextAlignment(column, Qt.AlignmentFlag.AlignRight
                                     | Qt.AlignmentFlag.AlignVCenter)
            row.setData(4, SORT_ROLE, len(family.get("unsupported_features") or []))
            unsupported = names("unsupported_features")
            partial = names("partial_features")
            tip = "\n".join(bit for bit in (
                f"Not supported: {unsupported}" if unsupported else "",
                f"Partly supported: {partial}" if partial else "") if bit)
            if not known:
                tip = "caniemail.com has no data on this client for the features used"
            row.setToolTip(0, tip)
            row.setToolTip(4, ", ".join(str(v) for v in family.get("unsupported_features")
                                        or []))
            self.clients.addTopLevelItem(row)
        self.clients.setSortingEnabled(True)
        self.tabs.setTabText(1, f"Clients ({self.clients.topLevelItemCount()})"
                             if self.clients.topLevelItemCount() else "Clients")
        self.tabs.setTabEnabled(1, self.clients.topLevelItemCount() > 0)

    def current_finding(self) -> Finding | None:
        item = self.tree.currentItem()
        return self.finding_of(item)

    def finding_of(self, item: QTreeWidgetItem | None) -> Finding | None:
        if item is None:
            return None
        index = item.data(0, FINDING_ROLE)
        if not isinstance(index, int) or not 0 <= index < len(self.findings):
            return None
        return self.findings[index]

    def finding_items(self) -> list[QTreeWidgetItem]:
        out = []
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            out.extend(group.child(j) for j in range(group.childCount()))
        return out

    def _show_detail(self, item: QTreeWidgetItem | None) -> None:
        finding = self.finding_of(item)
        self.go.setEnabled(finding is not None and bool(finding.location.part
                                                        or finding.location.line))
        if finding is None:
            self.detail.setText("Select a finding to see how to fix it." if self.findings
                                else "")
            return
        colour = style.BANNERS[BANNER_OF[finding.severity]].text
        rows = [f'<span style="color:{colour}"><b>{finding.severity.label.title()}:</b> '
                f"{html.escape(finding.message)}</span>"]
        if finding.fix:
            rows.append(f"<b>Fix:</b> {html.escape(finding.fix)}")
        where = finding.location.describe()
        if where:
            rows.append(f"<b>Where:</b> {html.escape(where)}")
        if finding.reference:
            ref = html.escape(finding.reference, quote=True)
            rows.append(f'<b>Reference:</b> <a href="{ref}">{ref}</a>')
        rows.append(f'<span style="color:gray">{html.escape(finding.code)}</span>')
        self.detail.setText("<br>".join(rows))

    # -- long checks ---------------------------------------------------------------------
    def set_busy(self, text: str, done: int | None = None, total: int | None = None) -> None:
        """A long check runs: its progress (no known end without ``total``) and Cancel. The
        two buttons make room for them (they can't be pressed meanwhile)."""
        self.links.setEnabled(False)
        self.spam.setEnabled(False)
        self.links.hide()
        self.spam.hide()
        self.progress.show()
        self.cancel.show()
        self.cancel.setEnabled(True)
        if total:
            self.busy.hide()
            self.progress.setRange(0, total)
            self.progress.setValue(min(done or 0, total))
            self.progress.setFormat(f"{text} {done or 0} of {total}")
        else:
            # a bar with no known end shows no text in most styles: the label says what runs
            self.busy.setText(text)
            self.busy.show()
            self.progress.setRange(0, 0)
            self.progress.setFormat(text)

    def set_idle(self, can_run: bool = True) -> None:
        self.busy.hide()
        self.progress.hide()
        self.links.show()
        self.spam.show()
        self.cancel.hide()
        self.links.setEnabled(can_run)
        self.spam.setEnabled(can_run)


class _ClientRow(QTreeWidgetItem):
    """A row of the clients table sorted by its numbers (``SORT_ROLE``), "no data" last."""

    def __lt__(self, other: QTreeWidgetItem) -> bool:
        tree = self.treeWidget()
        column = tree.sortColumn() if tree is not None else 0
        mine, theirs = self.data(column, SORT_ROLE), other.data(column, SORT_ROLE)
        if mine is None or theirs is None:
            if mine is None and theirs is None:
                return self.text(0).lower() < other.text(0).lower()
            ascending = tree is None or tree.header().sortIndicatorOrder() \
                == Qt.SortOrder.AscendingOrder
            return (mine is not None) == ascending  # no data: last either way
        if mine == theirs:
            return self.text(0).lower() < other.text(0).lower()
        return mine < theirs


class LinksDialog(QDialog):
    """Before the link check visits anything: how many links, which look single-use (they
    are skipped unless "also visit single-use links" is ticked)."""

    def __init__(self, parent: QWidget | None, links: list[Any]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Check links")
        single = [link for link in links if getattr(link, "single_use", False)]
        n = len(links)
        text = QLabel(
            f"Visit the message's {n} link{'s' if n != 1 else ''} and image{'s' if n != 1 else ''}"
            " on the network? Each is asked for with HEAD (GET where HEAD is refused), "
            "redirects are followed, and nothing but http and https is visited.")
        text.setWordWrap(True)
        box = QVBoxLayout(self)
        box.addWidget(text)
        self.single = QTreeWidget()
        named(self.single, "Single-use links")
        self.single.setHeaderLabels(["Looks single-use", "Why"])
        self.single.setRootIsDecorated(False)
        self.single.setColumnWidth(0, 360)
        for link in single:
            self.single.addTopLevelItem(QTreeWidgetItem([str(getattr(link, "url", "")),
                                                         str(getattr(link, "reason", ""))]))
        self.also = QCheckBox("Also visit single-use links (an unsubscribe or a confirmation "
                              "link may act on the visit)")
        named(self.also, "Also visit single-use links")
        if single:
            note = QLabel(f"{len(single)} of them look single-use and will be skipped:")
            note.setWordWrap(True)
            box.addWidget(note)
            box.addWidget(self.single, 1)
            box.addWidget(self.also)
        else:
            self.single.hide()
            self.also.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Visit the links")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box.addWidget(buttons)
        self.resize(620, 360 if single else 140)


class ChecksDialog(QDialog):
    """The composer's checks, in a window of their own that stays open while you fix."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Checks of the draft")
        self.setModal(False)
        # a tool window: it stays above the composer without blocking it
        self.setWindowFlag(Qt.WindowType.Tool, True)
        self.panel = ChecksPanel(self, name="Draft checks")
        # a draft's signature is checked with the profile's own key: no keys to paste here
        self.panel.keys.hide()
        self.panel.keys_hint = False
        self.recheck = QPushButton("Check again")
        named(self.recheck, "Check the draft again")
        self.recheck.setToolTip("Run the local checks again on the draft as it is now")
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.panel, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.recheck)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addWidget(close)
        box.addLayout(row)
        self.resize(760, 560)


class DkimKeysDialog(QDialog):
    """The public keys DKIM verification uses (one a line: the DNS name, then the TXT
    record, as a DNS panel shows them), and whether to look keys up in DNS."""

    def __init__(self, parent: QWidget | None, keys_text: str, dns: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle("DKIM keys")
        intro = QLabel("Keys for domains that are not published yet, one a line: the DNS "
                       "name and its TXT record, e.g.<br><tt>mail._domainkey.example.com "
                       "v=DKIM1; k=rsa; p=MIIBIj\u2026</tt><br>Public keys only: they are kept "
                       "in the settings file.")
        intro.setWordWrap(True)
        self.text = QPlainTextEdit(keys_text)
        named(self.text, "Pasted DKIM keys")
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.dns = QCheckBox("Look up DKIM keys in DNS (the network) when none is pasted")
        named(self.dns, "Look up DKIM keys in DNS")
        self.dns.setChecked(dns)
        self.problems = QLabel()  # which lines are not keys (OK then stays here)
        named(self.problems, "DKIM key problems")
        self.problems.setWordWrap(True)
        self.problems.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problems.setStyleSheet(f"QLabel {{ color: {style.BANNERS['error'].text}; }}")
        self.problems.hide()
        self.keys: dict[str, str] = {}
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(intro)
        box.addWidget(self.text, 1)
        box.addWidget(self.problems)
        box.addWidget(self.dns)
        box.addWidget(buttons)
        self.resize(640, 360)

    def accept(self) -> None:
        """OK only when every line is a key; else the dialog says which lines are not."""
        from mailgui.model.checks import check_key_lines

        keys, problems = check_key_lines(self.text.toPlainText())
        if problems:
            shown = problems[:8] + ([f"\u2026 and {len(problems) - 8} more."]
                                    if len(problems) > 8 else [])
            self.problems.setText("\n".join(shown))
            self.problems.show()
            return
        self.keys = keys
        self.problems.hide()
        super().accept()
