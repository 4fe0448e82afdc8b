"""TLS: Postern and Postfix, each with STARTTLS on the same certificate, side by side.

Two cells, one message or none per connection, the servers taking turns (rotating order) as in
the other cells:

- STARTTLS sessions per second: each session connects, says EHLO, STARTTLS, shakes hands
  (TLS 1.3, the certificate not verified), says EHLO again and QUIT; no mail.
- Throughput of 20 TLS sessions: 20 clients at once, each session EHLO, STARTTLS, EHLO, one
  1 KiB message, QUIT; messages per second accepted (durable, then discarded as in the
  accept-and-discard cells).

The certificate is one RSA 2048 self-signed certificate made with openssl. Postfix has
`smtpd_tls_cert_file`, `smtpd_tls_key_file` and `smtpd_tls_security_level = may` (and tlsmgr in
master.cf); Postern has `[tls] certificate` and `key`.

The load generator is Python (ssl and raw sockets, no smtplib), one process per concurrent
session, since smtp-source has no TLS. Its own CPU time is reported next to the servers': a
TLS handshake costs the client about as much as the server, so on a small machine the client
can be the limit. When the client's CPU per session is close to the wall time per session
times the cores it has, the figure measures the client, not the server.
"""

import multiprocessing
import os
import socket
import ssl
import statistics
import subprocess
import sys
import time

from servers import WORK, Postern, Postfix, quiesce

MESSAGE = ("From: bench@example.org\r\nTo: sink@localhost\r\nSubject: tls\r\n\r\n"
           + ("x" * 76 + "\r\n") * 12).encode()


def make_certificate():
    folder = os.path.join(WORK, "tls-cert")
    os.makedirs(folder, exist_ok=True)
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", key, "-out", cert, "-subj", "/CN=bench.test"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(key, 0o644)  # Postfix's smtpd reads it after dropping privileges
    return cert, key


def make_servers(cert, key, only):
    servers = []
    if only != "postern":
        pf = Postfix("postfix-tls")
        with open(os.path.join(pf.dir, "main.cf"), "a") as main:
            main.write(f"smtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\n"
                       "smtpd_tls_security_level = may\nsmtpd_tls_loglevel = 0\n")
        with open(os.path.join(pf.dir, "master.cf"), "a") as master:
            master.write("tlsmgr unix - - n 1000? 1 tlsmgr\n")
        servers.append(pf)
    if only != "postfix":
        servers.append(Postern("postern-tls", config=f'[tls]\ncertificate = "{cert}"\nkey = "{key}"\n'))
    return servers


class Conversation:
    """Just enough SMTP over a socket: reads one (multi-line) reply at a time."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def reply(self, want):
        while True:
            end = self.buf.find(b"\r\n")
            while end >= 0:
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                if line[3:4] != b"-":
                    if not line.startswith(want):
                        # Not SystemExit: in a pool worker that would hang the pool.
                        raise RuntimeError(f"wanted {want!r}, got {line!r}")
                    return
                end = self.buf.find(b"\r\n")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed")
            self.buf += chunk

    def say(self, line, want):
        self.sock.sendall(line)
        self.reply(want)


def session(port, ctx, send):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        c = Conversation(raw)
        c.reply(b"220")
        c.say(b"EHLO client.bench\r\n", b"250")
        c.say(b"STARTTLS\r\n", b"220")
        tls = ctx.wrap_socket(raw)
        c = Conversation(tls)
        c.say(b"EHLO client.bench\r\n", b"250")
        if send:
            c.say(b"MAIL FROM:<bench@example.org>\r\n", b"250")
            c.say(b"RCPT TO:<sink@localhost>\r\n", b"250")
            c.say(b"DATA\r\n", b"354")
            c.say(MESSAGE + b".\r\n", b"250")
        c.say(b"QUIT\r\n", b"221")
        tls.close()


def worker(args):
    port, count, send = args
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for _ in range(count):
        session(port, ctx, send)
    t = os.times()
    return t.user + t.system


def load(port, workers, sessions, send):
    """Runs `sessions` sessions over `workers` processes; returns (seconds, client CPU s)."""
    share = [sessions // workers + (1 if i < sessions % workers else 0) for i in range(workers)]
    with multiprocessing.Pool(workers) as pool:
        start = time.perf_counter()
        cpu = sum(pool.map(worker, [(port, n, send) for n in share]))
        return time.perf_counter() - start, cpu


def run(runs, scale, only):
    cert, key = make_certificate()
    servers = make_servers(cert, key, only)
    for s in servers:
        s.start()
    cells = [("STARTTLS sessions/s", 4, int(2000 * scale), False),
             ("20 TLS sessions, msg/s", 20, int(4000 * scale), True)]
    results = {}
    try:
        for name, workers, sessions, send in cells:
            samples = {s.name: ([], [], []) for s in servers}
            for s in servers:
                load(s.port, workers, max(workers, sessions // 10), send)  # warm-up
            for r in range(runs):
                for s in servers[r % len(servers):] + servers[:r % len(servers)]:
                    quiesce()
                    before = s.cpu()
                    elapsed, client = load(s.port, workers, sessions, send)
                    rates, cpus, clients = samples[s.name]
                    rates.append(sessions / elapsed)
                    cpus.append((s.cpu() - before) / sessions * 1e6)
                    clients.append(client / sessions * 1e6)
            for s in servers:
                rate, cpu, client = (statistics.median(v) for v in samples[s.name])
                results[(name, s.name)] = (rate, cpu, client)
                print(f"  {s.name:<8} {name:<24} {rate:8.0f}/s  server {cpu:6.0f} µs CPU  "
                      f"client {client:6.0f} µs CPU per session", file=sys.stderr)
    finally:
        for s in servers:
            s.stop()
    names = [s.name for s in servers]
    print(f"\nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"host: {os.cpu_count()} cores; command: bench/run {' '.join(sys.argv[1:])}\n")
    head = "| cell | " + " | ".join(f"{n} /s | {n} server CPU µs | client CPU µs" for n in names)
    if len(names) == 2:
        head += " | Postern / Postfix"
    print(head + " |")
    print("|" + "---|" * head.count("|"))
    for name, *_ in cells:
        row = [name]
        for n in names:
            rate, cpu, client = results[(name, n)]
            row += [f"{rate:.0f}", f"{cpu:.0f}", f"{client:.0f}"]
        if len(names) == 2:
            row.append(f"{results[(name, 'Postern')][0] / results[(name, 'Postfix')][0]:.2f}×")
        print("| " + " | ".join(row) + " |")
