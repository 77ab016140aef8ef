"""Work that must not run on the GUI thread, as QRunnable jobs on a QThreadPool.

The pattern is git-cola's ``qtutils.Task``: a ``QRunnable`` carries a ``QObject`` of signals that
is created on the GUI thread, so signals emitted from the worker are delivered to GUI-thread
slots through queued connections. ``JobRunner`` keeps each task alive until its result has been
delivered.

Every job has an error path, as in Anki's ``QueryOp``: a caller that gives none gets
``JobRunner``'s default, which turns the exception into a sentence on ``JobRunner.error`` (the
main window shows it in the status bar). File writes go to a lane of their own
(``JobRunner.write``): one at a time, in order, never queued behind a send or a keyring call
that hangs, so the draft saved at quit is written however busy the pool is.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from mailgui.model.draft import Draft
from mailgui.model.profiles import Profile
from mailgui.model.secrets import SecretStore
from mailgui.model.sending import Canceller, check_connection, send_draft
from mailgui.model.sentlog import SentLog
from mailgui.model.source import SourceFolder, preview

__all__ = [
    "AttachmentInfo",
    "JobRunner",
    "SendJob",
    "Task",
    "TaskSignals",
    "attachment_info",
    "failure_sentence",
]


class TaskSignals(QObject):
    finished = Signal(object)  # the function's return value
    failed = Signal(object)  # the exception it raised
    # phase, done, total: Python ints (a C++ int would overflow for messages over 2 GiB)
    progress = Signal(str, object, object)
    transcript = Signal(str, str)  # event, text (SMTP conversation)
    console = Signal(str)  # console backend output
    done = Signal()  # after finished/failed, always

    def has_error_path(self) -> bool:
        """True when something is connected to ``failed``."""
        meta = self.metaObject()
        return self.isSignalConnected(meta.method(meta.indexOfSignal("failed(PyObject)")))


class Task(QRunnable):
    """Run ``fn(*args, **kwargs)`` on the pool; result by ``signals.finished``/``failed``.
    ``what`` says what it does, for the default error path ("save the draft")."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        super().__init__()
        # The pool deletes the C++ runnable when run() has returned (never before: deleting
        # it from the GUI thread while the worker is still returning would be a crash).
        self.setAutoDelete(True)
        self.signals = TaskSignals()
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.name = getattr(fn, "__name__", "task")
        self.what = ""

    def run(self) -> None:
        try:
            result = self.fn(*self.args, **self.kwargs)
        except Exception as exc:  # noqa: BLE001 - delivered to the GUI thread
            self.signals.failed.emit(exc)
        else:
            self.signals.finished.emit(result)
        finally:
            self.signals.done.emit()


def _why(exc: BaseException) -> str:
    """What went wrong, as the end of a sentence (never a traceback)."""
    if isinstance(exc, OSError) and exc.strerror:
        # a rename names the file it moves (a temp file) first, and where it goes second
        where = exc.filename2 if exc.filename2 is not None else exc.filename
        where = "" if where is None else where
        text = exc.strerror[:1].lower() + exc.strerror[1:]
        return f"{text} ({where})" if where else text
    from mailgui.model.errors import describe_error

    return describe_error(exc).sentence.rstrip(".")


def failure_sentence(what: str, exc: BaseException) -> str:
    """The default error path's sentence: "Could not save the draft: disk full (PATH)."."""
    return f"Could not {what or 'finish a background job'}: {_why(exc)}."


class JobRunner(QObject):
    """A thread pool plus the set of tasks in flight (so none is collected too early), and a
    one-thread lane for file writes. A task started with no error path of its own gets the
    default one: ``error`` carries the sentence."""

    error = Signal(str)  # the default error path: a sentence for the status bar

    def __init__(self, parent: QObject | None = None, max_threads: int = 4) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.files = QThreadPool(self)  # writes: one at a time, in the order asked
        self.files.setMaxThreadCount(1)
        self._tasks: set[TaskSignals] = set()

    def start(self, task: Task, *, pool: QThreadPool | None = None) -> Task:
        # The signals object lives on the GUI thread and is kept here until its last signal
        # has been delivered; the runnable itself belongs to the pool.
        signals = task.signals
        if not signals.has_error_path():
            what = task.what or f"finish a background job ({task.name.strip('_')})"
            signals.failed.connect(lambda exc, w=what: self._default_error(w, exc))
        self._tasks.add(signals)
        signals.done.connect(lambda s=signals: QTimer.singleShot(0, lambda: self._tasks.discard(s)))
        (pool or self.pool).start(task)
        return task

    def run(self, fn: Callable[..., Any], *args: Any,
            on_done: Callable[[Any], None] | None = None,
            on_error: Callable[[BaseException], None] | None = None, what: str = "",
            **kwargs: Any) -> Task:
        """Run ``fn(*args, **kwargs)`` on the pool. Without ``on_error``, a failure reaches
        the status bar as "Could not <what>: <why>."."""
        return self._run(self.pool, fn, args, kwargs, on_done, on_error, what)

    def write(self, fn: Callable[..., Any], *args: Any,
              on_done: Callable[[Any], None] | None = None,
              on_error: Callable[[BaseException], None] | None = None, what: str = "",
              **kwargs: Any) -> Task:
        """As ``run``, on the file-write lane (one write at a time, in order)."""
        return self._run(self.files, fn, args, kwargs, on_done, on_error, what)

    def _run(self, pool: QThreadPool, fn: Callable[..., Any], args: tuple, kwargs: dict,
             on_done: Callable[[Any], None] | None,
             on_error: Callable[[BaseException], None] | None, what: str) -> Task:
        task = Task(fn, *args, **kwargs)
        task.what = what
        if on_done is not None:
            task.signals.finished.connect(self._while_alive(on_done))
        if on_error is not None:
            task.signals.failed.connect(self._while_alive(on_error))
        return self.start(task, pool=pool)

    def _while_alive(self, callback: Callable[[Any], None]) -> Callable[[Any], None]:
        """``callback``, dropped once this runner (and the window it works for) is gone: a
        job may finish after the window closed, and its answer has nobody to go to."""
        def deliver(value: Any) -> None:
            if shiboken6.isValid(self):
                callback(value)
        return deliver

    def _default_error(self, what: str, exc: BaseException) -> None:
        self.error.emit(failure_sentence(what, exc))

    @property
    def busy(self) -> int:
        return len(self._tasks)

    def wait(self, msecs: int = 5000) -> bool:
        """Wait for the pool's jobs (not for the writes: ``wait_writes``)."""
        return self.pool.waitForDone(msecs)

    def wait_writes(self, msecs: int = 10000) -> bool:
        return self.files.waitForDone(msecs)


class SendJob(Task):
    """Send a draft (a snapshot copy) through a profile; cancellable from the GUI thread."""

    def __init__(self, draft: Draft, profile: Profile, *, password: str | None,
                 secrets: SecretStore | None, sent_log: SentLog | None) -> None:
        self.canceller = Canceller()
        self.draft = draft  # the snapshot being sent, and the profile it goes through:
        self.profile = profile  # a retry (with a password) uses these, never the window's
        super().__init__(self._send, draft, profile, password, secrets, sent_log)

    def _send(self, draft: Draft, profile: Profile, password: str | None,
              secrets: SecretStore | None, sent_log: SentLog | None) -> Any:
        signals = self.signals
        folder = SourceFolder(max_lines=5000)
        outcome = send_draft(
            draft, profile, password=password, secrets=secrets, canceller=self.canceller,
            transcript=signals.transcript.emit, progress=signals.progress.emit,
            console=(lambda text: folder.feed(text.encode("utf-8", "surrogateescape")))
            if profile.kind == "console" else None,
            sent_log=sent_log,
        )
        if profile.kind == "console":
            outcome.console_text = folder.text()
        return outcome

    def cancel(self) -> None:
        self.canceller.cancel()


class TestConnectionJob(Task):
    def __init__(self, profile: Profile, *, password: str | None,
                 secrets: SecretStore | None) -> None:
        self.canceller = Canceller()
        self.profile = profile  # the profile as the form showed it when Test was pressed
        super().__init__(self._test, profile, password, secrets)

    def _test(self, profile: Profile, password: str | None, secrets: SecretStore | None) -> Any:
        return check_connection(profile, password=password, secrets=secrets,
                               canceller=self.canceller, transcript=self.signals.transcript.emit)

    def cancel(self) -> None:
        self.canceller.cancel()


@dataclass(frozen=True)
class AttachmentInfo:
    path: str
    size: int
    mimetype: str
    problem: str = ""  # "" when the file can be read


def attachment_info(paths: list[str], mimetypes_given: dict[str, str] | None = None
                    ) -> list[AttachmentInfo]:
    """Size, MIME type and readability of each file (opens it; worker side)."""
    out = []
    for path in paths:
        given = (mimetypes_given or {}).get(path, "")
        mimetype = given or mimetypes.guess_type(Path(path).name)[0] or "application/octet-stream"
        try:
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                out.append(AttachmentInfo(path, 0, mimetype, "is a folder, not a file"))
                continue
            if not stat.S_ISREG(st.st_mode):  # opening a pipe would wait for a writer forever
                out.append(AttachmentInfo(path, 0, mimetype,
                                          "is not a regular file (a pipe, device or socket)"))
                continue
            with open(path, "rb") as f:
                f.read(1)
            out.append(AttachmentInfo(path, st.st_size, mimetype))
        except FileNotFoundError:
            out.append(AttachmentInfo(path, 0, mimetype, "missing (moved or deleted?)"))
        except PermissionError:
            out.append(AttachmentInfo(path, 0, mimetype, "can't be read (permission denied)"))
        except OSError as exc:
            out.append(AttachmentInfo(path, 0, mimetype, f"can't be read ({exc.strerror})"))
    return out


def preview_job(generation: int, draft: Draft, profile: Profile | None, fold: bool) -> Any:
    """(generation, Preview or the exception as text) — the preview never raises."""
    from mailgui.model.errors import describe_error
    from mailgui.model.source import Preview

    try:
        return generation, preview(draft, profile, fold=fold)
    except Exception as exc:  # noqa: BLE001 - shown in the pane
        return generation, Preview("", 0, None, 0, describe_error(exc, profile).sentence)


def fetch_images(urls: list[str], timeout: float = 10.0, max_bytes: int = 5 * 1024 * 1024
                 ) -> dict[str, bytes]:
    """Download remote images for the HTML preview (only when the person asked for it)."""
    import urllib.request

    out: dict[str, bytes] = {}
    for url in urls:
        if not url.lower().startswith(("http://", "https://")):
            continue
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "mailgui"})  # noqa: S310
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                data = response.read(max_bytes + 1)
            if len(data) <= max_bytes:
                out[url] = data
        except (OSError, ValueError):
            continue
    return out
