"""The Job admin: cancel and delete through the shared service functions, storage figures, staff only."""

from __future__ import annotations

from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django_q.models import Schedule
from model_bakery import baker

from jobs import storage
from jobs.models import Job, SourceVideo, Status, WebhookAttempt, WebhookDelivery, WorkerBeat


def test_cancel_selected_on_a_mix_of_running_and_finished_jobs(admin_client, user, post_job):
    queued = post_job(variations=1)
    processing = baker.make(Job, owner=user, variations_per_video=1, status=Status.PROCESSING)
    completed = baker.make(Job, owner=user, variations_per_video=1, status=Status.COMPLETED)
    failed = baker.make(Job, owner=user, variations_per_video=1, status=Status.FAILED)
    response = admin_client.post(
        "/admin/jobs/job/",
        {"action": "cancel_selected", "_selected_action": [queued.pk, processing.pk, completed.pk, failed.pk]},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert messages == ["Cancelled 2 jobs; 2 jobs already finished (completed, failed or cancelled)."]
    statuses = dict(Job.objects.values_list("pk", "status"))
    assert statuses == {
        queued.pk: Status.CANCELLED,
        processing.pk: Status.CANCELLED,
        completed.pk: Status.COMPLETED,
        failed.pk: Status.FAILED,
    }
    # Same path as the API: a queued job is settled at once; its upload stays for "make more".
    assert Job.objects.get(pk=queued.pk).settled_at is not None
    assert storage.upload_path(queued.sources.get()).is_file()


def test_job_admin_pages_render(admin_client, user):
    job = baker.make(Job, owner=user, variations_per_video=2, status=Status.CANCELLED)
    changelist = admin_client.get("/admin/jobs/job/?status__exact=cancelled&q=" + job.pk[:6])
    assert changelist.status_code == 200
    assert job.pk.encode() in changelist.content and b"Cancelled" in changelist.content
    assert admin_client.get(f"/admin/jobs/job/{job.pk}/change/").status_code == 200


def test_admin_needs_staff(client, user):
    client.force_login(user)
    assert client.get("/admin/jobs/job/").status_code == 302


def test_changelist_shows_bytes_per_job_and_the_total_against_the_cap(admin_client, make_job, settings):
    settings.STORAGE_CAP_BYTES = 1024 * 1024
    make_job(outputs=2, size=1500)
    content = admin_client.get("/admin/jobs/job/").content.decode()
    assert "2.9\xa0KB" in content  # the job's two outputs
    assert "Storage used by job files: <strong>4.4\xa0KB</strong> of the 1.0\xa0MB cap (0%)" in content


def test_delete_with_files_asks_first_then_cancels_removes_files_and_logs(admin_client, make_job):
    finished = make_job(outputs=2, size=1000)
    running = make_job(status=Status.PROCESSING, outputs=0)
    selected = {"action": "delete_with_files", "_selected_action": [finished.pk, running.pk]}
    confirm = admin_client.post("/admin/jobs/job/", selected)
    page = confirm.content.decode()
    assert confirm.status_code == 200 and Job.objects.count() == 2  # nothing deleted yet
    assert "Delete these jobs and their files?" in page
    assert page.count("cancelled first") == 2  # the running job is marked, and so is the warning
    freed = storage.job_bytes(finished) + storage.job_bytes(running)
    assert f'<strong id="bytes-freed">{filesizeformat(freed)}</strong>' in page
    response = admin_client.post("/admin/jobs/job/", {**selected, "confirmed": "yes"}, follow=True)
    assert [str(m) for m in get_messages(response.wsgi_request)][0] == "Deleted 2 jobs and their files."
    assert not Job.objects.exists()
    assert not storage.job_folder(finished.pk).exists() and not storage.job_folder(running.pk).exists()
    logged = LogEntry.objects.filter(action_flag=DELETION).values_list("object_id", flat=True)
    assert sorted(logged) == sorted([finished.pk, running.pk])  # in Recent actions


def test_the_admin_offers_cancel_make_more_retry_and_delete_with_files(admin_client, user):
    baker.make(Job, owner=user, variations_per_video=1)
    content = admin_client.get("/admin/jobs/job/").content.decode()
    assert 'value="delete_with_files"' in content and 'value="cancel_selected"' in content
    assert 'value="make_more_selected"' in content and 'value="retry_selected"' in content
    assert 'value="delete_selected"' not in content  # Django's own, which would not say what it frees


def test_a_job_page_offers_no_save_and_no_add_rows(admin_client, make_job):
    job = make_job(outputs=1)
    content = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert 'name="_save"' not in content and 'name="_continue"' not in content and 'name="_addanother"' not in content
    for inline in ("sources", "batches", "outputs"):  # admin's inlines.js offers "Add another" only below the maximum
        assert f'name="{inline}-MAX_NUM_FORMS" value="0"' in content
    assert f"/admin/jobs/job/{job.pk}/delete/" in content  # deleting stays possible
    # Not just hidden buttons: a hand-made POST cannot write the row (the worker's, by conditional UPDATEs).
    response = admin_client.post(f"/admin/jobs/job/{job.pk}/change/", {"status": "queued", "claims": "0"})
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == Status.COMPLETED


def test_worker_beats_cannot_be_added_or_edited(admin_client, db):
    WorkerBeat.record()
    assert admin_client.get("/admin/jobs/workerbeat/add/").status_code == 403
    assert 'class="addlink" aria-describedby="jobs-workerbeat"' not in admin_client.get("/admin/").content.decode()


def test_jobs_are_listed_by_name_and_owner(admin_client, make_job, user):
    named = make_job(outputs=1, name="Spring sale")
    unnamed = make_job(outputs=1)
    content = admin_client.get("/admin/jobs/job/").content.decode()
    assert "Spring sale" in content and unnamed.sources.first().original_name in content
    assert user.username in content
    assert f">{named.pk}<" not in content  # no bare 32-hex ids as labels


def test_deleting_one_job_from_its_page_removes_its_files(admin_client, make_job):
    job = make_job(outputs=1)
    job_id = job.pk
    admin_client.post(f"/admin/jobs/job/{job_id}/delete/", {"post": "yes"})
    assert not Job.objects.filter(pk=job_id).exists() and not storage.job_folder(job_id).exists()


def test_the_cancel_action_needs_the_change_permission(client, db):
    viewer = baker.make("auth.User", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)
    content = client.get("/admin/jobs/job/").content.decode()
    assert 'value="cancel_selected"' not in content and 'value="delete_with_files"' not in content


def test_make_more_and_retry_as_admin_actions(admin_client, make_job, user):
    completed = make_job(outputs=2)
    failed = make_job(status=Status.FAILED, outputs=1)
    failed.sources.update(status=Status.FAILED)
    Job.objects.filter(pk=failed.pk).update(variations_per_video=2)
    running = make_job(status=Status.PROCESSING, outputs=0)
    selected = [completed.pk, failed.pk, running.pk]
    response = admin_client.post(
        "/admin/jobs/job/", {"action": "make_more_selected", "_selected_action": selected}, follow=True
    )
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said[-1] == "Made 2 new jobs." and "a.mp4: this job is still processing" in said[0]
    made = Job.objects.filter(origin__isnull=False)
    assert sorted(made.values_list("origin", "variations_per_video", "owner")) == sorted(
        [(completed.pk, 2, user.pk), (failed.pk, 2, user.pk)]
    )
    response = admin_client.post(
        "/admin/jobs/job/", {"action": "retry_selected", "_selected_action": [completed.pk, failed.pk]}, follow=True
    )
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert "nothing failed" in said[0] and said[-1] == "Sent 1 job back to the queue."
    assert Job.objects.get(pk=failed.pk).status == Status.QUEUED


def test_only_superusers_may_change_schedules(client, db):
    """A schedule runs any dotted path with any arguments: staff with every django_q permission still may not."""
    staff = baker.make("auth.User", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_q"))
    client.force_login(staff)
    schedule = Schedule.objects.create(func="jobs.worker.tasks.cleanup", name="x", schedule_type=Schedule.MINUTES)
    body = {"func": "os.system", "args": "'touch /tmp/pwned'", "schedule_type": "I", "repeats": -1}
    assert client.post("/admin/django_q/schedule/add/", {**body, "name": "evil"}).status_code == 403
    assert client.post(f"/admin/django_q/schedule/{schedule.pk}/change/", {**body, "name": "x"}).status_code == 403
    assert client.post(f"/admin/django_q/schedule/{schedule.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(f"/admin/django_q/schedule/{schedule.pk}/change/").status_code == 200  # seen, read-only
    assert Schedule.objects.get(pk=schedule.pk).func == "jobs.worker.tasks.cleanup"
    assert not Schedule.objects.filter(name="evil").exists()


def test_a_superuser_may_change_schedules(admin_client, db):
    response = admin_client.post(
        "/admin/django_q/schedule/add/",
        {"name": "n", "func": "jobs.worker.tasks.cleanup", "schedule_type": "I", "minutes": 5, "repeats": -1},
    )
    assert response.status_code in (200, 302)
    assert admin_client.get("/admin/django_q/schedule/add/").status_code == 200


def test_the_job_list_filters_by_format_and_strength_and_a_job_shows_its_choices(admin_client, user):
    story = baker.make(Job, owner=user, variations_per_video=1, formats=["9:16", "1:1"], strength="strong")
    square = baker.make(Job, owner=user, variations_per_video=1, formats=["1:1"], fit="blur")
    plain = baker.make(Job, owner=user, variations_per_video=1)

    def listed(query: str) -> set[str]:
        page = admin_client.get(f"/admin/jobs/job/?{query}").content.decode()
        return {job.pk for job in (story, square, plain) if f"/admin/jobs/job/{job.pk}/change/" in page}

    assert listed("format=9:16") == {story.pk}
    assert listed("format=1:1") == {story.pk, square.pk}
    assert listed("format=source") == {plain.pk}
    assert listed("strength__exact=strong") == {story.pk}
    assert listed("fit__exact=blur") == {square.pk}
    page = admin_client.get(f"/admin/jobs/job/{story.pk}/change/").content.decode()
    assert "9:16" in page and "Strong" in page


def test_a_job_page_shows_the_batches_of_its_runs(admin_client, post_job, settings):
    settings.BATCH_SIZE = 1
    job = post_job(["a.mp4"], variations=2, run=True, seconds=0.5, audio=False)
    content = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert 'name="batches-TOTAL_FORMS" value="2"' in content
    assert "[[0, &quot;source&quot;]]" in content and "[[1, &quot;source&quot;]]" in content


def test_one_cancelled_job_is_one_job_in_the_message(admin_client, user):
    running = baker.make(Job, owner=user, variations_per_video=1, status=Status.PROCESSING)
    response = admin_client.post(
        "/admin/jobs/job/", {"action": "cancel_selected", "_selected_action": [running.pk]}, follow=True
    )
    said = [str(m) for m in get_messages(response.wsgi_request)]
    assert said == ["Cancelled 1 job; 0 jobs already finished (completed, failed or cancelled)."]


def test_the_output_bytes_are_not_doubled_when_a_search_joins_a_jobs_two_videos(admin_client, make_job):
    job = make_job(outputs=2, size=1000)
    baker.make(SourceVideo, job=job, position=1, original_name="b.mp4", size=1, duration=1, width=2, height=2)
    for query in ("", "?q=mp4"):
        page = admin_client.get(f"/admin/jobs/job/{query}").content.decode()
        assert "2.0\xa0KB" in page and "4.0\xa0KB" not in page, query


def test_a_job_page_shows_name_team_and_owner_first_and_the_bookkeeping_folded_away(admin_client, make_job):
    job = make_job(name="Spring sale", reserved_bytes=5 * 1024**2)
    page = admin_client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert page.index("Spring sale") < page.index("Internals") < page.index("Storage held while it runs")
    assert "5.0\xa0MB" in page and "5242880" not in page


def test_a_completed_job_with_a_failed_video_is_amber_in_the_list(admin_client, make_job):
    job = make_job(outputs=1)
    baker.make(SourceVideo, job=job, position=1, original_name="b.mp4", size=1, duration=1, width=2, height=2,
               status=Status.FAILED)  # fmt: skip
    page = admin_client.get("/admin/jobs/job/").content.decode()
    assert "#b45309" in page and "Completed with 1 failed video" in page


def test_webhook_deliveries_are_shown_with_each_attempts_answer_and_never_deleted_by_hand(admin_client, user):
    """Deleted by hand, a delivery's end would be untold again: the cleanup would record and send it anew."""
    job = baker.make("jobs.Job", owner=user, variations_per_video=1, status="completed", notify_url="https://h.test/")
    delivery = WebhookDelivery.objects.create(
        job=job, job_ref=job.pk, owner=user, url=job.notify_url, ended_at=timezone.now(), job_status="completed",
        next_attempt_at=timezone.now(), attempts=1,
    )  # fmt: skip
    WebhookAttempt.objects.create(delivery=delivery, number=1, started_at=timezone.now(), seconds=0.1, status_code=503)
    listing = admin_client.get("/admin/jobs/webhookdelivery/").content.decode()
    assert job.pk in listing and "503" in listing
    page = admin_client.get(f"/admin/jobs/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert "503" in page and "https://h.test/" in page
    assert admin_client.post(f"/admin/jobs/webhookdelivery/{delivery.pk}/delete/", {"post": "yes"}).status_code == 403
    assert WebhookDelivery.objects.filter(pk=delivery.pk).exists()
