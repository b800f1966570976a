"""The API's parsers: multipart with the same strict file-name rules as the upload guard; bounded JSON and forms."""

from __future__ import annotations

from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, FormParser, JSONParser, MultiPartParser

from jobs.web.upload_guard import RefusedFileName, StrictParser


class StrictMultiPartParser(MultiPartParser):
    """Django strips "../" and control characters from upload names; we answer 400 instead."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding") or "utf-8"
        try:
            data, files = StrictParser(meta, stream, request.upload_handlers, encoding).parse()
        except RefusedFileName as exc:
            raise ParseError({"detail": str(exc), "field": "videos", "file": exc.file_name}) from exc
        except MultiPartParserError as exc:
            raise ParseError(str(exc)) from exc
        return DataAndFiles(data, files)


class _Small:
    """For requests of a field or two: a body longer than MAX_BYTES is refused (400) before it is read, where
    DRF's JSON and form parsers would read any length into memory."""

    MAX_BYTES = 64 * 1024

    def parse(self, stream, media_type=None, parser_context=None):
        meta = parser_context["request"].META
        try:
            length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads no body without a usable length
        if length > self.MAX_BYTES:
            raise ParseError(f"the body is {length} bytes, over the {self.MAX_BYTES} this endpoint reads")
        return super().parse(stream, media_type, parser_context)


class SmallJSONParser(_Small, JSONParser):
    pass


class SmallFormParser(_Small, FormParser):
    pass


class SmallMultiPartParser(_Small, MultiPartParser):
    pass
