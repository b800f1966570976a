"""A user's own choices about the service: whether a job's end is emailed to them, and their webhook secret."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Preferences(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences")
    email_when_done = models.BooleanField(
        default=True, help_text="Email the user when a job they made ends (with EMAIL_URL set and an address)."
    )
    webhook_secret = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Signs the webhooks of their jobs (HMAC-SHA256); made on first ask, rotated on request.",
    )

    class Meta:
        verbose_name_plural = "preferences"

    def __str__(self) -> str:
        return f"preferences of {self.user}"

    @classmethod
    def of(cls, user) -> Preferences:
        """The user's preferences (the defaults until they change one)."""
        return cls.objects.filter(user=user).first() or cls(user=user)
