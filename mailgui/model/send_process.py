"""The sender process: the heavy part of a send (build the message, encode and write it to the
server or the file) in a child process, so that no encoding holds the GUI process's GIL.

Why a process: base64 and the serialiser run in C and Python while holding the GIL; on a
worker *thread* of the GUI process they take the GUI thread's turn for several milliseconds
at a time (measured: 18-46 ms gaps between frames while 100 MB went out, against 14 ms idle).
In a process of their own they cost the GUI thread nothing.

The parent side is ``transmit(send, password)``, called on the send job's worker thread
(``sending.send_draft``) once the keyring has been read there: the request (the draft
snapshot, the profile, the password, the DKIM signer) goes to the child over its stdin pipe,
never in argv, the environment or a file. Back come, over a private copy of its stdout,
transcript lines, progress, requests for an OAuth2 access token (answered on the worker by the
profile's ``TokenSource``, which refreshes and stores rotated tokens in the parent) and the
outcome: the same fields, sentence and ``ErrorInfo`` the in-process send makes, because the
child runs the very same steps (``sending.transmit_here``) and classifies what they raised
itself (``sending._failed``).

Cancel: ``Canceller.cancel()`` on the GUI thread writes a few bytes ("cancel", never blocks
in practice: the child's reader thread drains its pipe), and the child aborts the socket as
the in-process send does. If the child has not answered ``KILL_AFTER`` seconds later it is
killed. A child that dies mid-send (killed, crashed) raises ``SenderGone`` here: a clear
error, nothing half-delivered is reported as sent, and the draft is untouched.

One child serves one send at a time and is kept for the next (``IDLE_KEEP`` idle at most); it
is started on the first send, or earlier with ``warm()`` (the send controller calls it once
the window is up). Its start costs an interpreter and the imports of mailcore and the model:
``stats()`` says how long each took. The child ends when its stdin closes (the app exits or
dies).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any

__all__ = ["KILL_AFTER", "RUN_SENDER_OPTION", "SenderGone", "SenderProcess", "busy_pids",
           "command", "serve", "shutdown", "stats", "transmit", "warm"]

KILL_AFTER = 1.0  # seconds a cancelled child may take to answer before it is killed
# The child's CPU priority below the app's: on a busy machine (two cores, the child encoding
# on one, the server or the inbox on the other) the GUI thread gets a core the moment it
# wakes, instead of waiting for the child's time slice. On an idle machine it changes nothing.
SENDER_NICE = 10
IDLE_KEEP = 1  # children kept for the next send
_HEADER = struct.Struct(">I")


class SenderGone(RuntimeError):
    """The sender process ended (killed, crashed) before it reported the outcome."""


class RemoteException(Exception):
    """Stands in for an exception of the child that can't be sent back as itself (its
    ``str()`` kept for the detail line; the sentence was made in the child)."""


# -- framing: 4-byte length, then a pickle ---------------------------------------------------------


def _write(fd: int, obj: Any, lock: threading.Lock) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    frame = _HEADER.pack(len(data)) + data
    with lock:
        view = memoryview(frame)
        while view:
            view = view[os.write(fd, view):]


def _read_exact(fd: int, n: int) -> bytes | None:
    parts, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read(fd: int) -> Any:
    """The next object, or None at the end of the pipe."""
    head = _read_exact(fd, _HEADER.size)
    if head is None:
        return None
    data = _read_exact(fd, _HEADER.unpack(head)[0])
    if data is None:
        return None
    return pickle.loads(data)  # noqa: S301 - our own child, started from our own code


# -- the parent side -------------------------------------------------------------------------------


_STATS: list[dict[str, float]] = []  # per child started: spawn and ready seconds
_POOL_LOCK = threading.Lock()
_IDLE: list[SenderProcess] = []
_BUSY: set[SenderProcess] = set()


RUN_SENDER_OPTION = "--run-sender"  # mailgui's hidden option: the frozen app's way in


def command() -> list[str]:
    """How to start the child. In a frozen app (PyInstaller) ``sys.executable`` is mailgui
    itself, which serves as the sender when given RUN_SENDER_OPTION (``serve()``)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, RUN_SENDER_OPTION]
    return [sys.executable, "-m", "mailgui.model.send_process"]


def _child_env() -> dict[str, str]:
    """The app's environment (which holds no secret: those come over the pipe) with this very
    mailgui importable, also from a source tree that is not installed."""
    env = dict(os.environ)
    if not getattr(sys, "frozen", False):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


class SenderProcess:
    """One child process and its two pipes. Not thread-safe for two sends at once (the pool
    hands each to one send)."""

    def __init__(self) -> None:
        t0 = time.monotonic()
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True, env=_child_env(),
            start_new_session=True,  # Ctrl+C in a terminal is the app's to handle
        )
        self.pid = self.proc.pid
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        self._lock = threading.Lock()
        self.seq = 0
        self.ready = False
        self.broken = False
        self.stats = {"spawn_s": time.monotonic() - t0, "ready_s": 0.0, "started": t0}
        if not _STATS:
            atexit.register(shutdown)
        _STATS.append(self.stats)

    @property
    def alive(self) -> bool:
        return not self.broken and self.proc.poll() is None

    def post(self, obj: Any) -> None:
        try:
            _write(self._in, obj, self._lock)
        except OSError as exc:
            self.broken = True
            raise SenderGone(self._why_gone()) from exc

    def receive(self, timeout: float) -> tuple[bool, Any]:
        """(True, object) or (False, None) when nothing came within ``timeout``; raises
        SenderGone at the end of the pipe."""
        readable, _, _ = select.select([self._out], [], [], timeout)
        if not readable:
            return False, None
        try:
            obj = _read(self._out)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            self.broken = True
            raise SenderGone(self._why_gone()) from exc
        if obj is None:
            self.broken = True
            raise SenderGone(self._why_gone())
        if obj[0] == "ready":
            self.ready = True
            self.stats["ready_s"] = time.monotonic() - self.stats["started"]
            return self.receive(timeout)
        return True, obj

    def _why_gone(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            how = f"was stopped by {name}"
        else:
            how = f"ended with exit status {code}"
        return (f"The sending process {how} before the server confirmed the message, so it "
                "was not sent. Your draft is unchanged: send it again.")

    def kill(self) -> None:
        self.broken = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def close(self) -> None:
        """End the child: it exits when its stdin closes."""
        self.broken = True
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            self.proc.stdout.close()


def _acquire() -> SenderProcess:
    with _POOL_LOCK:
        while _IDLE:
            child = _IDLE.pop()
            if child.alive:
                _BUSY.add(child)
                return child
            child.close()
    child = SenderProcess()
    with _POOL_LOCK:
        _BUSY.add(child)
    return child


def _release(child: SenderProcess) -> None:
    with _POOL_LOCK:
        _BUSY.discard(child)
    if child.alive:
        with _POOL_LOCK:
            if len(_IDLE) < IDLE_KEEP:
                _IDLE.append(child)
                return
    child.close()


def warm() -> None:
    """Start a child now (no send waiting for its start), unless one is idle."""
    with _POOL_LOCK:
        if any(child.alive for child in _IDLE):
            return
    _release(SenderProcess())


def shutdown() -> None:
    """End the idle children (at exit; a busy one ends with its send)."""
    with _POOL_LOCK:
        idle, _IDLE[:] = list(_IDLE), []
    for child in idle:
        child.close()


def busy_pids() -> list[int]:
    """The process ids of the children sending now."""
    with _POOL_LOCK:
        return [child.pid for child in _BUSY]


def idle_pids() -> list[int]:
    """The process ids of the children waiting for a send."""
    with _POOL_LOCK:
        return [child.pid for child in _IDLE]


def stats() -> list[dict[str, float]]:
    """Per child started in this process: ``spawn_s`` (Popen) and ``ready_s`` (until it had
    imported what it needs; 0 if not seen yet)."""
    return [dict(s) for s in _STATS]


class _Remote:
    """What the parent's ``Canceller`` aborts: tells the child to cancel (never blocks for
    long: a few bytes into a pipe that the child's reader thread drains)."""

    def __init__(self, child: SenderProcess, seq: int) -> None:
        self.child = child
        self.seq = seq
        self.cancelled_at: float | None = None

    def abort(self) -> None:
        if self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
        with contextlib.suppress(SenderGone):
            self.child.post(("cancel", self.seq))


OUTCOME_FIELDS = ("ok", "recipients", "date", "message_id", "size", "sentence", "reply",
                  "error", "refused", "cancelled", "written_file")


def transmit(send: Any, password: str) -> None:
    """Run ``sending.transmit_here(send, password)`` in a child and copy what it reports into
    ``send`` (the outcome, the transcript and progress through ``send.note``/``send.tell``,
    access tokens from ``send.token``). The child classified a failure itself: the outcome then
    carries its ``ErrorInfo``. Raises ``SenderGone`` if the child died, ``Cancelled`` if it was
    killed after a cancel. A child that dies before it said anything of this send (an idle
    one killed meanwhile: nothing was sent) is replaced once, without an error."""
    request = {"seq": 0, "draft": send.draft, "profile": send.profile, "password": password,
               "dkim": send.dkim, "oauth": send.token is not None}
    for attempt in (1, 2):
        send.canceller.check()
        try:
            _transmit_once(send, request)
            return
        except _Unheard as gone:
            if attempt == 2:
                raise SenderGone(str(gone)) from None


class _Unheard(SenderGone):
    """The child died before it reported anything of the send."""


def _transmit_once(send: Any, request: dict) -> None:
    from mailgui.model.errors import Cancelled

    canceller = send.canceller
    child = _acquire()
    heard = False
    done = False
    remote = _Remote(child, 0)
    try:
        _post_request(child, request)
        remote.seq = child.seq
        canceller.attach(remote)
        while True:
            if remote.cancelled_at is not None and (
                    time.monotonic() - remote.cancelled_at > KILL_AFTER):
                child.kill()  # it did not answer the cancel: stop it
                raise Cancelled("cancelled")
            got, message = child.receive(0.1)
            if not got:
                continue
            heard = True
            kind = message[0]
            if kind == "note":
                send.note(message[1], message[2])
            elif kind == "tell":
                send.tell(message[1], message[2], message[3])
            elif kind == "token":
                _answer_token(child, send, remote.seq, invalidate=message[1])
            elif kind == "done":
                for name, value in message[1].items():
                    if name in OUTCOME_FIELDS:
                        setattr(send.outcome, name, value)
                done = True
                return
    except SenderGone as gone:
        if canceller.cancelled:
            raise Cancelled("cancelled") from None
        if not heard:
            raise _Unheard(str(gone)) from None
        raise
    finally:
        if done:
            _release(child)
        else:
            _drop(child)


def _post_request(child: SenderProcess, request: dict) -> None:
    child.seq += 1
    request["seq"] = child.seq
    child.post(("send", request))


def _drop(child: SenderProcess) -> None:
    """A child that failed or was cancelled is not used again."""
    child.kill()
    with _POOL_LOCK:
        _BUSY.discard(child)
    with contextlib.suppress(Exception):
        child.close()


def _answer_token(child: SenderProcess, send: Any, seq: int, *, invalidate: bool) -> None:
    """An access token for the child, from the profile's TokenSource here (it refreshes it,
    and keeps a rotated refresh token in the keyring, on this worker)."""
    from mailgui.model.sending import noting_token

    source = send.token
    if invalidate:
        source.invalidate()
    try:
        value = noting_token(source, send.note)()
    except Exception as exc:  # noqa: BLE001 - raised in the child, where mailcore called it
        child.post(("token", seq, None, _portable(exc)))
    else:
        child.post(("token", seq, value, None))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling as itself, else a RemoteException with its words."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own object
    except Exception:  # noqa: BLE001
        return RemoteException(f"{type(exc).__name__}: {exc}")
    return exc


def _portable_error(info: Any) -> Any:
    """An ``ErrorInfo`` whose ``failure.exception`` can be sent back."""
    import dataclasses

    failure = getattr(info, "failure", None)
    if failure is None or getattr(failure, "exception", None) is None:
        return info
    exc = _portable(failure.exception)
    if exc is failure.exception:
        return info
    return dataclasses.replace(info, failure=dataclasses.replace(failure, exception=exc))


# -- the child side --------------------------------------------------------------------------------


class _ChildToken:
    """The child's stand-in for the profile's TokenSource: asks the parent."""

    def __init__(self, conn: _ChildConn, seq: int) -> None:
        self.conn = conn
        self.seq = seq
        self.refreshed = 0  # (the parent notes refreshes in the transcript itself)
        self._invalidate = False

    def invalidate(self) -> None:
        self._invalidate = True

    def __call__(self) -> str:
        self.conn.post(("token", self._invalidate))
        self._invalidate = False
        while True:
            try:
                _kind, seq, value, exc = self.conn.tokens.get(timeout=0.2)
            except queue.Empty:
                self.conn.canceller.check()
                continue
            if seq != self.seq:
                continue
            if exc is not None:
                raise exc
            return value


class _ChildConn:
    def __init__(self, out_fd: int) -> None:
        self.out_fd = out_fd
        self.lock = threading.Lock()
        self.requests: queue.Queue[Any] = queue.Queue()
        self.tokens: queue.Queue[Any] = queue.Queue()
        self.seq = 0
        self.canceller: Any = None
        self.cancel_lock = threading.Lock()

    def post(self, obj: Any) -> None:
        _write(self.out_fd, obj, self.lock)

    def reader(self) -> None:
        """Reads stdin for the life of the process: requests to the main thread, cancels to
        the current send's canceller, token answers to the waiting send."""
        while True:
            try:
                message = _read(0)
            except Exception:  # noqa: BLE001 - a broken pipe is the end
                message = None
            if message is None:
                with self.cancel_lock:
                    if self.canceller is not None:
                        self.canceller.cancel()
                self.requests.put(None)
                return
            kind = message[0]
            if kind == "send":
                self.requests.put(message[1])
            elif kind == "cancel":
                with self.cancel_lock:
                    if self.canceller is not None and message[1] == self.seq:
                        self.canceller.cancel()
            elif kind == "token":
                self.tokens.put(message)


def _lower_priority() -> None:
    """SENDER_NICE for this child, in the way the scheduler heeds. The child leads a session
    of its own (start_new_session), and on Linux with autogroup scheduling (the desktop
    default) each session is a group the scheduler shares the CPU between as equals: a nice
    value only ranks tasks within their group, so the child's own was ignored against the GUI
    thread. The group's nice (/proc/self/autogroup: this session holds the child alone) is
    what ranks it against the app. Raising it needs no privilege; the kernel rate-limits the
    write, so a refusal is let be (the child then runs at the app's priority, as before)."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(SENDER_NICE)
    if os.getsid(0) != os.getpid():
        return  # not a session of its own: the group's nice would lower the app's too
    with contextlib.suppress(OSError, ValueError), open("/proc/self/autogroup", "w") as f:
        f.write(str(SENDER_NICE))


def serve() -> int:
    """The child's main: serve sends until stdin closes (``mailgui --run-sender`` in a frozen
    app, ``python -m mailgui.model.send_process`` otherwise)."""
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        _serve()
    return 0


def _serve() -> None:
    t0 = time.monotonic()
    out_fd = os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the frames
    _lower_priority()
    from mailgui.model import sending

    conn = _ChildConn(out_fd)
    conn.post(("ready", time.monotonic() - t0))
    threading.Thread(target=conn.reader, name="sender-stdin", daemon=True).start()
    while True:
        request = conn.requests.get()
        if request is None:
            return
        seq = request["seq"]
        canceller = sending.Canceller()
        with conn.cancel_lock:
            conn.seq, conn.canceller = seq, canceller
        send = sending.child_send(
            request["draft"], request["profile"], canceller,
            note=lambda event, text: conn.post(("note", event, text)),
            tell=lambda phase, done=0, total=0: conn.post(("tell", phase, done, total)),
            dkim=request["dkim"],
            token=_ChildToken(conn, seq) if request["oauth"] else None,
        )
        sending.run_transmit(send, request["password"])
        outcome = send.outcome
        fields = {name: getattr(outcome, name) for name in OUTCOME_FIELDS}
        fields["error"] = _portable_error(outcome.error)
        with conn.cancel_lock:
            conn.canceller = None
        try:
            conn.post(("done", fields))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            fields["error"] = None
            fields["ok"] = False
            fields["sentence"] = f"The outcome of the send could not be reported ({exc})."
            conn.post(("done", fields))


if __name__ == "__main__":
    # the module's own names, not __main__'s: what is pickled back must be importable there
    from mailgui.model.send_process import serve as serve_here

    sys.exit(serve_here())
