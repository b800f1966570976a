"""Retention, eviction, orphans and crash recovery: one pass, run by the schedule and `manage.py cleanup`.

What each step does and why it is safe to overlap with workers and with
other passes: docs/architecture/state-machine.md ("Lifecycle").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Q

from jobs import storage
from jobs.models import TERMINAL, Job, OutputFile, Status, database_now, locks
from jobs.services import notify, quota, resumable, webhooks
from jobs.services.enqueue import enqueue_job
from jobs.worker import procs, video_run

logger = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(minutes=10)
UPLOAD_TEMP_GRACE = timedelta(hours=2)  # a spooled upload untouched this long has no request behind it


@dataclass
class Summary:
    dry_run: bool = False
    recovered: int = 0  # requeued to resume
    parts_recovered: int = 0  # a video requeued (or failed) whose worker was lost while its job ran on
    resent: int = 0  # queued jobs whose task was sent again
    failed_stale: int = 0  # out of attempts
    finalised: int = 0  # cancelled jobs whose worker died
    expired: int = 0
    expired_queued: int = 0
    evicted: int = 0
    bytes_freed: int = 0
    orphans_removed: int = 0
    orphan_bytes: int = 0
    missing_marked: int = 0
    ends_told: int = 0  # webhooks of ends whose process died before recording them
    actions: list[str] = field(default_factory=list)

    def line(self) -> str:
        verb = "would have" if self.dry_run else ""
        figures = (
            f"jobs expired: {self.expired}, expired while queued: {self.expired_queued}, "
            f"jobs evicted: {self.evicted}, bytes freed: {self.bytes_freed}, orphans removed: {self.orphans_removed} "
            f"({self.orphan_bytes} bytes), "
            f"jobs recovered: {self.recovered}, parts recovered: {self.parts_recovered}, "
            f"failed after {settings.MAX_ATTEMPTS} attempts: {self.failed_stale}, "
            f"tasks re-sent: {self.resent}, "
            f"cancelled jobs finalised: {self.finalised}, missing outputs marked: {self.missing_marked}, "
            f"job ends told late: {self.ends_told}"
        )
        return f"cleanup{' (dry run: ' + verb + ')' if self.dry_run else ''}: {figures}"


class _Pass:
    """One cleanup pass; with dry_run it records what it would do and changes nothing."""

    def __init__(self, now: datetime, dry_run: bool):
        self.now = now
        self.summary = Summary(dry_run=dry_run)

    @property
    def dry_run(self) -> bool:
        return self.summary.dry_run

    def act(self, description: str, action: Callable[[], object]) -> bool:
        """Do `action` (unless dry run) and record it; a failure is logged and the pass goes on.

        An action that returns False lost a race (another process got there first): not counted.
        """
        self.summary.actions.append(description)
        if self.dry_run:
            return True
        try:
            done = action()
        except Exception:
            logger.exception("cleanup: failed to %s", description)
            self.summary.actions[-1] += " (FAILED)"
            return False
        if done is False:
            self.summary.actions[-1] += " (skipped: another process got there first)"
            logger.info("cleanup: skipped %s: another process got there first", description)
            return False
        logger.info("cleanup: %s", description)
        return True


def run(now: datetime | None = None, dry_run: bool = False) -> Summary:
    """One full pass (docs/architecture/state-machine.md, "Lifecycle"). Safe to run from several processes at once."""
    cleanup = _Pass(now or database_now(), dry_run)  # the database's clock: the same on every machine
    recover(cleanup)
    expire(cleanup)
    evict(cleanup)
    sweep(cleanup)
    tell_ends(cleanup)
    logger.info("%s", cleanup.summary.line())
    return cleanup.summary


# --- 1. recovery -----------------------------------------------------------------
def recover(cleanup: _Pass) -> None:
    stale_before = cleanup.now - timedelta(seconds=settings.STALE_AFTER_SECONDS)
    stale = Job.objects.filter(status=Status.PROCESSING, heartbeat_at__lt=stale_before).order_by("created_at")
    for job in stale:
        if job.lost_runs >= settings.MAX_ATTEMPTS:
            give_up = lambda job=job: _give_up(job, stale_before)  # noqa: E731
            if cleanup.act(f"fail job {job.pk}: worker lost {job.lost_runs} times", give_up):
                cleanup.summary.failed_stale += 1
        elif cleanup.act(
            f"requeue job {job.pk} (worker lost, attempt {job.claims})", lambda job=job: _requeue(job, stale_before)
        ):
            cleanup.summary.recovered += 1
    # A job whose other workers are alive keeps a fresh heartbeat: its lost parts are recovered one by one.
    for batch in video_run.stale(stale_before):
        description = (
            f"requeue batch {batch.number} of video {batch.source.position} of job {batch.job_id}"
            f" (worker lost, claim {batch.claim})"
        )
        if cleanup.act(description, lambda batch=batch: video_run.recover(batch, stale_before)):
            cleanup.summary.parts_recovered += 1
    resend_before = cleanup.now - timedelta(seconds=settings.QUEUE_RESEND_SECONDS)
    waiting = Job.objects.filter(status=Status.QUEUED).filter(
        Q(enqueued_at__lt=resend_before) | Q(enqueued_at__isnull=True, created_at__lt=resend_before)
    )
    for job in waiting:
        if cleanup.act(f"re-send the task of queued job {job.pk}", lambda job=job: _resend(job, cleanup.now)):
            cleanup.summary.resent += 1
    # Its worker never tidied up (settled its files) after the cancel.
    dead_cancel = Job.objects.filter(status=Status.CANCELLED, cancelled_at__lt=stale_before, settled_at=None)
    for job in dead_cancel:
        if cleanup.act(f"finalise cancelled job {job.pk}", lambda job=job: _finalise(job)):
            cleanup.summary.finalised += 1


def _requeue(job: Job, stale_before) -> bool:
    """Resume a job whose worker is gone. Overlapping passes and a run that just took over are safe:

    1. The requeue UPDATE names the attempt this pass saw and a heartbeat older
       than `stale_before`; zero rows means someone else acted: do nothing.
    2. Only the winner kills the lost run's FFmpeg (tagged with its attempt)
       and removes that run's partial files; a newer run's are left alone.
    3. Then the task is sent again.
    """
    lost_attempt = job.claims
    if not job.requeue_lost(stale_before):
        return False
    video_run.interrupt(job, lost_attempt)
    enqueue_job(job.pk)
    return True


def _give_up(job: Job, stale_before) -> bool:
    """Fail a job whose worker was lost MAX_ATTEMPTS times; fenced like _requeue."""
    lost_attempt = job.claims
    message = f"The worker processing this job stopped {job.lost_runs} times; giving up."
    if not job.give_up(stale_before, message):
        return False
    video_run.interrupt(job, lost_attempt)
    storage.settle_files(job)
    notify.job_ended(job.pk)
    return True


def _resend(job: Job, now) -> bool:
    """Send the task again for a job that waited too long: its task may be lost (a failed broker,
    a hard-killed cluster with the Redis broker). The UPDATE on the enqueued_at this pass saw makes
    overlapping passes send it once; a duplicate delivery would do nothing anyway (the claim)."""
    if not Job.objects.filter(pk=job.pk, status=Status.QUEUED, enqueued_at=job.enqueued_at).update(enqueued_at=now):
        return False
    return enqueue_job(job.pk)


def _finalise(job: Job) -> None:
    procs.kill_tagged(job.pk)
    storage.settle_files(job)


def recover_lost_jobs() -> None:
    """Step 1 alone: run when a worker process starts and every minute with the heartbeat schedule."""
    cleanup = _Pass(database_now(), dry_run=False)
    recover(cleanup)
    if cleanup.summary.actions:
        logger.info("recovery: %s", "; ".join(cleanup.summary.actions))


# --- 2. expiry -------------------------------------------------------------------
def expire(cleanup: _Pass) -> None:
    for job in Job.objects.filter(status__in=TERMINAL, expires_at__lte=cleanup.now).order_by("expires_at"):
        freed = storage.job_bytes(job)
        delete = lambda job=job, freed=freed: storage.delete_job(job, freed)  # noqa: E731
        if cleanup.act(f"delete expired {job.status} job {job.pk} ({freed} bytes)", delete):
            cleanup.summary.expired += 1
            cleanup.summary.bytes_freed += freed
    for job in Job.objects.filter(status=Status.QUEUED, expires_at__lte=cleanup.now):
        freed = storage.job_bytes(job)
        if cleanup.act(f"fail job {job.pk}: expired while queued", lambda job=job: _expire_queued(job)):
            cleanup.summary.expired_queued += 1
            cleanup.summary.bytes_freed += freed
    if resumable.expirable(cleanup.now):
        cleanup.act("remove expired resumable uploads and files no upload owns", lambda: resumable.expire(cleanup.now))


def _expire_queued(job: Job) -> None:
    if job.fail("expired while queued", from_statuses=[Status.QUEUED]):
        job.close_sources(Status.FAILED)
        storage.settle_files(job)  # its files go with the job, at the next pass: it is expired
        notify.job_ended(job.pk)


# --- 3. eviction -----------------------------------------------------------------
def evict(cleanup: _Pass) -> None:
    used = quota.storage_used()
    candidates = quota.evictable_jobs(cleanup.now).iterator()
    simulated_freed = 0  # a dry run frees nothing, so pretend for the stopping rule
    while used - simulated_freed > settings.STORAGE_CAP_BYTES or _disk_too_full(used - simulated_freed):
        job = next(candidates, None)
        if job is None:
            logger.warning("cleanup: storage still over the limit and no finished job left to evict")
            return
        freed = storage.job_bytes(job)
        over = "storage cap" if used - simulated_freed > settings.STORAGE_CAP_BYTES else "disk space"
        delete = lambda job=job, freed=freed: quota.evict_job(job, freed)  # noqa: E731
        if cleanup.act(f"evict {job.status} job {job.pk} for {over} ({freed} bytes)", delete):
            cleanup.summary.evicted += 1
            cleanup.summary.bytes_freed += freed
        if cleanup.dry_run:
            simulated_freed += freed
        else:
            used = quota.storage_used()


def _disk_too_full(job_files: int) -> bool:
    """The data disk is over DISK_FULL_PERCENT, and job files are what fills it: only then can evicting
    jobs help. When something else fills the disk, deleting users' results would free too little."""
    usage = quota.disk_usage()
    if not usage.total:
        return False
    over = usage.used - usage.total * settings.DISK_FULL_PERCENT / 100
    if over <= 0:
        return False
    if job_files < over:
        logger.warning(
            "cleanup: the disk is over %s%% full, but not with job files: nothing evicted for it",
            settings.DISK_FULL_PERCENT,
        )
        return False
    return True


# --- 4. orphans ------------------------------------------------------------------
def sweep(cleanup: _Pass) -> None:
    if not storage.disk.is_folder(settings.JOBS_DIR):
        # Not "every file vanished": the folder is not there (an unmounted share, a wrong DATA_DIR).
        logger.error("cleanup: %s is missing; orphans and missing outputs are not checked", settings.JOBS_DIR)
        return
    grace_start = time.time() - ORPHAN_GRACE.total_seconds()
    known = {job.pk: job for job in Job.objects.all()}
    for entry in storage.job_folders():
        job = known.get(entry.name)
        try:
            if job is None:
                if storage.disk.changed_before(entry, grace_start, files_only=False):
                    _remove_orphan(cleanup, entry, "no job owns it")
                continue
            _sweep_job_folder(cleanup, job)
        except FileNotFoundError:
            continue  # deleted by a DELETE or another pass while this one looked: nothing left to sweep
    _mark_missing(cleanup)
    for path in storage.stale_upload_temp_files(time.time() - UPLOAD_TEMP_GRACE.total_seconds()):
        _remove_orphan(cleanup, path, "upload of a web process that died")


def _sweep_job_folder(cleanup: _Pass, job: Job) -> None:
    if job.status == Status.QUEUED or job.status == Status.PROCESSING:
        return  # a worker (or the upload) is writing here; recovery handles lost workers
    if next(_orphans(job), None) is None:
        return  # the usual case, seen without taking the job's lock
    with locks.finished_job_locked(job.pk) as status:
        if status not in TERMINAL:
            return  # retried (or deleted) since the pass read it
        for path, why in _orphans(job):
            _remove_orphan(cleanup, path, why)


def _orphans(job: Job) -> Iterator[tuple[Path, str]]:
    """A finished job's files no row owns, and its empty folders, children before their folders: a folder is
    judged when it is reached, so one emptied by removing what came before it counts as empty."""
    owned = storage.owned_files(job)
    for path in storage.disk.tree(storage.job_folder(job.pk)):
        if storage.disk.is_folder(path):
            if not storage.disk.list(path):
                yield path, "empty folder"
        elif path not in owned:
            yield path, "no row owns it"


def _remove_orphan(cleanup: _Pass, path: Path, why: str) -> None:
    size = storage.disk.size(path)
    if cleanup.act(f"remove orphan {path} ({why}, {size} bytes)", lambda: storage.disk.remove_any(path)):
        cleanup.summary.orphans_removed += 1
        cleanup.summary.orphan_bytes += size


def _mark_missing(cleanup: _Pass) -> None:
    """Outputs whose file vanished are marked missing; a thumbnail that vanished is forgotten (the pages then
    show the variation without a picture, instead of a broken one)."""
    for output in OutputFile.objects.filter(missing=False):
        if not storage.disk.exists(storage.output_path(output)):
            mark = lambda output=output: OutputFile.objects.filter(pk=output.pk).update(missing=True)  # noqa: E731
            if cleanup.act(f"mark output {output.path} of job {output.job_id} missing (file vanished)", mark):
                cleanup.summary.missing_marked += 1
                logger.warning("job %s: output %s vanished from disk", output.job_id, output.path)
        elif (thumbnail := storage.output_thumbnail_path(output)) and not storage.disk.exists(thumbnail):
            rows = OutputFile.objects.filter(pk=output.pk, thumbnail=output.thumbnail)
            forget = lambda rows=rows: rows.update(thumbnail="", thumbnail_size=0)  # noqa: E731
            if cleanup.act(f"forget the thumbnail of output {output.path} of job {output.job_id} (vanished)", forget):
                logger.warning("job %s: the thumbnail of output %s vanished from disk", output.job_id, output.path)


# --- 5. webhooks -----------------------------------------------------------------
def tell_ends(cleanup: _Pass) -> None:
    """The webhook of an end that has none (its process died before recording it), and old records go."""
    for job_id in webhooks.untold_ends(cleanup.now):
        if cleanup.act(
            f"record the webhook of job {job_id}'s end", lambda job_id=job_id: bool(webhooks.job_ended(job_id))
        ):
            cleanup.summary.ends_told += 1
    if not cleanup.dry_run:
        webhooks.forget_old(cleanup.now)
