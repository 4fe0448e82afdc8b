"""Deferred messages at scale: Postern holding N deferred messages, then restarted.

Postern relays everything (`[[route]] domain = "*"`) to a loopback port where nothing listens,
with `[delivery] retry_intervals = ["1h"]`, at its default log level (info). smtp-source feeds N
messages of 1 KiB over 20 reused connections; every message's first attempt is refused, and the
log says `message deferred` once for it. When all N are deferred the server's resident memory is
read from /proc (VmRSS, and VmHWM, the peak), and the size of the spool (`DATA/queue`) on disk.
Then the server is stopped (SIGTERM) and started again: the time until it greets on its port,
its memory after recovery, and the count its start-up log gives (`queue recovered
messages=N`), which must be N.
"""

import os
import re
import signal
import sys
import time

from servers import Postern, free_port, smtp_source, status_kib

SESSIONS = 20
SIZE = 1024
TO = "sink@deferred.example"
SETTLE = 3  # seconds after recovery before memory is read again, and no attempt may happen


class LogCounter:
    """Counts lines of the server's log that match, reading only what was added since."""

    def __init__(self, path):
        self.path, self.offset, self.pending = path, 0, b""

    def read(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        *lines, self.pending = (self.pending + data).split(b"\n")
        return [line.decode(errors="replace") for line in lines]


def spool_size(path):
    """(allocated, apparent) bytes of the files under path."""
    allocated = apparent = 0
    for folder, _, files in os.walk(path):
        for name in files:
            st = os.stat(os.path.join(folder, name))
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated, apparent


def wait_deferred(server, log, n):
    """Polls the log until n messages were deferred; returns that count (more means a message
    was deferred twice) and the seconds it took."""
    start = time.perf_counter()
    deadline = start + 300 + n / 20
    deferred = 0
    while deferred < n:
        if server.proc.poll() is not None:
            raise SystemExit(f"Postern exited ({server.proc.returncode}); see {server.log}")
        if time.perf_counter() > deadline:
            raise SystemExit(f"only {deferred} of {n} messages were deferred; see {server.log}")
        deferred += sum("message deferred" in line for line in log.read())
        time.sleep(0.2)
    return deferred, time.perf_counter() - start


def run(n):
    dead = free_port()  # closed again at once: nothing listens there
    server = Postern("postern-deferred", discard=False, log_level="info", config=f"""
[relay]
networks = ["127.0.0.0/8"]
[[route]]
domain = "*"
smarthost = "[127.0.0.1]:{dead}"
[delivery]
retry_intervals = ["1h"]
""")
    log = LogCounter(server.log)
    server.start()
    try:
        rss_idle = server.rss_kib()
        fed = smtp_source(server.port, SESSIONS, SIZE, n, True, to=TO)
        print(f"  fed {n} messages in {fed:.1f} s ({n / fed:.0f} msg/s)", file=sys.stderr)
        deferred, waited = wait_deferred(server, log, n)
        print(f"  {deferred} deferred {waited:.1f} s after the feed ended", file=sys.stderr)
        rss_deferred = server.rss_kib()
        peak = status_kib(server.proc.pid, "VmHWM")
        allocated, apparent = spool_size(os.path.join(server.data, "queue"))
        track, _ = spool_size(os.path.join(server.data, "log"))

        stopping = time.perf_counter()
        server.stop()
        stopped = time.perf_counter() - stopping
        log.read()  # what the first run wrote
        listening = server.start()
        rss_recovered = server.rss_kib()
        time.sleep(SETTLE)
        rss_settled = server.rss_kib()
        lines = log.read()
    finally:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            server.proc.wait(timeout=60)
    recovered = None
    for line in lines:
        if "queue recovered" in line:
            m = re.search(r"messages\W+(\d+)", line)
            recovered = int(m.group(1)) if m else None
    attempts = sum("message deferred" in line for line in lines)

    mib = lambda kib: f"{kib / 1024:.1f} MiB"
    print(f"\nDate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"host: {os.cpu_count()} cores; command: bench/run {' '.join(sys.argv[1:])}\n")
    print("| figure | value |")
    print("|---|---|")
    print(f"| messages fed (1 KiB, {SESSIONS} reused connections) | {n} in {fed:.1f} s "
          f"({n / fed:.0f} msg/s) |")
    print(f"| `message deferred` lines | {deferred} ({waited:.1f} s after the feed ended) |")
    print(f"| resident memory, idle before the feed | {mib(rss_idle)} |")
    print(f"| resident memory with all deferred (VmRSS) | {mib(rss_deferred)} |")
    print(f"| peak resident memory (VmHWM) | {mib(peak)} |")
    print(f"| spool on disk (`DATA/queue`) | {allocated / 2**20:.1f} MiB allocated, "
          f"{apparent / 2**20:.1f} MiB apparent ({allocated / n:.0f} B per message) |")
    print(f"| track log (`DATA/log`) | {track / 2**20:.1f} MiB |")
    print(f"| SIGTERM to exit | {stopped:.2f} s |")
    print(f"| restart until it greets on its port | {listening:.2f} s |")
    print(f"| `queue recovered` at start-up | messages={recovered} "
          f"({'all' if recovered == n else 'NOT all'} of {n}) |")
    print(f"| resident memory after recovery | {mib(rss_recovered)} at once, "
          f"{mib(rss_settled)} {SETTLE} s later |")
    print(f"| delivery attempts in the {SETTLE} s after restart | {attempts} (due in 1 h) |")
    if recovered != n:
        raise SystemExit(f"recovery found {recovered} messages, not {n}")
