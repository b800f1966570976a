"""The server-rendered pages: login, ownership, cards, badges, cancel and upload without JavaScript."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
import yaml
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from model_bakery import baker

from jobs.models import Job, OutputFile, SourceVideo, Status
from jobs.services import uploads

PAGES = ["/", "/upload/"]
JOB_PAGES = ["/jobs/{pk}/", "/jobs/{pk}/status/", "/jobs/{pk}/card/"]


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def job(user, upload):
    return uploads.create_job(user, [upload("<img src=x onerror=alert(1)>.mp4")], 2)


@pytest.mark.parametrize("path", [*PAGES, "/jobs/{pk}/", "/jobs/{pk}/cancel/"])
def test_every_page_needs_a_login(client, job, path):
    response = client.get(path.format(pk=job.pk))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("path", ["/jobs/{pk}/status/", "/jobs/{pk}/card/"])
def test_polled_snippets_answer_401_when_the_session_is_gone(client, job, path):
    """Not a redirect: the page's script would swap the login page into the card."""
    response = client.get(path.format(pk=job.pk))
    assert response.status_code == 401 and b"<form" not in response.content


@pytest.mark.parametrize("path", JOB_PAGES)
def test_someone_elses_job_pages_are_404(client, other_user, job, path):
    client.force_login(other_user)
    assert client.get(path.format(pk=job.pk)).status_code == 404


def test_job_list_shows_cards_newest_first_with_pagination(logged_in, user):
    for _ in range(14):
        baker.make(Job, owner=user, variations_per_video=2)
    first = logged_in.get("/")
    assert first.status_code == 200
    assert first.content.count(b'class="job-card card"') == 12
    assert b"Page 1 of 2" in first.content
    assert logged_in.get("/?page=2").content.count(b'class="job-card card"') == 2


def test_user_supplied_names_are_escaped(logged_in, job):
    for path in ("/", f"/jobs/{job.pk}/"):
        content = logged_in.get(path).content
        assert b"<img src=x" not in content
        assert b"&lt;img src=x onerror=alert(1)&gt;.mp4" in content


def test_badges(logged_in, user):
    cancelled = baker.make(Job, owner=user, variations_per_video=2, status=Status.CANCELLED)
    baker.make(
        "jobs.SourceVideo", job=cancelled, position=0, completed_variations=1, duration=1, width=2, height=2, size=1
    )
    content = logged_in.get(f"/jobs/{cancelled.pk}/status/").content.decode()
    assert 'class="badge badge-cancelled" id="job-badge">Cancelled (1/2)<' in content
    assert "Partial results available: 1 of 2 variations finished." in content
    assert 'data-terminal="true"' in content


def test_cancel_without_javascript(logged_in, job):
    assert logged_in.get(f"/jobs/{job.pk}/cancel/").status_code == 405
    response = logged_in.post(f"/jobs/{job.pk}/cancel/", {"next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED
    again = logged_in.post(f"/jobs/{job.pk}/cancel/", {"next": "https://evil.example/"})
    assert again["Location"] == f"/jobs/{job.pk}/"  # no open redirect


def test_someone_elses_job_cannot_be_cancelled_from_the_page(client, other_user, job):
    client.force_login(other_user)
    assert client.post(f"/jobs/{job.pk}/cancel/").status_code == 404
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


def test_upload_without_javascript(logged_in, upload):
    response = logged_in.post("/upload/", {"videos": [upload("ad.mp4")], "variations": "3"})
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.variations_per_video == 3


def test_upload_error_is_shown_next_to_the_form(logged_in, upload):
    response = logged_in.post("/upload/", {"videos": [upload("ad.mp4")], "variations": "99"})
    assert response.status_code == 400
    assert b"variations must be a whole number from 1 to 20, not 99" in response.content
    assert b'value="99"' in response.content
    assert Job.objects.count() == 0


def test_static_pages_have_no_inline_handlers(logged_in, job):
    for path in ("/", "/upload/", f"/jobs/{job.pk}/"):
        content = logged_in.get(path).content.decode()
        assert " onclick=" not in content and " onsubmit=" not in content and "<script>" not in content


def test_download_button_only_once_the_job_is_finished(logged_in, make_job):
    running = make_job(status=Status.PROCESSING, outputs=1)
    assert b'id="download"' not in logged_in.get(f"/jobs/{running.pk}/status/").content
    done = make_job(status=Status.COMPLETED, outputs=1)
    content = logged_in.get(f"/jobs/{done.pk}/status/").content
    assert f'id="download" href="/jobs/{done.pk}/download/"'.encode() in content
    assert b"Partial results available" not in content


def test_finished_cards_offer_the_zip(logged_in, make_job):
    done = make_job(status=Status.COMPLETED, outputs=1)
    running = make_job(status=Status.PROCESSING, outputs=1)
    content = logged_in.get("/").content.decode()
    assert f'href="/jobs/{done.pk}/download/"' in content
    assert f'href="/jobs/{running.pk}/download/"' not in content


def test_the_upload_page_states_the_limits_and_the_retention_from_settings(logged_in, settings):
    settings.JOB_TTL_HOURS = 6
    settings.MAX_UPLOAD_BYTES = 3 * 1024**2
    content = logged_in.get("/upload/").content.decode()
    assert "results are kept for 6 hours." in content
    assert "3\xa0MB each" in content


def test_expiry_reads_the_same_on_card_and_detail(logged_in, make_job):
    job = make_job(status=Status.COMPLETED, outputs=1)
    with time_machine.travel(job.expires_at - timedelta(hours=2, minutes=5, seconds=30), tick=False):
        for path in ("/", f"/jobs/{job.pk}/status/"):
            assert ">expires in 2 h 5 min</span>" in logged_in.get(path).content.decode(), path
    with time_machine.travel(job.expires_at, tick=False):
        for path in ("/", f"/jobs/{job.pk}/status/"):
            assert ">expired</span>" in logged_in.get(path).content.decode(), path


def test_cards_and_the_detail_snippet_say_finished_the_same_way(logged_in, make_job):
    running = make_job(status=Status.PROCESSING, outputs=1)
    done = make_job(status=Status.COMPLETED, outputs=1)
    cards = logged_in.get("/").content.decode()
    assert f'data-job="{running.pk}" data-status="processing" data-terminal="false"' in cards
    assert f'data-job="{done.pk}" data-status="completed" data-terminal="true"' in cards
    assert 'data-terminal="false"' in logged_in.get(f"/jobs/{running.pk}/status/").content.decode()


def test_common_script_is_loaded_once_per_page(logged_in, job):
    for path in ("/", "/upload/", f"/jobs/{job.pk}/"):
        assert logged_in.get(path).content.decode().count("js/common.js") == 1, path


def test_pages_send_a_content_security_policy_without_inline_scripts(logged_in, job):
    for path in ("/", "/upload/", f"/jobs/{job.pk}/", "/admin/login/"):
        policy = logged_in.get(path)["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_staff_without_the_change_permission_cannot_cancel_from_the_page(client, job, staff_viewer):
    client.force_login(staff_viewer)
    assert client.post(f"/jobs/{job.pk}/cancel/").status_code == 403
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


@pytest.mark.parametrize("path", [*PAGES, "/jobs/{pk}/", "/jobs/{pk}/status/", "/api/jobs/", "/login/"])
def test_pages_and_api_answers_are_not_stored_by_the_browser(logged_in, job, path):
    """Back after a logout must not show a job from the browser's cache."""
    client = logged_in
    if path == "/login/":
        client.logout()
    cache_control = client.get(path.format(pk=job.pk))["Cache-Control"]
    assert "no-store" in cache_control and "private" in cache_control


def test_get_logout_asks_first_and_post_logs_out(logged_in):
    page = logged_in.get("/logout/")
    assert page.status_code == 200 and b"Log out?" in page.content and b'id="logout-button"' in page.content
    assert logged_in.get("/").status_code == 200  # still logged in
    assert logged_in.post("/logout/")["Location"] == "/login/"
    assert logged_in.get("/").status_code == 302


def test_the_login_page_sends_a_logged_in_user_to_the_jobs(logged_in):
    assert logged_in.get("/login/")["Location"] == "/"


def test_a_failed_login_keeps_the_username(client, user):
    page = client.post("/login/", {"username": user.username, "password": "wrong"}).content.decode()
    assert "didn't match" in page and f'value="{user.username}"' in page


@pytest.mark.parametrize("path", ["/no-such-page/", "/jobs/0123456789abcdef/"])
def test_a_missing_page_is_shown_in_the_sites_layout(logged_in, path, settings):
    settings.DEBUG = False
    response = logged_in.get(path)
    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found" in page and 'class="topbar"' in page and "/static/css/app.css" in page


def test_the_server_error_page_needs_no_request(db):
    page = render_to_string("500.html")  # Django renders it without a request or context
    assert "Something went wrong" in page and 'class="topbar"' in page


def test_a_favicon_for_every_page(logged_in, client):
    assert 'rel="icon" href="/static/favicon.svg"' in logged_in.get("/").content.decode()
    client.logout()
    assert client.get("/favicon.ico")["Location"] == "/static/favicon.svg"  # also without a login


def test_a_new_job_was_created_just_now(logged_in, make_job):
    job = make_job(status=Status.QUEUED, outputs=0)
    assert "created <time" in logged_in.get("/").content.decode()
    assert ">just now</time>" in logged_in.get(f"/jobs/{job.pk}/card/").content.decode()
    with time_machine.travel(timezone.now() + timedelta(minutes=5, seconds=2), tick=False):
        assert ">5\xa0minutes ago</time>" in logged_in.get(f"/jobs/{job.pk}/card/").content.decode()


def test_a_queued_job_says_where_it_stands(logged_in, make_job, other_user):
    first = make_job(status=Status.QUEUED, outputs=0, owner=other_user, enqueued_at=timezone.now())
    mine = make_job(status=Status.QUEUED, outputs=0, enqueued_at=timezone.now() + timedelta(seconds=1))
    assert "Number 2 in the queue (1 job ahead)" in logged_in.get(f"/jobs/{mine.pk}/status/").content.decode()
    Job.objects.filter(pk=first.pk).update(status=Status.PROCESSING)
    card = logged_in.get(f"/jobs/{mine.pk}/card/").content.decode()
    assert "Next in line, waiting for a worker" in card


def test_a_processing_job_shows_its_percentage_and_time_left(logged_in, make_job):
    start = timezone.now()
    job = make_job(status=Status.PROCESSING, outputs=0, started_at=start)
    SourceVideo.objects.filter(job=job).update(progress=25)
    with time_machine.travel(start + timedelta(seconds=60), tick=False):
        page = logged_in.get(f"/jobs/{job.pk}/status/").content.decode()
    assert "0 of 1 variations done · 25%" in page and "1 of 1 variations · 25%" not in page
    assert "About 3 min left" in page  # 25 % in 60 s: 75 % more takes about 180 s


def test_the_title_is_the_jobs_name_or_its_first_videos(logged_in, make_job):
    named = make_job(name="Spring sale")
    page = logged_in.get(f"/jobs/{named.pk}/").content.decode()
    assert "<title>Spring sale · videojobs</title>" in page and '<h1 id="job-title">Spring sale</h1>' in page
    assert ">Spring sale</a></h2>" in logged_in.get("/").content.decode()
    unnamed = make_job()
    assert "<title>a.mp4 · videojobs</title>" in logged_in.get(f"/jobs/{unnamed.pk}/").content.decode()


def test_the_pages_download_link_sends_a_logged_out_browser_to_the_login_page(client, user, make_job):
    job = make_job(status=Status.COMPLETED, outputs=1)
    assert client.get(f"/jobs/{job.pk}/download/")["Location"] == f"/login/?next=/jobs/{job.pk}/download/"
    client.force_login(user)
    response = client.get(f"/jobs/{job.pk}/download/")
    assert response["Content-Type"] == "application/zip" and response["Content-Disposition"].endswith('"a.zip"')


def test_the_pages_download_of_an_unfinished_job_goes_back_to_its_page(logged_in, make_job):
    job = make_job(status=Status.PROCESSING, outputs=1)
    response = logged_in.get(f"/jobs/{job.pk}/download/", follow=True)
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert "This job has no results to download." in response.content.decode()


def test_the_upload_page_says_one_bad_file_refuses_the_whole_job_and_takes_a_name(logged_in):
    page = logged_in.get("/upload/").content.decode()
    assert "it refuses the whole upload and keeps nothing" in page and 'name="name"' in page


def test_upload_without_javascript_keeps_the_name_on_a_refusal(logged_in):
    response = logged_in.post("/upload/", {"variations": "2", "name": "Kept"})
    assert response.status_code == 400 and 'value="Kept"' in response.content.decode()


@pytest.mark.parametrize("path", ["/", "/api/jobs/"])
def test_queue_positions_cost_no_query_per_job(logged_in, make_job, path):
    def queries_for(count: int) -> int:
        for _ in range(count):
            make_job(status=Status.QUEUED, outputs=0, enqueued_at=timezone.now())
        with CaptureQueriesContext(connection) as captured:
            assert logged_in.get(path, HTTP_ACCEPT="application/json").status_code == 200
        return len(captured)

    few = queries_for(2)
    assert queries_for(5) == few


def test_time_left_counts_this_runs_pace_not_what_an_earlier_run_finished(logged_in, make_job):
    start = timezone.now()
    job = make_job(status=Status.PROCESSING, outputs=0, started_at=start, progress_at_claim=80)
    SourceVideo.objects.filter(job=job).update(progress=90)  # 10 points in 60 s since this run claimed it
    with time_machine.travel(start + timedelta(seconds=60), tick=False):
        page = logged_in.get(f"/jobs/{job.pk}/status/").content.decode()
    assert "About 1 min left" in page  # the last 10 points at the same pace, not 10/90 of a minute


def test_the_detail_page_shows_each_variation_with_its_thumbnail_number_effects_and_a_checkbox(logged_in, make_job):
    job = make_job(status=Status.COMPLETED, outputs=3)
    first, second, third = OutputFile.objects.filter(job=job).order_by("variation_index")
    OutputFile.objects.filter(pk=first.pk).update(
        thumbnail="outputs/s00_v01.webp", effects={"rotation": 0.006, "brightness": -0.02, "contrast": 1.03}
    )
    OutputFile.objects.filter(pk=third.pk).update(missing=True)
    page = logged_in.get(f"/jobs/{job.pk}/").content.decode()
    assert f'src="/api/jobs/{job.pk}/outputs/{first.pk}/thumbnail/"' in page
    assert f'href="/api/jobs/{job.pk}/outputs/{second.pk}/file/"' in page and "Play variation 2" in page  # no preview
    assert f"/outputs/{third.pk}/" not in page  # its file vanished: nothing to play
    assert "rotated +0.34°, brightness -0.020, contrast 1.030" in page
    assert page.count('name="outputs"') == 2 and 'id="download-selected"' in page


def test_a_running_job_shows_its_finished_variations_without_checkboxes(logged_in, make_job):
    job = make_job(status=Status.PROCESSING, outputs=1)
    page = logged_in.get(f"/jobs/{job.pk}/status/").content.decode()
    assert page.count('class="play"') == 1 and 'name="outputs"' not in page and "download-selected" not in page


def test_a_finished_job_offers_make_more_and_a_failed_video_retry(logged_in, make_job):
    completed = make_job(outputs=2)
    page = logged_in.get(f"/jobs/{completed.pk}/").content.decode()
    assert 'id="make-more-count" min="1" max="20" value="2"' in page and "Retry failed videos" not in page
    partly = make_job(outputs=1)
    baker.make(SourceVideo, job=partly, position=1, original_name="b.mp4", size=1, duration=1, width=2, height=2,
               status=Status.FAILED, path="uploads/01.video")  # fmt: skip
    page = logged_in.get(f"/jobs/{partly.pk}/").content.decode()
    assert "Retry failed videos" in page and 'id="make-more-count"' in page
    running = make_job(status=Status.PROCESSING, outputs=0)
    page = logged_in.get(f"/jobs/{running.pk}/").content.decode()
    assert "make-more" not in page and "Retry failed videos" not in page


def test_make_more_from_the_page_opens_the_new_job_which_says_where_it_came_from(logged_in, make_job):
    job = make_job(outputs=2)
    response = logged_in.post(f"/jobs/{job.pk}/make-more/", {"variations": "3"}, follow=True)
    new = Job.objects.get(origin=job)
    assert response.redirect_chain == [(f"/jobs/{new.pk}/", 302)]
    page = response.content.decode()
    assert "Making 3 more variations of each video of a.mp4." in page
    assert f'made from <a href="/jobs/{job.pk}/" id="origin-link">a.mp4</a>' in page
    listing = logged_in.get("/").content.decode()
    assert f'Made from <a href="/jobs/{job.pk}/">a.mp4</a>' in listing


def test_make_more_from_the_page_with_a_bad_number_or_an_expired_job_says_why(logged_in, make_job):
    job = make_job(outputs=1)
    response = logged_in.post(f"/jobs/{job.pk}/make-more/", {"variations": "0"}, follow=True)
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert "Variations must be a whole number from 1 to" in response.content.decode()
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now())
    response = logged_in.post(f"/jobs/{job.pk}/make-more/", {"variations": "1"}, follow=True)
    assert "This job has expired" in response.content.decode() and Job.objects.count() == 1


def test_retry_from_the_page_sends_the_job_back_to_the_queue(logged_in, make_job):
    job = make_job(status=Status.FAILED, outputs=0)
    job.sources.update(status=Status.FAILED, error="The video could not be decoded.")
    response = logged_in.post(f"/jobs/{job.pk}/retry/", follow=True)
    assert response.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
    assert "Retrying the failed videos. Finished variations are kept." in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED
    again = logged_in.post(f"/jobs/{job.pk}/retry/", follow=True)
    assert "This job is still queued" in again.content.decode()


@pytest.mark.parametrize("action", ["make-more", "retry"])
def test_make_more_and_retry_pages_are_post_only_and_for_the_owner(client, logged_in, other_user, make_job, action):
    job = make_job(outputs=1)
    assert logged_in.get(f"/jobs/{job.pk}/{action}/").status_code == 405
    client.force_login(other_user)
    assert client.post(f"/jobs/{job.pk}/{action}/", {"variations": "1"}).status_code == 404
    assert Job.objects.count() == 1


def test_make_more_from_the_page_needs_the_csrf_token(csrf_client, make_job):
    client, token = csrf_client
    job = make_job(outputs=1)
    assert client.post(f"/jobs/{job.pk}/make-more/", {"variations": "1"}).status_code == 403
    response = client.post(f"/jobs/{job.pk}/make-more/", {"variations": "1", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and Job.objects.count() == 2


def test_a_completed_job_with_a_failed_video_is_amber_and_its_figures_agree(logged_in, make_job, api):
    job = make_job(outputs=2)
    failed = baker.make(
        SourceVideo, job=job, position=1, original_name="broken.mp4", size=1, duration=1, width=2, height=2,
        status=Status.FAILED, progress=40, error="The video could not be decoded at 0:01.",
    )  # fmt: skip
    card = logged_in.get("/").content.decode()
    assert 'badge badge-partial">Completed with 1 failed video<' in card
    page = logged_in.get(f"/jobs/{job.pk}/").content.decode()
    assert "Overall: 2 of 4 variations done · 50%" in page
    assert f'aria-label="Progress of {failed.original_name}"' not in page  # no half-drawn bar for it
    assert "0 of 2 variations finished before it failed" in page
    document = api.get(f"/api/jobs/{job.pk}/").json()
    assert (document["status"], document["failed_videos"], document["progress"]) == ("completed", 1, 50)


def test_the_small_things_a_walk_through_the_pages_found(logged_in, client, api, settings):
    """Each line failed before its fix: one name for the upload button, a size without ".0", no silent cut of
    a long name, no "FFmpeg" in what a user reads, an API root and a schema without raw markup or odd names."""
    settings.MAX_UPLOAD_BYTES = 500 * 1024**2
    empty = logged_in.get("/").content.decode()
    assert empty.count('href="/upload/"') == 2 and "New job" not in empty  # the top bar's and the empty list's
    upload = logged_in.get("/upload/").content.decode()
    assert "Up to 10 files, 500\xa0MB each." in upload
    assert not re.search(r'<input[^>]*name="name"[^>]*maxlength', upload)  # the server says it is too long
    for page in (empty, upload):
        assert "FFmpeg" not in page
    assert "FFmpeg" not in (settings.BASE_DIR / "static" / "js" / "common.js").read_text()
    root = logged_in.get("/api/", HTTP_ACCEPT="text/html").content.decode()
    assert "`jobs`" not in root and "Start at &quot;jobs&quot;" in root
    schema = api.get("/api/schema/")
    assert schema["Content-Disposition"] == 'inline; filename="videojobs-openapi.yaml"'
    create = yaml.safe_load(schema.content)["paths"]["/api/jobs/"]["post"]["description"]
    assert "upload_guard" not in create and "nothing of a refused upload is kept" in create
