"""The job JSON's ETag (a version the row keeps) and the event stream that pushes the JSON as it changes."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.test import AsyncClient
from model_bakery import baker
from rest_framework.authtoken.models import Token

from jobs.models import Job, Membership, OutputFile, SourceVideo, Status
from jobs.web import events, job_watch


@pytest.fixture
def queued(make_job):
    return make_job(status=Status.PROCESSING, outputs=1)


def test_an_unchanged_job_is_a_304_for_one_indexed_query(api, queued, django_assert_num_queries):
    first = api.get(f"/api/jobs/{queued.pk}/")
    tag = first["ETag"]
    assert first.status_code == 200 and tag.startswith('"') and first["Cache-Control"] == "private, no-cache"
    with django_assert_num_queries(2):  # the token, and the job's row
        again = api.get(f"/api/jobs/{queued.pk}/", HTTP_IF_NONE_MATCH=tag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == tag
    assert api.get(f"/api/jobs/{queued.pk}/", HTTP_IF_NONE_MATCH='"another"').status_code == 200


@pytest.mark.django_db(transaction=True)  # the version moves once a change to a video or an output commits
def test_every_change_the_json_shows_moves_the_etag_and_the_workers_bookkeeping_does_not(api, make_job):
    job = make_job(status=Status.PROCESSING, outputs=1)
    source = job.sources.get()

    def tag() -> str:
        return api.get(f"/api/jobs/{job.pk}/")["ETag"]

    seen = [tag()]
    for change in (
        lambda: SourceVideo.objects.filter(pk=source.pk).update(progress=40),  # a progress step
        lambda: baker.make(OutputFile, job=job, source=source, variation_index=5, path="outputs/x.mp4", size=1),
        lambda: Job.objects.filter(pk=job.pk).update(name="Renamed"),
        lambda: OutputFile.objects.filter(job=job, variation_index=5).delete(),
        lambda: job.fail("stopped", [Status.PROCESSING]),
    ):
        change()
        seen.append(tag())
    assert len(set(seen)) == len(seen), seen
    before = tag()
    Job.objects.filter(pk=job.pk).update(heartbeat_at=job.created_at)  # the worker's heartbeat: not in the JSON
    SourceVideo.objects.filter(pk=source.pk).update(claims=7)  # a fencing token: not in the JSON
    assert tag() == before


def test_a_queued_jobs_etag_moves_with_its_place_in_the_queue(api, make_job):
    ahead = make_job(status=Status.QUEUED, outputs=0)
    job = make_job(status=Status.QUEUED, outputs=0)
    tag = api.get(f"/api/jobs/{job.pk}/")["ETag"]
    Job.objects.filter(pk=ahead.pk).delete()  # the job ahead of it went: it is next
    assert api.get(f"/api/jobs/{job.pk}/", HTTP_IF_NONE_MATCH=tag).status_code == 200


# --- the event stream ---------------------------------------------------------------------------------
def _client(user) -> AsyncClient:
    # AsyncClient(headers=...) names it HTTP_HTTP_AUTHORIZATION: given as a default, it reaches the scope's headers.
    return AsyncClient(AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")


async def _events(response, count: int, timeout: float = 10) -> list[tuple[str, dict]]:
    """The next `count` events of a stream (comments and `retry` skipped)."""
    found, buffer = [], ""
    stream = aiter(response.streaming_content)
    async with asyncio.timeout(timeout):
        while len(found) < count:
            buffer += (await anext(stream)).decode()
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                if "event" in lines:
                    found.append((lines["event"], json.loads(lines["data"])))
    return found


@pytest.mark.django_db(transaction=True)
def test_the_stream_sends_the_job_at_once_then_each_change_then_end(make_job, user):
    job = make_job(status=Status.PROCESSING, outputs=1)
    source = job.sources.get()
    client = _client(user)

    async def scenario():
        response = await client.get(f"/api/jobs/{job.pk}/events/")
        assert response.status_code == 200 and response["Content-Type"] == "text/event-stream"
        assert response["Cache-Control"] == "no-store"
        [(name, document)] = await _events(response, 1)
        assert name == "job" and document["id"] == job.pk and document["sources"][0]["progress"] == 0
        await sync_to_async(SourceVideo.objects.filter(pk=source.pk).update)(progress=55)
        [(name, document)] = await _events(response, 1)
        assert (name, document["sources"][0]["progress"]) == ("job", 55)
        await sync_to_async(job.fail)("stopped", [Status.PROCESSING])
        (name, document), (end, final) = await _events(response, 2)
        assert (name, document["status"], end, final["status"]) == ("job", "failed", "end", "failed")
        with pytest.raises(StopAsyncIteration):  # and it closes
            await anext(aiter(response.streaming_content))

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_stream_of_a_finished_job_ends_at_once_and_of_a_deleted_one_says_so(make_job, user):
    done = make_job(status=Status.COMPLETED, outputs=1)
    running = make_job(status=Status.PROCESSING, outputs=1)
    client = _client(user)

    async def scenario():
        response = await client.get(f"/api/jobs/{done.pk}/events/")
        assert [name for name, _ in await _events(response, 2)] == ["job", "end"]
        response = await client.get(f"/api/jobs/{running.pk}/events/")
        await _events(response, 1)
        await sync_to_async(Job.objects.filter(pk=running.pk).delete)()
        [(name, data)] = await _events(response, 1)
        assert (name, data["status"]) == ("end", "deleted")

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_no_credentials_is_a_401_and_another_users_job_a_404(make_job, user, other_user):
    job = make_job(status=Status.PROCESSING, outputs=1)
    theirs_client = _client(other_user)

    async def scenario():
        anonymous = await AsyncClient().get(f"/api/jobs/{job.pk}/events/")
        assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
        theirs = await theirs_client.get(f"/api/jobs/{job.pk}/events/")
        assert theirs.status_code == 404

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_fifty_listeners_share_one_watch_and_one_document_per_change(make_job, user, monkeypatch, settings):
    settings.MAX_STREAMS_PER_USER = 50
    job = make_job(status=Status.PROCESSING, outputs=1)
    source = job.sources.get()
    built = []
    real = job_watch._document
    monkeypatch.setattr(job_watch, "_document", lambda *args: built.append(1) or real(*args))
    monkeypatch.setattr(events, "MAX_PER_SECOND", 100)
    client = _client(user)

    async def scenario():
        responses = [await client.get(f"/api/jobs/{job.pk}/events/") for _ in range(50)]
        await asyncio.gather(*(_events(response, 1) for response in responses))
        watch = job_watch.for_loop()
        polls_before, built_before = watch.polls, len(built)
        await sync_to_async(SourceVideo.objects.filter(pk=source.pk).update)(progress=70)
        changed = await asyncio.gather(*(_events(response, 1) for response in responses))
        assert {document["sources"][0]["progress"] for [(_, document)] in changed} == {70}
        assert len(built) - built_before == 1  # one JSON for the fifty
        assert watch.polls - polls_before <= 12  # a poll each POLL_SECONDS for all of them, not one each
        assert list(watch.jobs) == [job.pk] and watch.jobs[job.pk].listeners == 50
        # The clients go: the ASGI handler cancels what was waiting for each stream's next event.
        waiting = [asyncio.ensure_future(_events(response, 1, timeout=60)) for response in responses]
        await asyncio.sleep(0.1)
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        assert watch.jobs == {}

    async_to_sync(scenario)()


def test_behind_a_wsgi_server_the_stream_is_a_404_and_the_page_polls(api, make_job, client, user):
    """Django's WSGI handler would hold a thread and send nothing till the stream ends."""
    job = make_job(status=Status.PROCESSING, outputs=1)
    response = api.get(f"/api/jobs/{job.pk}/events/")
    assert response.status_code == 404 and "ASGI" in response.json()["detail"]
    client.force_login(user)
    assert f'data-events-url="/api/jobs/{job.pk}/events/"' in client.get(f"/jobs/{job.pk}/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_what_changes_the_json_from_elsewhere_moves_the_etag_too(api, make_job, user):
    """A deleted origin (SET NULL, which Django does without the version), a renamed team, a renamed user."""
    origin = make_job(status=Status.COMPLETED, outputs=1)
    job = make_job(status=Status.COMPLETED, outputs=1, origin=origin)

    def tag() -> str:
        return api.get(f"/api/jobs/{job.pk}/")["ETag"]

    seen = [tag()]
    from jobs import storage

    storage.delete_job(origin)
    seen.append(tag())
    team = job.team
    team.name = "Spring team"
    team.save()
    seen.append(tag())
    user.username = "alice2"
    user.save()
    seen.append(tag())
    assert len(set(seen)) == 4, seen
    assert api.get(f"/api/jobs/{job.pk}/").json()["created_by"] == "alice2"
    user.save(update_fields=["last_login"])  # a login: nothing the JSON shows
    assert tag() == seen[-1]


@pytest.mark.django_db(transaction=True)
def test_a_user_has_at_most_max_streams_and_a_removed_member_hears_no_more(make_job, user, settings, monkeypatch):
    settings.MAX_STREAMS_PER_USER = 1
    monkeypatch.setattr(events, "RECHECK_SECONDS", 0)
    monkeypatch.setattr(events, "KEEPALIVE_SECONDS", 0.2)
    job = make_job(status=Status.PROCESSING, outputs=1)
    client = _client(user)

    async def scenario():
        first = await client.get(f"/api/jobs/{job.pk}/events/")
        await _events(first, 1)
        second = await client.get(f"/api/jobs/{job.pk}/events/")
        assert second.status_code == 429, (
            second.content and "MAX_STREAMS_PER_USER" in json.loads(second.content)["detail"]
        )
        await sync_to_async(Membership.objects.filter(team_id=job.team_id, user=user).delete)()  # removed
        chunks = [chunk async for chunk in first.streaming_content]  # it ends without another event
        assert not any(b"event: job" in chunk for chunk in chunks)
        third = await client.get(f"/api/jobs/{job.pk}/events/")  # its slot was given back
        assert third.status_code == 404

    async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_session_stream_goes_on_through_its_access_checks(make_job, user, monkeypatch):
    """The page's stream: a session's user (Django's lazy one), asked again whether it still sees the job."""
    monkeypatch.setattr(events, "RECHECK_SECONDS", 0)
    monkeypatch.setattr(events, "KEEPALIVE_SECONDS", 0.1)
    job = make_job(status=Status.PROCESSING, outputs=1)
    source = job.sources.get()
    client = AsyncClient()
    client.force_login(user)

    async def scenario():
        response = await client.get(f"/api/jobs/{job.pk}/events/")
        assert response.status_code == 200
        await _events(response, 1)
        await asyncio.sleep(0.5)  # a few keep-alives, each with its check
        await sync_to_async(SourceVideo.objects.filter(pk=source.pk).update)(progress=30)
        [(name, document)] = await _events(response, 1)
        assert (name, document["sources"][0]["progress"]) == ("job", 30)

    async_to_sync(scenario)()
