"""Upload requests are guarded before anything reads their body: size limits and strict file names."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import SkipFile
from django.http import HttpResponse
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from rest_framework.authtoken.models import Token

from jobs.web.upload_guard import FileSizeLimitHandler, UploadGuardMiddleware, oversize_uploads


def _body_with_file_name(name: str, content: bytes, **fields: str) -> bytes:
    """A multipart body built by hand: Django's test client would strip a path from the name itself."""
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="videos"; filename="{name}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    return part + content + b"\r\n" + encode_multipart(BOUNDARY, {"variations": "2", **fields})


def test_file_over_the_upload_limit_is_413(refused, api, upload, settings, nothing_left):
    settings.MAX_UPLOAD_BYTES = 1000
    response = api.post("/api/jobs/", {"videos": [upload("big.mp4")]}, format="multipart")
    refused(response, 413, "big.mp4", "over the limit of 1000 bytes")


def test_request_over_the_total_limit_is_refused_before_reading(refused, api, settings, nothing_left):
    settings.MAX_UPLOAD_BYTES = 1000
    settings.MAX_FILES = 1
    blob = SimpleUploadedFile("huge.mp4", b"\0" * (2 * 1024 * 1024))  # never parsed: refused on Content-Length
    refused(api.post("/api/jobs/", {"videos": [blob]}, format="multipart"), 413, "the upload is", "over the limit")


def test_the_size_handler_skips_the_file_at_the_chunk_that_crosses_the_limit(settings, rf):
    settings.MAX_UPLOAD_BYTES = 100
    request = rf.post("/api/jobs/")
    handler = FileSizeLimitHandler(request)
    handler.new_file("videos", "huge.mp4", "video/mp4", None)
    assert handler.receive_data_chunk(b"x" * 60, 0) == b"x" * 60
    with pytest.raises(SkipFile):
        handler.receive_data_chunk(b"x" * 60, 60)
    assert oversize_uploads(request) == ["huge.mp4"]


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
def test_hostile_file_names_are_refused_not_trimmed(refused, api, clips, name, problem, nothing_left):
    body = _body_with_file_name(name, clips().read_bytes())
    response = api.generic("POST", "/api/jobs/", body, content_type=MULTIPART_CONTENT)
    refused(response, 400, "is not allowed", problem)
    assert response.json()["file"] == name and response.json()["field"] == "videos"  # the name as it was sent


def test_session_upload_over_the_limit_is_dropped_while_streaming(refused, csrf_client, upload, settings, nothing_left):
    """The browser path: the CSRF check reads the body first, and the size limit already applies there."""
    settings.MAX_UPLOAD_BYTES = 1000
    client, token = csrf_client
    response = client.post("/api/jobs/", {"videos": [upload("big.mp4")], "variations": 2}, HTTP_X_CSRFTOKEN=token)
    refused(response, 413, "big.mp4: the file is over the limit of 1000 bytes")  # dropped, never measured whole


def test_session_upload_needs_the_csrf_token(csrf_client, upload, nothing_left):
    client, _ = csrf_client
    response = client.post("/api/jobs/", {"videos": [upload("a.mp4")], "variations": 2})
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_session_upload_with_the_token_works(csrf_client, upload):
    client, token = csrf_client
    response = client.post("/api/jobs/", {"videos": [upload("a.mp4")], "variations": 2}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 201


def test_session_request_over_the_total_limit_is_refused_before_the_csrf_check_reads_it(
    refused, csrf_client, settings, nothing_left
):
    settings.MAX_UPLOAD_BYTES = 1000
    settings.MAX_FILES = 1
    client, _ = csrf_client  # no token sent: the size answer comes first
    blob = SimpleUploadedFile("huge.mp4", b"\0" * (2 * 1024 * 1024))
    refused(client.post("/api/jobs/", {"videos": [blob]}), 413, "the upload is", "over the limit")
    page = client.post("/upload/", {"videos": [SimpleUploadedFile("huge.mp4", b"\0" * (2 * 1024 * 1024))]})
    assert page.status_code == 413 and page["Content-Type"].startswith("text/html")
    assert "the upload is" in page.content.decode() and 'id="upload-form"' in page.content.decode()


def test_hostile_names_are_refused_on_the_session_path_too(refused, csrf_client, clips, nothing_left):
    """A session request is parsed before the view (CSRF needs the body): the same strict rules apply."""
    client, token = csrf_client
    body = _body_with_file_name("../../etc/passwd.mp4", clips().read_bytes(), csrfmiddlewaretoken=token)
    response = client.generic("POST", "/api/jobs/", body, content_type=MULTIPART_CONTENT, HTTP_X_CSRFTOKEN=token)
    refused(response, 400, "'../../etc/passwd.mp4' is not allowed", "looks like a path")
    assert response.json()["file"] == "../../etc/passwd.mp4"  # so that the upload page can mark it
    page = client.generic("POST", "/upload/", body, content_type=MULTIPART_CONTENT, HTTP_X_CSRFTOKEN=token)
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")  # the form without JavaScript
    assert "is not allowed: it looks like a path" in page.content.decode()


class _Unreadable(io.BytesIO):
    def read(self, *args):
        raise AssertionError("the body of an anonymous upload was read")

    readline = read


@pytest.mark.parametrize("path, status", [("/api/jobs/", 401), ("/upload/", 302)])
def test_an_anonymous_upload_is_refused_before_its_body_is_read(rf, db, settings, path, status):
    """A junk session cookie used to be enough to make the server parse and spool the whole body."""
    request = rf.generic("POST", path, b"x" * 1000, content_type=MULTIPART_CONTENT, HTTP_COOKIE="sessionid=junk")
    request._stream = _Unreadable()
    SessionMiddleware(lambda r: None).process_request(request)
    request.user = AnonymousUser()
    response = UploadGuardMiddleware(lambda r: HttpResponse("the view ran"))(request)
    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"] == "Token"
    else:
        assert response["Location"].startswith("/login/?next=")


def test_a_bad_token_is_refused_before_the_body_is_read(client, db):
    response = client.generic(
        "POST", "/api/jobs/", b"x" * 1000, content_type=MULTIPART_CONTENT, HTTP_AUTHORIZATION="Token not-a-token"
    )
    assert response.status_code == 401


def test_the_format_suffix_route_is_guarded_too(api, refused, settings, client, nothing_left):
    """DRF also routes /api/jobs.json to the upload view: the same limits apply before the body is read."""
    settings.MAX_UPLOAD_BYTES, settings.MAX_FILES = 1000, 1
    blob = SimpleUploadedFile("huge.mp4", b"\0" * (2 * 1024 * 1024))
    refused(api.post("/api/jobs.json", {"videos": [blob]}, format="multipart"), 413, "the upload is")
    anonymous = client.generic("POST", "/api/jobs.json", b"x" * 1000, content_type=MULTIPART_CONTENT)
    assert anonymous.status_code == 401


# --- every other route: small bodies only, refused unread ------------------------------------------------
ANONYMOUS_ROUTES = ["/login/", "/admin/login/", "/jobs/abc/cancel/", "/api/auth/token/", "/api/jobs/abc/cancel/", "/x/"]


def _big_multipart(size: int) -> bytes:
    return _body_with_file_name("filler.mp4", b"\0" * size)


@pytest.mark.parametrize("path", ANONYMOUS_ROUTES)
def test_a_big_body_to_any_other_route_is_413_whatever_the_cookies(client, db, settings, path, files_under):
    """A forged csrftoken cookie plus the same value in X-CSRFToken used to make Django parse and spool the
    whole multipart body (the CSRF check reads request.POST) before the 403 or the login page."""
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # anything parsed would be spooled to disk
    client.cookies["csrftoken"] = "a" * 32
    response = client.generic(
        "POST", path, _big_multipart(200_000), content_type=MULTIPART_CONTENT, HTTP_X_CSRFTOKEN="a" * 32
    )
    assert response.status_code == 413
    assert "at most 65536 bytes" in response.content.decode()
    assert files_under(Path(settings.FILE_UPLOAD_TEMP_DIR)) == []


def test_a_signed_in_user_gets_413_too_where_no_file_is_taken(api, make_job):
    job = make_job(status="processing")
    response = api.generic(
        "POST", f"/api/jobs/{job.pk}/cancel/", _big_multipart(100_000), content_type=MULTIPART_CONTENT
    )
    assert response.status_code == 413 and "at most" in response.json()["detail"]


def test_a_small_body_still_gets_through(client, db):
    response = client.post("/login/", {"username": "nobody", "password": "x"})
    assert response.status_code == 200  # the form again, with its error: not refused for size


def _without_length(rf, path: str, **extra):
    """A request whose body has no declared length (chunked), as gunicorn hands it to Django."""
    request = rf.generic("POST", path, b"", content_type=MULTIPART_CONTENT, HTTP_TRANSFER_ENCODING="chunked", **extra)
    request.META.pop("CONTENT_LENGTH", None)
    request._stream = _Unreadable()
    SessionMiddleware(lambda r: None).process_request(request)
    request.user = AnonymousUser()
    return request


@pytest.mark.parametrize("path", ["/login/", "/api/auth/token/", "/jobs/abc/cancel/"])
def test_a_body_without_a_length_is_411_where_no_file_is_taken(rf, db, path):
    response = UploadGuardMiddleware(lambda r: HttpResponse("the view ran"))(_without_length(rf, path))
    assert response.status_code == 411


def test_a_body_without_a_length_to_the_upload_route_needs_a_signed_in_client(rf, user):
    api_token = Token.objects.get_or_create(user=user)[0].key
    guard = UploadGuardMiddleware(lambda r: HttpResponse("the view ran"))
    assert guard(_without_length(rf, "/api/jobs/")).status_code == 401
    signed_in = guard(_without_length(rf, "/api/jobs/", HTTP_AUTHORIZATION=f"Token {api_token}"))
    assert signed_in.content == b"the view ran"


def _raw_request(live_server, head: str) -> bytes:
    """Send only a request's head (no body) and read the answer: a server that waited for the body would
    never answer."""
    host, port = live_server.thread.host, live_server.thread.port
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/api/auth/token/"])
def test_a_running_server_answers_413_before_the_body_is_sent(live_server, path, files_under, settings):
    """Black-box: 60 MB declared, not one byte of it sent; the answer comes at once."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nCookie: csrftoken={'a' * 32}\r\n"
        f"X-CSRFToken: {'a' * 32}\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        "Content-Length: 60000000\r\n\r\n"
    )
    assert _raw_request(live_server, head).startswith(b"HTTP/1.1 413")
    assert files_under(Path(settings.FILE_UPLOAD_TEMP_DIR)) == []


def test_a_junk_content_length_is_refused(client, db):
    response = client.generic("POST", "/login/", b"x", content_type="text/plain", CONTENT_LENGTH="lots")
    assert response.status_code == 413
