#!/usr/bin/env python3
"""A hostile LLM server for bench/abuse.sh, on 127.0.0.1:PORT (threaded, stdlib only).

POST /big/<MiB>      a 200 application/json body of MiB mebibytes of 'x' (never valid JSON)
POST /line/<MiB>     a 200 text/event-stream whose first event line is MiB mebibytes long
Bodies go out in 64 KiB writes, so the attacker sees them as a stream of chunks.
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = b"x" * (64 << 10)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        kind, _, mib = self.path.strip("/").partition("/")
        size = int(mib or "1") << 20
        if kind == "line":
            head, ctype = b"data: ", "text/event-stream"
        else:
            head, ctype = b"", "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(head) + size))
        self.end_headers()
        try:
            self.wfile.write(head)
            sent = 0
            while sent < size:
                n = min(len(CHUNK), size - sent)
                self.wfile.write(CHUNK[:n])
                sent += n
        except (BrokenPipeError, ConnectionResetError):
            pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
