"""Reusing a finished job's uploads: "make more" (a new job from the same videos), "retry failed videos" and
"finish the rest" of a cancelled job (resume).

Both admit the work like an upload does, with quota.admit(): the per-user
limit on active jobs, room under the storage cap for the expected outputs
(evicting what may be evicted), and a reservation taken under the admission
lock. Neither sends a byte again: "make more" hard-links the uploads into the
new job's folder; a retry runs the same job again. Races:
docs/architecture/files.md ("Reusing uploads").
"""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs import ffmpeg, storage
from jobs.ffmpeg.effects import Effects, effects_for_job, slowest_speed
from jobs.models import (
    ACTIVE,
    MAX_JOB_NAME_LENGTH,
    RETRYABLE,
    Job,
    SourceVideo,
    Status,
    database_now,
    locks,
    new_job_id,
    new_seed,
)
from jobs.services import quota
from jobs.services.choices import Choices, check_outputs
from jobs.services.enqueue import enqueue_job
from jobs.services.names import stem_of
from jobs.services.refusal import Refused
from jobs.services.uploads import parse_variations

logger = logging.getLogger(__name__)


class ReuseError(Refused):
    """The job's uploads cannot be reused now; 409 unless said otherwise."""

    def __init__(self, message: str, status: int = 409, field: str = ""):
        super().__init__(message, status=status, field=field)


def _reusable(job: Job, what: str) -> list[SourceVideo]:
    """The job's sources, when its uploads may be reused for `what`; ReuseError otherwise."""
    if job.status in ACTIVE:
        raise ReuseError(f"this job is still {job.status}: {what} once it has finished")
    if job.expires_at <= database_now():
        raise ReuseError(f"this job has expired: its videos are gone; {what} is no longer possible")
    sources = list(job.sources.order_by("position"))
    if not storage.uploads_present(sources):
        raise ReuseError(f"this job's uploaded videos are no longer kept: upload them again to {what}")
    return sources


def make_more(job: Job, variations, choices: Choices | None = None, by=None) -> Job:
    """A new queued job with the same videos (hard links, no copy) and `variations` new variations of each,
    with `choices` (formats, fit, strength...; the job's own by default).

    It is made by `by` (a teammate; the job's owner when unset), in the job's team. Its seed is drawn again
    until none of its variations has the parameters of one the job made or would make, so every variation of
    the new job differs from the old job's.
    """
    count = parse_variations(variations)
    choices = choices or Choices.of(job)
    sources = _reusable(job, "make more")
    check_outputs(len(sources), count, choices)
    owner = by if by is not None and job.team is not None and job.team.role_of(by) else job.owner
    new = Job(
        id=new_job_id(),
        owner=owner,
        team_id=job.team_id,
        variations_per_video=count,
        seed=_fresh_seed(job, len(sources), count, choices.strength),
        **choices.as_fields(),
        origin=job,
        enqueued_at=timezone.now(),
    )
    quota.check_active_jobs(owner, field="")
    # Reserved as an upload of these videos would be, although the links add no bytes: while it runs, its
    # uploads count in its own figure too (quota.storage_used).
    new.reserved_bytes = quota.job_reservation(
        [(source.size, source.duration) for source in sources], new.outputs_per_video, slowest_speed(choices.strength)
    )
    try:
        copies = _linked_uploads(sources, new)  # before admit: an eviction meanwhile cannot take the bytes
        with quota.admit(owner, new.reserved_bytes, team=job.team, keep=job.pk, field="variations"):
            # Locked, so that a DELETE of the original cannot land between this check and the commit.
            if not locks.lock_job(job.pk):
                raise ReuseError("this job was deleted meanwhile: upload its videos again to make more")
            new.name = copy_name(job)  # under the admission lock: two make-mores at once get "(2)" and "(3)"
            new.save(force_insert=True)
            SourceVideo.objects.bulk_create(copies)
            transaction.on_commit(lambda: _log_and_enqueue(new, f"made from job {job.pk}: {count} more variations"))
    except BaseException:
        storage.remove_folder(new.pk)
        raise
    return new


def _fresh_seed(job: Job, sources: int, variations: int, strength: str) -> int:
    made_by_job = effects_for_job(job.seed, sources, job.variations_per_video, job.strength)
    taken = {effects.key() for effects in made_by_job.values()}
    for made in job.outputs.values_list("effects", flat=True):
        try:
            taken.add(Effects.from_dict(made).key())  # by name: PostgreSQL's jsonb does not keep the keys' order
        except (TypeError, AttributeError):
            continue  # not the parameters of a variation
    while True:  # a clash is about one in 10^13 per pair: this loop runs once
        seed = new_seed()
        if not any(e.key() in taken for e in effects_for_job(seed, sources, variations, strength).values()):
            return seed


def copy_name(job: Job) -> str:
    """The name of a job made from `job`: "Spring sale (2)", then "Spring sale (3)"... (from "Spring sale (2)"
    too): the first number no job of its team is called by, so that two ZIPs never share a name."""
    base = _NUMBERED.sub("", job.name or stem_of(job.title)) or "Job"
    taken = set(Job.objects.filter(team_id=job.team_id, name__startswith=base[:50]).values_list("name", flat=True))
    number = 2
    while True:
        suffix = f" ({number})"
        name = base[: MAX_JOB_NAME_LENGTH - len(suffix)].rstrip() + suffix
        if name not in taken:
            return name
        number += 1


_NUMBERED = re.compile(r" \((\d+)\)$")


def _linked_uploads(sources: list[SourceVideo], new: Job) -> list[SourceVideo]:
    """The new job's folder with every upload linked into it, and its unsaved source rows (the same facts:
    no new probe)."""
    try:
        storage.create_uploads_dir(new.pk)
        paths = [storage.link_upload(source, new.pk) for source in sources]
    except FileNotFoundError:
        raise ReuseError("this job's uploaded videos are no longer kept: upload them again to make more") from None
    except OSError as exc:  # a full disk (even a link needs room for its folder entry), a broken share...
        logger.exception("job %s: its uploads could not be linked into job %s", sources[0].job_id, new.pk)
        raise ReuseError(f"the videos could not be linked into the new job ({exc.strerror})", status=507) from None
    facts = ("original_name", "size", "duration", "width", "height", "audio_codec", "audio_profile", "upload_key")
    return [
        SourceVideo(
            job=new,
            position=source.position,
            path=path,
            audio_channels=source.audio_channels,
            audio_sample_rate=source.audio_sample_rate,
            audio_bounded=source.audio_bounded,
            **{name: getattr(source, name) for name in facts},
        )
        for source, path in zip(sources, paths, strict=True)
    ]


def retry_failed(job: Job) -> Job:
    """Send a completed or failed job back to the queue to run its failed videos again, in the same job.

    Its finished variations stay (a retried video resumes from its own); it completes, or fails, again
    when the retried videos end. Bounded: at most MAX_RETRIES retries per job; its expiry moves to
    JOB_TTL_HOURS from now, but never past created_at + 2 x JOB_TTL_HOURS; and the workers it lost before
    still count against MAX_ATTEMPTS, so a video that crashes workers cannot do so forever.
    """
    if job.status == Status.CANCELLED:
        raise ReuseError("a cancelled job is not retried: finish the rest of it (resume) instead")
    return _reopen(job, RETRYABLE, (Status.FAILED,), "retry", "nothing failed in this job: there is nothing to retry")


def resume_cancelled(job: Job) -> Job:
    """ "Finish the rest": send a cancelled job back to the queue to make only what it had not finished, in
    the same job; its finished variations stay. Bounded as a retry is (retry_failed), and counted as one."""
    if job.status != Status.CANCELLED:
        raise ReuseError(f"only a cancelled job is resumed; this one is {job.status}")
    if job.left_variations == 0:
        raise ReuseError("every variation of this job is finished already")
    videos = (Status.CANCELLED, Status.FAILED)
    return _reopen(job, (Status.CANCELLED,), videos, "resume", "nothing of this job is left to finish")


def _reopen(job: Job, from_statuses, videos, verb: str, nothing_left: str) -> Job:
    """The shared path of a retry and a resume: the bounds, the admission of what is left, and the reopening
    under the job's lock."""
    if job.retries >= settings.MAX_RETRIES:
        raise ReuseError(f"this job was retried or resumed {job.retries} times, the most allowed (MAX_RETRIES)")
    if job.retry_expiry() <= database_now():
        raise ReuseError(f"this job is older than {2 * settings.JOB_TTL_HOURS} hours: it is not run again any more")
    sources = _reusable(job, verb)
    again = [source for source in sources if source.status in videos]
    if not again:
        raise ReuseError(nothing_left)
    left = sum(
        (job.outputs_per_video - source.completed_variations)
        * quota.output_reservation(source.duration / slowest_speed(job.strength))
        for source in again
    ) + (0 if job.thumbnail else ffmpeg.THUMBNAIL_BYTES_BOUND)  # a first run that never wrote one
    admitted = quota.admit(job.owner, left, team=job.team, keep=job.pk, field="")
    with admitted, locks.finished_job_locked(job.pk) as status:
        # Under the job's lock: no settling of its last run can be removing unowned files meanwhile.
        reserved = storage.job_bytes(job) + left
        reopened = job.reopen_for_retry(reserved, from_statuses, videos) if status in from_statuses else None
        if reopened is None:
            raise ReuseError(f"this job is {status or 'gone'} now: nothing to {verb}")
        transaction.on_commit(lambda: _log_and_enqueue(job, f"{verb}: running {reopened} videos again"))
    return Job.objects.filter(pk=job.pk).first() or job  # as it is now (deleted just now: as it was)


def _log_and_enqueue(job: Job, what: str) -> None:
    logger.info("job %s: %s", job.pk, what)
    enqueue_job(job.pk)
