"""Renaming a job: by any member of its team, with the rules of a new job's name."""

from __future__ import annotations

import logging

from jobs.models import Job
from jobs.services.refusal import Refused
from jobs.services.uploads import parse_name

logger = logging.getLogger(__name__)


def rename_job(job: Job, value) -> str:
    """Give the job the name `value` (empty: called after its first video again); returns the name kept.
    400 naming `name` for anything but text within the rules (uploads.parse_name)."""
    if value is not None and not isinstance(value, str):
        raise Refused("name: text, at most 100 characters", field="name")
    name = parse_name(value)
    if not Job.objects.filter(pk=job.pk).update(name=name):
        raise Refused("this job was deleted meanwhile", status=404)
    logger.info("job %s: renamed to %r", job.pk, name)
    job.name = name
    return name
