"""The worker pool: every job has an error path (the default one says what failed in the
status bar), file writes go one at a time in order on a lane of their own that a stuck job
can't block, and progress carries sizes over 2 GiB.

Real parts: real threads of a real QThreadPool, real files in tmp_path.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from mailgui.jobs import JobRunner, Task, failure_sentence


def _fail_with_enospc(path: str) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def _boom() -> None:
    raise RuntimeError("boom")


def test_a_job_without_an_error_path_says_what_failed(qapp, qtbot) -> None:  # noqa: ANN001
    runner = JobRunner()
    said: list[str] = []
    runner.error.connect(said.append)
    with qtbot.waitSignal(runner.error, timeout=10000):
        runner.run(_fail_with_enospc, "/data/report.pdf", what="save the report")
    assert said == ["Could not save the report: no space left on device (/data/report.pdf)."]
    # a job that names nothing is still said, by the function's name; a bug is not a traceback
    with qtbot.waitSignal(runner.error, timeout=10000):
        runner.write(_boom)
    assert said[1] == ("Could not finish a background job (boom): Unexpected error: "
                       "RuntimeError: boom.")
    assert runner.wait(5000) and runner.wait_writes(5000)


def test_a_job_with_its_own_error_path_gets_no_default(qapp, qtbot) -> None:  # noqa: ANN001
    runner = JobRunner()
    said: list[str] = []
    runner.error.connect(said.append)
    own: list[BaseException] = []
    runner.run(_boom, on_error=own.append)
    qtbot.waitUntil(lambda: runner.busy == 0, timeout=10000)  # every result delivered
    assert [str(e) for e in own] == ["boom"] and said == []
    # a task made by hand with ``failed`` connected before start (a send job) neither
    task = Task(_boom)
    task.signals.failed.connect(own.append)
    with qtbot.waitSignal(task.signals.done, timeout=10000):
        runner.start(task)
    assert len(own) == 2 and said == []
    # and what succeeds says nothing
    results: list[object] = []
    runner.run(lambda: 42, on_done=results.append)
    qtbot.waitUntil(lambda: runner.busy == 0, timeout=10000)
    assert results == [42] and said == []


def test_writes_go_one_at_a_time_in_order_and_a_stuck_job_does_not_hold_them(  # noqa: ANN001
        qapp, qtbot, tmp_path: Path) -> None:
    runner = JobRunner(max_threads=1)  # one worker, and it will be stuck
    stuck = threading.Event()
    runner.run(stuck.wait, 30)  # a keyring call that hangs, say
    gate = threading.Event()
    order: list[str] = []
    target = tmp_path / "state.txt"

    def write(text: str, hold: threading.Event | None = None) -> str:
        order.append(f"start {text}")
        if hold is not None:
            hold.wait(30)
        target.write_text(text)
        order.append(f"end {text}")
        return text

    first = runner.write(write, "first", gate)
    second = runner.write(write, "second")
    qtbot.waitUntil(lambda: order == ["start first"], timeout=10000)
    assert runner.busy == 3  # the stuck job, and the two writes, one running, one waiting
    with qtbot.waitSignal(second.signals.finished, timeout=10000) as got:
        gate.set()
    assert got.args == ["second"]
    assert order == ["start first", "end first", "start second", "end second"]
    assert target.read_text() == "second"
    assert first is not second and not runner.wait(0)  # the stuck job is still there
    stuck.set()
    assert runner.wait(10000)


def test_the_default_error_path_reaches_the_status_bar(make_gui, qtbot) -> None:  # noqa: ANN001
    gui = make_gui(start_inbox=False)
    status = gui.window.statusBar()
    gui.controller.runner.run(_fail_with_enospc, "/data/x.eml", what="save the message")
    qtbot.waitUntil(lambda: status.currentMessage() == failure_sentence(
        "save the message", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/x.eml")))
    assert status.currentMessage() == (
        "Could not save the message: no space left on device (/data/x.eml).")


def test_progress_carries_sizes_over_2_gib(qapp, qtbot) -> None:  # noqa: ANN001
    runner = JobRunner()
    done, total = 3 * 2**30 + 5, 5 * 2**30 + 7
    holder: dict[str, Task] = {}

    def work() -> bool:  # on the worker, like a send job's progress callback
        holder["task"].signals.progress.emit("sending", done, total)
        return True

    task = Task(work)
    holder["task"] = task
    with qtbot.waitSignal(task.signals.progress, timeout=10000) as got:
        runner.start(task)
    assert got.args == ["sending", done, total]
    runner.wait(5000)
