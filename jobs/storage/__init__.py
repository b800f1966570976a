"""A job's files: where they live (layout.py), which of them are owned, how they are written and how they go.

Every file of a job lives under JOBS_DIR/<job id>/:

    uploads/NN.video          the uploaded sources (no user text on disk), owned by their SourceVideo rows
                              and kept until the job is deleted: "make more" and "retry" reuse them
    outputs/sNN_vMM.mp4       finished variations, each owned by an OutputFile row
    outputs/sNN_vMM.webp      its thumbnail, owned by the same row
    outputs/sNN_vMM.mp4.A-C.part  a variation FFmpeg is still writing, in the job's run of claim A,
                              by claim C of the source's part (jobs.worker.video_run); sNN_vMM.webp.A-C.part its
                              thumbnail, written whole early in the batch
    thumbnail.webp            the job's
    cancel-requested          the cancel mark, a hint to the job's workers (mark_cancel); owned by no row

This package decides where they live and which are owned; every operation on
them goes through its storage seam (local_disk.py). FFmpeg writes the partials and
the thumbnail to paths it gets from here; jobs.worker.video_run calls
promote() inside the transaction that registers the row. How much room they
take, and who may take more, is jobs.services.quota's business. Why the steps
come in this order: docs/architecture/files.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F

from jobs.models import TERMINAL, Job, OutputFile, SourceVideo, Status
from jobs.models.locks import finished_job_locked, lock_job
from jobs.storage.layout import (
    PARTIAL_SUFFIX,
    THUMBNAIL_NAME,
    _written_by,
    final_path,
    job_folder,
    job_folders,
    output_files,
    output_path,
    output_thumbnail_path,
    outputs_dir,
    partial_path,
    partial_ssim_path,
    partial_thumbnail_path,
    relative_to_job,
    thumbnail_path,
    thumbnail_target,
    upload_path,
    uploads_dir,
)
from jobs.storage.local_disk import disk

logger = logging.getLogger(__name__)


# --- writing ---------------------------------------------------------------------
def create_uploads_dir(job_id: str) -> None:
    """A new job's folder; fails if it exists (job ids are random, so it never should)."""
    disk.make_folder(uploads_dir(job_id))


def store_upload(job_id: str, position: int, chunks: Iterable[bytes]) -> str:
    """Write one uploaded source; returns its path relative to the job folder."""
    relative = _upload_relative(position)
    disk.write(job_folder(job_id) / relative, chunks)
    return relative


def _upload_relative(position: int) -> str:
    return f"uploads/{position:02d}.video"


def create_outputs_dir(job_id: str) -> None:
    disk.make_folder(outputs_dir(job_id), exist_ok=True)


def promote(partial: Path) -> Path:
    """Rename a finished partial to its final name (atomic); returns the final path."""
    final = final_path(partial)
    disk.replace(partial, final)
    return final


def link_upload(source: SourceVideo, job_id: str) -> str:
    """Give another job (its folder's uploads/ made) the same upload as `source`, with no bytes copied:
    a hard link, so either job may be deleted first (a copy where the file system has no link for it).
    Returns its path relative to that job's folder."""
    return link_video(upload_path(source), job_id, source.position)


def link_video(path: Path, job_id: str, position: int) -> str:
    """The file at `path` as the job's video `position` (its uploads/ folder made), by a hard link (a copy
    where the file system has none for it); returns its path relative to the job folder."""
    relative = _upload_relative(position)
    copied_because = disk.link(path, job_folder(job_id) / relative)
    if copied_because:
        logger.warning("job %s: upload %s copied, not linked (%s)", job_id, relative, copied_because)
    return relative


def uploads_present(sources: list[SourceVideo]) -> bool:
    """Are every one of these sources' uploads kept, and still on disk (for reusing them)?"""
    return bool(sources) and all(source.path and disk.is_file(upload_path(source)) for source in sources)


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
    if not disk.is_folder(folder):
        return []
    owned = owned_files(job)
    removed = [path for path in disk.list(folder) if path not in owned]
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
    found = disk.is_file(target)
    job.adopt_thumbnail(target.name if found else "", disk.size(target) if found else 0)


def remove_unowned_top_files(job: Job) -> None:
    """Files beside the uploads and outputs folders that no row owns: FFmpeg's temporary thumbnail, left by
    a process killed while it wrote it."""
    folder = job_folder(job.pk)
    if not disk.is_folder(folder):
        return
    owned = owned_files(job)
    discard(path for path in disk.list(folder) if disk.is_file(path) and path not in owned)


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
            disk.touch(path)
        else:
            disk.touch_later(path)
    except OSError as exc:  # the folder is gone (deleted), or settled already, or the disk refuses
        logger.debug("job %s: cancel mark not touched: %s", job_id, exc)


def unmark_cancel(job_id: str) -> None:
    """Take the mark back (a cancel that did not change the status). Never raises: a mark left behind is
    only a hint, removed with the job's other unowned files."""
    try:
        disk.remove(job_folder(job_id) / CANCEL_MARK)
    except OSError as exc:  # a read-only or failing disk
        logger.warning("job %s: cancel mark not removed: %s", job_id, exc)


def cancel_mark(job_id: str) -> int | None:
    """When the job's cancel mark was last touched (nanoseconds), None when there is none."""
    return disk.touched_at(job_folder(job_id) / CANCEL_MARK)


def prune_empty(job_id: str) -> None:
    """Remove the job's outputs folder and the job folder itself when nothing is left in them."""
    for folder in (outputs_dir(job_id), job_folder(job_id)):
        disk.remove_if_empty(folder)


def remove_folder(job_id: str) -> None:
    """The whole folder, whatever is in it: for a job whose row is gone or never existed."""
    disk.remove_tree_quietly(job_folder(job_id))


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
                remove_unowned_outputs(job, attempt=job.claims, part=part)
            return
        adopt_thumbnail(job)
        remove_unowned_outputs(job)  # under the lock: no run can write here until it is released
        remove_unowned_top_files(job)
        job.close_sources(Status.FAILED if status == Status.FAILED else Status.CANCELLED)
        job.mark_settled(status)


def stale_upload_temp_files(older_than: float) -> list[Path]:
    """Django's spooled upload files (FILE_UPLOAD_TEMP_DIR) last changed before `older_than` (a timestamp):
    left by a web process that died mid-upload. A live upload writes to its file as it goes."""
    return [path for path in disk.list(Path(settings.FILE_UPLOAD_TEMP_DIR)) if disk.changed_before(path, older_than)]


def discard(paths: Iterable[Path]) -> None:
    for path in paths:
        try:
            disk.remove(Path(path))
        except OSError:
            logger.exception("could not delete %s", path)


# --- deleting ----------------------------------------------------------------------
def job_bytes(job: Job) -> int:
    """Bytes a job uses on disk (its folder, walked). A folder that another process removes while it is
    walked (a second DELETE, a worker settling a deleted job) counts for what was seen of it."""
    return disk.size(job_folder(job.pk))


def delete_job(job: Job, size: int | None = None) -> int:
    """Files first, then rows: when the files cannot be removed, the rows stay and the next pass tries again.

    Returns the bytes freed (`size` when the caller measured it already).
    """
    freed = job_bytes(job) if size is None else size
    disk.remove_tree(job_folder(job.pk))
    job_id = job.pk
    with transaction.atomic():
        # Locked before Django gathers the jobs made from it (to unlink them): a "make more" that is
        # committing one waits for this, or this waits for it and then sees it (jobs.services.reuse.make_more).
        lock_job(job_id)
        # Its "make more" jobs lose their origin (SET NULL, which Django does without moving their version).
        Job.objects.filter(origin_id=job_id).update(version=F("version") + 1)
        job.delete()
    logger.info("job %s: deleted with its files (%s bytes)", job_id, freed)
    return freed


__all__ = [
    "CANCEL_MARK",
    "PARTIAL_SUFFIX",
    "THUMBNAIL_NAME",
    "adopt_thumbnail",
    "cancel_mark",
    "create_outputs_dir",
    "create_uploads_dir",
    "delete_job",
    "discard",
    "disk",
    "final_path",
    "job_bytes",
    "job_folder",
    "job_folders",
    "link_upload",
    "mark_cancel",
    "output_files",
    "output_path",
    "output_thumbnail_path",
    "outputs_dir",
    "owned_files",
    "partial_path",
    "partial_ssim_path",
    "partial_thumbnail_path",
    "promote",
    "prune_empty",
    "relative_to_job",
    "remove_folder",
    "remove_unowned_outputs",
    "remove_unowned_top_files",
    "settle_files",
    "stale_upload_temp_files",
    "store_upload",
    "thumbnail_path",
    "thumbnail_target",
    "unmark_cancel",
    "upload_path",
    "uploads_dir",
    "uploads_present",
]
