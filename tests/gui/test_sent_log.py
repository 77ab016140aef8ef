"""The Sent pane and the Sent log: a big log lists the newest sends; the log keeps
a tail and rotates.

Real parts: a real log file of 6,000 sends, a real send through the dummy backend.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mailgui.model.paths import AppPaths
from mailgui.model.sentlog import SentEntry, SentLog
from tests.support.gui import fill, send


def test_a_big_sent_log_lists_the_newest_sends(make_gui, qtbot, paths: AppPaths) -> None:  # noqa: ANN001
    paths.sent_log_file.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(asdict(SentEntry(
        profile="Local test inbox", subject=f"Load test {i}", recipients=["bob@example.com"],
        message_id=f"<{i}@x>", result="sent", detail="250 OK", size=5000, time=1.0 + i,
        transcript=[f"C: line {k}" for k in range(30)]))) for i in range(6000)]
    paths.sent_log_file.write_text("\n".join(lines) + "\n")
    gui = make_gui(start_inbox=False)
    view = gui.window.sent
    qtbot.waitUntil(lambda: view.list.topLevelItemCount() == 2000, timeout=10000)
    assert view.list.topLevelItem(0).text(2) == "Load test 5999"
    assert view.list.topLevelItem(1999).text(2) == "Load test 4000"
    assert view.note.isVisibleTo(view)
    assert "newest 2,000 of 6,000 sends" in view.note.text()
    assert str(paths.sent_log_file) in view.note.text()
    view.list.setCurrentItem(view.list.topLevelItem(0))
    assert "C: line 29" in view.detail.toPlainText()
    gui.window.target.setCurrentIndex(gui.window.target.findData("builtin-dummy"))
    fill(gui, subject="One more")
    assert send(gui, qtbot).ok
    assert view.list.topLevelItemCount() == 2000
    assert view.list.topLevelItem(0).text(2) == "One more"
    assert view.list.topLevelItem(1999).text(2) == "Load test 4001"
    assert "newest 2,000 of 6,001 sends" in view.note.text()


def test_sent_log_tail_and_rotation(tmp_path: Path) -> None:
    log = SentLog(tmp_path / "sent.jsonl")
    assert log.tail(10) == ([], 0)
    for i in range(5):
        log.append(SentEntry("P", f"s{i}", ["b@example.com"], f"<{i}@x>", "sent"))
    with log.path.open("a") as f:
        f.write("{damaged\n")
    entries, total = log.tail(3)
    assert [e.subject for e in entries] == ["s3", "s4"] and total == 6
    log.MAX_BYTES = log.path.stat().st_size + 10  # the next entry does not fit
    log.append(SentEntry("P", "after", ["b@example.com"], "<a@x>", "sent"))
    assert [e.subject for e in log.entries()] == ["after"]
    assert [e.subject for e in SentLog(log.rotated_path).entries()] == [
        f"s{i}" for i in range(5)]

