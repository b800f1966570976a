from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone
from model_bakery import baker

from jobs.models import Job, SourceVideo, Status, database_now


@pytest.fixture
def job(user):
    return baker.make(Job, owner=user, variations_per_video=2)


def test_new_job_is_queued_with_an_unguessable_id_and_expires_after_the_ttl(job, settings):
    assert job.status == Status.QUEUED
    assert re.fullmatch(r"[0-9a-f]{32}", job.pk)
    assert baker.make(Job, owner=job.owner, variations_per_video=1).pk != job.pk
    assert job.expires_at == job.created_at + timedelta(hours=settings.JOB_TTL_HOURS)
    assert job.seed > 0


def test_claim_wins_once(job):
    assert job.claim() is True
    assert job.status == Status.PROCESSING and job.claims == 1 and job.started_at
    assert Job.objects.get(pk=job.pk).claim() is False
    assert Job.objects.get(pk=job.pk).claims == 1


def test_cancelled_queued_job_cannot_be_claimed(job):
    assert job.request_cancel() == Status.QUEUED
    assert job.status == Status.CANCELLED and job.cancelled_at
    assert Job.objects.get(pk=job.pk).claim() is False


@pytest.mark.parametrize("terminal", [Status.COMPLETED, Status.FAILED, Status.CANCELLED])
def test_terminal_states_never_change(job, terminal):
    Job.objects.filter(pk=job.pk).update(status=terminal)
    fresh = Job.objects.get(pk=job.pk)
    assert not fresh.claim()
    assert fresh.request_cancel() == ""
    assert not fresh.finish(Status.COMPLETED)
    assert not fresh.fail("x")
    assert not fresh.hand_back()
    assert not fresh.requeue_lost(timezone.now())
    assert Job.objects.get(pk=job.pk).status == terminal


def test_finish_needs_processing(job):
    assert not job.finish(Status.COMPLETED)
    job.claim()
    assert job.finish(Status.FAILED, error="boom")
    assert Job.objects.get(pk=job.pk).error == "boom"


def test_stale_instance_does_not_overwrite_a_newer_status(job):
    stale = Job.objects.get(pk=job.pk)
    job.claim()
    job.finish(Status.COMPLETED)
    assert stale.status == Status.QUEUED
    assert stale.request_cancel() == ""  # the row count decides, not the instance
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED


def test_expiry_is_judged_by_the_clock(job):
    with time_machine.travel(job.expires_at - timedelta(seconds=1), tick=False):
        assert not job.is_expired
    with time_machine.travel(job.expires_at, tick=False):
        assert job.is_expired
    assert timezone.now() < job.expires_at


def test_visible_to(user, other_user):
    mine = baker.make(Job, owner=user, variations_per_video=1)
    baker.make(Job, owner=other_user, variations_per_video=1)
    assert list(Job.objects.visible_to(user)) == [mine]
    staff = baker.make("auth.User", is_staff=True)
    assert Job.objects.visible_to(staff).count() == 0  # staff alone see nothing extra
    staff.user_permissions.add(Permission.objects.get(codename="view_job"))
    staff = type(staff).objects.get(pk=staff.pk)  # a fresh instance: Django caches permissions
    assert Job.objects.visible_to(staff).count() == 2


def _with_finished(job: Job, finished: int) -> Job:
    baker.make(SourceVideo, job=job, position=0, completed_variations=finished, duration=1, width=2, height=2, size=1)
    return Job.objects.prefetch_related("sources").get(pk=job.pk)


@pytest.mark.parametrize(
    "status, finished, downloadable",
    [
        (Status.QUEUED, 0, False),
        (Status.PROCESSING, 1, False),  # never a ZIP of a job that is still writing
        (Status.COMPLETED, 2, True),
        (Status.CANCELLED, 1, True),  # partial results
        (Status.FAILED, 1, True),
        (Status.CANCELLED, 0, False),  # nothing finished
    ],
)
def test_is_downloadable_is_the_one_rule_for_the_zip(job, status, finished, downloadable):
    Job.objects.filter(pk=job.pk).update(status=status)
    assert _with_finished(job, finished).is_downloadable is downloadable


def test_an_expired_job_is_not_downloadable(job):
    Job.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    job = _with_finished(job, 2)
    with time_machine.travel(job.expires_at, tick=False):
        assert not job.is_downloadable


def test_summary_counts_videos_and_variations(job):
    assert _with_finished(job, 0).summary == "1 video × 2 variations"
    Job.objects.filter(pk=job.pk).update(variations_per_video=1)
    baker.make(SourceVideo, job=job, position=1, duration=1, width=2, height=2, size=1)
    assert Job.objects.get(pk=job.pk).summary == "2 videos × 1 variation"


@pytest.mark.database_clock
def test_fences_read_the_databases_clock(db):
    """Expiry, eviction and retry compare times from one clock for every machine: the database's. On SQLite the
    database is on this machine (its clock is this one); on PostgreSQL the server's clock decides, even when
    this machine's clock is an hour off."""
    with time_machine.travel(timezone.now() - timedelta(hours=1), tick=False):
        machine = timezone.now()
        database = database_now()
    if connection.vendor == "postgresql":
        assert database - machine > timedelta(minutes=59)
    else:
        assert database == machine


@pytest.mark.database_clock
def test_a_retry_by_a_machine_whose_clock_is_behind_still_sees_the_expiry(api, make_job, refused):
    job = make_job(status=Status.FAILED, outputs=1)
    job.sources.update(status=Status.FAILED)
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with time_machine.travel(timezone.now() - timedelta(hours=1), tick=True):
        response = api.post(f"/api/jobs/{job.pk}/retry/")
    if connection.vendor == "postgresql":
        refused(response, 409, "expired")  # by the database's clock: never retried after its expiry
    else:
        assert response.status_code == 200  # one machine, one clock: an hour ago it had not expired yet
