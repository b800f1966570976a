"""A job's end told to its notify_url (jobs.services.webhooks): one delivery per end, one row per attempt.

The delivery outlives the job (`job` goes null when it is deleted, `job_ref` stays), so an end is told even
when the job was deleted right after it; the cleanup removes deliveries after WEBHOOK_KEEP_DAYS.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from jobs.models.base import Status, new_job_id

EVENT_JOB_FINISHED = "job.finished"


class Delivery(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    GAVE_UP = "gave_up", "Gave up"


class WebhookDelivery(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_job_id, editable=False)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_deliveries"
    )
    job_ref = models.CharField(max_length=32, help_text="The job's id, kept once the job is deleted.")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_deliveries")
    url = models.CharField(max_length=2000)
    event = models.CharField(max_length=32, default=EVENT_JOB_FINISHED)
    ended_at = models.DateTimeField(help_text="The job's finished_at: one delivery per end of the job.")
    job_status = models.CharField(max_length=16, choices=Status.choices, help_text="The status it ended with.")
    body = models.TextField(blank=True, help_text="The job's JSON, made at the first attempt; every retry sends it.")
    state = models.CharField(max_length=16, choices=Delivery.choices, default=Delivery.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        help_text="When the next attempt is due; while one runs, when it counts as lost (its lease)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["job_ref", "ended_at"], name="one_delivery_per_job_end")]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"], name="webhook_due"),
            models.Index(fields=["created_at"], name="webhook_created"),
        ]

    def __str__(self) -> str:
        return f"{self.event} of job {self.job_ref} to {self.url} ({self.state})"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    seconds = models.FloatField(help_text="How long it took, connection to answer.")
    address = models.CharField(max_length=64, blank=True, help_text="The address it connected to, as checked.")
    status_code = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The answer's code; none: no answer."
    )
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="one_row_per_attempt")]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.status_code or self.error}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
