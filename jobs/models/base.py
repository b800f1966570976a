"""What every model module shares: the statuses, the ids, and the database's clock."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.db import connection, models
from django.utils import timezone


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE = (Status.QUEUED, Status.PROCESSING)
TERMINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


MAX_JOB_NAME_LENGTH = 100
MAX_NOTIFY_URL_LENGTH = 2000


# The creative choices of a job (docs/usage.md). jobs.ffmpeg.placement and jobs.ffmpeg.effects render them.
class Format(models.TextChoices):
    SOURCE = "source", "Source (its own shape)"
    STORY = "9:16", "9:16 (Stories, Reels)"
    SQUARE = "1:1", "1:1 (feed)"
    PORTRAIT = "4:5", "4:5 (feed)"
    LANDSCAPE = "16:9", "16:9 (in-stream)"


class Fit(models.TextChoices):
    CROP = "crop", "Crop"
    BLUR = "blur", "Blurred background"
    PAD = "pad", "Plain bands"


class Strength(models.TextChoices):
    SUBTLE = "subtle", "Subtle"
    MEDIUM = "medium", "Medium"
    STRONG = "strong", "Strong"


def default_formats() -> list[str]:
    return [Format.SOURCE.value]


def database_now() -> datetime:
    """The time by the database's clock: the one clock that every machine of a deployment shares, so that
    expiry, eviction and retry decide alike wherever they run, whatever each machine's clock says.
    On SQLite the database lives on this machine: its clock is this one (and time-machine moves it in tests)."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT STATEMENT_TIMESTAMP()")
        return cursor.fetchone()[0]


def new_job_id() -> str:
    """An unguessable id: 128 random bits, URL-safe."""
    return secrets.token_hex(16)


def new_seed() -> int:
    return secrets.randbits(63)
