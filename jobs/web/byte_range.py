"""One byte range of a file (RFC 9110, section 14): what a browser's video player asks for when it seeks.

Django's FileResponse answers every request with the whole file. The maintained Range implementations
did not fit: django-ranged-response's last release is from 2017, and WhiteNoise's (for its static files
only, inside its own responder) answers a one-byte range such as `bytes=0-0` with 416.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.http import FileResponse

from jobs import storage
from jobs.web import streaming

# One range of bytes; a position of more than 18 digits (past any file) makes the header one this ignores.
_ONE_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})", re.IGNORECASE)


class Unsatisfiable(ValueError):
    """The range starts at or past the end of the file: answer 416 with `Content-Range: bytes */size`."""

    def __init__(self, size: int):
        super().__init__(f"no byte of the range is within the {size}-byte file")
        self.size = size


def requested(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte, both included, of the one range `header` asks of a `size`-byte file.

    None: answer with the whole file. That is the answer to no header, and also, as RFC 9110 allows, to a
    header this does not serve: another unit, several ranges, or a malformed one (e.g. `bytes=5-2`, or a
    position of more than 18 digits).
    """
    match = _ONE_RANGE.fullmatch((header or "").replace(" ", ""))
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # "-n": the last n bytes
        if int(last) == 0 or size == 0:
            raise Unsatisfiable(size)
        return max(size - int(last), 0), size - 1
    if last and int(last) < int(first):
        return None
    if int(first) >= size:
        raise Unsatisfiable(size)
    return int(first), min(int(last), size - 1) if last else size - 1


def file_response(path: Path, range_header: str | None, content_type: str, request=None):
    """200 with the whole file, or 206 with the range asked for; Unsatisfiable for a range past its end.

    OSError when the file cannot be opened. Pass no range for a HEAD: Range is defined for GET only. Under
    the ASGI server (`request` says), the bytes stream as jobs.web.streaming.AsyncChunks.
    """
    opened = storage.disk.open(path)
    try:
        size = storage.disk.size_of_open(opened)  # the file opened, even if its name goes meanwhile
        wanted = requested(range_header, size)
    except BaseException:
        opened.close()
        raise
    if wanted is None:
        response = FileResponse(opened, content_type=content_type)
    else:
        first, last = wanted
        response = FileResponse(_Slice(opened, first, last - first + 1), status=206, content_type=content_type)
        response["Content-Length"] = str(last - first + 1)
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    response["Accept-Ranges"] = "bytes"
    if request is not None and request.method == "HEAD":
        return streaming.headers_only(response, response.file_to_stream.close)
    if request is not None and streaming.under_asgi(request):
        source = response.file_to_stream
        response.streaming_content = streaming.AsyncChunks(streaming.file_chunks(source), close=source.close)
    return response


class _Slice:
    """`length` bytes of an open file from `first`: what FileResponse reads (and closes) for a 206."""

    def __init__(self, opened, first: int, length: int):
        opened.seek(first)
        self.opened, self.left = opened, length

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.opened.read(size) if size > 0 else b""
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.opened.close()
