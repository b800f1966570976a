"""What the pages, the API and the admin show of a job, derived from its row and its sources' rows."""

from __future__ import annotations

from django.utils import timezone

from jobs.models.base import TERMINAL, Status
from jobs.models.team import Role

MIN_ETA_PROGRESS = 3  # percent
MIN_ETA_SECONDS = 5


class JobFigures:
    """Mixed into Job: read-only figures, no query of their own beyond the (prefetched) sources."""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_expired(self) -> bool:
        return timezone.now() >= self.expires_at

    def allows(self, user, action: str) -> bool:
        """May `user` change ("change": cancel, rename, make more, retry) or delete ("delete") this job?
        Members of its team may change it; its creator and the team's managers may delete it. Staff (who see
        every job with jobs.view_job) only with Django's permission for it (jobs.change_job, jobs.delete_job)."""
        if user.has_perm(f"jobs.{action}_job"):
            return True
        role = self.team.role_of(user) if self.team_id else None
        if action == "delete":
            return role == Role.MANAGER or (role is not None and self.owner_id == user.pk)
        return role is not None

    def maker_left_team(self) -> bool:
        """Its maker is no longer in its team: the job is not theirs to see, nor to be told of."""
        return self.team_id is not None and self.team.role_of(self.owner_id) is None

    @property
    def is_downloadable(self) -> bool:
        """The one rule for offering the ZIP: finished (completed, failed or cancelled), not expired,
        with at least one finished variation. Pages, API links and the download view all ask this."""
        return self.is_terminal and not self.is_expired and self.completed_variations > 0

    @property
    def can_make_more(self) -> bool:
        """Offer "make more" (jobs.services.reuse): finished, not expired, its uploads kept (a job that ended before
        uploads were kept has none). Whether the files are still there is found out when it is asked for."""
        return self.is_terminal and not self.is_expired and all(source.path for source in self._sources())

    @property
    def failed_videos(self) -> int:
        return sum(source.status == Status.FAILED for source in self._sources())

    @property
    def can_retry(self) -> bool:
        """Offer "retry failed videos" (jobs.services.reuse): completed or failed, not expired, with a failed video."""
        return self.status in (Status.COMPLETED, Status.FAILED) and not self.is_expired and self.failed_videos > 0

    @property
    def left_variations(self) -> int:
        return self.total_variations - self.completed_variations

    @property
    def can_resume(self) -> bool:
        """Offer "finish the rest" (jobs.services.reuse): cancelled, not expired, with something left to make."""
        return (
            self.status == Status.CANCELLED
            and not self.is_expired
            and self.left_variations > 0
            and all(source.path for source in self._sources())
        )

    @property
    def title(self) -> str:
        """What the pages, the admin and the ZIP's file name call the job: its name, or its first video's."""
        if self.name:
            return self.name
        sources = self._sources()
        return sources[0].original_name if sources else f"Job {self.pk[:8]}"

    def queue_position(self) -> int | None:
        """1 for the next queued job to start, 2 for the one after it...; None unless queued.

        Counts every user's queued jobs (a position, never whose), in the order their tasks were sent.
        Uses the annotation of JobQuerySet.with_queue_position when the instance came with it.
        """
        if self.status != Status.QUEUED:
            return None
        ahead = getattr(self, "queued_ahead", None)
        if ahead is None:
            rows = type(self).objects.filter(pk=self.pk).with_queue_position()
            ahead = rows.values_list("queued_ahead", flat=True).first() or 0
        return ahead + 1

    @property
    def seconds_left(self) -> int | None:
        """An estimate for a processing job, from this run's pace: the progress made since its claim, over
        the time since. None until there is enough to go on (MIN_ETA_PROGRESS points, MIN_ETA_SECONDS)."""
        if self.status != Status.PROCESSING or self.started_at is None:
            return None
        progress = self.progress
        made = progress - self.progress_at_claim
        elapsed = (timezone.now() - self.started_at).total_seconds()
        if made < MIN_ETA_PROGRESS or elapsed < MIN_ETA_SECONDS:
            return None
        return max(int(elapsed * (100 - progress) / made), 1)

    @property
    def summary(self) -> str:
        """'2 videos × 3 variations', '2 videos × 3 variations × 2 formats (9:16, 1:1) · strong', as the pages
        show a job."""
        videos, variations, formats = len(self._sources()), self.variations_per_video, len(self.formats)
        text = f"{videos} video{'s' if videos != 1 else ''} × {variations} variation{'s' if variations != 1 else ''}"
        if formats > 1 or list(self.formats) != ["source"]:
            text += f" × {formats} format{'s' if formats != 1 else ''} ({', '.join(self.formats)})"
        strength = "" if self.strength == "subtle" else f" · {self.strength}"
        return text + strength + (" · mirrored" if self.mirror else "")

    def _sources(self):
        # Uses the prefetched sources when the caller prefetched them.
        return list(self.sources.all())

    @property
    def outputs_per_video(self) -> int:
        """Every variation in every format: the files one video gives."""
        return self.variations_per_video * len(self.formats)

    @property
    def total_variations(self) -> int:
        """Every file the job makes (a variation in two formats counts twice)."""
        return len(self._sources()) * self.outputs_per_video

    @property
    def completed_variations(self) -> int:
        return sum(source.completed_variations for source in self._sources())

    @property
    def outcome(self) -> str:
        """The status as the pages colour it: "partial" (amber) for a job completed with failed videos."""
        return "partial" if self.status == Status.COMPLETED and self.failed_videos else str(self.status)

    @property
    def status_label(self) -> str:
        """ "Completed with 1 failed video" for a partial job; otherwise its status's name."""
        if self.outcome == "partial":
            failed = self.failed_videos
            return f"Completed with {failed} failed video{'s' if failed != 1 else ''}"
        return self.get_status_display()

    @property
    def progress(self) -> int:
        """Overall progress 0-100; 100 only when every variation is finished. A finished job's is its share of
        finished files, so that "10 of 24 variations · 42%" agree."""
        sources = self._sources()
        if not sources:
            return 0
        if self.status in TERMINAL:
            total = self.total_variations
            return 100 if self.completed_variations >= total else int(100 * self.completed_variations / total)
        percent = sum(source.progress for source in sources) / len(sources)
        return min(int(percent), 99)
