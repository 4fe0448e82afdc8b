"""List expansion: one message to 1,000 recipients, Postern against Postfix in the same run.

Postern expands the address with `builtin:mailing-list` (a list of 1,000 members, `posting =
"anyone"`, bound at `categorize`: the post gets the list's bounce address and `List-*` fields);
Postfix expands the same 1,000 addresses with `virtual_alias_maps` (a texthash: table, read at
start), as an alias. The members are all at `members.example`, which both servers relay to one Postfix
smtp-sink on a loopback port (Postern by a `[[route]]`, Postfix by `relayhost`); the sink counts
transactions (`smtp-sink -c`) and keeps nothing. Each server groups recipients into transactions
its own way, so a calibration message first tells how many transactions one expanded message
makes at the sink; a load of N messages is then done when the sink has counted N times that.

smtp-source sends the load over 20 sessions (one message per connection, 1 KiB) to
`list@lists.example`; throughput is messages (and recipients) a second from the start of the
load until the sink has counted everything, with each server's CPU time per message read from
/proc. The servers take turns, their order rotating, as in the other cells.
"""

import os
import statistics
import subprocess
import sys
import time

import servers as servers_mod

from servers import Postern, Postfix, Sink, quiesce, smtp_source

SESSIONS = 20
SIZE = 1024
MEMBERS = 1000
MESSAGES = 200  # per run; scaled by --quick
LIST = "list@lists.example"
MEMBER = "member{}@members.example"


def members():
    return [MEMBER.format(i) for i in range(MEMBERS)]


def make_servers(sink, only):
    smarthost = f"[127.0.0.1]:{sink.port}"
    servers = []
    if only != "postern":
        pf = Postfix("postfix-lists", relay_to=smarthost)
        table = os.path.join(pf.dir, "virtual")
        with open(table, "w") as f:
            f.write(f"{LIST} {', '.join(members())}\n")
        with open(os.path.join(pf.dir, "main.cf"), "a") as f:
            f.write(f"virtual_alias_domains = lists.example\n"
                    f"virtual_alias_maps = texthash:{table}\n")
        servers.append(pf)
    if only != "postfix":
        pt = Postern("postern-lists", discard=False, config=f"""
[[domain]]
name = "lists.example"
users = ["list", "list-bounces"]
[[route]]
domain = "members.example"
smarthost = "{smarthost}"
""")
        os.makedirs(pt.data, exist_ok=True)
        with open(os.path.join(pt.data, "lists.toml"), "w") as f:
            quoted = ", ".join(f'"{m}"' for m in members())
            f.write(f'[[list]]\naddress = "{LIST}"\nposting = "anyone"\nmembers = [{quoted}]\n')
        subprocess.run([servers_mod.POSTERN, "binding", "add", "--config", pt.config, "--event",
                        "categorize", "--sink", "builtin:mailing-list", "--prop",
                        "file=lists.toml", "--name", "list"], check=True,
                       stdout=subprocess.DEVNULL)
        servers.append(pt)
    return servers


def transactions_per_message(server, sink):
    """Sends one message and waits until the sink's count stops moving."""
    start = sink.count
    smtp_source(server.port, 1, SIZE, 1, False, to=LIST)
    deadline = time.perf_counter() + 60
    last, still = sink.count, time.perf_counter()
    while time.perf_counter() < deadline:
        time.sleep(0.1)
        if sink.count != last:
            last, still = sink.count, time.perf_counter()
        elif sink.count > start and time.perf_counter() - still > 2:
            return sink.count - start
    raise SystemExit(f"{server.name}: the calibration message never reached the sink")


def expanded(server, sink, per_message, messages):
    """Sends the load and waits until the sink has it all: (msg/s, CPU µs per message)."""
    target = sink.count + messages * per_message
    before = server.cpu()
    start = time.perf_counter()
    smtp_source(server.port, SESSIONS, SIZE, messages, False, to=LIST)
    done = sink.wait_for(target, timeout=300 + messages)
    if done is None:
        raise SystemExit(f"{server.name}: the sink counted {sink.count} of {target} transactions")
    return messages / (done - start), (server.cpu() - before) / messages * 1e6


def run(runs, scale, only, members_count=MEMBERS, message_count=MESSAGES):
    global MEMBERS
    MEMBERS = members_count
    sink = Sink()
    servers = make_servers(sink, only)
    messages = max(SESSIONS, int(message_count * scale))
    samples = {s.name: ([], []) for s in servers}
    per = {}
    try:
        for s in servers:
            s.start()
            per[s.name] = transactions_per_message(s, sink)
            print(f"  {s.name}: one message makes {per[s.name]} transactions at the sink",
                  file=sys.stderr)
        for r in range(runs):
            for s in servers[r % len(servers):] + servers[:r % len(servers)]:
                quiesce()
                rate, cpu = expanded(s, sink, per[s.name], messages)
                samples[s.name][0].append(rate)
                samples[s.name][1].append(cpu)
                print(f"  {s.name:<8} {rate:7.1f} msg/s ({rate * MEMBERS:8.0f} recipients/s) "
                      f"{cpu:8.0f} us CPU/msg", file=sys.stderr)
    finally:
        for s in servers:
            s.stop()
        sink.stop()

    print(f"\nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"host: {os.cpu_count()} cores; command: bench/run {' '.join(sys.argv[1:])}\n")
    print("| server | expansion | transactions per message at the sink | msg/s | recipients/s "
          "| CPU µs/msg |")
    print("|---|---|---|---|---|---|")
    how = {"Postern": "`builtin:mailing-list`", "Postfix": "`virtual_alias_maps` (texthash)"}
    for s in servers:
        rate = statistics.median(samples[s.name][0])
        cpu = statistics.median(samples[s.name][1])
        print(f"| {s.name} | {how[s.name]} | {per[s.name]} | {rate:.1f} | {rate * MEMBERS:.0f} "
              f"| {cpu:.0f} |")
    if len(servers) == 2:
        ratio = statistics.median(samples["Postern"][0]) / statistics.median(samples["Postfix"][0])
        print(f"\nPostern / Postfix: {ratio:.2f}× ({messages} messages of {SIZE} B to a "
              f"{MEMBERS}-address list over {SESSIONS} sessions, median of {runs}).")
