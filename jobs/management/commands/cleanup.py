"""`manage.py cleanup [--dry-run]`: one pass of jobs.cleanup.run (the scheduled task runs the same)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from jobs import cleanup


class Command(BaseCommand):
    help = "Expire old jobs, evict over the storage cap, remove orphan files and recover jobs whose worker died."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print what would be done; change nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        summary = cleanup.run(dry_run=dry_run)
        for action in summary.actions:
            self.stdout.write(("would " if dry_run else "") + action)
        self.stdout.write(summary.line())
