"""Run inside a private network namespace (``unshare -n``): a test host with a
non-loopback address, 192.0.2.25 (TEST-NET-1), that exists only in this
namespace. Prints the outcomes as JSON for tests/core/test_insecure_auth.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

HOST = "192.0.2.25"


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["ip", "addr", "add", f"{HOST}/32", "dev", "lo"], check=True)

    import socket

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    attempts = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        attempts.append(mechanism)
        ok = auth_data.login == b"alice" and auth_data.password == b"correct horse"
        return AuthResult(success=ok)

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope.rcpt_tos)
            return "250 OK"

    probe = socket.socket()
    probe.bind((HOST, 0))
    port = probe.getsockname()[1]
    probe.close()
    handler = Handler()
    controller = Controller(
        handler, hostname=HOST, port=port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()

    import mailcore
    from mailcore import EmailMessage
    from mailcore.backends.smtp import EmailBackend, InsecureAuthError

    def send(**kwargs):
        backend = EmailBackend(host=HOST, port=port, timeout=5, **kwargs)
        msg = EmailMessage("s", "b", "from@example.com", ["to@example.com"])
        try:
            return {"sent": backend.send_messages([msg])}
        except InsecureAuthError as exc:
            return {"error": "InsecureAuthError", "text": str(exc)}

    results = {}
    results["refused"] = send(username="alice", password="correct horse")
    results["refused_attempts"] = list(attempts)
    results["refused_silently"] = send(
        username="alice", password="correct horse", fail_silently=True
    )
    results["no_password"] = send()
    results["opt_in_argument"] = send(
        username="alice", password="correct horse", allow_insecure_auth=True
    )
    with mailcore.settings.override(EMAIL_ALLOW_INSECURE_AUTH=True):
        results["opt_in_setting"] = send(username="alice", password="correct horse")
    results["attempts"] = attempts
    results["delivered"] = len(handler.messages)
    controller.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
