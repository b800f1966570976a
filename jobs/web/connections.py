"""Database work done outside Django's request cycle (the 304 before Django, the event streams' watch), in a
thread of the event loop's pool: the connection of that thread gets what the request cycle would give it."""

from __future__ import annotations

from django.db import DatabaseError, connection


def on_a_sound_connection(work, *args):
    """work(*args) on this thread's connection, replaced first if it is too old or broken (a database
    restart) and closed when the work fails with it, so that the next call connects afresh."""
    connection.close_if_unusable_or_obsolete()
    try:
        return work(*args)
    except DatabaseError:
        connection.close()
        raise
