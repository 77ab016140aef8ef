"""The small shared view parts: ``BlockSignals``, the colours of ``views/style.py`` as the
banner and the result lines show them, the "Send via" tooltips by their named role."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QComboBox

from mailgui.views import style
from mailgui.views.common import BlockSignals, MessageBanner, Role
from mailgui.views.panes import TranscriptView


def test_block_signals_gives_each_object_back_its_state(qtbot) -> None:  # noqa: ANN001
    a, b = QComboBox(), QComboBox()
    qtbot.addWidget(a)
    qtbot.addWidget(b)
    a.addItems(["one", "two"])
    seen: list[int] = []
    a.currentIndexChanged.connect(seen.append)
    b.blockSignals(True)  # already blocked by someone else: stays so
    with pytest.raises(RuntimeError), BlockSignals(a, b):
        assert a.signalsBlocked() and b.signalsBlocked()
        a.setCurrentIndex(1)
        raise RuntimeError("the block failed")
    assert seen == [] and not a.signalsBlocked() and b.signalsBlocked()
    a.setCurrentIndex(0)
    assert seen == [0]


def test_the_banner_and_result_lines_take_their_colours_from_the_style(qtbot) -> None:  # noqa: ANN001
    banner = MessageBanner()
    qtbot.addWidget(banner)
    for severity, colours in style.BANNERS.items():
        banner.show_message(severity, "text", "detail", detail_label="Details")
        sheet = banner.styleSheet()
        assert colours.background in sheet and colours.text in sheet and colours.border in sheet
        assert banner.detail_button.text() == "Details"
    pane = TranscriptView()
    qtbot.addWidget(pane)
    pane.show_result("\u2714 sent", True)
    assert style.OK in pane.result.styleSheet()
    pane.show_result("\u2716 not sent", False)
    assert style.ERROR in pane.result.styleSheet()
    pane.start("Sending via Relay\u2026")
    assert pane.result.styleSheet() == "" and pane.text.toPlainText() == ""


def test_send_via_entries_carry_their_id_and_where_they_send(make_gui) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    combo = gui.window.target
    index = combo.findData("builtin-file", Role.PROFILE_ID)
    assert index >= 0 and combo.itemText(index) == "Files"
    assert combo.itemData(index, Role.TOOLTIP) == f"files in {gui.paths.file_backend_dir}"


def test_count_badge_repaints_alone_and_resizes_only_with_its_digits(qtbot) -> None:  # noqa: ANN001
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtGui import QColor
    from PySide6.QtWidgets import QLabel, QTabWidget

    from mailgui.views.main_window import CountBadge

    tabs = QTabWidget()
    qtbot.addWidget(tabs)
    tabs.addTab(QLabel("pane"), "Inbox")
    tabs.addTab(QLabel("other"), "Source")
    badge = CountBadge()
    tabs.tabBar().setTabButton(0, tabs.tabBar().ButtonPosition.RightSide, badge)
    tabs.show()
    qtbot.waitExposed(tabs)
    assert badge.text() == ""  # nothing shown at 0, in the room of one digit
    one_digit = badge.width()
    assert one_digit > 0
    empty = badge.grab().toImage()
    highlight = badge.palette().color(badge.palette().ColorRole.Highlight)
    assert all(QColor(empty.pixel(x, empty.height() // 2)) != highlight
               for x in range(empty.width()))

    requests: list[QObject] = []

    class Watch(QObject):
        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
            if event.type() == QEvent.Type.LayoutRequest:
                requests.append(obj)
            return False

    watch = Watch()
    tabs.tabBar().installEventFilter(watch)
    tabs.installEventFilter(watch)

    qtbot.wait(20)
    requests.clear()
    # 0 -> 1 digit (the first unread message) and on to 9: the pill alone is repainted
    for n in (7, *range(1, 10), 0, 3):
        assert not badge.set_count(n)
        qtbot.wait(5)
    assert badge.width() == one_digit and badge.text() == "3" and requests == []
    assert badge.set_count(1234)  # (True: the tab must make room; MainWindow.show_unread does)
    tabs.tabBar().setTabText(0, "Inbox")
    assert badge.text() == "1,234" and badge.width() > one_digit
    qtbot.waitUntil(lambda: bool(requests))

    pixels = badge.grab().toImage()
    centre_row = [QColor(pixels.pixel(x, pixels.height() // 2)) for x in range(pixels.width())]
    assert any(c == highlight for c in centre_row)  # the pill is drawn
