"""The spam check against the real SpamAssassin: Debian's spamd on 127.0.0.1, started once for
this module (local tests only: no DNS, no Razor/Pyzor/DCC, no Bayes, the shipped rules), and
the real ``spamc`` program as the second opinion. No mocks of spamd."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailcore.checks import MessageView, Severity, check_message, run_check
from mailcore.checks.spam import (
    DEFAULT_MAX_SIZE,
    INSTALL_HINT,
    WIKI,
    Spamd,
    SpamdClient,
    SpamdError,
    SpamdTimeoutError,
    SpamVerdict,
    find_spamd,
    parse_report,
    run,
)
from tests.support.servers import held_refused_port
from tests.support.spamd import (
    GTUBE,
    ScriptedSocketServer,
    clean_message,
    group_members,
    gtube_message,
    our_spamd_pids,
    rule_description,
    spamc,
)

# A rule of our own whose description is too long for one line of the report table.
LONG_RULE = "MAILCORE_LONG_DESC"
LONG_PROBE = "mailcore-long-description-probe"
LONG_TEXT = (
    "A deliberately long description that SpamAssassin has to wrap onto continuation lines "
    "of its report table, and then once more"
)
# and one that takes points off
NEGATIVE_RULE = "MAILCORE_NEGATIVE"
NEGATIVE_PROBE = "mailcore-negative-probe"
CONFIG = f"""
body {LONG_RULE} /{LONG_PROBE}/
describe {LONG_RULE} {LONG_TEXT}
score {LONG_RULE} 0.5
body {NEGATIVE_RULE} /{NEGATIVE_PROBE}/
describe {NEGATIVE_RULE} A test rule that takes points off
score {NEGATIVE_RULE} -1.5
"""


@pytest.fixture(scope="module")
def spamd(request: pytest.FixtureRequest) -> Spamd:
    server = Spamd.start(config=CONFIG)
    request.addfinalizer(server.stop)  # stopped even when a test fails
    return server


@pytest.fixture
def client(spamd: Spamd) -> SpamdClient:
    return spamd.client()


def raw(message: object) -> bytes:
    return MessageView.of(message).raw


def spamc_score(port: int, data: bytes) -> tuple[float, float]:
    out = spamc(port, data, "-c")
    score, threshold = out.stdout.decode().strip().split("/")
    return float(score), float(threshold)


def spamd_version(program: str) -> str:
    out = subprocess.run([program, "--version"], capture_output=True, text=True, check=True)
    return re.search(r"version (\S+)", out.stdout).group(1)


# -- the protocol client ---------------------------------------------------------------------


def test_ping(client: SpamdClient) -> None:
    assert client.ping() is True
    with held_refused_port() as port:
        assert SpamdClient(port=port).ping() is False


def test_gtube_is_spam_with_the_gtube_rule_and_its_description(client: SpamdClient) -> None:
    verdict = client.check(raw(gtube_message()))
    assert isinstance(verdict, SpamVerdict)
    assert verdict.is_spam and verdict.score >= verdict.threshold
    rules = {r.name: r for r in verdict.rules}
    assert "GTUBE" in rules
    described = rule_description("GTUBE")
    assert described and described in rules["GTUBE"].description
    assert rules["GTUBE"].score >= verdict.threshold
    assert "GTUBE" in verdict.report and not verdict.truncated


def test_a_clean_message_is_not_spam(client: SpamdClient) -> None:
    verdict = client.check(raw(clean_message()))
    assert not verdict.is_spam and verdict.score < verdict.threshold
    assert "GTUBE" not in {r.name for r in verdict.rules}


@pytest.mark.parametrize("make", [gtube_message, clean_message], ids=["gtube", "clean"])
def test_our_protocol_client_agrees_with_spamc(spamd: Spamd, client: SpamdClient, make) -> None:
    data = raw(make())
    verdict = client.check(data)
    assert (verdict.score, verdict.threshold) == spamc_score(spamd.port, data)
    report = spamc(spamd.port, data, "-R").stdout.decode()
    first, _, text = report.partition("\n")
    assert float(first.split("/")[0]) == verdict.score
    theirs = parse_report(text)
    assert theirs and [(r.name, r.score) for r in theirs] == [
        (r.name, r.score) for r in verdict.rules
    ]


def test_a_description_wrapped_onto_continuation_lines_is_joined(client: SpamdClient) -> None:
    data = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: wrap\r\n\r\n" + (
        LONG_PROBE.encode() + b"\r\n"
    )
    verdict = client.check(data)
    rule = next(r for r in verdict.rules if r.name == LONG_RULE)
    assert rule.description.endswith(LONG_TEXT)
    # it really was wrapped in the report: the rule's own line holds only its beginning
    line = next(li for li in verdict.report.splitlines() if LONG_RULE in li)
    assert LONG_TEXT not in line and LONG_TEXT.split()[0] in line
    assert rule.score == 0.5  # the score CONFIG gives it


def test_connection_refused_is_a_spamd_error_with_a_sentence() -> None:
    with held_refused_port() as port:
        with pytest.raises(SpamdError) as info:
            SpamdClient(port=port, timeout=5).check(b"Subject: x\r\n\r\nx\r\n")
    assert isinstance(info.value, OSError)
    assert f"127.0.0.1:{port}" in str(info.value) and "refused" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_something_that_is_not_spamd_is_a_protocol_error() -> None:
    with ScriptedSocketServer(b"HTTP/1.0 400 Bad Request\r\n\r\n") as server:
        with pytest.raises(SpamdError, match="not spamd's protocol"):
            SpamdClient(port=server.port, timeout=5).check(b"Subject: x\r\n\r\nx\r\n")
        assert server.received[0].startswith(b"REPORT SPAMC/1.5\r\nContent-length: ")


def test_a_spamd_error_status_is_a_spamd_error() -> None:
    reply = b"SPAMD/1.0 76 Bad header line: (Content-Length mismatch)\r\n"
    with ScriptedSocketServer(reply) as server:
        with pytest.raises(SpamdError, match="Content-Length mismatch.*EX_PROTOCOL"):
            SpamdClient(port=server.port, timeout=5).check(b"Subject: x\r\n\r\nx\r\n")


def test_silence_is_a_timeout() -> None:
    with ScriptedSocketServer(None) as server:
        with pytest.raises(SpamdTimeoutError) as info:
            SpamdClient(port=server.port, timeout=0.5).check(b"Subject: x\r\n\r\nx\r\n")
    assert isinstance(info.value, TimeoutError) and "did not answer REPORT" in str(info.value)


def test_version_is_the_programs(spamd: Spamd, client: SpamdClient) -> None:
    assert client.version() == spamd_version(spamd.program)


# -- the check -------------------------------------------------------------------------------


def test_check_message_with_a_client_scores_gtube_as_spam(spamd: Spamd, client) -> None:
    report = check_message(gtube_message(), ["spam"], spam=client)
    result = report.result("spam")
    assert result is not None and not result.error
    summary = result.summary
    verdict = client.check(raw(gtube_message()))
    assert (summary["score"], summary["threshold"], summary["is_spam"]) == (
        verdict.score, verdict.threshold, True
    )
    assert summary["rules"] == [r.to_json() for r in verdict.rules]
    assert summary["version"] == spamd_version(spamd.program)
    assert summary["truncated"] is False and summary["sent"] == summary["size"]

    overall = [f for f in result.findings if f.code == "spam.is-spam"]
    assert len(overall) == 1 and overall[0].severity is Severity.ERROR
    assert overall[0].message == (
        f"SpamAssassin scores this {verdict.score:.1f}, over the {verdict.threshold:.1f} "
        "threshold: it would be filed as spam"
    )
    gtube = next(f for f in result.findings if f.data.get("name") == "GTUBE")
    assert gtube.severity is Severity.WARNING and gtube.code == "spam.rule"
    assert gtube.reference == WIKI + "GTUBE"
    assert rule_description("GTUBE") in gtube.message
    # one finding per rule with a score; the rules scored 0 are in the summary only
    scored = [r for r in verdict.rules if r.score != 0]
    assert len([f for f in result.findings if f.code == "spam.rule"]) == len(scored)
    for finding in result.findings:
        if finding.code == "spam.rule" and finding.data["score"] < 0:
            assert finding.severity is Severity.INFO


def test_a_negative_rule_is_informational_even_in_spam(client: SpamdClient) -> None:
    message = gtube_message()
    message.body += f"\n{NEGATIVE_PROBE}\n"
    result = run(MessageView(raw(message)), client=client)
    assert result.summary["is_spam"] is True
    negative = next(f for f in result.findings if f.data.get("name") == NEGATIVE_RULE)
    assert negative.severity is Severity.INFO and negative.data["score"] == -1.5
    assert negative.reference == ""  # our own rule has no page on SpamAssassin's wiki
    assert "A test rule that takes points off" in negative.message


def test_a_clean_message_has_no_error_and_only_informational_rules(client) -> None:
    result = check_message(clean_message(), ["spam"], spam=client).result("spam")
    assert result is not None and not result.error
    assert result.summary["is_spam"] is False
    assert result.summary["score"] == client.check(raw(clean_message())).score
    assert all(f.severity is Severity.INFO for f in result.findings)
    assert "spam.is-spam" not in {f.code for f in result.findings}


def test_an_unreachable_client_is_an_error_sentence_not_an_exception() -> None:
    with held_refused_port() as port:
        result = run(MessageView(raw(gtube_message())), client=SpamdClient(port=port))
    assert result.error.startswith("SpamAssassin could not score the message: cannot connect")
    assert str(port) in result.error and not result.findings


def test_not_installed_gives_the_install_hint(tmp_path) -> None:
    assert find_spamd(str(tmp_path)) is None  # a PATH without spamd
    assert find_spamd() is not None  # and the real one is found without it
    with held_refused_port() as port:  # and nothing answers where spamd would be
        result = run_check("spam", MessageView(raw(gtube_message())), port=port,
                           search_path=str(tmp_path))
    assert result.error == INSTALL_HINT and not result.findings
    assert "apt install spamassassin spamd" in result.error


def test_no_client_starts_a_spamd_for_the_call_and_stops_it() -> None:
    before = our_spamd_pids()
    with held_refused_port() as port:  # no spamd answers on the default address
        result = run(MessageView(raw(gtube_message())), port=port)
    assert not result.error and result.summary["is_spam"] is True
    assert "GTUBE" in {r["name"] for r in result.summary["rules"]}
    assert our_spamd_pids() <= before  # nothing of the temporary spamd is left


def test_a_message_over_the_limit_is_cut_and_the_summary_says_so(client: SpamdClient) -> None:
    # GTUBE after 600 KB of ordinary text: past spamc's 500 KB, so spamd never sees it
    message = gtube_message()
    filler = "An ordinary line of text to make the message large enough.\n"
    message.body = filler * (600 * 1024 // len(filler)) + GTUBE + "\n"
    data = raw(message)
    assert len(data) > DEFAULT_MAX_SIZE

    result = run(MessageView(data), client=client)
    summary = result.summary
    assert summary["truncated"] is True and summary["size"] == len(data)
    assert 0 < summary["sent"] <= DEFAULT_MAX_SIZE == summary["max_size"]
    assert summary["is_spam"] is False  # the GTUBE line was not sent
    truncated = next(f for f in result.findings if f.code == "spam.truncated")
    assert str(len(data)) in truncated.message and str(summary["sent"]) in truncated.message


def test_max_size_decides_what_spamd_sees(spamd: Spamd) -> None:
    head = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: size\r\n\r\n"
    data = head + b"filler line\r\n" * 2000 + GTUBE.encode() + b"\r\n"
    small = spamd.client(max_size=10_000).check(data)
    assert small.truncated and small.sent <= 10_000 and not small.is_spam
    assert data[: small.sent].endswith(b"\r\n")  # cut at a line end
    small_client = spamd.client(max_size=10_000)
    whole = small_client.check(data, max_size=len(data))
    assert not whole.truncated and whole.is_spam and whole.max_size == len(data)
    result = run(MessageView(data), client=small_client)  # the client's own limit
    assert result.summary["truncated"] and result.summary["max_size"] == 10_000


# -- our own spamd ---------------------------------------------------------------------------


def test_spamd_stop_ends_every_process_and_removes_its_directory() -> None:
    with Spamd.start() as server:
        assert server.running and server.client().ping()
        assert len(group_members(server.process.pid)) >= 2  # the parent and a child
        workdir, pid = server.workdir, server.process.pid
    assert not server.running and not workdir.exists()
    assert group_members(pid) == set()
    server.stop()  # twice is harmless


KILLED_OWNER = """
import os, signal, sys
from mailcore.checks.spam import Spamd
server = Spamd.start()
print(server.process.pid, server.workdir, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no stop(), no atexit: as a crash would
"""


def test_a_spamd_whose_owner_is_killed_is_stopped_by_its_guard() -> None:
    owner = subprocess.run([sys.executable, "-c", KILLED_OWNER], capture_output=True,
                           text=True, timeout=120)
    assert owner.returncode == -signal.SIGKILL, owner.stderr
    pid_text, workdir = owner.stdout.split(maxsplit=1)
    pid, workdir = int(pid_text), Path(workdir.strip())
    deadline = time.monotonic() + 15
    while (group_members(pid) or workdir.exists()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_members(pid) == set(), "spamd outlived the process that started it"
    assert not workdir.exists()


def test_spamd_that_cannot_listen_says_why(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(SpamdError) as info:
            Spamd.start(port=port, workdir=tmp_path, timeout=60)
    assert "already in use" in str(info.value) and str(port) in str(info.value)
    assert (tmp_path / "spamd.log").exists()  # a workdir we gave is kept, with the log

