"""Refuse an oversized upload while it streams in, instead of after storing all of it.

The middleware puts FileSizeLimitHandler first among the request's upload
handlers, before anything (the CSRF check included) reads the body. A file
that grows past MAX_UPLOAD_BYTES is skipped: its bytes are read and dropped,
never written to memory or a temporary file, and its name is kept in
`request.oversize_uploads` for the view to answer 413.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.urls import reverse


class FileSizeLimitHandler(FileUploadHandler):
    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > settings.MAX_UPLOAD_BYTES:
            self.request.__dict__.setdefault("oversize_uploads", []).append(self.file_name)
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size: int):
        return None  # the next handler builds the file


class UploadLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "POST" and request.path in (reverse("api-jobs-list"), reverse("jobs-upload")):
            request.upload_handlers.insert(0, FileSizeLimitHandler(request))
        return self.get_response(request)


def oversize_uploads(request) -> list[str]:
    """Names of the files the handler skipped for size (works for Django and DRF requests)."""
    return getattr(request, "oversize_uploads", [])
