"""``mailcore --profile NAME`` uses a mailgui profile: server settings from the
profile file, the password from the real keyring (the test run's private
gnome-keyring, see scripts/sandbox.sh)."""

from __future__ import annotations

import io
import json

import pytest

from mailcore.cli import EXIT_AUTH, EXIT_OK, EXIT_USAGE, run
from mailgui.model.paths import AppPaths
from mailgui.model.profiles import Profile, ProfileStore
from mailgui.model.secrets import SecretStore
from tests.support.servers import TEST_PASSWORD, TEST_USER


@pytest.fixture
def paths(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    default = AppPaths.default()
    assert str(default.config_dir).startswith(str(tmp_path))
    return default


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    return (
        run(list(argv), stdin=io.StringIO(""), stdout=out, stderr=err),
        out.getvalue(),
        err.getvalue(),
    )


def test_profile_with_password_from_the_keyring(paths, starttls_server, certs):
    profile = Profile(
        "Test server",
        "smtp",
        from_email="Profile Sender <sender@example.com>",
        host=starttls_server.host,
        port=starttls_server.port,
        security="starttls",
        username=TEST_USER,
        ca_file=certs.ca_file,
        timeout=5,
    )
    ProfileStore(paths).upsert(profile)
    secrets = SecretStore()
    assert secrets.status().usable, secrets.status().sentence
    secrets.set(profile.id, TEST_PASSWORD)
    try:
        assert TEST_PASSWORD not in paths.profiles_file.read_text()
        code, out, err = cli(
            "--profile", "test server", "--to", "a@example.com", "--body", "hi", "--transcript"
        )
        assert code == EXIT_OK, err
        (record,) = starttls_server.handler.wait_for(1)
        assert record.session_tls and record.auth_login == TEST_USER
        assert record.mail_from == "sender@example.com"
        assert TEST_PASSWORD not in out + err
    finally:
        secrets.delete(profile.id)


def test_profile_without_a_saved_password(paths, starttls_server, certs):
    profile = Profile(
        "No secret",
        "smtp",
        host=starttls_server.host,
        port=starttls_server.port,
        username=TEST_USER,
        ca_file=certs.ca_file,
    )
    ProfileStore(paths).upsert(profile)
    code, _, err = cli("--profile", "No secret", "--to", "a@example.com", "--body", "x")
    assert code == EXIT_AUTH
    assert "needs a password" in err and "--password-env" in err
    assert starttls_server.handler.messages == []


def test_unknown_profile_lists_the_known_ones(paths):
    ProfileStore(paths).upsert(Profile("Work relay", "smtp", host="127.0.0.1"))
    code, _, err = cli("--profile", "nope", "--to", "a@example.com", "--body", "x")
    assert code == EXIT_USAGE
    assert "'Work relay'" in err and "'Console'" in err


def test_builtin_file_profile(paths):
    code, _, err = cli("--profile", "Files", "--to", "a@example.com", "--body", "x")
    assert code == EXIT_OK, err
    (written,) = paths.file_backend_dir.iterdir()
    assert b"To: a@example.com" in written.read_bytes()
    data = json.loads(paths.profiles_file.read_text()) if paths.profiles_file.exists() else {}
    assert "password" not in json.dumps(data)
