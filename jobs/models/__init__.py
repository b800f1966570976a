"""The app's models (one module each) and the names the rest of the app imports from here."""

from jobs.models.base import (
    ACTIVE,
    MAX_JOB_NAME_LENGTH,
    MAX_NOTIFY_URL_LENGTH,
    TERMINAL,
    Fit,
    Format,
    Status,
    Strength,
    database_now,
    new_job_id,
    new_seed,
)
from jobs.models.batch import Batch
from jobs.models.job import CHOICE_FIELDS, RETRYABLE, Job
from jobs.models.preferences import Preferences
from jobs.models.queries import JobQuerySet
from jobs.models.team import MAX_TEAM_NAME_LENGTH, Membership, Role, Team
from jobs.models.upload import Upload
from jobs.models.video import OutputFile, SourceVideo
from jobs.models.webhook import Delivery, WebhookAttempt, WebhookDelivery
from jobs.models.worker_beat import WorkerBeat

__all__ = [
    "ACTIVE",
    "Batch",
    "Delivery",
    "CHOICE_FIELDS",
    "MAX_JOB_NAME_LENGTH",
    "MAX_NOTIFY_URL_LENGTH",
    "MAX_TEAM_NAME_LENGTH",
    "RETRYABLE",
    "TERMINAL",
    "Fit",
    "Format",
    "Job",
    "JobQuerySet",
    "Membership",
    "OutputFile",
    "Preferences",
    "Role",
    "SourceVideo",
    "Status",
    "Strength",
    "Team",
    "Upload",
    "WebhookAttempt",
    "WebhookDelivery",
    "WorkerBeat",
    "database_now",
    "new_job_id",
    "new_seed",
]
