from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from jobs.models import Job, OutputFile, SourceVideo


class OutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutputFile
        fields = ["id", "variation_index", "size", "effects", "missing"]


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


class JobSerializer(serializers.ModelSerializer):
    total_variations = serializers.IntegerField(read_only=True)
    completed_variations = serializers.IntegerField(read_only=True)
    progress = serializers.IntegerField(read_only=True)
    thumbnail_url = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField(help_text="The job's page in the web interface.")
    sources = SourceSerializer(many=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
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

    def _absolute(self, name: str, job: Job) -> str:
        url = reverse(name, args=[job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    def get_thumbnail_url(self, job: Job) -> str | None:
        return self._absolute("api-jobs-thumbnail", job) if job.thumbnail else None

    def get_download_url(self, job: Job) -> str | None:
        return self._absolute("api-jobs-download", job) if job.is_downloadable else None

    def get_page_url(self, job: Job) -> str:
        return self._absolute("jobs-detail", job)


class JobCreateSerializer(serializers.Serializer):
    """Documents the multipart body for the schema; validation lives in jobs.uploads."""

    videos = serializers.ListField(child=serializers.FileField(), help_text="1..MAX_FILES MP4/MOV files")
    variations = serializers.IntegerField(required=False, min_value=1, help_text="1..MAX_VARIATIONS, default 5")
