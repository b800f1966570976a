"""The job JSON's ETag: the version the job row keeps (jobs.models.versioning), so that telling an unchanged
job costs one indexed query and no serialisation. It also carries what changes the JSON without the row
changing: the job's place in the queue, and whether it has expired."""

from __future__ import annotations

from django.utils import timezone

from jobs.models import Job, Status


def tag_of(job: Job) -> str:
    """The ETag of the job's JSON, from its row (and, while it is queued, its place: one more query)."""
    ahead = (job.queue_position() or 1) - 1 if job.status == Status.QUEUED else None
    return state_tag(job.pk, job.version, job.status, job.expires_at, ahead)


def state_tag(job_id: str, version: int, status: str, expires_at, ahead: int | None) -> str:
    """The tag of a job's state: its version, its place while queued, whether it has expired."""
    place = f"-q{ahead or 0}" if status == Status.QUEUED else ""
    expired = "-x" if expires_at <= timezone.now() else ""
    return f'"{job_id}-{version}{place}{expired}"'


def matches(request, tag: str) -> bool:
    """Does the request's If-None-Match name `tag` (or any, "*")?"""
    return header_matches(request.headers.get("If-None-Match", ""), tag)


def header_matches(header: str, tag: str) -> bool:
    """Does an If-None-Match header's value name `tag` (or any, "*")? Weak tags compare as strong ones."""
    tags = {item.strip().removeprefix("W/") for item in header.split(",") if item.strip()}
    return "*" in tags or tag in tags


def tags_of(jobs) -> dict[str, str]:
    """job id -> the ETag of its JSON, for the jobs of the queryset `jobs`: one query for their rows, and one
    more for the places of those that are queued (compiling that one costs more than the rest)."""
    rows = list(jobs.values_list("pk", "version", "status", "expires_at"))
    queued = [row[0] for row in rows if row[2] == Status.QUEUED]
    ahead = (
        dict(Job.objects.filter(pk__in=queued).with_queue_position().values_list("pk", "queued_ahead"))
        if queued
        else {}
    )
    return {pk: state_tag(pk, version, status, expires_at, ahead.get(pk)) for pk, version, status, expires_at in rows}
