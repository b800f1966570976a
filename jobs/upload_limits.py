"""Refuse an oversized upload while it streams in, instead of after storing all of it.

The middleware runs before anything (the CSRF check included) reads the body
of an upload request. A request whose Content-Length is over MAX_FILES x
MAX_UPLOAD_BYTES is answered 413 without reading it. Otherwise it puts
FileSizeLimitHandler first among the upload handlers: a file that grows past
MAX_UPLOAD_BYTES is skipped (its bytes are read and dropped, never written to
memory or a temporary file) and its name kept in `request.oversize_uploads`
for the view to answer 413.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import JsonResponse
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
            limit = settings.MAX_FILES * settings.MAX_UPLOAD_BYTES + 1024**2  # + room for the form fields
            length = _content_length(request)
            if length > limit:
                message = f"the upload is {length} bytes, over the limit of {limit} bytes"
                return JsonResponse({"detail": message, "field": "videos"}, status=413)
            request.upload_handlers.insert(0, FileSizeLimitHandler(request))
        return self.get_response(request)


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def oversize_uploads(request) -> list[str]:
    """Names of the files the handler skipped for size (works for Django and DRF requests)."""
    return getattr(request, "oversize_uploads", [])
