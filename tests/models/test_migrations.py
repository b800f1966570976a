"""Data migrations, run for real: migrate back, make rows with the old schema, migrate forward."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE_SETTLED_AT = [("jobs", "0008_output_thumbnail")]
SETTLED_AT = [("jobs", "0009_job_settled_at_origin")]
RETRIES = [("jobs", "0010_job_retries_audio_bounded")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_the_latest_schema():
    """The tests after this one see the whole schema again, whatever it migrated back to."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_jobs_from_before_uploads_were_kept(jobs_dir, user, back_to_the_latest_schema):
    apps = _migrate(BEFORE_SETTLED_AT)
    Job = apps.get_model("jobs", "Job")
    now = timezone.now()

    def job(status, **fields):
        return Job.objects.create(
            owner_id=user.pk, status=status, variations_per_video=1, created_at=now, expires_at=now, **fields
        ).pk

    completed, tidied, untidied, running = (
        job("completed", finished_at=now),
        job("cancelled", finished_at=now),
        job("cancelled", finished_at=now),
        job("processing"),
    )
    (jobs_dir / untidied / "uploads").mkdir(parents=True)  # its worker died before it could tidy up
    Source = apps.get_model("jobs", "SourceVideo")
    for job_id in (completed, untidied, running):
        Source.objects.create(
            job_id=job_id, position=0, original_name="a.mp4", path="uploads/00.video", size=10, duration=1,
            width=2, height=2,
        )  # fmt: skip
    for job_id in (untidied, running):
        (jobs_dir / job_id / "uploads").mkdir(parents=True, exist_ok=True)
        (jobs_dir / job_id / "uploads" / "00.video").write_bytes(b"u" * 10)

    apps = _migrate(SETTLED_AT)
    settled = dict(apps.get_model("jobs", "Job").objects.values_list("pk", "settled_at"))
    assert settled == {completed: now, tidied: now, untidied: None, running: None}
    sources = apps.get_model("jobs", "SourceVideo").objects.order_by("job_id")
    kept = {source.job_id: source.path for source in sources}
    assert kept == {completed: "", untidied: "uploads/00.video", running: "uploads/00.video"}  # removed at its end
    assert len({source.upload_key for source in sources}) == 3  # each upload its own


@pytest.mark.django_db(transaction=True)
def test_runs_that_ended_before_the_upgrade_are_not_counted_as_lost(user, back_to_the_latest_schema):
    apps = _migrate(SETTLED_AT)
    Job = apps.get_model("jobs", "Job")
    now = timezone.now()

    def job(status, error="", attempts=1):
        return Job.objects.create(
            owner_id=user.pk, status=status, variations_per_video=1, created_at=now, expires_at=now,
            attempts=attempts, error=error,
        ).pk  # fmt: skip

    finished = job("failed", "Every video failed to process: a.mp4: The video could not be decoded.")
    lost = job("failed", "The worker processing this job stopped 3 times; giving up.", attempts=3)
    never_claimed = job("failed", "expired while queued", attempts=0)
    lost_then_expired = job("failed", "expired while queued", attempts=1)  # requeued after a loss, never claimed
    apps = _migrate(RETRIES)
    handbacks = dict(apps.get_model("jobs", "Job").objects.values_list("pk", "handbacks"))
    assert handbacks == {finished: 1, lost: 0, never_claimed: 0, lost_then_expired: 0}


@pytest.mark.django_db(transaction=True)
def test_thumbnails_already_on_disk_are_counted_from_the_upgrade_on(jobs_dir, user, back_to_the_latest_schema):
    apps = _migrate(SETTLED_AT)
    now = timezone.now()
    job = apps.get_model("jobs", "Job").objects.create(
        owner_id=user.pk, status="completed", variations_per_video=1, created_at=now, expires_at=now,
        thumbnail="thumbnail.webp",
    )  # fmt: skip
    source = apps.get_model("jobs", "SourceVideo").objects.create(
        job_id=job.pk, position=0, original_name="a.mp4", size=10, duration=1, width=2, height=2
    )
    apps.get_model("jobs", "OutputFile").objects.create(
        job_id=job.pk, source_id=source.pk, variation_index=0, path="outputs/s00_v01.mp4", size=5, effects={},
        thumbnail="outputs/s00_v01.webp",
    )  # fmt: skip
    (jobs_dir / job.pk / "outputs").mkdir(parents=True)
    (jobs_dir / job.pk / "thumbnail.webp").write_bytes(b"t" * 1234)
    (jobs_dir / job.pk / "outputs" / "s00_v01.webp").write_bytes(b"t" * 567)
    apps = _migrate(RETRIES)
    assert apps.get_model("jobs", "Job").objects.get(pk=job.pk).thumbnail_size == 1234
    assert apps.get_model("jobs", "OutputFile").objects.get().thumbnail_size == 567


@pytest.mark.django_db(transaction=True)
def test_a_videos_lost_claims_are_kept_when_its_parts_become_batches(user, back_to_the_latest_schema):
    apps = _migrate([("jobs", "0012_creative_choices")])
    Job, Source = apps.get_model("jobs", "Job"), apps.get_model("jobs", "SourceVideo")
    now = timezone.now()
    job = Job.objects.create(
        owner_id=user.pk, status="processing", variations_per_video=1, created_at=now, expires_at=now
    )

    def video(position, status, claims, handbacks):
        return Source.objects.create(
            job=job, position=position, original_name=f"{position}.mp4", size=1, duration=1, width=2, height=2,
            status=status, claims=claims, handbacks=handbacks,
        ).pk  # fmt: skip

    running = video(0, "processing", claims=3, handbacks=1)  # one lost, one handed back, one running
    requeued = video(1, "queued", claims=2, handbacks=0)  # two lost
    done = video(2, "completed", claims=1, handbacks=0)
    apps = _migrate([("jobs", "0013_run_batches")])
    lost = dict(apps.get_model("jobs", "SourceVideo").objects.values_list("pk", "lost_claims"))
    assert lost == {running: 1, requeued: 2, done: 0}


@pytest.mark.django_db(transaction=True)
def test_existing_jobs_go_to_their_owners_personal_teams(user, other_user, back_to_the_latest_schema):
    apps = _migrate([("jobs", "0013_run_batches")])
    Job = apps.get_model("jobs", "Job")
    now = timezone.now()
    made = {
        who.pk: [
            Job.objects.create(owner_id=who.pk, variations_per_video=1, created_at=now, expires_at=now).pk
            for _ in range(count)
        ]
        for who, count in ((user, 2), (other_user, 1))
    }
    apps = _migrate([("jobs", "0014_teams")])
    Job, Team = apps.get_model("jobs", "Job"), apps.get_model("jobs", "Team")
    for who in (user, other_user):
        team = Team.objects.get(personal_for_id=who.pk)
        assert team.name == who.username
        assert list(team.memberships.values_list("user_id", "role")) == [(who.pk, "manager")]
        assert set(Job.objects.filter(team=team).values_list("pk", flat=True)) == set(made[who.pk])
