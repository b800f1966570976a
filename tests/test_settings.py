from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from videojobs import env


@pytest.mark.parametrize(
    "raw, expected", [("1", True), ("yes", True), ("TRUE", True), ("0", False), ("no", False), ("false", False)]
)
def test_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("X_BOOL", raw)
    assert env.env_bool("X_BOOL", not expected) is expected


@pytest.mark.parametrize(
    "reader, raw",
    [
        (env.env_bool, "maybe"),
        (env.env_int, "ten"),
        (env.env_bytes, "lots"),
        (env.env_float, "fast"),
        (env.env_int, "-3"),
    ],
)
def test_junk_stops_start_up_naming_the_variable(monkeypatch, reader, raw):
    monkeypatch.setenv("X_JUNK", raw)
    with pytest.raises(ImproperlyConfigured, match="X_JUNK"):
        reader("X_JUNK", 1) if reader is not env.env_int else reader("X_JUNK", 1, minimum=0)


@pytest.mark.parametrize(
    "raw, expected", [("1048576", 1048576), ("500M", 500 * 1024**2), ("3GiB", 3 * 1024**3), ("2k", 2048)]
)
def test_sizes(monkeypatch, raw, expected):
    monkeypatch.setenv("X_SIZE", raw)
    assert env.env_bytes("X_SIZE", 0) == expected


def test_unset_or_blank_gives_the_default(monkeypatch):
    monkeypatch.setenv("X_BLANK", "  ")
    monkeypatch.delenv("X_UNSET", raising=False)
    assert env.env_int("X_BLANK", 7) == 7 and env.env_str("X_UNSET", "d") == "d"


def test_a_junk_setting_stops_the_real_start_up(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={
            "PATH": "/usr/bin:/bin",
            "DATA_DIR": str(tmp_path),
            "MAX_FILES": "many",
            "DJANGO_SETTINGS_MODULE": "videojobs.settings",
        },
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.returncode != 0
    assert "MAX_FILES='many' is not a whole number" in result.stderr


def test_sqlite_runs_in_wal_mode_with_immediate_transactions(db):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
