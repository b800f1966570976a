"""The Job and its state machine: every change of its status is a method here.

Every transition is one conditional UPDATE guarded by the old status (and, for
a run's own changes, its claim number); its row count says who won a race
(docs/architecture/state-machine.md). Where a transition carries the job's
videos with it (a cancel, a requeue, a retry), their rows change in the same
method. A video's own run (claim, progress, output, failure) is
jobs.worker.video_run's. Where the files of a job live is jobs.storage's
business, not the models'.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone

from jobs.models.base import (
    ACTIVE,
    MAX_JOB_NAME_LENGTH,
    MAX_NOTIFY_URL_LENGTH,
    TERMINAL,
    Fit,
    Status,
    Strength,
    database_now,
    default_formats,
    new_job_id,
    new_seed,
)
from jobs.models.figures import JobFigures
from jobs.models.queries import JobQuerySet
from jobs.models.team import Team
from jobs.models.versioning import UNSEEN_JOB_FIELDS

logger = logging.getLogger(__name__)

RETRYABLE = (Status.COMPLETED, Status.FAILED)
# The job's creative choices (docs/formats.md), by field name: what the API, the manifest and the admin show.
CHOICE_FIELDS = ("formats", "fit", "strength", "mirror", "focus", "focus_x", "focus_y")


class Job(JobFigures, models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_job_id, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs", help_text="Who made it."
    )
    team = models.ForeignKey(
        "jobs.Team",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="jobs",
        help_text="Whose members share it; unset: its owner's personal team (set on save).",
    )
    name = models.CharField(
        max_length=MAX_JOB_NAME_LENGTH, blank=True, help_text="The user's name for the job; empty: its first video's."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    variations_per_video = models.PositiveSmallIntegerField()
    # The creative choices (docs/usage.md): each variation is rendered once per format.
    formats = models.JSONField(default=default_formats, help_text='Placements, e.g. ["source", "9:16"], in order.')
    fit = models.CharField(max_length=8, choices=Fit.choices, default=Fit.CROP)
    strength = models.CharField(max_length=8, choices=Strength.choices, default=Strength.SUBTLE)
    mirror = models.BooleanField(default=False, help_text="Every variation flipped horizontally.")
    focus = models.CharField(
        max_length=8,
        blank=True,
        help_text='"auto": each crop follows its video\'s detail and motion; empty: focus_x/y.',
    )
    focus_x = models.FloatField(default=0.5, help_text="Where a crop centres, 0 (left) to 1 (right).")
    focus_y = models.FloatField(default=0.5, help_text="Where a crop centres, 0 (top) to 1 (bottom).")
    seed = models.BigIntegerField(default=new_seed)
    notify_url = models.CharField(
        max_length=MAX_NOTIFY_URL_LENGTH,
        blank=True,
        help_text="Where its end is POSTed (a webhook, jobs.services.webhooks); empty: nowhere.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(blank=True, help_text="created_at + JOB_TTL_HOURS unless set.")
    error = models.TextField(blank=True)
    thumbnail = models.CharField(max_length=255, blank=True, help_text="Path relative to the job folder.")
    thumbnail_size = models.PositiveIntegerField(default=0, help_text="Bytes of its thumbnail (0 without one).")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    claims = models.PositiveSmallIntegerField(
        default=0, help_text="How many times a worker claimed the job (was `attempts`): the fencing token of a run."
    )
    handbacks = models.PositiveSmallIntegerField(
        default=0,
        help_text="Runs that do not count as lost: handed back by a stopping worker (SIGTERM), or that finished.",
    )
    retries = models.PositiveSmallIntegerField(default=0, help_text="Times its failed videos were retried.")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When its task was last sent to the queue.")
    progress_at_claim = models.PositiveSmallIntegerField(
        default=0, help_text="Overall progress when this run claimed the job (finished by earlier runs)."
    )
    reserved_bytes = models.BigIntegerField(
        default=0, help_text="Storage held for it while it is queued or processing (uploads + expected outputs)."
    )
    version = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Moved on by every change its JSON shows: the API's ETag."
    )
    settled_at = models.DateTimeField(
        null=True, blank=True, help_text="When its files were settled after it ended (storage.settle_files)."
    )
    origin = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="made_from_this",
        help_text='The job whose uploads this one reused ("make more").',
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="job_status_expiry"),
            models.Index(fields=["owner", "-created_at"], name="job_owner_created"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"

    def save(self, *args, **kwargs):
        if self.team_id is None:
            self.team = Team.personal(self.owner)
        if self.expires_at is None:
            self.expires_at = self.created_at + timedelta(hours=settings.JOB_TTL_HOURS)
        fields = kwargs.get("update_fields")
        if self._state.adding or (fields is not None and set(fields) <= UNSEEN_JOB_FIELDS):
            super().save(*args, **kwargs)
            return
        self.version = F("version") + 1  # jobs.models.versioning
        if fields is not None:
            kwargs["update_fields"] = {*fields, "version"}
        super().save(*args, **kwargs)
        self.refresh_from_db(fields=["version"])

    def choices(self) -> dict:
        """Its creative choices, by field name (CHOICE_FIELDS)."""
        return {name: getattr(self, name) for name in CHOICE_FIELDS}

    # --- transitions (one conditional UPDATE each) ----------------------------
    def _transition(self, from_statuses, fenced: bool = False, **changes) -> bool:
        """One conditional UPDATE. `fenced`: only while this run's attempt still owns the job."""
        rows = Job.objects.filter(pk=self.pk, status__in=from_statuses)
        if fenced:
            rows = rows.filter(claims=self.claims)
        updated = rows.update(**changes)
        if updated:
            for field, value in changes.items():
                if not hasattr(value, "resolve_expression"):
                    setattr(self, field, value)
        return bool(updated)

    def claim(self) -> bool:
        """queued -> processing. False when another worker (or a cancel) got there first."""
        now = timezone.now()
        won = self._transition(
            [Status.QUEUED], status=Status.PROCESSING, started_at=now, heartbeat_at=now, claims=F("claims") + 1
        )
        if won:
            self.refresh_from_db(fields=["claims"])
            # What earlier runs finished, so that the time-left estimate counts this run's pace only.
            self.progress_at_claim = self.progress
            Job.objects.filter(pk=self.pk, claims=self.claims).update(progress_at_claim=self.progress_at_claim)
        return won

    def finish(self, status: Status, error: str = "") -> bool:
        """processing -> completed or failed, by the run that owns the job."""
        assert status in (Status.COMPLETED, Status.FAILED)
        # A run that finishes was not lost: it does not count against MAX_ATTEMPTS, now or after a retry.
        return self._transition(
            [Status.PROCESSING],
            fenced=True,
            status=status,
            error=error,
            finished_at=timezone.now(),
            handbacks=F("handbacks") + 1,
        )

    def fail(self, error: str, from_statuses=ACTIVE) -> bool:
        """queued|processing -> failed, e.g. expired while queued or out of attempts."""
        return self._transition(from_statuses, status=Status.FAILED, error=error, finished_at=timezone.now())

    def request_cancel(self) -> str:
        """queued|processing -> cancelled. Returns the status it left ("" when it was already terminal).

        Two conditional UPDATEs so the caller knows which one it won: a job
        cancelled while queued has no worker, so its uploads are the caller's
        to remove; a processing job's worker sees the status and stops FFmpeg.
        """
        now = timezone.now()
        for status in ACTIVE:
            if self._transition([status], status=Status.CANCELLED, cancelled_at=now, finished_at=now):
                logger.info("job %s: cancelled while %s", self.pk, status)
                return status
        return ""

    @property
    def lost_runs(self) -> int:
        """Runs whose worker was lost: every claim but the ones handed back by a stopping worker."""
        return self.claims - self.handbacks

    def hand_back(self) -> bool:
        """processing -> queued by this run's own stopping worker (SIGTERM), which does not count as lost."""
        return self._requeued(
            Job.objects.filter(pk=self.pk, status=Status.PROCESSING, claims=self.claims),
            handbacks=F("handbacks") + 1,
        )

    def requeue_lost(self, stale_before) -> bool:
        """processing -> queued for a run whose worker is gone: only the attempt this instance saw, only
        while its heartbeat is still older than `stale_before`. A run that took over, or a worker that came
        back to life and beat, makes this a no-op. The videos it was on count a lost claim each."""
        return self._requeued(self._stale(stale_before), videos_lost=True)

    def give_up(self, stale_before, error: str) -> bool:
        """processing -> failed for a run whose worker is gone once too often; fenced like requeue_lost."""
        now = timezone.now()
        if self._stale(stale_before).update(status=Status.FAILED, error=error, finished_at=now):
            self.status, self.error, self.finished_at = Status.FAILED, error, now
            return True
        return False

    def _stale(self, stale_before) -> models.QuerySet:
        return Job.objects.filter(
            pk=self.pk, status=Status.PROCESSING, claims=self.claims, heartbeat_at__lt=stale_before
        )

    def _requeued(self, rows: models.QuerySet, videos_lost: bool = False, **changes) -> bool:
        now = timezone.now()
        if not rows.update(status=Status.QUEUED, heartbeat_at=None, enqueued_at=now, **changes):
            return False
        self.status, self.heartbeat_at, self.enqueued_at = Status.QUEUED, None, now
        # Only while the job is still queued: a run that claimed it meanwhile keeps its sources' status (and
        # plans them again, whatever they show).
        lost = {"lost_claims": F("lost_claims") + 1} if videos_lost else {}
        self.sources.filter(status=Status.PROCESSING, job__status=Status.QUEUED).update(status=Status.QUEUED, **lost)
        return True

    def close_sources(self, status: Status) -> int:
        """Sources still queued/processing take `status`, and a progress that counts only finished variations."""
        return self.sources.filter(status__in=ACTIVE).update(
            status=status, progress=F("completed_variations") * 100 / self.outputs_per_video
        )

    def this_run(self) -> models.QuerySet:
        """The row while this attempt still owns the job: processing, and not requeued since.

        `claims` is a fencing token: a worker that hung, was given up on and
        requeued (see jobs.worker.cleanup) finds 0 rows here and stops, instead of
        racing the worker that took the job over.
        """
        return Job.objects.filter(pk=self.pk, status=Status.PROCESSING, claims=self.claims)

    def beat(self) -> bool:
        """Write the heartbeat; False when this run no longer owns the job."""
        return bool(self.this_run().update(heartbeat_at=timezone.now()))

    def current_status(self) -> str:
        return Job.objects.filter(pk=self.pk).values_list("status", flat=True).first() or Status.CANCELLED

    # --- after the end: retry, eviction, settling ---------------------------------
    def retry_expiry(self, now=None):
        """When a retried job expires: JOB_TTL_HOURS from now (the database's), never past created_at + 2 x
        JOB_TTL_HOURS."""
        ttl = timedelta(hours=settings.JOB_TTL_HOURS)
        return min((now or database_now()) + ttl, self.created_at + 2 * ttl)

    def reopen_for_retry(self, reservation: int, from_statuses=RETRYABLE, videos=(Status.FAILED,)) -> int | None:
        """completed|failed -> queued, with its failed videos queued again; returns how many (None: not reopened).
        With `from_statuses` (CANCELLED,) and `videos` (CANCELLED, FAILED): a cancelled job resumed.

        One conditional UPDATE (eviction expires a job in one of its own: of the two, one wins). The lost
        workers of earlier runs still count (lost_runs): the claim counters are not reset. Times are the
        database's, as eviction's are, so the two fences compare the same clock. Call inside the
        transaction that holds the job's row (locks.finished_job_locked).
        """
        now = database_now()
        reopened = Job.objects.filter(
            pk=self.pk, status__in=from_statuses, expires_at__gt=now, retries__lt=settings.MAX_RETRIES
        ).update(
            status=Status.QUEUED,
            error="",
            started_at=None,
            finished_at=None,
            heartbeat_at=None,
            settled_at=None,
            cancelled_at=None,
            enqueued_at=now,
            expires_at=self.retry_expiry(now),
            retries=F("retries") + 1,
            reserved_bytes=reservation,
        )
        if not reopened:
            return None
        return self.sources.filter(status__in=videos).update(
            status=Status.QUEUED,
            error="",
            progress=F("completed_variations") * 100 / self.outputs_per_video,
        )

    def expire_for_eviction(self) -> bool:
        """Expire a finished job that eviction chose, unless it changed since (False): a retry sent it back to
        the queue, or it was retried and finished again (a new finished_at). A retry asks for a job that has
        not expired, in a conditional UPDATE of its own, so of the two exactly one wins."""
        chosen = Job.objects.filter(pk=self.pk, status__in=TERMINAL, finished_at=self.finished_at)
        return bool(chosen.update(expires_at=database_now()))

    def mark_settled(self, status: Status) -> bool:
        """Its files were settled after it ended in `status` (storage.settle_files); not if it left it since."""
        return bool(Job.objects.filter(pk=self.pk, status=status).update(settled_at=timezone.now()))

    def name_thumbnail(self, name: str, size: int) -> bool:
        """Name the thumbnail a run wrote (relative to the job folder), while this run owns the job."""
        if not self.this_run().update(thumbnail=name, thumbnail_size=size):
            return False
        self.thumbnail, self.thumbnail_size = name, size
        return True

    def adopt_thumbnail(self, name: str, size: int) -> None:
        """Name a thumbnail whose run ended before it could (a cancel), if there is one (`name`); keeps one
        named already. Then reads which one the job has."""
        if name:
            Job.objects.filter(pk=self.pk, thumbnail="").update(thumbnail=name, thumbnail_size=size)
        self.thumbnail = Job.objects.filter(pk=self.pk).values_list("thumbnail", flat=True).first() or ""
