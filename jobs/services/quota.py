"""Room for job files: what they take (the accounting), and admitting new work against the storage cap, the
team's and the user's quotas and the active-job limit, with the lock that serialises admissions.

An upload, "make more" and a retry all admit their work with `admit()`:

1. the cheap check first (MAX_ACTIVE_JOBS_PER_USER), then room under the cap,
   the team's quota (TEAM_STORAGE_BYTES) and the owner's inside it
   (USER_STORAGE_BYTES), by evicting the owner's own finished jobs and the
   team's, oldest first. Another team's results are never evicted for it: only
   the cleanup evicts across teams, when everyone's jobs are over the cap or the disk is full;
2. the caller's `before_lock` writes its files (an upload stores its videos);
3. the same checks again, inside the admission lock, where no other admission
   can slip in between; the caller saves its rows, and with them the
   reservation (Job.reserved_bytes), in the `with` block.

A job's reservation is a true upper bound of what it can write: every output
is capped by -fs (jobs.ffmpeg.output_bytes_bound), so the cap holds for the
sum of all jobs at every moment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Max, Q, Sum
from django.template.defaultfilters import filesizeformat

from jobs import ffmpeg, storage
from jobs.models import ACTIVE, TERMINAL, Job, OutputFile, SourceVideo, Upload, database_now, locks
from jobs.services.refusal import Refused

logger = logging.getLogger(__name__)


def output_reservation(duration: float) -> int:
    """What one output of a source of this length may take at most (its file and thumbnail)."""
    return ffmpeg.output_bytes_bound(duration, settings.MAX_FPS)


def job_reservation(uploads: Iterable[tuple[int, float]], outputs_per_video: int, slowest_speed: float = 1.0) -> int:
    """What a new job may take at most: its uploads ((size, duration) each), every output of each (every
    variation in every format) at its bound, as long as its slowest speed makes it, and the job's thumbnail."""
    uploads = list(uploads)
    outputs = sum(output_reservation(duration / slowest_speed) for _size, duration in uploads)
    return sum(size for size, _duration in uploads) + outputs_per_video * outputs + ffmpeg.THUMBNAIL_BYTES_BOUND


def check_active_jobs(owner, field: str = "videos") -> None:
    active = Job.objects.filter(owner=owner, status__in=ACTIVE).count()
    if active >= settings.MAX_ACTIVE_JOBS_PER_USER:
        raise Refused(
            f"you already have {active} jobs queued or running, the most allowed at once "
            f"(MAX_ACTIVE_JOBS_PER_USER={settings.MAX_ACTIVE_JOBS_PER_USER}); wait for one to finish, or cancel one",
            status=429,
            field=field,
        )


def fits(needed: int, owner, without: Collection[str] = (), team=None, credit: int = 0) -> bool:
    """Do `needed` more bytes fit under the cap, on the disk, in the owner's quota and in the team's (with
    `team`), once the finished jobs `without` are gone? `credit`: bytes of `needed` that the owner's
    resumable uploads already reserve (counted under the cap, on the disk and in the owner's quota, but
    in no team's until their job is made)."""
    used = storage_used(without=without)
    freed = storage_used() - used if without else 0  # an upload another job links frees nothing
    own = needed - credit
    return (
        used + own <= settings.STORAGE_CAP_BYTES
        and storage_used(owner, without=without) + own <= settings.USER_STORAGE_BYTES
        and (team is None or storage_used(without=without, team=team) + needed <= settings.TEAM_STORAGE_BYTES)
        and disk_usage().free + freed >= own
    )


def make_room(
    owner, needed: int, keep: str = "", field: str = "videos", team=None, new_job: bool = True, credit: int = 0
) -> None:
    """admit's step 1: Refused (429, 507) unless the owner may start one more job (if `new_job`) and `needed`
    bytes fit, after evicting the owner's own and the team's evictable finished jobs, oldest first, as far as
    needed (never the job `keep`, whose uploads are being reused). When evicting every one of them would
    not be enough, none is evicted. `credit`: see fits()."""
    if new_job:
        check_active_jobs(owner, field)
    if fits(needed, owner, team=team, credit=credit):
        return
    candidates = _evictable(owner, keep, team, needed - credit)
    if not fits(needed, owner, without=[job.pk for job in candidates], team=team, credit=credit):
        raise no_room(owner, needed, field, team)  # before anything goes: evicting all of them would not be enough
    for job in candidates:
        job_id = job.pk  # gone from the instance once it is deleted
        if evict_job(job):
            logger.info("job %s: evicted to make room for new work of %s (team %s)", job_id, owner, team)
        if fits(needed, owner, team=team, credit=credit):
            return
    raise no_room(owner, needed, field, team)


def refuse_early(owner, upload_bytes: int, field: str = "videos") -> None:
    """Before an upload's body is read: Refused when the owner could not be admitted whatever the files are,
    with too many active jobs (429), or without room for `upload_bytes` even after evicting every one of
    their evictable jobs (507). Evicts nothing: make_room does, once the upload is probed."""
    check_active_jobs(owner, field)
    if fits(upload_bytes, owner):
        return
    if not fits(upload_bytes, owner, without=[job.pk for job in _evictable(owner, needed=upload_bytes)]):
        raise no_room(owner, upload_bytes, field)


def _evictable(owner, keep: str = "", team=None, needed: int = 0) -> list[Job]:
    """The finished jobs that admission may evict for the owner's new work in `team`, oldest first: the team's
    (never another team's); only the owner's own among them while the owner's quota is what is short, since
    a teammate's job frees none of it. Without a team: the owner's own."""
    whose = Q(owner=owner) if team is None else Q(team=team)
    if team is not None and storage_used(owner) + needed > settings.USER_STORAGE_BYTES:
        whose &= Q(owner=owner)
    return list(evictable_jobs().filter(whose).exclude(pk=keep))


@contextmanager
def admit(
    owner,
    needed: int,
    *,
    team=None,
    keep: str = "",
    field: str = "videos",
    before_lock: Callable[[], None] | None = None,
    new_job: bool = True,
    credit: int = 0,
) -> Iterator[None]:
    """The admission of new work of `needed` bytes for `owner` in `team`: Refused (429, 507) or a `with`
    block, inside the admission lock, in which the caller saves its rows and their reservation. `keep`: a
    job eviction must not take (whose uploads are being reused). `before_lock`: the caller's file writes,
    once there is room for them and before the lock (writing is slow; the lock is short). `new_job`: False
    for room alone (a resumable upload), which the active-job limit does not concern. `credit`: see fits()."""
    make_room(owner, needed, keep, field, team, new_job, credit)
    if before_lock is not None:
        before_lock()
    with locks.admission_lock():
        if new_job:
            check_active_jobs(owner, field)
        if not fits(needed, owner, team=team, credit=credit):
            raise no_room(owner, needed, field, team)
        yield


def no_room(owner, needed: int, field: str = "videos", team=None) -> Refused:
    """507, naming what is short: the owner's quota (with what they use), the team's, or the storage shared
    by everyone."""
    used = storage_used(owner)
    team_used = storage_used(team=team) if team is not None else 0
    if team is not None and team_used + needed > settings.TEAM_STORAGE_BYTES:
        quota = settings.TEAM_STORAGE_BYTES
        message = (
            f"over the storage quota of the team {team}: this job needs up to {filesizeformat(needed)} "
            f"({needed} bytes), and the team already uses {filesizeformat(team_used)} ({team_used} bytes) of "
            f"{filesizeformat(quota)} ({quota} bytes, TEAM_STORAGE_BYTES); delete finished jobs of the team, or "
            "ask for fewer variations or videos"
        )
    elif used + needed > settings.USER_STORAGE_BYTES:
        quota = settings.USER_STORAGE_BYTES
        message = (
            f"over the storage quota of {owner}: this job needs up to {filesizeformat(needed)} ({needed} bytes), "
            f"and {owner} already uses {filesizeformat(used)} ({used} bytes) of {filesizeformat(quota)} "
            f"({quota} bytes, USER_STORAGE_BYTES); delete finished jobs, or ask for fewer variations or videos"
        )
    else:
        message = (
            f"not enough storage for this job: it needs up to {needed} bytes (uploads and variations) and the "
            f"storage cap is {settings.STORAGE_CAP_BYTES} bytes, with running jobs and recently finished ones "
            "kept; wait for running jobs to finish, or ask for fewer variations or videos"
        )
    return Refused(message, status=507, field=field)


# --- accounting ------------------------------------------------------------------------
def disk_usage():
    """The data disk's total, used and free bytes (the storage seam's). Raises OSError when DATA_DIR is missing."""
    return storage.disk.usage()


def _sum(rows, field: str) -> int:
    return rows.aggregate(total=Sum(field))["total"] or 0


def _jobs_of(owner, statuses, team=None) -> models.QuerySet:
    """The jobs in `statuses`: the owner's, the team's, or everyone's when neither is given."""
    jobs = Job.objects.filter(status__in=statuses)
    jobs = jobs if owner is None else jobs.filter(owner=owner)
    return jobs if team is None else jobs.filter(team=team)


def active_bytes(owner=None, team=None) -> int:
    """What queued and processing jobs (the owner's, the team's, or everyone's) hold: each its reservation, or
    what it already uses if that is more.

    Three queries whatever the number of jobs: admission asks this once per eviction.
    """
    jobs = _jobs_of(owner, ACTIVE, team)
    used: dict[str, int] = {}
    for model, size in ((SourceVideo, F("size")), (OutputFile, F("size") + F("thumbnail_size"))):
        per_job = model.objects.filter(job__in=jobs.values("pk")).values("job").annotate(total=Sum(size))
        for row in per_job.order_by():
            used[row["job"]] = used.get(row["job"], 0) + row["total"]
    return sum(max(reservation, used.get(pk, 0)) for pk, reservation in jobs.values_list("pk", "reserved_bytes"))


def storage_used(owner=None, without: Collection[str] = (), team=None) -> int:
    """Bytes job files use or are promised: finished jobs' outputs and kept uploads, and the thumbnails of
    both, plus what active jobs hold, plus the whole length of every resumable upload not yet in a job (a
    user's, not a team's); the owner's jobs only, the team's, or everyone's; as if the finished jobs
    `without` were gone (what evicting them would leave).

    Finished jobs' uploads count once per upload, however many "make more" jobs link it (its upload_key),
    so evicting one of two linked jobs frees nothing of their upload. An active job counts its own as its
    reservation does, so while one runs a linked upload counts again: the figure is then higher than the
    disk's, never lower.
    """
    finished = _jobs_of(owner, TERMINAL, team).exclude(pk__in=list(without))
    outputs = OutputFile.objects.filter(job__in=finished)
    outputs_bytes = _sum(outputs, "size") + _sum(outputs, "thumbnail_size")
    kept = SourceVideo.objects.filter(job__in=finished).exclude(path="").order_by()
    uploads = sum(row["size"] for row in kept.values("upload_key").annotate(size=Max("size")))
    resumable = (
        0 if team is not None else _sum(Upload.objects.filter(**({} if owner is None else {"owner": owner})), "length")
    )
    return outputs_bytes + uploads + _sum(finished, "thumbnail_size") + active_bytes(owner, team) + resumable


def evictable_jobs(now=None) -> models.QuerySet:
    """Finished jobs eviction may delete, oldest first: never one that finished less than MIN_RETENTION_MINUTES
    ago (by the database's clock), whoever asks for the room."""
    kept_after = (now or database_now()) - timedelta(minutes=settings.MIN_RETENTION_MINUTES)
    return Job.objects.filter(status__in=TERMINAL, finished_at__lt=kept_after).order_by("created_at")


def evict_job(job: Job, size: int | None = None) -> bool:
    """Delete a finished job to make room, unless it changed since it was chosen (False: Job.expire_for_eviction
    says why). Its files first, then its rows (storage.delete_job)."""
    if not job.expire_for_eviction():
        return False
    storage.delete_job(job, size)
    return True
