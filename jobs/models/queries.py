"""The queries the pages and the API ask of jobs: whose jobs a user sees, and their places in the queue."""

from __future__ import annotations

from django.db import models
from django.db.models import Case, Count, OuterRef, Q, Subquery, When
from django.db.models.functions import Coalesce

from jobs.models.base import Status
from jobs.models.versioning import with_version


class JobQuerySet(models.QuerySet):
    def update(self, **fields) -> int:
        """Every UPDATE that changes what the job's JSON shows moves its version on (jobs.models.versioning)."""
        return super().update(**with_version(fields))

    def visible_to(self, user) -> JobQuerySet:
        """The jobs of the user's teams; staff see every job only with Django's permission for it
        (jobs.view_job). One membership per team and user: no job twice."""
        if user.is_staff and user.has_perm("jobs.view_job"):
            return self
        return self.filter(team__memberships__user=user)

    def matching(self, team=None, owner=None, status: str = "", search: str = "") -> JobQuerySet:
        """Narrowed to a team, an owner, a status, and a text in the job's name or one of its videos' names."""
        jobs = self
        if team is not None:
            jobs = jobs.filter(team=team)
        if owner is not None:
            jobs = jobs.filter(owner=owner)
        if status:
            jobs = jobs.filter(status=status)
        if search:
            videos = self.model.sources.rel.related_model.objects.filter(original_name__icontains=search)
            jobs = jobs.filter(Q(name__icontains=search) | Q(pk__in=videos.values("job")))
        return jobs

    def with_queue_position(self) -> JobQuerySet:
        """Annotates `queued_ahead` (queued jobs only): how many queued jobs, anyone's, were sent to the
        workers before it. One subquery for the whole list instead of one query per card."""
        sent = Coalesce("enqueued_at", "created_at")
        ahead = (
            self.model.objects.filter(status=Status.QUEUED)
            .alias(sent=sent)
            .filter(Q(sent__lt=OuterRef("queue_sent")) | Q(sent=OuterRef("queue_sent"), pk__lt=OuterRef("pk")))
            .order_by()
            .values("status")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return self.alias(queue_sent=sent).annotate(
            queued_ahead=Case(
                When(status=Status.QUEUED, then=Coalesce(Subquery(ahead), 0)),
                default=None,
                output_field=models.IntegerField(),
            )
        )
