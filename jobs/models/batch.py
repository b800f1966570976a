"""A run's batches: the parts of a job's work that any worker of any cluster may claim."""

from __future__ import annotations

from functools import reduce
from operator import or_

from django.db import models

from jobs.models.base import Status
from jobs.models.job import Job
from jobs.models.video import OutputFile, SourceVideo


class BatchQuerySet(models.QuerySet):
    def of_run(self, job: Job) -> models.QuerySet:
        """The batches of the job's current run (as `job` last saw it)."""
        return self.filter(job=job, attempt=job.claims)


class Batch(models.Model):
    """Up to BATCH_SIZE outputs of one video (variation x format), encoded by one FFmpeg from one decode.

    The run that claims a job splits what is left of each of its queued videos into batches (the rows of
    its `attempt`); then a video of 20 variations keeps as many workers busy as a job of 4 videos. The
    video's own row keeps what a user sees (status, progress, finished outputs); jobs.worker.video_run
    writes both, in the same transaction.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="batches")
    source = models.ForeignKey(SourceVideo, on_delete=models.CASCADE, related_name="batches")
    attempt = models.PositiveSmallIntegerField(help_text="The job's run (Job.claims) that made it.")
    number = models.PositiveSmallIntegerField(help_text="Its order among the video's batches of the run, from 0.")
    outputs = models.JSONField(help_text='Its outputs, as [variation index, format] pairs: [[0, "9:16"], ...].')
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    claim = models.PositiveIntegerField(
        default=0,
        help_text="The fencing token of its current claim: the video's claim count when a worker took it.",
    )
    claims = models.PositiveSmallIntegerField(default=0, help_text="How many times a worker claimed it.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the worker on it.")
    progress = models.PositiveSmallIntegerField(
        default=0, help_text="The share of its outputs its running FFmpeg has made, in percent."
    )

    objects = BatchQuerySet.as_manager()

    class Meta:
        ordering = ["job", "attempt", "source__position", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "attempt", "source", "number"], name="batch_number_unique"),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="batch_status_heartbeat")]
        verbose_name_plural = "batches"

    def __str__(self) -> str:
        return f"{self.job_id} run {self.attempt}: video {self.source_id} batch {self.number}"

    def pairs(self) -> list[tuple[int, str]]:
        return [(index, format_) for index, format_ in self.outputs]

    def finished_outputs(self) -> int:
        """How many of its outputs have their row."""
        pairs = [models.Q(variation_index=index, format=format_) for index, format_ in self.pairs()]
        return OutputFile.objects.filter(reduce(or_, pairs), source=self.source_id).count()
