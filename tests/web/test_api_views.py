"""The jobs API: reading, listing, deleting, downloading, thumbnails, auth, health and the schema."""

from __future__ import annotations

import errno
import io
import json
import subprocess
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.utils import timezone
from model_bakery import baker
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.test import APIClient

from jobs import storage
from jobs.models import Job, OutputFile, SourceVideo, Status, WorkerBeat
from jobs.web.api.serializers import JobSerializer, OutputSerializer, SourceSerializer
from jobs.worker import runner
from videojobs import datadir

ROOT = Path(__file__).resolve().parents[2]


def test_retrieve_shows_sources_outputs_and_links_when_done(api, post_job):
    job = post_job(variations=2, run=True)
    body = api.get(f"/api/jobs/{job.pk}/").json()
    assert body["status"] == "completed" and body["progress"] == 100
    assert body["completed_variations"] == 2 and body["total_variations"] == 2
    assert body["download_url"].endswith(f"/api/jobs/{job.pk}/download/")
    assert body["thumbnail_url"].endswith(f"/api/jobs/{job.pk}/thumbnail/")
    assert body["page_url"].endswith(f"/jobs/{job.pk}/")
    outputs = body["sources"][0]["outputs"]
    assert [o["variation_index"] for o in outputs] == [0, 1]
    assert set(outputs[0]["effects"]) == {
        *("rotation", "rotation_deg", "brightness", "contrast", "saturation"),
        *("zoom", "hue", "speed", "grain", "mirror"),
    }
    assert outputs[0]["format"] == "source" and (outputs[0]["width"], outputs[0]["height"]) == (320, 240)
    assert outputs[0]["seconds"] == pytest.approx(1.0, abs=0.1) and 0.5 < outputs[0]["ssim"] < 1
    assert (body["formats"], body["fit"], body["strength"], body["mirror"]) == (["source"], "crop", "subtle", False)


def test_list_is_newest_first_own_jobs_only_and_paginated(api, user, other_user):
    now = timezone.now()
    mine = [
        baker.make(Job, owner=user, variations_per_video=1, created_at=now - timedelta(minutes=i)) for i in range(3)
    ]
    baker.make(Job, owner=other_user, variations_per_video=1)
    body = api.get("/api/jobs/").json()
    assert body["count"] == 3
    assert [j["id"] for j in body["results"]] == [j.pk for j in mine]


def test_staff_see_every_job_only_with_the_view_permission(other_user, api_client_for, staff_viewer):
    theirs = baker.make(Job, owner=other_user, variations_per_video=1)
    client = api_client_for(staff_viewer)
    assert client.get(f"/api/jobs/{theirs.pk}/").status_code == 200
    assert client.get("/api/jobs/").json()["count"] == 1
    plain_staff = api_client_for(baker.make("auth.User", is_staff=True))
    assert plain_staff.get(f"/api/jobs/{theirs.pk}/").status_code == 404
    assert plain_staff.get(f"/api/jobs/{theirs.pk}/thumbnail/").status_code == 404
    assert plain_staff.get("/api/jobs/").json()["count"] == 0


@pytest.mark.parametrize("suffix", ["", "download/", "thumbnail/"])
def test_someone_elses_job_is_a_404(api, other_user, suffix):
    theirs = baker.make(Job, owner=other_user, variations_per_video=1)
    assert api.get(f"/api/jobs/{theirs.pk}/{suffix}").status_code == 404


def test_someone_elses_job_cannot_be_deleted(api, other_user):
    theirs = baker.make(Job, owner=other_user, variations_per_video=1)
    assert api.delete(f"/api/jobs/{theirs.pk}/").status_code == 404
    assert Job.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/api/jobs/"),
        ("post", "/api/jobs/"),
        ("get", "/api/jobs/abc/"),
        ("delete", "/api/jobs/abc/"),
        ("get", "/api/jobs/abc/download/"),
        ("get", "/api/jobs/abc/thumbnail/"),
        ("get", "/api/schema/"),
    ],
)
def test_nothing_but_health_works_without_login(db, method, path):
    response = getattr(APIClient(), method)(path)
    assert response.status_code == 401  # DRF's convention: 401 with the scheme to use, not 403
    assert response["WWW-Authenticate"] == "Token"


def test_token_auth(user):
    user.set_password("s3cret-pass")
    user.save()
    client = APIClient()
    response = client.post("/api/auth/token/", {"username": "alice", "password": "s3cret-pass"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert token == Token.objects.get(user=user).key
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/jobs/").status_code == 200
    wrong = client.post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert wrong.status_code == 400
    assert wrong.json() == {"detail": "Unable to log in with the given username and password."}
    missing = client.post("/api/auth/token/", {"username": "alice"}, format="json")
    assert missing.status_code == 400 and missing.json()["detail"] == "password: This field is required."


def test_download_streams_the_zip_with_its_exact_length_named_after_the_first_video(api, post_job):
    job = post_job(["promo.mov"], variations=2, run=True)
    response = api.get(f"/api/jobs/{job.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="promo.zip"'
    data = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(data)
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 3


def test_download_without_outputs_is_409_and_after_expiry_410(api, user):
    job = baker.make(Job, owner=user, variations_per_video=1)
    response = api.get(f"/api/jobs/{job.pk}/download/")
    assert response.status_code == 409
    assert "not finished yet" in response.json()["detail"]
    Job.objects.filter(pk=job.pk).update(status=Status.CANCELLED)
    assert "no finished variations" in api.get(f"/api/jobs/{job.pk}/download/").json()["detail"]
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api.get(f"/api/jobs/{job.pk}/download/").status_code == 410


def test_thumbnail_is_served_to_the_owner(api, post_job, user):
    job = post_job(variations=1, run=True)
    response = api.get(f"/api/jobs/{job.pk}/thumbnail/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert b"".join(response.streaming_content)[:4] == b"RIFF"
    empty = baker.make(Job, owner=user, variations_per_video=1)
    assert api.get(f"/api/jobs/{empty.pk}/thumbnail/").status_code == 404


def test_delete_removes_rows_and_files(api, post_job, files_under):
    job = post_job(variations=1, run=True)
    assert files_under(storage.job_folder(job.pk))
    response = api.delete(f"/api/jobs/{job.pk}/")
    assert response.status_code == 204
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not storage.job_folder(job.pk).exists()


def test_delete_of_a_queued_job_cancels_and_removes_it(api, post_job):
    job = post_job()
    assert api.delete(f"/api/jobs/{job.pk}/").status_code == 204
    assert not storage.job_folder(job.pk).exists()
    runner.run_job(job.pk)  # the task arrives late: nothing happens, nothing is written
    assert not storage.job_folder(job.pk).exists()


def test_health_is_public_and_reports_the_worker(db, client):
    response = client.get("/api/health/")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": True, "worker": False, "disk": True}
    WorkerBeat.record()
    response = client.get("/api/health/")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_schema_and_browsable_api(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/jobs/{id}/download/" in json.loads(schema.content)["paths"]
    page = api.get("/api/jobs/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b"Job List" in page.content


def test_schema_generates_without_warnings(tmp_path):
    errors = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"), stderr=errors)
    schema = (tmp_path / "schema.yml").read_text()
    for path in ("/api/jobs/{id}/cancel/", "/api/jobs/{id}/download/", "/api/auth/token/", "/api/health/"):
        assert f"  {path}:" in schema


def test_a_running_job_with_finished_variations_is_not_offered_as_a_zip(api, make_job):
    job = make_job(status=Status.PROCESSING, outputs=1)
    assert api.get(f"/api/jobs/{job.pk}/").json()["download_url"] is None
    response = api.get(f"/api/jobs/{job.pk}/download/")
    assert response.status_code == 409 and "not finished yet" in response.json()["detail"]


def test_health_says_unhealthy_not_500_when_the_data_folder_is_missing(db, client, settings, tmp_path):
    WorkerBeat.record()
    settings.DATA_DIR = tmp_path / "not-mounted"
    response = client.get("/api/health/")
    assert response.status_code == 503 and response.json()["checks"]["disk"] is False


def test_health_shows_its_figures_to_staff_only(client, admin_user, db):
    assert "free_bytes" not in client.get("/api/health/").json()
    client.force_login(admin_user)
    assert client.get("/api/health/").json()["free_bytes"] > 0


def test_staff_need_the_permission_to_delete_or_cancel_someone_elses_job(
    api_client_for, other_user, make_job, staff_viewer
):
    staff = staff_viewer
    theirs = make_job(status=Status.QUEUED, outputs=0, owner=other_user)
    client = api_client_for(staff)
    assert client.get(f"/api/jobs/{theirs.pk}/").status_code == 200  # staff see every job
    assert client.delete(f"/api/jobs/{theirs.pk}/").status_code == 403
    assert client.post(f"/api/jobs/{theirs.pk}/cancel/").status_code == 403
    assert Job.objects.get(pk=theirs.pk).status == Status.QUEUED
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["change_job", "delete_job"]))
    assert client.post(f"/api/jobs/{theirs.pk}/cancel/").status_code == 200
    assert client.delete(f"/api/jobs/{theirs.pk}/").status_code == 204


def test_https_behind_a_proxy_gives_https_urls(api, post_job, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    job = post_job(variations=1)
    body = api.get(f"/api/jobs/{job.pk}/", HTTP_X_FORWARDED_PROTO="https").json()
    assert body["page_url"].startswith("https://")


def test_the_deploy_checks_pass_with_https_and_fail_without(tmp_path):
    environment = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "videojobs.settings",
        "DATA_DIR": str(tmp_path),
        "DJANGO_DEBUG": "0",
        "ALLOWED_HOSTS": "videojobs.example.com",
        "DJANGO_SECRET_KEY": "x7-" + "Qm9vR2lhbnQtc2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY3ODkw" * 2,
    }
    datadir.prepare(tmp_path)
    command = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    secure = subprocess.run(command, env={**environment, "HTTPS": "1"}, cwd=ROOT, capture_output=True, text=True)
    assert secure.returncode == 0, secure.stderr
    plain = subprocess.run(command, env=environment, cwd=ROOT, capture_output=True, text=True)
    assert plain.returncode != 0 and "SECURE_SSL_REDIRECT" in plain.stderr


def test_a_zip_that_cannot_open_its_files_is_503_not_a_shorter_zip(api, make_job, monkeypatch):
    job = make_job(status=Status.COMPLETED, outputs=2)

    def out_of_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(storage.local_disk, "open", out_of_descriptors, raising=False)
    response = api.get(f"/api/jobs/{job.pk}/download/")
    assert response.status_code == 503 and "try again" in response.json()["detail"]


def test_the_api_root_describes_the_service_and_links_every_endpoint(api):
    body = api.get("/api/").json()
    assert set(body) == {"jobs", "teams", "uploads", "token", "webhook-secret", "health", "schema", "docs"}
    page = api.get("/api/", HTTP_ACCEPT="text/html").content.decode()
    assert "videojobs API" in page and "Upload MP4 or MOV videos" in page and "Django REST framework" not in page


def test_the_browsable_api_offers_a_create_form_with_a_file_input_and_no_read_only_fields(api):
    page = api.get("/api/jobs/", HTTP_ACCEPT="text/html").content.decode()
    form = page[page.index('<form action="/api/jobs/"') :]
    form = form[: form.index("</form>")]
    assert 'name="videos" id="id_api_videos" type="file" multiple' in form
    assert 'name="variations"' in form and 'name="name"' in form
    for read_only in ("status", "error", "created_at", "expires_at", "progress"):
        assert f'name="{read_only}"' not in form
    assert "Lists are not currently supported" not in page


def test_the_browsable_api_form_creates_a_job(csrf_client, upload):
    """What the form sends: multipart with the CSRF token, several files under one name, and a name."""
    client, token = csrf_client
    assert client.get("/api/jobs/", HTTP_ACCEPT="text/html").status_code == 200
    response = client.post(
        "/api/jobs/",
        {
            "videos": [upload("one.mp4"), upload("two.mp4")],
            "variations": "2",
            "name": "From the form",
            "csrfmiddlewaretoken": token,
        },
        HTTP_ACCEPT="text/html",
    )
    assert response.status_code == 201, response.content[:500]
    job = Job.objects.get()
    assert job.name == "From the form" and job.sources.count() == 2 and job.variations_per_video == 2


def test_the_interactive_docs_are_served_locally_and_need_a_login(client, user):
    assert client.get("/api/docs/")["Location"].startswith("/login/?next=/api/docs/")
    client.force_login(user)
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "<script>" not in page and "cdn" not in page.lower()  # the start-up script is a file of its own
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "/api/schema/" in script.content.decode()


def test_the_schema_opens_as_a_page_in_a_browser_and_as_yaml_for_tools(api):
    page = api.get("/api/schema/", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert page["Content-Type"].startswith("text/html") and "openapi" in page.content.decode()
    assert "attachment" not in page.get("Content-Disposition", "")
    tool = api.get("/api/schema/", HTTP_ACCEPT="*/*")
    assert tool["Content-Type"].startswith("application/vnd.oai.openapi")


def test_job_json_has_name_title_queue_position_and_seconds_left(api, post_job):
    first = post_job(["a.mp4"], variations=1, name="First")
    second = post_job(["b.mp4"], variations=1)
    assert api.get(f"/api/jobs/{first.pk}/").json()["queue_position"] == 1
    body = api.get(f"/api/jobs/{second.pk}/").json()
    assert body["queue_position"] == 2 and body["seconds_left"] is None
    assert body["title"] == "b.mp4" and body["name"] == ""


def test_the_zip_is_named_after_the_job(api, post_job):
    job = post_job(["promo.mov"], variations=1, run=True, name="Été: sale/1")
    response = api.get(f"/api/jobs/{job.pk}/download/")
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''%C3%89t%C3%A9_%20sale_1.zip"


def test_options_describes_what_a_create_sends(api):
    post = api.options("/api/jobs/").json()["actions"]["POST"]
    assert set(post) == {"videos", "variations", "name", "team", "formats", "fit", "strength", "mirror"} | {
        "focus",
        "focus_x",
        "focus_y",
        "notify_url",
    }


def _drf_document(serializer) -> dict:
    """What DRF's own field-by-field rendering makes of the serializer's instance."""
    return serializers.ModelSerializer.to_representation(serializer, serializer.instance)


@pytest.mark.parametrize(
    "status, fields",
    [
        (Status.QUEUED, {}),
        (Status.PROCESSING, {"started_at": timezone.now() - timedelta(seconds=30)}),
        (Status.COMPLETED, {"name": "Été", "started_at": timezone.now()}),
        (Status.FAILED, {"error": "every video failed"}),
        (Status.CANCELLED, {"cancelled_at": timezone.now(), "expires_at": timezone.now() - timedelta(hours=1)}),
    ],
)
def test_the_status_document_is_what_drf_renders_from_the_declared_fields(make_job, rf, status, fields):
    job = make_job(status=status, outputs=3, **fields)
    SourceVideo.objects.filter(job=job).update(progress=40, error="x" if status == Status.FAILED else "")
    OutputFile.objects.filter(job=job, variation_index=1).update(
        missing=True, effects={"rotation": 0.004}, thumbnail="outputs/s00_v02.webp"
    )
    job = Job.objects.prefetch_related("sources__outputs").get(pk=job.pk)
    context = {"request": Request(rf.get("/api/jobs/", secure=True))}
    job_serializer = JobSerializer(job, context=context)
    document = job_serializer.data
    assert document == {**_drf_document(job_serializer), "sources": document["sources"]}
    for source, source_document in zip(job.sources.all(), document["sources"], strict=True):
        drf_source = _drf_document(SourceSerializer(source, context=context))
        assert source_document == {**drf_source, "outputs": source_document["outputs"]}
        outputs = [_drf_document(OutputSerializer(output, context=context)) for output in source.outputs.all()]
        assert source_document["outputs"] == outputs and len(outputs) == 3
        assert [output["thumbnail_url"] is None for output in outputs] == [True, False, True]
        assert outputs[0]["file_url"].startswith("https://")
    assert set(document) == set(JobSerializer.Meta.fields)
    assert (document["queue_position"] == 1) == (status == Status.QUEUED)
    assert (document["download_url"] or "").startswith("https://") == (status in (Status.COMPLETED, Status.FAILED))


@pytest.mark.parametrize("outputs", [1, 4])
def test_the_status_poll_costs_four_queries_however_many_outputs(api, make_job, django_assert_num_queries, outputs):
    """The token, the job, its videos, their outputs: no query per video or output (N+1), e.g. for a
    column the prefetch left out."""
    job = make_job(status=Status.PROCESSING, outputs=outputs)
    baker.make(SourceVideo, job=job, position=1, size=1, duration=1, width=2, height=2)
    with django_assert_num_queries(4):
        body = api.get(f"/api/jobs/{job.pk}/").json()
    assert [len(source["outputs"]) for source in body["sources"]] == [outputs, 0]


def _zip_entries(response) -> tuple[list[str], dict]:
    """The ZIP's entry names and its manifest; its length is the Content-Length it was sent with."""
    body = b"".join(response.streaming_content)
    assert len(body) == int(response["Content-Length"])
    zipped = zipfile.ZipFile(io.BytesIO(body))
    return sorted(zipped.namelist()), json.loads(zipped.read("manifest.json"))


@pytest.mark.usefixtures("plain_output_names")
def test_download_of_selected_variations_holds_only_them(api, make_job):
    job = make_job(status=Status.COMPLETED, outputs=4)
    first, _, third, _ = OutputFile.objects.filter(job=job).order_by("variation_index")
    response = api.get(f"/api/jobs/{job.pk}/download/?outputs={third.pk},{first.pk}")
    assert response.status_code == 200
    names, manifest = _zip_entries(response)
    assert names == ["a/a_v01.mp4", "a/a_v03.mp4", "manifest.json"]
    assert [entry["variation"] for entry in manifest["outputs"]] == [1, 3]
    repeated = api.get(f"/api/jobs/{job.pk}/download/", {"outputs": [first.pk, third.pk]})  # as a form sends it
    assert _zip_entries(repeated)[0] == names


@pytest.mark.parametrize("selection", ["", "abc", "1;2", "-1", "9" * 19, "unknown", "other", "missing", "too many"])
def test_a_selection_that_is_not_finished_variations_of_the_job_is_400(api, make_job, selection):
    job = make_job(status=Status.COMPLETED, outputs=2)
    first, second = OutputFile.objects.filter(job=job).order_by("variation_index")
    OutputFile.objects.filter(pk=second.pk).update(missing=True)
    other = OutputFile.objects.filter(job=make_job(status=Status.COMPLETED, outputs=1)).get()
    value = {
        "unknown": f"{first.pk},{other.pk + 1000}",
        "other": str(other.pk),
        "missing": str(second.pk),
        "too many": ",".join([str(first.pk)] * 10_000),
    }.get(selection, selection)
    response = api.get(f"/api/jobs/{job.pk}/download/", {"outputs": value})
    assert response.status_code == 400 and response.json()["field"] == "outputs"


@pytest.mark.usefixtures("plain_output_names")
def test_the_page_download_takes_the_checked_variations(client, user, make_job):
    job = make_job(status=Status.COMPLETED, outputs=3)
    client.force_login(user)
    chosen = OutputFile.objects.filter(job=job, variation_index__in=[0, 2]).values_list("pk", flat=True)
    response = client.get(f"/jobs/{job.pk}/download/", {"outputs": list(chosen)})
    assert _zip_entries(response)[0] == ["a/a_v01.mp4", "a/a_v03.mp4", "manifest.json"]
    for refused_selection in ({"outputs": "nope"}, {"selected": "1"}):  # the form with no box checked: not all
        refused = client.get(f"/jobs/{job.pk}/download/", refused_selection, follow=True)
        assert refused.redirect_chain == [(f"/jobs/{job.pk}/", 302)]
        assert "Choose one or more finished variations" in refused.content.decode()
