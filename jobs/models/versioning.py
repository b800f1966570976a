"""Job.version: a number the job row keeps, moved on by every change its JSON shows, so that an unchanged
job is told by one indexed query (the API's ETag, jobs.web.api.views; the event streams, jobs.web.events).

- A job's own UPDATE moves it in the same statement (JobQuerySet.update, Job.save), unless it only
  touches fields the JSON does not show (UNSEEN_JOB_FIELDS: the worker's heartbeat, its fences).
- A change to a job's videos or outputs moves it after that change commits (VersionedChildQuerySet,
  VersionedChild), in a statement of its own: no transaction ever holds a video's row while it waits
  for its job's, which another transaction may hold while it waits for that video (jobs.models.locks
  locks the job first).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models, transaction
from django.db.models import F

# The Job fields a worker or the cleanup changes without anything in the job's JSON changing.
UNSEEN_JOB_FIELDS = frozenset(
    {"heartbeat_at", "settled_at", "progress_at_claim", "claims", "handbacks", "enqueued_at", "reserved_bytes"}
)
# The same for a video: its claims are fencing tokens.
UNSEEN_VIDEO_FIELDS = frozenset({"claims", "lost_claims"})


def with_version(fields: dict) -> dict:
    """A Job UPDATE's fields, with the version moved on unless every field is unseen (or it sets it)."""
    if "version" in fields or set(fields) <= UNSEEN_JOB_FIELDS:
        return fields
    return {**fields, "version": F("version") + 1}


def bump_after_commit(job_ids: Iterable[str]) -> None:
    """Move these jobs' versions on once the current transaction commits (at once outside one)."""
    ids = sorted({job_id for job_id in job_ids if job_id})
    if ids:  # robust: a bump that fails (a locked database) is logged, never raised at what committed
        transaction.on_commit(lambda: _bump(ids), robust=True)


def _bump(ids: list[str]) -> None:
    from jobs.models.job import Job  # the children's module imports this one before Job exists

    Job.objects.filter(pk__in=ids).update(version=F("version") + 1)


class VersionedChildQuerySet(models.QuerySet):
    """The rows of a job's videos or outputs: what changes them moves their jobs' versions on."""

    unseen: frozenset[str] = frozenset()

    def _job_ids(self) -> set[str]:
        return set(self.values_list("job_id", flat=True))

    def update(self, **fields) -> int:
        if set(fields) <= self.unseen:
            return super().update(**fields)
        job_ids = self._job_ids()
        rows = super().update(**fields)
        if rows:
            bump_after_commit(job_ids)
        return rows

    def delete(self):
        job_ids = self._job_ids()
        deleted = super().delete()
        bump_after_commit(job_ids)
        return deleted

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        bump_after_commit(obj.job_id for obj in created)
        return created


class VideoQuerySet(VersionedChildQuerySet):
    unseen = UNSEEN_VIDEO_FIELDS


class VersionedChild(models.Model):
    """A model whose rows belong to a job (a `job` foreign key): saving or deleting one moves its job's version."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        fields = kwargs.get("update_fields")
        if fields is None or not set(fields) <= getattr(type(self).objects, "unseen", frozenset()):
            bump_after_commit([self.job_id])

    def delete(self, *args, **kwargs):
        job_id = self.job_id
        deleted = super().delete(*args, **kwargs)
        bump_after_commit([job_id])
        return deleted


def bump_named_jobs(sender, instance, update_fields=None, **kwargs) -> None:
    """post_save of a Team or a user: the names the job JSON shows (team_name, created_by) may have
    changed, so the jobs that show them move on (not for a login's last_login)."""
    from jobs.models.job import Job
    from jobs.models.team import Team

    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    jobs = Job.objects.filter(team=instance) if isinstance(instance, Team) else Job.objects.filter(owner=instance)
    bump_after_commit(jobs.values_list("pk", flat=True))
