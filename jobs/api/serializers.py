from __future__ import annotations

import copy

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from jobs.models import MAX_JOB_NAME_LENGTH, Job, OutputFile, SourceVideo


class BuiltOnceSerializer(serializers.ModelSerializer):
    """A ModelSerializer that works out its fields from the model once per class, not once per response.

    DRF rebuilds them for every instance: for the status poll that was a quarter of the answer's time.
    Each instance still gets its own copies (fields are bound to the serializer that holds them).
    """

    _built_fields: dict[type, dict] = {}

    def get_fields(self):
        cls = type(self)
        if cls not in self._built_fields:
            self._built_fields[cls] = super().get_fields()
        return copy.deepcopy(self._built_fields[cls])


class OutputSerializer(BuiltOnceSerializer):
    class Meta:
        model = OutputFile
        fields = ["id", "variation_index", "size", "effects", "missing"]


class SourceSerializer(BuiltOnceSerializer):
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


class JobSerializer(BuiltOnceSerializer):
    total_variations = serializers.IntegerField(read_only=True)
    completed_variations = serializers.IntegerField(read_only=True)
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

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "title",
            "status",
            "queue_position",
            "seconds_left",
            "variations_per_video",
            "total_variations",
            "completed_variations",
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
            "sources",
        ]
        read_only_fields = fields

    def _absolute(self, name: str, job: Job) -> str:
        url = reverse(name, args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def get_thumbnail_url(self, job: Job) -> str | None:
        return self._absolute("api-jobs-thumbnail", job) if job.thumbnail else None

    def get_download_url(self, job: Job) -> str | None:
        return self._absolute("api-jobs-download", job) if job.is_downloadable else None

    def get_queue_position(self, job: Job) -> int | None:
        return job.queue_position()

    def get_page_url(self, job: Job) -> str:
        return self._absolute("jobs-detail", job)


class MultipleFileField(serializers.ListField):
    """A list of files, shown in the browsable API as one <input type="file" multiple>."""

    def __init__(self, **kwargs):
        kwargs.setdefault("child", serializers.FileField())
        kwargs.setdefault("style", {"template": "rest_framework/inputs/multiple_files.html"})
        super().__init__(**kwargs)


class JobCreateSerializer(serializers.Serializer):
    """The create form (schema and browsable API). Validation lives in jobs.uploads, shared with the upload page."""

    videos = MultipleFileField(
        help_text=f"1 to {settings.MAX_FILES} MP4 or MOV files (MAX_FILES); one unusable file refuses the whole job."
    )
    variations = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.MAX_VARIATIONS,
        initial=settings.DEFAULT_VARIATIONS,
        help_text=f"Variations per video, 1 to {settings.MAX_VARIATIONS} (MAX_VARIATIONS); "
        f"{settings.DEFAULT_VARIATIONS} when left out.",
    )
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=MAX_JOB_NAME_LENGTH,
        help_text="Optional; without one the job is called after its first video. Also the ZIP's file name.",
    )
