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
