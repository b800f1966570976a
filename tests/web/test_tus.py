"""Resumable uploads (tus 1.0.0 at /api/uploads/), step by step, and the job made of finished ones."""

from __future__ import annotations

import base64
import socket
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import requests
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from jobs import storage
from jobs.models import Job, Upload
from jobs.services import resumable, uploads
from jobs.storage import resumable as resumable_files
from jobs.worker import cleanup, runner

TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


def _metadata(name: str) -> str:
    return f"filename {base64.b64encode(name.encode()).decode()},filetype {base64.b64encode(b'video/mp4').decode()}"


def _create(api, length: int, name: str = "clip.mp4", **headers):
    return api.post(
        "/api/uploads/", HTTP_UPLOAD_LENGTH=str(length), HTTP_UPLOAD_METADATA=_metadata(name), **TUS, **headers
    )


def _patch(api, location: str, offset: int, data: bytes, **headers):
    return api.generic(
        "PATCH",
        urlsplit(location).path,
        data,
        content_type="application/offset+octet-stream",
        **{**TUS, "HTTP_UPLOAD_OFFSET": str(offset), **headers},
    )


def _head(api, location: str):
    return api.head(urlsplit(location).path, **TUS)


def _sent(api, data: bytes, name: str = "clip.mp4", pieces: int = 3) -> str:
    """A whole upload sent in `pieces` PATCHes; its id."""
    location = _create(api, len(data), name)["Location"]
    step = -(-len(data) // pieces)
    for offset in range(0, len(data), step):
        response = _patch(api, location, offset, data[offset : offset + step])
        assert response.status_code == 204, response.content
        assert response["Upload-Offset"] == str(min(offset + step, len(data)))
    return location.rstrip("/").rsplit("/", 1)[1]


def test_options_tells_the_version_the_extensions_and_the_largest_upload(api, settings):
    response = api.options("/api/uploads/")
    assert response.status_code == 204
    assert response["Tus-Version"] == "1.0.0" and response["Tus-Resumable"] == "1.0.0"
    assert response["Tus-Extension"] == "creation,termination,expiration"
    assert response["Tus-Max-Size"] == str(settings.MAX_UPLOAD_BYTES)


def test_create_patch_head_and_the_bytes_arrive_whole(api, clips, user):
    data = clips().read_bytes()
    response = _create(api, len(data))
    assert response.status_code == 201, response.content
    assert response["Tus-Resumable"] == "1.0.0" and response["Upload-Expires"].endswith("GMT")
    location = response["Location"]
    assert location.startswith("http://testserver/api/uploads/")
    head = _head(api, location)
    assert (head.status_code, head["Upload-Offset"], head["Upload-Length"]) == (200, "0", str(len(data)))
    assert head["Cache-Control"] == "no-store"
    half = len(data) // 2
    assert _patch(api, location, 0, data[:half])["Upload-Offset"] == str(half)
    assert _head(api, location)["Upload-Offset"] == str(half)
    assert _patch(api, location, half, data[half:]).status_code == 204
    upload = Upload.objects.get(owner=user)
    assert upload.is_finished and upload.filename == "clip.mp4"
    assert resumable_files.path_of(upload.pk).read_bytes() == data


def test_each_refusal(api, api_client_for, other_user, settings, refused):
    location = _create(api, 100)["Location"]
    refused(_patch(api, location, 10, b"x" * 10), 409, "Upload-Offset")  # not where the upload stands
    refused(_patch(api, location, 0, b"x" * 101), 413, "past the upload's length")
    refused(_create(api, settings.MAX_UPLOAD_BYTES + 1), 413, "Upload-Length", "Tus-Max-Size")
    refused(_create(api, 0), 400, "empty")
    refused(api.post("/api/uploads/", HTTP_UPLOAD_LENGTH="abc", HTTP_UPLOAD_METADATA=_metadata("a.mp4"), **TUS), 400)
    refused(api.post("/api/uploads/", HTTP_UPLOAD_LENGTH="10", **TUS), 400, "filename")
    refused(_create(api, 10, "../../etc/passwd.mp4"), 400, "not allowed")
    refused(api.post("/api/uploads/", HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=_metadata("a.mp4")), 412)
    wrong_type = api.generic(
        "PATCH", urlsplit(location).path, b"x", content_type="text/plain", HTTP_UPLOAD_OFFSET="0", **TUS
    )
    refused(wrong_type, 415, "offset+octet-stream")
    theirs = api_client_for(other_user)
    for response in (
        _head(theirs, location),
        _patch(theirs, location, 0, b"x"),
        theirs.delete(urlsplit(location).path, **TUS),
    ):
        assert response.status_code == 404  # another user's upload
    assert Upload.objects.get().offset == 0


def test_no_credentials_is_a_401_and_the_body_is_never_read(api, client):
    location = _create(api, 100)["Location"]
    for response in (
        client.options("/api/uploads/"),
        client.post("/api/uploads/", HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=_metadata("a.mp4"), **TUS),
        _head(client, location),
        _patch(client, location, 0, b"x" * 10),
        client.delete(urlsplit(location).path, **TUS),
    ):
        assert response.status_code == 401
    assert Upload.objects.get().offset == 0


def test_delete_removes_the_upload_and_its_bytes(api):
    location = _create(api, 100)["Location"]
    upload = Upload.objects.get()
    assert resumable_files.path_of(upload.pk).exists()
    assert api.delete(urlsplit(location).path, **TUS).status_code == 204
    assert not Upload.objects.exists() and not resumable_files.path_of(upload.pk).exists()
    assert _head(api, location).status_code == 404


def test_open_uploads_are_bounded_and_count_against_the_quota(api, settings, refused):
    settings.MAX_OPEN_UPLOADS_PER_USER = 2
    settings.USER_STORAGE_BYTES = 1000
    assert _create(api, 600).status_code == 201
    refused(_create(api, 600), 507, "quota")  # the first one's 600 bytes are reserved, though none arrived
    assert _create(api, 400).status_code == 201
    refused(_create(api, 1), 429, "MAX_OPEN_UPLOADS_PER_USER")


def test_expired_uploads_answer_404_and_the_cleanup_removes_them(api, settings):
    settings.UPLOAD_EXPIRY_HOURS = 1
    location = _create(api, 100)["Location"]
    upload = Upload.objects.get()
    resumable_files.path_of("orphan-of-a-crash").write_bytes(b"x")  # a file whose row never came
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert _head(api, location).status_code == 404
        summary = cleanup.run()
    assert "remove expired resumable uploads and files no upload owns" in summary.actions
    assert not Upload.objects.exists() and not resumable_files.path_of(upload.pk).exists()
    assert not resumable_files.path_of("orphan-of-a-crash").exists()
    resumable_files.path_of("being-made").write_bytes(b"x")  # its row is coming: too young to be an orphan
    assert not resumable.expirable() and resumable_files.path_of("being-made").exists()


def test_a_job_of_finished_uploads_is_made_checked_and_run_and_uses_each_upload_once(
    api, clips, user, refused, django_capture_on_commit_callbacks
):
    first, second = _sent(api, clips().read_bytes(), "promo.mov"), _sent(api, clips(seconds=2).read_bytes(), "b.mp4")
    body = {"uploads": [first, second], "variations": 2, "formats": ["1:1"], "name": "From tus"}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert [s.original_name for s in job.sources.order_by("position")] == ["promo.mov", "b.mp4"]
    assert job.name == "From tus" and list(job.formats) == ["1:1"]
    assert not Upload.objects.exists() and not any(resumable_files.path_of(i).exists() for i in (first, second))
    runner.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == "completed" and job.outputs.count() == 4
    assert storage.upload_path(job.sources.get(position=1)).read_bytes() == clips(seconds=2).read_bytes()
    refused(api.post("/api/jobs/", body, format="json"), 400, "no such upload")  # each is used once


def test_a_job_of_uploads_gets_the_same_checks_and_a_refusal_names_uploads(api, clips, refused, files_under):
    unfinished = _create(api, 100)["Location"].rstrip("/").rsplit("/", 1)[1]
    refused(api.post("/api/jobs/", {"uploads": [unfinished]}, format="json"), 400, "not finished")
    refused(api.post("/api/jobs/", {"uploads": ["nope"]}, format="json"), 400, "no such upload")
    refused(api.post("/api/jobs/", {"uploads": "x"}, format="json"), 400, "uploads")
    not_a_video = _sent(api, b"not a video at all" * 100, "a.mp4")
    response = api.post("/api/jobs/", {"uploads": [not_a_video], "variations": 2}, format="json")
    refused(response, 400, "a.mp4", "not a usable video")
    assert response.json()["field"] == "uploads"
    video = _sent(api, clips().read_bytes())
    refused(api.post("/api/jobs/", {"uploads": [video], "variations": 999}, format="json"), 400, "variations")
    assert not Job.objects.exists()
    assert Upload.objects.filter(pk=video).exists()  # a refused job leaves the upload to try again


def _raw_patch(live_server, token: str, location: str, offset: int, declared: int, sent: bytes) -> None:
    """A PATCH declaring `declared` bytes whose connection dies after `sent`."""
    host, port = urlsplit(live_server.url).hostname, urlsplit(live_server.url).port
    head = (
        f"PATCH {urlsplit(location).path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Token {token}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port)) as connection:
        connection.sendall(head + sent)
        connection.shutdown(socket.SHUT_WR)


@pytest.mark.django_db(transaction=True)
def test_a_connection_killed_mid_patch_keeps_what_arrived_and_the_upload_resumes_from_head(live_server, user, clips):
    data = clips(seconds=2).read_bytes()
    token = Token.objects.get_or_create(user=user)[0].key
    headers = {"Authorization": f"Token {token}", "Tus-Resumable": "1.0.0"}
    created = requests.post(
        f"{live_server.url}/api/uploads/",
        headers={**headers, "Upload-Length": str(len(data)), "Upload-Metadata": _metadata("cut.mp4")},
        timeout=10,
    )
    location = created.headers["Location"]
    half = len(data) // 2
    _raw_patch(live_server, token, location, 0, len(data), data[:half])
    deadline = time.monotonic() + 10
    while (offset := int(requests.head(location, headers=headers, timeout=10).headers["Upload-Offset"])) < half:
        assert time.monotonic() < deadline, f"the offset stayed at {offset}"
        time.sleep(0.05)
    assert offset == half
    rest = requests.patch(
        location,
        data=data[offset:],
        headers={**headers, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
        timeout=10,
    )
    assert rest.status_code == 204 and rest.headers["Upload-Offset"] == str(len(data))
    upload = Upload.objects.get()
    assert resumable_files.path_of(upload.pk).read_bytes() == data
    job = requests.post(
        f"{live_server.url}/api/jobs/", json={"uploads": [upload.pk], "variations": 1}, headers=headers, timeout=30
    )
    assert job.status_code == 201, job.text


def test_ids_that_are_not_an_uploads_are_404_or_400_never_a_5xx(api, refused):
    for path in ("/api/uploads/%00/", "/api/uploads/" + "a" * 33 + "/", "/api/uploads/ABC/"):
        assert _head(api, "http://testserver" + path).status_code == 404
    bad = ["\x00", "a" * 10_000, "../x", "0" * 32]
    refused(api.post("/api/jobs/", {"uploads": bad[:1]}, format="json"), 400, "no such upload")
    refused(api.post("/api/jobs/", {"uploads": bad[1:]}, format="json"), 400, "no such upload")
    refused(api.post("/api/jobs/", {"uploads": [1, 2]}, format="json"), 400, "uploads")
    refused(api.post("/api/jobs/", [1, 2], format="json"), 400, "uploads")


def test_odd_header_values_are_a_400_never_a_5xx(api, refused):
    refused(api.post("/api/uploads/", HTTP_UPLOAD_LENGTH="²", HTTP_UPLOAD_METADATA=_metadata("a.mp4"), **TUS), 400)
    refused(api.post("/api/uploads/", HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA="filename é", **TUS), 400)
    bad_utf8 = "filename " + base64.b64encode(b"\xff\xfe.mp4").decode()
    refused(api.post("/api/uploads/", HTTP_UPLOAD_LENGTH="10", HTTP_UPLOAD_METADATA=bad_utf8, **TUS), 400)
    location = _create(api, 100)["Location"]
    refused(_patch(api, location, 0, b"x", HTTP_UPLOAD_OFFSET="٣"), 400, "Upload-Offset")


def test_an_upload_deleted_while_its_bytes_arrive_is_a_404_and_nothing_counts_them(api, user):
    location = _create(api, 100)["Location"]
    upload = Upload.objects.get()

    def chunks():
        yield b"x" * 10
        resumable.terminate(upload)  # a DELETE from another tab, or the expiry
        yield b"y" * 10

    with pytest.raises(resumable.Refused) as refusal:
        resumable.receive(resumable.find(user, upload.pk), 0, chunks())
    assert refusal.value.status == 404
    assert not Upload.objects.exists() and not resumable_files.path_of(upload.pk).exists()
    assert _head(api, location).status_code == 404


def test_a_patch_that_read_an_old_offset_writes_nothing_once_it_has_the_lock(api, user):
    data = bytes(range(200))
    _create(api, len(data))
    stale = Upload.objects.get()  # as a second PATCH read it, before the first moved it on
    resumable.receive(resumable.find(user, stale.pk), 0, iter([data[:100]]))
    with pytest.raises(resumable.Refused) as refusal:
        resumable.receive(stale, 0, iter([b"z" * 100]))
    assert refusal.value.status == 409
    assert resumable_files.path_of(stale.pk).read_bytes() == data[:100]  # the first PATCH's bytes, untouched


def test_a_job_of_an_upload_removed_meanwhile_is_a_400(api, clips, user, refused):
    video = _sent(api, clips().read_bytes())
    files = resumable.finished_files(user, [video])

    def delete_once_checked(execute, sql, params, many, context):
        if "jobs_upload" in sql and resumable_files.path_of(video).exists():  # admission counts the uploads
            resumable_files.path_of(video).unlink()  # a DELETE between the probe and the link into the job
        return execute(sql, params, many, context)

    with connection.execute_wrapper(delete_once_checked), pytest.raises(resumable.Refused) as refusal:
        uploads.create_job(user, files, 1)
    resumable.close(files)
    assert (refusal.value.status, refusal.value.field) == (400, "uploads")
    assert not Job.objects.exists()


def test_a_job_of_uploads_counts_them_against_its_teams_quota(api, clips, settings, reservation, refused):
    """The uploads' bytes count against the cap and the user's quota from the moment they are made, but
    against no team's: the team's check must count them when their job comes."""
    settings.TEAM_STORAGE_BYTES = reservation(1) - 1
    video = _sent(api, clips().read_bytes())
    refused(api.post("/api/jobs/", {"uploads": [video], "variations": 1}, format="json"), 507, "team")
    settings.TEAM_STORAGE_BYTES = reservation(1)
    assert api.post("/api/jobs/", {"uploads": [video], "variations": 1}, format="json").status_code == 201
