"""Every bad upload gets a 4xx JSON message naming the problem and leaves no row and no file."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django_q.models import OrmQ

from jobs.models import Job, OutputFile, SourceVideo
from tests.conftest import files_under


@pytest.fixture
def assert_nothing_left(jobs_dir, db):
    yield
    assert Job.objects.count() == SourceVideo.objects.count() == OutputFile.objects.count() == 0
    assert OrmQ.objects.count() == 0
    assert files_under(jobs_dir) == []


def _post(api, files, **fields):
    return api.post("/api/jobs/", {"videos": files, **fields}, format="multipart")


def _expect(response, status: int, *words: str):
    assert response.status_code == status, response.content
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail


def test_no_files(api, assert_nothing_left):
    _expect(api.post("/api/jobs/", {"variations": 2}, format="multipart"), 400, "no videos")


def test_too_many_files(api, upload, settings, assert_nothing_left):
    settings.MAX_FILES = 2
    _expect(_post(api, [upload(f"{i}.mp4") for i in range(3)]), 400, "too many videos", "3 sent", "at most 2")


def test_text_file_renamed_mp4(api, upload, assert_nothing_left):
    fake = SimpleUploadedFile("notes.mp4", b"just some text\n" * 50, content_type="video/mp4")
    _expect(_post(api, [upload("good.mp4"), fake]), 400, "notes.mp4", "not a usable video")


def test_zero_byte_file(api, assert_nothing_left):
    _expect(_post(api, [SimpleUploadedFile("empty.mp4", b"", content_type="video/mp4")]), 400, "empty.mp4", "empty")


def test_a_video_that_is_not_mp4_or_mov(api, tmp_path, assert_nothing_left):
    from tests.media import make_clip

    webm = make_clip(tmp_path / "x.mkv", seconds=0.5, audio=False)
    _expect(_post(api, [SimpleUploadedFile("x.mp4", webm.read_bytes())]), 400, "only MP4 and MOV")


def test_file_over_the_upload_limit_is_413(api, upload, settings, assert_nothing_left):
    settings.MAX_UPLOAD_BYTES = 1000
    _expect(_post(api, [upload("big.mp4")]), 413, "big.mp4", "over the limit of 1000 bytes")


def test_request_over_the_total_limit_is_refused_before_reading(api, upload, settings, assert_nothing_left):
    settings.MAX_UPLOAD_BYTES = 1000
    settings.MAX_FILES = 1
    blob = SimpleUploadedFile("huge.mp4", b"\0" * (2 * 1024 * 1024))  # never parsed: refused on Content-Length
    _expect(_post(api, [blob]), 413, "the upload is", "over the limit")


@pytest.mark.parametrize("value, shown", [(0, "not 0"), (21, "not 21"), ("abc", "not 'abc'"), ("2.5", "not '2.5'")])
def test_variations_out_of_range_or_not_a_number(api, upload, value, shown, assert_nothing_left):
    _expect(_post(api, [upload()], variations=value), 400, "variations must be a whole number from 1 to 20", shown)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("../../etc/passwd.mp4", "looks like a path"),
        ("..\\..\\boot.mp4", "looks like a path"),
        ("/abs/clip.mp4", "looks like a path"),
        ("bad\x07name.mp4", "control characters"),
        ("line\nbreak.mp4", "control characters"),
        ("rtl\u202eevil.mp4", "control characters"),
    ],
)
def test_hostile_file_names(api, clips, name, problem, assert_nothing_left):
    # Build the body by hand: Django's test client would strip the path itself.
    body = encode_multipart(BOUNDARY, {"variations": "2"})
    part = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="videos"; filename="{name}"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + clips().read_bytes()
        + b"\r\n"
    )
    body = part + body
    response = api.generic("POST", "/api/jobs/", body, content_type=MULTIPART_CONTENT)
    _expect(response, 400, "is not allowed", problem)


def test_a_json_body_is_refused(api, assert_nothing_left):
    response = api.post("/api/jobs/", {"videos": [], "variations": 2}, format="json")
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]


def test_names_that_share_a_zip_folder_or_climb_out_of_it_are_made_safe(api, upload):
    from jobs import processor

    names = ["a.mp4", "A.mov", "...mp4", ". .mp4"]
    response = _post(api, [upload(n) for n in names], variations=1)
    assert response.status_code == 201
    assert [s["name"] for s in response.json()["sources"]] == ["a.mp4", "A (2).mov", "...mp4", ". .mp4"]
    job_id = response.json()["id"]
    processor.run_job(job_id)
    from jobs.models import Job

    entries = sorted(o.archive_name for o in Job.objects.get(pk=job_id).outputs.select_related("source"))
    assert entries == ["A (2)/A (2)_v01.mp4", "a/a_v01.mp4", "video3/video3_v01.mp4", "video4/video4_v01.mp4"]


def _csrf_client(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/upload/")  # sets the csrftoken cookie
    return client, client.cookies["csrftoken"].value


def test_session_upload_over_the_limit_is_dropped_while_streaming(user, upload, settings, assert_nothing_left):
    """The browser path: the CSRF check reads the body first, and the size limit already applies there."""
    settings.MAX_UPLOAD_BYTES = 1000
    client, token = _csrf_client(user)
    response = client.post("/api/jobs/", {"videos": [upload("big.mp4")], "variations": 2}, HTTP_X_CSRFTOKEN=token)
    _expect(response, 413, "big.mp4: the file is over the limit of 1000 bytes")  # dropped, never measured whole


def test_session_upload_needs_the_csrf_token(user, upload, assert_nothing_left):
    client, _ = _csrf_client(user)
    response = client.post("/api/jobs/", {"videos": [upload("a.mp4")], "variations": 2})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_session_upload_with_the_token_works(user, upload):
    client, token = _csrf_client(user)
    response = client.post("/api/jobs/", {"videos": [upload("a.mp4")], "variations": 2}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201


def test_the_size_handler_skips_the_file_at_the_chunk_that_crosses_the_limit(settings, rf):
    from django.core.files.uploadhandler import SkipFile

    from jobs.upload_guard import FileSizeLimitHandler, oversize_uploads

    settings.MAX_UPLOAD_BYTES = 100
    request = rf.post("/api/jobs/")
    handler = FileSizeLimitHandler(request)
    handler.new_file("videos", "huge.mp4", "video/mp4", None)
    assert handler.receive_data_chunk(b"x" * 60, 0) == b"x" * 60
    with pytest.raises(SkipFile):
        handler.receive_data_chunk(b"x" * 60, 60)
    assert oversize_uploads(request) == ["huge.mp4"]


def test_session_request_over_the_total_limit_is_refused_before_the_csrf_check_reads_it(
    user, settings, assert_nothing_left
):
    settings.MAX_UPLOAD_BYTES = 1000
    settings.MAX_FILES = 1
    client, _ = _csrf_client(user)  # no token sent: the size answer comes first
    for path in ("/api/jobs/", "/upload/"):
        blob = SimpleUploadedFile("huge.mp4", b"\0" * (2 * 1024 * 1024))
        _expect(client.post(path, {"videos": [blob]}), 413, "the upload is", "over the limit")


@pytest.mark.parametrize("path", ["/api/jobs/", "/upload/"])
def test_hostile_names_are_refused_on_the_session_path_too(user, clips, path, assert_nothing_left):
    """A session request is parsed before the view (CSRF needs the body): the same strict rules apply."""
    client, token = _csrf_client(user)
    body = encode_multipart(BOUNDARY, {"variations": "2", "csrfmiddlewaretoken": token})
    part = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="videos"; filename="../../etc/passwd.mp4"\r\n'
            "Content-Type: video/mp4\r\n\r\n"
        ).encode()
        + clips().read_bytes()
        + b"\r\n"
    )
    response = client.generic("POST", path, part + body, content_type=MULTIPART_CONTENT, HTTP_X_CSRFTOKEN=token)
    _expect(response, 400, "'../../etc/passwd.mp4' is not allowed", "looks like a path")
