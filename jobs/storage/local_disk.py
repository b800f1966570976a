"""The storage seam: every operation on a job's files goes through `disk`, a LocalDisk.

A second backend (a network file system with its own rules, an object store
with a local cache) is one more class with these methods, chosen here. FFmpeg
reads and writes local paths: such a backend would stage a job's files on a
local disk for the run (docs/architecture/files.md, "Storage seam").
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

logger = logging.getLogger(__name__)

# A file system that has no hard links, or no more for this file: the file is copied instead.
NO_LINK_ERRORS = (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK)


class LocalDisk:
    """Job files on this machine's file system (or a shared mount): DATA_DIR."""

    # --- reading -------------------------------------------------------------------
    def open(self, path: Path) -> BinaryIO:
        """For reading; the caller closes it. Its size stays that of the file opened, whatever happens to
        the name meanwhile (size_of_open)."""
        return open(path, "rb")

    @staticmethod
    def size_of_open(opened: BinaryIO) -> int:
        return os.fstat(opened.fileno()).st_size

    def exists(self, path: Path) -> bool:
        return path.exists()

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def is_folder(self, path: Path) -> bool:
        return path.is_dir()

    def list(self, folder: Path) -> list[Path]:
        """What the folder holds ([] when it is gone)."""
        try:
            return list(folder.iterdir())
        except FileNotFoundError:
            return []

    def tree(self, folder: Path) -> list[Path]:
        """Every file and folder below `folder`, children before their folders."""
        return sorted(folder.rglob("*"), reverse=True)

    def size(self, path: Path) -> int:
        """Bytes of a file, or of the files under a folder; what vanishes meanwhile counts as 0."""
        try:
            status = os.lstat(path)
        except OSError:
            return 0
        if not stat.S_ISDIR(status.st_mode):
            return status.st_size if stat.S_ISREG(status.st_mode) else 0
        total = 0
        for root, _folders, files in os.walk(path):  # os.walk skips what vanishes; rglob raises
            for name in files:
                try:
                    status = os.lstat(os.path.join(root, name))
                except OSError:
                    continue
                if stat.S_ISREG(status.st_mode):
                    total += status.st_size
        return total

    def changed_before(self, path: Path, timestamp: float, files_only: bool = True) -> bool:
        """Last changed before `timestamp` (a folder: only with `files_only` False); False once it is gone."""
        try:
            return (path.is_file() or not files_only) and path.stat().st_mtime < timestamp
        except FileNotFoundError:
            return False

    def usage(self):
        """shutil.disk_usage of the data disk. Raises OSError when DATA_DIR is missing."""
        return shutil.disk_usage(settings.DATA_DIR)

    # --- writing -------------------------------------------------------------------
    def make_folder(self, folder: Path, exist_ok: bool = False) -> None:
        folder.mkdir(parents=True, exist_ok=exist_ok)

    def write(self, path: Path, chunks: Iterable[bytes]) -> None:
        with open(path, "wb") as target:
            for chunk in chunks:
                target.write(chunk)

    def append_at(
        self, path: Path, offset: int, chunks: Iterable[bytes], written: list[int], locked: Callable[[], None]
    ) -> None:
        """Write `chunks` into the existing file from `offset` on, holding an exclusive lock on it for the
        whole write (BlockingIOError at once when another writer holds it); `locked()` is called once the
        lock is held, before any byte is written. `written` (one number) counts the bytes on disk as they
        go, so that the caller knows them however this ends. FileNotFoundError when the file loses its
        name meanwhile (it was removed): nothing more is written to it."""
        with open(path, "r+b") as target:
            fcntl.flock(target, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked()
            target.seek(offset)
            for chunk in chunks:
                target.write(chunk)
                target.flush()
                written[0] += len(chunk)
                if os.fstat(target.fileno()).st_nlink == 0:
                    raise FileNotFoundError(errno.ENOENT, "removed while it was written", str(path))

    def replace(self, source: Path, target: Path) -> None:
        """Rename, atomically."""
        os.replace(source, target)

    def link(self, source: Path, target: Path) -> str:
        """The same bytes under a second name, none copied (a hard link), so that either name may go first;
        a copy where the file system has no link for it. Returns "" when linked, else why it was copied."""
        try:
            os.link(source, target)
            return ""
        except OSError as exc:
            if exc.errno not in NO_LINK_ERRORS:
                raise
            reason = exc.strerror or str(exc)
        shutil.copyfile(source, target)
        return reason

    # --- marks (a file whose only content is when it was last touched) ---------------
    def touch(self, path: Path) -> None:
        path.touch()

    def touch_later(self, path: Path) -> None:
        """Touch an existing file to a later time than it had, however coarse the file system's clock."""
        later = max(time.time_ns(), path.stat().st_mtime_ns + 1)
        os.utime(path, ns=(later, later))

    def touched_at(self, path: Path) -> int | None:
        """When the file was last touched (nanoseconds); None when there is none."""
        try:
            return os.stat(path).st_mtime_ns
        except OSError:
            return None

    # --- removing ------------------------------------------------------------------
    def remove(self, path: Path) -> None:
        """One file (gone already is fine)."""
        path.unlink(missing_ok=True)

    def remove_any(self, path: Path) -> None:
        """One file, link or folder (with its contents); raises when it cannot (gone already is fine)."""
        if path.is_dir() and not path.is_symlink():
            self.remove_tree(path)
        else:
            self.remove(path)

    def remove_if_empty(self, folder: Path) -> None:
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            pass

    def remove_tree(self, folder: Path, tries: int = 3) -> None:
        """rmtree that lets another process remove parts of the tree (or all of it) at the same time, and
        add a file (an FFmpeg being stopped writes the thumbnail it was making), but still raises when
        something cannot be removed."""

        def vanished_is_fine(function, path, exc_info):
            if not issubclass(exc_info[0], FileNotFoundError):
                raise exc_info[1]

        for attempt in range(1, tries + 1):
            try:
                shutil.rmtree(folder, onerror=vanished_is_fine)
                return
            except OSError as exc:
                if exc.errno != errno.ENOTEMPTY or attempt == tries:
                    raise
                logger.info("%s: a file appeared while it was removed; removing it again", folder)

    def remove_tree_quietly(self, folder: Path) -> None:
        """The whole folder, whatever is in it, ignoring what cannot be removed."""
        shutil.rmtree(folder, ignore_errors=True)


disk = LocalDisk()
