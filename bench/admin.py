"""The admin listener's cost: Postern's accept-and-discard load, in one run, with the admin
listener off (`[admin] address = ""`) and on with a scraper fetching `GET /metrics` every second
throughout the load, as Prometheus would. The two instances take turns, their order rotating
each run, and the median of each cell is reported; the issue's bar is that throughput with the
scraper stays within 5% of throughput without it.

The cells are the 1 KiB cells of the main comparison (bench/run.py). The scraper is a thread of
this script: one HTTP GET a second on a connection of its own, asking for OpenMetrics like
Prometheus does; every scrape must answer 200, and the count is reported.
"""

import os
import re
import statistics
import sys
import threading
import time
import urllib.request

import servers
from servers import Postern, free_port, quiesce, smtp_source

CELLS = [(1, 1024, 2000, False), (20, 1024, 8000, False), (100, 1024, 8000, False),
         (20, 1024, 10000, True)]
SECTION = "## The admin listener and a scraper"


class Scraper:
    """Fetches a URL every `period` seconds on a thread until stopped; counts the answers."""

    def __init__(self, url, period=1.0):
        self.url, self.period = url, period
        self.ok = self.failed = 0
        self.bytes = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            request = urllib.request.Request(
                self.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    self.bytes = len(answer.read())
                    self.ok += 1 if answer.status == 200 else 0
            except OSError:
                self.failed += 1
            self.stopping.wait(self.period)

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)


def wait_http(url, timeout=20):
    """Polls `url` until it answers 200 (the admin listener is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing serves {url}: is the admin listener built in?")


def run(runs, scale, write):
    admin_port = free_port()
    off = Postern("postern-admin-off", config='[admin]\naddress = ""\n')
    off.name = "admin off"
    on = Postern("postern-admin-on", config=f'[admin]\naddress = "127.0.0.1:{admin_port}"\n')
    on.name = "admin on + scrape/s"
    pair = [off, on]
    for s in pair:
        s.start()
    wait_http(f"http://127.0.0.1:{admin_port}/metrics")
    scraper = Scraper(f"http://127.0.0.1:{admin_port}/metrics")
    results = {}
    try:
        for sessions, size, messages, reuse in CELLS:
            messages = max(sessions * 2, int(messages * scale))
            samples = {s.name: [] for s in pair}
            for s in pair:
                smtp_source(s.port, sessions, size, max(sessions, messages // 10), reuse)
            for r in range(runs):
                for s in pair[r % 2:] + pair[:r % 2]:
                    quiesce()
                    elapsed = smtp_source(s.port, sessions, size, messages, reuse)
                    samples[s.name].append(messages / elapsed)
            for s in pair:
                results[(s.name, sessions, reuse)] = statistics.median(samples[s.name])
            ratio = results[(on.name, sessions, reuse)] / results[(off.name, sessions, reuse)]
            print(f"  sessions={sessions:<3} reuse={reuse!s:<5} off "
                  f"{results[(off.name, sessions, reuse)]:8.0f} msg/s  on "
                  f"{results[(on.name, sessions, reuse)]:8.0f} msg/s  {ratio:.1%}", file=sys.stderr)
    finally:
        scraper.stop()
        for s in pair:
            s.stop()
    if scraper.ok == 0:
        raise SystemExit("the scraper never got /metrics: is the admin listener built in?")

    lines = [SECTION, "",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; host: "
             f"{os.cpu_count()} cores; command: bench/run {' '.join(sys.argv[1:])}", "",
             "Postern accepting and discarding 1 KiB messages (as in the end-to-end table), "
             "once with the admin listener off and once with it on and a scraper fetching "
             "`GET /metrics` every second during the whole load; same run, turns rotating, "
             f"median of {runs}. The scraper made {scraper.ok} scrapes ({scraper.failed} "
             f"failed), the last one {scraper.bytes} bytes.", "",
             "| sessions | connection | admin off msg/s | admin on + scrape msg/s | on / off |",
             "|---|---|---|---|---|"]
    worst = None
    for sessions, _, _, reuse in CELLS:
        a = results[(off.name, sessions, reuse)]
        b = results[(on.name, sessions, reuse)]
        worst = b / a if worst is None else min(worst, b / a)
        lines.append(f"| {sessions} | {'reused' if reuse else 'one per message'} | {a:.0f} | "
                     f"{b:.0f} | {b / a:.1%} |")
    lines += ["", f"Lowest ratio: {worst:.1%} (the bar: at least 95%).", ""]
    text = "\n".join(lines)
    print("\n" + text)
    if write:
        replace_section(os.path.join(servers.ROOT, "BENCHMARKS.md"), text)
        print("BENCHMARKS.md: section written", file=sys.stderr)


def replace_section(path, text):
    """Puts `text` in place of the section it heads in `path`, or at the end."""
    old = open(path).read()
    pattern = re.compile(re.escape(SECTION) + r"\n.*?(?=\n## |\Z)", re.S)
    new = pattern.sub(lambda _: text.rstrip("\n"), old) if pattern.search(old) else \
        old.rstrip("\n") + "\n\n" + text
    open(path, "w").write(new.rstrip("\n") + "\n")
