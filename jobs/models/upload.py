"""A resumable upload (tus 1.0, /api/uploads/): one file on its way in, before it becomes a job's video.

Its bytes live in the data folder's uploads area (jobs.storage.resumable_path); `offset` says how many of
them are there. The row is made before the file and goes after it has been handed to a job or removed.
Its `length` counts against the storage cap and the owner's quota from the moment it is made.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from jobs.models.base import new_job_id


class UploadQuerySet(models.QuerySet):
    def open(self, now=None) -> UploadQuerySet:
        """Not expired yet."""
        return self.filter(expires_at__gt=now or timezone.now())


class Upload(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_job_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="resumable_uploads")
    filename = models.CharField(max_length=255, help_text="As the client named it (Upload-Metadata: filename).")
    length = models.BigIntegerField(help_text="The whole file's size in bytes (Upload-Length).")
    offset = models.BigIntegerField(default=0, help_text="The bytes received and written so far.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)

    objects = UploadQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["owner", "expires_at"])]

    def __str__(self) -> str:
        return f"upload {self.pk} ({self.filename}, {self.offset}/{self.length})"

    @property
    def is_finished(self) -> bool:
        return self.offset == self.length
