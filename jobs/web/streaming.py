"""Streaming a file or a ZIP under either server: the sync iterator WSGI wants, or, under the ASGI server
(videojobs/asgi.py), an async one that reads each chunk in a thread and hands it to the event loop.

Django consumes a sync iterator whole (into a list: a ZIP into memory) before an ASGI server sends any of
it, and a FileResponse in blocks of 4 KB: hence AsyncChunks, for the routes the ASGI server serves
itself (the downloads: jobs.web.archive, jobs.web.byte_range).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from django.core.handlers.asgi import ASGIRequest

CHUNK = 1024 * 1024
BATCH_BYTES = 8 * CHUNK


def under_asgi(request) -> bool:
    """Is this request (Django's or DRF's) served by the ASGI handler?"""
    return isinstance(getattr(request, "_request", request), ASGIRequest)


class AsyncChunks:
    """An async iterator over `chunks`, each read in a thread (a read from disk never blocks the event loop),
    the next one while the last is sent (one ahead: two chunks in memory at most); close() (Django calls it
    when the response ends, however it ends) runs `close`."""

    def __init__(self, chunks: Iterable[bytes], close: Callable[[], None] | None = None):
        self._chunks, self._close = chunks, close

    async def __aiter__(self):
        loop = asyncio.get_running_loop()
        iterator = iter(self._chunks)
        ahead = loop.run_in_executor(None, _some, iterator)
        try:
            while chunks := await ahead:
                ahead = loop.run_in_executor(None, _some, iterator)
                for chunk in chunks:
                    yield chunk
        finally:
            if not ahead.done():  # the client went: let the read in flight end before close() runs
                with contextlib.suppress(BaseException):
                    await ahead

    def close(self) -> None:
        if self._close is not None:
            self._close()


def _some(iterator) -> list[bytes]:
    """The next chunks, BATCH_BYTES or a little more of them ([] at the end): one thread hop for several."""
    taken, size = [], 0
    while size < BATCH_BYTES and (chunk := next(iterator, None)) is not None:
        taken.append(chunk)
        size += len(chunk)
    return taken


def file_chunks(opened) -> Iterable[bytes]:
    """An open file (or anything with read()) in chunks of CHUNK bytes, to its end."""
    return iter(lambda: opened.read(CHUNK), b"")
