"""The servers and tools the benchmarks share: a private Postfix instance, a Postern instance,
Postfix's smtp-source and smtp-sink, and readings from /proc."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

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


def status_kib(pid, key):
    """A memory figure of /proc/PID/status (VmRSS, VmHWM) in KiB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def wait_port(port, timeout=20):
    """Waits until the port greets with 220; returns the seconds it took."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(512).startswith(b"220"):
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"nothing answers on port {port}")


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class Postfix:
    """A private Postfix instance on a free loopback port. It discards what it accepts, or with
    `relay_to` ("[127.0.0.1]:PORT") relays everything there with its smtp client."""

    name = "Postfix"

    def __init__(self, tag="postfix", relay_to=None):
        self.dir = os.path.join(WORK, tag)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = free_port()
        if relay_to:
            transports = f"default_transport = smtp\nrelay_transport = relay\nrelayhost = {relay_to}\n"
        else:
            transports = "default_transport = discard\nrelay_transport = discard\n"
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
{transports}local_transport = discard
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
        if relay_to:
            master += "smtp unix - - n - - smtp\nrelay unix - - n - - smtp\n"
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
    """A Postern instance on a free loopback port. `config` is appended to its configuration;
    `discard` binds the equivalent of Postfix's discard transport; `bindings` adds that many of
    the performance issue's ten bindings. The log level is Postern's default (info) unless
    `log_level` is given: each server runs at its default settings."""

    name = "Postern"

    def __init__(self, tag, config="", discard=True, bindings=0, log_level=None):
        self.dir = os.path.join(WORK, tag)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.port = free_port()
        self.data = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "postern.toml")
        self.log = os.path.join(self.dir, "server.log")
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
{f'[log]{chr(10)}level = "{log_level}"' if log_level else "# [log] at its default level (info)"}
{config}""")
        def bind(*args):
            subprocess.run([POSTERN, "binding", "add", "--config", self.config, *args],
                           check=True, stdout=subprocess.DEVNULL)
        if discard:
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
        """Starts the server; returns the seconds until it greeted on its port."""
        log = open(self.log, "a")
        self.proc = subprocess.Popen([POSTERN, "serve", "--config", self.config],
                                     stdout=subprocess.DEVNULL, stderr=log,
                                     preexec_fn=raise_nofile)
        return wait_port(self.port)

    def cpu(self):
        return cpu_of([self.proc.pid])

    def rss_kib(self):
        return status_kib(self.proc.pid, "VmRSS")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


class Sink:
    """Postfix's smtp-sink on a free loopback port, with its running counter (-c) read by a
    thread: `wait_for(n)` returns the moment the sink had received n messages in all."""

    def __init__(self):
        self.port = free_port()
        args = ["smtp-sink", "-c"]
        if os.getuid() == 0:
            args += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        args += [f"127.0.0.1:{self.port}", "1024"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     preexec_fn=raise_nofile)
        self.count = 0
        self.at = time.perf_counter()
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        wait_port(self.port)

    def _read(self):
        # The counter is rewritten in place: "sess=N quit=N mesg=N\r" after every change.
        pending = b""
        while True:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return
            now = time.perf_counter()
            pending += chunk
            *lines, pending = pending.split(b"\r")
            for line in reversed(lines):
                m = re.search(rb"mesg=(\d+)", line)
                if m:
                    with self.changed:
                        self.count, self.at = int(m.group(1)), now
                        self.changed.notify_all()
                    break

    def wait_for(self, n, timeout):
        """The perf_counter time at which the sink's count reached n, or None on time-out."""
        deadline = time.perf_counter() + timeout
        with self.changed:
            while self.count < n:
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                self.changed.wait(left)
            return self.at

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def smtp_source(port, sessions, size, messages, reuse, to="sink@localhost"):
    args = ["smtp-source", "-s", str(sessions), "-l", str(size), "-m", str(messages),
            "-f", "bench@example.org", "-t", to, "-M", "client.bench"]
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
