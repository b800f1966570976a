"""The job routes that serve files: the ZIP, the job's thumbnail, one variation (with HTTP Range) and its
thumbnail. A mixin of JobViewSet (jobs.web.api.views), which gives it get_object: the job, if the user sees it."""

from __future__ import annotations

import logging

from django.http import FileResponse, Http404
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.negotiation import BaseContentNegotiation

from jobs import storage
from jobs.models import Job, OutputFile
from jobs.services import slots
from jobs.web import archive, byte_range
from jobs.web.api.errors import error_response

logger = logging.getLogger(__name__)


class Gone(APIException):
    status_code = status.HTTP_410_GONE
    default_detail = "gone"


class IgnoreClientContentNegotiation(BaseContentNegotiation):
    """JSON for the errors of a file route whatever the client accepts: a video player's request accepts
    video/*, and DRF would refuse it with 406 before the view could answer with the file."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class JobFilesMixin:
    """The file routes of a job (see the module)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "outputs", str, description="Only these variations: output ids from the job's JSON, e.g. 1,4,7"
            )
        ],
        responses={
            (200, "application/zip"): OpenApiResponse(description="STORE ZIP of the finished outputs + manifest.json"),
            400: OpenApiResponse(description="`outputs` does not name finished variations of this job"),
            409: OpenApiResponse(description="not finished yet, or no finished outputs"),
            410: OpenApiResponse(description="expired"),
            429: OpenApiResponse(description="already MAX_DOWNLOADS_PER_USER downloads streaming for this user"),
        },
    )
    @action(detail=True, methods=["get"], url_name="download")
    def download(self, request, pk=None, **kwargs):
        job = self.get_object()
        if job.is_expired:
            return error_response("this job's results have expired", status.HTTP_410_GONE)
        if not job.is_downloadable:
            reason = "is not finished yet" if not job.is_terminal else "has no finished variations"
            return error_response(
                f"this job {reason} (status: {job.status})", status.HTTP_409_CONFLICT, status=job.status
            )
        try:
            selection = archive.selected_outputs(job, request.query_params.getlist("outputs"))
        except archive.SelectionError as exc:
            return error_response(str(exc), status.HTTP_400_BAD_REQUEST, field="outputs")
        try:
            return archive.zip_response(job, request.user.pk, selection, request)
        except slots.NoSlot as exc:
            return error_response(str(exc), status.HTTP_429_TOO_MANY_REQUESTS)
        except OSError:
            return error_response(archive.UNAVAILABLE, 503)

    @extend_schema(
        responses={
            (200, "image/webp"): OpenApiResponse(description="128 px wide WebP"),
            404: OpenApiResponse(description="no thumbnail yet"),
            410: OpenApiResponse(description="expired"),
        }
    )
    @action(detail=True, methods=["get"], url_name="thumbnail")
    def thumbnail(self, request, pk=None, **kwargs):
        job = self.get_object()
        if job.is_expired:  # as every file route: an expired job serves nothing, though its files await the cleanup
            raise Gone("this job's results have expired")
        path = storage.thumbnail_path(job)
        if path is None or not storage.disk.is_file(path):
            raise Http404("This job has no thumbnail yet.")
        response = FileResponse(storage.disk.open(path), content_type="image/webp")
        response["Cache-Control"] = "private, max-age=3600"
        return response

    def _finished_output(self, output_id: str, with_thumbnail: bool = False) -> tuple[Job, OutputFile]:
        """The job (the owner's, or staff's) and one of its finished variations; 404 or 410 otherwise."""
        job = self.get_object()
        if job.is_expired:
            raise Gone("this job's results have expired")
        outputs = job.outputs.filter(pk=output_id, missing=False)
        output = (outputs.exclude(thumbnail="") if with_thumbnail else outputs).first()
        if output is None:
            raise Http404("This job has no such finished variation" + (" with a thumbnail." if with_thumbnail else "."))
        return job, output

    @extend_schema(
        parameters=[
            OpenApiParameter("download", bool, description="1: as an attachment, named as in the ZIP (a_v03.mp4)")
        ],
        responses={
            (200, "video/mp4"): OpenApiResponse(description="the whole variation (Accept-Ranges: bytes)"),
            (206, "video/mp4"): OpenApiResponse(description="the byte range asked for (Range: bytes=a-b, a- or -n)"),
            404: OpenApiResponse(description="no such finished variation of this job (or not your job)"),
            410: OpenApiResponse(description="expired"),
            416: OpenApiResponse(description="the range starts past the end of the file"),
        },
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"outputs/(?P<output_id>[0-9]{1,18})/file",
        url_name="output-file",
        content_negotiation_class=IgnoreClientContentNegotiation,
    )
    def output_file(self, request, pk=None, output_id=None, **kwargs):
        """One finished variation: for a player (HTTP Range, so it can seek), or with ?download=1 to save it."""
        job, output = self._finished_output(output_id)
        name = archive.file_name(job, output)
        wanted = request.headers.get("Range") if request.method == "GET" else None  # RFC 9110: GET only
        try:
            response = byte_range.file_response(storage.output_path(output), wanted, "video/mp4", request)
        except byte_range.Unsatisfiable as exc:
            response = error_response(str(exc), status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE)
            response["Content-Range"] = f"bytes */{exc.size}"
            return response
        except FileNotFoundError:
            raise Http404("This variation's file is gone.") from None
        except OSError:
            logger.exception("job %s: output %s could not be opened", job.pk, output.pk)
            return error_response(archive.UNAVAILABLE, status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Content-Disposition"] = content_disposition_header(request.GET.get("download") == "1", name)
        response["Cache-Control"] = "private, max-age=3600"
        return response

    @extend_schema(
        responses={
            (200, "image/webp"): OpenApiResponse(description="128 px wide WebP"),
            404: OpenApiResponse(description="no such variation, or it has no thumbnail (or not your job)"),
            410: OpenApiResponse(description="expired"),
        }
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"outputs/(?P<output_id>[0-9]{1,18})/thumbnail",
        url_name="output-thumbnail",
        content_negotiation_class=IgnoreClientContentNegotiation,
    )
    def output_thumbnail(self, request, pk=None, output_id=None, **kwargs):
        """One variation's thumbnail: its frame at 1 s (a third of a shorter video), with its effects."""
        job, output = self._finished_output(output_id, with_thumbnail=True)
        try:
            opened = storage.disk.open(storage.output_thumbnail_path(output))
        except FileNotFoundError:
            raise Http404("This variation's thumbnail is gone.") from None
        except OSError:
            logger.exception("job %s: the thumbnail of output %s could not be opened", job.pk, output.pk)
            return error_response(archive.UNAVAILABLE, status.HTTP_503_SERVICE_UNAVAILABLE)
        response = FileResponse(opened, content_type="image/webp")
        response["Cache-Control"] = "private, max-age=3600"
        return response
