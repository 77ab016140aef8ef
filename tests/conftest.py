"""Shared fixtures: real SMTP servers on 127.0.0.1 (see tests/support/servers.py).

One switch for the whole suite: ``MAILCORE_STRICT_WIRE=1``, so that mailcore.wire's fast
writer raises where it would fall back to the email package after an exception of its own
(a bug in it fails a test instead of showing as a slowdown). Deliberate fallbacks (a patched
``message()``, patched helpers) still fall back. Set in the environment, so the processes the
tests start (the CLI, Django's suite) run strict too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

# The GUI tests need an offscreen Qt platform; set it before anything imports Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Read by mailcore.wire at import: set before anything imports mailcore.
os.environ["MAILCORE_STRICT_WIRE"] = "1"

# Make ``import tests.support.servers`` work under a bare ``pytest`` too (``python -m pytest``
# already has the repository root on sys.path).
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import _pytest.runner  # noqa: E402
import pytest  # noqa: E402

import mailcore.wire  # noqa: E402

# pytest writes PYTEST_CURRENT_TEST into the process environment at each phase of every test:
# a libc setenv(), which is not safe while another thread reads the environment with getenv()
# (Chromium's threads in Qt WebEngine, glib's, getaddrinfo() in the worker pool). A fresh
# Debian 12 root segfaulted in os.environ.__setitem__ there, between two window tests. Nothing
# here reads the variable, so pytest is asked not to write it.
_pytest.runner._update_current_test_var = lambda item, when: None  # noqa: SLF001
from tests.support.servers import (  # noqa: E402
    TEST_PASSWORD,
    TEST_USER,
    Certificates,
    SilentServer,
    SMTPServer,
    held_refused_port,
)

assert mailcore.wire.STRICT, "mailcore.wire was imported before tests/conftest.py set the switch"

AUTH = {TEST_USER: TEST_PASSWORD}


# scripts/sandbox.sh's keyring daemon writes here how each of its runs ended; read at import,
# as tests/core's fixtures clear MAILCORE_* variables while their tests run.
_KEYRING_LOG = os.environ.get("MAILCORE_KEYRING_LOG")


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's reporter
    """If the sandbox's keyring daemon ended during the run (D-Bus then started it again,
    unlocked, at the next keyring call), say when and how, from the daemon's own words: a
    test that failed around then may have failed for that, and the cause is worth finding."""
    if not _KEYRING_LOG:
        return
    try:
        lines = Path(_KEYRING_LOG).read_text(errors="replace").splitlines()
    except OSError:
        return
    ends = [line for line in lines if " ended, exit status " in line]
    if not ends:
        return
    terminalreporter.section("keyring daemon")
    terminalreporter.write_line(
        f"the sandbox's gnome-keyring-daemon ended {len(ends)} time(s) during the run; D-Bus "
        "started it again, unlocked. Its log:")
    for line in lines[-60:]:
        if "keyring alias directory" not in line:
            terminalreporter.write_line("  " + line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Keep the switch in the environment while each test runs, for the processes it starts
    (tests/core's fixtures clear every MAILCORE_* variable before that)."""
    os.environ["MAILCORE_STRICT_WIRE"] = "1"
    return (yield)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """trustme CA + server ("localhost", 127.0.0.1) + client certificates, and ``.untrusted``."""
    return Certificates.create(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """Plain SMTP server, no TLS, no AUTH."""
    with SMTPServer("plain") as server:
        yield server


@pytest.fixture
def smtp_auth_server() -> Iterator[SMTPServer]:
    """Plain SMTP server with AUTH LOGIN/PLAIN for alice / "correct horse" (no TLS needed)."""
    with SMTPServer("plain", auth=AUTH) as server:
        yield server


@pytest.fixture
def starttls_server(certs: Certificates) -> Iterator[SMTPServer]:
    """STARTTLS server; AUTH (alice / "correct horse") offered only after STARTTLS."""
    with SMTPServer("starttls", certs=certs, auth=AUTH) as server:
        yield server


@pytest.fixture
def tls_server(certs: Certificates) -> Iterator[SMTPServer]:
    """Implicit-TLS (SMTPS) server with AUTH (alice / "correct horse")."""
    with SMTPServer("tls", certs=certs, auth=AUTH) as server:
        yield server


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """Accepts connections on 127.0.0.1 and never answers (for timeout tests)."""
    with SilentServer() as server:
        yield server


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1, bound but not listening during the test: connections are refused."""
    with held_refused_port() as port:
        yield port
