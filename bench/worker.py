"""One measurement in a fresh process: ``python bench/worker.py '<json spec>'``.

The orchestrator (bench/run.py) starts one worker per measurement, so Django
and mailcore never share a process, an import cache or a heap. The worker
prints one line ``RESULT {json}`` on stdout.

Spec keys: ``kind`` (compose, mass, smtplib, large, verify, floor_mass, floor_large),
``impl`` (mailcore, django; not for smtplib/verify/floor_*), ``profile`` (after the timed
runs, one more run of the same work under cProfile, untimed: ``profile`` in the result says
where its time went)
and the kind's own parameters (see below).
Times come from ``time.perf_counter``; ``runs`` is the most repetitions,
``budget`` stops repeating once that many seconds were spent (at least one run).
Memory is ``ru_maxrss`` (the high-water mark of the resident set) after the
work minus the same figure taken after imports and a warm-up.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email
import gc
import hashlib
import io
import json
import resource
import shutil
import smtplib
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from time import perf_counter, perf_counter_ns
from typing import Any

import workloads

FILE_TRAILER = b"\n" + b"-" * 79 + b"\n"  # what the file backend writes after each message


def maxrss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def setup(impl: str, **values: Any) -> Any:
    """Configure and return the mail module of ``impl``."""
    values.setdefault("DEFAULT_FROM_EMAIL", workloads.FROM)
    if impl == "django":
        import django
        from django.conf import settings

        settings.configure(**values)
        django.setup()
        from django.core import mail

        return mail
    if impl == "mailcore":
        import mailcore

        mailcore.settings.configure(**values)
        return mailcore
    raise ValueError(impl)


def repeat(run: Callable[[], float], runs: int, budget: float) -> list[float]:
    times: list[float] = []
    for _ in range(max(1, runs)):
        times.append(run())
        if sum(times) >= budget:
            break
    return times


def profile_summary(work: Callable[[], Any], top: int = 4) -> tuple[list[str], list[str]]:
    """Run ``work`` once under cProfile (never timed) and say where its time went: the
    modules (``socket`` and the like for C functions) with the most time of their own,
    each with its share of the whole, then the single hottest functions."""
    import cProfile
    import os
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        work()
    finally:
        profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values()) or 1e-9
    by_module: dict[str, float] = {}
    functions: list[tuple[float, str]] = []
    for (filename, _line, function), entry in stats.items():
        if filename == "~":  # a C function: "<built-in method x>", "<method 'x' of 'y' objects>"
            name = function.strip("<>").replace("built-in method ", "").replace("method ", "")
            name = name.replace(" objects", "").replace("'", "")
            module = name
        else:
            module = os.path.basename(filename)
            name = f"{module}:{function}"
        by_module[module] = by_module.get(module, 0.0) + entry[2]
        functions.append((entry[2], name))
    modules = sorted(by_module.items(), key=lambda item: item[1], reverse=True)[:top]
    hottest = sorted(functions, reverse=True)[:3]
    return ([f"{m} {t / total:.0%}" for m, t in modules],
            [f"{name} {t / total:.0%}" for t, name in hottest])


class Discard(io.TextIOBase):
    """A text stream that throws away what is written (the console backend's stream)."""

    def write(self, text: str) -> int:
        return len(text)

    def writable(self) -> bool:
        return True


def file_backend(impl: str) -> str:
    if impl == "django":
        return "django.core.mail.backends.filebased.EmailBackend"
    return "mailcore.backends.filebased.EmailBackend"


# -- benchmarks -------------------------------------------------------------------------------


def bench_compose(spec: dict) -> dict:
    impl, case, method, n = spec["impl"], spec["case"], spec["method"], spec["n"]
    mail = setup(impl)
    build = workloads.COMPOSE[case]
    if method == "backend":
        # What an application does: the message goes through a backend (the console
        # backend, which serialises it as the SMTP backend does) to a stream that discards.
        backend = ("django.core.mail.backends.console.EmailBackend" if impl == "django"
                   else "mailcore.backends.console.EmailBackend")
        connection = mail.get_connection(backend, stream=Discard())

        def handle(m: Any) -> None:
            connection.send_messages([m])
    else:

        def handle(m: Any) -> None:
            m.message().as_bytes(linesep="\r\n")

    # Every message built is a new one (its own number in the subject, the recipient and,
    # for the non-ASCII case, every display name and domain), across the warm-up and all
    # runs, so no cache sees a repeat.
    counter = iter(range(10**9))
    sample = build(mail, next(counter))
    if impl == "mailcore":
        from mailcore.wire import serialize

        size = serialize(sample, "\r\n").size
    else:
        size = len(sample.message().as_bytes(linesep="\r\n"))
    for _ in range(min(n, 100)):  # warm-up: lazy imports, as in any long-running process
        handle(build(mail, next(counter)))

    def run() -> float:
        numbers = [next(counter) for _ in range(n)]
        t0 = perf_counter()
        for i in numbers:
            handle(build(mail, i))
        return perf_counter() - t0

    times = repeat(run, spec["runs"], spec["budget"])
    result: dict[str, Any] = {"times": times, "n": n, "size": size}
    if spec.get("profile"):
        numbers = [next(counter) for _ in range(max(1, n // 4))]
        result["profile"] = profile_summary(lambda: [handle(build(mail, i)) for i in numbers])
    return result


def bench_mass(spec: dict) -> dict:
    impl, n, mode = spec["impl"], spec["n"], spec["mode"]
    mail = setup(impl, EMAIL_HOST=spec["host"], EMAIL_PORT=spec["port"])
    runs_done = [0]

    def fresh() -> list:
        # new recipients and subjects for every run: no cache sees a repeat
        runs_done[0] += 1
        return workloads.mass_datatuple(n, offset=runs_done[0] * n)

    warm = mail.get_connection()
    warm.open()
    warm.connection.ehlo_or_helo_if_needed()
    pipelining = bool(warm.connection.has_extn("pipelining"))
    uses_pipelining = pipelining and hasattr(warm.connection, "send_serialized")
    warm.close()
    mail.send_mass_mail(workloads.mass_datatuple(20, offset=10**8))  # warm-up

    if mode == "mass":

        def run() -> float:
            data = fresh()
            t0 = perf_counter()
            sent = mail.send_mass_mail(data)
            dt = perf_counter() - t0
            if sent != n:
                raise RuntimeError(f"sent {sent} of {n}")
            return dt
    else:
        def run() -> float:
            messages = [mail.EmailMessage(s, b, f, r) for s, b, f, r in fresh()]
            t0 = perf_counter()
            sent = mail.get_connection().send_messages(messages)
            dt = perf_counter() - t0
            if sent != n:
                raise RuntimeError(f"sent {sent} of {n}")
            return dt

    times = repeat(run, spec["runs"], spec["budget"])
    result: dict[str, Any] = {"times": times, "n": n, "pipelining_offered": pipelining,
                              "pipelining_used": uses_pipelining}
    if spec.get("profile"):
        # one more run of the same work (a fifth of the messages), untimed
        data = workloads.mass_datatuple(max(1, n // 5), offset=10**8 + n)
        if mode == "mass":
            result["profile"] = profile_summary(lambda: mail.send_mass_mail(data))
        else:
            messages = [mail.EmailMessage(s, b, f, r) for s, b, f, r in data]
            result["profile"] = profile_summary(
                lambda: mail.get_connection().send_messages(messages))
    return result


def bench_smtplib(spec: dict) -> dict:
    """Plain smtplib.SMTP.sendmail in a loop on one connection, bytes built beforehand."""
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    n = spec["n"]
    m = EmailMessage()
    m["Subject"] = "Newsletter"
    m["From"] = workloads.FROM
    m["To"] = workloads.TO
    m["Date"] = formatdate()
    m["Message-ID"] = make_msgid(domain="bench.example")
    m.set_content(workloads.MASS_BODY)
    payload = m.as_bytes(policy=m.policy.clone(linesep="\r\n"))

    def run() -> float:
        t0 = perf_counter()
        s = smtplib.SMTP(spec["host"], spec["port"], local_hostname="bench.example")
        for i in range(n):
            s.sendmail(workloads.FROM, [f"reader{i}@example.com"], payload)
        s.quit()
        return perf_counter() - t0

    run_times = repeat(run, spec["runs"], spec["budget"])
    result: dict[str, Any] = {"times": run_times, "n": n, "size": len(payload)}
    if spec.get("profile"):
        result["profile"] = profile_summary(run)
    return result


def bench_large(spec: dict) -> dict:
    impl, target, path = spec["impl"], spec["target"], spec["path"]
    if target == "smtp":
        mail = setup(impl, EMAIL_HOST=spec["host"], EMAIL_PORT=spec["port"])

        def connection(run_no: int) -> Any:
            return mail.get_connection()
    else:
        outdir = Path(spec["outdir"])
        mail = setup(impl)

        def connection(run_no: int) -> Any:
            return mail.get_connection(file_backend(impl), file_path=str(outdir / f"run{run_no}"))

    # Warm-up with a small file through the same backend, so that every lazy
    # import has happened before the baseline is taken.
    warm_dir = Path(tempfile.mkdtemp(prefix="warm-", dir=spec["scratch"]))
    try:
        small = warm_dir / "small.bin"
        small.write_bytes(b"\x00\x01" * 5000)
        if target == "smtp":
            warm_conn = mail.get_connection()
        else:
            warm_conn = mail.get_connection(file_backend(impl), file_path=str(warm_dir / "out"))
        warm_conn.send_messages([workloads.large_message(mail, str(small))])
    finally:
        shutil.rmtree(warm_dir, ignore_errors=True)
    gc.collect()
    baseline = maxrss_kb()
    runs = []

    def run() -> float:
        run_no = len(runs)
        if target == "file" and run_no:
            shutil.rmtree(outdir / f"run{run_no - 1}", ignore_errors=True)  # keep only the last
        conn = connection(run_no)
        t0 = perf_counter()
        message = workloads.large_message(mail, path)
        sent = conn.send_messages([message])
        dt = perf_counter() - t0
        del message
        gc.collect()
        if sent != 1:
            raise RuntimeError("the message was not sent")
        runs.append(dt)
        return dt

    times = repeat(run, spec["runs"], spec["budget"])
    result: dict[str, Any] = {"times": times, "n": 1, "rss_growth_kb": maxrss_kb() - baseline,
                              "baseline_kb": baseline}
    if target == "file":
        files = sorted((outdir / f"run{len(times) - 1}").glob("*"))
        result["output"] = [str(f) for f in files]
    if spec.get("profile"):
        # after the memory figure and the output list; its own output is removed at once
        def profiled() -> None:
            if target == "smtp":
                conn = mail.get_connection()
            else:
                conn = mail.get_connection(file_backend(impl), file_path=str(outdir / "profile"))
            conn.send_messages([workloads.large_message(mail, path)])

        result["profile"] = profile_summary(profiled)
        if target == "file":
            shutil.rmtree(outdir / "profile", ignore_errors=True)
    return result


# -- floors: what the sink allows any client (prebuilt bytes, plain sockets) -----------------


@contextlib.contextmanager
def _smtp_session(host: str, port: int) -> Iterator[tuple[Any, Any]]:
    """A plain socket past the greeting and EHLO, and its reader; QUIT when the work ended
    well, closed whatever happened."""
    import socket

    sock = socket.create_connection((host, port))
    reader = sock.makefile("rb")
    try:
        reader.readline()  # the greeting
        sock.sendall(b"EHLO bench.example\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        yield sock, reader
        sock.sendall(b"QUIT\r\n")
        reader.readline()
    finally:
        reader.close()
        sock.close()


def _replies(reader: Any, count: int) -> None:
    for _ in range(count):
        line = reader.readline()
        if line[:1] not in (b"2", b"3"):
            raise RuntimeError(f"the sink answered {line!r}")


def bench_floor_mass(spec: dict) -> dict:
    """The mass-sending conversation mailcore has, with everything made beforehand: one
    write (the end of message N, its dot, message N+1's MAIL, RCPT and DATA) and one read of
    the four replies per message, on a plain socket. What the sink and the machine allow a
    Python client that does no work at all."""
    n = spec["n"]
    body = workloads.MASS_BODY.replace("\n", "\r\n").encode("ascii")

    def head(i: int) -> bytes:
        return (f"MAIL FROM:<{workloads.FROM}>\r\nRCPT TO:<reader{i}@example.com>\r\n"
                "DATA\r\n").encode("ascii")

    contents = [f"Subject: Newsletter {i}\r\nFrom: {workloads.FROM}\r\n"
                f"To: reader{i}@example.com\r\n\r\n".encode("ascii") + body + b"\r\n.\r\n"
                for i in range(n)]
    writes = [contents[i] + (head(i + 1) if i + 1 < n else b"") for i in range(n)]

    import select

    from mailcore.smtp import SPIN_MAX_NS

    def run() -> float:
        with _smtp_session(spec["host"], spec["port"]) as (sock, reader):
            # Watch the socket before sleeping on the replies, as mailcore's reader does
            # (mailcore.smtp.SPIN_MAX_NS), so that this stays the floor of such a client.
            poll = select.poll()
            poll.register(sock.fileno(), select.POLLIN)
            ready, clock = poll.poll, perf_counter_ns

            def wait() -> None:
                start = clock()
                while not ready(0) and clock() - start < SPIN_MAX_NS:
                    pass

            t0 = perf_counter()
            sock.sendall(head(0))
            _replies(reader, 3)
            for i, data in enumerate(writes):
                sock.sendall(data)
                wait()
                _replies(reader, 4 if i + 1 < n else 1)
            return perf_counter() - t0

    return {"times": repeat(run, spec["runs"], spec["budget"]), "n": n,
            "size": len(contents[0])}


def bench_floor_large(spec: dict) -> dict:
    """The large attachment's content (the very bytes mailcore sends: its serialisation,
    dot-stuffed; made beforehand, untimed) written after DATA by plain ``sendall`` in 1 MiB
    pieces, until the sink's 250: how fast the sink takes it in."""
    mail = setup("mailcore")
    from mailcore.wire import serialize

    data = serialize(workloads.large_message(mail, spec["path"]), "\r\n")
    content = data.getvalue().replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n"
    piece = 1 << 20

    def run() -> float:
        with _smtp_session(spec["host"], spec["port"]) as (sock, reader):
            sock.sendall(f"MAIL FROM:<{workloads.FROM}>\r\nRCPT TO:<{workloads.TO}>\r\n"
                         "DATA\r\n".encode("ascii"))
            _replies(reader, 3)
            view = memoryview(content)
            t0 = perf_counter()
            for start in range(0, len(view), piece):
                sock.sendall(view[start : start + piece])
            _replies(reader, 1)
            return perf_counter() - t0

    return {"times": repeat(run, spec["runs"], spec["budget"]), "n": 1, "size": len(content)}


# -- verification (not timed) ----------------------------------------------------------------


def verify_email_package(path: Path, name: str) -> tuple[str, int]:
    """Parse the file backend's output with the email package; sha256 of the
    decoded attachment called ``name``."""
    data = path.read_bytes()
    if data.endswith(FILE_TRAILER):
        data = data[: -len(FILE_TRAILER)]
    msg = email.message_from_bytes(data)
    del data
    found = [p for p in msg.walk() if p.get_filename() == name]
    if len(found) != 1:
        raise ValueError(f"{len(found)} attachments named {name!r}")
    payload = found[0].get_payload(decode=True)
    return hashlib.sha256(payload).hexdigest(), len(payload)


def verify_streaming(path: Path, name: str) -> tuple[str, int]:
    """The same check for files too big to parse in memory: the email package
    parses the headers of the message and of the attachment part, and the
    base64 body is decoded in 8 MB blocks."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(1 << 20)
        top = email.message_from_bytes(head.split(b"\n\n", 1)[0] + b"\n\n")
        boundary = top.get_boundary()
        if not boundary:
            raise ValueError("not a multipart message")
        marker = f'filename="{name}"'.encode()
        at = head.find(marker)
        part_start = head.rfind(b"\n--" + boundary.encode() + b"\n", 0, at)
        body_start = head.find(b"\n\n", at) + 2
        part = email.message_from_bytes(head[part_start + 1 : body_start].split(b"\n", 1)[1])
        if part.get_filename() != name or part["Content-Transfer-Encoding"] != "base64":
            raise ValueError("unexpected attachment headers")
        tail_len = min(size, 1 << 16)
        f.seek(size - tail_len)
        tail = f.read()
        end_marker = b"\n--" + boundary.encode() + b"--"
        end = size - tail_len + tail.rfind(end_marker)
        if end < body_start:
            raise ValueError("closing boundary not found")
        f.seek(body_start)
        remaining = end - body_start
        digest = hashlib.sha256()
        carry = b""
        total = 0
        while remaining:
            block = f.read(min(remaining, 8 << 20))
            if not block:
                raise ValueError("file ended early")
            remaining -= len(block)
            block = carry + block.replace(b"\n", b"")
            cut = len(block) - len(block) % 4
            block, carry = block[:cut], block[cut:]
            decoded = binascii.a2b_base64(block, strict_mode=False)
            total += len(decoded)
            digest.update(decoded)
        if carry:
            decoded = base64.b64decode(carry)
            total += len(decoded)
            digest.update(decoded)
    return digest.hexdigest(), total


def bench_verify(spec: dict) -> dict:
    source = Path(spec["source"])
    digest = hashlib.sha256()
    with source.open("rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    want = digest.hexdigest()
    out = Path(spec["output"])
    check = verify_streaming if spec["method"] == "streaming" else verify_email_package
    t0 = perf_counter()
    got, length = check(out, source.name)
    return {"ok": got == want, "sha256": want, "decoded_sha256": got, "decoded_len": length,
            "method": spec["method"], "seconds": perf_counter() - t0}


KINDS = {
    "compose": bench_compose,
    "mass": bench_mass,
    "smtplib": bench_smtplib,
    "large": bench_large,
    "verify": bench_verify,
    "floor_mass": bench_floor_mass,
    "floor_large": bench_floor_large,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    result = KINDS[spec["kind"]](spec)
    result["maxrss_kb"] = maxrss_kb()
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
