"""A receiving SMTP server for Postern's delivery tests, built on aiosmtpd.

Listens on HOST and a free port (printed as `ready PORT` on standard output once listening),
stores each message it accepts as OUT/N.eml with its envelope in OUT/N.json, and appends every
command it sees to OUT/commands.log. Its behaviour comes from a JSON file given with --script:

  {"rcpt": {"bad@remote.test": "550 5.1.1 no such user"},   # per-recipient replies
   "data_fail_first": "451 4.3.0 try again later",          # the first DATA gets this
   "data": "554 5.7.1 content refused"}                    # every DATA gets this

With --tls-cert and --tls-key it offers STARTTLS; an EHLO over TLS is logged as `EHLO NAME tls`.

With --lmtp it is an LMTP server (RFC 2033, aiosmtpd's LMTP class: LHLO, and one reply per
recipient after DATA), on --unix PATH instead of TCP when given (`ready 0` then). The script's
"lmtp_data" gives some recipients their own reply after DATA; the others get 250 and the
message is stored with only them as its recipients:

  {"lmtp_data": {"refused@store.test": "550 5.2.1 mailbox disabled"}}
"""

import argparse
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP


class Handler:
    def __init__(self, out, script):
        self.out = out
        self.script = script
        self.count = 0
        self.data_calls = 0

    def log(self, line):
        with open(os.path.join(self.out, "commands.log"), "a") as f:
            f.write(line + "\n")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        verb = "LHLO " if isinstance(server, LMTP) else "EHLO "
        self.log(verb + hostname + (" tls" if session.ssl else ""))
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        self.log("HELO " + hostname)
        session.host_name = hostname
        return "250 {}".format(server.hostname)

    async def handle_NOOP(self, server, session, envelope, arg):
        self.log("NOOP " + arg)
        return "250 OK"

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.log("MAIL " + address + " " + " ".join(options))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.log("RCPT " + address + " " + " ".join(options))
        reply = self.script.get("rcpt", {}).get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_calls += 1
        self.log("DATA")
        if self.data_calls == 1 and self.script.get("data_fail_first"):
            return self.script["data_fail_first"]
        if self.script.get("data"):
            return self.script["data"]
        if isinstance(server, LMTP):
            return self.lmtp_data(envelope)
        return self.store(session, envelope, envelope.rcpt_tos)

    def lmtp_data(self, envelope):
        """One reply per recipient, in RCPT order (RFC 2033 section 4.2)."""
        refused = self.script.get("lmtp_data", {})
        replies = [refused.get(r.lower()) for r in envelope.rcpt_tos]
        taken = [r for r, reply in zip(envelope.rcpt_tos, replies) if reply is None]
        stored = self.store(None, envelope, taken) if taken else None
        self.log("LMTP " + " | ".join(reply or stored for reply in replies))
        return "\r\n".join(reply or stored for reply in replies)

    def store(self, session, envelope, recipients):
        self.count += 1
        base = os.path.join(self.out, str(self.count))
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".json.tmp", "w") as f:
            json.dump({"from": envelope.mail_from, "to": recipients,
                       "helo": session.host_name if session else None}, f)
        os.rename(base + ".json.tmp", base + ".json")
        os.rename(base + ".tmp", base + ".eml")
        return "250 2.0.0 accepted as {}".format(self.count)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.2")
    parser.add_argument("--out", required=True)
    parser.add_argument("--script")
    parser.add_argument("--tls-cert", help="offer STARTTLS with this certificate (PEM)")
    parser.add_argument("--tls-key")
    parser.add_argument("--lmtp", action="store_true", help="speak LMTP instead of SMTP")
    parser.add_argument("--unix", help="listen on this Unix socket instead of TCP")
    args = parser.parse_args()
    script = {}
    if args.script:
        with open(args.script) as f:
            script = json.load(f)
    handler = Handler(args.out, script)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    loop = asyncio.get_running_loop()
    protocol = LMTP if args.lmtp else SMTP

    def factory():
        return protocol(handler, hostname="peer.test", decode_data=False,
                        enable_SMTPUTF8=True, data_size_limit=script.get("size", 33554432),
                        tls_context=tls)
    if args.unix:
        server = await loop.create_unix_server(factory, path=args.unix)
        port = 0
    else:
        server = await loop.create_server(factory, host=args.host, port=0)
        port = server.sockets[0].getsockname()[1]
    print("ready {}".format(port), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
