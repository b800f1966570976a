"""A local webhook receiver for the tests: a real HTTP server on 127.0.0.1 that keeps what it is sent."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """Answers each POST with the next of `codes` (the last one again once they run out); `hold` keeps an
    answer back until it is set (a receiver that never answers), `drip` sends it a byte at a time."""

    def __init__(self, codes=(200,), location: str = "", tls: ssl.SSLContext | None = None):
        self.codes = list(codes)
        self.location = location
        self.received: list[Received] = []
        self.hold: threading.Event | None = None
        self.drip = False
        self.stopped = threading.Event()
        self.got_one = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(Received(self.path, dict(self.headers), body))
                receiver.got_one.set()
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                if receiver.drip:  # a status line and headers a byte at a time, for ever (30 s here)
                    for _ in range(150):
                        self.wfile.write(b"X")
                        self.wfile.flush()
                        if receiver.stopped.wait(0.2):
                            return
                code = receiver.codes.pop(0) if len(receiver.codes) > 1 else receiver.codes[0]
                self.send_response(code)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.scheme = "https" if tls else "http"
        if tls:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str = "/hooks/videojobs", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.stopped.set()
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()
