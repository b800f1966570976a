"""Retention, eviction, orphans and crash recovery: one pass, run by the schedule and `manage.py cleanup`.

A pass, in order:
1. Recover: processing jobs whose heartbeat is older than STALE_AFTER lost
   their worker. Their leftover FFmpeg is killed and partial files removed;
   they are requeued to resume from their finished variations, or failed after
   MAX_ATTEMPTS. Cancelled jobs whose worker died before tidying up are
   finalised (partials and uploads removed, finished outputs kept).
2. Expire: completed, failed and cancelled jobs past expires_at are deleted,
   files first, then rows; queued jobs past expiry fail ("expired while queued").
3. Evict: while the job files use more than STORAGE_CAP_BYTES, or the data disk
   is more than DISK_FULL_PERCENT full, the oldest terminal job is deleted.
   Queued and processing jobs are never evicted.
4. Sweep: files and folders under JOBS_DIR that no row owns are deleted
   (folders younger than ORPHAN_GRACE are left alone: an upload may be
   writing them before its row exists); outputs whose file vanished are
   marked missing.

Deleting a job removes its files before its rows: a crash in between leaves
files for the next sweep, never rows without files.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from jobs import procs
from jobs.models import ACTIVE, TERMINAL, Job, OutputFile, SourceVideo, Status

logger = logging.getLogger(__name__)

ORPHAN_GRACE = timedelta(minutes=10)


@dataclass
class Summary:
    dry_run: bool = False
    recovered: int = 0  # requeued to resume
    failed_stale: int = 0  # out of attempts
    finalised: int = 0  # cancelled jobs whose worker died
    expired: int = 0
    expired_queued: int = 0
    evicted: int = 0
    bytes_freed: int = 0
    orphans_removed: int = 0
    missing_marked: int = 0
    actions: list[str] = field(default_factory=list)

    def line(self) -> str:
        verb = "would have" if self.dry_run else ""
        figures = (
            f"jobs expired: {self.expired}, expired while queued: {self.expired_queued}, "
            f"jobs evicted: {self.evicted}, bytes freed: {self.bytes_freed}, orphans removed: {self.orphans_removed}, "
            f"jobs recovered: {self.recovered}, failed after {settings.MAX_ATTEMPTS} attempts: {self.failed_stale}, "
            f"cancelled jobs finalised: {self.finalised}, missing outputs marked: {self.missing_marked}"
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
        """Do `action` (unless dry run) and record it; a failure is logged and the pass goes on."""
        self.summary.actions.append(description)
        if self.dry_run:
            return True
        try:
            action()
        except Exception:
            logger.exception("cleanup: failed to %s", description)
            self.summary.actions[-1] += " (FAILED)"
            return False
        logger.info("cleanup: %s", description)
        return True


def run(now: datetime | None = None, dry_run: bool = False) -> Summary:
    """One full pass (module docstring). Safe to run from several processes at once."""
    cleanup = _Pass(now or timezone.now(), dry_run)
    recover(cleanup)
    expire(cleanup)
    evict(cleanup)
    sweep(cleanup)
    logger.info("%s", cleanup.summary.line())
    return cleanup.summary


# --- deleting ------------------------------------------------------------------
def job_bytes(job: Job) -> int:
    """Bytes a job uses on disk (its folder, walked)."""
    total = 0
    if job.folder.is_dir():
        for path in job.folder.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink():
                    total += path.stat().st_size
            except OSError:
                continue
    return total


def delete_job(job: Job, size: int | None = None) -> int:
    """Files first, then rows. Returns the bytes freed (`size` when the caller measured it already)."""
    freed = job_bytes(job) if size is None else size
    if job.folder.exists():
        shutil.rmtree(job.folder)
    job_id = job.pk
    job.delete()
    logger.info("job %s: deleted with its files (%s bytes)", job_id, freed)
    return freed


# --- 1. recovery -----------------------------------------------------------------
def recover(cleanup: _Pass) -> None:
    stale_before = cleanup.now - timedelta(seconds=settings.STALE_AFTER_SECONDS)
    stale = Job.objects.filter(status=Status.PROCESSING, heartbeat_at__lt=stale_before).order_by("created_at")
    for job in stale:
        if job.attempts >= settings.MAX_ATTEMPTS:
            if cleanup.act(f"fail job {job.pk}: worker lost {job.attempts} times", lambda job=job: _give_up(job)):
                cleanup.summary.failed_stale += 1
        elif cleanup.act(f"requeue job {job.pk} (worker lost, attempt {job.attempts})", lambda job=job: _requeue(job)):
            cleanup.summary.recovered += 1
    dead_cancel = Job.objects.filter(status=Status.CANCELLED, cancelled_at__lt=stale_before)
    for job in dead_cancel:
        if job.uploads_dir.exists():  # its worker never tidied up
            if cleanup.act(f"finalise cancelled job {job.pk}", lambda job=job: _finalise(job)):
                cleanup.summary.finalised += 1


def _interrupt(job: Job) -> None:
    """Kill what the lost worker left running and drop its partial files."""
    from jobs.processor import remove_unowned_outputs

    procs.kill_tagged(job.pk)
    remove_unowned_outputs(job)


def _requeue(job: Job) -> None:
    from jobs import tasks

    _interrupt(job)
    with transaction.atomic():
        if job.requeue():  # conditional: a worker that came back to life wins
            transaction.on_commit(lambda: tasks.enqueue_job(job.pk))


def _give_up(job: Job) -> None:
    from jobs.processor import settle_files

    _interrupt(job)
    message = f"The worker processing this job stopped {job.attempts} times; giving up."
    if job.fail(message, from_statuses=[Status.PROCESSING]):
        settle_files(job)


def _finalise(job: Job) -> None:
    from jobs.processor import settle_files

    procs.kill_tagged(job.pk)
    settle_files(job)


def recover_lost_jobs() -> None:
    """Step 1 alone: run when a worker process starts and every minute with the heartbeat schedule."""
    cleanup = _Pass(timezone.now(), dry_run=False)
    recover(cleanup)
    if cleanup.summary.actions:
        logger.info("recovery: %s", "; ".join(cleanup.summary.actions))


# --- 2. expiry -------------------------------------------------------------------
def expire(cleanup: _Pass) -> None:
    for job in Job.objects.filter(status__in=TERMINAL, expires_at__lte=cleanup.now).order_by("expires_at"):
        freed = job_bytes(job)
        delete = lambda job=job, freed=freed: delete_job(job, freed)  # noqa: E731
        if cleanup.act(f"delete expired {job.status} job {job.pk} ({freed} bytes)", delete):
            cleanup.summary.expired += 1
            cleanup.summary.bytes_freed += freed
    for job in Job.objects.filter(status=Status.QUEUED, expires_at__lte=cleanup.now):
        freed = job_bytes(job)
        if cleanup.act(f"fail job {job.pk}: expired while queued", lambda job=job: _expire_queued(job)):
            cleanup.summary.expired_queued += 1
            cleanup.summary.bytes_freed += freed


def _expire_queued(job: Job) -> None:
    if job.fail("expired while queued", from_statuses=[Status.QUEUED]):
        job.close_sources(Status.FAILED)
        shutil.rmtree(job.uploads_dir, ignore_errors=True)


# --- 3. eviction -----------------------------------------------------------------
def _active_upload_bytes() -> int:
    """Uploads still on disk: those of queued and processing jobs."""
    return SourceVideo.objects.filter(job__status__in=ACTIVE).aggregate(total=Sum("size"))["total"] or 0


def storage_used() -> int:
    """Bytes used by job files: finished outputs plus the uploads still waiting for a worker."""
    outputs = OutputFile.objects.aggregate(total=Sum("size"))["total"] or 0
    return outputs + _active_upload_bytes()


def disk_percent_used() -> float:
    usage = shutil.disk_usage(settings.DATA_DIR)
    return 100.0 * usage.used / usage.total if usage.total else 0.0


def evict(cleanup: _Pass) -> None:
    used = storage_used()
    candidates = Job.objects.filter(status__in=TERMINAL).order_by("created_at").iterator()
    simulated_freed = 0  # a dry run frees nothing, so pretend for the stopping rule
    while used - simulated_freed > settings.STORAGE_CAP_BYTES or _disk_too_full(simulated_freed):
        job = next(candidates, None)
        if job is None:
            logger.warning("cleanup: storage still over the limit and no finished job left to evict")
            return
        freed = job_bytes(job)
        over = "storage cap" if used - simulated_freed > settings.STORAGE_CAP_BYTES else "disk space"
        delete = lambda job=job, freed=freed: delete_job(job, freed)  # noqa: E731
        if cleanup.act(f"evict {job.status} job {job.pk} for {over} ({freed} bytes)", delete):
            cleanup.summary.evicted += 1
            cleanup.summary.bytes_freed += freed
        if cleanup.dry_run:
            simulated_freed += freed
        else:
            used = storage_used()


def _disk_too_full(pretend_freed: int) -> bool:
    usage = shutil.disk_usage(settings.DATA_DIR)
    return usage.total and 100.0 * (usage.used - pretend_freed) / usage.total > settings.DISK_FULL_PERCENT


def make_room(needed: int) -> bool:
    """Before accepting an upload: evict finished jobs until `needed` more bytes fit. False if they cannot."""
    active = _active_upload_bytes()
    active += OutputFile.objects.filter(job__status__in=ACTIVE).aggregate(total=Sum("size"))["total"] or 0
    if active + needed > settings.STORAGE_CAP_BYTES or shutil.disk_usage(settings.DATA_DIR).free < needed:
        return False  # running jobs alone leave no room: evicting finished ones would not help enough
    for job in Job.objects.filter(status__in=TERMINAL).order_by("created_at").iterator():
        if storage_used() + needed <= settings.STORAGE_CAP_BYTES:
            break
        logger.info("job %s: evicted to make room for a new upload", job.pk)
        delete_job(job)
    return storage_used() + needed <= settings.STORAGE_CAP_BYTES


# --- 4. orphans ------------------------------------------------------------------
def sweep(cleanup: _Pass) -> None:
    jobs_dir = settings.JOBS_DIR
    if not jobs_dir.is_dir():
        return
    grace_start = time.time() - ORPHAN_GRACE.total_seconds()
    known = {job.pk: job for job in Job.objects.all()}
    for entry in jobs_dir.iterdir():
        job = known.get(entry.name)
        if job is None:
            if entry.stat().st_mtime < grace_start:
                _remove_orphan(cleanup, entry, "no job owns it")
            continue
        _sweep_job_folder(cleanup, job)
    _mark_missing(cleanup)


def _sweep_job_folder(cleanup: _Pass, job: Job) -> None:
    owned = {job.folder / path for path in OutputFile.objects.filter(job=job).values_list("path", flat=True)}
    if job.thumbnail:
        owned.add(job.folder / job.thumbnail)
    if job.status == Status.QUEUED or job.status == Status.PROCESSING:
        return  # a worker (or the upload) is writing here; recovery handles lost workers
    for path in sorted(job.folder.rglob("*"), reverse=True):  # children before their folders
        if path.is_dir():
            if not any(path.iterdir()):
                _remove_orphan(cleanup, path, "empty folder")
        elif path not in owned:
            _remove_orphan(cleanup, path, "no row owns it")


def _remove_orphan(cleanup: _Pass, path: Path, why: str) -> None:
    def remove():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    if cleanup.act(f"remove orphan {path} ({why})", remove):
        cleanup.summary.orphans_removed += 1


def _mark_missing(cleanup: _Pass) -> None:
    for output in OutputFile.objects.filter(missing=False).select_related("job"):
        if not output.file_path.exists():
            mark = lambda output=output: OutputFile.objects.filter(pk=output.pk).update(missing=True)  # noqa: E731
            if cleanup.act(f"mark output {output.path} of job {output.job_id} missing (file vanished)", mark):
                cleanup.summary.missing_marked += 1
                logger.warning("job %s: output %s vanished from disk", output.job_id, output.path)
