"""Virus scanning at 20 sessions: Postern's builtin:clamav against Postfix with clamav-milter,
both asking the same local clamd, in one run.

`bench/run --clamav` starts one clamd (a signature database written here: the EICAR test string
and a marker, never freshclam), one clamav-milter in front of it, a Postern with
`builtin:clamav` at end-of-data and a Postfix with `smtpd_milters` pointing at the milter; both
discard what they accept (Postern's discard binding, Postfix's discard transport). Each is
checked once (a clean message accepted, an EICAR message refused), then smtp-source drives them
in turns, as bench/run.py's cells do. It prints the throughput and CPU time per message of each,
clamd's CPU time included in both (it does the scanning work for both).
"""

import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time

SESSIONS = 20
SIZE = 1024
MESSAGES = 4000
EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class Daemon:
    """clamd or clamav-milter in the foreground, stopped by its PID."""

    def __init__(self, args, log):
        self.log = log
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                     stdout=open(log, "w"), stderr=subprocess.STDOUT)

    def wait_port(self, port, what, timeout=60):
        deadline = time.time() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise SystemExit(f"{what} did not start (see {self.log})")
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_clamd(bench, work):
    db = os.path.join(work, "db")
    os.makedirs(db)
    hexed = EICAR.encode().hex()
    open(os.path.join(db, "local.ndb"), "w").write(
        f"Bench-Eicar:0:*:{hexed}\nBench-Marker:0:*:{b'POSTERN-BENCH-MARKER'.hex()}\n")
    port = bench.free_port()
    conf = os.path.join(work, "clamd.conf")
    open(conf, "w").write(f"""Foreground yes
TCPSocket {port}
TCPAddr 127.0.0.1
DatabaseDirectory {db}
SelfCheck 0
Bytecode no
ScanMail yes
StreamMaxLength 50M
MaxThreads 20
""")
    clamd = Daemon(["clamd", "-c", conf], os.path.join(work, "clamd.log"))
    clamd.wait_port(port, "clamd")
    deadline = time.time() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"zPING\0")
                if s.recv(16) == b"PONG\0":
                    return clamd, port
        except OSError:
            pass
        if time.time() > deadline:
            clamd.stop()
            raise SystemExit("clamd never answered PONG")
        time.sleep(0.05)


def start_milter(bench, work, clamd_port):
    port = bench.free_port()
    conf = os.path.join(work, "clamav-milter.conf")
    # On TCP: Postfix's smtpd runs as the postfix user and could not open a private socket.
    open(conf, "w").write(f"""MilterSocket inet:{port}@127.0.0.1
ClamdSocket tcp:127.0.0.1:{clamd_port}
Foreground yes
OnInfected Reject
AddHeader Replace
LogFile {work}/clamav-milter.log
MaxThreads 20
""")
    milter = Daemon(["clamav-milter", "-c", conf], os.path.join(work, "clamav-milter.out"))
    milter.wait_port(port, "clamav-milter")
    return milter, port


def check(server, name):
    """A clean message is accepted and an EICAR one refused, so the run measures scanning."""
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        c.ehlo("client.bench")
        refused = c.sendmail("bench@example.org", ["sink@localhost"],
                             "From: <bench@example.org>\r\nSubject: check\r\n\r\nclean\r\n")
        if refused:
            raise SystemExit(f"{name}: the clean message was refused: {refused}")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        c.ehlo("client.bench")
        try:
            c.sendmail("bench@example.org", ["sink@localhost"],
                       f"From: <bench@example.org>\r\nSubject: check\r\n\r\n{EICAR}\r\n")
        except smtplib.SMTPDataError as e:
            if e.smtp_code // 100 == 5:
                return
            raise SystemExit(f"{name}: EICAR got {e.smtp_code} {e.smtp_error!r}, not a refusal")
        raise SystemExit(f"{name}: the EICAR message was accepted: nothing is scanned")


def run(args, bench):
    """`bench/run --clamav`; `bench` is bench/run.py's module."""
    for program in ("clamd", "clamav-milter"):
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is not installed (Debian: clamav-daemon, clamav-milter)")
    work = os.path.join(bench.WORK, "clamav")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    runs = 1 if args.quick else args.runs
    messages = args.sink_messages or (MESSAGES // 5 if args.quick else MESSAGES)
    daemons, servers = [], []
    try:
        clamd, clamd_port = start_clamd(bench, work)
        daemons.append(clamd)
        milter, milter_port = start_milter(bench, work, clamd_port)
        daemons.append(milter)

        postern = bench.Postern("clamav-postern")
        postern.name = "Postern, builtin:clamav"
        subprocess.run([bench.servers.POSTERN, "binding", "add", "--config", postern.config,
                        "--event", "end-of-data", "--sink", "builtin:clamav", "--name", "antivirus",
                        "--prop", f"address=127.0.0.1:{clamd_port}"],
                       check=True, stdout=subprocess.DEVNULL)
        postfix = bench.Postfix("clamav-postfix")
        postfix.name = "Postfix, clamav-milter"
        with open(os.path.join(postfix.dir, "main.cf"), "a") as main:
            main.write(f"smtpd_milters = inet:127.0.0.1:{milter_port}\n"
                       "milter_default_action = tempfail\nmilter_protocol = 6\n")
        if args.only != "postfix":
            servers.append(postern)
        if args.only != "postern":
            servers.append(postfix)
        for s in servers:
            s.start()
            check(s, s.name)
        # clamd's CPU is shared work: charge it to whoever is measured, like the milter's.
        for s in servers:
            own = s.cpu
            extra = [clamd.proc.pid] + ([milter.proc.pid] if s is postfix else [])
            s.cpu = lambda own=own, extra=extra: own() + bench.servers.cpu_of(extra)
        cell = bench.measure_cell(servers, SESSIONS, SIZE, messages, False, runs)
    finally:
        for s in servers:
            s.stop()
        for d in reversed(daemons):
            d.stop()
    print(f"\nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"host: {os.cpu_count()} cores; command: bench/run {' '.join(sys.argv[1:])}; "
          f"{SESSIONS} sessions, {SIZE // 1024} KiB, one message per connection, "
          f"{messages} messages, median of {runs}; every message scanned by the same clamd\n")
    print("| server | msg/s | CPU µs/msg (server, milter and clamd) |")
    print("|---|---|---|")
    for s in servers:
        rate, cpu, _ = cell[s.name]
        print(f"| {s.name} | {rate:.0f} | {cpu:.0f} |")
