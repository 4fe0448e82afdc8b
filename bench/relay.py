"""Relaying: Postern and Postfix each relay the same load to the same smtp-sink.

Both accept from smtp-source on a loopback port (one message per connection, 1 KiB) and relay
everything to one Postfix smtp-sink on another loopback port, which counts what it receives
(`smtp-sink -c`) and keeps nothing. Each server runs at its defaults apart from what relaying
needs (and the settings the accept-and-discard cells already use for the inbound side):
Postfix with `relayhost = [127.0.0.1]:SINKPORT`, its smtp and relay transports in master.cf and
`mynetworks = 127.0.0.0/8`; Postern with `[relay] networks = ["127.0.0.0/8"]` and a `[[route]]`
for `"*"` to the same smarthost.

Throughput is what the sink sees: from the start of the load until the sink has counted every
message of it. Latency is measured with single probe messages (Python smtplib) while nothing
else is sent: from the 250 that answers the probe's DATA at the submitting client to the moment
the sink counted it. The servers take turns, their order rotating, as in the other cells.
"""

import math
import os
import smtplib
import statistics
import subprocess
import sys
import time

from servers import Postern, Postfix, Sink, quiesce, smtp_source

SIZE = 1024
CELLS = [(1, 1000), (20, 4000)]  # sessions, messages; one message per connection
PROBES = 50
TO = "sink@relay.example"
PROBE = "From: bench@example.org\r\nTo: " + TO + "\r\nSubject: probe\r\n\r\n" + "x" * 950 + "\r\n"


def make_servers(sink, only):
    smarthost = f"[127.0.0.1]:{sink.port}"
    servers = []
    if only != "postern":
        servers.append(Postfix("postfix-relay", relay_to=smarthost))
    if only != "postfix":
        servers.append(Postern("postern-relay", discard=False, config=f"""
[relay]
networks = ["127.0.0.0/8"]
[[route]]
domain = "*"
smarthost = "{smarthost}"
"""))
    return servers


def relayed(server, sink, sessions, messages):
    """Sends the load and waits until the sink has it all. Returns (msg/s relayed as the sink
    saw it, msg/s accepted as smtp-source saw it, the server's CPU µs per message)."""
    target = sink.count + messages
    before = server.cpu()
    start = time.perf_counter()
    accepted = smtp_source(server.port, sessions, SIZE, messages, False, to=TO)
    done = sink.wait_for(target, timeout=120 + messages / 20)
    if done is None:
        got = sink.count - (target - messages)
        raise SystemExit(f"{server.name}: the sink received {got} of {messages} messages")
    cpu = server.cpu() - before
    return messages / (done - start), messages / accepted, cpu / messages * 1e6


def probe(server, sink):
    """One message; seconds from the 250 after its DATA to its arrival at the sink."""
    with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as c:
        c.ehlo("probe.bench")
        c.mail("bench@example.org")
        c.rcpt(TO)
        base = sink.count
        code, text = c.data(PROBE)
        accepted = time.perf_counter()
        if code != 250:
            raise SystemExit(f"{server.name} refused a probe: {code} {text!r}")
    arrived = sink.wait_for(base + 1, timeout=60)
    if arrived is None:
        raise SystemExit(f"{server.name}: a probe never reached the sink")
    return arrived - accepted


def run(runs, scale, only):
    sink = Sink()
    servers = make_servers(sink, only)
    results, latencies = {}, {s.name: [] for s in servers}
    try:
        for s in servers:
            s.start()
        for sessions, messages in CELLS:
            messages = max(sessions * 2, int(messages * scale))
            for s in servers:
                relayed(s, sink, sessions, max(sessions, messages // 10))  # warm-up
            samples = {s.name: ([], [], []) for s in servers}
            for r in range(runs):
                for s in servers[r % len(servers):] + servers[:r % len(servers)]:
                    quiesce()
                    for series, value in zip(samples[s.name], relayed(s, sink, sessions, messages)):
                        series.append(value)
            for s in servers:
                results[(s.name, sessions)] = tuple(statistics.median(v) for v in samples[s.name])
                rate, accepted, cpu = results[(s.name, sessions)]
                print(f"  {s.name:<8} relay sessions={sessions:<3} {rate:8.0f} msg/s at the sink "
                      f"{accepted:8.0f} msg/s accepted {cpu:7.0f} us CPU/msg", file=sys.stderr)
        quiesce()
        # The probes alternate between the servers, so a busy moment of the machine is shared.
        for i in range(max(5, int(PROBES * scale))):
            for s in servers[i % len(servers):] + servers[:i % len(servers)]:
                latencies[s.name].append(probe(s, sink))
                time.sleep(0.05)
    finally:
        for s in servers:
            s.stop()
        sink.stop()
    report(servers, results, latencies)


def report(servers, results, latencies):
    names = [s.name for s in servers]
    both = "Postfix" in names and "Postern" in names
    version = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True,
                             text=True).stdout.strip()
    print(f"\nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"host: {os.cpu_count()} cores; Postfix {version}; "
          f"command: bench/run {' '.join(sys.argv[1:])}\n")
    head = "| sessions | size | " + " | ".join(f"{n} relayed msg/s" for n in names)
    if both:
        head += " | Postern / Postfix"
    head += " | " + " | ".join(f"{n} accepted msg/s" for n in names)
    head += " | " + " | ".join(f"{n} CPU µs/msg" for n in names)
    print(head + " |")
    print("|" + "---|" * head.count("|"))
    for sessions, _ in CELLS:
        row = [str(sessions), f"{SIZE // 1024} KiB"]
        row += [f"{results[(n, sessions)][0]:.0f}" for n in names]
        if both:
            row.append(f"{results[('Postern', sessions)][0] / results[('Postfix', sessions)][0]:.2f}×")
        row += [f"{results[(n, sessions)][1]:.0f}" for n in names]
        row += [f"{results[(n, sessions)][2]:.0f}" for n in names]
        print("| " + " | ".join(row) + " |")
    print("\n| delivery latency (250 at the client → at the sink) | probes | median | mean | "
          "minimum | 90th percentile |")
    print("|---|---|---|---|---|---|")
    for n in names:
        xs = sorted(latencies[n])
        print(f"| {n} | {len(xs)} | {statistics.median(xs) * 1e3:.2f} ms | "
              f"{statistics.mean(xs) * 1e3:.2f} ms | {xs[0] * 1e3:.2f} ms | {xs[math.ceil(len(xs) * 0.9) - 1] * 1e3:.2f} ms |")
    if both:
        ratio = statistics.median(latencies["Postern"]) / statistics.median(latencies["Postfix"])
        print(f"\nPostern's median latency is {ratio:.2f} of Postfix's.")
