from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from model_bakery import baker
from rest_framework.test import APIClient

from tests.media import make_clip
from videojobs import datadir


def pytest_configure(config):
    """The throwaway DATA_DIR of videojobs.settings_test, made as `make run` makes the real one."""
    from django.conf import settings

    datadir.prepare(settings.DATA_DIR)
    settings.STATIC_ROOT.mkdir(exist_ok=True)


def pytest_unconfigure(config):
    from django.conf import settings

    shutil.rmtree(settings.DATA_DIR, ignore_errors=True)


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
def jobs_dir(settings, tmp_path) -> Path:
    """Each test gets its own job folders."""
    settings.JOBS_DIR = tmp_path / "data" / "jobs"
    settings.JOBS_DIR.mkdir(parents=True)
    yield settings.JOBS_DIR
    shutil.rmtree(settings.JOBS_DIR, ignore_errors=True)


@pytest.fixture
def user(db):
    return baker.make("auth.User", username="alice")


@pytest.fixture
def other_user(db):
    return baker.make("auth.User", username="bob")


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def upload(clips):
    """upload("a.mp4", seconds=1) -> a SimpleUploadedFile of a generated clip."""

    def make(name: str = "clip.mp4", **clip_options) -> SimpleUploadedFile:
        return SimpleUploadedFile(name, clips(**clip_options).read_bytes(), content_type="video/mp4")

    return make


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def start_cluster(transactional_db, tmp_path):
    """start_cluster(**env) -> a running qcluster subprocess; always stopped after the test."""
    from tests.workers import Cluster

    started: list[Cluster] = []

    def start(**env: str) -> Cluster:
        cluster = Cluster(tmp_path / f"qcluster-{len(started)}.log", **env)
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
