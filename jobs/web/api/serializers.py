from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from jobs.models import CHOICE_FIELDS, MAX_JOB_NAME_LENGTH, Fit, Format, Job, OutputFile, SourceVideo, Strength

# DRF's own ISO 8601 rendering of a datetime (UTC as "Z"), built once and shared.
_DATETIME = serializers.DateTimeField()


def _when(value):
    return _DATETIME.to_representation(value) if value else None


class OutputSerializer(serializers.ModelSerializer):
    effects = serializers.SerializerMethodField(
        help_text="Every value that made it: rotation (radians) and rotation_deg (degrees), brightness, contrast, "
        "saturation, zoom, hue (degrees), speed, grain, mirror."
    )
    file_url = serializers.SerializerMethodField(help_text="The variation itself, with HTTP Range for a player.")
    thumbnail_url = serializers.SerializerMethodField(help_text="Its 128 px wide WebP; null without one.")

    class Meta:
        model = OutputFile
        fields = [
            "id",
            "variation_index",
            "format",
            "width",
            "height",
            "seconds",
            "size",
            "effects",
            "ssim",
            "missing",
            "file_url",
            "thumbnail_url",
        ]

    def to_representation(self, output: OutputFile) -> dict:
        return output_document(output, _job_url(output.job_id, self.context.get("request")))

    def get_effects(self, output: OutputFile) -> dict:
        return output.facts()["effects"]

    def get_file_url(self, output: OutputFile) -> str:
        return _absolute(reverse("api-jobs-output-file", args=[output.job_id, output.pk]), self.context.get("request"))

    def get_thumbnail_url(self, output: OutputFile) -> str | None:
        if not output.thumbnail:
            return None
        path = reverse("api-jobs-output-thumbnail", args=[output.job_id, output.pk])
        return _absolute(path, self.context.get("request"))


class SourceSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="original_name")
    outputs = OutputSerializer(many=True)

    class Meta:
        model = SourceVideo
        fields = [
            "id",
            "name",
            "size",
            "duration",
            "width",
            "height",
            "status",
            "progress",
            "completed_variations",
            "error",
            "outputs",
        ]

    def to_representation(self, source: SourceVideo) -> dict:
        return source_document(source, _job_url(source.job_id, self.context.get("request")))


class JobSerializer(serializers.ModelSerializer):
    """The job JSON: the status poll's answer.

    The declared fields describe it (schema, browsable API); `to_representation` builds the same document
    directly. DRF's field-by-field path spent most of a poll's time making and binding field objects for
    every job, source and output (tests/web/test_api_views.py checks that both give the same document).
    """

    total_variations = serializers.IntegerField(
        read_only=True, help_text="Every file the job makes: videos x variations x formats."
    )
    completed_variations = serializers.IntegerField(read_only=True, help_text="The files finished so far.")
    failed_videos = serializers.IntegerField(
        read_only=True, help_text='Videos that failed: a completed job with some is "completed with failed videos".'
    )
    progress = serializers.IntegerField(read_only=True)
    thumbnail_url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField(help_text="The job's page in the web interface.")
    title = serializers.CharField(read_only=True, help_text="The name, or the first video's name without one.")
    queue_position = serializers.SerializerMethodField(
        help_text="While queued: 1 when it is next to start, 2 when one job is ahead of it...; otherwise null."
    )
    seconds_left = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="While processing: an estimate, once there is enough to go on."
    )
    sources = SourceSerializer(many=True, read_only=True)
    origin = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text='The job whose videos this one reused ("make more"); null if none.'
    )
    team = serializers.IntegerField(source="team_id", read_only=True, help_text="The id of the team that shares it.")
    team_name = serializers.CharField(source="team.name", read_only=True)
    created_by = serializers.CharField(source="owner.username", read_only=True, help_text="Who made it (username).")

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "title",
            "team",
            "team_name",
            "created_by",
            "status",
            "queue_position",
            "seconds_left",
            "variations_per_video",
            *CHOICE_FIELDS,
            "total_variations",
            "completed_variations",
            "failed_videos",
            "progress",
            "created_at",
            "started_at",
            "finished_at",
            "cancelled_at",
            "expires_at",
            "error",
            "thumbnail_url",
            "download_url",
            "page_url",
            "origin",
            "sources",
        ]
        read_only_fields = fields

    def to_representation(self, job: Job) -> dict:
        """The document for `job`, with its sources and their outputs prefetched (one query each)."""
        job_url = _job_url(job.pk, self.context.get("request"))
        return {
            "id": job.id,
            "name": job.name,
            "title": job.title,
            "team": job.team_id,
            "team_name": job.team.name if job.team else "",
            "created_by": job.owner.get_username(),
            "status": str(job.status),
            "queue_position": self.get_queue_position(job),
            "seconds_left": job.seconds_left,
            "variations_per_video": job.variations_per_video,
            **job.choices(),
            "total_variations": job.total_variations,
            "completed_variations": job.completed_variations,
            "failed_videos": job.failed_videos,
            "progress": job.progress,
            "created_at": _when(job.created_at),
            "started_at": _when(job.started_at),
            "finished_at": _when(job.finished_at),
            "cancelled_at": _when(job.cancelled_at),
            "expires_at": _when(job.expires_at),
            "error": job.error,
            "thumbnail_url": self.get_thumbnail_url(job),
            "download_url": self.get_download_url(job),
            "page_url": self.get_page_url(job),
            "origin": job.origin_id,
            "sources": [source_document(source, job_url) for source in job.sources.all()],
        }

    def _absolute(self, name: str, job: Job) -> str:
        return _absolute(reverse(name, args=[job.pk]), self.context.get("request"))

    def get_thumbnail_url(self, job: Job) -> str | None:
        return self._absolute("api-jobs-thumbnail", job) if job.thumbnail and not job.is_expired else None

    def get_download_url(self, job: Job) -> str | None:
        return self._absolute("api-jobs-download", job) if job.is_downloadable else None

    def get_queue_position(self, job: Job) -> int | None:
        return job.queue_position()

    def get_page_url(self, job: Job) -> str:
        return self._absolute("jobs-detail", job)


def _absolute(path: str, request) -> str:
    """The absolute URL for the request's scheme and host; the path without a request."""
    return request.build_absolute_uri(path) if request else path


def _job_url(job_id: str, request) -> str:
    """The job's API URL, to which its outputs' URLs add: worked out once per answer, not per output."""
    return _absolute(reverse("api-jobs-detail", args=[job_id]), request)


def output_document(output: OutputFile, job_url: str) -> dict:
    return {
        "id": output.id,
        "variation_index": output.variation_index,
        **output.facts(),
        "missing": output.missing,
        "file_url": f"{job_url}outputs/{output.id}/file/",
        "thumbnail_url": f"{job_url}outputs/{output.id}/thumbnail/" if output.thumbnail else None,
    }


def source_document(source: SourceVideo, job_url: str) -> dict:
    return {
        "id": source.id,
        "name": source.original_name,
        "size": source.size,
        "duration": source.duration,
        "width": source.width,
        "height": source.height,
        "status": str(source.status),
        "progress": source.progress,
        "completed_variations": source.completed_variations,
        "error": source.error,
        "outputs": [output_document(output, job_url) for output in source.outputs.all()],
    }


def _variations_field(what: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.MAX_VARIATIONS,
        initial=settings.DEFAULT_VARIATIONS,
        help_text=f"{what}, 1 to {settings.MAX_VARIATIONS} (MAX_VARIATIONS); "
        f"{settings.DEFAULT_VARIATIONS} when left out.",
    )


class ChoicesSerializer(serializers.Serializer):
    """The creative choices (schema and browsable API); validated by jobs.services.choices."""

    formats = serializers.MultipleChoiceField(
        choices=Format.choices,
        required=False,
        help_text="One or more formats, the field repeated or comma-separated; each variation is made in each. "
        '"source" when left out.',
    )
    fit = serializers.ChoiceField(
        choices=Fit.choices, required=False, help_text="How a source goes into another shape; crop by default."
    )
    strength = serializers.ChoiceField(
        choices=Strength.choices, required=False, help_text="How far variations move; subtle by default."
    )
    mirror = serializers.BooleanField(required=False, help_text="Flip every variation horizontally; false by default.")
    focus = serializers.ChoiceField(
        choices=[("", "the point focus_x, focus_y"), ("auto", "auto")],
        required=False,
        allow_blank=True,
        help_text='"auto": each video\'s crops follow its faces, or its detail and motion; empty: focus_x, focus_y.',
    )
    focus_x = serializers.FloatField(required=False, min_value=0, max_value=1, help_text="Crop centre, 0 (left)-1.")
    focus_y = serializers.FloatField(required=False, min_value=0, max_value=1, help_text="Crop centre, 0 (top)-1.")
    notify_url = serializers.URLField(
        required=False,
        allow_blank=True,
        help_text="Optional: where the job's JSON is POSTed when it ends (a webhook, signed with your secret from "
        "/api/auth/webhook-secret/). http or https, no credentials, not a private address; make more does not "
        "keep it. Write-only: the job JSON, which the whole team sees, does not show it.",
    )


class MakeMoreSerializer(ChoicesSerializer):
    """The "make more" request (schema and browsable API): the choices default to the original job's."""

    variations = _variations_field("New variations per video")


class MultipleFileField(serializers.ListField):
    """A list of files, shown in the browsable API as one <input type="file" multiple>."""

    def __init__(self, **kwargs):
        kwargs.setdefault("child", serializers.FileField())
        kwargs.setdefault("style", {"template": "rest_framework/inputs/multiple_files.html"})
        super().__init__(**kwargs)


class RenameSerializer(serializers.Serializer):
    name = serializers.CharField(
        allow_blank=True, max_length=MAX_JOB_NAME_LENGTH, help_text="The new name; empty: called after its first video."
    )


class JobCreateSerializer(ChoicesSerializer):
    """The create form (schema and browsable API). Validation lives in services.uploads, shared with the upload page."""

    videos = MultipleFileField(
        help_text=f"1 to {settings.MAX_FILES} MP4 or MOV files (MAX_FILES); one unusable file refuses the whole job."
    )
    variations = _variations_field("Variations per video")
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_JOB_NAME_LENGTH,
        help_text="Optional; without one the job is called after its first video. Also the ZIP's file name.",
    )
    team = serializers.IntegerField(
        required=False,
        help_text="The id of one of your teams (GET /api/teams/); without one, the team of your last job.",
    )


class JobFromUploadsSerializer(JobCreateSerializer):
    """The JSON create (schema): the job of finished resumable uploads, with the same fields as the form."""

    videos = None
    uploads = serializers.ListField(
        child=serializers.CharField(),
        help_text=f"1 to {settings.MAX_FILES} finished uploads: the last part of each tus Location (/api/uploads/)",
    )
