"""An HTTP hook server for Postern's HTTP sink tests, standard library only.

Listens on 127.0.0.1 and a free port (printed as `ready PORT` on standard output once
listening), appends every request it receives, with its Authorization header, as one JSON line
to OUT/requests.jsonl, and answers from a JSON script given with --script: a list of rules,
the first that matches a request decides the answer (no rule matching: `{"action":"continue"}`).

  [{"event": "inbound:MAIL",            # match on the event (optional)
    "args_contain": "spammer@",          # match on command.args (optional)
    "answer": {"action": "reject", ...}, # the JSON answered
    "raw": "not json",                   # or these bytes instead
    "status": 200,                       # HTTP status (default 200)
    "delay": 2.0,                        # seconds to wait before answering
    "content_contains": "Subject: hi"}]  # the hook checks message.content (base64): when it
                                         # is missing or lacks this text, it answers
                                         # reject 550 "content not seen" instead

With --tls-cert and --tls-key it serves HTTPS.
"""

import argparse
import base64
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def matches(rule, request):
    if "event" in rule and rule["event"] != request.get("event"):
        return False
    if "args_contain" in rule:
        args = (request.get("command") or {}).get("args", "")
        if rule["args_contain"] not in args:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Head and body leave in one segment: written apart, Nagle's algorithm and the client's
    # delayed ACK add 40 ms to every answer on a kept-alive connection.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        request = json.loads(body)
        with LOCK:
            with open(os.path.join(self.server.out, "requests.jsonl"), "a") as f:
                record = {"authorization": self.headers.get("Authorization"),
                          "content_type": self.headers.get("Content-Type"),
                          "request": request}
                f.write(json.dumps(record) + "\n")
        rule = next((r for r in self.server.script if matches(r, request)), {})
        if rule.get("delay"):
            time.sleep(rule["delay"])
        answer = rule.get("answer", {"action": "continue"})
        if "content_contains" in rule:
            content = (request.get("message") or {}).get("content")
            raw = base64.b64decode(content).decode("utf-8", "replace") if content else ""
            if rule["content_contains"] not in raw:
                answer = {"action": "reject",
                          "response": {"code": 550, "enhanced": "5.7.1",
                                       "text": "content not seen"}}
        data = rule["raw"].encode() if "raw" in rule else json.dumps(answer).encode()
        self.send_response(rule.get("status", 200))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, fmt, *args):
        sys.stderr.write(fmt % args + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--script", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.out = args.out
    with open(args.script) as f:
        server.script = json.load(f)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
