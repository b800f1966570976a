"""Resumable uploads (tus 1.0 at /api/uploads/): opening one, receiving its bytes, and handing finished ones
to a new job (jobs.services.uploads.create_job), each exactly once.

An upload's Upload-Length is reserved against the storage cap and the owner's quota when it is opened
(quota.storage_used counts every Upload row), so what arrives later always has room.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs.models import Upload
from jobs.services import quota
from jobs.services.names import name_problem
from jobs.services.refusal import Refused, not_stored
from jobs.storage import disk, resumable

logger = logging.getLogger(__name__)

UPLOAD_ID = re.compile(r"[0-9a-f]{32}")  # jobs.models.base.new_job_id


class Busy(Exception):
    """Another request is writing this upload now."""


class BodyEnded(Exception):
    """Raised by a request's chunks when the body stops short of its Content-Length (the connection dropped)."""


def open_upload(owner, length: int, filename: str) -> Upload:
    """A new upload of `length` bytes named `filename`, with its room reserved: Refused for a bad name or
    length (400, 413), too many open uploads (429) or no room (507)."""
    if problem := name_problem(filename):
        raise Refused(f"file name {filename[:80]!r} is not allowed: {problem}", field="Upload-Metadata")
    if length <= 0:
        raise Refused("Upload-Length: the file is empty", field="Upload-Length")
    if length > settings.MAX_UPLOAD_BYTES:
        raise Refused(
            f"Upload-Length: {length} bytes is over the limit of {settings.MAX_UPLOAD_BYTES} bytes (Tus-Max-Size)",
            status=413,
            field="Upload-Length",
        )
    upload = Upload(
        owner=owner,
        filename=filename,
        length=length,
        expires_at=timezone.now() + timedelta(hours=settings.UPLOAD_EXPIRY_HOURS),
    )
    _check_open_count(owner)  # cheap, first; and again where no other admission slips in
    with quota.admit(owner, length, field="Upload-Length", new_job=False):
        _check_open_count(owner)
        try:
            resumable.create(upload.pk)
        except OSError as exc:
            raise not_stored(exc, field="Upload-Length") from None
        try:
            upload.save(force_insert=True)
        except BaseException:
            resumable.remove(upload.pk)
            raise
    logger.info("upload %s: opened by %s for %s bytes", upload.pk, owner, length)
    return upload


def _check_open_count(owner) -> None:
    count = Upload.objects.filter(owner=owner).count()
    if count >= settings.MAX_OPEN_UPLOADS_PER_USER:
        raise Refused(
            f"you already have {count} uploads open, the most allowed at once "
            f"(MAX_OPEN_UPLOADS_PER_USER={settings.MAX_OPEN_UPLOADS_PER_USER}); finish or cancel one",
            status=429,
            field="Upload-Length",
        )


def find(owner, upload_id: str) -> Upload | None:
    """The owner's open upload with this id (None for anyone else's, an expired one or one a job took)."""
    return Upload.objects.open().filter(owner=owner, pk=upload_id).first()


def receive(upload: Upload, offset: int, chunks: Iterable[bytes]) -> Upload:
    """Write what arrives from `offset` (which must be where the upload stands: Refused 409 otherwise) and
    move the offset past every byte written, also when the connection drops or the disk fills midway (then
    the error is raised after the bytes are counted). Busy when another request writes it now."""
    if offset != upload.offset:
        raise Refused(f"Upload-Offset: {offset} is not where this upload stands ({upload.offset})", 409)

    def still_there() -> None:  # with the file locked: a PATCH before this one may have moved it, or a DELETE
        current = Upload.objects.filter(pk=upload.pk).values_list("offset", flat=True).first()
        if current is None:
            raise Refused("this upload is gone", 404)
        if current != offset:
            raise Refused(f"Upload-Offset: {offset} is not where this upload stands ({current})", 409)

    try:
        written, stopped_by = resumable.append(upload.pk, offset, chunks, still_there)
    except BlockingIOError:
        raise Busy from None
    except FileNotFoundError:
        raise Refused("this upload is gone", 404) from None
    if written:
        # Only from where this request started; no row: it went (a DELETE, the expiry) while the bytes came.
        if not Upload.objects.filter(pk=upload.pk, offset=offset).update(offset=F("offset") + written):
            raise Refused("this upload went while its bytes were being sent", 404)
        upload.offset = offset + written
    if stopped_by is None:
        return upload
    logger.info("upload %s: stopped at %s of %s bytes (%r)", upload.pk, upload.offset, upload.length, stopped_by)
    if isinstance(stopped_by, BodyEnded):
        raise Refused("the request body ended before its Content-Length", 400, field="Upload-Offset")
    if isinstance(stopped_by, OSError):  # the disk's (full, gone): not the client's doing
        raise not_stored(stopped_by, field="Upload-Offset")
    raise stopped_by


def terminate(upload: Upload) -> None:
    """The upload and its bytes go (tus termination)."""
    Upload.objects.filter(pk=upload.pk).delete()
    resumable.remove(upload.pk)
    logger.info("upload %s: cancelled by its owner", upload.pk)


# --- handing finished uploads to a job ----------------------------------------------
class ReceivedFile(UploadedFile):
    """A finished upload as a job's video: what jobs.services.uploads checks and stores (its name, size and
    bytes), stored by a hard link rather than a copy."""

    def __init__(self, upload: Upload):
        super().__init__(disk.open(resumable.path_of(upload.pk)), upload.filename, None, upload.length)
        self.upload_id = upload.pk

    def temporary_file_path(self) -> str:
        return str(resumable.path_of(self.upload_id))


def finished_files(owner, upload_ids: Sequence[str]) -> list[ReceivedFile]:
    """The owner's finished uploads, in the order asked, opened: Refused 400 naming `uploads` for an unknown,
    another user's, an unfinished, an expired or a repeated one. The caller closes them."""
    ids = [str(upload_id) for upload_id in upload_ids]
    if not ids or not all(ids):
        raise Refused("uploads: a list of one or more upload ids (the last part of each Location)", field="uploads")
    if len(ids) > settings.MAX_FILES:
        raise Refused(f"too many videos: {len(ids)} sent, at most {settings.MAX_FILES} allowed", field="uploads")
    if len(set(ids)) != len(ids):
        raise Refused("uploads: each upload can be used once", field="uploads")
    wellformed = [upload_id for upload_id in ids if UPLOAD_ID.fullmatch(upload_id)]  # no NUL reaches the database
    found = {upload.pk: upload for upload in Upload.objects.open().filter(owner=owner, pk__in=wellformed)}
    unknown = [upload_id for upload_id in ids if upload_id not in found]
    if unknown:
        raise Refused(f"uploads: no such upload of yours: {', '.join(i[:40] for i in unknown)}", field="uploads")
    unfinished = [upload for upload in found.values() if not upload.is_finished]
    if unfinished:
        listed = ", ".join(f"{u.pk} ({u.offset} of {u.length} bytes)" for u in unfinished)
        raise Refused(f"uploads: not finished yet: {listed}", field="uploads")
    files = []
    try:
        for upload_id in ids:
            files.append(ReceivedFile(found[upload_id]))
    except FileNotFoundError:
        close(files)
        raise Refused("uploads: an upload's bytes are gone; send it again", field="uploads") from None
    return files


def store_in_job(file: ReceivedFile, job_id: str, position: int) -> str:
    """The upload as the job's video `position`, by a hard link; Refused 400 when it went meanwhile (a DELETE,
    the expiry)."""
    try:
        return resumable.link_into_job(file.upload_id, job_id, position)
    except FileNotFoundError:
        raise Refused(f"uploads: {file.upload_id} went while the job was being made", field="uploads") from None


def reserved(files: Sequence[UploadedFile]) -> int:
    """The bytes of these files that their Upload rows already reserve."""
    return sum(file.size for file in files if isinstance(file, ReceivedFile))


def take(owner, files: Sequence[UploadedFile]) -> None:
    """Inside the admission that makes their job: the uploads' rows go (Refused 400 when another request took
    one first), and their files once that commits (the job has its own links to the bytes)."""
    ids = [file.upload_id for file in files if isinstance(file, ReceivedFile)]
    if not ids:
        return
    taken, _ = Upload.objects.filter(owner=owner, pk__in=ids, offset=F("length")).delete()
    if taken != len(ids):
        raise Refused("uploads: another request has just used one of these uploads", field="uploads")
    transaction.on_commit(lambda: [resumable.remove(upload_id) for upload_id in ids])


def close(files: Sequence[UploadedFile]) -> None:
    for file in files:
        file.close()


# --- expiry -----------------------------------------------------------------------
ORPHAN_AGE_SECONDS = 3600


def expirable(now=None) -> bool:
    """Is there an expired upload, or a file no upload owns, for expire() to remove?"""
    known = set(Upload.objects.values_list("pk", flat=True))
    return Upload.objects.filter(expires_at__lte=now or timezone.now()).exists() or bool(
        resumable.orphans(known, ORPHAN_AGE_SECONDS)
    )


def expire(now=None) -> int:
    """Remove uploads past their expiry (files, then rows) and files no row owns; returns how many went."""
    gone = 0
    for upload in Upload.objects.filter(expires_at__lte=now or timezone.now()):
        resumable.remove(upload.pk)
        Upload.objects.filter(pk=upload.pk).delete()
        logger.info("upload %s: expired at %s bytes of %s", upload.pk, upload.offset, upload.length)
        gone += 1
    orphans = resumable.orphans(set(Upload.objects.values_list("pk", flat=True)), ORPHAN_AGE_SECONDS)
    for path in orphans:
        disk.remove(path)
        logger.warning("upload %s: its file had no row; removed", path.name)
    return gone + len(orphans)
