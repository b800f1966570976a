"""Job, SourceVideo and OutputFile, with the job state machine.

Every status transition is one conditional UPDATE guarded by the old status;
its row count says who won a race (docs/architecture.md, "State machine").
Where the files of a job live is jobs.storage's business, not the models'.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, models
from django.db.models import Case, Count, F, OuterRef, Q, Subquery, When
from django.db.models.functions import Coalesce
from django.utils import timezone

logger = logging.getLogger(__name__)


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE = (Status.QUEUED, Status.PROCESSING)
TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


MAX_JOB_NAME_LENGTH = 100
MIN_ETA_PROGRESS = 3  # percent
MIN_ETA_SECONDS = 5


def database_now() -> datetime:
    """The time by the database's clock: the one clock that every machine of a deployment shares, so that
    expiry, eviction and retry decide alike wherever they run, whatever each machine's clock says.
    On SQLite the database lives on this machine: its clock is this one (and time-machine moves it in tests)."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT STATEMENT_TIMESTAMP()")
        return cursor.fetchone()[0]


def new_job_id() -> str:
    """An unguessable id: 128 random bits, URL-safe."""
    return secrets.token_hex(16)


def new_seed() -> int:
    return secrets.randbits(63)


class JobQuerySet(models.QuerySet):
    def visible_to(self, user) -> JobQuerySet:
        """A user's own jobs; staff see every job only with Django's permission for it (jobs.view_job)."""
        if user.is_staff and user.has_perm("jobs.view_job"):
            return self
        return self.filter(owner=user)

    def with_queue_position(self) -> JobQuerySet:
        """Annotates `queued_ahead` (queued jobs only): how many queued jobs, anyone's, were sent to the
        workers before it. One subquery for the whole list instead of one query per card."""
        sent = Coalesce("enqueued_at", "created_at")
        ahead = (
            Job.objects.filter(status=Status.QUEUED)
            .alias(sent=sent)
            .filter(Q(sent__lt=OuterRef("queue_sent")) | Q(sent=OuterRef("queue_sent"), pk__lt=OuterRef("pk")))
            .order_by()
            .values("status")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return self.alias(queue_sent=sent).annotate(
            queued_ahead=Case(
                When(status=Status.QUEUED, then=Coalesce(Subquery(ahead), 0)),
                default=None,
                output_field=models.IntegerField(),
            )
        )


class Job(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_job_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    name = models.CharField(
        max_length=MAX_JOB_NAME_LENGTH, blank=True, help_text="The user's name for the job; empty: its first video's."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    variations_per_video = models.PositiveSmallIntegerField()
    seed = models.BigIntegerField(default=new_seed)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(blank=True, help_text="created_at + JOB_TTL_HOURS unless set.")
    error = models.TextField(blank=True)
    thumbnail = models.CharField(max_length=255, blank=True, help_text="Path relative to the job folder.")
    thumbnail_size = models.PositiveIntegerField(default=0, help_text="Bytes of its thumbnail (0 without one).")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Claims so far: the fencing token of a run.")
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
        if self.expires_at is None:
            self.expires_at = self.created_at + timedelta(hours=settings.JOB_TTL_HOURS)
        super().save(*args, **kwargs)

    # --- derived figures -----------------------------------------------------
    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at

    def allows(self, user, action: str) -> bool:
        """May `user` change or delete this job? Owners may; staff (who see every job with jobs.view_job) only
        with Django's permission for it (jobs.change_job, jobs.delete_job)."""
        return self.owner_id == user.pk or user.has_perm(f"jobs.{action}_job")

    @property
    def is_downloadable(self) -> bool:
        """The one rule for offering the ZIP: finished (completed, failed or cancelled), not expired,
        with at least one finished variation. Pages, API links and the download view all ask this."""
        return self.is_terminal and not self.is_expired and self.completed_variations > 0

    @property
    def can_make_more(self) -> bool:
        """Offer "make more" (jobs.reuse): finished, not expired, its uploads kept (a job that ended before
        uploads were kept has none). Whether the files are still there is found out when it is asked for."""
        return self.is_terminal and not self.is_expired and all(source.path for source in self._sources())

    @property
    def failed_videos(self) -> int:
        return sum(source.status == Status.FAILED for source in self._sources())

    @property
    def can_retry(self) -> bool:
        """Offer "retry failed videos" (jobs.reuse): completed or failed, not expired, with a failed video."""
        return self.status in (Status.COMPLETED, Status.FAILED) and not self.is_expired and self.failed_videos > 0

    @property
    def title(self) -> str:
        """What the pages, the admin and the ZIP's file name call the job: its name, or its first video's."""
        if self.name:
            return self.name
        sources = self._sources()
        return sources[0].original_name if sources else f"Job {self.pk[:8]}"

    def queue_position(self) -> int | None:
        """1 for the next queued job to start, 2 for the one after it...; None unless queued.

        Counts every user's queued jobs (a position, never whose), in the order their tasks were sent.
        Uses the annotation of JobQuerySet.with_queue_position when the instance came with it.
        """
        if self.status != Status.QUEUED:
            return None
        ahead = getattr(self, "queued_ahead", None)
        if ahead is None:
            rows = Job.objects.filter(pk=self.pk).with_queue_position()
            ahead = rows.values_list("queued_ahead", flat=True).first() or 0
        return ahead + 1

    @property
    def seconds_left(self) -> int | None:
        """An estimate for a processing job, from this run's pace: the progress made since its claim, over
        the time since. None until there is enough to go on (MIN_ETA_PROGRESS points, MIN_ETA_SECONDS)."""
        if self.status != Status.PROCESSING or self.started_at is None:
            return None
        progress = self.progress
        made = progress - self.progress_at_claim
        elapsed = (timezone.now() - self.started_at).total_seconds()
        if made < MIN_ETA_PROGRESS or elapsed < MIN_ETA_SECONDS:
            return None
        return max(int(elapsed * (100 - progress) / made), 1)

    @property
    def summary(self) -> str:
        """'2 videos × 3 variations', as the pages show a job."""
        videos, variations = len(self._sources()), self.variations_per_video
        return f"{videos} video{'s' if videos != 1 else ''} × {variations} variation{'s' if variations != 1 else ''}"

    def _sources(self):
        # Uses the prefetched sources when the caller prefetched them.
        return list(self.sources.all())

    @property
    def total_variations(self) -> int:
        return len(self._sources()) * self.variations_per_video

    @property
    def completed_variations(self) -> int:
        return sum(source.completed_variations for source in self._sources())

    @property
    def progress(self) -> int:
        """Overall progress 0-100; 100 only when every variation is finished."""
        sources = self._sources()
        if not sources:
            return 0
        if self.status == Status.COMPLETED:
            return 100
        percent = sum(source.progress for source in sources) / len(sources)
        return min(int(percent), 99)

    # --- transitions (one conditional UPDATE each) ----------------------------
    def _transition(self, from_statuses, fenced: bool = False, **changes) -> bool:
        """One conditional UPDATE. `fenced`: only while this run's attempt still owns the job."""
        rows = Job.objects.filter(pk=self.pk, status__in=from_statuses)
        if fenced:
            rows = rows.filter(attempts=self.attempts)
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
            [Status.QUEUED], status=Status.PROCESSING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
        )
        if won:
            self.refresh_from_db(fields=["attempts"])
            # What earlier runs finished, so that the time-left estimate counts this run's pace only.
            self.progress_at_claim = self.progress
            Job.objects.filter(pk=self.pk, attempts=self.attempts).update(progress_at_claim=self.progress_at_claim)
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
        return self.attempts - self.handbacks

    def hand_back(self) -> bool:
        """processing -> queued by this run's own stopping worker (SIGTERM), which does not count as lost."""
        return self._requeued(
            Job.objects.filter(pk=self.pk, status=Status.PROCESSING, attempts=self.attempts),
            handbacks=F("handbacks") + 1,
        )

    def requeue_lost(self, stale_before) -> bool:
        """processing -> queued for a run whose worker is gone: only the attempt this instance saw, only
        while its heartbeat is still older than `stale_before`. A run that took over, or a worker that came
        back to life and beat, makes this a no-op."""
        return self._requeued(self._stale(stale_before))

    def give_up(self, stale_before, error: str) -> bool:
        """processing -> failed for a run whose worker is gone once too often; fenced like requeue_lost."""
        now = timezone.now()
        if self._stale(stale_before).update(status=Status.FAILED, error=error, finished_at=now):
            self.status, self.error, self.finished_at = Status.FAILED, error, now
            return True
        return False

    def _stale(self, stale_before) -> models.QuerySet:
        return Job.objects.filter(
            pk=self.pk, status=Status.PROCESSING, attempts=self.attempts, heartbeat_at__lt=stale_before
        )

    def _requeued(self, rows: models.QuerySet, **changes) -> bool:
        now = timezone.now()
        if not rows.update(status=Status.QUEUED, heartbeat_at=None, enqueued_at=now, **changes):
            return False
        self.status, self.heartbeat_at, self.enqueued_at = Status.QUEUED, None, now
        # Only while the job is still queued: a run that claimed it meanwhile keeps its sources' status.
        self.sources.filter(status=Status.PROCESSING, job__status=Status.QUEUED).update(status=Status.QUEUED)
        return True

    def close_sources(self, status: Status) -> int:
        """Sources still queued/processing take `status`, and a progress that counts only finished variations."""
        return self.sources.filter(status__in=ACTIVE).update(
            status=status, progress=F("completed_variations") * 100 / self.variations_per_video
        )

    def this_run(self) -> models.QuerySet:
        """The row while this attempt still owns the job: processing, and not requeued since.

        `attempts` is a fencing token: a worker that hung, was given up on and
        requeued (see jobs.cleanup) finds 0 rows here and stops, instead of
        racing the worker that took the job over.
        """
        return Job.objects.filter(pk=self.pk, status=Status.PROCESSING, attempts=self.attempts)

    def beat(self) -> bool:
        """Write the heartbeat; False when this run no longer owns the job."""
        return bool(self.this_run().update(heartbeat_at=timezone.now()))

    def current_status(self) -> str:
        return Job.objects.filter(pk=self.pk).values_list("status", flat=True).first() or Status.CANCELLED


class SourceVideo(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="sources")
    position = models.PositiveSmallIntegerField(help_text="Order in the upload, from 0.")
    original_name = models.CharField(max_length=255, help_text="Sanitised, unique within the job.")
    path = models.CharField(
        max_length=255, blank=True, help_text="Upload path relative to the job folder; empty once it is not kept."
    )
    upload_key = models.CharField(
        max_length=32,
        blank=True,
        default=new_job_id,
        help_text='The same for every hard link of one upload ("make more"): the storage figures count it once.',
    )
    size = models.BigIntegerField()
    duration = models.FloatField()
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    audio_codec = models.CharField(max_length=32, blank=True, help_text='e.g. "aac"; empty without audio.')
    audio_profile = models.CharField(max_length=32, blank=True, help_text='e.g. "LC" for AAC.')
    audio_channels = models.PositiveSmallIntegerField(default=0)
    audio_sample_rate = models.PositiveIntegerField(default=0)
    audio_bounded = models.BooleanField(
        default=False, help_text="Every audio packet within AAC's limits (the probe's): the audio may be copied."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    completed_variations = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    # The source is one part of the job's work, that any worker may claim (jobs.parts).
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Claims of this part: its fencing token.")
    handbacks = models.PositiveSmallIntegerField(
        default=0,
        help_text="Claims that do not count as lost: handed back by a stopping worker (SIGTERM), or that failed it.",
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the worker on it.")

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="source_position_unique")]

    def __str__(self) -> str:
        return self.original_name


class OutputFile(models.Model):
    """A finished, complete variation. The row and the file appear together."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="outputs")
    source = models.ForeignKey(SourceVideo, on_delete=models.CASCADE, related_name="outputs")
    variation_index = models.PositiveSmallIntegerField()
    path = models.CharField(max_length=255, help_text="Relative to the job folder.")
    thumbnail = models.CharField(
        max_length=255, blank=True, help_text="Its WebP thumbnail, relative to the job folder; empty without one."
    )
    size = models.BigIntegerField()
    thumbnail_size = models.PositiveIntegerField(default=0, help_text="Bytes of its thumbnail (0 without one).")
    effects = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    missing = models.BooleanField(default=False, help_text="The file vanished from disk (found by the cleanup).")

    class Meta:
        ordering = ["source__position", "variation_index"]
        constraints = [
            models.UniqueConstraint(fields=["source", "variation_index"], name="output_variation_unique"),
        ]

    def __str__(self) -> str:
        return self.path


class WorkerBeat(models.Model):
    """When a worker cluster last showed it is alive; read by /api/health/."""

    name = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} seen {self.seen_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, name: str = "cluster") -> None:
        cls.objects.update_or_create(name=name, defaults={"seen_at": timezone.now()})
