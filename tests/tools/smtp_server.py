#!/usr/bin/python3
"""A real SMTP server for Outpost's email tests (aiosmtpd, Debian's python3-aiosmtpd).

    smtp_server.py PORT CERT KEY USER PASSWORD MAILDIR

Listens on 127.0.0.1:PORT, requires STARTTLS (with CERT/KEY) before anything else, requires
AUTH PLAIN or LOGIN as USER/PASSWORD (only after STARTTLS), and saves every accepted message as
one .eml file in MAILDIR. Prints "READY" once it accepts connections; runs until killed.
"""

import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    port, cert, key, user, password, maildir = sys.argv[1:7]
    os.makedirs(maildir, exist_ok=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    counter = [0]
    lock = threading.Lock()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                counter[0] += 1
                n = counter[0]
            name = os.path.join(maildir, "%04d-%d.eml" % (n, os.getpid()))
            tmp = name + ".tmp"
            with open(tmp, "wb") as f:
                f.write(envelope.original_content or envelope.content)
            os.rename(tmp, name)
            return "250 OK saved"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        # handled=False: aiosmtpd answers "535 5.7.8 Authentication credentials invalid" itself.
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=int(port),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
        auth_required=True,
    )
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
