from __future__ import annotations

import logging

from django.db.models import Prefetch
from django.http import FileResponse, Http404
from django.utils.http import content_disposition_header
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from jobs import storage
from jobs.models import Job, OutputFile, SourceVideo
from jobs.services import reuse, slots
from jobs.services.cancel import cancel_job, delete_job_with_files
from jobs.services.choices import Choices, parse_choices
from jobs.services.listing import parse_filters
from jobs.services.refusal import Refused
from jobs.web import archive, byte_range, upload_guard
from jobs.web.api.errors import error_response
from jobs.web.api.parsers import SmallFormParser, SmallJSONParser, SmallMultiPartParser, StrictMultiPartParser
from jobs.web.api.serializers import JobCreateSerializer, JobSerializer, MakeMoreSerializer

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


# The outputs of each source in their order, without the join the model's default ordering (by the
# source's position first) would add, and only the columns the job document shows (serializers.output_document):
# making the model instances is most of a large job's poll.
OUTPUT_COLUMNS = ("source_id", "variation_index", "format", "width", "height", "seconds", "size", "effects", "ssim")
OUTPUT_COLUMNS += ("missing", "thumbnail")
OUTPUTS_IN_ORDER = Prefetch(
    "outputs",
    OutputFile.objects.only(*OUTPUT_COLUMNS).order_by("variation_index", "format"),
)
SOURCES_WITH_OUTPUTS = Prefetch("sources", SourceVideo.objects.prefetch_related(OUTPUTS_IN_ORDER))


# What refuses new work from reused uploads, as an upload: the per-user limit and the storage cap.
ADMISSION_REFUSALS = {
    429: OpenApiResponse(description="the owner already has MAX_ACTIVE_JOBS_PER_USER jobs queued or running"),
    507: OpenApiResponse(description="no room under the storage cap for the variations to make"),
}
SMALL_BODIES = [SmallJSONParser, SmallFormParser, SmallMultiPartParser]  # a field or two


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("team", int, description="Only this team's jobs (the id of one of your teams)"),
            OpenApiParameter("mine", bool, description="1: only the jobs you made"),
            OpenApiParameter("status", str, description="Only jobs in this status (queued, processing, ...)"),
            OpenApiParameter("search", str, description="Part of the job's name or of one of its videos' names"),
        ]
    )
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The jobs of the user's teams (staff: everyone's). A job of a team the user is not in is a 404."""

    serializer_class = JobSerializer
    parser_classes = [StrictMultiPartParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Job.objects.none()
        jobs = Job.objects.visible_to(self.request.user).select_related("team", "owner").order_by("-created_at")
        if self.action == "list":
            try:
                jobs = parse_filters(self.request.query_params, self.request.user).apply(jobs, self.request.user)
            except Refused as exc:
                raise ValidationError({exc.field: exc.message}) from None
            # One subquery for the whole page. A single job (the status poll) asks only when it is queued:
            # compiling the subquery costs more than the rest of the poll.
            jobs = jobs.with_queue_position()
        if self.action in ("list", "retrieve"):  # the job JSON; a file route needs the job row only
            jobs = jobs.prefetch_related(SOURCES_WITH_OUTPUTS)
        return jobs

    def get_throttles(self):
        # An upload was counted against the user's rate by jobs.web.upload_guard, before its body was read.
        return [] if self.action == "create" else super().get_throttles()

    def get_serializer_class(self):
        # The create form (browsable API, schema) asks for what a client sends, not what it gets back.
        creating = self.action == "create" or (self.action == "metadata" and self.request.method == "POST")
        return JobCreateSerializer if creating else JobSerializer

    def _serialized(self, job: Job, status_code: int = status.HTTP_200_OK) -> Response:
        jobs = Job.objects.select_related("team", "owner").prefetch_related(SOURCES_WITH_OUTPUTS)
        job = jobs.filter(pk=job.pk).first()
        if job is None:  # deleted by another request just now
            raise Http404("This job was deleted meanwhile.")
        return Response(JobSerializer(job, context=self.get_serializer_context()).data, status=status_code)

    @extend_schema(request={"multipart/form-data": JobCreateSerializer}, responses={201: JobSerializer})
    def create(self, request, *args, **kwargs):
        """Oversized requests were already refused by jobs.web.upload_guard, before the body was read."""
        try:
            job = upload_guard.create_job_from(request)
        except Refused as exc:
            return error_response(exc.message, exc.status, field=exc.field, **({"file": exc.file} if exc.file else {}))
        return self._serialized(job, status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None, **kwargs):
        job = self.get_object()
        if not job.allows(request.user, "delete"):
            return error_response("you may see this job but not delete it (the jobs.delete_job permission)", 403)
        delete_job_with_files(job)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={
            200: JobSerializer,
            409: OpenApiResponse(description="the job was already completed, failed or cancelled"),
        },
    )
    @action(detail=True, methods=["post"], url_name="cancel")
    def cancel(self, request, pk=None, **kwargs):
        """Cancel a queued or processing job; finished variations are kept.

        200 with the resulting job: cancelled, or completed when it finished
        before the cancel landed. 409 when it was already terminal.
        """
        job = self.get_object()
        if not job.allows(request.user, "change"):
            return error_response("you may see this job but not cancel it (the jobs.change_job permission)", 403)
        if job.is_terminal:
            return error_response(f"this job is already {job.status}", status.HTTP_409_CONFLICT, status=job.status)
        cancel_job(job)
        return self._serialized(job)

    def _reused(self, request, reuse_uploads, status_code: int) -> Response:
        """Make more or retry: the owner, or staff allowed to change jobs; the job (new or retried) or the error."""
        job = self.get_object()
        if not job.allows(request.user, "change"):
            return error_response("you may see this job but not change it (the jobs.change_job permission)", 403)
        try:
            result = reuse_uploads(job)
        except Refused as exc:
            return error_response(exc.message, exc.status, **({"field": exc.field} if exc.field else {}))
        return self._serialized(result, status_code)

    @extend_schema(
        request=MakeMoreSerializer,
        responses={
            201: JobSerializer,
            400: OpenApiResponse(description="`variations` is not a whole number from 1 to MAX_VARIATIONS"),
            409: OpenApiResponse(description="still queued or processing, expired, or its uploads are gone"),
            **ADMISSION_REFUSALS,
        },
    )
    @action(detail=True, methods=["post"], url_path="make-more", url_name="make-more", parser_classes=SMALL_BODIES)
    def make_more(self, request, pk=None, **kwargs):
        """Make more: a new job with the same videos (not sent again) and `variations` new variations of each,
        all different from this job's. Allowed once the job is completed, failed or cancelled."""
        if not hasattr(request.data, "get"):
            return error_response('send a JSON object or a form: {"variations": N}', 400)
        variations = request.data.get("variations")
        data = request.data
        return self._reused(
            request,
            lambda job: reuse.make_more(job, variations, parse_choices(data, Choices.of(job)), by=request.user),
            status.HTTP_201_CREATED,
        )

    @extend_schema(
        request=MakeMoreSerializer,
        responses={201: JobSerializer},
        deprecated=True,
        description="The old spelling of make-more, kept for existing scripts: the same request and answers.",
    )
    @action(detail=True, methods=["post"], url_name="reprocess", parser_classes=SMALL_BODIES)
    def reprocess(self, request, pk=None, **kwargs):
        return self.make_more(request, pk, **kwargs)

    @extend_schema(
        request=None,
        responses={
            200: JobSerializer,
            409: OpenApiResponse(description="nothing failed, still queued or processing, cancelled, or expired"),
            **ADMISSION_REFUSALS,
        },
    )
    @action(detail=True, methods=["post"], url_name="retry", parser_classes=SMALL_BODIES)
    def retry(self, request, pk=None, **kwargs):
        """Run the failed videos again in the same job: it goes back to queued, keeps its finished variations,
        and completes when the retried videos finish."""
        return self._reused(request, reuse.retry_failed, status.HTTP_200_OK)

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
            return archive.zip_response(job, request.user.pk, selection)
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
            response = byte_range.file_response(storage.output_path(output), wanted, "video/mp4")
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
