"""Fixtures shared by the whole suite: clips, users, clients, jobs with real files, and a real worker cluster."""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path

import psutil
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ
from model_bakery import baker
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import ffmpeg, models, storage
from jobs.models import Job, OutputFile, SourceVideo, Status
from jobs.services import quota
from jobs.worker import runner
from tests.media import make_clip
from tests.workers import Cluster
from videojobs import datadir

DATABASE_FIXTURES = {"db", "transactional_db", "django_db_setup", "live_server"}


def pytest_addoption(parser):
    parser.addoption(
        "--database-only",
        action="store_true",
        help="only the tests that use the database (the PostgreSQL pass of `make test-scaleout`)",
    )


def pytest_collection_modifyitems(config, items):
    """--database-only: leave out every test that never opens a database connection (FFmpeg, byte ranges,
    names, settings...): on another database engine they would only run the same code again."""
    if not config.getoption("--database-only"):
        return
    kept, left_out = [], []
    for item in items:
        uses_database = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker(
            "django_db"
        )
        (kept if uses_database else left_out).append(item)
    items[:] = kept
    config.hook.pytest_deselected(items=left_out)


def pytest_configure(config):
    """The throwaway DATA_DIR of videojobs.settings_test, made as `make run` makes the real one."""
    config.videojobs_made_data_dir = not django_settings.DATA_DIR.exists()
    datadir.prepare(django_settings.DATA_DIR)
    django_settings.STATIC_ROOT.mkdir(exist_ok=True)


def pytest_unconfigure(config):
    if getattr(config, "videojobs_made_data_dir", False):  # only a folder this run made itself
        shutil.rmtree(django_settings.DATA_DIR, ignore_errors=True)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def files_under():
    """files_under(folder) -> every file below it, sorted ([] when the folder does not exist)."""
    return _files_under


@pytest.fixture
def paced_ffmpeg(monkeypatch):
    """FFmpeg reads its input at the clip's own pace (-re, after FFmpeg's first 0.5 s burst): an encode of a
    tiny clip then lasts long enough to be looked at or stopped, on any machine."""
    build = ffmpeg.command.encode_command

    def paced_command(*args, **kwargs):
        command = build(*args, **kwargs)
        command.insert(command.index("-i"), "-re")
        return command

    monkeypatch.setattr(ffmpeg.command, "encode_command", paced_command)


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Cached generated clips: clips(seconds=1, size="320x240", audio=True) -> Path."""
    folder = tmp_path_factory.mktemp("clips")
    cache: dict[tuple, Path] = {}

    def get(seconds: float = 1.0, size: str = "320x240", audio: bool = True, ext: str = "mp4") -> Path:
        key = (seconds, size, audio, ext)
        if key not in cache:
            cache[key] = make_clip(folder / f"clip-{seconds}-{size}-{audio}.{ext}", seconds, size, audio)
        return cache[key]

    return get


@pytest.fixture(autouse=True)
def machine_clock_on_postgresql(request):
    """On PostgreSQL, jobs.models.database_now asks the server's clock, which time-machine cannot move: the
    tests that travel in time would see none of it. There, the fences read this machine's clock (the same
    one, but for the travel), except in tests marked `database_clock`, which check the server's clock."""
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        yield
        return
    if request.node.get_closest_marker("database_clock"):
        yield
        return
    server_clock = models.base.database_now  # read once: the loop below replaces it in jobs.models.base too
    with pytest.MonkeyPatch.context() as patch:  # its own: a test's monkeypatch.undo() leaves it in place
        for module in list(sys.modules.values()):  # every module of the app that imported it, wherever it moves
            if (
                getattr(module, "__name__", "").startswith("jobs")
                and module.__dict__.get("database_now") is server_clock
            ):
                patch.setattr(module, "database_now", timezone.now)
        yield


@pytest.fixture(autouse=True)
def jobs_dir(settings, tmp_path) -> Path:
    """Each test gets its own job folders."""
    settings.DATA_DIR = tmp_path / "data"  # what a worker started by the test gets (tests/workers.py)
    settings.JOBS_DIR = tmp_path / "data" / "jobs"
    settings.JOBS_DIR.mkdir(parents=True)
    settings.RESUMABLE_DIR = tmp_path / "data" / "resumable"
    yield settings.JOBS_DIR
    shutil.rmtree(settings.JOBS_DIR, ignore_errors=True)


@pytest.fixture
def user(db):
    return baker.make("auth.User", username="alice")


@pytest.fixture
def other_user(db):
    return baker.make("auth.User", username="bob")


@pytest.fixture
def staff_viewer(db):
    """A staff user who may see every job (jobs.view_job) and change none."""
    staff = baker.make("auth.User", is_staff=True, username="viewer")
    staff.user_permissions.add(Permission.objects.get(codename="view_job"))
    return staff


def _api_client(user) -> APIClient:
    """A client that sends the user's real API token, as curl would (the upload guard checks it too)."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api(user) -> APIClient:
    return _api_client(user)


@pytest.fixture
def api_client_for():
    """api_client_for(user) -> an APIClient with that user's token."""
    return _api_client


@pytest.fixture
def csrf_client(user):
    """A browser-like session client for `user` that enforces CSRF; returns (client, csrf token)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/upload/")  # sets the csrftoken cookie
    return client, client.cookies["csrftoken"].value


@pytest.fixture
def upload(clips):
    """upload("a.mp4", seconds=1) -> a SimpleUploadedFile of a generated clip."""

    def make(name: str = "clip.mp4", **clip_options) -> SimpleUploadedFile:
        return SimpleUploadedFile(name, clips(**clip_options).read_bytes(), content_type="video/mp4")

    return make


@pytest.fixture
def post_job(api, upload):
    """post_job(names, variations, owner=None, run=False, name=None, fields=None, **clip) -> the Job a 201
    POST /api/jobs/ created.

    `owner` posts as another user; `run` processes the job in this process at once (real FFmpeg); `fields` are
    more form fields (formats, strength...).
    """

    def post(names=("a.mp4",), variations=2, owner=None, run=False, name=None, fields=None, **clip) -> Job:
        client = _api_client(owner) if owner else api
        body = {"videos": [upload(name, **clip) for name in names], "variations": variations, **(fields or {})}
        if name is not None:
            body["name"] = name
        response = client.post("/api/jobs/", body, format="multipart")
        assert response.status_code == 201, response.content
        if run:
            runner.run_job(response.json()["id"])
        return Job.objects.get(pk=response.json()["id"])

    return post


@pytest.fixture
def reservation(clips):
    """reservation(variations, count=1, **clip) -> what a job of `count` such clips reserves (jobs.services.quota)."""

    def need(variations: int, count: int = 1, **clip) -> int:
        path = clips(**clip)
        return quota.job_reservation([(path.stat().st_size, ffmpeg.probe(path).duration)] * count, variations)

    return need


@pytest.fixture
def run_measured():
    """run_measured(job) -> {"bytes", "rss"}: runs the job in this process (real FFmpeg) and returns the most
    its folder held (partial files included) and the largest RSS of an FFmpeg, both sampled at every
    progress report and at the end."""

    def run(job: Job) -> dict:
        seen = {"bytes": 0, "rss": 0}
        real_progress = runner._ProgressWriter.__call__

        def measure(writer, seconds):
            seen["bytes"] = max(seen["bytes"], storage.job_bytes(job))
            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    seen["rss"] = max(seen["rss"], child.memory_info().rss)
            return real_progress(writer, seconds)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(runner._ProgressWriter, "__call__", measure)
            runner.run_job(job.pk)
        seen["bytes"] = max(seen["bytes"], storage.job_bytes(job))
        job.refresh_from_db()
        return seen

    return run


@pytest.fixture
def make_job(user):
    """make_job(status=..., outputs=2, size=1000, ...) -> a job with real files on disk and no FFmpeg run.

    One source, `outputs` finished files of `size` bytes, a thumbnail, and the
    upload (unless uploads_left=False: an older job whose uploads went).
    """

    def make(
        status=Status.COMPLETED, outputs=2, size=1000, created_at=None, uploads_left=True, owner=None, **fields
    ) -> Job:
        created_at = created_at or timezone.now()
        if status not in (Status.QUEUED, Status.PROCESSING):
            fields.setdefault("finished_at", created_at)  # finished as soon as it was made
        job = baker.make(
            Job,
            owner=owner or user,
            variations_per_video=max(outputs, 1),
            status=status,
            created_at=created_at,
            **fields,
        )
        source = baker.make(
            SourceVideo, job=job, position=0, original_name="a.mp4", path="uploads/00.video", size=size,
            duration=1, width=320, height=240, completed_variations=outputs,
            status=status if status in (Status.QUEUED, Status.PROCESSING) else Status.COMPLETED,
        )  # fmt: skip
        storage.create_outputs_dir(job.pk)
        for index in range(outputs):
            path = f"outputs/s00_v{index + 1:02d}.mp4"
            (storage.job_folder(job.pk) / path).write_bytes(b"v" * size)
            baker.make(OutputFile, job=job, source=source, variation_index=index, path=path, size=size, effects={})
        (storage.job_folder(job.pk) / storage.THUMBNAIL_NAME).write_bytes(b"RIFF")
        Job.objects.filter(pk=job.pk).update(thumbnail=storage.THUMBNAIL_NAME)
        if uploads_left:
            storage.uploads_dir(job.pk).mkdir()
            storage.upload_path(source).write_bytes(b"u" * size)
        return Job.objects.get(pk=job.pk)

    return make


def _refused(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.content
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail


@pytest.fixture
def refused():
    """refused(response, status, *words): the answer has that status and a JSON `detail` naming each word."""
    return _refused


@pytest.fixture
def nothing_left(jobs_dir, db):
    """For refused requests: after the test, no row, no queued task and no file is left behind."""
    yield
    assert Job.objects.count() == SourceVideo.objects.count() == OutputFile.objects.count() == 0
    assert OrmQ.objects.count() == 0
    assert _files_under(jobs_dir) == []


@pytest.fixture
def start_cluster(transactional_db, tmp_path):
    """start_cluster(**env) -> a running qcluster subprocess; always stopped after the test.

    The broker's queue starts empty: with Redis it outlives the test, and a task an earlier test's cluster
    left there (a helper of a run that test ended) would reach this test's workers ("not needed")."""
    get_broker().purge_queue()
    started: list[Cluster] = []

    def start(**env: str) -> Cluster:
        cluster = Cluster(tmp_path / f"qcluster-{len(started)}.log", **env)
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
    get_broker().purge_queue()


@pytest.fixture
def plain_output_names(settings):
    """Output files named "<video>_v01.mp4", without the job's tag: for the tests about folders and numbering
    (the default template, with the tag, has tests of its own: tests/services/test_output_names.py)."""
    settings.OUTPUT_NAME_TEMPLATE = "{video}_v{variation}"
