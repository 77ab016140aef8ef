"""No password over an unencrypted connection to a host other than loopback,
unless the caller opts in. The remote host is a test host with the address
192.0.2.25 inside a private network namespace made for this test (root)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("netns_auth.py")


def test_password_refused_in_the_clear_to_a_remote_host():
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.strip().splitlines()[-1])

    refused = results["refused"]
    assert refused["error"] == "InsecureAuthError"
    assert "unencrypted" in refused["text"] and "EMAIL_ALLOW_INSECURE_AUTH" in refused["text"]
    assert "correct horse" not in refused["text"]
    assert results["refused_attempts"] == []  # the server never saw an AUTH command
    assert results["refused_silently"] == {"sent": 0}
    assert results["no_password"] == {"sent": 1}
    assert results["opt_in_argument"] == {"sent": 1}
    assert results["opt_in_setting"] == {"sent": 1}
    assert len(results["attempts"]) == 2  # the two opt-ins logged in
    assert results["delivered"] == 3
