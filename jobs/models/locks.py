"""Every database lock the app takes, in one place: which row or lock, and what it keeps apart.

Each is taken inside a transaction. On PostgreSQL they are row locks (SELECT ... FOR UPDATE) or a
transaction-level advisory lock; on SQLite, the IMMEDIATE transaction already holds the database's write
lock at BEGIN, so every one of them is that lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from jobs.models.job import Job

ADMISSION_LOCK_KEY = 7_302_001  # any constant: the advisory lock that serialises admissions on PostgreSQL


def lock_run(job: Job) -> bool:
    """Inside a transaction: lock the job's row while `job`'s run owns it. False when it no longer does.

    Every change of a video's run state (claim, registration, failure, hand-back,
    recovery) takes this lock first, so they happen one at a time per job, and
    each sees every earlier one's commit (PostgreSQL reads committed rows again
    after the lock).
    """
    return bool(list(job.this_run().select_for_update().values_list("pk", flat=True)))


def lock_job(job_id: str) -> bool:
    """Inside a transaction: lock the job's row, whatever its status. False when the row is gone.

    A delete takes it before Django gathers the jobs made from this one, and "make more" before it commits
    a job made from it: one waits for the other, and then sees it.
    """
    return Job.objects.select_for_update().filter(pk=job_id).exists()


@contextmanager
def finished_job_locked(job_id: str) -> Iterator[str | None]:
    """A transaction holding the job's row; yields its status as of the lock (None when the row is gone).

    Whatever removes the files no row owns in a finished job does it inside
    this, after seeing a terminal status here: a retry takes the same lock to
    send the job back to the queue, so no new run can write, rename a file into
    place or register a row in the folder meanwhile.
    """
    with transaction.atomic():
        yield Job.objects.select_for_update().filter(pk=job_id).values_list("status", flat=True).first()


@contextmanager
def admission_lock() -> Iterator[None]:
    """A transaction in which one admission at a time checks the room and reserves it (quota.admit): two
    uploads that each fit alone cannot both be admitted."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADMISSION_LOCK_KEY])
        yield
