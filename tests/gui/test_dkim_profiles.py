"""DKIM signing per profile: the editor makes or imports the key into the keyring and shows the
TXT record to publish; a send through a signing profile carries a signature that dkimpy
verifies over the bytes the server received; a missing key is a sentence and the draft stays.

Real parts: the system keyring (gnome-keyring under scripts/sandbox.sh, own service name), an
aiosmtpd server on 127.0.0.1, keys made and read by OpenSSL's own command line tool, files in
tmp_path. The verifier's key lookup returns the profile's public record for its own name: a
local key table, as the inbox does for domains not published yet, not a stand-in for DNS.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import dkim as dkimpy
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QGuiApplication

from mailgui.model import dkim
from mailgui.model.paths import AppPaths
from mailgui.model.profiles import Profile, ProfileStore
from mailgui.model.secrets import SecretStore
from tests.gui.conftest import add_profile
from tests.support.gui import fill, send
from tests.support.servers import SMTPServer


def openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True,
                          check=True).stdout


def rsa_pem(tmp_path: Path, bits: int = 2048, name: str = "key.pem") -> Path:
    path = tmp_path / name
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}",
            "-out", str(path))
    return path


def public_b64(private_pem: bytes) -> str:
    """The p= of a key, as OpenSSL derives it (DER SubjectPublicKeyInfo, base64)."""
    der = openssl("pkey", "-pubout", "-outform", "DER", data=private_pem)
    return base64.b64encode(der).decode("ascii")


def record_p(record: str) -> str:
    tags = dict(t.strip().split("=", 1) for t in record.split(";") if t.strip())
    return tags["p"].replace(" ", "")


def lookup(name: str, record: str):  # noqa: ANN201 - dkimpy's dnsfunc
    """dkimpy's key lookup, answering from the one key the test knows (None for any other
    name, as DNS would for a name nobody published)."""
    wanted = name.rstrip(".").encode("ascii")

    def dnsfunc(asked: bytes, timeout: float = 5) -> bytes | None:
        return record.encode("ascii") if asked.rstrip(b".") == wanted else None

    return dnsfunc


def signing_profile(paths: AppPaths, port: int, **fields: object) -> Profile:
    fields = {"name": "Signed", "kind": "smtp", "host": "127.0.0.1", "port": port,
              "security": "none", "from_email": "Alice <alice@example.org>",
              "dkim_enabled": True, "dkim_domain": "example.org", "dkim_selector": "s2026",
              "timeout": 10, **fields}
    return add_profile(paths, **fields)


# -- the model ------------------------------------------------------------------------------


def test_the_profile_file_keeps_the_dkim_settings_and_never_a_key(paths: AppPaths) -> None:
    profile = signing_profile(paths, 2525)
    assert profile.signs
    text = paths.profiles_file.read_text()
    saved = json.loads(text)["profiles"][0]
    assert (saved["dkim_enabled"], saved["dkim_domain"], saved["dkim_selector"]) == (
        True, "example.org", "s2026")
    # a key put into the file by hand is not read back
    saved["dkim_private_key"] = "-----BEGIN PRIVATE KEY-----"
    paths.profiles_file.write_text(json.dumps({"version": 1, "profiles": [saved]}))
    again = ProfileStore(paths).user_profiles()[0]
    assert "dkim_private_key" not in again.to_dict() and again.signs
    # only SMTP profiles sign
    assert not Profile("Files", "file", dkim_enabled=True).signs


def test_defaults_domain_from_the_from_address_else_the_user_name() -> None:
    assert dkim.default_domain(Profile("A", from_email="Alice <alice@Example.ORG>")) == (
        "example.org")
    assert dkim.default_domain(Profile("B", username="bob@mail.example.net")) == (
        "mail.example.net")
    assert dkim.default_domain(Profile("C", username="bob")) == ""
    assert dkim.record_name("s2026", "example.org") == "s2026._domainkey.example.org"
    assert dkim.record_name("", "example.org") == ""


def test_keys_that_cannot_sign_are_refused_with_a_sentence(tmp_path: Path) -> None:
    good = rsa_pem(tmp_path)
    key = dkim.import_key_file(good)
    assert (key.kind, key.bits) == ("rsa", 2048)
    assert record_p(key.record) == public_b64(good.read_bytes())
    public = tmp_path / "public.pem"
    public.write_bytes(openssl("pkey", "-pubout", "-in", str(good)))
    short = rsa_pem(tmp_path, 512, "short.pem")
    ec = tmp_path / "ec.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(ec))
    ed = tmp_path / "ed25519.pem"
    openssl("genpkey", "-algorithm", "ED25519", "-out", str(ed))
    locked = tmp_path / "locked.pem"
    openssl("genpkey", "-algorithm", "RSA", "-aes-256-cbc", "-pass", "pass:secret",
            "-out", str(locked))
    text = tmp_path / "notes.txt"
    text.write_text("my DKIM key is somewhere else\n")
    cut = tmp_path / "cut.pem"
    lines = good.read_text().splitlines()
    cut.write_text("\n".join(lines[:5] + lines[-1:]) + "\n")  # a PEM with most of it gone
    expected = {
        public: "holds a public key, not a private key",
        short: "is an RSA key of 512 bits",
        ec: "is an EC key; mailcore signs with RSA keys",
        ed: "is an Ed25519 key; mailcore signs with RSA keys",
        locked: "is protected by a passphrase",
        text: "is not a PEM file",
        cut: "could not be read as a private key",
        tmp_path / "missing.pem": "can't be read",
    }
    for path, words in expected.items():
        with pytest.raises(dkim.DKIMKeyError) as caught:
            dkim.import_key_file(path)
        sentence = str(caught.value)
        assert sentence.startswith(f"The file {path.name} ") and words in sentence, sentence
        assert sentence.endswith("."), sentence


def test_the_signer_comes_from_the_keyring(secrets: SecretStore, paths: AppPaths,
                                           tmp_path: Path) -> None:
    profile = signing_profile(paths, 2525)
    with pytest.raises(dkim.DKIMUnavailable, match="no DKIM key is stored"):
        dkim.signer_for(profile, secrets)
    with pytest.raises(dkim.DKIMUnavailable, match="no secure keyring is available"):
        dkim.signer_for(profile, None)
    stored = dkim.import_key(secrets, profile.id, rsa_pem(tmp_path))
    assert secrets.get(f"{profile.id}:dkim") == stored.pem.decode("ascii")
    signer = dkim.signer_for(profile, secrets)
    assert signer is not None
    assert (signer.domain, signer.selector) == ("example.org", "s2026")
    assert dkim.signer_for(Profile("Plain", host="h"), secrets) is None  # does not sign


# -- the editor -----------------------------------------------------------------------------


def test_the_editor_generates_a_key_into_the_keyring_and_shows_the_record(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, monkeypatch) -> None:
    profile = add_profile(paths, name="Work", kind="smtp", host="smtp.example.org",
                          from_email="Alice <alice@example.org>")
    gui = make_gui(secrets, start_inbox=False)
    p = gui.controller.profiles
    d = p.open_dialog()
    p._fill_list(profile.id)
    assert d.dkim_group.isVisibleTo(d)
    qtbot.waitUntil(lambda: d.dkim_state.text().startswith("No key yet"), timeout=10000)
    assert d.dkim_record_value.text() == "" and not d.dkim_copy_value.isEnabled()
    assert d.dkim_domain.placeholderText() == "example.org"
    box = d.dkim_enabled  # (a click on its box: the row is wider than the box and its label)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))
    assert box.isChecked() and d.dkim_domain.text() == "example.org"  # the From domain, written in
    selector = d.dkim_selector.text()
    assert selector == dkim.default_selector()
    d.dkim_selector.setText("mail2026")
    assert d.dkim_record_name.text() == "mail2026._domainkey.example.org"
    qtbot.mouseClick(d.dkim_generate, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: d.dkim_state.text().startswith("Key stored in the keyring"),
                    timeout=30000)
    assert "RSA, 2048 bits" in d.dkim_state.text()
    value = d.dkim_record_value.text()
    assert value.startswith("v=DKIM1; k=rsa; p=")
    # the keyring itself holds the private key whose public half the record publishes
    pem = secrets.get(f"{profile.id}:dkim")
    assert pem is not None and "PRIVATE KEY-----" in pem
    assert record_p(value) == public_b64(pem.encode("ascii"))
    qtbot.mouseClick(d.dkim_copy_value, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == value
    qtbot.mouseClick(d.dkim_copy_name, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "mail2026._domainkey.example.org"
    # saved: the settings in the file, the key not
    qtbot.mouseClick(d.save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: ProfileStore(paths).get(profile.id).signs, timeout=10000)
    on_disk = paths.profiles_file.read_text()
    assert "mail2026" in on_disk and "PRIVATE KEY" not in on_disk
    assert record_p(value) not in on_disk and pem.splitlines()[1] not in on_disk
    # shown again after the save (read back from the keyring), a second Generate asks
    # before it replaces the key; No keeps it
    qtbot.waitUntil(lambda: d.dkim_generate.isEnabled(), timeout=10000)
    assert d.dkim_state.text().startswith("Key stored") and d.dkim_record_value.text() == value
    asked: list[str] = []
    monkeypatch.setattr(p.dkim, "confirm_replace", lambda name: asked.append(name) or False)
    qtbot.mouseClick(d.dkim_generate, Qt.MouseButton.LeftButton)
    assert asked == ["Work"] and secrets.get(f"{profile.id}:dkim") == pem
    # deleting the profile takes its key out of the keyring
    monkeypatch.setattr(p, "confirm_delete", lambda _profile: True)
    qtbot.mouseClick(d.delete, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: p.runner.busy == 0, timeout=10000)  # (the removal, on the pool)
    assert secrets.get(f"{profile.id}:dkim") is None


def test_the_editor_imports_a_pem_file_and_refuses_a_bad_one(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, tmp_path: Path,
        monkeypatch) -> None:
    profile = add_profile(paths, name="Work", kind="smtp", host="smtp.example.org",
                          from_email="alice@example.org", dkim_enabled=True,
                          dkim_domain="example.org", dkim_selector="imported")
    public = tmp_path / "public.pem"
    good = rsa_pem(tmp_path)
    public.write_bytes(openssl("pkey", "-pubout", "-in", str(good)))
    gui = make_gui(secrets, start_inbox=False)
    p = gui.controller.profiles
    d = p.open_dialog()
    p._fill_list(profile.id)
    qtbot.waitUntil(lambda: d.dkim_state.text().startswith("No key yet"), timeout=10000)
    chosen = [str(public), str(good)]
    monkeypatch.setattr(p.dkim, "choose_key_file", lambda: chosen.pop(0))
    qtbot.mouseClick(d.dkim_import, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "public key" in d.dkim_state.text(), timeout=10000)
    assert d.dkim_state.text() == (
        "The file public.pem holds a public key, not a private key. DKIM signs with the "
        "private key; the public one goes into the DNS record.")
    assert d.dkim_generate.isEnabled() and d.dkim_import.isEnabled()
    assert secrets.get(f"{profile.id}:dkim") is None  # nothing stored
    qtbot.mouseClick(d.dkim_import, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: d.dkim_state.text().startswith("Key stored"), timeout=10000)
    stored = secrets.get(f"{profile.id}:dkim")
    assert stored is not None
    assert public_b64(stored.encode("ascii")) == public_b64(good.read_bytes())
    assert record_p(d.dkim_record_value.text()) == public_b64(good.read_bytes())
    assert d.dkim_record_name.text() == "imported._domainkey.example.org"
    # shown again after another profile, it is read back from the keyring
    other = add_profile(paths, name="Other", kind="smtp", host="h.example.org")
    gui.controller.profile_store.load()
    p._fill_list(other.id)
    qtbot.waitUntil(lambda: d.dkim_state.text().startswith("No key yet"), timeout=10000)
    p.dkim.keys.clear()
    p._fill_list(profile.id)
    qtbot.waitUntil(lambda: d.dkim_state.text().startswith("Key stored"), timeout=10000)
    assert record_p(d.dkim_record_value.text()) == public_b64(good.read_bytes())


# -- sending --------------------------------------------------------------------------------


def test_a_signing_profile_sends_mail_that_verifies(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore, tmp_path: Path) -> None:
    with SMTPServer("plain") as server:
        profile = signing_profile(paths, server.port)
        key = dkim.import_key(secrets, profile.id, rsa_pem(tmp_path))
        gui = make_gui(secrets, start_inbox=False)
        assert gui.controller.target.select(profile.id)
        fill(gui, to="Bob <bob@example.com>", subject="Signed", body="Hello Bob.\n\n-- \nAlice")
        outcome = send(gui, qtbot)
        assert outcome.ok, outcome.sentence
        raw = server.handler.wait_for(1)[0].data
    assert raw.startswith(b"DKIM-Signature:")
    signature = raw.split(b"\r\n\r\n", 1)[0]
    assert b"d=example.org" in signature and b"s=s2026" in signature
    dnsfunc = lookup("s2026._domainkey.example.org", key.record)
    assert dkimpy.verify(raw, dnsfunc=dnsfunc)
    # changed in transit, it no longer verifies: a body byte, a signed header
    assert not dkimpy.verify(raw.replace(b"Hello Bob.", b"Hello Bub."), dnsfunc=dnsfunc)
    assert not dkimpy.verify(raw.replace(b"Subject: Signed", b"Subject: SigneD"),
                             dnsfunc=dnsfunc)
    # and another key's record does not verify it either
    other = dkim.import_key_file(rsa_pem(tmp_path, name="other.pem"))
    assert not dkimpy.verify(raw, dnsfunc=lookup("s2026._domainkey.example.org",
                                                 other.record))
    assert any("DKIM: signing as d=example.org, s=s2026" in line
               for line in outcome.transcript)


def test_a_signing_profile_without_its_key_sends_nothing_and_keeps_the_draft(  # noqa: ANN001
        make_gui, qtbot, paths: AppPaths, secrets: SecretStore) -> None:
    with SMTPServer("plain") as server:
        profile = signing_profile(paths, server.port)
        gui = make_gui(secrets, start_inbox=False)
        assert gui.controller.target.select(profile.id)
        fill(gui, subject="Unsigned", body="keep me")
        outcome = send(gui, qtbot)
        assert not outcome.ok and outcome.error is not None and outcome.error.kind == "dkim"
        assert outcome.sentence == (
            "The profile \u201cSigned\u201d signs with DKIM, but no DKIM key is stored for "
            "it. Open Profiles to generate or import a key, or untick \u201cSign with "
            "DKIM\u201d.")
        banner = gui.window.compose.banner
        assert banner.kind == "error" and outcome.sentence in banner.text.text()
        assert server.handler.connections == 0 and server.handler.messages == []
        draft = gui.controller.compose.draft
        assert (draft.subject, draft.body) == ("Unsigned", "keep me")
        assert gui.window.compose.subject.text() == "Unsigned"


def test_the_mailcore_command_signs_with_a_signing_profile(
        secrets: SecretStore, paths: AppPaths, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """``mailcore --profile NAME`` takes the profile's DKIM key from the keyring, as the window
    does; a signing profile without its key is a usage error, not an unsigned send."""
    import io

    from mailcore import cli
    from mailgui.model.cli_profiles import load_profile

    profile = signing_profile(paths, 2525)
    without = load_profile("Signed", paths, secrets)
    assert "dkim" not in without and "no DKIM key is stored" in without["dkim_problem"]
    key = dkim.import_key(secrets, profile.id, rsa_pem(tmp_path))
    loaded = load_profile("Signed", paths, secrets)
    signer = loaded["dkim"]
    assert (signer.domain, signer.selector) == ("example.org", "s2026")
    # the command with that profile: --dump prints the signed bytes
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    args = ["--to", "bob@example.net", "--subject", "Signed", "--body", "hello", "--dump"]
    # the entry point reads the user's own profiles; here, this test's folder and keyring
    monkeypatch.setattr(cli, "load_profile", lambda name: load_profile(name, paths, secrets))
    err = io.StringIO()
    assert cli.run(["--profile", "Signed", *args], stdout=out, stderr=err) == 0, err.getvalue()
    out.flush()
    raw = out.buffer.getvalue()
    assert raw.startswith(b"DKIM-Signature:")
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert dkimpy.verify(crlf, dnsfunc=lookup("s2026._domainkey.example.org", key.record))
    dkim.remove_key(secrets, profile.id)
    err = io.StringIO()
    assert cli.run(["--profile", "Signed", *args], stdout=io.StringIO(), stderr=err) == 2
    assert "no DKIM key is stored" in err.getvalue()
