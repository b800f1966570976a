"""A multipart parser that refuses hostile file names instead of silently trimming them."""

from __future__ import annotations

import html

from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser

from jobs.uploads import name_problem


class _StrictDjangoParser(DjangoMultiPartParser):
    def sanitize_file_name(self, file_name):
        problem = name_problem(html.unescape(file_name))
        if problem:
            raise MultiPartParserError(f"file name {file_name[:80]!r} is not allowed: {problem}")
        return super().sanitize_file_name(file_name)


class StrictMultiPartParser(MultiPartParser):
    """Django strips "../" and control characters from upload names; we answer 400 instead."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding") or "utf-8"
        try:
            data, files = _StrictDjangoParser(meta, stream, request.upload_handlers, encoding).parse()
        except MultiPartParserError as exc:
            raise ParseError(str(exc)) from exc
        return DataAndFiles(data, files)
