"""DKIM: mailcore signs (library, backends, CLI); dkimpy, Perl's Mail::DKIM and mailcore's own
verify() check it, with the keys served by a real DNS server (dnsmasq) on 127.0.0.1.

The second verifier is Debian's Mail::DKIM (libmail-dkim-perl), pointed at the loopback dnsmasq
through a Net::DNS::Resolver. OpenDKIM's opendkim-testmsg is not used: Debian's build (2.11.0
beta2) answers "dkim_chunk(): Syntax error" to every message, even an unsigned three-line one.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import io
import os
import random
import shutil
import subprocess
import tracemalloc

import dkim as dkimpy
import pytest
from dkim.canonicalization import Relaxed, Simple

import mailcore
from mailcore.checks.base import MessageView, Severity, aligned
from mailcore.checks.dkim import (
    BodyHash,
    DKIMSigner,
    dns_name,
    generate_key,
    key_bits,
    public_record,
    run,
    verify,
)
from mailcore.cli import EXIT_MESSAGE, EXIT_OK, EXIT_USAGE
from mailcore.cli import run as cli_run
from mailcore.wire import serialize
from tests.support.dns import DNSServer
from tests.support.servers import SMTPServer

DOMAIN = "example.com"
CANONICALIZATIONS = [("relaxed", "relaxed"), ("simple", "simple"), ("relaxed", "simple")]

PERL_VERIFIER = r"""
use strict; use warnings;
use Mail::DKIM::Verifier; use Net::DNS::Resolver;
my $port = shift;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 1, retry => 2,
    udp_timeout => 5, tcp_timeout => 5));
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) { $line =~ s/\015?\012\z//; $dkim->PRINT("$line\015\012"); }
$dkim->CLOSE;
print "result=", $dkim->result, "\n";
for my $sig ($dkim->signatures) {
    print "sig=", $sig->result, " d=", ($sig->domain // ''), " detail=",
          ($sig->result_detail // ''), "\n";
}
"""


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys():
    """One 2048-bit key per selector; s1024 is a 1024-bit one, weak a 512-bit one (made with
    openssl: generate_key refuses under 1024 bits)."""
    made = {"s1": generate_key(), "s2": generate_key(), "s1024": generate_key(1024)}
    weak = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                           "rsa_keygen_bits:512"], check=True, capture_output=True).stdout
    made["weak"] = weak
    return made


@pytest.fixture(scope="module")
def dns_server(keys):
    """dnsmasq on 127.0.0.1 publishing every key of ``keys`` under example.com (and s1 also
    under other.example.net), started for this module and stopped after it."""
    if shutil.which("dnsmasq") is None and not os.path.exists("/usr/sbin/dnsmasq"):
        pytest.fail("dnsmasq is not installed (apt-get install dnsmasq-base)")
    records = {dns_name(sel, DOMAIN): public_record(key) for sel, key in keys.items()}
    records[dns_name("s1", "other.example.net")] = public_record(keys["s1"])
    with DNSServer(records) as server:
        yield server


@pytest.fixture
def smtp_server():
    with SMTPServer("plain", pipelining=True) as server:
        yield server


def signer(keys, selector="s1", canonicalize=("relaxed", "relaxed"), domain=DOMAIN):
    return DKIMSigner(domain, selector, keys[selector], canonicalize=canonicalize)


def dkimpy_verify(raw: bytes, dns_server: DNSServer) -> bool:
    """dkimpy's own verify(), its keys fetched from the loopback dnsmasq with dnspython."""
    resolver = dns_server.resolver()

    def get_txt(name: bytes, timeout: float = 5) -> bytes | None:
        import dns.resolver

        try:
            answer = resolver.resolve(name.decode(), "TXT")
        except dns.resolver.NXDOMAIN:
            return None
        return b"".join(answer[0].strings)

    return dkimpy.verify(raw, dnsfunc=get_txt)


def perl_verify(raw: bytes, dns_server: DNSServer) -> str:
    """Mail::DKIM's verdict ("pass", "fail", "none", ...), its keys from the loopback dnsmasq."""
    done = subprocess.run(["perl", "-e", PERL_VERIFIER, str(dns_server.port)], input=raw,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stdout.decode().splitlines()
    assert lines and lines[0].startswith("result="), done.stdout
    return lines[0].split("=", 1)[1]


def make_message(**kwargs) -> mailcore.EmailMultiAlternatives:
    msg = mailcore.EmailMultiAlternatives(
        subject=kwargs.pop("subject", "Quarterly report \u2014 caf\u00e9"),
        body=kwargs.pop("body", "Hello,\n\nthe   report is attached.  \n.leading dot line\n\n"),
        from_email=kwargs.pop("from_email", "Ann <ann@example.com>"),
        to=kwargs.pop("to", ["bob@example.org"]),
        cc=["carol@example.org"],
        headers={"List-Unsubscribe": "<mailto:unsubscribe@example.com>"},
        **kwargs,
    )
    msg.attach_alternative("<p>Hello,</p>\n<p>the report\tis attached.</p>\n", "text/html")
    return msg


def altered(raw: bytes, how: str) -> bytes:
    if how == "body":
        head, sep, body = raw.partition(b"\r\n\r\n")
        assert b"Hello," in body
        return head + sep + body.replace(b"Hello,", b"Hallo,", 1)
    assert b"\r\nSubject: " in raw
    return raw.replace(b"\r\nSubject: ", b"\r\nSubject: Re: ", 1)


# -- the body hash ---------------------------------------------------------------------------


def test_streamed_body_hash_is_dkimpys_canonical_body_hash():
    rng = random.Random(14)
    pieces = [b"a", b" ", b"\t", b"\r\n", b"\n", b"\r", b"x  y", b"\r\n\r\n", b"  \r\n", b"."]
    for _ in range(2000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        _headers, parsed = dkimpy.rfc822_parse(b"From: a@example.com\r\n\r\n" + body)
        for relaxed, algorithm in ((True, Relaxed), (False, Simple)):
            hasher = BodyHash(relaxed)
            at = 0
            while at < len(body):
                step = rng.randint(1, 7)
                hasher.update(body[at:at + step])
                at += step
            expected = hashlib.sha256(algorithm.canonicalize_body(parsed)).digest()
            assert hasher.digest() == expected, (body, relaxed)


def test_public_record_is_the_keys_public_half_as_openssl_writes_it(keys, tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(keys["s1"])
    der = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    assert public_record(keys["s1"]) == "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    assert key_bits(keys["s1"]) == 2048 and key_bits(keys["s1024"]) == 1024
    # a PKCS#1 key ("BEGIN RSA PRIVATE KEY") is read too, and gives the same record
    pkcs1 = subprocess.run(["openssl", "pkey", "-in", str(path), "-traditional"],
                           check=True, capture_output=True).stdout
    assert b"BEGIN RSA PRIVATE KEY" in pkcs1
    assert public_record(pkcs1) == public_record(keys["s1"])


def test_signer_refuses_what_it_cannot_sign_with(keys):
    with pytest.raises(ValueError, match="not a PEM RSA private key"):
        DKIMSigner(DOMAIN, "s1", b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----")
    with pytest.raises(ValueError, match="not a domain name"):
        DKIMSigner("exa mple.com\r\nBcc: x", "s1", keys["s1"])
    with pytest.raises(ValueError, match="not a domain name"):
        DKIMSigner(DOMAIN, "s1; d=evil.example", keys["s1"])
    with pytest.raises(ValueError, match="From"):
        DKIMSigner(DOMAIN, "s1", keys["s1"], headers=("subject",))
    with pytest.raises(ValueError, match="relaxed"):
        DKIMSigner(DOMAIN, "s1", keys["s1"], canonicalize=("relaxed", "nofws"))
    with pytest.raises(ValueError, match="1024"):
        generate_key(512)
    assert "PRIVATE" not in repr(DKIMSigner(DOMAIN, "s1", keys["s1"]))
    # a message without From can't be signed: a sentence, not dkimpy's exception
    with pytest.raises(ValueError, match="no From"):
        DKIMSigner(DOMAIN, "s1", keys["s1"]).sign(b"Subject: x\r\n\r\nbody\r\n")


# -- sending through a real SMTP server ------------------------------------------------------


@pytest.mark.parametrize("canonicalize", CANONICALIZATIONS, ids="/".join)
def test_sent_message_verifies_with_dkimpy_perl_and_mailcore(
    keys, dns_server, smtp_server, tmp_path, canonicalize
):
    attachment = tmp_path / "notes.txt"
    attachment.write_text("line one  \n\n.dot line\nlast\t\n\n\n")
    msg = make_message()
    msg.attach_file(str(attachment))
    connection = mailcore.get_connection(
        "smtp", host=smtp_server.host, port=smtp_server.port,
        dkim=signer(keys, canonicalize=canonicalize))
    assert connection.send_messages([msg]) == 1
    raw = smtp_server.wait_for(1)[0].data

    assert raw.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=" + "/".join(canonicalize)
                          .encode())
    assert dkimpy_verify(raw, dns_server)
    assert perl_verify(raw, dns_server) == "pass"
    [verdict] = verify(raw, nameserver=dns_server.address)
    assert (verdict.result, verdict.domain, verdict.selector) == ("pass", DOMAIN, "s1")
    assert verdict.key_bits == 2048
    # what was signed is what went out: the received bytes are the serialised message
    # (before dot-stuffing) with the signature in front
    signed_headers = set(verdict.headers)
    assert {"from", "to", "cc", "subject", "date", "message-id", "mime-version",
            "content-type", "list-unsubscribe"} <= signed_headers
    assert "bcc" not in signed_headers


@pytest.mark.parametrize("how", ["body", "subject"])
@pytest.mark.parametrize("canonicalize", CANONICALIZATIONS, ids="/".join)
def test_a_message_altered_after_signing_fails_everywhere(
    keys, dns_server, smtp_server, canonicalize, how
):
    connection = mailcore.get_connection(
        "smtp", host=smtp_server.host, port=smtp_server.port,
        dkim=signer(keys, canonicalize=canonicalize))
    connection.send_messages([make_message()])
    raw = altered(smtp_server.wait_for(1)[0].data, how)

    assert not dkimpy_verify(raw, dns_server)
    assert perl_verify(raw, dns_server) == "fail"
    [verdict] = verify(raw, nameserver=dns_server.address)
    assert verdict.result == "fail"
    assert ("body" if how == "body" else "header") in verdict.reason
    result = run(MessageView(raw), nameserver=dns_server.address)
    assert [f.code for f in result.findings if f.severity is Severity.ERROR] == ["dkim.fail"]


def test_pipelined_messages_are_each_signed(keys, dns_server, smtp_server):
    messages = [make_message(subject=f"message {n}", body=f"body {n}\n") for n in range(3)]
    connection = mailcore.get_connection("smtp", host=smtp_server.host,
                                         port=smtp_server.port, dkim=signer(keys))
    assert connection.send_messages(messages) == 3
    received = smtp_server.wait_for(3)
    assert len({r.data.split(b"\r\n\r\n")[0] for r in received}) == 3
    for message in received:
        assert dkimpy_verify(message.data, dns_server)
        assert perl_verify(message.data, dns_server) == "pass"


def test_large_attachment_is_signed_streaming_and_verifies(keys, dns_server, smtp_server,
                                                           tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(3).randbytes(6 * 1024 * 1024))
    msg = make_message()
    msg.attach_file(str(big), "application/octet-stream")
    dkim_signer = signer(keys)

    # the signature is computed a chunk at a time: signing costs (nearly) no memory beyond
    # what streaming the message costs anyway (a chunk of base64 being made), and far less
    # than a copy of the message
    data = serialize(msg, linesep="\r\n")
    tracemalloc.start()
    try:
        for _chunk in data.chunks():
            pass
        _current, stream_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        signed = dkim_signer.sign_serialized(data)
        _current, sign_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert signed.size > 8 * 1024 * 1024
    assert sign_peak < stream_peak + 1024 * 1024, (sign_peak, stream_peak)
    assert sign_peak < signed.size * 0.9, (sign_peak, signed.size)
    assert dkimpy_verify(signed.getvalue(), dns_server)

    connection = mailcore.get_connection("smtp", host=smtp_server.host,
                                         port=smtp_server.port, dkim=dkim_signer)
    assert connection.send_messages([msg]) == 1
    raw = smtp_server.wait_for(1)[0].data
    assert len(raw) == connection.last_results[0].size
    assert dkimpy_verify(raw, dns_server)
    assert perl_verify(raw, dns_server) == "pass"
    assert verify(raw, nameserver=dns_server.address)[0].result == "pass"
    assert verify(altered(raw, "body"), nameserver=dns_server.address)[0].result == "fail"


def test_the_email_dkim_setting_and_a_dict_with_a_key_file(keys, dns_server, smtp_server,
                                                           tmp_path):
    key_file = tmp_path / "s2.pem"
    key_file.write_bytes(keys["s2"])
    setting = {"domain": DOMAIN, "selector": "s2", "key_file": str(key_file),
               "canonicalize": "simple/relaxed"}
    with mailcore.settings.override(EMAIL_DKIM=setting):
        connection = mailcore.get_connection("smtp", host=smtp_server.host,
                                             port=smtp_server.port)
    assert connection.dkim.selector == "s2"
    connection.send_messages([make_message()])
    raw = smtp_server.wait_for(1)[0].data
    assert b"c=simple/relaxed" in raw.split(b"\r\n\r\n")[0]
    assert perl_verify(raw, dns_server) == "pass"
    assert verify(raw, nameserver=dns_server.address)[0].selector == "s2"

    with pytest.raises(FileNotFoundError):
        mailcore.get_connection("console", dkim={**setting, "key_file": str(tmp_path / "no")})


def test_console_and_file_backends_write_signed_messages(keys, dns_server, tmp_path):
    stream = io.StringIO()
    console = mailcore.get_connection("console", stream=stream, dkim=signer(keys))
    console.send_messages([make_message()])
    text = stream.getvalue()
    assert text.startswith("DKIM-Signature: ")
    raw = text.rsplit("\n" + "-" * 79, 1)[0].encode("utf-8")
    assert dkimpy_verify(raw, dns_server)
    assert perl_verify(raw, dns_server) == "pass"

    folder = tmp_path / "out"
    filebased = mailcore.get_connection("file", file_path=str(folder),
                                        dkim=signer(keys, canonicalize=("simple", "simple")))
    filebased.send_messages([make_message()])
    raw = open(filebased.filename, "rb").read().rsplit(b"\n" + b"-" * 79, 1)[0]
    assert raw.startswith(b"DKIM-Signature: ") and b"\r\n" not in raw
    assert dkimpy_verify(raw, dns_server)
    assert perl_verify(raw, dns_server) == "pass"


# -- verify() --------------------------------------------------------------------------------


def test_pasted_keys_verify_without_dns(keys):
    raw = signer(keys).sign(serialize(make_message()).getvalue())
    record = public_record(keys["s1"])
    [verdict] = verify(raw, keys={"S1._domainkey.Example.com.": record})
    assert verdict.result == "pass"
    # a record pasted as zone-file strings is joined
    zone = '"' + record[:100] + '" "' + record[100:] + '"'
    assert verify(raw, keys={"s1._domainkey.example.com": zone})[0].result == "pass"
    # the key of another selector is not the signer's: the signature fails
    other = {"s1._domainkey.example.com": public_record(keys["s2"])}
    assert verify(raw, keys=other)[0].result == "fail"
    # no key and no DNS: it can't be checked, and says why
    [unknown] = verify(raw)
    assert unknown.result == "temperror"
    assert unknown.reason == "no key for s1._domainkey.example.com (DNS lookups are off)"
    [none] = verify(b"From: a@example.com\r\n\r\nhi\r\n")
    assert (none.result, none.reason) == ("none", "the message is not signed")


def test_verify_through_dns_names_what_is_missing(keys, dns_server):
    raw = signer(keys).sign(serialize(make_message()).getvalue())
    assert verify(raw, dns=dns_server.resolver())[0].result == "pass"
    unpublished = DKIMSigner(DOMAIN, "nokey", keys["s1"]).sign(
        serialize(make_message()).getvalue())
    [verdict] = verify(unpublished, nameserver=dns_server.address)
    assert verdict.result == "permerror"
    assert "nokey._domainkey.example.com" in verdict.reason
    assert "does not exist" in verdict.reason


def test_every_signature_gets_a_verdict(keys, dns_server):
    raw = serialize(make_message()).getvalue()
    twice = signer(keys, "s2").sign(signer(keys, "s1").sign(raw))
    verdicts = verify(twice, nameserver=dns_server.address)
    assert [(v.selector, v.result) for v in verdicts] == [("s2", "pass"), ("s1", "pass")]
    assert perl_verify(twice, dns_server) == "pass"


# -- the check -------------------------------------------------------------------------------


@pytest.mark.parametrize(("from_domain", "d", "expected"), [
    ("shop.example.com", "shop.example.com", True),
    ("shop.example.com", "example.com", True),  # a parent
    ("shop.example.com", "mail.example.com", True),  # a sibling: same organizational domain
    ("example.com", "mail.example.com", True),  # a child
    ("Shop.Example.COM.", "example.com", True),
    ("shop.example.com", "mailer.example.net", False),
    ("shop.co.uk", "other.co.uk", False),  # a two-label public suffix is not alignment
    ("shop.co.uk", "co.uk", False),
    ("a.shop.co.uk", "shop.co.uk", True),
])
def test_relaxed_alignment(from_domain, d, expected):
    assert aligned(from_domain, d) is expected


def codes(result, severity=None):
    return [f.code for f in result.findings if severity is None or f.severity is severity]


def test_check_unsigned_signed_and_signed_in_the_composer(keys, dns_server):
    raw = serialize(make_message()).getvalue()
    unsigned = run(MessageView(raw))
    assert codes(unsigned) == ["dkim.not-signed"]
    assert unsigned.findings[0].severity is Severity.INFO
    assert "can't tell it is from your domain" in unsigned.findings[0].message

    signed = run(MessageView(signer(keys).sign(raw)), nameserver=dns_server.address)
    assert codes(signed) == ["dkim.pass"]
    assert signed.findings[0].severity is Severity.INFO
    assert signed.summary["verdicts"][0]["result"] == "pass"

    # the composer's draft is not signed yet: signed with the profile's signer and checked
    # with its own key, no DNS
    draft = run(MessageView(raw), signer=signer(keys))
    assert codes(draft) == ["dkim.pass", "dkim.record-not-checked"]
    assert "profile’s own key" in draft.findings[0].message
    assert "was not checked (DNS lookups are off)" in draft.findings[1].message
    assert public_record(keys["s1"]) in draft.findings[1].fix
    assert draft.summary["public_record"] == public_record(keys["s1"])
    assert draft.summary["dns_name"] == "s1._domainkey.example.com"
    # with DNS on, what is published decides: s1 is, so it simply passes ...
    published = run(MessageView(raw), signer=signer(keys), nameserver=dns_server.address)
    assert codes(published) == ["dkim.pass"]
    # ... a selector nobody published fails as receivers would see it, and says what to publish
    unpublished = DKIMSigner(DOMAIN, "s9", keys["s1"])
    missing = run(MessageView(raw), signer=unpublished, nameserver=dns_server.address)
    assert codes(missing, Severity.ERROR) == ["dkim.permerror", "dkim.record-not-published"]
    assert unpublished.public_record in missing.findings[-1].fix
    # a record pasted for the selector is used instead of the signer's own key: a wrong one fails
    wrong = {unpublished.dns_name: public_record(keys["s2"])}
    pasted = run(MessageView(raw), signer=unpublished, keys=wrong)
    assert "dkim.record-not-published" in codes(pasted, Severity.ERROR)

    no_key = run(MessageView(signer(keys).sign(raw)))
    assert codes(no_key, Severity.WARNING) == ["dkim.no-key"]


def test_check_alignment_weak_keys_and_the_length_tag(keys, dns_server):
    raw = serialize(make_message()).getvalue()
    other = run(MessageView(signer(keys, domain="other.example.net").sign(raw)),
                nameserver=dns_server.address)
    assert codes(other) == ["dkim.pass", "dkim.not-aligned"]
    assert "example.com" in other.findings[1].message
    assert "rfc7489" in other.findings[1].reference
    assert other.findings[1].data == {"from_domain": "example.com",
                                      "dkim_domains": ["other.example.net"]}
    # a second signature by a mailing service beside the sender's own: DMARC is satisfied
    both = signer(keys, domain="other.example.net").sign(signer(keys).sign(raw))
    assert codes(run(MessageView(both), nameserver=dns_server.address)) == ["dkim.pass",
                                                                          "dkim.pass"]

    weak = run(MessageView(signer(keys, "weak").sign(raw)), nameserver=dns_server.address)
    assert codes(weak, Severity.ERROR) == ["dkim.weak-key"]
    assert f"{key_bits(keys['weak'])} bits" in weak.findings[0].message
    short = run(MessageView(signer(keys, "s1024").sign(raw)), nameserver=dns_server.address)
    assert codes(short) == ["dkim.pass", "dkim.short-key"]
    assert short.findings[1].severity is Severity.WARNING

    # l=: dkimpy's own signer with length=True
    header = dkimpy.sign(raw, b"s1", DOMAIN.encode(), keys["s1"], length=True)
    limited = run(MessageView(header + raw), nameserver=dns_server.address)
    assert codes(limited) == ["dkim.pass", "dkim.length-tag"]
    assert limited.findings[1].severity is Severity.WARNING
    # dkimpy signs relaxed/simple by default: l= is the length of the simple canonical body
    length = limited.summary["verdicts"][0]["length"]
    assert length == len(Simple.canonicalize_body(dkimpy.rfc822_parse(raw)[1]))


def test_check_never_raises_on_a_malformed_message(keys):
    for raw in (b"", b"\x00\xff garbage", b"DKIM-Signature: v=1; nonsense\r\n\r\nbody\r\n",
                b"DKIM-Signature: \r\nFrom: a@example.com\r\n\r\nx\r\n"):
        result = run(MessageView(raw))
        assert result.error or result.findings


# -- the CLI ---------------------------------------------------------------------------------


class TTY(io.StringIO):
    def isatty(self):
        return True


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = cli_run(list(argv), stdin=TTY(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


MESSAGE_FLAGS = ("--to", "bob@example.org", "--from", "ann@example.com", "--subject", "signed",
                 "--body", "hello  there\n\n")


def test_cli_signs_console_output_that_verifies(keys, dns_server, tmp_path):
    key_file = tmp_path / "s1.pem"
    key_file.write_bytes(keys["s1"])
    code, out, err = cli(*MESSAGE_FLAGS, "--backend", "console", "--dkim-key", str(key_file),
                         "--dkim-selector", "s1", "--dkim-domain", DOMAIN)
    assert (code, err) == (EXIT_OK, "")
    raw = out.rsplit("\n" + "-" * 79, 1)[0].encode()
    assert raw.startswith(b"DKIM-Signature: ")
    assert dkimpy_verify(raw, dns_server)
    assert perl_verify(raw, dns_server) == "pass"
    assert verify(raw, keys={"s1._domainkey.example.com": public_record(keys["s1"])})[
        0].result == "pass"

    code, out, err = cli(*MESSAGE_FLAGS, "--dump", "--dkim-key", str(key_file),
                         "--dkim-selector", "s1", "--dkim-domain", DOMAIN)
    assert code == EXIT_OK and perl_verify(out.encode(), dns_server) == "pass"


def test_cli_sends_signed_over_smtp(keys, dns_server, smtp_server, tmp_path):
    key_file = tmp_path / "s1.pem"
    key_file.write_bytes(keys["s1"])
    code, _out, err = cli(*MESSAGE_FLAGS, "--host", smtp_server.host, "--port",
                          str(smtp_server.port), "--dkim-key", str(key_file),
                          "--dkim-selector", "s1", "--dkim-domain", DOMAIN)
    assert code == EXIT_OK, err
    raw = smtp_server.wait_for(1)[0].data
    assert perl_verify(raw, dns_server) == "pass"
    assert dkimpy_verify(raw, dns_server)


def test_cli_dkim_flag_errors(keys, tmp_path):
    key_file = tmp_path / "s1.pem"
    key_file.write_bytes(keys["s1"])
    code, _out, err = cli(*MESSAGE_FLAGS, "--backend", "console", "--dkim-key", str(key_file),
                          "--dkim-domain", DOMAIN)
    assert code == EXIT_USAGE
    assert "go together" in err and "--dkim-selector" in err

    code, out, err = cli(*MESSAGE_FLAGS, "--backend", "console", "--dkim-key",
                         str(tmp_path / "missing.pem"), "--dkim-selector", "s1",
                         "--dkim-domain", DOMAIN)
    assert (code, out) == (EXIT_MESSAGE, "")
    assert f"cannot read the DKIM key {tmp_path / 'missing.pem'}: no such file" in err

    not_a_key = tmp_path / "notes.txt"
    not_a_key.write_text("hello")
    code, out, err = cli(*MESSAGE_FLAGS, "--backend", "console", "--dkim-key", str(not_a_key),
                         "--dkim-selector", "s1", "--dkim-domain", DOMAIN)
    assert (code, out) == (EXIT_MESSAGE, "")
    assert "not a PEM RSA private key" in err

    code, _out, err = cli(*MESSAGE_FLAGS, "--backend", "console", "--dkim-key", str(key_file),
                          "--dkim-selector", "s1", "--dkim-domain", "bad domain")
    assert code == EXIT_USAGE and "not a domain name" in err


def test_received_message_parses_and_keeps_its_headers(keys, smtp_server):
    """The signature is one more header: the rest of the message is untouched."""
    msg = make_message()
    connection = mailcore.get_connection("smtp", host=smtp_server.host,
                                         port=smtp_server.port, dkim=signer(keys))
    connection.send_messages([msg])
    raw = smtp_server.wait_for(1)[0].data
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == msg.subject
    assert len(parsed.get_all("DKIM-Signature")) == 1
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == msg.body


def test_at_most_ten_signatures_are_verified(keys, dns_server):
    raw = serialize(make_message()).getvalue()
    many = raw
    for _ in range(12):
        many = signer(keys).sign(many)
    verdicts = verify(many, nameserver=dns_server.address)
    assert [v.result for v in verdicts[:10]] == ["pass"] * 10
    assert len(verdicts) == 11 and verdicts[10].result == "permerror"
    assert "2 more DKIM-Signature headers were not verified" in verdicts[10].reason
