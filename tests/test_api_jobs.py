from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone
from model_bakery import baker
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import processor, storage
from jobs.models import Job, Status, WorkerBeat
from tests.conftest import files_under


def _post(api, upload, names=("a.mp4",), variations=2, **clip):
    return api.post(
        "/api/jobs/", {"videos": [upload(n, **clip) for n in names], "variations": variations}, format="multipart"
    )


def _completed_job(api, upload, **kwargs) -> Job:
    response = _post(api, upload, **kwargs)
    assert response.status_code == 201, response.json()
    processor.run_job(response.json()["id"])
    return Job.objects.get(pk=response.json()["id"])


def test_create_stores_the_uploads_and_queues_the_task(api, upload, user, django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(api, upload, names=("Summer Ad.mp4", "Summer Ad.mp4"), variations=3)
    assert response.status_code == 201
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert job.owner == user and job.status == Status.QUEUED and len(job.pk) == 32
    assert body["status"] == "queued"
    assert body["variations_per_video"] == 3 and body["total_variations"] == 6 and body["completed_variations"] == 0
    assert [s["name"] for s in body["sources"]] == ["Summer Ad.mp4", "Summer Ad (2).mp4"]
    assert body["download_url"] is None and body["thumbnail_url"] is None
    assert job.expires_at - job.created_at == timedelta(hours=24)
    assert [p.name for p in files_under(storage.uploads_dir(job.pk))] == ["00.video", "01.video"]
    assert OrmQ.objects.count() == 1


def test_variations_default_to_five(api, upload):
    response = api.post("/api/jobs/", {"videos": [upload()]}, format="multipart")
    assert response.status_code == 201
    assert response.json()["variations_per_video"] == 5


def test_retrieve_shows_sources_outputs_and_links_when_done(api, upload):
    job = _completed_job(api, upload, variations=2)
    body = api.get(f"/api/jobs/{job.pk}/").json()
    assert body["status"] == "completed" and body["progress"] == 100
    assert body["completed_variations"] == 2 and body["total_variations"] == 2
    assert body["download_url"].endswith(f"/api/jobs/{job.pk}/download/")
    assert body["thumbnail_url"].endswith(f"/api/jobs/{job.pk}/thumbnail/")
    outputs = body["sources"][0]["outputs"]
    assert [o["variation_index"] for o in outputs] == [0, 1]
    assert set(outputs[0]["effects"]) == {"rotation", "brightness", "contrast", "saturation"}


def test_list_is_newest_first_own_jobs_only_and_paginated(api, user, other_user):
    now = timezone.now()
    mine = [
        baker.make(Job, owner=user, variations_per_video=1, created_at=now - timedelta(minutes=i)) for i in range(3)
    ]
    baker.make(Job, owner=other_user, variations_per_video=1)
    body = api.get("/api/jobs/").json()
    assert body["count"] == 3
    assert [j["id"] for j in body["results"]] == [j.pk for j in mine]


def test_staff_see_every_job(other_user, user):
    theirs = baker.make(Job, owner=other_user, variations_per_video=1)
    staff = baker.make("auth.User", is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    assert client.get(f"/api/jobs/{theirs.pk}/").status_code == 200
    assert client.get("/api/jobs/").json()["count"] == 1


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
    assert response.status_code in (401, 403)


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
    assert client.post("/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json").status_code == 400


def test_download_streams_a_store_zip_with_a_manifest(api, upload):
    job = _completed_job(api, upload, names=("promo.mov", "b.mp4"), variations=2)
    response = api.get(f"/api/jobs/{job.pk}/download/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    data = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(data)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    names = archive.namelist()
    assert sorted(names) == sorted(
        ["promo/promo_v01.mp4", "promo/promo_v02.mp4", "b/b_v01.mp4", "b/b_v02.mp4", "manifest.json"]
    )
    assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["job"] == job.pk
    by_file = {entry["file"]: entry for entry in manifest["outputs"]}
    output = job.outputs.get(source__position=0, variation_index=1)
    assert by_file["promo/promo_v02.mp4"]["effects"] == output.effects
    assert by_file["promo/promo_v02.mp4"]["source"] == "promo.mov"
    assert archive.read("promo/promo_v02.mp4") == storage.output_path(output).read_bytes()


def test_download_without_outputs_is_409_and_after_expiry_410(api, user):
    job = baker.make(Job, owner=user, variations_per_video=1)
    response = api.get(f"/api/jobs/{job.pk}/download/")
    assert response.status_code == 409
    assert "not finished yet" in response.json()["detail"]
    Job.objects.filter(pk=job.pk).update(status=Status.CANCELLED)
    assert "no finished variations" in api.get(f"/api/jobs/{job.pk}/download/").json()["detail"]
    Job.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api.get(f"/api/jobs/{job.pk}/download/").status_code == 410


def test_thumbnail_is_served_to_the_owner(api, upload, user):
    job = _completed_job(api, upload, variations=1)
    response = api.get(f"/api/jobs/{job.pk}/thumbnail/")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert b"".join(response.streaming_content)[:4] == b"RIFF"
    empty = baker.make(Job, owner=user, variations_per_video=1)
    assert api.get(f"/api/jobs/{empty.pk}/thumbnail/").status_code == 404


def test_delete_removes_rows_and_files(api, upload):
    job = _completed_job(api, upload, variations=1)
    assert files_under(storage.job_folder(job.pk))
    response = api.delete(f"/api/jobs/{job.pk}/")
    assert response.status_code == 204
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not storage.job_folder(job.pk).exists()


def test_delete_of_a_queued_job_cancels_and_removes_it(api, upload):
    job_id = _post(api, upload).json()["id"]
    job = Job.objects.get(pk=job_id)
    assert api.delete(f"/api/jobs/{job_id}/").status_code == 204
    assert not storage.job_folder(job.pk).exists()
    processor.run_job(job_id)  # the task arrives late: nothing happens, nothing is written
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
    from io import StringIO

    from django.core.management import call_command

    errors = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"), stderr=errors)
    schema = (tmp_path / "schema.yml").read_text()
    for path in ("/api/jobs/{id}/cancel/", "/api/jobs/{id}/download/", "/api/auth/token/", "/api/health/"):
        assert f"  {path}:" in schema
