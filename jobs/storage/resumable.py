"""The files of resumable uploads (jobs.models.Upload): RESUMABLE_DIR/<upload id>, each as long as what has
arrived of it, written only through append() and handed to a job by a hard link."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings

from jobs.storage import link_video  # the package's own (loaded before this module)
from jobs.storage.local_disk import disk


def path_of(upload_id: str) -> Path:
    return settings.RESUMABLE_DIR / upload_id


def create(upload_id: str) -> None:
    """An empty file for a new upload (the folder made on first use)."""
    disk.make_folder(settings.RESUMABLE_DIR, exist_ok=True)
    disk.write(path_of(upload_id), [])


def append(
    upload_id: str, offset: int, chunks: Iterable[bytes], locked: Callable[[], None]
) -> tuple[int, BaseException | None]:
    """Write the chunks from `offset` on, once `locked()` (called with the file's lock held) has not raised;
    returns the bytes now on disk from there, and what stopped the writing early (a dropped connection, a
    full disk, the file removed meanwhile, what `locked()` raised), if anything did. BlockingIOError
    (nothing written) when another request is writing the same upload; FileNotFoundError when it is gone."""
    written = [0]
    try:
        disk.append_at(path_of(upload_id), offset, chunks, written, locked)
    except (BlockingIOError, FileNotFoundError):
        if not written[0]:  # at the lock or the open: nothing was written
            raise
        return written[0], None  # removed while it was written: the caller finds no row to move
    except Exception as exc:  # noqa: BLE001 - whatever it was, the bytes written are kept and counted
        return written[0], exc
    return written[0], None


def link_into_job(upload_id: str, job_id: str, position: int) -> str:
    """The upload as the job's video `position`, with no bytes copied; returns its path relative to the job
    folder. The upload's own file stays until remove()."""
    return link_video(path_of(upload_id), job_id, position)


def remove(upload_id: str) -> None:
    disk.remove_any(path_of(upload_id))


def orphans(known: set[str], older_than_seconds: float) -> list[Path]:
    """Files of uploads with no row (`known`: the ids that have one), untouched for `older_than_seconds`: a
    process that died between a file and its row, or between a job's commit and the file's removal."""
    before = time.time() - older_than_seconds
    return [
        path
        for path in disk.list(settings.RESUMABLE_DIR)
        if path.name not in known and disk.changed_before(path, before)
    ]
