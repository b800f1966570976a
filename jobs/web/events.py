"""GET /api/jobs/{id}/events/: the job's JSON pushed as server-sent events while it changes.

    event: job   the job's JSON, at once, then after each change (a progress step, a finished variation, a
                 status), at most MAX_PER_SECOND a second: a burst of changes sends the latest
    event: end   at a terminal status (or when the job is deleted); then the stream closes

An async view: under the ASGI server (videojobs/asgi.py) an open stream holds no thread, only a coroutine
waiting on the process's shared watch (jobs.web.job_watch). A client that stops reading blocks its own
stream at the server's send: it holds one document, never a queue of them.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import Http404, JsonResponse, StreamingHttpResponse

from jobs.models import TERMINAL, Job
from jobs.services import slots
from jobs.web import job_watch, streaming, upload_guard
from jobs.web.connections import on_a_sound_connection

MAX_PER_SECOND = 2
KEEPALIVE_SECONDS = 15  # a comment line, so that proxies and clients see the stream is alive
STREAM_SECONDS = 600  # then the stream ends and the client reconnects (EventSource does, after `retry`)
RETRY_MS = 3000
RECHECK_SECONDS = 30  # how often a stream asks again whether its user still sees the job


@login_not_required  # an API route: a token or a session, and 401 without either (never the login page)
async def job_events(request, pk: str):
    if not streaming.under_asgi(request):  # a WSGI server would hold a thread for it, and send nothing till the end
        detail = "event streams are served by the ASGI server (make run) only; poll the job instead"
        return JsonResponse({"detail": detail}, status=404)
    user = await sync_to_async(upload_guard.signed_in_user)(request)  # in the request's thread
    if user is None:
        return upload_guard.not_signed_in()
    if not await _sees(user, pk):
        raise Http404("No such job.")
    try:
        slot = slots.take(slots.STREAMS, user.pk, settings.MAX_STREAMS_PER_USER)
    except slots.NoSlot as exc:
        return JsonResponse({"detail": str(exc)}, status=429)
    # The stream's own thread keeps no connection open: the watch reads for every stream (job_watch).
    await sync_to_async(_close_connection)()
    response = StreamingHttpResponse(_stream(request, pk, user, slot), content_type="text/event-stream")
    response["Cache-Control"] = "no-store"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
    return response


def _close_connection() -> None:
    connection.close()  # this thread's (the request's): looked up here, in it


async def _sees(user, job_id: str) -> bool:
    return await Job.objects.visible_to(user).filter(pk=job_id).aexists()


async def _still_sees(user, job_id: str) -> bool:
    """Does the user still see the job (active, and a member of its team still)? In the loop's pool of threads."""

    def check() -> bool:
        fresh = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
        return fresh is not None and Job.objects.visible_to(fresh).filter(pk=job_id).exists()

    return await sync_to_async(on_a_sound_connection, thread_sensitive=False)(check)


async def _stream(request, job_id: str, user, slot):
    watch = job_watch.for_loop()
    watched = watch.listen(job_id)
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + STREAM_SECONDS
    checked_at = loop.time()
    try:
        yield f"retry: {RETRY_MS}\n\n"
        sent = None
        while loop.time() < ends_at:
            tag, found = await watch.document(job_id, request)
            if found is None:
                yield job_watch.event_text("end", {"id": job_id, "status": "deleted"})
                return
            if loop.time() - checked_at > RECHECK_SECONDS:  # a member removed meanwhile hears no more
                checked_at = loop.time()
                if not await _still_sees(user, job_id):
                    return
            if tag != sent:
                document, _, text = found
                yield text
                sent = tag
                if document["status"] in TERMINAL:
                    yield job_watch.event_text("end", {"id": job_id, "status": document["status"]})
                    return
                await asyncio.sleep(1 / MAX_PER_SECOND)
            if not await watched.next_change(sent, KEEPALIVE_SECONDS):
                yield ": keep-alive\n\n"
    finally:
        watch.release(job_id)
        slot.release()
