"""Admitting new work: active jobs per user, the storage cap, the user's quota, and the reservation.

An upload, "make more" and a retry all admit their work the same way:

1. `make_room(owner, needed)`: the cheap check first (MAX_ACTIVE_JOBS_PER_USER),
   then room under the cap and the owner's quota, by evicting the owner's own
   finished jobs, oldest first. Another user's results are never evicted for
   it: only the cleanup evicts across users, when the disk itself is full.
2. The caller writes its files (or links them).
3. `with reserved(owner, needed):` the same checks again, inside the
   admission lock, where no other admission can slip in between; the caller
   saves its rows, and with them the reservation (Job.reserved_bytes), inside.

A job's reservation is a true upper bound of what it can write: every output
is capped by -fs (jobs.ffmpeg.output_bytes_bound), so the cap holds for the
sum of all jobs at every moment.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.template.defaultfilters import filesizeformat

from jobs import ffmpeg, storage
from jobs.models import ACTIVE, Job
from jobs.refusal import Refused

logger = logging.getLogger(__name__)


def output_reservation(duration: float) -> int:
    """What one output of a source of this length may take at most (its file and thumbnail)."""
    return ffmpeg.output_bytes_bound(duration, settings.MAX_FPS)


def job_reservation(uploads: Iterable[tuple[int, float]], variations: int) -> int:
    """What a new job may take at most: its uploads ((size, duration) each), every variation of each at its
    bound, and the job's thumbnail."""
    uploads = list(uploads)
    outputs = sum(output_reservation(duration) for _size, duration in uploads)
    return sum(size for size, _duration in uploads) + variations * outputs + ffmpeg.THUMBNAIL_BYTES_BOUND


def check_active_jobs(owner, field: str = "videos") -> None:
    active = Job.objects.filter(owner=owner, status__in=ACTIVE).count()
    if active >= settings.MAX_ACTIVE_JOBS_PER_USER:
        raise Refused(
            f"you already have {active} jobs queued or running, the most allowed at once "
            f"(MAX_ACTIVE_JOBS_PER_USER={settings.MAX_ACTIVE_JOBS_PER_USER}); wait for one to finish, or cancel one",
            status=429,
            field=field,
        )


def fits(needed: int, owner, without: Collection[str] = ()) -> bool:
    """Do `needed` more bytes fit under the cap, on the disk, and in the owner's quota (once the finished jobs
    `without` are gone)?"""
    used = storage.storage_used(without=without)
    freed = storage.storage_used() - used if without else 0  # an upload another job links frees nothing
    return (
        used + needed <= settings.STORAGE_CAP_BYTES
        and storage.storage_used(owner, without=without) + needed <= settings.USER_STORAGE_BYTES
        and storage.disk_usage().free + freed >= needed
    )


def make_room(owner, needed: int, keep: str = "", field: str = "videos") -> None:
    """Step 1: Refused (429, 507) unless the owner may start one more job and `needed` bytes fit, after
    evicting the owner's own evictable finished jobs, oldest first, as far as needed (never the job `keep`,
    whose uploads are being reused). When evicting every one of them would not be enough, none is evicted."""
    check_active_jobs(owner, field)
    if fits(needed, owner):
        return
    candidates = _evictable(owner, keep)
    if not fits(needed, owner, without=[job.pk for job in candidates]):
        raise no_room(owner, needed, field)  # before anything goes: evicting all of them would not be enough
    for job in candidates:
        job_id = job.pk  # gone from the instance once it is deleted
        if storage.evict_job(job):
            logger.info("job %s: evicted to make room for new work of its owner %s", job_id, owner)
        if fits(needed, owner):
            return
    raise no_room(owner, needed, field)


def refuse_early(owner, upload_bytes: int, field: str = "videos") -> None:
    """Before an upload's body is read: Refused when the owner could not be admitted whatever the files are,
    with too many active jobs (429), or without room for `upload_bytes` even after evicting every one of
    their evictable jobs (507). Evicts nothing: make_room does, once the upload is probed."""
    check_active_jobs(owner, field)
    if fits(upload_bytes, owner):
        return
    if not fits(upload_bytes, owner, without=[job.pk for job in _evictable(owner)]):
        raise no_room(owner, upload_bytes, field)


def _evictable(owner, keep: str = "") -> list[Job]:
    """The owner's finished jobs that admission may evict for the owner's new work, oldest first."""
    return list(storage.evictable_jobs().filter(owner=owner).exclude(pk=keep))


@contextmanager
def reserved(owner, needed: int, field: str = "videos") -> Iterator[None]:
    """Step 3: the checks again, inside the admission lock; the caller saves its rows in the block."""
    with storage.admission_lock():
        check_active_jobs(owner, field)
        if not fits(needed, owner):
            raise no_room(owner, needed, field)
        yield


def no_room(owner, needed: int, field: str = "videos") -> Refused:
    """507, naming what is short: the owner's quota (with what they use), or the storage shared by everyone."""
    used = storage.storage_used(owner)
    if used + needed > settings.USER_STORAGE_BYTES:
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
