"""A job's parts: its videos' batches, which any worker of any cluster may take.

A worker claims the job (Job.claim: a run, fenced by Job.claims), splits what is
left of each queued video into batches of at most BATCH_SIZE outputs (plan_batches:
the run's Batch rows), sends one helper task per other batch, then claims batches
one at a time (claim_next, fenced by Batch.claim) until none is left; each helper
does the same. So a job of N videos, or one video of N batches, keeps N workers
busy, on one machine or several.

Every write of a part names both tokens (Part.rows): a worker whose job was requeued, or whose batch was
taken over, writes nothing. A video's own row (what a user sees) follows its batches in the same
transaction. The transaction that finishes the last video finishes the job (finish_if_done).
Details and races: docs/architecture/processing.md ("Parts").
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from jobs import storage
from jobs.ffmpeg.effects import Effects
from jobs.models import ACTIVE, Batch, Job, OutputFile, SourceVideo, Status
from jobs.models.locks import lock_run
from jobs.services import notify
from jobs.services.enqueue import enqueue_part
from jobs.worker import procs

logger = logging.getLogger(__name__)


@dataclass
class Part:
    """One claim of one batch of a job's run."""

    job: Job
    source: SourceVideo
    batch: Batch
    claim: int  # Batch.claim when this worker claimed it: unique among the claims of the video's batches

    @property
    def token(self) -> str:
        """'<position>-<claim>': the tag of its FFmpeg processes (procs.kill_tagged's `part`)."""
        return f"{self.source.position}-{self.claim}"

    @property
    def key(self) -> tuple[int, int]:
        """(position, claim): this claim, as storage tells its partial files from others' (storage's `part`)."""
        return (self.source.position, self.claim)

    def rows(self) -> models.QuerySet:
        """The batch's row while this claim owns it: processing, not taken over, its job's run still current."""
        return Batch.objects.filter(
            pk=self.batch.pk,
            status=Status.PROCESSING,
            claim=self.claim,
            job__status=Status.PROCESSING,
            job__claims=self.job.claims,
        )

    def owned(self) -> bool:
        return self.rows().exists()

    def beat(self, progress: int | None = None, **changes) -> bool:
        """The heartbeat of the batch and of its job. With `progress` (how far the batch's FFmpeg got, in
        percent), the batch's and the video's (video_progress); `changes` go to the video's row (e.g. its
        focus point). False when this claim no longer owns the batch: cancelled, requeued or taken over."""
        progressed = {} if progress is None else {"progress": progress}
        if not self.rows().update(heartbeat_at=timezone.now(), **progressed):
            return False
        if progress is not None:
            changes["progress"] = video_progress(self.job, self.source)
        if changes:
            SourceVideo.objects.filter(pk=self.source.pk, status__in=ACTIVE).update(**changes)
        return self.job.beat()

    def hand_back(self) -> bool:
        """processing -> queued by its own stopping worker (SIGTERM): not counted as a lost claim.
        Call with the run locked (lock_run)."""
        if not self.rows().update(status=Status.QUEUED, heartbeat_at=None):
            return False
        _video_follows(self.job, self.source)
        return True

    def fail(self, error: str) -> tuple[bool, bool]:
        """processing -> failed, and the video with it. The video's other batches of the run fail too: their
        workers see it at their next check and stop.
        When it was the job's last video, the same transaction finishes the job.

        Returns (failed, finished): whether this call failed the batch (False when this claim no longer owns
        it), and whether it finished the job; the caller logs, after its own lines (log_outcome).
        """
        with transaction.atomic():
            if not lock_run(self.job) or not self.rows().update(status=Status.FAILED):
                return False, False
            Batch.objects.of_run(self.job).filter(source=self.source, status__in=ACTIVE).update(status=Status.FAILED)
            SourceVideo.objects.filter(pk=self.source.pk, status__in=ACTIVE).update(status=Status.FAILED, error=error)
            return True, finish_if_done(self.job)


def video_progress(job: Job, source: SourceVideo) -> int:
    """A running video's percent: its finished outputs, plus the share its running batches have made."""
    running = Batch.objects.of_run(job).filter(source=source, status=Status.PROCESSING)
    running = running.values_list("progress", "outputs")
    done = SourceVideo.objects.filter(pk=source.pk).values_list("completed_variations", flat=True).first() or 0
    made = done + sum(percent / 100 * len(outputs) for percent, outputs in running)
    return min(int(100 * made / job.outputs_per_video), 99)


def _video_follows(job: Job, source: SourceVideo) -> None:
    """A video still running shows processing while a batch of it runs, else queued while one waits."""
    batches = Batch.objects.of_run(job).filter(source=source)
    status = Status.PROCESSING if batches.filter(status=Status.PROCESSING).exists() else Status.QUEUED
    if status == Status.PROCESSING or batches.filter(status=Status.QUEUED).exists():
        SourceVideo.objects.filter(pk=source.pk, status__in=ACTIVE).update(status=status)


def log_outcome(job: Job) -> None:
    """The line for a job that a call just finished (after its commit), and the email to its maker."""
    logger.info("job %s: %s", job.pk, job.status)
    notify.job_ended(job.pk)


def plan_batches(job: Job) -> int:
    """Split what is left of each active video (its outputs not finished yet) into the run's batches, in
    order: BATCH_SIZE outputs each, one decode each. Once per run: the lead calls it right after its claim.
    Returns how many batches the run has. Earlier runs' batches go: their workers are fenced off already."""
    with transaction.atomic():
        return _plan_once(job) if lock_run(job) else 0


def _plan_once(job: Job) -> int:
    """plan_batches, with the run locked; nothing to do when the run has its batches already."""
    if Batch.objects.of_run(job).exists():
        return Batch.objects.of_run(job).count()
    Batch.objects.filter(job=job, attempt__lt=job.claims).delete()
    planned = []
    # Nothing of this run runs yet: a video still marked processing is a lost run's, which left it so.
    SourceVideo.objects.filter(job=job, status=Status.PROCESSING).update(status=Status.QUEUED)
    for source in job.sources.filter(status=Status.QUEUED).order_by("position"):
        done = set(source.outputs.values_list("variation_index", "format"))
        pending = [
            [index, format_]
            for index in range(job.variations_per_video)
            for format_ in job.formats
            if (index, format_) not in done
        ]
        if not pending:  # finished by a run that was lost before it could say so
            SourceVideo.objects.filter(pk=source.pk, status=Status.QUEUED).update(status=Status.COMPLETED, progress=100)
        for number, outputs in enumerate(chunks(pending, settings.BATCH_SIZE)):
            planned.append(Batch(job=job, source=source, attempt=job.claims, number=number, outputs=outputs))
    Batch.objects.bulk_create(planned)
    return len(planned)


def claim_next(job: Job) -> Part | None:
    """Claim the run's next queued batch: the first batch of every video, then the second of every video...,
    so that the workers spread over the videos; None when none is left.

    Batches of this run whose worker went silent go back to the queue first
    (recover_stale), so a worker that runs out of work takes over a lost one.
    """
    recover_stale(timezone.now() - timedelta(seconds=settings.STALE_AFTER_SECONDS), job)
    with transaction.atomic():
        if not lock_run(job) or not _plan_once(job):
            return None
        batch = Batch.objects.of_run(job).filter(status=Status.QUEUED).select_related("source")
        batch = batch.order_by("number", "source__position").first()
        if batch is None:
            return None
        # The run's lock makes these read-then-writes safe: no other claim can come between.
        source, claim, now = batch.source, batch.source.claims + 1, timezone.now()
        SourceVideo.objects.filter(pk=source.pk).update(claims=claim)
        SourceVideo.objects.filter(pk=source.pk, status=Status.QUEUED).update(status=Status.PROCESSING)
        Batch.objects.filter(pk=batch.pk, status=Status.QUEUED).update(
            status=Status.PROCESSING, claim=claim, claims=F("claims") + 1, heartbeat_at=now, progress=0
        )
        source.claims = claim
        source.status = Status.PROCESSING if source.status == Status.QUEUED else source.status
        batch.status, batch.claim, batch.heartbeat_at = Status.PROCESSING, claim, now
        return Part(job, source, batch, claim)


def send_helpers(job: Job) -> int:
    """One helper task per queued batch but the one the caller is about to run: idle workers take them."""
    helpers = max(Batch.objects.of_run(job).filter(status=Status.QUEUED).count() - 1, 0)
    for _ in range(helpers):
        enqueue_part(job.pk, job.claims)
    return helpers


def chunks(items: Sequence, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def finish_if_done(job: Job) -> bool:
    """processing -> completed (some video done) or failed (none), once no part is queued or processing.

    Call inside the transaction that finished a part, with the job's row locked
    (lock_run). Returns whether this call finished the job. The caller logs it,
    after what it finished itself, so that the log reads in the true order.
    """
    sources = list(SourceVideo.objects.filter(job=job).order_by("position"))
    if not sources or any(source.status in ACTIVE for source in sources):
        return False
    failed = [source for source in sources if source.status != Status.COMPLETED]
    causes = "; ".join(f"{s.original_name}: {s.error.splitlines()[-1] if s.error else 'failed'}" for s in failed)
    if len(failed) == len(sources):
        return job.finish(Status.FAILED, error=f"Every video failed to process: {causes}"[:4000])
    error = f"{len(failed)} of {len(sources)} videos failed: {causes}" if failed else ""
    return job.finish(Status.COMPLETED, error=error[:4000])


# --- registering a finished variation ---------------------------------------------------
def complete_batch(part: Part) -> None:
    """A claimed batch with nothing left to encode (every output has its row) is done."""
    with transaction.atomic():
        if lock_run(part.job) and part.rows().update(status=Status.COMPLETED):
            _video_follows(part.job, part.source)


def _registered(source: SourceVideo, index: int, format_: str) -> bool:
    try:
        return OutputFile.objects.filter(source=source, variation_index=index, format=format_).exists()
    except Exception:  # cannot tell: keep the file; the orphan sweep removes it if no row owns it
        logger.exception("source %s: could not check variation %s after a failed registration", source.pk, index)
        return True


def register_output(
    part: Part, index: int, partial: Path, effects: Effects, thumbnail: Path | None = None, **facts
) -> bool:
    """Rename a finished file (and its thumbnail, when FFmpeg wrote one) into place together with its
    OutputFile row (`facts`: its format, width, height, seconds and ssim); when it was the job's last
    output, the same transaction completes the job.

    Returns False (and registers nothing) when this claim no longer owns the part:
    a variation that finishes after a cancel was accepted does not count, nor
    one from a worker whose job or part was requeued and taken over.
    """
    job, source = part.job, part.source
    relative = storage.relative_to_job(job.pk, storage.final_path(partial))
    if thumbnail is not None and not storage.disk.is_file(thumbnail):
        thumbnail = None  # its write failed or the source is too short: the variation is whole all the same
    finals: list[Path] = []
    try:
        with transaction.atomic():
            # A concurrent cancel UPDATE, another part's last variation, or a recovery pass that would take
            # this part over, waits for this transaction (the run's lock).
            if not lock_run(job) or not part.owned():
                return False
            OutputFile.objects.create(
                job=job,
                source=source,
                variation_index=index,
                path=relative,
                thumbnail=storage.relative_to_job(job.pk, storage.final_path(thumbnail)) if thumbnail else "",
                size=storage.disk.size(partial),
                thumbnail_size=storage.disk.size(thumbnail) if thumbnail else 0,
                effects=effects.as_dict(),
                **facts,
            )
            part.beat(completed_variations=F("completed_variations") + 1)
            if part.batch.finished_outputs() >= len(part.batch.outputs):
                part.rows().update(status=Status.COMPLETED)
            video_done = SourceVideo.objects.filter(
                pk=source.pk, status=Status.PROCESSING, completed_variations__gte=job.outputs_per_video
            ).update(status=Status.COMPLETED, progress=100)
            if not video_done:  # its other batches may all be waiting
                _video_follows(job, source)
            completed = bool(video_done) and finish_if_done(job)
            for written in (partial, thumbnail):
                if written is not None:
                    finals.append(storage.promote(written))
    except BaseException:
        # Normally the rows were rolled back and the files must not outlive them. But a signal (a stopping
        # worker, django-q2's timeout) can land after the COMMIT: then the row exists and the files stay.
        if finals and not _registered(source, index, facts.get("format", "source")):
            storage.discard(finals)
        raise
    logger.info("job %s: variation %s of source %s done (%s)", job.pk, index + 1, source.position, relative)
    if completed:  # logged after the variation that completed it, so that the log reads in the true order
        log_outcome(job)
    return True


# --- lost parts ----------------------------------------------------------------------
def stale(stale_before: datetime, job: Job | None = None) -> models.QuerySet:
    """Batches of processing jobs' current runs whose worker has not beaten since `stale_before`."""
    rows = Batch.objects.filter(
        status=Status.PROCESSING,
        job__status=Status.PROCESSING,
        job__claims=F("attempt"),
        heartbeat_at__lt=stale_before,
    ).select_related("job", "source")
    return rows.filter(job=job) if job is not None else rows


def recover_stale(stale_before: datetime, job: Job | None = None) -> int:
    """recover() every stale batch (of `job`, or of every job); returns how many were recovered."""
    return sum(recover(batch, stale_before) for batch in stale(stale_before, job))


def recover(batch: Batch, stale_before: datetime) -> bool:
    """Requeue a batch whose worker went silent, and send a helper task for it; once its video has lost
    MAX_ATTEMPTS claims (SourceVideo.lost_claims, over every run), fail the video instead. Fenced on the
    claim and the stale heartbeat seen: an overlapping pass, a worker that took it over or came back to
    life, make this a no-op (False).

    The winner kills what the lost claim left running on this machine, and removes its partial files.
    """
    job, source = batch.job, batch.source
    lost = Part(job, source, batch, batch.claim)
    finished = False
    with transaction.atomic():
        if not lock_run(job) or not lost.rows().filter(heartbeat_at__lt=stale_before).exists():
            return False
        video = SourceVideo.objects.filter(pk=source.pk)
        losses = video.values_list("lost_claims", flat=True).get() + 1
        video.update(lost_claims=F("lost_claims") + 1)
        if losses >= settings.MAX_ATTEMPTS:
            _, finished = lost.fail(f"The worker processing this video stopped {losses} times; giving up.")
            logger.warning("job %s: part %s failed: its video's worker was lost %s times", job.pk, lost.token, losses)
        else:
            lost.rows().update(status=Status.QUEUED, heartbeat_at=None)
            _video_follows(job, source)
            logger.warning("job %s: part %s requeued (its worker was lost)", job.pk, lost.token)
    interrupt(job, job.claims, lost)
    if losses < settings.MAX_ATTEMPTS:
        enqueue_part(job.pk, job.claims)
    if finished:
        log_outcome(job)
        storage.settle_files(job)
    return True


def interrupt(job: Job, attempt: int, lost: Part | None = None) -> None:
    """Kill what a lost run (with `lost`: one lost claim of a batch) left running on this machine, and remove
    its partial files. Only for the winner of the UPDATE that took the run or the batch away from it."""
    procs.kill_tagged(job.pk, attempt, lost.token if lost else None)
    storage.remove_unowned_outputs(job, attempt=attempt, part=lost.key if lost else None)
