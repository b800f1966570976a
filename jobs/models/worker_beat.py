"""When a worker cluster was last seen alive."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class WorkerBeat(models.Model):
    """When a worker cluster last showed it is alive; read by /api/health/."""

    name = models.CharField(max_length=64, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} seen {self.seen_at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, name: str = "cluster") -> None:
        cls.objects.update_or_create(name=name, defaults={"seen_at": timezone.now()})
