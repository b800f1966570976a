"""Turning an upload into a queued job: validate everything, then store it.

Nothing is written (no row, no file) until every file and field is valid; a
failure while storing removes what was written.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from jobs import ffmpeg, storage
from jobs.ffmpeg.effects import slowest_speed
from jobs.models import MAX_JOB_NAME_LENGTH, Job, SourceVideo, new_job_id
from jobs.services import quota, resumable, teams
from jobs.services.choices import DEFAULT as DEFAULT_CHOICES
from jobs.services.choices import Choices, check_outputs
from jobs.services.enqueue import enqueue_job
from jobs.services.names import display_name, hidden_characters, name_problem
from jobs.services.refusal import Refused

logger = logging.getLogger(__name__)

ACCEPTED_FORMAT = "mov"  # the MP4/MOV demuxer: "mov" when forced (as the probe does), "mov,mp4,m4a,..." when guessed


@dataclass(frozen=True)
class _Checked:
    upload: UploadedFile
    name: str
    probe: ffmpeg.ProbeResult


def parse_variations(value) -> int:
    maximum = settings.MAX_VARIATIONS
    message = f"variations must be a whole number from 1 to {maximum}"
    if value in (None, ""):
        return settings.DEFAULT_VARIATIONS
    try:
        number = int(str(value).strip())
    except ValueError:
        raise Refused(f"{message}, not {str(value)[:40]!r}", field="variations") from None
    if not 1 <= number <= maximum:
        raise Refused(f"{message}, not {number}", field="variations")
    return number


def parse_name(value) -> str:
    """The job's optional name: spaces tidied; empty means "use the first video's name". Invisible
    characters are refused by the same rule as in file names (names.hidden_characters)."""
    name = unicodedata.normalize("NFC", " ".join(str(value or "").split()))
    if hidden_characters(name):
        raise Refused("name: control characters and invisible formatting characters are not allowed", field="name")
    if len(name) > MAX_JOB_NAME_LENGTH:
        raise Refused(f"name: at most {MAX_JOB_NAME_LENGTH} characters, not {len(name)}", field="name")
    return name


def _check_count(uploads: Sequence[UploadedFile]) -> None:
    if not uploads:
        raise Refused("no videos: send one or more files in the 'videos' field", field="videos")
    if len(uploads) > settings.MAX_FILES:
        raise Refused(f"too many videos: {len(uploads)} sent, at most {settings.MAX_FILES} allowed", field="videos")


def _check(uploads: Sequence[UploadedFile]) -> list[_Checked]:
    taken: set[str] = set()
    checked = []
    started = time.thread_time()  # PROBE_CPU_SECONDS is for the whole request, however many files it has
    for upload in uploads:
        raw = upload.name or ""
        problem = name_problem(raw)
        if problem:
            raise Refused(f"file name {raw[:80]!r} is not allowed: {problem}", field="videos", file=raw)
        name = display_name(raw, taken, len(checked))
        try:
            if upload.size == 0:
                raise Refused(f"{name}: the file is empty", field="videos")
            if upload.size > settings.MAX_UPLOAD_BYTES:
                raise Refused(
                    f"{name}: the file is {upload.size} bytes, over the limit of {settings.MAX_UPLOAD_BYTES} bytes",
                    status=413,
                    field="videos",
                )
            left = settings.PROBE_CPU_SECONDS - (time.thread_time() - started)
            checked.append(_Checked(upload, name, _probe(upload, name, max(left, 0.0))))
        except Refused as exc:
            exc.file = raw
            raise
    return checked


def _probe(upload: UploadedFile, name: str, cpu_seconds: float) -> ffmpeg.ProbeResult:
    source = upload.temporary_file_path() if hasattr(upload, "temporary_file_path") else upload.file
    try:
        upload.seek(0)
        result = ffmpeg.probe(
            source,
            stop_after_seconds=settings.MAX_DURATION_SECONDS,
            max_pixels=settings.MAX_PIXELS,
            max_packets=max_frames(),
            cpu_seconds=cpu_seconds,
        )
    except ffmpeg.ProbeError as exc:
        raise Refused(f"{name}: not a usable video: {exc}", field="videos") from None
    finally:
        upload.seek(0)
    if ACCEPTED_FORMAT not in result.format_name.split(","):
        raise Refused(f"{name}: only MP4 and MOV videos are accepted (this is {result.format_name})", field="videos")
    _check_limits(name, result)
    return result


def max_frames() -> int:
    """The most video frames an allowed upload can have: MAX_DURATION_SECONDS at MAX_FPS (and its rounding)."""
    return int((settings.MAX_FPS + 0.5) * settings.MAX_DURATION_SECONDS) + 1


def _check_limits(name: str, found: ffmpeg.ProbeResult) -> None:
    """The decoded stream against MAX_DURATION_SECONDS, MAX_PIXELS and MAX_FPS; the message names the limit."""
    if found.pixels > settings.MAX_PIXELS:
        raise Refused(
            f"{name}: {found.width}x{found.height} is {found.pixels} pixels, over the limit of "
            f"{settings.MAX_PIXELS} (MAX_PIXELS)",
            field="videos",
        )
    if found.duration > settings.MAX_DURATION_SECONDS:
        raise Refused(
            f"{name}: the video runs longer than the limit of {settings.MAX_DURATION_SECONDS} s (MAX_DURATION_SECONDS)",
            field="videos",
        )
    if found.fps > settings.MAX_FPS + 0.5:  # packet timing rounds: 120.3 is still 120 fps
        raise Refused(
            f"{name}: {found.fps:.0f} frames per second, over the limit of {settings.MAX_FPS} (MAX_FPS)",
            field="videos",
        )


def create_job(
    owner,
    uploads: Sequence[UploadedFile],
    variations,
    name: str | None = None,
    oversize: Sequence[str] = (),
    choices: Choices = DEFAULT_CHOICES,
    team=None,
) -> Job:
    """Validate, store the uploads in a new job folder, create the rows, enqueue the task.

    `oversize` names files the upload handler already dropped for their size. `team`: the id of the team it
    goes to, as sent (jobs.services.teams.team_for_job; unset: the owner's default team). `uploads` may be
    finished resumable uploads (jobs.services.resumable.finished_files): checked the same, linked rather than
    copied, and taken (used once) in the admission that makes the job.
    """
    if oversize:
        raise Refused(
            f"{oversize[0]}: the file is over the limit of {settings.MAX_UPLOAD_BYTES} bytes",
            status=413,
            field="videos",
            file=oversize[0],
        )
    variations_per_video = parse_variations(variations)
    name = parse_name(name)
    team = teams.team_for_job(owner, team)
    _check_count(uploads)
    check_outputs(len(uploads), variations_per_video, choices)  # before any file is probed
    quota.check_active_jobs(owner)  # cheap, before any file is read
    checked = _check(uploads)
    needed = quota.job_reservation(
        [(item.upload.size, item.probe.duration) for item in checked],
        variations_per_video * len(choices.formats),
        slowest_speed(choices.strength),
    )
    job = Job(
        id=new_job_id(),
        owner=owner,
        team=team,
        name=name,
        variations_per_video=variations_per_video,
        **choices.as_fields(),
        enqueued_at=timezone.now(),
        reserved_bytes=needed,
    )
    sources: list[SourceVideo] = []

    def store_uploads() -> None:
        storage.create_uploads_dir(job.pk)
        sources.extend(_store(job, position, item) for position, item in enumerate(checked))

    try:
        # What resumable uploads reserved already counts (not in the team's): the job's reservation takes it over.
        credit = resumable.reserved(uploads)
        with quota.admit(owner, needed, team=team, before_lock=store_uploads, credit=credit):
            resumable.take(owner, uploads)
            job.save(force_insert=True)
            SourceVideo.objects.bulk_create(sources)
            # In this order once the rows are committed: the log tells the creation before the sending.
            transaction.on_commit(
                lambda: logger.info(
                    "job %s: created by %s with %s videos x %s variations",
                    job.pk,
                    owner,
                    len(sources),
                    variations_per_video,
                )
            )
            transaction.on_commit(lambda: enqueue_job(job.pk))
    except BaseException:
        storage.remove_folder(job.pk)
        raise
    return job


def _store(job: Job, position: int, item: _Checked) -> SourceVideo:
    """Copy one upload into the job folder (link a resumable one). The name on disk never contains user text."""
    if isinstance(item.upload, resumable.ReceivedFile):
        relative = resumable.store_in_job(item.upload, job.pk, position)
    else:
        relative = storage.store_upload(job.pk, position, item.upload.chunks())
    return SourceVideo(
        job=job,
        position=position,
        original_name=item.name,
        path=relative,
        size=item.upload.size,
        duration=item.probe.duration,
        width=item.probe.width,
        height=item.probe.height,
        audio_codec=item.probe.audio_codec[:32],
        audio_profile=item.probe.audio_profile[:32],
        audio_channels=item.probe.audio_channels,
        audio_sample_rate=item.probe.audio_sample_rate,
        audio_bounded=item.probe.audio_bounded,
    )
