"""A status poll answered before Django's middleware and DRF, for an API token's GET of a job that is not
queued, from one indexed statement (the token's user, a membership of the job's team, the job's row):

- 304, when it sends back the job's current ETag (If-None-Match);
- 200 with the job's JSON, when an event stream in this process follows the job and has made that JSON for
  its current state already (jobs.web.job_watch): no serialisation.

Anything else (a session, a queued job, a job the check does not find, such as another team's or one staff
may see, a failing database) goes on to the normal view, which answers it in full.

Served by the ASGI application (videojobs/asgi.py) for GET /api/jobs/<id>/.
"""

from __future__ import annotations

import io
from datetime import UTC

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.db import DatabaseError, connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.authtoken.models import Token

from jobs.models import Job, Membership, Status
from jobs.web import job_watch
from jobs.web.api.etag import header_matches, state_tag
from jobs.web.connections import on_a_sound_connection


def _headers(scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _sql() -> str:
    """One statement for the token's active user and the job's row through one of that user's teams. Plain
    SQL: compiling the same two ORM queries took most of a 304's CPU (bench/README.md, "Live progress")."""
    token, user, job = Token._meta.db_table, User._meta.db_table, Job._meta.db_table
    membership = Membership._meta.db_table
    return (
        f"SELECT j.version, j.status, j.expires_at FROM {token} t JOIN {user} u ON u.id = t.user_id "
        f"JOIN {membership} m ON m.user_id = u.id JOIN {job} j ON j.team_id = m.team_id "
        "WHERE t.key = %s AND u.is_active AND j.id = %s"
    )


def _row(key: str, job_id: str):
    with connection.cursor() as cursor:
        cursor.execute(_sql(), [key, job_id])
        return cursor.fetchone()


def _current_tag(key: str, job_id: str) -> str | None:
    """The job's ETag when the token's user sees it through a team and it is not queued; else None (also
    when the database fails: the full view then answers, or says why)."""
    try:
        row = on_a_sound_connection(_row, key, job_id)
    except DatabaseError:
        return None
    if row is None:
        return None
    version, status, expires_at = row
    if status == Status.QUEUED:  # its place counts too: the full answer says it
        return None
    if isinstance(expires_at, str):
        expires_at = parse_datetime(expires_at)
    if timezone.is_naive(expires_at):  # SQLite hands plain SQL a naive datetime in UTC
        expires_at = timezone.make_aware(expires_at, UTC)
    return state_tag(job_id, version, status, expires_at, None)


async def answer(scope, send, job_id: str) -> bool:
    """Answer (304, or 200 from a stream's JSON) and return True, or return False for the full view."""
    headers = _headers(scope)
    authorization = headers.get(b"authorization", b"").decode("latin-1").split()
    if len(authorization) != 2 or authorization[0] != "Token":
        return False
    # In the loop's pool of threads, not one per request: their connections are few and kept.
    tag = await sync_to_async(_current_tag, thread_sensitive=False)(authorization[1], job_id)
    if tag is None:
        return False
    if header_matches(headers.get(b"if-none-match", b"").decode("latin-1"), tag):
        await _send(send, 304, tag, b"")
        return True
    body = job_watch.cached(job_id, tag, _base(scope))
    if body is None:
        return False
    await _send(send, 200, tag, body.encode())
    return True


def _base(scope) -> str:
    """The address the job JSON's links start with for this request, by Django's own rules (the proxy's
    scheme header, ALLOWED_HOSTS); "" when Django would refuse the host."""
    try:
        return ASGIRequest(scope, io.BytesIO()).build_absolute_uri("/")
    except DisallowedHost:
        return ""


async def _send(send, status: int, tag: str, body: bytes) -> None:
    headers = [
        (b"etag", tag.encode()),
        (b"cache-control", b"private, no-cache"),
        (b"vary", b"Authorization, Cookie"),
        (b"x-content-type-options", b"nosniff"),
    ]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
