"""The mailcore command, against real servers on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import io
import subprocess
import sys

import pytest

from mailcore.cli import (
    EXIT_AUTH,
    EXIT_CONNECTION,
    EXIT_MESSAGE,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_REJECTED,
    EXIT_USAGE,
    run,
)
from tests.support.servers import TEST_PASSWORD, TEST_USER, SMTPServer


class TTY(io.StringIO):
    def isatty(self):
        return True


def cli(*argv, stdin=None):
    out, err = io.StringIO(), io.StringIO()
    code = run(list(argv), stdin=stdin if stdin is not None else TTY(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def cli_to(server, *argv, **kwargs):
    """The command, pointed at ``server``."""
    return cli(*argv, "--host", server.host, "--port", str(server.port), **kwargs)


def test_console_backend_prints_the_message():
    code, out, err = cli(
        "--to", "someone@example.com", "--subject", "hi", "--body", "hello", "--backend", "console"
    )
    assert code == EXIT_OK
    assert (
        "Subject: hi" in out
        and "To: someone@example.com" in out
        and out.rstrip().endswith("-" * 79)
    )
    assert err == ""


def test_dump_prints_the_source_and_sends_nothing(smtp_server, tmp_path):
    (tmp_path / "page.html").write_text("<p>Hello <b>HTML</b></p>")
    (tmp_path / "data.bin").write_bytes(b"\x00\x01\x02")
    code, out, _ = cli(
        "--to",
        "a@example.com",
        "--cc",
        "c@example.com",
        "--bcc",
        "hidden@example.com",
        "--from",
        "Me <me@example.com>",
        "--reply-to",
        "r@example.com",
        "--subject",
        "Grüße",
        "--body",
        "text",
        "--html-file",
        str(tmp_path / "page.html"),
        "--attach-type",
        "application/x-custom",
        "--attach",
        str(tmp_path / "data.bin"),
        "--header",
        "X-Test: yes",
        "--dump",
        "--host",
        smtp_server.host,
        "--port",
        str(smtp_server.port),
    )
    assert code == EXIT_OK
    parsed = email.message_from_string(out, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße"
    assert parsed["X-Test"] == "yes"
    assert parsed["Bcc"] is None
    types = [p.get_content_type() for p in parsed.walk()]
    assert types == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/x-custom",
    ]
    assert smtp_server.connections == 0


def test_body_from_stdin(smtp_server):
    code, _, err = cli_to(
        smtp_server, "--to", "a@example.com", stdin=io.StringIO("body from stdin\n")
    )
    assert code == EXIT_OK, err
    (record,) = smtp_server.handler.wait_for(1)
    assert record.data.endswith(b"body from stdin\r\n")
    assert "sent <" in err and f"{smtp_server.host}:{smtp_server.port}" in err


def test_transcript_with_starttls_and_password_from_environment(
    starttls_server, certs, monkeypatch
):
    monkeypatch.setenv("SMTP_PASSWORD", TEST_PASSWORD)
    code, out, err = cli_to(
        starttls_server,
        "--to",
        "a@example.com",
        "--body",
        "hello",
        "--starttls",
        "--user",
        TEST_USER,
        "--password-env",
        "SMTP_PASSWORD",
        "--ca-file",
        certs.ca_file,
        "--transcript",
    )
    assert code == EXIT_OK, err
    assert "<-  220" in out
    assert " -> ehlo" in out.lower()
    assert "=== TLS started" in out
    assert "<~  235" in out  # authenticated, inside TLS
    assert "=== Authenticated as alice" in out
    assert TEST_PASSWORD not in out and "********" in out
    assert "bytes of message content" in out
    (record,) = starttls_server.handler.wait_for(1)
    assert record.session_tls and record.auth_login == TEST_USER


def test_implicit_tls(tls_server, certs, monkeypatch):
    monkeypatch.setenv("PW", TEST_PASSWORD)
    code, _, err = cli_to(
        tls_server,
        "--to",
        "a@example.com",
        "--body",
        "x",
        "--tls",
        "--user",
        TEST_USER,
        "--password-env",
        "PW",
        "--ca-file",
        certs.ca_file,
    )
    assert code == EXIT_OK, err
    assert tls_server.handler.wait_for(1)[0].session_tls


def test_exit_code_connection_refused(refused_port):
    code, _, err = cli(
        "--to", "a@example.com", "--body", "x", "--host", "127.0.0.1", "--port", str(refused_port)
    )
    assert code == EXIT_CONNECTION
    assert err.count("\n") == 1 and "refused the connection" in err


def test_exit_code_timeout(silent_server):
    code, _, err = cli_to(silent_server, "--to", "a@example.com", "--body", "x", "--timeout", "0.5")
    assert code == EXIT_CONNECTION
    assert "did not answer in time" in err


def test_exit_code_untrusted_certificate(tls_server):
    code, _, err = cli_to(tls_server, "--to", "a@example.com", "--body", "x", "--tls")
    assert code == EXIT_CONNECTION
    assert "not trusted" in err and "--ca-file" in err


def test_exit_code_wrong_password(starttls_server, certs, monkeypatch):
    monkeypatch.setenv("PW", "wrong")
    code, _, err = cli_to(
        starttls_server,
        "--to",
        "a@example.com",
        "--body",
        "x",
        "--starttls",
        "--user",
        TEST_USER,
        "--password-env",
        "PW",
        "--ca-file",
        certs.ca_file,
    )
    assert code == EXIT_AUTH
    assert (
        "authentication failed" in err
        and "535" in err
        and "wrong" not in err.replace("wrong password", "")
    )


def test_exit_code_recipients_refused():
    with SMTPServer("plain", refuse_rcpt={"a@example.com": "550 5.1.1 No such user"}) as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x")
    assert code == EXIT_REFUSED
    assert "a@example.com: 550 5.1.1 No such user" in err


def test_partial_refusal_is_reported_but_sent():
    with SMTPServer("plain", refuse_rcpt={"b@example.com": "550 no"}) as server:
        code, _, err = cli_to(
            server, "--to", "a@example.com", "--to", "b@example.com", "--body", "x"
        )
    assert code == EXIT_OK
    assert "refused: b@example.com" in err


def test_exit_code_message_rejected():
    with SMTPServer("plain", data_reply="552 5.3.4 Message too big") as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x")
    assert code == EXIT_REJECTED
    assert "552 5.3.4 Message too big" in err


def test_exit_code_invalid_message(tmp_path):
    assert cli("--to", "bad@@example.com", "--body", "x", "--backend", "console")[0] == EXIT_MESSAGE
    assert (
        cli("--to", "a@example.com", "--subject", "a\nb", "--body", "x", "--backend", "console")[0]
        == EXIT_MESSAGE
    )
    code, _, err = cli(
        "--to", "a@example.com", "--attach", str(tmp_path / "missing.pdf"), "--backend", "console"
    )
    assert code == EXIT_MESSAGE and "missing.pdf" in err and "no such file" in err


def test_exit_code_usage():
    assert cli("--body", "nobody to send to", "--backend", "console")[0] == EXIT_USAGE
    assert cli("--no-such-flag")[0] == EXIT_USAGE
    assert (
        cli("--to", "a@example.com", "--header", "no colon", "--backend", "console")[0]
        == EXIT_USAGE
    )
    assert cli("--to", "a@example.com", "--starttls", "--tls")[0] == EXIT_USAGE


def test_file_and_dummy_backends(tmp_path):
    code, _, err = cli(
        "--to", "a@example.com", "--body", "x", "--backend", "file", "--file-path", str(tmp_path)
    )
    assert code == EXIT_OK and "written to" in err
    (written,) = tmp_path.iterdir()
    assert b"To: a@example.com" in written.read_bytes()
    assert cli("--to", "a@example.com", "--body", "x", "--backend", "dummy")[0] == EXIT_OK


def test_settings_from_environment_and_config_file(smtp_server, tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text(
        f'EMAIL_HOST = "{smtp_server.host}"\n'
        'EMAIL_PORT = 1\nDEFAULT_FROM_EMAIL = "cfg@example.com"\n'
    )
    monkeypatch.setenv(
        "MAILCORE_EMAIL_PORT", str(smtp_server.port)
    )  # the environment beats the file
    code, _, err = cli("--config", str(config), "--to", "a@example.com", "--body", "x")
    assert code == EXIT_OK, err
    assert smtp_server.handler.wait_for(1)[0].mail_from == "cfg@example.com"


def test_config_file_refuses_passwords(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('EMAIL_HOST_PASSWORD = "secret"\n')
    code, _, err = cli(
        "--config", str(config), "--to", "a@example.com", "--body", "x", "--backend", "console"
    )
    assert code == EXIT_USAGE and "passwords do not belong in a file" in err and "secret" not in err


@pytest.mark.parametrize("command", [[sys.executable, "-m", "mailcore"], ["mailcore"]])
def test_entry_points(command):
    from pathlib import Path

    exe = Path(sys.executable).parent / "mailcore"
    if command == ["mailcore"]:
        command = [str(exe)]
    proc = subprocess.run(
        [
            *command,
            "--to",
            "someone@example.com",
            "--subject",
            "hi",
            "--body",
            "hello",
            "--backend",
            "console",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Subject: hi" in proc.stdout


def test_transcript_data_prints_the_message_as_sent(smtp_server):
    code, out, err = cli_to(
        smtp_server,
        "--to",
        "a@example.com",
        "--subject",
        "Shown",
        "--body",
        "first line\n.starts with a dot\n",
        "--transcript-data",
    )
    assert code == EXIT_OK, err
    assert " -> Subject: Shown" in out
    assert " -> ..starts with a dot" in out  # dot-stuffed, as on the wire
    assert "bytes of message content" in out


# -- scripts rely on these: one line, the right code, nothing sent by mistake ------------------


def test_user_without_a_password_is_an_error_not_an_anonymous_send(smtp_server):
    code, _, err = cli_to(smtp_server, "--to", "a@example.com", "--body", "x", "--user", "alice",
                          stdin=io.StringIO(""))
    assert code == EXIT_AUTH
    assert err.count("\n") == 1 and "no password for alice" in err and "--password-env" in err
    assert smtp_server.handler.connections == 0


def test_password_sources_need_a_user_a_value_and_a_terminal(smtp_server, monkeypatch):
    monkeypatch.setenv("EMPTY_PW", "")
    monkeypatch.setenv("PW", "pw")
    base = ("--to", "a@example.com", "--body", "x")
    code, _, err = cli_to(smtp_server, *base, "--user", "u", "--password-env", "EMPTY_PW")
    assert code == EXIT_USAGE and "is empty" in err
    code, _, err = cli_to(smtp_server, *base, "--password-env", "PW")
    assert code == EXIT_USAGE and "needs --user" in err
    # no terminal to ask on (stdin is a pipe and there is no /dev/tty here)
    proc = subprocess.run(
        [sys.executable, "-m", "mailcore", *base, "--host", smtp_server.host, "--port",
         str(smtp_server.port), "--user", "u", "--password-prompt"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        start_new_session=True,  # no controlling terminal
    )
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert proc.stderr.count("\n") == 1 and "needs a terminal" in proc.stderr
    assert smtp_server.handler.connections == 0


def test_send_requiring_a_login_is_an_authentication_failure():
    with SMTPServer("plain", auth_required=True) as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x")
    assert code == EXIT_AUTH
    assert "530" in err and "--user" in err


def test_usage_errors_are_one_line():
    for argv in (["--port", "abc"], ["--port", "70000"], ["--port", "0"], ["--timeout", "0"],
                 ["--timeout", "-1"], ["--attach-type", "notatype"], ["--to"], ["--bogus"]):
        code, _, err = cli("--to", "a@example.com", "--body", "x", *argv)
        assert code == EXIT_USAGE, argv
        assert err.count("\n") == 1 and err.startswith("mailcore: ") and "--help" in err, argv


def test_bad_addresses_are_invalid_messages_in_one_line():
    for address in ("bad<>", '"Ann" <>', "a@example.com\nBcc: evil@example.com"):
        code, _, err = cli("--to", address, "--body", "x", "--backend", "console")
        assert code == EXIT_MESSAGE, address
        assert err.count("\n") == 1 and "--to" in err and "Invalid address" in err, err


def test_multi_line_refusal_is_one_line():
    reply = "550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 Bye"
    with SMTPServer("plain", refuse_rcpt={"a@example.com": reply}) as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x")
    assert code == EXIT_REFUSED
    assert err.count("\n") == 1 and "does not exist. 5.1.1 Bye" in err


def test_partial_refusal_counts_the_accepted_and_gives_the_reason():
    with SMTPServer("plain", refuse_rcpt={"b@example.com": "550 5.1.1 no such user"}) as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--to", "b@example.com",
                              "--body", "x")
        assert [r.rcpt_tos for r in server.handler.wait_for(1)] == [["a@example.com"]]
    assert code == EXIT_OK
    assert "to 1 recipient(s)" in err and "b@example.com: 550 5.1.1 no such user" in err


def test_host_port_and_default_ports_for_tls(smtp_server, monkeypatch):
    code, _, err = cli("--server", f"{smtp_server.host}:{smtp_server.port}",
                       "--to", "a@example.com", "--body", "x")
    assert code == EXIT_OK, err
    assert len(smtp_server.handler.wait_for(1)) == 1
    from mailcore.cli import build_parser, connection_kwargs

    def port_for(*flags):
        args = build_parser().parse_args(["--to", "a@example.com", *flags])
        return connection_kwargs(args, {}, TTY()).get("port")

    assert port_for("--tls") == 465 and port_for("--starttls") == 587
    assert port_for("--starttls", "--port", "25") == 25
    assert port_for("--host", "[::1]:2525") == 2525
    monkeypatch.setenv("MAILCORE_EMAIL_PORT", "2465")
    assert port_for("--tls") is None  # the setting applies


def test_tls_files_are_checked_before_connecting(smtp_server, tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for flags, named in ((["--ca-file", str(tmp_path / "missing.pem")], "missing.pem"),
                         (["--ca-file", str(not_pem)], "ca.pem"),
                         (["--cert", str(not_pem)], "ca.pem")):
        code, _, err = cli_to(smtp_server, "--to", "a@example.com", "--body", "x", "--starttls",
                              *flags)
        assert code == EXIT_USAGE, err
        assert named in err and err.count("\n") == 1
    assert smtp_server.handler.connections == 0


def test_html_from_stdin_and_header_replacing(tmp_path):
    code, out, err = cli("--to", "a@example.com", "--html-file", "-", "--header",
                         "Subject: from a header", "--header", "X-A: 1", "--header", "x-a: 2",
                         "--dump", stdin=io.StringIO("<p>from stdin</p>"))
    assert code == EXIT_OK, err
    msg = email.message_from_string(out, policy=email.policy.default)
    assert msg.get_all("Subject") == ["from a header"]
    assert msg.get_all("X-A") == ["2"]
    assert msg.get_body(("html",)).get_content().strip() == "<p>from stdin</p>"
    assert msg.get_body(("plain",)) is None  # stdin went to the HTML, not to the body
    for header in ("Content-Type: text/html", "X A: 1"):
        assert cli("--to", "a@example.com", "--body", "x", "--header", header,
                   "--dump")[0] == EXIT_USAGE
    assert cli("--to", "a@example.com", "--body-file", "-", "--html-file", "-",
               "--dump")[0] == EXIT_USAGE
    assert cli("--to", "a@example.com", "--body", "x", "--attach", str(tmp_path),
               "--attach-type", "text/plain", "--dump")[0] == EXIT_USAGE


def test_config_file_values_are_typed(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('EMAIL_USE_TLS = "false"\nEMAIL_PORT = "2525"\nEMAIL_HOST = "127.0.0.1"\n')
    from mailcore.cli import load_config
    from mailcore.conf import settings

    load_config(str(config))
    assert settings.EMAIL_USE_TLS is False and settings.EMAIL_PORT == 2525
    for bad in ('EMAIL_PORT = "abc"\n', "EMAIL_USE_TLS = 1\n", "EMAIL_HOST = 5\n"):
        config.write_text(bad)
        code, _, err = cli("--config", str(config), "--to", "a@example.com", "--body", "x")
        assert code == EXIT_USAGE and str(config) in err and err.count("\n") == 1, bad


def test_unknown_backend_setting_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("MAILCORE_EMAIL_BACKEND", "bogus.backend.EmailBackend")
    code, _, err = cli("--to", "a@example.com", "--body", "x")
    assert code == EXIT_USAGE and "backend" in err and err.count("\n") == 1


def test_file_backend_needs_a_folder():
    code, _, err = cli("--to", "a@example.com", "--body", "x", "--backend", "file")
    assert code == EXIT_USAGE and "--file-path" in err


def test_a_closed_pipe_ends_the_output_quietly(smtp_server, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 8192)  # 2 MiB: far more than a pipe holds
    common = [sys.executable, "-m", "mailcore", "--to", "a@example.com", "--attach", str(big)]
    for extra in (["--dump"], ["--backend", "console"],
                  ["--host", smtp_server.host, "--port", str(smtp_server.port),
                   "--transcript-data"]):
        proc = subprocess.Popen([*common, "--body", "x", *extra], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout.readline()  # read one line, then go away (as | head -1 does)
        proc.stdout.close()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == EXIT_OK, err
        assert b"Traceback" not in err and b"Error" not in err, err
    assert len(smtp_server.handler.wait_for(1)) == 1  # the send itself went on


def test_comma_separated_recipients_and_a_misspelled_setting(smtp_server, monkeypatch):
    monkeypatch.setenv("MAILCORE_EMAIL_PROT", "2525")  # a typo of EMAIL_PORT
    code, _, err = cli_to(smtp_server, "--to", 'a@example.com, "Doe, Jane" <j@example.com>',
                          "--cc", "c@example.com", "--body", "x")
    assert code == EXIT_OK, err
    assert "MAILCORE_EMAIL_PROT is not a setting" in err
    (record,) = smtp_server.handler.wait_for(1)
    assert record.rcpt_tos == ["a@example.com", "j@example.com", "c@example.com"]
    assert b'To: a@example.com, "Doe, Jane" <j@example.com>\r\n' in record.data


# -- issue 10: exit codes and sentences by exception type ----------------------------------------


@pytest.mark.parametrize("argv", [
    ["--subject", "Hello\x0bBcc :victim@evil.test"],  # a line break str.splitlines() knows
    ["--subject", "x\x85y"],
    ["--header", "X-A: a\x0cb"],
    ["--from", '"'],
    ["--from", '"a@example.com> RET=HDRS'],  # would add an ESMTP parameter to MAIL FROM
    ["--to", '"x@example.com> NOTIFY=NEVER ORCPT=rfc822;x'],  # ... to RCPT TO
    ["--to", "a\x0b@example.com"],
    ["--to", "b@example.com <a@example.com"],  # an unclosed bracket is not dropped
], ids=["VT in subject", "NEL in subject", "FF in header", "lone quote sender",
        "ESMTP parameter in sender", "ESMTP parameter in recipient", "VT in address",
        "unclosed bracket"])
def test_an_invalid_message_is_3_whatever_raised_it(smtp_server, argv):
    base = {"--to": "a@example.com"}
    flags = [*argv] if "--to" in argv else ["--to", base["--to"], *argv]
    code, out, err = cli_to(smtp_server, *flags, "--body", "x")
    assert code == EXIT_MESSAGE, err
    assert err.count("\n") == 1 and err.startswith("mailcore: ")
    assert smtp_server.handler.messages == [] and smtp_server.handler.rejected == []


def test_errors_raised_while_a_message_is_built_are_invalid_messages_by_type():
    """explain() maps by type: whatever the library raises for a message (its own ValueError
    and TypeError subclasses, the email package's errors, a codec's LookupError, any other
    non-network error) is 3; a settings error stays a usage error (2)."""
    import email.errors

    from mailcore import BadHeaderError
    from mailcore.cli import explain
    from mailcore.conf import ImproperlyConfigured

    for exc in (BadHeaderError("Subject can't contain U+000B"), ValueError("bad address"),
                TypeError("bytes where text is required"),
                email.errors.HeaderParseError("expected atom"), LookupError("unknown encoding"),
                IndexError("string index out of range"), UnicodeEncodeError(
                    "ascii", "é", 0, 1, "ordinal not in range")):
        error = explain(exc, "localhost:25")
        assert error.code == EXIT_MESSAGE, exc
        assert str(error).startswith("invalid message: ")
    assert explain(ImproperlyConfigured("EMAIL_PORT: not a number"), "h").code == EXIT_USAGE


def test_454_to_starttls_is_a_tls_failure():
    from tests.support.servers import ScriptedServer

    with ScriptedServer(replies={"EHLO": ["250-localhost", "250 STARTTLS"],
                                 "STARTTLS": "454 4.7.0 TLS not available"}) as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x", "--starttls")
        assert not any(c.upper().startswith(b"MAIL") for c in server.commands)
    assert code == EXIT_CONNECTION
    assert err.count("\n") == 1
    assert "TLS" in err and "STARTTLS" in err and "454 4.7.0 TLS not available" in err


def test_starttls_not_offered_is_a_tls_failure(smtp_server):
    code, _, err = cli_to(smtp_server, "--to", "a@example.com", "--body", "x", "--starttls")
    assert code == EXIT_CONNECTION and "does not offer STARTTLS" in err
    assert smtp_server.handler.messages == []


@pytest.mark.parametrize("pipelining", [False, True])
def test_552_at_mail_is_message_rejected_and_names_size_and_limit(pipelining):
    import re

    with SMTPServer("plain", data_size_limit=1000, pipelining=pipelining) as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x" * 5000)
        assert server.handler.messages == []
    assert code == EXIT_REJECTED, err
    assert err.count("\n") == 1 and "552" in err
    size = re.search(r"the message is ([\d,]+) bytes", err)
    assert size is not None and int(size.group(1).replace(",", "")) > 5000, err
    assert "the server's SIZE limit is 1,000 bytes" in err and "too large" in err


@pytest.fixture
def misnamed_tls(tmp_path):
    """A server certificate from a trusted CA, issued for other names than 127.0.0.1."""
    import ssl

    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mail.example.test", "smtp.example.test").configure_cert(context)
    return context, str(tmp_path / "ca.pem")


@pytest.mark.parametrize(("mode", "flag"), [("tls", "--tls"), ("starttls", "--starttls")])
def test_a_certificate_for_other_names_names_them(misnamed_tls, mode, flag):
    context, ca_file = misnamed_tls
    with SMTPServer(mode, tls_context=context) as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x", flag,
                              "--ca-file", ca_file)
        assert server.handler.messages == []
    assert code == EXIT_CONNECTION, err
    assert err.count("\n") == 1
    assert "mail.example.test, smtp.example.test" in err and "not 127.0.0.1" in err


def test_auth_offered_only_after_starttls_says_to_use_starttls(starttls_server, monkeypatch):
    monkeypatch.setenv("PW", TEST_PASSWORD)
    code, _, err = cli_to(starttls_server, "--to", "a@example.com", "--body", "x",
                          "--user", TEST_USER, "--password-env", "PW")
    assert code == EXIT_AUTH, err
    assert err.count("\n") == 1 and "--starttls" in err and "AUTH" in err
    assert starttls_server.handler.messages == []
    assert starttls_server.handler.login_attempts == []  # the password was never sent


def test_auth_with_only_unknown_mechanisms_is_an_authentication_failure(monkeypatch):
    from tests.support.servers import ScriptedServer

    monkeypatch.setenv("PW", "pw")
    with ScriptedServer(replies={"EHLO": ["250-localhost", "250 AUTH XOAUTH2"]}) as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x", "--user", "u",
                              "--password-env", "PW")
        assert not any(c.upper().startswith(b"AUTH") for c in server.commands)
    assert code == EXIT_AUTH and "XOAUTH2" in err


@pytest.mark.parametrize("stage", ["EHLO", "MAIL", "RCPT", "end of data"])
def test_a_421_is_a_connection_failure_with_the_servers_text(stage):
    from tests.support.servers import HostileServer

    with HostileServer(stage, "421 4.3.2 Shutting down for maintenance") as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x")
    assert code == EXIT_CONNECTION, err
    assert err.count("\n") == 1
    assert f"at {stage}" in err and "421 4.3.2 Shutting down for maintenance" in err


@pytest.mark.parametrize(("behaviour", "words"), [
    ("drip", "did not answer in time"), ("lines", "sent a reply over the limits"),
    ("line", "sent a reply over the limits")])
def test_hostile_servers_are_connection_failures(behaviour, words):
    from tests.support.servers import HostileServer

    with HostileServer("EHLO", behaviour, interval=0.2) as server:
        code, _, err = cli_to(server, "--to", "a@example.com", "--body", "x", "--timeout", "1")
    assert code == EXIT_CONNECTION, err
    assert err.count("\n") == 1 and words in err


def test_split_lists_is_the_shared_scanner_without_semicolons_or_comments():
    """The command splits as swaks does (commas only); mailgui's fields also take ";" and
    keep a comment's commas: one scanner, two options (mailcore.utils.split_addresses)."""
    from mailcore.cli import split_lists
    from mailcore.utils import split_addresses

    text = 'a@x.test, "Doe, Jane" <j@x.test>; b@x.test (Bee, B), <c@x.test'
    assert split_lists([text, " , "]) == [
        "a@x.test", '"Doe, Jane" <j@x.test>; b@x.test (Bee', "B)", "<c@x.test"]
    assert split_addresses(text, semicolons=True, comments=True) == [
        ("a@x.test", 0, 8), ('"Doe, Jane" <j@x.test>', 10, 32), ("b@x.test (Bee, B)", 34, 51),
        ("<c@x.test", 53, 62)]
