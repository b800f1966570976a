"""Teams: who shares jobs. Every job belongs to a team; its members see and work on it (jobs.services.teams)."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

MAX_TEAM_NAME_LENGTH = 100


class Role(models.TextChoices):
    MEMBER = "member", "Member"
    MANAGER = "manager", "Manager"


class Team(models.Model):
    name = models.CharField(max_length=MAX_TEAM_NAME_LENGTH)
    personal_for = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="personal_team",
        help_text="The user it was made for (a user in no team works alone in it); empty for a shared team.",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def personal(cls, user) -> Team:
        """The user's personal team (made on first need, with the user as its manager)."""
        team = cls.objects.filter(personal_for=user).first()
        if team is None:
            try:
                with transaction.atomic():
                    team = cls.objects.create(name=user.get_username(), personal_for=user)
                    Membership.objects.create(team=team, user=user, role=Role.MANAGER)
            except IntegrityError:  # made by a concurrent request meanwhile
                team = cls.objects.get(personal_for=user)
        return team

    def role_of(self, user) -> str | None:
        """The user's role in the team; None for an outsider."""
        return self.memberships.filter(user=user).values_list("role", flat=True).first()


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["team", "user__username"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"
