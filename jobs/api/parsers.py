"""The API's multipart parser: the same strict file-name rules as jobs.upload_guard."""

from __future__ import annotations

from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser

from jobs.upload_guard import RefusedFileName, StrictParser


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
