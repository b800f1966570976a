"""The ASGI application `make run` serves (videojobs/asgi.py): which requests go where, the 304 answered
before Django, downloads streamed from the event loop, bodies refused where none is taken."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile

import pytest
from asgiref.sync import async_to_sync
from rest_framework.authtoken.models import Token

from jobs.models import Job, Status
from jobs.web import job_watch
from jobs.web.api.etag import tag_of
from jobs.web.api.views import JobViewSet

asgi = pytest.importorskip("videojobs.asgi")


def _call(path: str, method: str = "GET", headers: dict | None = None, body: bytes = b"") -> tuple[int, dict, bytes]:
    """One request through the ASGI application: (status, headers, body)."""
    return async_to_sync(_acall)(path, method, headers, body)


async def _acall(path: str, method: str = "GET", headers: dict | None = None, body: bytes = b"", until=None):
    """The same, in the running loop; `until(sent)` ends it early (a stream) once it returns True."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    }  # fmt: skip
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the client stays until the answer is sent (then this is cancelled)

    done = asyncio.Event()

    async def send(message):
        sent.append(message)
        if until is not None and until(sent):
            done.set()

    app = asyncio.ensure_future(asgi.application(scope, receive, send))
    waiting = asyncio.ensure_future(done.wait())
    await asyncio.wait([app, waiting], return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if not app.done():  # a stream, ended here as a client that goes
        app.cancel()
        await asyncio.gather(app, return_exceptions=True)
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _token(user) -> str:
    return f"Token {Token.objects.get_or_create(user=user)[0].key}"


@pytest.mark.django_db(transaction=True)
def test_an_unchanged_jobs_poll_is_answered_304_before_django_and_anything_else_goes_on(
    make_job, user, other_user, monkeypatch
):
    job = make_job(status=Status.COMPLETED, outputs=1)
    tag, token = tag_of(job), _token(user)

    def not_here(*args, **kwargs):
        raise AssertionError("the 304 came from the view, not before Django")

    with monkeypatch.context() as patch:
        patch.setattr(JobViewSet, "retrieve", not_here)
        status, headers, body = _call(f"/api/jobs/{job.pk}/", headers={"Authorization": token, "If-None-Match": tag})
    assert (status, body, headers["etag"]) == (304, b"", tag)
    assert "no-cache" in headers["cache-control"]
    # The full view answers: another tag, another user's job, no token, a queued job.
    assert _call(f"/api/jobs/{job.pk}/", headers={"Authorization": _token(user), "If-None-Match": '"x"'})[0] == 200
    assert _call(f"/api/jobs/{job.pk}/", headers={"Authorization": _token(other_user), "If-None-Match": tag})[0] == 404
    assert _call(f"/api/jobs/{job.pk}/", headers={"If-None-Match": tag})[0] == 401
    queued = make_job(status=Status.QUEUED, outputs=0)
    status, headers, _ = _call(f"/api/jobs/{queued.pk}/", headers={"Authorization": _token(user)})
    assert (
        _call(f"/api/jobs/{queued.pk}/", headers={"Authorization": _token(user), "If-None-Match": headers["etag"]})[0]
        == 304
    )
    user.is_active = False
    user.save()
    assert _call(f"/api/jobs/{job.pk}/", headers={"Authorization": _token(user), "If-None-Match": tag})[0] == 401


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("plain_output_names")
def test_a_download_streams_from_the_event_loop_whole(make_job, user):
    job = make_job(status=Status.COMPLETED, outputs=3, size=300_000)
    status, headers, body = _call(f"/api/jobs/{job.pk}/download/", headers={"Authorization": _token(user)})
    assert status == 200, (status, headers, body[:300])
    assert int(headers["content-length"]) == len(body)
    assert sorted(zipfile.ZipFile(io.BytesIO(body)).namelist()) == [
        "a/a_v01.mp4", "a/a_v02.mp4", "a/a_v03.mp4", "manifest.json"
    ]  # fmt: skip
    output = job.outputs.order_by("variation_index").first()
    status, headers, body = _call(
        f"/api/jobs/{job.pk}/outputs/{output.pk}/file/", headers={"Authorization": _token(user), "Range": "bytes=10-19"}
    )
    assert (status, headers["content-range"], body) == (206, "bytes 10-19/300000", b"v" * 10)


@pytest.mark.django_db(transaction=True)
def test_the_routes_django_asgi_serves_refuse_a_body_unread(make_job, user):
    job = make_job(status=Status.PROCESSING, outputs=1)
    for path in (f"/api/jobs/{job.pk}/events/", f"/api/jobs/{job.pk}/download/"):
        status, _, body = _call(path, headers={"Content-Length": "1000000000"}, body=b"x")
        assert status == 413 and b"no request body" in body
    assert Job.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_head_of_a_download_reads_nothing_and_gives_its_slot_back(make_job, user, settings):
    settings.MAX_DOWNLOADS_PER_USER = 1
    job = make_job(status=Status.COMPLETED, outputs=2, size=300_000)
    token = _token(user)
    for _ in range(2):  # the first HEAD's slot is free again for the second
        status, headers, body = _call(f"/api/jobs/{job.pk}/download/", "HEAD", headers={"Authorization": token})
        assert (status, body) == (200, b"") and int(headers["content-length"]) > 600_000
    assert _call(f"/api/jobs/{job.pk}/download/", headers={"Authorization": token})[0] == 200
    assert _call(f"/api/jobs/{job.pk}/events/", "HEAD", headers={"Authorization": token})[0] == 404  # GET only


@pytest.mark.django_db(transaction=True)
def test_a_database_that_fails_the_fast_304_hands_the_poll_to_the_full_view(make_job, user, monkeypatch):
    from django.db import OperationalError

    from jobs.web.api import not_modified

    job = make_job(status=Status.COMPLETED, outputs=1)
    tag, token = tag_of(job), _token(user)

    def restarted(*args):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(not_modified, "_row", restarted)  # a database restart, which no test can cause
    status, headers, _ = _call(f"/api/jobs/{job.pk}/", headers={"Authorization": token, "If-None-Match": tag})
    assert (status, headers["etag"]) == (304, tag)  # from the view, not a 500


@pytest.mark.django_db(transaction=True)
def test_a_poll_of_a_job_a_stream_follows_gets_the_streams_json_before_django(api, make_job, user, monkeypatch):
    job = make_job(status=Status.PROCESSING, outputs=2)
    token = _token(user)
    full = api.get(f"/api/jobs/{job.pk}/")
    headers = {"Authorization": token}

    def first_event(sent) -> bool:
        return any(b"event: job" in m.get("body", b"") for m in sent if m["type"] == "http.response.body")

    async def scenario():
        stream = asyncio.ensure_future(_acall(f"/api/jobs/{job.pk}/events/", headers=headers, until=lambda s: False))
        while not job_watch.cached(job.pk, full["ETag"], "http://testserver/"):
            await asyncio.sleep(0.01)
        with monkeypatch.context() as patch:
            patch.setattr(JobViewSet, "retrieve", _not_here)
            polled = await _acall(f"/api/jobs/{job.pk}/", headers=headers)
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)
        return polled

    status, answer_headers, body = async_to_sync(scenario)()
    assert (status, answer_headers["etag"], answer_headers["content-type"]) == (200, full["ETag"], "application/json")
    assert json.loads(body) == full.json()


def _not_here(*args, **kwargs):
    raise AssertionError("answered by the view, not before Django")
