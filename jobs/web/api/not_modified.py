"""The 304 of a status poll, answered before Django's middleware and DRF: a poll that sends back the job's
last ETag (If-None-Match) with an API token, for an unchanged job that is not queued, costs one indexed
statement (the token's user, a membership of the job's team, the job's row) and no more. Anything else (a
session, a changed or queued job, a job the check does not find, such as another team's or one staff may
see) goes on to the normal view, which answers it in full.

Served by the ASGI application (videojobs/asgi.py) for GET /api/jobs/<id>/.
"""

from __future__ import annotations

from datetime import UTC

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import DatabaseError, connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.authtoken.models import Token

from jobs.models import Job, Membership, Status
from jobs.web.api.etag import state_tag
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


def _unchanged(key: str, job_id: str, sent: set[str]) -> str | None:
    """The job's tag when it is one of `sent` and the token's user sees the job through a team; else None
    (also when the database fails: the full view then answers, or says why)."""
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
    tag = state_tag(job_id, version, status, expires_at, None)
    return tag if tag in sent else None


async def answer(scope, send, job_id: str) -> bool:
    """Answer 304 and return True when the request is a token's poll of an unchanged job; else False."""
    headers = _headers(scope)
    authorization = headers.get(b"authorization", b"").decode("latin-1").split()
    sent = {tag.strip().removeprefix("W/") for tag in headers.get(b"if-none-match", b"").decode("latin-1").split(",")}
    if len(authorization) != 2 or authorization[0] != "Token" or not sent - {""}:
        return False
    # In the loop's pool of threads, not one per request: their connections are few and kept.
    tag = await sync_to_async(_unchanged, thread_sensitive=False)(authorization[1], job_id, sent)
    if tag is None:
        return False
    await send(
        {
            "type": "http.response.start",
            "status": 304,
            "headers": [
                (b"etag", tag.encode()),
                (b"cache-control", b"private, no-cache"),
                (b"vary", b"Authorization, Cookie"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
    return True
