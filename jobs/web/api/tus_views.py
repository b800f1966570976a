"""Resumable uploads: the tus 1.0.0 protocol (core, creation, termination, expiration) at /api/uploads/.

    POST   /api/uploads/        Upload-Length, Upload-Metadata: filename <base64>  -> 201, Location
    HEAD   /api/uploads/<id>/   -> Upload-Offset, Upload-Length
    PATCH  /api/uploads/<id>/   Upload-Offset, application/offset+octet-stream     -> 204, Upload-Offset
    DELETE /api/uploads/<id>/   -> 204
    OPTIONS either              -> Tus-Version, Tus-Extension, Tus-Max-Size

A finished upload becomes a job's video through POST /api/jobs/ with {"uploads": [<id>, ...]}. Before a
PATCH body is read, UploadGuardMiddleware has checked the client's credentials and the body's length.
"""

from __future__ import annotations

import base64
import logging
import re

from django.conf import settings
from django.http import HttpResponse
from django.urls import reverse
from django.utils.http import http_date
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.views import APIView

from jobs.services import resumable
from jobs.services.refusal import Refused
from jobs.web.api.errors import error_response, refusal_response

logger = logging.getLogger(__name__)

VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
CHUNK = 1024 * 1024
BODY_TIMEOUT_SECONDS = 30  # as deploy/nginx.conf's client_body_timeout
_DIGITS = re.compile(r"[0-9]{1,18}")


def _tus(response: HttpResponse, upload=None) -> HttpResponse:
    """The headers every answer carries (and the upload's, when there is one)."""
    response["Tus-Resumable"] = VERSION
    response["Cache-Control"] = "no-store"
    if upload is not None:
        response["Upload-Offset"] = str(upload.offset)
        response["Upload-Expires"] = http_date(upload.expires_at.timestamp())
    return response


class TusView(APIView):
    """What both tus routes share: the version check, OPTIONS, and JSON errors with the tus headers."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # credentials and rate first: 401 before anything else
        if request.method != "OPTIONS" and request.headers.get("Tus-Resumable") != VERSION:
            raise Refused(f"Tus-Resumable: this server speaks tus {VERSION}", status.HTTP_412_PRECONDITION_FAILED)

    def handle_exception(self, exc):
        if isinstance(exc, Refused):
            response = refusal_response(exc)
        else:
            response = super().handle_exception(exc)
        response["Tus-Version"] = VERSION
        return _tus(response)

    @extend_schema(responses={204: OpenApiResponse(description="Tus-Version, Tus-Extension, Tus-Max-Size")})
    def options(self, request, *args, **kwargs):
        response = HttpResponse(status=status.HTTP_204_NO_CONTENT)
        response["Tus-Version"] = VERSION
        response["Tus-Extension"] = EXTENSIONS
        response["Tus-Max-Size"] = str(settings.MAX_UPLOAD_BYTES)
        return _tus(response)

    def _upload(self, request, upload_id: str):
        upload = resumable.find(request.user, upload_id)
        if upload is None:
            raise Refused("no such upload (or it expired, or a job has taken it)", status.HTTP_404_NOT_FOUND)
        return upload


def _headers(*names: str) -> list[OpenApiParameter]:
    return [OpenApiParameter(name, str, OpenApiParameter.HEADER, required=True) for name in ("Tus-Resumable", *names)]


class UploadListView(TusView):
    """tus creation: a new upload of Upload-Length bytes."""

    @extend_schema(
        request=None,
        parameters=_headers("Upload-Length", "Upload-Metadata"),
        responses={
            201: OpenApiResponse(description="made: its address in Location"),
            413: OpenApiResponse(description="Upload-Length over Tus-Max-Size"),
            429: OpenApiResponse(description="MAX_OPEN_UPLOADS_PER_USER open already"),
            507: OpenApiResponse(description="no room under the storage cap or the quota"),
        },
    )
    def post(self, request):
        length = _whole_number(request.headers.get("Upload-Length"), "Upload-Length")
        upload = resumable.open_upload(request.user, length, _filename(request.headers.get("Upload-Metadata", "")))
        response = HttpResponse(status=status.HTTP_201_CREATED)
        response["Location"] = request.build_absolute_uri(reverse("api-uploads-detail", args=[upload.pk]))
        return _tus(response, upload)


class UploadDetailView(TusView):
    """One upload: where it stands (HEAD), more of its bytes (PATCH), or away with it (DELETE)."""

    @extend_schema(parameters=_headers(), responses={200: OpenApiResponse(description="Upload-Offset, Upload-Length")})
    def head(self, request, upload_id):
        upload = self._upload(request, upload_id)
        response = HttpResponse(status=status.HTTP_200_OK)
        response["Upload-Length"] = str(upload.length)
        return _tus(response, upload)

    @extend_schema(
        request={OFFSET_TYPE: bytes},
        parameters=_headers("Upload-Offset"),
        responses={
            204: OpenApiResponse(description="written: the new Upload-Offset"),
            409: OpenApiResponse(description="Upload-Offset is not where the upload stands"),
            423: OpenApiResponse(description="another request is sending this upload now"),
        },
    )
    def patch(self, request, upload_id):
        upload = self._upload(request, upload_id)
        if request.content_type != OFFSET_TYPE:
            raise Refused(f"Content-Type: a PATCH sends {OFFSET_TYPE}", status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
        offset = _whole_number(request.headers.get("Upload-Offset"), "Upload-Offset")
        length = _whole_number(request.headers.get("Content-Length"), "Content-Length")
        if offset + length > upload.length:
            raise Refused(
                f"Content-Length: {length} bytes from offset {offset} run past the upload's length ({upload.length})",
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            upload = resumable.receive(upload, offset, _body(request._request, length))
        except resumable.Busy:
            return _tus(error_response("another request is sending this upload now", status.HTTP_423_LOCKED))
        return _tus(HttpResponse(status=status.HTTP_204_NO_CONTENT), upload)

    @extend_schema(parameters=_headers(), responses={204: None})
    def delete(self, request, upload_id):
        resumable.terminate(self._upload(request, upload_id))
        return _tus(HttpResponse(status=status.HTTP_204_NO_CONTENT))


def _body(request, length: int):
    """The PATCH body in chunks as it arrives, never more than `length` bytes; BodyEnded when it stops short,
    or when nothing arrives for BODY_TIMEOUT_SECONDS (a connection that died without closing would hold the
    upload's lock for good: under gunicorn, its socket gets that timeout while the body is read)."""
    sock = request.META.get("gunicorn.socket")
    before = sock.gettimeout() if sock is not None else None
    if sock is not None:
        sock.settimeout(BODY_TIMEOUT_SECONDS)
    try:
        left = length
        while left:
            try:
                chunk = request.read(min(CHUNK, left))
            except OSError:  # the connection dropped or went quiet (UnreadablePostError, a timeout)
                raise resumable.BodyEnded from None
            if not chunk:
                raise resumable.BodyEnded
            left -= len(chunk)
            yield chunk
    finally:
        if sock is not None:
            sock.settimeout(before)


def _whole_number(value, header: str) -> int:
    if value is None or not _DIGITS.fullmatch(value):
        raise Refused(f"{header}: a whole number of bytes is required, not {str(value)[:40]!r}", field=header)
    return int(value)


def _filename(metadata: str) -> str:
    """The `filename` of Upload-Metadata ("key base64value,key base64value"); Refused without a valid one."""
    for pair in metadata.split(","):
        key, _, value = pair.strip().partition(" ")
        if key == "filename":
            try:
                return base64.b64decode(value, validate=True).decode("utf-8")
            except ValueError:  # not base64 (binascii.Error), not ASCII, or not UTF-8 once decoded
                break
    raise Refused("Upload-Metadata: filename <the file's name in base64> is required", field="Upload-Metadata")
