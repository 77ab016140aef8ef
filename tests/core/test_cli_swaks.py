"""The mailcore command's swaks options (issue 15, part 4), end to end against real servers on
127.0.0.1: --quit-after, --ehlo/--helo, --protocol (SMTP, LMTP), --data, --auth,
--oauth-token-env, --show-time-lapse, --add-header; and, where swaks is installed, swaks and
mailcore run with the same options against the same server, compared by what it received."""

from __future__ import annotations

import hmac
import io
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiosmtpd.smtp import MISSING, AuthResult

from mailcore.cli import (
    EXIT_AUTH,
    EXIT_MESSAGE,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    TranscriptPrinter,
    run,
)
from tests.support.oauth import (  # noqa: F401 - auth_server is a fixture
    TEST_MAILBOX,
    OAuthSMTPServer,
    auth_server,
)
from tests.support.servers import (
    TEST_PASSWORD,
    TEST_USER,
    RecordingHandler,
    ScriptedServer,
    SMTPServer,
)

ROOT = Path(__file__).resolve().parents[2]
EHLO_WITH_AUTH = ["250-localhost", "250-AUTH PLAIN LOGIN", "250-8BITMIME", "250 SIZE 10485760"]


class Bytes(io.TextIOWrapper):
    """Standard input holding bytes (``--data -`` reads its buffer)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), encoding="utf-8")


def cli(*argv, stdin=None, env=None):
    out, err = io.StringIO(), io.StringIO()
    code = run([str(a) for a in argv], stdin=stdin if stdin is not None else io.StringIO(""),
               stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def cli_to(server, *argv, **kwargs):
    return cli("--host", f"{server.host}:{server.port}", "--from", "a@example.test", *argv,
               **kwargs)


def scripted(**replies):
    return ScriptedServer(replies={"EHLO": EHLO_WITH_AUTH, "LHLO": EHLO_WITH_AUTH,
                                   "AUTH": "235 2.7.0 OK", **replies})


def verbs(server) -> list[str]:
    return [c.split(b" ", 1)[0].decode().upper() for c in server.commands]


def client_lines(transcript: str) -> list[str]:
    """What the client said, as the transcript printed it (`` ->`` or `` ~>`` after TLS)."""
    return [line[4:] for line in transcript.splitlines() if line.startswith((" -> ", " ~> "))]


# -- --quit-after --------------------------------------------------------------------------------


@pytest.mark.parametrize("stage, expected", [
    ("connect", []),
    ("banner", []),
    ("first-ehlo", ["EHLO"]),
    ("first-helo", ["EHLO"]),
    ("ehlo", ["EHLO"]),
    ("helo", ["EHLO"]),
    ("lhlo", ["EHLO"]),
    ("tls", ["EHLO"]),  # no TLS asked for: where STARTTLS would have been
    ("starttls", ["EHLO"]),
    ("auth", ["EHLO", "AUTH"]),
    ("mail", ["EHLO", "AUTH", "MAIL"]),
    ("from", ["EHLO", "AUTH", "MAIL"]),
    ("rcpt", ["EHLO", "AUTH", "MAIL", "RCPT", "RCPT"]),
    ("to", ["EHLO", "AUTH", "MAIL", "RCPT", "RCPT"]),
])
def test_quit_after_each_stage_stops_there(stage, expected, monkeypatch):
    monkeypatch.setenv("PW", "p")
    with scripted() as server:
        code, out, err = cli_to(server, "--to", "b@example.test, c@example.test", "--body", "x",
                                "--user", "u", "--password-env", "PW", "--quit-after", stage)
        assert code == EXIT_OK, err
        assert verbs(server) == [*expected, "QUIT"]
        assert "DATA" not in verbs(server) and server.data == []
        assert f"(--quit-after {stage}); nothing was sent" in err
        assert "mailcore: sent" not in err


def test_quit_after_before_mail_needs_no_recipient_but_mail_does():
    with scripted() as server:
        code, _, err = cli_to(server, "--quit-after", "ehlo")
        assert code == EXIT_OK, err
        assert verbs(server) == ["EHLO", "QUIT"]
        code, _, err = cli_to(server, "--quit-after", "rcpt")
        assert code == EXIT_USAGE and "nothing to send to" in err


def test_quit_after_with_starttls_first_ehlo_tls_and_ehlo(certs):
    """swaks: FIRST-EHLO is the EHLO before STARTTLS, EHLO the one after it; mailcore's TLS
    stop also sends the EHLO after STARTTLS (the backend's quit_after="tls")."""
    seen = {}
    with SMTPServer("starttls", certs=certs, auth={TEST_USER: TEST_PASSWORD}) as server:
        for stage in ("first-ehlo", "tls", "ehlo"):
            code, out, err = cli_to(server, "--starttls", "--ca-file", certs.ca_file,
                                    "--to", "b@example.test", "--transcript",
                                    "--quit-after", stage)
            assert code == EXIT_OK, err
            seen[stage] = [line.split(" ")[0].lower() for line in client_lines(out)]
        assert server.messages == [] and server.handler.login_attempts == []
    assert seen["first-ehlo"] == ["ehlo", "quit"]
    assert seen["tls"] == ["ehlo", "starttls", "ehlo", "quit"]
    assert seen["ehlo"] == ["ehlo", "starttls", "ehlo", "quit"]


def test_quit_after_an_unknown_stop_point_is_a_usage_error():
    code, _, err = cli("--to", "b@example.test", "--quit-after", "data")
    assert code == EXIT_USAGE and "unknown stop point 'data'" in err


# -- --ehlo / --helo / --protocol ------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--ehlo", "--helo", "--lhlo"])
def test_the_name_given_is_the_ehlo_name(flag):
    with scripted() as server:
        code, _, err = cli_to(server, "--to", "b@example.test", "--body", "x",
                              flag, "client.example.test")
        assert code == EXIT_OK, err
        assert server.commands[0] == b"ehlo client.example.test"  # EHLO whatever the flag


def test_protocol_smtp_speaks_helo_without_esmtp():
    with scripted() as server:
        code, _, err = cli_to(server, "--to", "b@example.test", "--body", "b\u00f6dy",
                              "--protocol", "smtp", "--helo", "client.example.test")
        assert code == EXIT_OK, err
        assert server.commands[0] == b"helo client.example.test"
        mail = next(c for c in server.commands if c.upper().startswith(b"MAIL"))
        assert mail == b"mail FROM:<a@example.test>"  # no SIZE, no BODY=8BITMIME
        assert len(server.data) == 1


@pytest.mark.parametrize("argv, words", [
    (["--protocol", "SMTP", "--user", "u"], "no AUTH"),
    (["--protocol", "SMTP", "--starttls"], "no STARTTLS"),
    (["--protocol", "ESMTPS", "--tls"], "disagree"),
    (["--protocol", "ESMTPA"], "give --user"),
    (["--protocol", "XMTP"], "unknown protocol"),
    (["--helo", "x\r\nMAIL FROM:<evil@example.test>"], "one word"),
    (["--helo", "two words"], "one word"),
])
def test_protocol_and_helo_mistakes_are_usage_errors(argv, words):
    with scripted() as server:
        code, _, err = cli_to(server, "--to", "b@example.test", "--body", "x", *argv)
        assert code == EXIT_USAGE, err
        assert words in err
        assert server.commands == []  # said before anything connects


def _per_recipient(replies: dict[str, str]):
    def reply(record):
        return "\r\n".join(replies.get(r, "250 2.0.0 delivered") for r in record.rcpt_tos)
    return reply


def test_lmtp_prints_each_recipients_reply_and_one_refusal_is_not_a_failure():
    refusal = "552 5.2.2 bob's mailbox is full"
    with SMTPServer("plain", lmtp=True,
                    data_reply=_per_recipient({"bob@example.test": refusal})) as server:
        code, out, err = cli_to(server, "--protocol", "LMTP", "--body", "x",
                                "--to", "ann@example.test, bob@example.test, cy@example.test",
                                "--transcript")
        assert code == EXIT_OK, err
        assert client_lines(out)[0].lower().startswith("lhlo ")
        assert "mailcore: ann@example.test: 250 2.0.0 delivered" in err
        assert f"mailcore: bob@example.test: {refusal}" in err
        assert "mailcore: cy@example.test: 250 2.0.0 delivered" in err
        assert "to 2 recipient(s)" in err and "refused: bob@example.test: 552" in err
        (record,) = server.messages
        assert record.rcpt_tos == ["ann@example.test", "bob@example.test", "cy@example.test"]


def test_lmtp_all_recipients_refused_is_exit_6():
    refusal = "550 5.1.1 no such user"
    with SMTPServer("plain", lmtp=True, data_reply=_per_recipient(
            {"a@example.test": refusal, "b@example.test": refusal})) as server:
        code, _, err = cli_to(server, "--protocol", "lmtp", "--body", "x",
                              "--to", "a@example.test", "--to", "b@example.test")
        assert code == EXIT_REFUSED, err
        assert "all recipients refused" in err and "550 5.1.1 no such user" in err


# -- --data ------------------------------------------------------------------------------------


MESSAGE = (b"From: Sender <x@example.test>\n"
           b"To: someone-else@example.test\n"
           b"Subject: =?utf-8?q?ready-made?=\n"
           b"X-Old: 1\n"
           b"\n"
           b".a line that starts with a dot\n"
           b"8-bit: \xc3\xa4\xc3\xb6\n"
           b"..two dots\n"
           b"last line without an end")


def crlf(data: bytes) -> bytes:
    return re.sub(rb"\r\n|\r|\n", b"\r\n", data)


def test_data_sends_the_files_bytes_unchanged_with_the_envelope_from_the_flags(tmp_path,
                                                                              smtp_server):
    eml = tmp_path / "ready.eml"
    eml.write_bytes(MESSAGE)
    code, _, err = cli_to(smtp_server, "--to", "rcpt@example.test", "--bcc", "hid@example.test",
                          "--data", eml)
    assert code == EXIT_OK, err
    (record,) = smtp_server.wait_for(1)
    assert record.data == crlf(MESSAGE) + b"\r\n"  # dot-unstuffed by the server, CRLF ends
    assert record.mail_from == "a@example.test"  # --from, not the file's From
    assert record.rcpt_tos == ["rcpt@example.test", "hid@example.test"]  # not the file's To
    assert "BODY=8BITMIME" in record.mail_options


def test_data_with_crlf_already_is_byte_for_byte_and_a_lone_cr_is_a_line_end(tmp_path,
                                                                             smtp_server):
    eml = tmp_path / "crlf.eml"
    eml.write_bytes(b"Subject: s\r\n\r\nline one\r\nline two\rline three\r\n")
    code, _, err = cli_to(smtp_server, "--to", "r@example.test", "--data", eml)
    assert code == EXIT_OK, err
    (record,) = smtp_server.wait_for(1)
    assert record.data == b"Subject: s\r\n\r\nline one\r\nline two\r\nline three\r\n"


def test_data_from_stdin_and_an_mbox_from_line_dropped(smtp_server):
    raw = b"From someone@example.test Mon Jan  1 00:00:00 2026\nSubject: piped\n\nbody\n"
    code, _, err = cli_to(smtp_server, "--to", "r@example.test", "--data", "-",
                          stdin=Bytes(raw))
    assert code == EXIT_OK, err
    (record,) = smtp_server.wait_for(1)
    assert record.data == b"Subject: piped\r\n\r\nbody\r\n"


def test_header_replaces_and_add_header_adds_in_the_files_headers(tmp_path, smtp_server):
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"Subject: old\nX-Old: 1\n continued\nX-Old: 2\n\nbody\n")
    code, _, err = cli_to(smtp_server, "--to", "r@example.test", "--data", eml,
                          "--header", "X-Old: new", "--header", "Subject: Gr\u00fc\u00dfe",
                          "--add-header", "X-Tag: one", "--add-header", "X-Tag: two")
    assert code == EXIT_OK, err
    (record,) = smtp_server.wait_for(1)
    assert record.data == (b"Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\nX-Old: new\r\n"
                           b"X-Tag: one\r\nX-Tag: two\r\n\r\nbody\r\n")
    assert record.message()["Subject"] == "Gr\u00fc\u00dfe"


def test_data_header_injection_is_refused_and_nothing_is_sent(tmp_path, smtp_server):
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"Subject: s\n\nbody\n")
    for flag in ("--header", "--add-header"):
        code, _, err = cli_to(smtp_server, "--to", "r@example.test", "--data", eml,
                              flag, "X-A: a\nBcc: evil@example.test")
        assert code == EXIT_MESSAGE, err
        assert "line break" in err or "newline" in err
    assert smtp_server.messages == [] and smtp_server.connections == 0


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing.eml", "no such file"),
    (lambda p: p, "is a directory"),
    (lambda p: (p / "empty.eml").write_bytes(b"\n\n") and p / "empty.eml", "empty"),
])
def test_data_that_cant_be_read_is_exit_3(tmp_path, smtp_server, make, words):
    path = make(tmp_path)
    code, _, err = cli_to(smtp_server, "--to", "r@example.test", "--data", path)
    assert code == EXIT_MESSAGE, err
    assert words in err.lower()
    assert smtp_server.connections == 0


@pytest.mark.parametrize("flag", [["--subject", "s"], ["--cc", "c@example.test"],
                                  ["--attach", "x"], ["--body", "b"]])
def test_data_with_composing_options_is_a_usage_error(tmp_path, flag):
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"Subject: s\n\nbody\n")
    code, _, err = cli("--to", "r@example.test", "--data", eml, *flag)
    assert code == EXIT_USAGE, err
    assert "--data" in err


def test_data_dump_and_console_show_the_file(tmp_path):
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"Subject: s\r\n\r\nbody\r\n")
    code, out, err = cli("--to", "r@example.test", "--data", eml, "--dump")
    assert code == EXIT_OK, err
    assert out == "Subject: s\n\nbody\n"
    code, out, err = cli("--to", "r@example.test", "--data", eml, "--backend", "console")
    assert code == EXIT_OK, err
    assert out.startswith("Subject: s\n\nbody\n")


# -- --add-header on a composed message --------------------------------------------------------


def test_add_header_twice_keeps_both_and_header_replaces(smtp_server):
    code, _, err = cli_to(smtp_server, "--to", "r@example.test", "--body", "x",
                          "--header", "X-Once: 1", "--header", "X-Once: 2",
                          "--add-header", "X-Tag: one", "--add-header", "X-Tag: two\\nX-More: 3")
    assert code == EXIT_OK, err
    (record,) = smtp_server.wait_for(1)
    msg = record.message()
    assert msg.get_all("X-Once") == ["2"]
    assert msg.get_all("X-Tag") == ["one", "two"]
    assert msg.get_all("X-More") == ["3"]


def test_add_header_is_checked_as_every_header(smtp_server):
    code, _, err = cli_to(smtp_server, "--to", "r@example.test", "--body", "x",
                          "--add-header", "X-A: a\rBcc: evil@example.test")
    assert code == EXIT_MESSAGE, err
    code, _, err = cli_to(smtp_server, "--to", "r@example.test", "--body", "x",
                          "--add-header", "Content-Type: text/html")
    assert code == EXIT_USAGE and "writes Content-Type itself" in err
    assert smtp_server.messages == []


# -- --auth ------------------------------------------------------------------------------------


class CramMD5Handler(RecordingHandler):
    """A RecordingHandler that also offers CRAM-MD5 (RFC 2195), checked against its
    credentials (aiosmtpd offers each ``auth_*`` method of the handler)."""

    async def auth_CRAM__MD5(self, server, args):  # noqa: N802 - aiosmtpd's naming
        challenge = f"<{secrets.token_hex(8)}@localhost>".encode()
        response = await server.challenge_auth(challenge)
        if response is MISSING:
            return AuthResult(success=False, handled=True)
        user, _, digest = bytes(response).decode("utf-8", "replace").rpartition(" ")
        secret = self.credentials.get(user, "")
        expected = hmac.new(secret.encode(), challenge, "md5").hexdigest()
        ok = user in self.credentials and hmac.compare_digest(digest, expected)
        with self._cond:
            self._login_attempts.append(("CRAM-MD5", user, ok))
        return AuthResult(success=ok, auth_data=user if ok else None)


def test_auth_cram_md5_is_used_when_asked(monkeypatch):
    monkeypatch.setenv("PW", TEST_PASSWORD)
    with SMTPServer("plain", handler=CramMD5Handler(), auth={TEST_USER: TEST_PASSWORD},
                    auth_required=True) as server:
        code, out, err = cli_to(server, "--to", "r@example.test", "--body", "x", "--transcript",
                                "--user", TEST_USER, "--password-env", "PW", "--auth", "cram-md5")
        assert code == EXIT_OK, err
        assert server.handler.login_attempts == [("CRAM-MD5", TEST_USER, True)]
        assert server.messages[0].auth_login == TEST_USER
        assert any(line.startswith("AUTH CRAM-MD5") for line in client_lines(out))
        assert TEST_PASSWORD not in out + err


def test_auth_a_mechanism_not_offered_is_exit_5_naming_what_is(monkeypatch, smtp_auth_server):
    monkeypatch.setenv("PW", TEST_PASSWORD)
    code, _, err = cli_to(smtp_auth_server, "--to", "r@example.test", "--body", "x",
                          "--user", TEST_USER, "--password-env", "PW", "--auth", "CRAM-MD5")
    assert code == EXIT_AUTH, err
    assert re.search(r"does not offer AUTH CRAM-MD5: it offers LOGIN PLAIN$", err.strip()), err
    assert smtp_auth_server.handler.login_attempts == []
    assert smtp_auth_server.messages == []


@pytest.mark.parametrize("argv, words", [
    (["--auth"], "give --user"),
    (["--auth", "PLAIN"], "give --user"),
    (["--auth", "XOAUTH2", "--user", "u", "--password-env", "PW"], "access token"),
    (["--auth", "DIGEST-MD5", "--user", "u"], "does not know AUTH"),
    (["--auth", "PLAIN,LOGIN", "--user", "u"], "one mechanism"),
])
def test_auth_mistakes_are_usage_errors(argv, words, monkeypatch, smtp_auth_server):
    monkeypatch.setenv("PW", TEST_PASSWORD)
    code, _, err = cli_to(smtp_auth_server, "--to", "r@example.test", "--body", "x", *argv)
    assert code == EXIT_USAGE, err
    assert words in err
    assert smtp_auth_server.connections == 0


# -- --oauth-token-env --------------------------------------------------------------------------


@pytest.mark.parametrize("forced, used", [(None, "OAUTHBEARER"), ("XOAUTH2", "XOAUTH2"),
                                          ("oauthbearer", "OAUTHBEARER")])
def test_oauth_token_from_the_environment_never_printed(auth_server, monkeypatch,  # noqa: F811
                                                        forced, used):
    token = auth_server.issue()["access_token"]
    monkeypatch.setenv("MAIL_TOKEN", token)
    with OAuthSMTPServer(auth_server) as server:
        code, out, err = cli_to(server, "--to", "r@example.test", "--body", "x",
                                "--user", TEST_MAILBOX, "--oauth-token-env", "MAIL_TOKEN",
                                "--transcript", *(["--auth", forced] if forced else []))
        assert code == EXIT_OK, err
        assert [(a.mechanism, a.ok) for a in server.oauth_attempts] == [(used, True)]
        assert server.messages[0].auth_login == TEST_MAILBOX
        assert token not in out and token not in err
        assert f"AUTH {used} ********" in client_lines(out)


def test_oauth_token_refused_is_exit_5_and_unset_is_a_usage_error(auth_server,  # noqa: F811
                                                                   monkeypatch):
    monkeypatch.setenv("MAIL_TOKEN", "not-a-token-the-server-issued")
    with OAuthSMTPServer(auth_server) as server:
        code, out, err = cli_to(server, "--to", "r@example.test", "--body", "x",
                                "--user", TEST_MAILBOX, "--oauth-token-env", "MAIL_TOKEN")
        assert code == EXIT_AUTH, err
        assert "access token was refused" in err
        assert "not-a-token-the-server-issued" not in out + err
        code, _, err = cli_to(server, "--to", "r@example.test", "--body", "x",
                              "--user", TEST_MAILBOX, "--oauth-token-env", "NO_SUCH_VAR_HERE")
        assert code == EXIT_USAGE and "$NO_SUCH_VAR_HERE is not set" in err
        assert server.messages == []


def test_oauth_with_a_server_offering_only_passwords_names_what_it_offers(monkeypatch,
                                                                          smtp_auth_server):
    monkeypatch.setenv("MAIL_TOKEN", "t0ken")
    code, _, err = cli_to(smtp_auth_server, "--to", "r@example.test", "--body", "x",
                          "--user", TEST_USER, "--oauth-token-env", "MAIL_TOKEN")
    assert code == EXIT_AUTH, err
    assert "does not offer an OAuth 2.0 login" in err and "it offers LOGIN PLAIN" in err
    assert "t0ken" not in err


# -- --show-time-lapse ---------------------------------------------------------------------------


LAPSE = re.compile(r"=== response in \d+\.\d{3}s")


def test_show_time_lapse_precedes_every_reply(smtp_server):
    code, out, err = cli_to(smtp_server, "--to", "r@example.test", "--body", "x",
                            "--show-time-lapse")  # implies --transcript
    assert code == EXIT_OK, err
    lines = out.splitlines()
    firsts = [i for i, line in enumerate(lines) if line.startswith("<-  ")
              and (i == 0 or not lines[i - 1].startswith("<-  ") or lines[i - 1][7:8] == " ")]
    assert len(firsts) >= 6  # greeting, EHLO, MAIL, RCPT, DATA, the dot, QUIT
    for i in firsts:
        assert LAPSE.fullmatch(lines[i - 1]), lines[i - 1]
    assert len([line for line in lines if LAPSE.fullmatch(line)]) == len(firsts)
    assert lines[0].startswith("=== Trying ")


def test_show_time_lapse_in_whole_seconds(smtp_server):
    code, out, err = cli_to(smtp_server, "--to", "r@example.test", "--body", "x",
                            "--show-time-lapse", "i", "--quit-after", "ehlo")
    assert code == EXIT_OK, err
    lapses = re.findall(r"=== response in (\S+)", out)
    assert lapses and all(re.fullmatch(r"\d+s", lapse) for lapse in lapses)
    assert len(re.findall(r"=== response in \d+s\n<-  ", out)) == 3  # greeting, EHLO, QUIT


def test_time_lapses_count_as_swaks_does_with_pipelined_replies():
    """From the first line of a group to its first reply, then from one reply to the next."""
    ticks = iter(range(100))
    out = io.StringIO()
    printer = TranscriptPrinter(out, time_lapse="hires", clock=lambda: float(next(ticks)))
    for event, text in [("connect", "h:25"), ("server", "220 hi"),                # 0 -> 1
                        ("client", "EHLO x"), ("server", "250-a"), ("server", "250 b"),  # 2->3
                        ("client", "MAIL FROM:<a@x>"), ("client", "RCPT TO:<b@x>"),   # 5
                        ("server", "250 ok"), ("server", "250 ok")]:                  # 7, 8
        printer(event, text)
    assert re.findall(r"response in (\S+)", out.getvalue()) == ["1.000s", "1.000s", "2.000s",
                                                                "1.000s"]
    assert "=== response in 1.000s\n<-  250-a\n<-  250 b\n" in out.getvalue()


# -- the installed command ---------------------------------------------------------------------


def test_python_m_mailcore_sends_data_from_stdin_with_the_swaks_options(smtp_server):
    raw = b"Subject: via the command\nX-Old: 1\n\n.dot\nbody\n"
    proc = subprocess.run(
        [sys.executable, "-m", "mailcore", "--host", f"{smtp_server.host}:{smtp_server.port}",
         "--from", "a@example.test", "--to", "r@example.test", "--data", "-",
         "--ehlo", "client.example.test", "--add-header", "X-Added: yes",
         "--show-time-lapse", "--protocol", "ESMTP"],
        input=raw, capture_output=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == EXIT_OK, proc.stderr
    (record,) = smtp_server.wait_for(1)
    assert record.data == (b"Subject: via the command\r\nX-Old: 1\r\nX-Added: yes\r\n\r\n"
                           b".dot\r\nbody\r\n")
    out = proc.stdout.decode()
    assert " -> ehlo client.example.test" in out
    assert LAPSE.search(out)


# -- swaks and mailcore, the same options, the same server ---------------------------------------

SWAKS = shutil.which("swaks") or ""


def _swaks() -> str:
    """swaks is a test package (scripts/bootstrap.sh --test): missing, the test fails."""
    if not SWAKS:
        pytest.fail("swaks is not installed: run scripts/bootstrap.sh --test")
    return SWAKS


def _normalised(commands: list[bytes]) -> list[str]:
    """Commands as compared: the verb in capitals, MAIL without its ESMTP parameters (mailcore
    announces SIZE and BODY=8BITMIME where swaks does not)."""
    seen = []
    for command in commands:
        verb, _, rest = command.decode("utf-8", "replace").partition(" ")
        verb = verb.upper()
        if verb == "MAIL":
            rest = rest.split(" ")[0]
        seen.append(f"{verb} {rest}".strip())
    return seen


def _both(mailcore_argv: list[str], swaks_argv: list[str], **server_kwargs):
    """Run swaks, then mailcore, each against a fresh scripted server; what each server saw."""
    results = {}
    for tool in ("swaks", "mailcore"):
        with scripted(**server_kwargs) as server:
            where = f"{server.host}:{server.port}"
            common = ["--from", "a@example.test", "--to", "b@example.test",
                      "--helo", "client.example.test"]
            if tool == "swaks":
                proc = subprocess.run([_swaks(), "--server", where, *common, *swaks_argv],
                                      capture_output=True, text=True, timeout=60)
                code, said = proc.returncode, proc.stdout + proc.stderr
            else:
                code, out, err = cli("--host", where, *common, *mailcore_argv)
                said = out + err
            assert code == 0, said
            results[tool] = (_normalised(server.commands), server.data)
    return results["swaks"], results["mailcore"]


@pytest.mark.parametrize("stage", ["connect", "banner", "first-helo", "helo", "ehlo", "tls",
                                   "auth", "mail", "from", "rcpt", "to"])
def test_swaks_and_mailcore_quit_after_the_same_commands(stage):
    swaks, mine = _both(["--quit-after", stage], ["--quit-after", stage])
    assert swaks == mine
    assert swaks[0][-1] == "QUIT"


@pytest.mark.parametrize("protocol", ["SMTP", "ESMTP", "LMTP"])
def test_swaks_and_mailcore_speak_the_same_protocol(protocol):
    (swaks, _), (mine, data) = _both(["--protocol", protocol, "--body", "x"],
                                     ["--protocol", protocol])
    assert swaks == mine
    assert mine[0] == {"SMTP": "HELO", "ESMTP": "EHLO", "LMTP": "LHLO"}[protocol] + (
        " client.example.test")
    assert len(data) == 1


def test_swaks_and_mailcore_auth_plain_the_same(monkeypatch):
    monkeypatch.setenv("PW", "p")
    swaks, mine = _both(["--auth", "PLAIN", "--user", "u", "--password-env", "PW",
                         "--quit-after", "auth"],
                        ["--auth", "PLAIN", "--auth-user", "u", "--auth-password", "p",
                         "--quit-after", "auth"])
    assert swaks == mine
    assert swaks[0] == ["EHLO client.example.test", "AUTH PLAIN AHUAcA==", "QUIT"]


def test_swaks_and_mailcore_send_the_same_data_file(tmp_path):
    eml = tmp_path / "ready.eml"
    eml.write_bytes(MESSAGE + b"\n")
    edits = ["--header", "X-Old: 2", "--add-header", "X-New: 3", "--add-header", "X-New: 4"]
    (swaks_commands, swaks_data), (commands, data) = _both(
        ["--data", str(eml), *edits], ["--data", f"@{eml}", *edits])
    assert swaks_commands == commands
    assert commands[-2:] == ["DATA", "QUIT"]
    # swaks ends the content with one more empty line of its own; the rest is the same
    assert swaks_data[0].rstrip(b"\r\n") == data[0].rstrip(b"\r\n")
    expected = crlf(MESSAGE + b"\n").replace(b"X-Old: 1\r\n", b"X-Old: 2\r\nX-New: 3\r\n"
                                             b"X-New: 4\r\n")
    assert data[0] == expected
