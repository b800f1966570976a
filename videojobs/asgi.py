"""The application `make run` serves: gunicorn with uvicorn workers (the Procfile), one address for all.

- The event streams (GET /api/jobs/<id>/events/, jobs.web.events) and the downloads (a job's ZIP, one
  variation's file) go to Django's ASGI handler. A stream is an async view: open, it holds no thread,
  only a coroutine. A download streams from the event loop, each chunk read in a thread
  (jobs.web.streaming): faster than a WSGI thread's writes (bench/README.md, "Serving model").
- A token's poll of a job's JSON is answered here, before Django's middleware, when it can be from one
  indexed statement: 304 for an unchanged job, or 200 with the JSON an event stream of this process
  already made (jobs.web.api.not_modified).
- Everything else goes to Django's WSGI application, in a pool of WSGI_THREADS threads per process
  (a2wsgi), as gunicorn's gthread workers served it: a request body is read only as the views read it,
  so the upload guard refuses one before it is read and a resumable upload keeps what arrived of a part.
  A body that goes quiet for BODY_TIMEOUT_SECONDS ends as if its client had gone (a connection that died
  silently would otherwise hold a thread, and an upload's lock, for good).

Django's ASGI handler reads a request's whole body before anything looks at it: the routes it serves take
none, and a request to them that declares one is refused here (413).
"""

from __future__ import annotations

import asyncio
import os
import re

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "videojobs.settings")
django.setup(set_prefix=False)  # what django.core.asgi.get_asgi_application does first

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from jobs.web.api import not_modified  # noqa: E402
from videojobs.limits import raise_open_files_limit  # noqa: E402

raise_open_files_limit()  # each streaming download holds files open: up to the hard limit, not the soft one

JOB = r"/api/jobs/[0-9a-f]{32}/|/jobs/[0-9a-f]{32}/"
# What Django's ASGI handler serves (GET only): the event streams, and the downloads.
STREAMS = re.compile(r"/api/jobs/[0-9a-f]{32}/events/")
POLL = re.compile(r"/api/jobs/([0-9a-f]{32})/")  # a token's poll, maybe answered by jobs.web.api.not_modified
DOWNLOADS = re.compile(rf"(?:{JOB})download/|/api/jobs/[0-9a-f]{{32}}/outputs/[0-9]{{1,18}}/file/")
BODY_TIMEOUT_SECONDS = 30  # as deploy/nginx.conf's client_body_timeout


class StreamingASGIHandler(ASGIHandler):
    chunk_size = 64 * 1024 * 1024  # Django cut (and copied) each chunk of a download into 64 KiB sends


django_asgi = StreamingASGIHandler()
wsgi = WSGIMiddleware(get_wsgi_application(), workers=settings.WSGI_THREADS)


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] != "http":  # websockets: none served
        return await send({"type": "websocket.close", "code": 1000})
    path = scope["path"]
    if scope["method"] == "GET" and (poll := POLL.fullmatch(path)) and await not_modified.answer(scope, send, poll[1]):
        return None
    if scope["method"] == "GET" and (STREAMS.fullmatch(path) or DOWNLOADS.fullmatch(path)):
        if _declares_a_body(scope):
            return await _answer(send, 413, b'{"detail": "this route takes no request body"}')
        return await django_asgi(scope, receive, send)
    return await wsgi(scope, _quiet_ends(receive), send)


def _declares_a_body(scope) -> bool:
    headers = dict(scope.get("headers", []))
    return headers.get(b"content-length", b"0") not in (b"", b"0") or b"transfer-encoding" in headers


def _quiet_ends(receive):
    async def receive_or_end():
        try:
            return await asyncio.wait_for(receive(), BODY_TIMEOUT_SECONDS)
        except TimeoutError:
            return {"type": "http.disconnect"}

    return receive_or_end


async def _answer(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
