"""Where a webhook may go, and the POST that goes there (jobs.services.webhooks).

A notify_url is http or https, carries no credentials, and its host resolves to public addresses only
(loopback, private, link-local, reserved and the like are refused unless WEBHOOK_ALLOW_PRIVATE). The check
runs when a job is made and again at every attempt: the host is resolved once per attempt and the
connection goes to the address that was checked, never to a second lookup, so a name that answers a
public address to the check and a private one to the connection (DNS rebinding) gets nowhere.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from jobs.models import MAX_NOTIFY_URL_LENGTH
from jobs.services.refusal import Refused

FIELD = "notify_url"
TIMEOUT_SECONDS = 10.0  # the whole attempt: connection, request and the answer's status line and headers


@dataclass(frozen=True)
class Target:
    """A checked notify_url: its parts, and the address its connection goes to."""

    scheme: str
    host: str
    port: int
    path: str  # with its query
    address: str


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no answer (refused, unreachable, timed out, TLS failed)
    error: str = ""
    seconds: float = 0.0


def check_notify_url(value) -> str:
    """The notify_url a job may keep: "" for none; a refusal (400, naming notify_url) when it may not go there.
    Its host is resolved now, so that a URL that could never be delivered is refused while its maker waits."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _refused("a URL, as a string")
    url = value.strip()
    if url:
        target(url)
    return url


def target(url: str) -> Target:
    """Parse, check and resolve `url` (once): a Target, or Refused naming notify_url."""
    if len(url) > MAX_NOTIFY_URL_LENGTH:
        raise _refused(f"at most {MAX_NOTIFY_URL_LENGTH} characters")
    if not url.isascii() or any(ord(char) <= 32 or ord(char) == 127 for char in url):
        raise _refused("spaces, control characters and non-ASCII characters must be percent-encoded")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refused("not a URL") from None
    if parts.scheme not in ("http", "https"):
        raise _refused("an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise _refused("no credentials in the URL: the webhook is signed instead (X-Videojobs-Signature)")
    if not parts.hostname:
        raise _refused("the URL has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port, path, _checked_address(parts.hostname, port))


def post(to: Target, body: bytes, headers: dict[str, str]) -> Answer:
    """POST `body` to the checked address, with the host's name for the Host header and TLS. No redirect is
    followed; only the status line and headers of the answer are read. Never raises for the network."""
    connection = _connection(to)
    started = time.monotonic()
    # The socket timeout bounds each wait; this bounds the whole (an answer dripped a byte at a time).
    deadline = threading.Timer(TIMEOUT_SECONDS, _cut, args=(connection,))
    deadline.start()
    try:
        connection.request("POST", to.path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, seconds=time.monotonic() - started)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        error = "timed out" if time.monotonic() - started >= TIMEOUT_SECONDS else f"{type(exc).__name__}: {exc}"
        return Answer(None, error[:300], time.monotonic() - started)
    finally:
        deadline.cancel()
        connection.close()


def _checked_address(host: str, port: int) -> str:
    """The first address `host` resolves to, once every one it resolves to is allowed. One message for a name
    that does not resolve and one that is private: which internal names exist is not for a user to learn."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        found = []
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    allowed = settings.WEBHOOK_ALLOW_PRIVATE or all(_public(address) for address in addresses)
    if not addresses or not allowed:
        raise _refused(
            f"its host {host[:100]!r} does not resolve to a public address (loopback, private, link-local and "
            "reserved addresses are refused unless the server sets WEBHOOK_ALLOW_PRIVATE=1, for an intranet)"
        )
    return addresses[0]


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope (fe80::1%eth0) is link-local anyway
    if isinstance(ip, ipaddress.IPv6Address) and (ip.ipv4_mapped or ip.sixtofour):
        ip = ip.ipv4_mapped or ip.sixtofour
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local  # fec0::/10, deprecated, still routed
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local or site_local)


def _refused(why: str) -> Refused:
    return Refused(f"notify_url: {why}", field=FIELD)


class _PinnedHTTP(http.client.HTTPConnection):
    """http.client to the checked address; the Host header still names the host."""

    def __init__(self, to: Target):
        super().__init__(to.host, to.port, timeout=TIMEOUT_SECONDS)
        self.address = to.address

    def connect(self):
        self.sock = _connected(self.address, self.port)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """TLS to the checked address, the certificate checked against the host's name (SNI too)."""

    def __init__(self, to: Target):
        super().__init__(to.host, to.port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context())
        self.address = to.address

    def connect(self):
        self.sock = _connected(self.address, self.port)  # the deadline can cut it
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def _connected(address: str, port: int) -> socket.socket:
    """A socket connected to that address itself (socket.create_connection would look the name up again)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT_SECONDS)
    try:
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _connection(to: Target) -> http.client.HTTPConnection:
    return _PinnedHTTPS(to) if to.scheme == "https" else _PinnedHTTP(to)


def _cut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
