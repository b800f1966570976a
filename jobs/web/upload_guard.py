"""Guarding request bodies before anything (the CSRF check included) reads them.

UploadGuardMiddleware, for every request the project serves (the admin's too):
- a route that takes no files, or a client that is not signed in, may send at
  most SMALL_BODY_BYTES: a larger Content-Length is a 413, and a body of no
  declared length (chunked) a 411, both before a byte of it is read;
- a POST to the upload endpoints, by a signed-in client: a 413 on
  Content-Length alone, a 429 or 507 for a user who could not be admitted
  anyway (jobs.services.quota.refuse_early), a 429 past MAX_UPLOADS_PER_USER uploads
  at once (jobs.services.slots), FileSizeLimitHandler first among the upload handlers
  (an oversized file is skipped while it streams in and named in
  `request.oversize_uploads`), and StrictParser for multipart bodies.
Why it sits before CsrfViewMiddleware: docs/architecture/uploads.md ("Uploads").
"""

from __future__ import annotations

import html
import logging
import os
import types

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.shortcuts import render
from django.urls import Resolver404, resolve
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.throttling import UserRateThrottle

from jobs.models import MAX_JOB_NAME_LENGTH, MAX_NOTIFY_URL_LENGTH
from jobs.services import quota, resumable, slots, teams, uploads
from jobs.services.choices import parse_choices
from jobs.services.names import name_problem
from jobs.services.refusal import Refused, not_stored

logger = logging.getLogger(__name__)


class RefusedFileName(MultiPartParserError):
    """A file name the strict rules refuse; `file_name` is the name as the client sent it."""

    def __init__(self, file_name: str, problem: str):
        super().__init__(f"file name {file_name[:80]!r} is not allowed: {problem}")
        self.file_name = file_name


class StrictParser(MultiPartParser):
    def sanitize_file_name(self, file_name):
        """Refuse what the rules refuse, keep the rest as sent. Django's own sanitising drops every character
        that is not printable; past the rules, those are only the joiners of emoji sequences (and spaces
        other than " ", which display_name tidies), which belong to the name."""
        name = html.unescape(file_name)
        problem = name_problem(name)
        if problem:
            raise RefusedFileName(file_name, problem)
        return name


class FileSizeLimitHandler(FileUploadHandler):
    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > settings.MAX_UPLOAD_BYTES:
            self.request.__dict__.setdefault("oversize_uploads", []).append(self.file_name)
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size: int):
        return None  # the next handler builds the file


def _strict_parse_file_upload(request, meta, post_data):
    return StrictParser(meta, post_data, request.upload_handlers, request.encoding).parse()


class UploadGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        route = _route(request)
        if request.method == "PATCH" and route == RESUMABLE_ROUTE:
            return self._guarded_resumable(request)
        if request.method != "POST" or route not in UPLOAD_ROUTES:
            return _refuse_body(request) or self.get_response(request)
        page = route == "jobs-upload"
        user = signed_in_user(request)
        if user is None:  # before a single byte of the body is read
            if page:
                return redirect_to_login(request.get_full_path())
            return not_signed_in()
        # Counted against the user's request rate (the API's own throttle, which skips this route) before
        # the body is read: the page's uploads too.
        throttle = UserRateThrottle()
        if not throttle.allow_request(_AsUser(request, user), None):
            wait = int(throttle.wait() or 1)
            return _refuse(request, page, f"too many requests: try again in {wait} seconds", 429)
        limit = settings.MAX_FILES * settings.MAX_UPLOAD_BYTES + 1024**2  # + room for the form fields
        length = _content_length(request)
        if length > limit:
            return _refuse(request, page, f"the upload is {length} bytes, over the limit of {limit} bytes", 413)
        try:
            # What the user could not get admitted anyway is refused before its body is spooled: too many
            # active jobs, or no room for the upload alone (the job needs more, checked once it is probed).
            quota.refuse_early(user, length)
            slot = slots.take(slots.UPLOADS, user.pk, settings.MAX_UPLOADS_PER_USER)
        except Refused as exc:
            return _refuse(request, page, exc.message, exc.status)
        except slots.NoSlot as exc:
            return _refuse(request, page, str(exc), 429)
        except OSError:  # the data folder is not writable (a full disk, an unmounted share): not the client's doing
            logger.exception("the upload slots could not be opened")
            return _refuse(request, page, "uploads cannot start right now; try again in a minute", 503)
        try:
            return self._guarded_upload(request, page)
        finally:
            slot.release()  # the body has been read and handled: the files are stored or refused

    def _guarded_resumable(self, request):
        """A tus PATCH: from a signed-in client, of a declared length no longer than a file may be, in one of
        the user's upload slots; refused before a byte of it is read."""
        user = signed_in_user(request)
        if user is None:
            response = not_signed_in()
        elif "CONTENT_LENGTH" not in request.META:
            response = JsonResponse({"detail": "a PATCH must say its length (Content-Length)"}, status=411)
        elif (length := _content_length(request)) > settings.MAX_UPLOAD_BYTES:
            message = f"the body is {length} bytes, over the limit of {settings.MAX_UPLOAD_BYTES} bytes"
            response = JsonResponse({"detail": message}, status=413)
        else:
            try:
                slot = slots.take(slots.UPLOADS, user.pk, settings.MAX_UPLOADS_PER_USER)
            except slots.NoSlot as exc:
                response = JsonResponse({"detail": str(exc)}, status=429)
            except OSError:
                logger.exception("the upload slots could not be opened")
                response = JsonResponse({"detail": "uploads cannot start right now; try again in a minute"}, status=503)
            else:
                try:
                    return self.get_response(request)
                finally:
                    slot.release()
        response["Tus-Resumable"] = "1.0.0"
        return response

    def _guarded_upload(self, request, page: bool):
        # Django's spool folder; the data folder may predate it, and a missing one is a 500 on a big upload.
        os.makedirs(settings.FILE_UPLOAD_TEMP_DIR, exist_ok=True)
        request.upload_handlers.insert(0, FileSizeLimitHandler(request))
        request.parse_file_upload = types.MethodType(_strict_parse_file_upload, request)
        if request.user.is_authenticated:  # a session: the CSRF check will parse the body; parse it here first
            try:
                request.POST  # noqa: B018 - parse now, to answer a bad name in the client's own format
            except MultiPartParserError as exc:
                return _refuse(request, page, str(exc), 400, file=getattr(exc, "file_name", ""))
            except OSError as exc:  # the spool folder's disk is full or gone
                logger.exception("an upload could not be spooled")
                return _refuse(request, page, not_stored(exc).message, 503)
        return self.get_response(request)


UPLOAD_ROUTES = ("api-jobs-list", "jobs-upload")
RESUMABLE_ROUTE = "api-uploads-detail"  # its PATCH carries a file's bytes
# What any request may send where no file is taken (forms, JSON, a login): far more than any of them needs.
SMALL_BODY_BYTES = 64 * 1024


def _refuse_body(request):
    """413 for a request declaring more than SMALL_BODY_BYTES, 411 for one that declares no length but
    sends a body (chunked); None when the body is small. Nothing of the body has been read."""
    length = _content_length(request)
    if length > SMALL_BODY_BYTES:
        status, message = 413, f"the request body is {length} bytes; at most {SMALL_BODY_BYTES} bytes are taken here"
    elif "CONTENT_LENGTH" not in request.META and request.META.get("HTTP_TRANSFER_ENCODING"):
        status, message = 411, "a request body must say its length (Content-Length) here"
    else:
        return None
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _route(request) -> str | None:
    """The URL name, whatever form the path takes (DRF also routes /api/jobs.json to the same view)."""
    try:
        return resolve(request.path_info).url_name
    except Resolver404:
        return None


class _AsUser:
    """The request as DRF's throttle reads it, with the user a token named (Django's request has none)."""

    def __init__(self, request, user):
        self.user, self.META = user, request.META


def not_signed_in() -> JsonResponse:
    """The API's 401, as DRF answers it, for a request refused before DRF sees it."""
    response = JsonResponse({"detail": "Authentication credentials were not provided."}, status=401)
    response["WWW-Authenticate"] = "Token"
    return response


def signed_in_user(request):
    """The session's user, or a valid API token's (DRF authenticates tokens only in the view, too late here);
    None for an anonymous request."""
    if request.user.is_authenticated:
        return request.user
    try:
        found = TokenAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    return found[0] if found else None


def _refuse(request, page: bool, message: str, status: int, file: str = ""):
    """The upload page without JavaScript gets the page with the message; everyone else JSON (naming the
    refused file, as the client sent it, when it is one file's fault)."""
    if page:
        return render(request, "jobs/upload.html", page_context(request, error=message), status=status)
    return JsonResponse({"detail": message, "field": "videos", **({"file": file} if file else {})}, status=status)


def page_context(request, **extra) -> dict:
    """What the upload page shows: the limits, the user's teams (and, in `extra`, what the user typed or what
    went wrong)."""
    return {
        "teams": list(teams.teams_of(request.user)),
        "team": teams.default_team(request.user).pk,
        "max_files": settings.MAX_FILES,
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_variations": settings.MAX_VARIATIONS,
        "variations": settings.DEFAULT_VARIATIONS,
        "ttl_hours": settings.JOB_TTL_HOURS,
        "max_name_length": MAX_JOB_NAME_LENGTH,
        "max_outputs": settings.MAX_OUTPUTS_PER_JOB,
        "max_notify_url_length": MAX_NOTIFY_URL_LENGTH,
        "webhook_retry_hours": settings.WEBHOOK_RETRY_HOURS,
        "name": "",
        "notify_url": "",
        "formats": FORMAT_CHOICES,
        "fits": FIT_CHOICES,
        "strengths": STRENGTH_CHOICES,
        **extra,
    }


# What the upload page offers: (value, label, one-line explanation; for a format, its outline's width and height).
FORMAT_CHOICES = [
    ("source", "Source", "the video's own shape", 24, 18),
    ("9:16", "9:16", "Stories, Reels, TikTok", 14, 24),
    ("1:1", "1:1", "square feed", 20, 20),
    ("4:5", "4:5", "portrait feed", 18, 22),
    ("16:9", "16:9", "in-stream, YouTube", 28, 16),
]
FIT_CHOICES = [
    ("crop", "Crop", "fills the frame; the edges of another shape are cut off"),
    ("blur", "Blurred background", "the whole picture, over a blurred, enlarged copy of itself"),
    ("pad", "Plain bands", "the whole picture, with black bands"),
]
STRENGTH_CHOICES = [
    ("subtle", "Subtle", "changes too small to see: a slight tilt and colour shift"),
    ("medium", "Medium", "adds a small zoom, hue shift, grain and ±2% speed"),
    ("strong", "Strong", "visible changes: up to 2° tilt, 6% zoom, ±5% speed, more grain"),
]


def _content_length(request) -> int:
    """The declared length; a junk one counts as unbounded (it is refused, never guessed at)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 2**63


def oversize_uploads(request) -> list[str]:
    """Names of the files the handler skipped for size (works for Django and DRF requests)."""
    return getattr(request, "oversize_uploads", [])


def create_job_from_uploads(owner, data):
    """uploads.create_job of finished resumable uploads (JSON: {"uploads": [ids], "variations": ...}), with
    the same checks and answers as files sent in the form; a refusal about the files names `uploads`."""
    ids = data.get("uploads") if isinstance(data, dict) else None
    if not isinstance(ids, list) or not all(isinstance(upload_id, str) for upload_id in ids):
        raise Refused(
            'uploads: a JSON list of upload ids, e.g. {"uploads": ["<id>"], "variations": 3}', field="uploads"
        )
    files = resumable.finished_files(owner, ids)
    try:
        return uploads.create_job(
            owner,
            files,
            data.get("variations"),
            name=data.get("name"),
            choices=parse_choices(data),
            team=data.get("team"),
        )
    except Refused as exc:
        if exc.field == "videos":
            exc.field = "uploads"
        raise
    except OSError as exc:
        logger.exception("a job of uploads by %s could not be stored", owner)
        raise not_stored(exc, field="uploads") from None
    finally:
        resumable.close(files)


def create_job_from(request):
    """uploads.create_job with what a page or API request carries (Django or DRF request). A disk that fails
    while the upload is spooled or stored (full, unmounted) is a 503: nothing of the upload is kept."""
    try:
        return uploads.create_job(
            request.user,
            request.FILES.getlist("videos"),
            request.POST.get("variations"),
            name=request.POST.get("name"),
            oversize=oversize_uploads(request),
            choices=parse_choices(request.POST),
            team=request.POST.get("team"),
        )
    except OSError as exc:
        logger.exception("an upload by %s could not be stored", request.user)
        raise not_stored(exc) from None
