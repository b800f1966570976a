"""A job's files: where they live, which of them are owned, how they go, and how much room they take.

Every file of a job lives under JOBS_DIR/<job id>/:

    uploads/NN.video          the uploaded sources (no user text on disk), owned by their SourceVideo rows
                              and kept until the job is deleted: "make more" and "retry" reuse them
    outputs/sNN_vMM.mp4       finished variations, each owned by an OutputFile row
    outputs/sNN_vMM.webp      its thumbnail, owned by the same row
    outputs/sNN_vMM.mp4.A-C.part  a variation FFmpeg is still writing, in the run of attempt A,
                              by claim C of the source's part (jobs.parts); sNN_vMM.webp.A-C.part its
                              thumbnail, written whole early in the batch
    thumbnail.webp            the job's
    cancel-requested          the cancel mark, a hint to the job's workers (mark_cancel); owned by no row

This module decides where they live and which are owned, and it is the one
place that stores, renames, measures and removes them. FFmpeg writes the
partials and the thumbnail to paths it gets from here; the processor calls
promote() inside the transaction that registers the row. Why the steps come
in this order: docs/architecture.md ("Files").
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from jobs.models import ACTIVE, TERMINAL, Job, OutputFile, SourceVideo, Status, database_now

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".part"
ADMISSION_LOCK_KEY = 7_302_001  # any constant: the advisory lock that serialises upload admission
THUMBNAIL_NAME = "thumbnail.webp"


# --- layout ----------------------------------------------------------------------
def job_folder(job_id: str) -> Path:
    return settings.JOBS_DIR / job_id


def uploads_dir(job_id: str) -> Path:
    return job_folder(job_id) / "uploads"


def outputs_dir(job_id: str) -> Path:
    return job_folder(job_id) / "outputs"


def upload_path(source: SourceVideo) -> Path:
    return job_folder(source.job_id) / source.path


def output_path(output: OutputFile) -> Path:
    return job_folder(output.job_id) / output.path


def output_thumbnail_path(output: OutputFile) -> Path | None:
    return job_folder(output.job_id) / output.thumbnail if output.thumbnail else None


def output_files(output: OutputFile) -> list[Path]:
    """The files an OutputFile row owns: the variation and its thumbnail."""
    thumbnail = output_thumbnail_path(output)
    return [output_path(output), *([thumbnail] if thumbnail else [])]


def thumbnail_path(job: Job) -> Path | None:
    return job_folder(job.pk) / job.thumbnail if job.thumbnail else None


def partial_path(job_id: str, source_position: int, index: int, attempt: int, claim: int = 0) -> Path:
    """Where claim `claim` of the source's part, in the run of `attempt`, writes a variation;
    register_output renames it to its final name.

    Both are in the name so that removing one run's (or one claim's) partials never touches another's.
    """
    return _partial(job_id, source_position, index, attempt, claim, "mp4")


def partial_thumbnail_path(job_id: str, source_position: int, index: int, attempt: int, claim: int = 0) -> Path:
    """Where the same claim writes the variation's thumbnail; register_output renames it with the variation."""
    return _partial(job_id, source_position, index, attempt, claim, "webp")


def _partial(job_id: str, source_position: int, index: int, attempt: int, claim: int, extension: str) -> Path:
    name = f"s{source_position:02d}_v{index + 1:02d}.{extension}.{_run_token(attempt, claim)}{PARTIAL_SUFFIX}"
    return outputs_dir(job_id) / name


def _run_token(attempt: int, claim: int) -> str:
    """ "A-C" in a partial's name: the run's attempt and the part's claim."""
    return f"{attempt}-{claim}"


def _written_by(path: Path, attempt: int, part: tuple[int, int] | None) -> bool:
    """Is `path` a partial of the run of `attempt` (with `part` = (position, claim): of that claim only)?
    A thumbnail partial's temporary (image2's atomic_writing, `....part.tmp`) counts as that partial."""
    name = path.name.removesuffix(".tmp")
    if not name.endswith(PARTIAL_SUFFIX):
        return False
    token = name[: -len(PARTIAL_SUFFIX)].rsplit(".", 1)[-1]
    if part is None:
        return token.split("-", 1)[0] == str(attempt)  # whatever the claim
    position, claim = part
    return path.name.startswith(f"s{position:02d}_") and token == _run_token(attempt, claim)


def final_path(partial: Path) -> Path:
    """sNN_vMM.mp4.A-C.part -> sNN_vMM.mp4 (and sNN_vMM.webp.A-C.part -> sNN_vMM.webp)"""
    return partial.with_name(partial.name[: -len(PARTIAL_SUFFIX)].rsplit(".", 1)[0])


def thumbnail_target(job_id: str) -> Path:
    """Where the thumbnail is written; Job.thumbnail then names it relative to the job folder."""
    return job_folder(job_id) / THUMBNAIL_NAME


def job_folders() -> list[Path]:
    """Every entry of JOBS_DIR: job folders, and whatever else landed there (the orphan sweep judges)."""
    return list(settings.JOBS_DIR.iterdir())


def relative_to_job(job_id: str, path: Path) -> str:
    return str(path.relative_to(job_folder(job_id)))


# --- writing ---------------------------------------------------------------------
def create_uploads_dir(job_id: str) -> None:
    """A new job's folder; fails if it exists (job ids are random, so it never should)."""
    uploads_dir(job_id).mkdir(parents=True)


def store_upload(job_id: str, position: int, chunks: Iterable[bytes]) -> str:
    """Write one uploaded source; returns its path relative to the job folder."""
    relative = f"uploads/{position:02d}.video"
    with open(job_folder(job_id) / relative, "wb") as target:
        for chunk in chunks:
            target.write(chunk)
    return relative


def create_outputs_dir(job_id: str) -> None:
    outputs_dir(job_id).mkdir(parents=True, exist_ok=True)


def promote(partial: Path) -> Path:
    """Rename a finished partial to its final name (atomic); returns the final path."""
    final = final_path(partial)
    os.replace(partial, final)
    return final


# A file system that has no hard links, or no more for this file: the upload is copied instead.
NO_LINK_ERRORS = (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)


def link_upload(source: SourceVideo, job_id: str) -> str:
    """Give another job (its folder's uploads/ made) the same upload as `source`, with no bytes copied:
    a hard link, so either job may be deleted first (a copy where the file system has no link for it).
    Returns its path relative to that job's folder."""
    relative = f"uploads/{source.position:02d}.video"
    target = job_folder(job_id) / relative
    try:
        os.link(upload_path(source), target)
    except OSError as exc:
        if exc.errno not in NO_LINK_ERRORS:
            raise
        logger.warning("job %s: upload %s copied, not linked (%s)", job_id, relative, exc.strerror)
        shutil.copyfile(upload_path(source), target)
    return relative


def uploads_present(sources: list[SourceVideo]) -> bool:
    """Are every one of these sources' uploads kept, and still on disk (for reusing them)?"""
    return bool(sources) and all(source.path and upload_path(source).is_file() for source in sources)


# --- owned files and settling ------------------------------------------------------
def owned_files(job: Job) -> set[Path]:
    """The files rows own: every registered output and its thumbnail, the uploads, and the job's thumbnail."""
    rows = OutputFile.objects.filter(job=job).values_list("path", "thumbnail")
    owned = {job_folder(job.pk) / path for paths in rows for path in paths if path}
    uploads = SourceVideo.objects.filter(job=job).exclude(path="").values_list("path", flat=True)
    owned |= {job_folder(job.pk) / path for path in uploads}
    thumbnail = thumbnail_path(job)
    if thumbnail:
        owned.add(thumbnail)
    return owned


def remove_unowned_outputs(job: Job, attempt: int | None = None, part: tuple[int, int] | None = None) -> list[Path]:
    """Delete the files in the job's outputs folder that no OutputFile row owns.

    With `attempt`, only that run's partial files: another run may be writing its own right now. With
    `part` too, (source position, claim): only that claim's, as other parts of the run may be writing.
    """
    folder = outputs_dir(job.pk)
    if not folder.is_dir():
        return []
    owned = owned_files(job)
    removed = [path for path in folder.iterdir() if path not in owned]
    if attempt is not None:
        removed = [path for path in removed if _written_by(path, attempt, part)]
    discard(removed)
    if removed:
        logger.info("job %s: removed %s unfinished files", job.pk, len(removed))
    return removed


def adopt_thumbnail(job: Job) -> None:
    """The thumbnail is one more output of the first batch, written whole (renamed into place) before its
    run names it on the job; a run cancelled in between leaves it unnamed. It is the job's all the same."""
    target = thumbnail_target(job.pk)
    if target.exists():
        Job.objects.filter(pk=job.pk, thumbnail="").update(thumbnail=target.name, thumbnail_size=path_bytes(target))
    job.thumbnail = Job.objects.filter(pk=job.pk).values_list("thumbnail", flat=True).first() or ""  # as it is now


def remove_unowned_top_files(job: Job) -> None:
    """Files beside the uploads and outputs folders that no row owns: FFmpeg's temporary thumbnail, left by
    a process killed while it wrote it."""
    folder = job_folder(job.pk)
    if not folder.is_dir():
        return
    owned = owned_files(job)
    discard(path for path in folder.iterdir() if path.is_file() and path not in owned)


CANCEL_MARK = "cancel-requested"


def mark_cancel(job_id: str, create: bool = True) -> None:
    """Touch the job's cancel mark (`create=False`: only when it is still there, and always to a later
    time, however coarse the file system's clock). Its workers look at it between their queries, and a mark
    touched since they last asked makes them ask the database at once: a cancel stops FFmpeg a query
    interval sooner. Only a hint, never the decision: the status is. The mark is a file no row owns, so the
    settle of the ended job (or the orphan sweep) removes it. Never raises: the query still sees the cancel."""
    path = job_folder(job_id) / CANCEL_MARK
    try:
        if create:
            path.touch()
        else:
            later = max(time.time_ns(), path.stat().st_mtime_ns + 1)
            os.utime(path, ns=(later, later))
    except OSError as exc:  # the folder is gone (deleted), or settled already, or the disk refuses
        logger.debug("job %s: cancel mark not touched: %s", job_id, exc)


def unmark_cancel(job_id: str) -> None:
    """Take the mark back (a cancel that did not change the status). Never raises: a mark left behind is
    only a hint, removed with the job's other unowned files."""
    try:
        (job_folder(job_id) / CANCEL_MARK).unlink(missing_ok=True)
    except OSError as exc:  # a read-only or failing disk
        logger.warning("job %s: cancel mark not removed: %s", job_id, exc)


def cancel_mark(job_id: str) -> int | None:
    """When the job's cancel mark was last touched (nanoseconds), None when there is none."""
    try:
        return os.stat(job_folder(job_id) / CANCEL_MARK).st_mtime_ns
    except OSError:
        return None


def prune_empty(job_id: str) -> None:
    """Remove the job's outputs folder and the job folder itself when nothing is left in them."""
    for folder in (outputs_dir(job_id), job_folder(job_id)):
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            pass


def remove_folder(job_id: str) -> None:
    """The whole folder, whatever is in it: for a job whose row is gone or never existed."""
    shutil.rmtree(job_folder(job_id), ignore_errors=True)


@contextmanager
def finished_job_locked(job_id: str) -> Iterator[str | None]:
    """A transaction holding the job's row; yields its status as of the lock (None when the row is gone).

    Whatever removes the files no row owns in a finished job does it inside
    this, after seeing a terminal status here: a retry (jobs.reuse) takes the
    same lock to send the job back to the queue, so no new run can write,
    rename a file into place or register a row in the folder meanwhile.
    PostgreSQL: the row's lock; SQLite: the IMMEDIATE transaction's write lock.
    """
    with transaction.atomic():
        yield Job.objects.select_for_update().filter(pk=job_id).values_list("status", flat=True).first()


def settle_files(job: Job, part: tuple[int, int] | None = None) -> None:
    """After a worker's share of a run: the partial files of its part go (`part` = (position, claim)); once the
    job is terminal, every file no row owns goes. The uploads stay, until the job is deleted.

    While the job runs, nothing else is touched: the run's other parts may be
    writing their own partials right now. A job deleted while it ran loses its
    whole folder. Sources still marked
    active take the job's final status and a progress that matches what
    finished (a discarded partial batch no longer counts). The job is then
    marked settled (`settled_at`).
    """
    with finished_job_locked(job.pk) as status:
        if status is None:
            remove_folder(job.pk)
            return
        if status not in TERMINAL:
            # Interrupted (a timeout, a hand-back), taken over, or retried: only this part's partials go.
            # Another part, or another run, may be writing its own.
            if part is not None:
                remove_unowned_outputs(job, attempt=job.attempts, part=part)
            return
        adopt_thumbnail(job)
        remove_unowned_outputs(job)  # under the lock: no run can write here until it is released
        remove_unowned_top_files(job)
        job.close_sources(Status.FAILED if status == Status.FAILED else Status.CANCELLED)
        Job.objects.filter(pk=job.pk, status=status).update(settled_at=timezone.now())


def stale_upload_temp_files(older_than: float) -> list[Path]:
    """Django's spooled upload files (FILE_UPLOAD_TEMP_DIR) last changed before `older_than` (a timestamp):
    left by a web process that died mid-upload. A live upload writes to its file as it goes."""
    folder = Path(settings.FILE_UPLOAD_TEMP_DIR)
    if not folder.is_dir():
        return []
    stale = []
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < older_than:
                stale.append(path)
        except FileNotFoundError:
            continue  # its request finished meanwhile
    return stale


def remove_path(path: Path) -> None:
    """One file, link or folder (with its contents); raises when it cannot (gone already is fine)."""
    if path.is_dir() and not path.is_symlink():
        _remove_tree(path)
    else:
        path.unlink(missing_ok=True)


def _remove_tree(folder: Path, tries: int = 3) -> None:
    """rmtree that lets another process remove parts of the tree (or all of it) at the same time, and
    add a file (an FFmpeg being stopped writes the thumbnail it was making), but still raises when
    something cannot be removed."""

    def vanished_is_fine(function, path, exc_info):
        if not issubclass(exc_info[0], FileNotFoundError):
            raise exc_info[1]

    for attempt in range(1, tries + 1):
        try:
            shutil.rmtree(folder, onerror=vanished_is_fine)
            return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY or attempt == tries:
                raise
            logger.info("%s: a file appeared while it was removed; removing it again", folder)


def discard(paths: Iterable[Path]) -> None:
    for path in paths:
        try:
            Path(path).unlink(missing_ok=True)
        except OSError:
            logger.exception("could not delete %s", path)


# --- deleting ----------------------------------------------------------------------
def job_bytes(job: Job) -> int:
    """Bytes a job uses on disk (its folder, walked). A folder that another process removes while it is
    walked (a second DELETE, a worker settling a deleted job) counts for what was seen of it."""
    return path_bytes(job_folder(job.pk))


def path_bytes(path: Path) -> int:
    """Bytes of a file, or of the files under a folder; what vanishes meanwhile counts as 0."""
    try:
        status = os.lstat(path)
    except OSError:
        return 0
    if not stat.S_ISDIR(status.st_mode):
        return status.st_size if stat.S_ISREG(status.st_mode) else 0
    total = 0
    for root, _folders, files in os.walk(path):  # os.walk skips what vanishes; rglob raises
        for name in files:
            try:
                status = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(status.st_mode):
                total += status.st_size
    return total


def delete_job(job: Job, size: int | None = None) -> int:
    """Files first, then rows: when the files cannot be removed, the rows stay and the next pass tries again.

    Returns the bytes freed (`size` when the caller measured it already).
    """
    freed = job_bytes(job) if size is None else size
    _remove_tree(job_folder(job.pk))
    job_id = job.pk
    with transaction.atomic():
        # Locked before Django gathers the jobs made from it (to unlink them): a "make more" that is
        # committing one waits for this, or this waits for it and then sees it (jobs.reuse.make_more).
        Job.objects.select_for_update().filter(pk=job_id).exists()
        job.delete()
    logger.info("job %s: deleted with its files (%s bytes)", job_id, freed)
    return freed


# --- room ----------------------------------------------------------------------------
def disk_usage():
    """shutil.disk_usage of the data disk: the one place it is read. Raises OSError when DATA_DIR is missing."""
    return shutil.disk_usage(settings.DATA_DIR)


def _sum(rows, field: str) -> int:
    return rows.aggregate(total=Sum(field))["total"] or 0


def _jobs_of(owner, statuses) -> models.QuerySet:
    """The jobs in `statuses`: the owner's, or everyone's when `owner` is None."""
    jobs = Job.objects.filter(status__in=statuses)
    return jobs if owner is None else jobs.filter(owner=owner)


def active_bytes(owner=None) -> int:
    """What queued and processing jobs (the owner's, or everyone's) hold: each its reservation, or what it
    already uses if that is more.

    Three queries whatever the number of jobs: admission asks this once per eviction.
    """
    jobs = _jobs_of(owner, ACTIVE)
    used: dict[str, int] = {}
    for model, size in ((SourceVideo, F("size")), (OutputFile, F("size") + F("thumbnail_size"))):
        per_job = model.objects.filter(job__in=jobs.values("pk")).values("job").annotate(total=Sum(size))
        for row in per_job.order_by():
            used[row["job"]] = used.get(row["job"], 0) + row["total"]
    return sum(max(reservation, used.get(pk, 0)) for pk, reservation in jobs.values_list("pk", "reserved_bytes"))


def storage_used(owner=None, without: Collection[str] = ()) -> int:
    """Bytes job files use or are promised: finished jobs' outputs and kept uploads, and the thumbnails of
    both, plus what active jobs hold; the owner's jobs only, or everyone's; as if the finished jobs `without`
    were gone (what evicting them would leave).

    Finished jobs' uploads count once per upload, however many "make more" jobs link it (its upload_key),
    so evicting one of two linked jobs frees nothing of their upload. An active job counts its own as its
    reservation does, so while one runs a linked upload counts again: the figure is then higher than the
    disk's, never lower.
    """
    finished = _jobs_of(owner, TERMINAL).exclude(pk__in=list(without))
    outputs = OutputFile.objects.filter(job__in=finished)
    outputs_bytes = _sum(outputs, "size") + _sum(outputs, "thumbnail_size")
    kept = SourceVideo.objects.filter(job__in=finished).exclude(path="").order_by()
    uploads = sum(row["size"] for row in kept.values("upload_key").annotate(size=Max("size")))
    return outputs_bytes + uploads + _sum(finished, "thumbnail_size") + active_bytes(owner)


def evictable_jobs(now=None) -> models.QuerySet:
    """Finished jobs eviction may delete, oldest first: never one that finished less than MIN_RETENTION_MINUTES
    ago (by the database's clock), whoever asks for the room."""
    kept_after = (now or database_now()) - timedelta(minutes=settings.MIN_RETENTION_MINUTES)
    return Job.objects.filter(status__in=TERMINAL, finished_at__lt=kept_after).order_by("created_at")


def evict_job(job: Job, size: int | None = None) -> bool:
    """Delete a finished job to make room, unless it changed since it was chosen (False): a retry sent it
    back to the queue, or it was retried and finished again (a new finished_at).

    The conditional UPDATE expires it first: a retry asks for a finished job that has not expired, in a
    conditional UPDATE of its own, so of the two exactly one wins.
    """
    chosen = Job.objects.filter(pk=job.pk, status__in=TERMINAL, finished_at=job.finished_at)
    if not chosen.update(expires_at=database_now()):
        return False
    delete_job(job, size)
    return True


@contextmanager
def admission_lock():
    """A transaction in which one upload at a time checks the room and reserves it.

    SQLite's IMMEDIATE transactions already take the write lock at BEGIN; PostgreSQL takes a
    transaction-level advisory lock, so two uploads that each fit alone cannot both be admitted.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADMISSION_LOCK_KEY])
        yield
