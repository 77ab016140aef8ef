"""Django's own mail tests pass against mailcore."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).with_name("django_suite.py")
SUITE = Path(sys.prefix) / "django-mail-tests"


def test_django_mail_test_suite_passes_against_mailcore(tmp_path):
    assert (SUITE / "mail" / "tests.py").is_file(), (
        f"Django's mail tests are missing from {SUITE}: run scripts/bootstrap.sh"
    )
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(SUITE), "-v"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    ran = re.search(r"Ran (\d+) tests?", output)
    assert ran, output[-3000:]
    assert int(ran.group(1)) >= 200
    assert proc.returncode == 0, output[-6000:]
    assert re.search(r"^OK\b", output, re.M), output[-3000:]
    assert "skipped" not in output.split("Ran ")[-1]
