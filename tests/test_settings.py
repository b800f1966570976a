"""Settings from the environment: typed readers that fail loudly, and a settings load that writes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from videojobs import datadir, env

ROOT = Path(__file__).resolve().parent.parent


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
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "MAX_FILES='many' is not a whole number" in result.stderr


def test_webhook_records_kept_shorter_than_their_retries_stop_the_start_up(tmp_path):
    """Forgotten while its end could still be told, a delivery would be made and sent again."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "WEBHOOK_KEEP_DAYS": "1", "WEBHOOK_RETRY_HOURS": "48"},
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode != 0 and "WEBHOOK_KEEP_DAYS=1 must keep" in result.stderr


def test_sqlite_runs_in_wal_mode_with_immediate_transactions(db):
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_database_connections_are_kept_between_requests_and_checked_before_reuse(db):
    assert connection.settings_dict["CONN_MAX_AGE"] == 60 and connection.settings_dict["CONN_HEALTH_CHECKS"]


def _load_settings(data_dir: Path) -> subprocess.CompletedProcess:
    script = "from django.conf import settings; print(settings.JOBS_DIR); print(bool(settings._wrapped.SECRET_KEY))"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {script}"],
        env={
            "PATH": "/usr/bin:/bin",
            "DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": "videojobs.settings",
        },
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )


def test_loading_the_settings_writes_nothing(tmp_path):
    data_dir = tmp_path / "fresh-data"  # not the tests' own tmp_path/data
    result = _load_settings(data_dir)
    assert result.stdout.split() == [str(data_dir / "jobs"), "False"]  # no key yet: Django refuses to serve
    assert not data_dir.exists()


def test_the_start_up_step_makes_the_data_dir_and_a_key_that_settings_then_use(tmp_path, monkeypatch):
    data_dir = tmp_path / "fresh-data"
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    datadir.prepare(data_dir)
    key = datadir.read_secret_key(data_dir)
    assert len(key) > 40 and (data_dir / "jobs").is_dir()
    assert (data_dir / datadir.SECRET_KEY_FILE).stat().st_mode & 0o777 == 0o600
    datadir.prepare(data_dir)  # again, as every `make run` does: the key stays
    assert datadir.read_secret_key(data_dir) == key
    assert _load_settings(data_dir).stdout.split()[1] == "True"


def test_the_key_file_never_exists_empty_and_two_starts_agree_on_one_key(tmp_path, monkeypatch):
    """Machines sharing DATA_DIR run the start-up step at once: one that reads the key file while another
    writes it must never read an empty or half-written key."""
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    shared = tmp_path / "shared"
    key_file = shared / datadir.SECRET_KEY_FILE
    real_token = datadir.secrets.token_urlsafe
    seen_while_writing = []

    def another_start_reads_meanwhile(size):
        seen_while_writing.append(datadir.read_secret_key(shared) if key_file.exists() else None)
        return real_token(size)

    monkeypatch.setattr(datadir.secrets, "token_urlsafe", another_start_reads_meanwhile)
    datadir.prepare(shared)
    assert seen_while_writing == [None]  # no key file at all until the key is whole
    first = datadir.read_secret_key(shared)
    key_file.unlink()
    key_file.write_text(first)  # another machine's start won the link meanwhile
    monkeypatch.setattr(datadir.Path, "exists", lambda self: False)  # and this one did not see it in time
    datadir.prepare(shared)
    monkeypatch.undo()
    assert datadir.read_secret_key(shared) == first
    assert sorted(path.name for path in shared.iterdir()) == [".secret_key", "jobs", "upload-tmp"]  # no temporary


def test_no_key_file_when_the_key_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY", "from-the-environment")
    datadir.prepare(tmp_path)
    assert datadir.read_secret_key(tmp_path) == "" and (tmp_path / "jobs").is_dir()


def test_the_data_dir_is_private_whatever_the_umask(tmp_path):
    """The database holds sessions and API tokens: DATA_DIR is 0700 and what the service writes 0600, even
    when it is started with the usual umask of 022 and over a DATA_DIR an older version made 0755."""
    data_dir = tmp_path / "private"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    script = (
        "import os; os.umask(0o022); from videojobs import datadir; from pathlib import Path; "
        f"datadir.prepare(Path({str(data_dir)!r})); "
        "import django; os.environ['DJANGO_SETTINGS_MODULE'] = 'videojobs.settings'; django.setup(); "
        "from django.core.management import call_command; call_command('migrate', verbosity=0); "
        f"open({str(data_dir / 'jobs' / 'written')!r}, 'w').close()"
    )
    environment = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(data_dir), "DJANGO_SECRET_KEY": "k"}
    subprocess.run([sys.executable, "-c", script], env=environment, check=True, cwd=ROOT)
    modes = {path.name: path.stat().st_mode & 0o777 for path in [data_dir, *data_dir.rglob("*")]}
    assert modes["private"] == modes["jobs"] == modes["upload-tmp"] == 0o700
    assert modes["db.sqlite3"] == modes["written"] == 0o600
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes


def test_the_web_process_raises_its_open_files_limit_to_the_hard_one(tmp_path):
    script = "import resource, videojobs.wsgi; print(*resource.getrlimit(resource.RLIMIT_NOFILE))"
    environment = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), "DJANGO_SECRET_KEY": "k"}
    command = ["prlimit", "--nofile=256:4096", "--", sys.executable, "-c", script]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["4096", "4096"]


def test_the_web_server_listens_on_loopback_unless_told_otherwise():
    procfile = (ROOT / "Procfile").read_text()
    assert "--bind ${BIND:-127.0.0.1}:${PORT:-8000}" in procfile
    makefile = (ROOT / "Makefile").read_text()
    assert "BIND ?= 127.0.0.1" in makefile and "export PORT BIND" in makefile
