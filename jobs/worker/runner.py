"""Runs a job: claim it, share its parts (its videos' batches) with other workers, encode, finish.

run_job is the task sent for a job: it claims the job (a run), sends helper
tasks, and runs parts like any helper. run_helper is the helper task: it joins a
run that is still current. Each runs parts until none is left (jobs.worker.video_run).
The order of the steps, and the races each one is fenced against, are in
docs/architecture/processing.md ("Processing a job", "Parts").
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django_q.exceptions import TimeoutException

from jobs import ffmpeg, storage
from jobs.ffmpeg.effects import Effects, effects_for_job
from jobs.models import TERMINAL, Batch, Job, SourceVideo, Status
from jobs.models.locks import lock_run
from jobs.services.enqueue import enqueue_job, enqueue_part
from jobs.worker import outputs, video_run
from jobs.worker.db_retry import retry_transient
from jobs.worker.video_run import Part

logger = logging.getLogger(__name__)


class WorkerStopping(SystemExit):
    """The worker process was asked to stop (SIGTERM) while it ran a job."""


def run_job(job_id: str) -> None:
    """The task sent for a job. Safe to call twice for the same job: its first step is the conditional claim."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        logger.info("job %s: gone before it started", job_id)
        return
    _run_parts(job, lead=True)


def run_helper(job_id: str, attempt: int) -> None:
    """The helper task: run parts of the job's run of `attempt`, if that run is still current."""
    job = Job.objects.filter(pk=job_id, status=Status.PROCESSING, claims=attempt).first()
    if job is None:
        logger.info("job %s: helper for attempt %s not needed (the run is over or was requeued)", job_id, attempt)
        return
    _run_parts(job, lead=False)


def _run_parts(job: Job, lead: bool) -> None:
    """Claim and run parts until none is left. The lead claims the job first and sends the helpers.
    Everything after the claim is inside the try, so a stop or an error at any point is
    handled. A task that has run for half its timeout claims no more: a helper takes the rest, with a
    timeout of its own, so that JOB_TIMEOUT_SECONDS bounds one video's run rather than a whole job's."""
    part: Part | None = None
    started = time.monotonic()
    try:
        if lead and not _claim(job):
            return
        if lead:
            batches = video_run.plan_batches(job)
            helpers = video_run.send_helpers(job)
            logger.info("job %s: %s batches; sent %s helper tasks for the others", job.pk, batches, helpers)
            if not job.thumbnail:  # a lost run may have written it and not named it
                name_thumbnail(job, storage.thumbnail_target(job.pk))
        videos = job.sources.count()
        effects = effects_for_job(job.seed, videos, job.variations_per_video, job.strength, job.mirror)
        while True:  # claim_next locks the run: it returns None once the run is over (cancelled, requeued)
            if time.monotonic() - started > settings.JOB_TIMEOUT_SECONDS / 2:
                enqueue_part(job.pk, job.claims)
                logger.info("job %s: this task ran for half its timeout; a helper takes the rest", job.pk)
                return
            part = video_run.claim_next(job)
            if part is None:
                break
            _encode_part(part, effects)
            part = None
        if _finish_left_over(job):
            video_run.log_outcome(job)
    except WorkerStopping:
        _hand_back(job, part)
        raise
    except TimeoutException:
        # django-q2's timeout: this video failed for good, not handed back to time out again and again.
        message = f"timed out after {settings.JOB_TIMEOUT_SECONDS} s"
        if part is not None:
            _fail(part, message)
        raise
    except (OperationalError, InterfaceError):
        # The database, not the job, is in trouble (locked past every retry, the connection gone): leave
        # the part processing; its heartbeat goes stale and recovery resumes it from its finished variations.
        logger.exception("job %s: database error; left for recovery to resume", job.pk)
    except Exception:
        if part is None:  # other workers may be encoding the job well: recovery decides, not this one
            logger.exception("job %s: unexpected error outside a video; left for recovery", job.pk)
        else:
            logger.exception("job %s: source %s failed unexpectedly", job.pk, part.source.position)
            _fail(part, "Internal error: the details are in the server log.")
    finally:
        # Also reached when django-q2's timeout raises SystemExit in the task.
        storage.settle_files(job, part.key if part is not None else None)


def _claim(job: Job) -> bool:
    """queued -> processing for the lead; False (nothing to do) when another delivery or a cancel won."""
    if not job.claim():
        status = job.current_status()
        logger.info("job %s: not claimed (status %s): nothing to do", job.pk, status)
        if status in TERMINAL:  # e.g. cancelled while queued: make sure its files are settled
            storage.settle_files(job)
        return False
    logger.info("job %s: claimed (attempt %s)", job.pk, job.claims)
    return True


def _fail(part: Part, error: str) -> None:
    failed, finished = part.fail(error)
    if failed:
        logger.warning("job %s: source %s failed: %s", part.job.pk, part.source.position, error)
    if finished:
        video_run.log_outcome(part.job)


def _finish_left_over(job: Job) -> bool:
    """A safety net: finish the job if none of its parts is left to run. The transaction that finishes the
    last part normally does this itself; a resumed job with nothing left is finished here."""
    with transaction.atomic():
        return lock_run(job) and video_run.finish_if_done(job)


def _hand_back(job: Job, part: Part | None) -> None:
    """This worker is stopping: its part goes back to the queue, and the job too when no other worker
    is on it, so that the next worker resumes at once instead of waiting for recovery."""
    with transaction.atomic():
        if not lock_run(job):
            return
        part_back = part is not None and part.hand_back()
        running = Batch.objects.of_run(job).filter(status=Status.PROCESSING).exists()
        job_back = not running and job.hand_back()
    if job_back:
        enqueue_job(job.pk)
        logger.info("job %s: worker stopping; requeued to resume from its finished variations", job.pk)
    elif part_back:
        enqueue_part(job.pk, job.claims)
        logger.info("job %s: worker stopping; part %s requeued for another worker", job.pk, part.token)


def _encode_part(part: Part, effects: dict[tuple[int, int], Effects]) -> None:
    """Encode the batch's outputs (variations in formats) that are not finished, in one FFmpeg: one decode
    feeds every output, each registered as the batch ends."""
    job, source = part.job, part.source
    outputs.measure_focus(part)
    done = set(source.outputs.values_list("variation_index", "format"))
    batch = [pair for pair in part.batch.pairs() if pair not in done]
    if not batch:  # finished by a claim that was lost before it could say so
        video_run.complete_batch(part)
        return
    if not part.owned():
        logger.info("job %s: part %s no longer ours; not starting it", job.pk, part.token)
        return
    storage.create_outputs_dir(job.pk)
    specs = [outputs.spec(part, index, format_, effects[(source.position, index)]) for index, format_ in batch]
    written = [path for spec in specs for path in spec.paths()]
    thumbnail = _thumbnail_spec(part)
    progress = _ProgressWriter(part, len(batch), thumbnail)
    try:
        result = ffmpeg.encode(
            storage.upload_path(source),
            specs,
            job_id=job.pk,
            attempt=job.claims,
            part=part.token,
            on_progress=progress,
            should_stop=_StopWatch(part),
            encoding=encode_settings(source),
            thumbnail=thumbnail,
        )
    except ffmpeg.FFmpegError as exc:
        progress.keep_thumbnail()  # written before the failure, whole (atomic): still the job's
        # The whole story (stderr, paths) goes to the log; the user gets a short cause.
        logger.warning("job %s: source %s: ffmpeg failed: %s", job.pk, source.position, exc)
        storage.discard(written)
        # Fenced: a claim that was given up on (its FFmpeg killed by recovery) must not fail the source for good.
        _fail(part, user_error(exc, progress.seconds))
        return
    progress.keep_thumbnail()
    if result.stopped:
        # A stopped FFmpeg may exit 0 with valid but shortened files: never keep them.
        storage.discard(written)
        return
    for (index, format_), spec in zip(batch, specs, strict=True):
        facts = outputs.facts(job, source, format_, spec)
        its_thumbnail = spec.thumbnail.path if spec.thumbnail else None
        made = effects[(source.position, index)]
        if not video_run.register_output(part, index, spec.path, made, its_thumbnail, **facts):
            storage.discard(written)
            return
    storage.discard([spec.ssim_path for spec in specs if spec.ssim_path])


class _StopWatch:
    """should_stop for FFmpeg: True once the part is no longer this claim's (the job cancelled or deleted,
    the job or the part requeued and taken over).

    FFmpeg's wait asks it every ffmpeg.process.STOP_CHECK_INTERVAL; it asks the database every CHECK_SECONDS, and
    at once when the job's cancel mark (storage.mark_cancel) was touched since it last asked. Also writes
    the heartbeats every BEAT_SECONDS, so a live part never looks stale even while FFmpeg reports no progress.
    """

    CHECK_SECONDS = 0.25
    BEAT_SECONDS = 2.0

    def __init__(self, part: Part):
        self.part = part
        self.last_beat = self.last_check = time.monotonic()
        self.seen_mark = None  # a mark already there (a cancel since the batch's own check) asks at once

    def __call__(self) -> bool:
        now, mark = time.monotonic(), storage.cancel_mark(self.part.job.pk)
        if now - self.last_check < self.CHECK_SECONDS and mark == self.seen_mark:
            return False
        self.last_check, self.seen_mark = now, mark
        if now - self.last_beat >= self.BEAT_SECONDS:
            self.last_beat = now
            # The beat is conditional on the claim, so it doubles as the check.
            return not retry_transient(self.part.beat)
        return not retry_transient(self.part.owned)


def encode_settings(source: SourceVideo) -> ffmpeg.EncodeSettings:
    return ffmpeg.EncodeSettings.for_source(
        source.audio_codec, source.audio_profile, source.audio_channels, source.audio_sample_rate, source.audio_bounded
    )


def user_error(exc: ffmpeg.FFmpegError, at_seconds: float | None) -> str:
    """What a user is told about a failed video: a short cause, never FFmpeg's stderr or a path."""
    if "No space left on device" in str(exc):
        return "The disk is full: the variations could not be written."
    if "output size limit reached" in str(exc):
        return "The variations grew past the size limit for this video."
    if isinstance(exc, ffmpeg.Stalled):
        return str(exc)
    if isinstance(exc, ffmpeg.FrameTooLarge):
        return f"A frame of this video is larger than the limit of {settings.MAX_PIXELS} pixels (MAX_PIXELS)."
    if isinstance(exc, ffmpeg.OutOfMemory):
        return "The encoder ran out of memory (or crashed) on this video: its memory limit is ENCODE_MEMORY_BYTES."
    if isinstance(exc, ffmpeg.Killed):
        return "The encoder was stopped (killed) before it finished this video: retry it."
    if not ffmpeg.is_decode_error(exc):  # only FFmpeg's own words about the input blame the file
        return "The encoder failed on this video: the details are in the server log."
    where = f" at {int(at_seconds) // 60}:{int(at_seconds) % 60:02d}" if at_seconds else ""
    return f"The video could not be decoded{where}."


class _ProgressWriter:
    """on_progress callback: the batch's progress from FFmpeg's out_time (and its video's), plus the batch's and
    the job's heartbeats.
    Also names the job's thumbnail on the job once the batch has written it (early in the batch)."""

    def __init__(self, part: Part, pending: int, thumbnail: ffmpeg.ThumbnailSpec | None = None):
        self.part, self.source = part, part.source
        self.share = pending / len(part.batch.outputs)  # of the batch's outputs, those this FFmpeg makes
        self.thumbnail = thumbnail
        self.seconds: float | None = None  # how far FFmpeg got: where a failure happened

    def __call__(self, seconds: float) -> None:
        self.seconds = seconds
        retry_transient(lambda: self._write(seconds))
        self.keep_thumbnail()

    def keep_thumbnail(self) -> None:
        if self.thumbnail is not None and name_thumbnail(self.part.job, self.thumbnail.path):
            self.thumbnail = None

    def _write(self, seconds: float) -> None:
        fraction = min(seconds / self.source.duration, 1.0) if self.source.duration else 0.0
        self.part.beat(progress=int(100 * fraction * self.share))


def name_thumbnail(job: Job, path: Path) -> bool:
    """Name the thumbnail FFmpeg wrote (whole, see ffmpeg.ThumbnailSpec) on the job, for this run only.
    False while there is no file yet."""
    if not storage.disk.is_file(path):
        return False
    size = storage.disk.size(path)
    retry_transient(lambda: job.name_thumbnail(path.name, size))
    return True


def _thumbnail_spec(part: Part) -> ffmpeg.ThumbnailSpec | None:
    """The job's thumbnail is one more output of its first video's first batch, until the job has one."""
    job, source = part.job, part.source
    if job.thumbnail or source.position != 0 or part.batch.number != 0:
        return None
    return ffmpeg.ThumbnailSpec(storage.thumbnail_target(job.pk), at_seconds=outputs.thumbnail_moment(source))
