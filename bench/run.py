#!/usr/bin/env python3
"""Postern against Postfix with smtp-source, back to back in one run.

Both servers accept on a loopback port, make each message durable before the 250 reply (Postfix
fsyncs its queue file; Postern group-commits its spool) and then discard it (Postfix's discard
transport; Postern's `builtin:set-fate fate=abort` at submission). One message per connection
unless the cell says the connection is reused (smtp-source -d). Every cell is run several times,
the servers taking turns in a rotating order with the disk flushed and settled before each
measurement, and the median is reported, with the CPU time per message of each server read
from /proc.

`--relay`, `--tls`, `--deferred N`, `--admin`, `--lists` and `--clamav` run the scenarios of
bench/relay.py, bench/tls.py, bench/deferred.py, bench/admin.py, bench/lists.py and
bench/clamav.py instead;
bench/servers.py has what they share.
"""

import argparse
import os
import socket
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import admin  # noqa: E402
import clamav  # noqa: E402
import deferred  # noqa: E402
import lists  # noqa: E402
import relay  # noqa: E402
import servers  # noqa: E402
import sinks  # noqa: E402
import tls  # noqa: E402
from servers import WORK, Postern, Postfix, free_port, quiesce, smtp_source  # noqa: E402


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
    ap.add_argument("--relay", action="store_true",
                    help="instead: both servers relay to one smtp-sink (bench/relay.py)")
    ap.add_argument("--tls", action="store_true",
                    help="instead: STARTTLS sessions/s and 20 TLS sessions (bench/tls.py)")
    ap.add_argument("--deferred", type=int, default=0, metavar="N",
                    help="instead: N messages deferred, memory and restart (bench/deferred.py)")
    ap.add_argument("--admin", action="store_true",
                    help="instead: throughput with the admin listener off, then on with /metrics "
                         "scraped every second (bench/admin.py); written to BENCHMARKS.md "
                         "unless --quick")
    ap.add_argument("--lists", action="store_true",
                    help="instead: a message to a 1,000-address list, both servers relaying to "
                         "smtp-sink (bench/lists.py)")
    ap.add_argument("--list-members", type=int, default=lists.MEMBERS, help=argparse.SUPPRESS)
    ap.add_argument("--list-messages", type=int, default=lists.MESSAGES, help=argparse.SUPPRESS)
    sinks_options(ap)
    args = ap.parse_args()
    if args.postern:
        servers.POSTERN = os.path.abspath(args.postern)
    if args.sinks:
        return run_sinks(args)
    if args.clamav:
        return run_clamav(args)
    runs = 1 if args.quick else args.runs
    scale = 0.2 if args.quick else 1.0
    os.makedirs(WORK, exist_ok=True)
    if args.relay:
        relay.run(runs, scale, args.only)
    if args.deferred:
        deferred.run(max(1000, int(args.deferred * (0.1 if args.quick else 1))))
    if args.tls:
        tls.run(runs, scale, args.only)
    if args.admin:
        admin.run(runs, scale, write=not args.quick)
    if args.lists:
        lists.run(runs, scale, args.only, args.list_members, args.list_messages)
    if not (args.relay or args.deferred or args.tls or args.admin or args.lists):
        accept_and_discard(args, runs, scale)


def accept_and_discard(args, runs, scale):
    """The servers accept and discard: the cells of the performance issue."""
    servers = []
    if args.only != "postern":
        servers.append(Postfix())
    if args.only != "postfix":
        servers.append(Postern("postern-0"))
        if args.bindings:
            extra = Postern(f"postern-{args.bindings}", bindings=args.bindings)
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
    ap.add_argument("--clamav", action="store_true",
                    help="builtin:clamav against Postfix with clamav-milter, one clamd "
                         "(bench/clamav.py)")
    ap.add_argument("--sink-messages", type=int, default=0,
                    help="messages per run of --sinks (default 8000, 1600 with --quick)")
    ap.add_argument("--postern", help="the postern binary (default target/release/postern)")
    ap.add_argument("--json", action="store_true", help="--sinks: also print the figures as JSON")


def run_clamav(args):
    if args.postern:
        servers.POSTERN = os.path.abspath(args.postern)
    clamav.run(args, sys.modules[__name__])


def run_sinks(args):
    if args.postern:
        servers.POSTERN = os.path.abspath(args.postern)
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
