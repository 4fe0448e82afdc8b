"""The cost of one sink per message, each kind against no sink, under the same load in one run.

`bench/run --sinks` starts one Postern per variant — no sink, a built-in sink (the control), a
script sink, an HTTP hook (to a local hook server), a milter (OpenDKIM signing) — each with the
discard binding of the main benchmark and one extra binding at `end-of-data`, and drives them
all with smtp-source (20 sessions, 1 KiB, one message per connection), taking turns as
bench/run.py's cells do. It prints the throughput and CPU time per message of each variant and
what the sink costs against no sink.

A kind whose binding Postern refuses (a build without it) or whose peer program is missing is
skipped with a message saying why; the others are still measured.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

SESSIONS = 20
SIZE = 1024
MESSAGES = 8000
DOMAIN = "example.org"  # smtp-source's sender domain: OpenDKIM signs mail from it
SELECTOR = "bench"

SCRIPT = """// A header tagger: the typical small script sink.
fn on_event(ctx) {
    add_header("X-Script", "seen");
    next()
}
"""

HOOK_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Postern pools its connections

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps({"action": "continue",
                           "modifications": [{"type": "add-header", "name": "X-Hook",
                                              "value": "seen"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Skip(Exception):
    """A variant that cannot run here; the message says why."""


class Peer:
    """A helper process a sink talks to (the hook server, OpenDKIM)."""

    def __init__(self, args, **kw):
        self.proc = subprocess.Popen(args, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def make_variant(bench, label, sink_args):
    """A Postern with the discard binding and, when `sink_args` is given, one more binding.
    Raises Skip when Postern refuses that binding."""
    server = bench.Postern(f"sinks-{label}", discard=False)
    server.name = label
    def bind(*args):
        return subprocess.run([bench.servers.POSTERN, "binding", "add", "--config", server.config, *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    done = bind("--event", "submission", "--sink", "builtin:set-fate", "--prop", "fate=abort",
                "--priority", "lowest", "--name", "discard")
    if done.returncode != 0:
        raise SystemExit(f"postern binding add (discard) failed: {done.stderr.strip()}")
    if sink_args:
        done = bind("--event", "end-of-data", "--name", "measured", *sink_args)
        if done.returncode != 0:
            raise Skip(f"Postern refused the binding: {done.stderr.strip().splitlines()[-1]}")
    return server


def script_variant(bench):
    path = os.path.join(bench.WORK, "tag.rhai")
    open(path, "w").write(SCRIPT)
    return make_variant(bench, "script", ["--sink", f"script:{path}"]), []


def http_variant(bench):
    hook = Peer([sys.executable, "-c", HOOK_SERVER], stdout=subprocess.PIPE, text=True)
    port = hook.proc.stdout.readline().strip()
    if not port.isdigit():
        hook.stop()
        raise Skip("the local hook server did not start")
    try:
        server = make_variant(bench, "http", ["--sink", f"http://127.0.0.1:{port}/hook"])
    except Skip:
        hook.stop()
        raise
    return server, [hook]


def milter_variant(bench):
    for program in ("opendkim", "opendkim-genkey"):
        if shutil.which(program) is None:
            raise Skip(f"{program} is not installed (Debian: opendkim, opendkim-tools)")
    keys = os.path.join(bench.WORK, "dkim")
    shutil.rmtree(keys, ignore_errors=True)
    os.makedirs(keys)
    subprocess.run(["opendkim-genkey", "-b", "2048", "-d", DOMAIN, "-s", SELECTOR, "-D", keys],
                   check=True)
    port = bench.free_port()
    conf = os.path.join(keys, "opendkim.conf")
    open(conf, "w").write(f"""Socket inet:{port}@127.0.0.1
Mode s
Syslog no
Domain {DOMAIN}
Selector {SELECTOR}
KeyFile {keys}/{SELECTOR}.private
InternalHosts 127.0.0.0/8
RequireSafeKeys no
Canonicalization relaxed/simple
""")
    dkim = Peer(["opendkim", "-f", "-x", conf], stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(keys, "opendkim.log"), "w"))
    deadline = time.time() + 20
    while True:
        try:
            import socket
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if dkim.proc.poll() is not None or time.time() > deadline:
                dkim.stop()
                raise Skip(f"OpenDKIM did not start (see {keys}/opendkim.log)")
            time.sleep(0.1)
    try:
        server = make_variant(bench, "milter", ["--sink", f"milter:inet:{port}@127.0.0.1"])
    except Skip:
        dkim.stop()
        raise
    return server, [dkim]


def run(args, bench):
    """`bench/run --sinks`: measures and prints the table; `bench` is bench/run.py's module."""
    os.makedirs(bench.WORK, exist_ok=True)
    runs = 1 if args.quick else args.runs
    messages = args.sink_messages or (MESSAGES // 5 if args.quick else MESSAGES)
    builders = [
        ("none", lambda b: (make_variant(b, "none", None), [])),
        ("builtin", lambda b: (make_variant(b, "builtin", [
            "--sink", "builtin:add-header", "--prop", "name=X-Builtin", "--prop", "value=seen",
        ]), [])),
        ("script", script_variant),
        ("http", http_variant),
        ("milter", milter_variant),
    ]
    servers, peers, skipped = [], [], {}
    try:
        for label, build in builders:
            try:
                server, helpers = build(bench)
            except Skip as why:
                skipped[label] = str(why)
                print(f"  skipping {label}: {why}", file=sys.stderr)
                continue
            servers.append(server)
            peers += helpers
        for s in servers:
            s.start()
        for s in servers:
            check_delivery_path(s)
        cell = bench.measure_cell(servers, SESSIONS, SIZE, messages, False, runs)
    finally:
        for s in servers:
            if getattr(s, "proc", None) is not None:
                s.stop()
        for p in peers:
            p.stop()
    report(args, cell, [s.name for s in servers], skipped, messages, runs)


def check_delivery_path(server):
    """One message through the variant before measuring, so a sink that fails every message
    (and turns the benchmark into a measure of refusals) is caught."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        c.ehlo("client.bench")
        refused = c.sendmail(f"bench@{DOMAIN}", ["sink@localhost"],
                             f"From: <bench@{DOMAIN}>\r\nSubject: check\r\n\r\nx\r\n")
        if refused:
            raise SystemExit(f"{server.name}: the check message was refused: {refused}")


def report(args, cell, names, skipped, messages, runs):
    print(f"\nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"host: {os.cpu_count()} cores; command: bench/run {' '.join(sys.argv[1:])}; "
          f"{SESSIONS} sessions, {SIZE // 1024} KiB, one message per connection, "
          f"{messages} messages, median of {runs}\n")
    print("| sink at end-of-data | msg/s | CPU µs/msg | throughput against no sink | "
          "CPU µs/msg over no sink |")
    print("|---|---|---|---|---|")
    base_rate, base_cpu = cell["none"][0], cell["none"][1]
    for name in names:
        rate, cpu, _ = cell[name]
        loss = 1 - rate / base_rate
        print(f"| {name} | {rate:.0f} | {cpu:.0f} | "
              f"{'—' if name == 'none' else f'{-loss:+.1%}'} | "
              f"{'—' if name == 'none' else f'{cpu - base_cpu:+.0f}'} |")
    for name, why in skipped.items():
        print(f"| {name} | skipped: {why} | | | |")
    if "script" in cell:
        loss = 1 - cell["script"][0] / base_rate
        verdict = "met" if loss <= 0.10 else "missed"
        print(f"\nTarget (a script sink costs at most 10% of throughput at {SESSIONS} sessions): "
              f"{verdict} ({loss:.1%}).")
    if args.json:
        print(json.dumps({n: dict(zip(("msg_per_s", "cpu_us_per_msg", "ms_per_txn"), cell[n]))
                          for n in names}))
