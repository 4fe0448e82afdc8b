#!/usr/bin/env python3
"""Postern against Postfix with smtp-source, back to back in one run.

Both servers accept on a loopback port, make each message durable before the 250 reply (Postfix
fsyncs its queue file; Postern group-commits its spool) and then discard it (Postfix's discard
transport; Postern's `builtin:set-fate fate=abort` at submission). One message per connection
unless the cell says the connection is reused (smtp-source -d). Every cell is run several times,
the servers taking turns in a rotating order with the disk flushed and settled before each
measurement, and the median is reported, with the CPU time per message of each server read
from /proc.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import sinks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
POSTERN = os.path.join(ROOT, "target", "release", "postern")
WORK = os.path.join(ROOT, "target", "bench")  # on the real disk, not a tmpfs
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_of(pids, children_of=None):
    """CPU seconds of the processes, plus the reaped children of `children_of`."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if pid == children_of:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / TICK


def session_pids(sid):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # session id
            pids.append(int(entry))
    return pids


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(512).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on port {port}")


class Postfix:
    name = "Postfix"

    def __init__(self):
        self.dir = os.path.join(WORK, "postfix")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = free_port()
        main = f"""
compatibility_level = 3.6
queue_directory = {self.dir}/spool
data_directory = {self.dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
default_transport = discard
relay_transport = discard
local_transport = discard
default_process_limit = 300
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
in_flow_delay = 0s
smtpd_peername_lookup = no
disable_dns_lookups = yes
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
message_size_limit = 104857600
biff = no
"""
        master = f"""
127.0.0.1:{self.port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
"""
        open(os.path.join(self.dir, "main.cf"), "w").write(main)
        open(os.path.join(self.dir, "master.cf"), "w").write(master)

    def start(self):
        for sub in ("spool", "data"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        shutil.chown(os.path.join(self.dir, "data"), user="postfix")
        # postfix reports its errors on a terminal only: `script` gives it one.
        subprocess.run(["script", "-qec", f"postfix -c {self.dir} start", "/dev/null"],
                       check=True, stdout=sys.stderr)
        wait_port(self.port)
        pid = int(open(os.path.join(self.dir, "spool", "pid", "master.pid")).read().split()[0])
        self.master = pid
        self.sid = os.getsid(pid)

    def cpu(self):
        return cpu_of(session_pids(self.sid), children_of=self.master)

    def stop(self):
        subprocess.run(["script", "-qec", f"postfix -c {self.dir} stop", "/dev/null"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def rss_kib(self):
        return None


class Postern:
    name = "Postern"

    def __init__(self, bindings=0):
        self.dir = os.path.join(WORK, f"postern-{bindings}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "postern.toml")
        open(self.config, "w").write(f"""
hostname = "bench.postern.test"
data_dir = "{self.data}"
[[listener]]
address = "127.0.0.1:{self.port}"
[[domain]]
name = "localhost"
users = "*"
[limits]
max_message_size = "100M"
max_connections = 20000
max_connections_per_ip = 20000
[log]
level = "warn"
""")
        def bind(*args):
            subprocess.run([POSTERN, "binding", "add", "--config", self.config, *args],
                           check=True, stdout=subprocess.DEVNULL)
        # The equivalent of Postfix's discard transport: durable, then dropped.
        bind("--event", "submission", "--sink", "builtin:set-fate", "--prop", "fate=abort",
             "--priority", "lowest", "--name", "discard")
        # The 10-binding mix of the performance issue: reply, add-header and log sinks whose
        # rules do not match, and two that do.
        mix = [
            ("inbound:MAIL", "builtin:reply", "MAIL FROM=*@spam.example", ["code=550"]),
            ("inbound:RCPT", "builtin:reply", "RCPT TO=*@blocked.example", ["code=550"]),
            ("inbound:EHLO", "builtin:reply", "EHLO=*.bad.example", ["code=554"]),
            ("inbound:DATA", "builtin:reply", "!REMOTE=127.0.0.0/8", ["code=554"]),
            ("end-of-data", "builtin:add-header", "SIZE>50M", ["name=X-Big", "value=yes"]),
            ("submission", "builtin:add-header", "MAIL FROM=*@nowhere.example", ["name=X-A", "value=a"]),
            ("inbound:MAIL", "builtin:log", "MAIL FROM=*@debug.example", []),
            ("inbound:RCPT", "builtin:log", "RCPT TO=*@debug.example", []),
            ("end-of-data", "builtin:add-header", "", ["name=X-Scanned", "value=${queue_id}"]),
            ("inbound:RCPT", "builtin:log", "RCPT TO=*@localhost", ["label=match"]),
        ][:bindings]
        for i, (event, sink, rule, props) in enumerate(mix):
            args = ["--event", event, "--sink", sink, "--name", f"mix{i}", "--rule", rule]
            for p in props:
                args += ["--prop", p]
            bind(*args)

    def start(self):
        log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen([POSTERN, "serve", "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=log,
                                     preexec_fn=raise_nofile)
        wait_port(self.port)

    def cpu(self):
        return cpu_of([self.proc.pid])

    def rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def smtp_source(port, sessions, size, messages, reuse):
    args = ["smtp-source", "-s", str(sessions), "-l", str(size), "-m", str(messages),
            "-f", "bench@example.org", "-t", "sink@localhost", "-M", "client.bench"]
    if reuse:
        args.append("-d")
    args.append(f"127.0.0.1:{port}")
    start = time.perf_counter()
    done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          preexec_fn=raise_nofile)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"smtp-source failed: {done.stderr.decode()[-500:]}")
    return elapsed


def quiesce():
    """Lets the disk settle: the writeback one server leaves behind (Postfix's deleted queue
    files, say) must not be charged to the next one measured."""
    os.sync()
    time.sleep(0.5)


def measure_cell(servers, sessions, size, messages, reuse, runs):
    """Runs a cell on every server; the servers take turns, their order rotating each run, so
    neither order nor disk state favours one of them. Returns name -> (msg/s, CPU µs/msg,
    ms per transaction), medians."""
    samples = {s.name: ([], [], []) for s in servers}
    for s in servers:
        # A warm-up round, not counted.
        smtp_source(s.port, sessions, size, max(sessions, messages // 10), reuse)
    for r in range(runs):
        for s in servers[r % len(servers):] + servers[:r % len(servers)]:
            quiesce()
            before = s.cpu()
            elapsed = smtp_source(s.port, sessions, size, messages, reuse)
            cpu = s.cpu() - before
            rates, cpus, latencies = samples[s.name]
            rates.append(messages / elapsed)
            cpus.append(cpu / messages * 1e6)
            latencies.append(elapsed / messages * sessions * 1e3)
    return {name: tuple(statistics.median(v) for v in lists) for name, lists in samples.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer messages, one run per cell")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", choices=["postern", "postfix"])
    ap.add_argument("--bindings", type=int, default=0, help="also run Postern with N bindings (0-10)")
    ap.add_argument("--idle", type=int, default=0, help="hold N idle connections and measure memory")
    sinks_options(ap)
    args = ap.parse_args()
    if args.sinks:
        return run_sinks(args)
    runs = 1 if args.quick else args.runs
    scale = 0.2 if args.quick else 1.0
    os.makedirs(WORK, exist_ok=True)

    servers = []
    if args.only != "postern":
        servers.append(Postfix())
    if args.only != "postfix":
        servers.append(Postern(0))
        if args.bindings:
            extra = Postern(args.bindings)
            extra.name = f"Postern+{args.bindings}b"
            servers.append(extra)
    for s in servers:
        s.start()

    cells = [
        (1, 1024, 2000, False), (20, 1024, 8000, False), (100, 1024, 8000, False),
        (1, 102400, 1000, False), (20, 102400, 3000, False), (100, 102400, 3000, False),
        (1, 1024, 4000, True), (20, 1024, 10000, True),
    ]
    results = {}
    try:
        for sessions, size, messages, reuse in cells:
            messages = max(sessions * 2, int(messages * scale))
            cell = measure_cell(servers, sessions, size, messages, reuse, runs)
            for s in servers:
                results[(s.name, sessions, size, reuse)] = cell[s.name]
                rate, cpu, lat = cell[s.name]
                print(f"  {s.name:<14} sessions={sessions:<3} size={size:<6} reuse={reuse!s:<5} "
                      f"{rate:8.0f} msg/s  {cpu:7.0f} us CPU/msg  {lat:6.2f} ms/txn", file=sys.stderr)
        idle = None
        if args.idle:
            pt = next(s for s in servers if s.name == "Postern")
            idle = idle_memory(pt, args.idle)
    finally:
        for s in servers:
            s.stop()

    names = [s.name for s in servers]
    print(f"\nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"host: {os.cpu_count()} cores; command: bench/run {' '.join(sys.argv[1:])}\n")
    head = "| sessions | size | connection | " + " | ".join(f"{n} msg/s" for n in names)
    head += " | " + " | ".join(f"{n} CPU µs/msg" for n in names)
    if "Postfix" in names and "Postern" in names:
        head += " | Postern / Postfix"
    if len(names) > 2:
        head += f" | {names[2]} / Postern"
    print(head + " |")
    print("|" + "---|" * (head.count("|")))
    for sessions, size, _, reuse in cells:
        row = [str(sessions), f"{size // 1024} KiB", "reused" if reuse else "one per message"]
        row += [f"{results[(n, sessions, size, reuse)][0]:.0f}" for n in names]
        row += [f"{results[(n, sessions, size, reuse)][1]:.0f}" for n in names]
        if "Postfix" in names and "Postern" in names:
            ratio = results[("Postern", sessions, size, reuse)][0] / results[("Postfix", sessions, size, reuse)][0]
            row.append(f"{ratio:.2f}×")
        if len(names) > 2:
            ratio = results[(names[2], sessions, size, reuse)][0] / results[("Postern", sessions, size, reuse)][0]
            row.append(f"{ratio:.1%}")
        print("| " + " | ".join(row) + " |")
    if "Postfix" in names and "Postern" in names:
        a = results[("Postern", 1, 1024, False)][2]
        b = results[("Postfix", 1, 1024, False)][2]
        print(f"\nMean single-session transaction (1 KiB, one per connection): Postern {a:.2f} ms, "
              f"Postfix {b:.2f} ms ({a / b:.2f} of Postfix's).")
    if idle:
        print(f"\nIdle connections: {idle[0]} held open; resident memory {idle[1]} KiB before, "
              f"{idle[2]} KiB with them: {idle[3]:.1f} KiB per connection; a transaction "
              f"completed meanwhile: {idle[4]}.")


def sinks_options(ap):
    """The options of `--sinks` (bench/sinks.py)."""
    ap.add_argument("--sinks", action="store_true",
                    help="the cost per message of a script sink, an HTTP hook and a milter "
                         "against no sink (bench/sinks.py)")
    ap.add_argument("--sink-messages", type=int, default=0,
                    help="messages per run of --sinks (default 8000, 1600 with --quick)")
    ap.add_argument("--postern", help="the postern binary (default target/release/postern)")
    ap.add_argument("--json", action="store_true", help="--sinks: also print the figures as JSON")


def run_sinks(args):
    global POSTERN
    if args.postern:
        POSTERN = os.path.abspath(args.postern)
    sinks.run(args, sys.modules[__name__])


def idle_memory(server, count):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1000), hard))
    time.sleep(0.5)
    before = server.rss_kib()
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", server.port))
        socks.append(s)
    for s in socks:
        s.settimeout(30)
        if not s.recv(512).startswith(b"220"):
            raise SystemExit("an idle connection got no greeting")
    time.sleep(1)
    after = server.rss_kib()
    import smtplib
    with smtplib.SMTP("127.0.0.1", server.port) as c:
        c.sendmail("idle@example.org", ["sink@localhost"], "Subject: while idle\r\n\r\nx\r\n")
    ok = "yes"
    for s in socks:
        s.close()
    return count, before, after, (after - before) / count, ok


if __name__ == "__main__":
    main()
