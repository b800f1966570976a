from __future__ import annotations

import logging

from django.db.models import Prefetch, prefetch_related_objects
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobs.models import Job, OutputFile, SourceVideo
from jobs.services import reuse
from jobs.services.cancel import cancel_job, delete_job_with_files
from jobs.services.choices import Choices, parse_choices
from jobs.services.listing import parse_filters
from jobs.services.refusal import Refused
from jobs.services.rename import rename_job
from jobs.web import upload_guard
from jobs.web.api import etag
from jobs.web.api.errors import error_response, refusal_response
from jobs.web.api.job_files import JobFilesMixin
from jobs.web.api.parsers import SmallFormParser, SmallJSONParser, SmallMultiPartParser, StrictMultiPartParser
from jobs.web.api.serializers import (
    JobCreateSerializer,
    JobFromUploadsSerializer,
    JobSerializer,
    MakeMoreSerializer,
    RenameSerializer,
)

logger = logging.getLogger(__name__)


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


def job_document(job_id: str, context: dict) -> dict | None:
    """The job JSON of the job with this id as it is now (None once it is deleted): four queries whatever
    its size. `context` is the serializer's (its request makes the links absolute)."""
    jobs = Job.objects.select_related("team", "owner").prefetch_related(SOURCES_WITH_OUTPUTS)
    job = jobs.filter(pk=job_id).first()
    return None if job is None else JobSerializer(job, context=context).data


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
class JobViewSet(JobFilesMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
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

    @extend_schema(
        parameters=[OpenApiParameter("If-None-Match", str, OpenApiParameter.HEADER, description="an earlier ETag")],
        responses={200: JobSerializer, 304: OpenApiResponse(description="unchanged since that ETag: no body")},
    )
    def retrieve(self, request, *args, **kwargs):
        """The job JSON, with an ETag: send it back in If-None-Match and an unchanged job is a 304."""
        # The row alone first: an unchanged job costs this one indexed query, and no serialisation.
        job = Job.objects.visible_to(request.user).select_related("team", "owner").filter(pk=kwargs["pk"]).first()
        if job is None:
            raise Http404("No such job.")
        tag = etag.tag_of(job)
        if etag.matches(request, tag):
            response = Response(status=status.HTTP_304_NOT_MODIFIED)
        else:
            prefetch_related_objects([job], SOURCES_WITH_OUTPUTS)
            response = Response(JobSerializer(job, context=self.get_serializer_context()).data)
        response["ETag"] = tag
        response["Cache-Control"] = "private, no-cache"
        return response

    def get_throttles(self):
        # An upload was counted against the user's rate by jobs.web.upload_guard, before its body was read.
        return [] if self.action == "create" else super().get_throttles()

    def get_serializer_class(self):
        # The create form (browsable API, schema) asks for what a client sends, not what it gets back.
        creating = self.action == "create" or (self.action == "metadata" and self.request.method == "POST")
        return JobCreateSerializer if creating else JobSerializer

    def _serialized(self, job: Job, status_code: int = status.HTTP_200_OK) -> Response:
        document = job_document(job.pk, self.get_serializer_context())
        if document is None:  # deleted by another request just now
            raise Http404("This job was deleted meanwhile.")
        return Response(document, status=status_code)

    @extend_schema(
        request={"multipart/form-data": JobCreateSerializer, "application/json": JobFromUploadsSerializer},
        responses={201: JobSerializer},
    )
    def create(self, request, *args, **kwargs):
        """Upload 1 to MAX_FILES videos (MP4 or MOV) and queue a job of them; or, as JSON, make the job of
        finished resumable uploads (/api/uploads/). A refusal names the field at fault (and the file);
        nothing of a refused upload is kept."""
        # Oversized requests were already refused by jobs.web.upload_guard, before the body was read.
        try:
            if request.content_type.startswith("application/json"):  # finished resumable uploads (tus)
                job = upload_guard.create_job_from_uploads(request.user, request.data)
            else:
                job = upload_guard.create_job_from(request)
        except Refused as exc:
            return error_response(exc.message, exc.status, field=exc.field, **({"file": exc.file} if exc.file else {}))
        return self._serialized(job, status.HTTP_201_CREATED)

    def initialize_request(self, request, *args, **kwargs):
        request = super().initialize_request(request, *args, **kwargs)
        if self.action == "partial_update":  # a rename: a small JSON or form body (its action is known only now)
            request.parsers = [parser() for parser in SMALL_BODIES]
        elif self.action == "create":  # files, or the ids of finished resumable uploads
            request.parsers = [StrictMultiPartParser(), SmallJSONParser()]
        return request

    @extend_schema(
        request=RenameSerializer,
        responses={200: JobSerializer, 400: OpenApiResponse(description="`name` breaks the rules of a job's name")},
    )
    def partial_update(self, request, pk=None, **kwargs):
        """Rename the job: `{"name": "..."}` (empty: called after its first video). Any member of its team."""
        job = self.get_object()
        if not job.allows(request.user, "change"):
            return error_response("you may see this job but not rename it (the jobs.change_job permission)", 403)
        if not hasattr(request.data, "get") or "name" not in request.data:
            return error_response(
                'send the new name: {"name": "..."} (empty: called after its first video)', 400, field="name"
            )
        try:
            rename_job(job, request.data.get("name"))
        except Refused as exc:
            return refusal_response(exc)
        return self._serialized(job)

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
            return refusal_response(exc)
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
        request=None,
        responses={
            200: JobSerializer,
            409: OpenApiResponse(description="not cancelled, nothing left to make, retried too often, or expired"),
            **ADMISSION_REFUSALS,
        },
    )
    @action(detail=True, methods=["post"], url_name="resume", parser_classes=SMALL_BODIES)
    def resume(self, request, pk=None, **kwargs):
        """Finish the rest of a cancelled job: it goes back to queued and makes only the variations it had not
        finished; the finished ones stay. Bounded like a retry (MAX_RETRIES, the job's age)."""
        return self._reused(request, reuse.resume_cancelled, status.HTTP_200_OK)
