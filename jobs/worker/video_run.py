"""A job's parts: one per source video, which any worker of any cluster may take.

A worker claims the job (Job.claim: a run, fenced by Job.claims), sends one
helper task per other queued part, then claims parts one at a time (claim_next,
fenced by SourceVideo.claims) until none is left; each helper does the same.
So a job with N videos keeps N workers busy, on one machine or several.

Every write of a part names both tokens (Part.rows): a worker whose job was
requeued, or whose part was taken over, writes nothing. The transaction that
finishes the last part finishes the job (finish_if_done). Details and races:
docs/architecture/processing.md ("Parts").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from jobs import storage
from jobs.ffmpeg.effects import Effects
from jobs.models import ACTIVE, Job, OutputFile, SourceVideo, Status
from jobs.models.locks import lock_run
from jobs.services.enqueue import enqueue_part
from jobs.worker import procs

logger = logging.getLogger(__name__)


@dataclass
class Part:
    """One claim of one source of a job's run."""

    job: Job
    source: SourceVideo
    claim: int  # SourceVideo.claims when this worker claimed it

    @property
    def token(self) -> str:
        """'<position>-<claim>': the tag of its FFmpeg processes (procs.kill_tagged's `part`)."""
        return f"{self.source.position}-{self.claim}"

    @property
    def key(self) -> tuple[int, int]:
        """(position, claim): this claim, as storage tells its partial files from others' (storage's `part`)."""
        return (self.source.position, self.claim)

    def rows(self) -> models.QuerySet:
        """The source's row while this claim owns it: processing, not taken over, its job's run still current."""
        return SourceVideo.objects.filter(
            pk=self.source.pk,
            status=Status.PROCESSING,
            claims=self.claim,
            job__status=Status.PROCESSING,
            job__claims=self.job.claims,
        )

    def owned(self) -> bool:
        return self.rows().exists()

    def beat(self, **changes) -> bool:
        """The heartbeat of the part and of its job, with `changes` to the source row (e.g. its progress).
        False when this claim no longer owns the part: cancelled, requeued or taken over."""
        if not self.rows().update(heartbeat_at=timezone.now(), **changes):
            return False
        return self.job.beat()

    def hand_back(self) -> bool:
        """processing -> queued by its own stopping worker (SIGTERM): not counted as a lost claim.
        Call with the run locked (lock_run)."""
        return bool(self.rows().update(status=Status.QUEUED, heartbeat_at=None, handbacks=F("handbacks") + 1))

    def fail(self, error: str, stale_before: datetime | None = None) -> tuple[bool, bool]:
        """processing -> failed, for this video alone (with `stale_before`: only while its heartbeat is older).
        When it was the job's last part, the same transaction finishes the job.

        Returns (failed, finished): whether this call failed the part (False when this claim no longer owns
        it), and whether it finished the job; the caller logs, after its own lines (log_outcome).
        """
        rows = self.rows() if stale_before is None else self.rows().filter(heartbeat_at__lt=stale_before)
        # Failed by its own worker, the claim was not lost: it does not count against MAX_ATTEMPTS after a retry.
        not_lost = {"handbacks": F("handbacks") + 1} if stale_before is None else {}
        with transaction.atomic():
            if not lock_run(self.job) or not rows.update(status=Status.FAILED, error=error, **not_lost):
                return False, False
            return True, finish_if_done(self.job)


def log_outcome(job: Job) -> None:
    """The line for a job that a call just finished."""
    logger.info("job %s: %s", job.pk, job.status)


def claim_next(job: Job) -> Part | None:
    """Claim the run's next queued part, lowest position first; None when none is left.

    Parts of this run whose worker went silent go back to the queue first
    (recover_stale), so a worker that runs out of work takes over a lost one.
    """
    recover_stale(timezone.now() - timedelta(seconds=settings.STALE_AFTER_SECONDS), job)
    with transaction.atomic():
        if not lock_run(job):
            return None
        source = job.sources.filter(status=Status.QUEUED).order_by("position").first()
        if source is None:
            return None
        now, claim = timezone.now(), source.claims + 1
        SourceVideo.objects.filter(pk=source.pk, status=Status.QUEUED, claims=source.claims).update(
            status=Status.PROCESSING, claims=claim, heartbeat_at=now
        )  # the run's lock makes this read-then-write safe: no other claim can come between
        source.status, source.claims, source.heartbeat_at = Status.PROCESSING, claim, now
        return Part(job, source, claim)


def send_helpers(job: Job) -> int:
    """One helper task per queued part but the one the caller is about to run: idle workers take them."""
    helpers = max(job.sources.filter(status=Status.QUEUED).count() - 1, 0)
    for _ in range(helpers):
        enqueue_part(job.pk, job.claims)
    return helpers


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
            all_done = part.rows().filter(completed_variations__gte=job.outputs_per_video)
            source_done = all_done.update(status=Status.COMPLETED, progress=100)
            completed = bool(source_done) and finish_if_done(job)
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
    """Parts of processing jobs whose worker has not beaten since `stale_before`."""
    rows = SourceVideo.objects.filter(
        status=Status.PROCESSING, job__status=Status.PROCESSING, heartbeat_at__lt=stale_before
    ).select_related("job")
    return rows.filter(job=job) if job is not None else rows


def recover_stale(stale_before: datetime, job: Job | None = None) -> int:
    """recover() every stale part (of `job`, or of every job); returns how many were recovered."""
    return sum(recover(source, stale_before) for source in stale(stale_before, job))


def recover(source: SourceVideo, stale_before: datetime) -> bool:
    """Requeue a part whose worker went silent, and send a helper task for it; after MAX_ATTEMPTS lost
    claims, fail its video instead. Fenced on the claim and the stale heartbeat seen: an overlapping pass,
    a worker that took it over or came back to life, make this a no-op (False).

    The winner kills what the lost claim left running on this machine, and removes its partial files.
    """
    job = source.job
    lost = Part(job, source, source.claims)
    lost_claims = source.claims - source.handbacks
    finished = requeued = False
    if lost_claims >= settings.MAX_ATTEMPTS:
        error = f"The worker processing this video stopped {lost_claims} times; giving up."
        failed, finished = lost.fail(error, stale_before)
        if not failed:
            return False
        logger.warning("job %s: part %s failed: its worker was lost %s times", job.pk, source.position, lost_claims)
    else:
        with transaction.atomic():
            requeued = lock_run(job) and bool(
                lost.rows().filter(heartbeat_at__lt=stale_before).update(status=Status.QUEUED, heartbeat_at=None)
            )
        if not requeued:
            return False
        logger.warning("job %s: part %s requeued (its worker was lost, claim %s)", job.pk, source.position, lost.claim)
    interrupt(job, job.claims, lost)
    if requeued:
        enqueue_part(job.pk, job.claims)
    if finished:
        log_outcome(job)
        storage.settle_files(job)
    return True


def interrupt(job: Job, attempt: int, lost: Part | None = None) -> None:
    """Kill what a lost run (with `lost`: one lost claim of a part) left running on this machine, and remove
    its partial files. Only for the winner of the UPDATE that took the run or the part away from it."""
    procs.kill_tagged(job.pk, attempt, lost.token if lost else None)
    storage.remove_unowned_outputs(job, attempt=attempt, part=lost.key if lost else None)
