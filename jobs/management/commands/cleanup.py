"""`manage.py cleanup [--dry-run]`: one pass of jobs.worker.cleanup.run (the scheduled task runs the same)."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from django.core.management.base import BaseCommand

from jobs.worker import cleanup


@contextmanager
def quiet_info(logger_name: str):
    """The command prints each action and the summary itself: the pass's own info lines would say it twice.
    Warnings and errors still go to the log."""
    target = logging.getLogger(logger_name)
    previous = target.level
    target.setLevel(max(logging.WARNING, target.getEffectiveLevel()))
    try:
        yield
    finally:
        target.setLevel(previous)


class Command(BaseCommand):
    help = "Expire old jobs, evict over the storage cap, remove orphan files and recover jobs whose worker died."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print what would be done; change nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        with quiet_info(cleanup.logger.name):
            summary = cleanup.run(dry_run=dry_run)
        for action in summary.actions:
            self.stdout.write(("would " if dry_run else "") + action)
        self.stdout.write(summary.line())
