"""``mailcore check``: the checks from the shell, text or JSON, with exit codes 0/1/2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import mailcore
from mailcore.checks import MessageView, check_message, dkim
from mailcore.cli import run as mailcore_run

ROOT = Path(__file__).resolve().parents[2]


KEY = dkim.generate_key(1024 * 2)
RECORD = f"{dkim.dns_name('s1', 'example.com')}={dkim.public_record(KEY)}"


def clean_message() -> bytes:
    """Text and HTML that agree, a Message-ID of the sending domain, signed with DKIM (its
    key given with --dkim-record, as for a domain not published yet)."""
    msg = mailcore.EmailMultiAlternatives(
        "Your order has shipped",
        "Hello Ada,\n\nyour order 1234 has shipped and should arrive on Friday.\n",
        "Shop <orders@example.com>",
        ["ada@example.org"],
        headers={"Message-ID": mailcore.make_msgid(domain="example.com")},
    )
    msg.attach_alternative(
        "<html><body><p>Hello Ada,</p><p>your order 1234 has shipped and should arrive "
        "on Friday.</p></body></html>",
        "text/html",
    )
    return dkim.DKIMSigner("example.com", "s1", KEY).sign(MessageView.of(msg).raw)


def broken_message() -> bytes:
    # HTML only, no Message-ID, no Date, an image without alt
    return (
        b"From: shop@example.com\r\nTo: ada@example.org\r\nSubject: hi\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><p>Hi</p><img src=\"https://example.com/x.png\"></body></html>\r\n"
    )


def run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin_stream = io.TextIOWrapper(io.BytesIO(stdin))
    code = mailcore_run(["check", *argv], stdin=stdin_stream, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_a_clean_message_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "clean.eml"
    path.write_bytes(clean_message())
    code, out, err = run("--dkim-record", RECORD, str(path))
    assert code == 0, out + err
    assert out.startswith(f"{path}: ")
    assert "dkim: pass (example.com)" in out
    # without the key the signature can't be checked: a warning, and exit 1
    code, out, _ = run(str(path))
    assert code == 1 and "dkim." in out


def test_an_altered_message_fails_dkim(tmp_path: Path) -> None:
    path = tmp_path / "altered.eml"
    path.write_bytes(clean_message().replace(b"Friday", b"Monday"))
    code, out, _ = run("--dkim-record", RECORD, "--fail-on", "error", str(path))
    assert code == 1
    assert "dkim: fail (example.com)" in out


def test_findings_exit_1_and_are_listed_with_fix_and_reference(tmp_path: Path) -> None:
    path = tmp_path / "broken.eml"
    path.write_bytes(broken_message())
    report = check_message(path.read_bytes())
    code, out, _ = run(str(path))
    assert code == 1
    for finding in report.findings:
        assert finding.code in out
        if finding.fix:
            assert finding.fix in out
    assert "lint.no-text-alternative" in out


def test_json_is_the_report(tmp_path: Path) -> None:
    path = tmp_path / "broken.eml"
    path.write_bytes(broken_message())
    code, out, _ = run("--json", str(path))
    data = json.loads(out)
    assert code == 1
    assert data["file"] == str(path)
    expected = check_message(path.read_bytes()).to_json()
    assert data["counts"] == expected["counts"]
    codes = [f["code"] for r in data["results"] for f in r["findings"]]
    assert codes == [f["code"] for r in expected["results"] for f in r["findings"]]
    assert {r["check"] for r in data["results"]} == {"clients", "lint", "dkim"}


def test_fail_on_error_ignores_warnings(tmp_path: Path) -> None:
    path = tmp_path / "broken.eml"
    path.write_bytes(broken_message())
    report = check_message(path.read_bytes())
    errors = [f for f in report.findings if f.severity == mailcore.checks.Severity.ERROR]
    code, _, _ = run("--fail-on", "error", str(path))
    assert code == (1 if errors else 0)


def test_stdin_and_several_files(tmp_path: Path) -> None:
    a = tmp_path / "a.eml"
    a.write_bytes(clean_message())
    code, out, _ = run("--json", str(a), "-", stdin=broken_message())
    data = json.loads(out)
    assert [d["file"] for d in data] == [str(a), "-"]
    assert code == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    code, _, err = run(str(tmp_path / "missing.eml"))
    assert code == 2 and "no such file" in err
    code, _, err = run(str(tmp_path))
    assert code == 2 and "folder" in err
    path = tmp_path / "m.eml"
    path.write_bytes(clean_message())
    code, _, err = run("--checks", "nonsense", str(path))
    assert code == 2 and "unknown check" in err
    code, _, err = run("--dkim-record", "not-a-record", str(path))
    assert code == 2 and "NAME=RECORD" in err
    code, _, err = run()
    assert code == 2


def test_a_spamd_that_is_not_there_is_said_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(clean_message())
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run("--checks", "lint", "--spamd", f"127.0.0.1:{port}", str(path))
    assert code == 2
    assert "spam check could not run" in err


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(clean_message())
    code, _, err = run(str(path / "inside"))  # a file is not a folder: ENOTDIR, even as root
    assert code == 2 and "cannot read" in err


def test_the_installed_command(tmp_path: Path) -> None:
    path = tmp_path / "broken.eml"
    path.write_bytes(broken_message())
    proc = subprocess.run(
        [sys.executable, "-m", "mailcore", "check", "--checks", "lint", str(path)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "lint.no-text-alternative" in proc.stdout


def test_families_and_a_closed_pipe(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    msg = mailcore.EmailMultiAlternatives("x", "flex", "a@example.com", ["b@example.com"])
    msg.attach_alternative('<div style="display: flex">flex</div>', "text/html")
    path.write_bytes(MessageView.of(msg).raw)
    code, out, _ = run("--json", "--checks", "clients", "--families", "gmail", str(path))
    summary = json.loads(out)["results"][0]["summary"]
    assert [f["name"] for f in summary["families"]] == ["Gmail"]
    code, _, err = run("--families", "no-such-client", str(path))
    assert code == 2 and "clients check could not run" in err
    # more output than a pipe holds, and a reader that stops after 10 bytes (as "| head")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailcore", "check", *[str(path)] * 400],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_a_file_backend_log_is_checked_message_by_message(tmp_path: Path) -> None:
    """The file backend appends each message and a line of 79 dashes to one .log: each message
    is checked on its own, and the dashes are no part of what was signed."""
    signer = dkim.DKIMSigner("example.com", "s1", KEY)
    out = tmp_path / "out"
    connection = mailcore.get_connection("file", file_path=str(out), dkim=signer)
    messages = [
        mailcore.EmailMessage(f"Note {i}", f"Body {i}\n", "a@example.com", ["b@example.org"],
                              headers={"Message-ID": mailcore.make_msgid(domain="example.com")})
        for i in (1, 2)
    ]
    assert connection.send_messages(messages) == 2
    (log,) = out.iterdir()
    code, text, err = run("--json", "--checks", "dkim", "--dkim-record", RECORD, str(log))
    data = json.loads(text)
    assert [d["file"] for d in data] == [f"{log}#1", f"{log}#2"]
    for report in data:
        (result,) = report["results"]
        assert [v["result"] for v in result["summary"]["verdicts"]] == ["pass"], err


def test_a_pasted_record_that_is_not_a_key_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(clean_message())
    code, _, err = run("--dkim-record", "s1._domainkey.example.com=v=DKIM1; p=abc", str(path))
    assert code == 2 and "is not a base64 public key" in err
    code, _, err = run("--checks", ",", str(path))
    assert code == 2 and "names no check" in err
