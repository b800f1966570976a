from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from model_bakery import baker

from jobs.models import Job, Status


@pytest.fixture
def job(user):
    return baker.make(Job, owner=user, variations_per_video=2)


def test_new_job_is_queued_with_an_unguessable_id_and_expires_after_the_ttl(job, settings):
    assert job.status == Status.QUEUED
    assert len(job.pk) == 32 and int(job.pk, 16) >= 0
    assert job.expires_at == job.created_at + timedelta(hours=settings.JOB_TTL_HOURS)
    assert job.seed > 0


def test_claim_wins_once(job):
    assert job.claim() is True
    assert job.status == Status.PROCESSING and job.attempts == 1 and job.started_at
    assert Job.objects.get(pk=job.pk).claim() is False
    assert Job.objects.get(pk=job.pk).attempts == 1


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
    assert not fresh.requeue()
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
    assert Job.objects.visible_to(staff).count() == 2
