"""One watch per process over the jobs that event streams follow (jobs.web.events): a single query every
POLL_SECONDS for every watched job together, however many streams listen, and the job's JSON built once
per change (and per host it is served under) for all of them.

It lives on the event loop of the ASGI server; its database work runs in the loop's pool of threads
(jobs.web.connections), never in a stream's own request thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import weakref
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async

from jobs.models import Job
from jobs.web.api.etag import tags_of
from jobs.web.connections import on_a_sound_connection

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25


@dataclass
class Watched:
    """One job's state as the watch last saw it, and the listeners' way to wait for the next."""

    listeners: int = 0
    tag: str | None = None  # None: not seen yet; "" : gone (deleted)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # (tag, base URL) -> the job JSON, its compact text and its `job` event's: made once for every stream
    documents: dict[tuple[str, str], tuple[dict, str, str]] = field(default_factory=dict)
    building: asyncio.Lock = field(default_factory=asyncio.Lock)

    def see(self, tag: str) -> None:
        if tag != self.tag:
            self.tag = tag
            self.documents = {key: doc for key, doc in self.documents.items() if key[0] == tag}
            self.changed.set()
            self.changed = asyncio.Event()

    async def next_change(self, seen: str | None, timeout: float) -> bool:
        """Wait until the state is no longer `seen`; False when `timeout` passed first."""
        if self.tag != seen:
            return True
        try:
            await asyncio.wait_for(self.changed.wait(), timeout)
        except TimeoutError:
            return False
        return True


def _states(job_ids: list[str]) -> dict[str, str]:
    return tags_of(Job.objects.filter(pk__in=job_ids))


class JobWatch:
    """The process's watch (per event loop: for_loop())."""

    def __init__(self):
        self.jobs: dict[str, Watched] = {}
        self._task: asyncio.Task | None = None
        self.polls = 0  # how many queries it has made: the tests count them

    def listen(self, job_id: str) -> Watched:
        watched = self.jobs.setdefault(job_id, Watched())
        watched.listeners += 1
        if self._task is None or self._task.done():  # its own context: not the first stream's request's
            self._task = asyncio.get_running_loop().create_task(self._run(), context=contextvars.Context())
        return watched

    def release(self, job_id: str) -> None:
        watched = self.jobs.get(job_id)
        if watched is not None:
            watched.listeners -= 1
            if watched.listeners <= 0:
                del self.jobs[job_id]

    async def refresh(self, job_ids: list[str] | None = None) -> None:
        """Read the states of the watched jobs (or of `job_ids`) now, and wake their listeners if they changed."""
        ids = list(self.jobs) if job_ids is None else job_ids
        if not ids:
            return
        self.polls += 1
        states = await sync_to_async(on_a_sound_connection, thread_sensitive=False)(_states, ids)
        for job_id in ids:
            if (watched := self.jobs.get(job_id)) is not None:
                watched.see(states.get(job_id, ""))

    async def _run(self) -> None:
        while self.jobs:
            try:
                await self.refresh()
            except Exception:  # a database hiccup: the streams wait for the next round
                logger.exception("the job watch could not read the jobs' states")
            await asyncio.sleep(POLL_SECONDS)

    async def document(self, job_id: str, request) -> tuple[str, tuple[dict, str, str] | None]:
        """The job's current state tag, and its JSON as `request` would get it with its `job` event's text
        (None once it is gone), made once per state and host for all the listeners."""
        watched = self.jobs[job_id]
        if watched.tag is None:
            await self.refresh([job_id])
        tag = watched.tag
        if not tag:
            return "", None
        key = (tag, request.build_absolute_uri("/"))
        if key not in watched.documents:
            async with watched.building:
                if key not in watched.documents:
                    document = await sync_to_async(on_a_sound_connection, thread_sensitive=False)(
                        _document, job_id, request
                    )
                    if document is None:
                        return "", None
                    body = _compact(document)
                    watched.documents[key] = (document, body, f"event: job\ndata: {body}\n\n")
        return tag, watched.documents[key]


def _compact(data) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def event_text(name: str, data) -> str:
    """One server-sent event."""
    return f"event: {name}\ndata: {_compact(data)}\n\n"


def _document(job_id: str, request) -> dict | None:
    from jobs.web.api.views import job_document  # the API's own: the same JSON as GET /api/jobs/{id}/

    return job_document(job_id, {"request": request})


_watches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, JobWatch] = weakref.WeakKeyDictionary()


def cached(job_id: str, tag: str, base: str) -> str | None:
    """The job's JSON text in state `tag`, as served under `base`, if this loop's watch has made it (a
    stream follows the job in this process); None otherwise. Nothing is read or made."""
    watch = _watches.get(asyncio.get_running_loop())
    watched = watch.jobs.get(job_id) if watch is not None else None
    if watched is None or watched.tag != tag:
        return None
    found = watched.documents.get((tag, base))
    return found[1] if found is not None else None


def for_loop() -> JobWatch:
    """The watch of the running event loop (one per process under the ASGI server)."""
    loop = asyncio.get_running_loop()
    if loop not in _watches:
        _watches[loop] = JobWatch()
    return _watches[loop]
