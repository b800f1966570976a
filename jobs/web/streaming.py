"""Streaming a file or a ZIP under either server: the sync iterator WSGI wants, or, under the ASGI server
(videojobs/asgi.py), an async one (AsyncChunks) that keeps slow reads off the event loop.

Django consumes a sync iterator whole (into a list: a ZIP into memory) before an ASGI server sends any of
it, and a FileResponse in blocks of 4 KB: hence AsyncChunks, for the routes the ASGI server serves
itself (the downloads: jobs.web.archive, jobs.web.byte_range).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse

CHUNK = 1024 * 1024
SLOW_READ_SECONDS = 0.002  # a MiB from the page cache takes about a tenth of that
THREAD_READS = 16


def under_asgi(request) -> bool:
    """Is this request (Django's or DRF's) served by the ASGI handler?"""
    return isinstance(getattr(request, "_request", request), ASGIRequest)


class AsyncChunks:
    """An async iterator over `chunks`, whose reads must not stall the event loop for long; close() (Django
    calls it when the response ends, however it ends) runs `close`.

    Each chunk is read on the event loop while reads are quick (the data in the page cache: most of all,
    outputs just made), which is the fastest (bench/README.md, "Serving model"). A read that takes longer
    than SLOW_READ_SECONDS (the disk) sends the next THREAD_READS chunks to a thread, then the loop tries
    again: the loop waits for the disk at most once in every THREAD_READS + 1 chunks.
    """

    def __init__(self, chunks: Iterable[bytes], close: Callable[[], None] | None = None):
        self._chunks, self._close = chunks, close

    async def __aiter__(self):
        loop = asyncio.get_running_loop()
        iterator = iter(self._chunks)
        in_threads = 0
        try:
            while True:
                if in_threads:
                    in_threads -= 1
                    chunk = await loop.run_in_executor(None, next, iterator, None)
                else:
                    started = time.perf_counter()
                    chunk = next(iterator, None)
                    if time.perf_counter() - started > SLOW_READ_SECONDS:
                        in_threads = THREAD_READS
                    # The server's send returns at once for a client that went: without this, the rest of
                    # the ZIP would be read before the disconnect could be heard.
                    await asyncio.sleep(0)
                if chunk is None:
                    return
                yield chunk
        finally:  # Django does not close a response whose iterator raised, nor always one cut short
            self.close()

    def close(self) -> None:
        close, self._close = self._close, None
        if close is not None:
            close()


def headers_only(response: StreamingHttpResponse, close: Callable[[], None]) -> HttpResponse:
    """A HEAD's answer to a download: the same status and headers, no body; `close` closes what the download
    opened (its files, its slot) without a byte read. A server drops a HEAD's body, but would read it all
    first. (Not response.close(): that also ends the request for Django, its database connection with it.)"""
    answer = HttpResponse(status=response.status_code)
    for name, value in response.items():
        answer[name] = value
    close()
    return answer


def file_chunks(opened) -> Iterable[bytes]:
    """An open file (or anything with read()) in chunks of CHUNK bytes, to its end."""
    return iter(lambda: opened.read(CHUNK), b"")
