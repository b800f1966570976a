"""Preparing DATA_DIR: the explicit start-up step that settings must not do while they load.

`python -m videojobs.datadir` (run by `make run` before migrate) creates
DATA_DIR, its jobs folder and, unless DJANGO_SECRET_KEY is set, a random
secret key kept in DATA_DIR/.secret_key so sessions and signed tasks survive
restarts and are shared by the web server and the workers. It needs no
Django settings, so it works before there is a key.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from videojobs.env import env_str

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY_FILE = ".secret_key"


def data_dir() -> Path:
    """DATA_DIR from the environment (default ./data next to manage.py), absolute."""
    return Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()


def read_secret_key(folder: Path) -> str:
    """The key kept in `folder`, or '' when there is none yet."""
    try:
        return (folder / SECRET_KEY_FILE).read_text().strip()
    except FileNotFoundError:
        return ""


PRIVATE_UMASK = 0o077  # folders 0700, files 0600: the database holds sessions and API tokens


def keep_private() -> None:
    """Whatever this process creates (the database, uploads, FFmpeg's outputs, which inherit it) is its
    user's alone, whatever umask it was started with. Called as the settings load, in every process."""
    os.umask(PRIVATE_UMASK)


def prepare(folder: Path) -> None:
    """Create the folders the service writes to, private to its user (also a DATA_DIR made before it was
    private), and the secret key file unless one is set or kept."""
    keep_private()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    (folder / "jobs").mkdir(mode=0o700, exist_ok=True)
    (folder / "upload-tmp").mkdir(mode=0o700, exist_ok=True)
    key_file = folder / SECRET_KEY_FILE
    if env_str("DJANGO_SECRET_KEY", "") or key_file.exists():
        return
    # Written whole under a name of its own (readable by its owner only from the first byte on), then linked
    # to its real name: the key file never exists empty or half written, and of two machines starting at
    # once on a shared DATA_DIR, the first link wins and both use its key.
    temporary = folder / f"{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(descriptor, "w") as key:
            key.write(secrets.token_urlsafe(50))
        os.link(temporary, key_file)
    except FileExistsError:
        pass  # another start made it meanwhile: theirs is the key
    finally:
        temporary.unlink(missing_ok=True)


if __name__ == "__main__":
    prepare(data_dir())
    sys.stdout.write(f"videojobs: data directory ready at {data_dir()}\n")
