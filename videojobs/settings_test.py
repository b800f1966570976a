"""Test settings: a throwaway DATA_DIR, a fixed secret key and a file-based test database.

The test database is a file (not in-memory SQLite) so that a real `qcluster`
subprocess started by a test can open it. The folder itself is made by
tests/conftest.py (settings write nothing).
"""

import os
import tempfile

# Never an outside DATA_DIR (a developer's ./data): the suite removes the folder it used.
# VIDEOJOBS_TEST_DATA_DIR lets a process started by a test share that test's folder.
os.environ["DATA_DIR"] = os.environ.get("VIDEOJOBS_TEST_DATA_DIR") or os.path.join(
    tempfile.gettempdir(), f"videojobs-test-{os.getpid()}"
)
os.environ.setdefault("DJANGO_SECRET_KEY", "videojobs-tests-only-not-a-secret")
os.environ.setdefault("LOG_LEVEL", "INFO")
# Under pytest-xdist, each test process queues its tasks in a Redis database of its own (gw0 -> 1, gw1 -> 2...),
# and the worker clusters its tests start inherit it: one process's clusters never take another's tasks.
if os.environ.get("REDIS_URL") and os.environ.get("PYTEST_XDIST_WORKER"):
    number = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw")) + 1
    os.environ["REDIS_URL"] = f"{os.environ['REDIS_URL'].rsplit('/', 1)[0]}/{number}"

from videojobs.settings import *  # noqa: E402,F403
from videojobs.settings import DATA_DIR, DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The suite makes thousands of API calls a minute as one user (tests/web/test_urls.py); the limits
# themselves are tested with their own low rates.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"user": "100000/min", "anon": "100000/min"}  # noqa: F405
