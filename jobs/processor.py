"""Runs one job: claim, encode every pending variation in batches, finish.

The order of the steps, and the races each one is fenced against, are in
docs/architecture.md ("Processing a job").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import F
from django_q.exceptions import TimeoutException

from jobs import ffmpeg, storage
from jobs.effects import Effects, effects_for_job
from jobs.enqueue import enqueue_job
from jobs.models import ACTIVE, TERMINAL, Job, OutputFile, SourceVideo, Status

logger = logging.getLogger(__name__)

T = TypeVar("T")


class WorkerStopping(SystemExit):
    """The worker process was asked to stop (SIGTERM) while it ran a job."""


def run_job(job_id: str) -> None:
    """Entry point of the django-q2 task. Safe to call twice for the same job."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        logger.info("job %s: gone before it started", job_id)
        return
    if not job.claim():
        status = job.current_status()
        logger.info("job %s: not claimed (status %s): nothing to do", job_id, status)
        if status in TERMINAL:  # e.g. cancelled while queued: make sure its uploads are gone
            storage.settle_files(job)
        return
    logger.info("job %s: claimed (attempt %s)", job_id, job.attempts)
    try:
        _run_sources(job)
        _finish(job)
    except WorkerStopping:
        _hand_back(job)
        raise
    except TimeoutException:
        # django-q2's timeout: failed for good, not handed back to time out again and again.
        message = f"timed out after {settings.JOB_TIMEOUT_SECONDS} s"
        if job.finish(Status.FAILED, error=message):
            logger.warning("job %s: %s", job_id, message)
        raise
    except (OperationalError, InterfaceError):
        # The database, not the job, is in trouble (locked past every retry, the connection gone): leave
        # the job processing; its heartbeat goes stale and recovery resumes it from its finished variations.
        logger.exception("job %s: database error; left for recovery to resume", job_id)
    except Exception:
        logger.exception("job %s: failed unexpectedly", job_id)
        job.finish(Status.FAILED, error="Internal error: the details are in the server log.")
    finally:
        # Also reached when django-q2's timeout raises SystemExit in the task.
        storage.settle_files(job)


def _hand_back(job: Job) -> None:
    """Requeue the job this stopping worker owns, so the next cluster resumes it at once."""
    if job.hand_back():
        enqueue_job(job.pk)
        logger.info("job %s: worker stopping; requeued to resume from its finished variations", job.pk)


def _run_sources(job: Job) -> None:
    sources = list(job.sources.order_by("position"))
    effects = effects_for_job(job.seed, len(sources), job.variations_per_video)
    if sources and not job.thumbnail:
        make_thumbnail(job, sources[0])
    for source in sources:
        if not _still_processing(job):
            logger.info("job %s: no longer processing; stopping before source %s", job.pk, source.position)
            return
        if source.status in TERMINAL:
            continue  # resumed job: this source was finished by an earlier attempt
        _run_source(job, source, effects)


def _run_source(job: Job, source: SourceVideo, effects: dict[tuple[int, int], Effects]) -> None:
    # Conditional: a cancel may have closed this source a moment ago, or another run taken the job over.
    _this_runs(job, source).filter(status__in=ACTIVE).update(status=Status.PROCESSING)
    done = set(source.outputs.values_list("variation_index", flat=True))
    pending = [index for index in range(job.variations_per_video) if index not in done]
    for batch in _chunks(pending, settings.BATCH_SIZE):
        if not _still_processing(job):  # checked before every batch: BATCH_SIZE=1 means between variations
            logger.info("job %s: no longer processing; not starting the next batch", job.pk)
            return
        storage.create_outputs_dir(job.pk)
        specs = [
            ffmpeg.OutputSpec(
                storage.partial_path(job.pk, source.position, index, job.attempts),
                effects[(source.position, index)].filter_chain(),
                max_seconds=source.duration + 1,
                max_bytes=output_byte_limit(source),
            )
            for index in batch
        ]
        progress = _ProgressWriter(job, source, len(batch))
        try:
            result = ffmpeg.encode(
                storage.upload_path(source),
                specs,
                job_id=job.pk,
                attempt=job.attempts,
                on_progress=progress,
                should_stop=_StopWatch(job),
                encoding=encode_settings(source),
            )
        except ffmpeg.FFmpegError as exc:
            # The whole story (stderr, paths) goes to the log; the user gets a short cause.
            logger.warning("job %s: source %s failed: %s", job.pk, source.position, exc)
            storage.discard(spec.path for spec in specs)
            # Fenced: a run that was given up on (its FFmpeg killed by recovery) must not fail the source for good.
            _this_runs(job, source).update(status=Status.FAILED, error=user_error(exc, progress.seconds))
            return
        if result.stopped:
            # A stopped FFmpeg may exit 0 with valid but shortened files: never keep them.
            storage.discard(spec.path for spec in specs)
            return
        for index, spec in zip(batch, specs, strict=True):
            if not register_output(job, source, index, spec.path, effects[(source.position, index)]):
                storage.discard(spec.path for spec in specs)
                return


class _StopWatch:
    """should_stop for FFmpeg: True once the job is no longer processing (cancelled, deleted).

    Also writes the heartbeat every BEAT_SECONDS, so a live job never looks
    stale even while FFmpeg reports no progress.
    """

    BEAT_SECONDS = 2.0

    def __init__(self, job: Job):
        self.job = job
        self.last_beat = time.monotonic()

    def __call__(self) -> bool:
        if time.monotonic() - self.last_beat >= self.BEAT_SECONDS:
            self.last_beat = time.monotonic()
            # The beat is conditional on the status, so it doubles as the check.
            return not retry_transient(self.job.beat)
        return not retry_transient(lambda: _still_processing(self.job))


def encode_settings(source: SourceVideo) -> ffmpeg.EncodeSettings:
    return ffmpeg.EncodeSettings.for_source(
        source.audio_codec, source.audio_profile, source.audio_channels, source.audio_sample_rate
    )


def output_byte_limit(source: SourceVideo) -> int:
    """-fs for one variation: 4 bits per pixel of every frame the source can have (x264 at crf 23 needs
    a fraction of that even on noise), never more than the storage cap. A stream that lies about itself
    cannot make a variation grow without end."""
    frames = source.duration * settings.MAX_FPS
    return min(int(frames * source.width * source.height / 2) + 16 * 1024**2, settings.STORAGE_CAP_BYTES)


def user_error(exc: ffmpeg.FFmpegError, at_seconds: float | None) -> str:
    """What a user is told about a failed video: a short cause, never FFmpeg's stderr or a path."""
    if "No space left on device" in str(exc):
        return "The disk is full: the variations could not be written."
    if "output size limit reached" in str(exc):
        return "The variations grew past the size limit for this video."
    if isinstance(exc, ffmpeg.Stalled):
        return str(exc)
    where = f" at {int(at_seconds) // 60}:{int(at_seconds) % 60:02d}" if at_seconds else ""
    return f"The video could not be decoded{where}."


class _ProgressWriter:
    """on_progress callback: source progress from FFmpeg's out_time, plus the job heartbeat."""

    def __init__(self, job: Job, source: SourceVideo, batch_size: int):
        self.job, self.source, self.batch_size = job, source, batch_size
        self.seconds: float | None = None  # how far FFmpeg got: where a failure happened

    def __call__(self, seconds: float) -> None:
        self.seconds = seconds
        retry_transient(lambda: self._write(seconds))

    def _write(self, seconds: float) -> None:
        fraction = min(seconds / self.source.duration, 1.0) if self.source.duration else 0.0
        done = SourceVideo.objects.filter(pk=self.source.pk).values_list("completed_variations", flat=True).first() or 0
        percent = int(100 * (done + fraction * self.batch_size) / self.job.variations_per_video)
        _this_runs(self.job, self.source).filter(status=Status.PROCESSING).update(progress=min(percent, 99))
        self.job.beat()


TRANSIENT_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)  # seconds; about 8 s in all, well inside STALE_AFTER


def retry_transient(write: Callable[[], T]) -> T:
    """Run a small heartbeat or progress write, retrying with backoff on transient database errors.

    "database is locked" after SQLite's busy timeout, or a PostgreSQL connection
    that dropped, should not fail a job that is encoding fine. A dropped
    connection is closed so that the next try opens a new one.
    """
    for delay in TRANSIENT_RETRY_DELAYS:
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            logger.warning("transient database error, retrying in %.1f s: %s", delay, exc)
            if not connection.in_atomic_block:  # a broken connection is replaced; a transaction is not ours to end
                close_old_connections()
            time.sleep(delay)
    return write()


def _registered(source: SourceVideo, index: int) -> bool:
    try:
        return OutputFile.objects.filter(source=source, variation_index=index).exists()
    except Exception:  # cannot tell: keep the file; the orphan sweep removes it if no row owns it
        logger.exception("source %s: could not check variation %s after a failed registration", source.pk, index)
        return True


def _this_runs(job: Job, source: SourceVideo):
    """The source's row, while this run (its attempt) still owns the job."""
    return SourceVideo.objects.filter(pk=source.pk, job__status=Status.PROCESSING, job__attempts=job.attempts)


def register_output(job: Job, source: SourceVideo, index: int, partial: Path, effects: Effects) -> bool:
    """Rename a finished file into place together with its OutputFile row.

    Returns False (and registers nothing) when this run no longer owns the job:
    a variation that finishes after a cancel was accepted does not count, nor
    one from a worker whose job was requeued and taken over.
    """
    relative = storage.relative_to_job(job.pk, storage.final_path(partial))
    final = None
    try:
        with transaction.atomic():
            # Locks the job row (PostgreSQL); SQLite's IMMEDIATE transaction already
            # holds the write lock, so a concurrent cancel UPDATE waits for us.
            if not list(job.this_run().select_for_update().values_list("pk", flat=True)):
                return False
            OutputFile.objects.create(
                job=job,
                source=source,
                variation_index=index,
                path=relative,
                size=partial.stat().st_size,
                effects=effects.as_dict(),
            )
            SourceVideo.objects.filter(pk=source.pk).update(completed_variations=F("completed_variations") + 1)
            source_done = SourceVideo.objects.filter(
                pk=source.pk, completed_variations__gte=job.variations_per_video
            ).update(status=Status.COMPLETED, progress=100)
            job.beat()
            completed = bool(source_done) and not job.sources.exclude(status=Status.COMPLETED).exists()
            if completed:
                job.finish(Status.COMPLETED)
            final = storage.promote(partial)
    except BaseException:
        # Normally the rows were rolled back and the file must not outlive them. But a signal (a stopping
        # worker, django-q2's timeout) can land after the COMMIT: then the row exists and the file stays.
        if final is not None and not _registered(source, index):
            storage.discard([final])
        raise
    logger.info("job %s: variation %s of source %s done (%s)", job.pk, index + 1, source.position, relative)
    if completed:  # logged after the variation that completed it, so that the log reads in the true order
        logger.info("job %s: completed", job.pk)
    return True


def _finish(job: Job) -> None:
    """processing -> completed (some source done) or failed (none). A no-op after a cancel."""
    sources = list(job.sources.order_by("position"))
    failed = [s for s in sources if s.status == Status.FAILED]
    if any(s.status == Status.COMPLETED for s in sources):
        error = ""
        if failed:
            error = f"{len(failed)} of {len(sources)} videos failed: " + "; ".join(
                f"{s.original_name}: {s.error.splitlines()[-1] if s.error else 'failed'}" for s in failed
            )
        if job.finish(Status.COMPLETED, error=error[:4000]):
            logger.info("job %s: completed (%s failed sources)", job.pk, len(failed))
    elif sources and len(failed) == len(sources):
        if job.finish(Status.FAILED, error="Every video failed to process."):
            logger.info("job %s: failed", job.pk)


def make_thumbnail(job: Job, source: SourceVideo) -> None:
    target = storage.thumbnail_target(job.pk)
    at_seconds = min(1.0, source.duration / 3)
    try:
        ffmpeg.thumbnail(
            storage.upload_path(source), target, at_seconds=at_seconds, job_id=job.pk, attempt=job.attempts
        )
    except ffmpeg.FFmpegError:
        logger.warning("job %s: no thumbnail", job.pk, exc_info=True)
        return
    if job.this_run().update(thumbnail=target.name):
        job.thumbnail = target.name


def _still_processing(job: Job) -> bool:
    return job.this_run().exists()


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
