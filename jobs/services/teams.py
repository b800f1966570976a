"""Teams: which ones a user works in, which one a new job goes to, and managing their members.

A user in no team works in a personal team of their own (Team.personal), made on first need: for a single
user nothing changes. Every refusal names its field, as an upload's do (jobs.services.refusal).
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet

from jobs.models import MAX_TEAM_NAME_LENGTH, Job, Membership, Role, Team
from jobs.services.names import hidden_characters
from jobs.services.refusal import Refused

logger = logging.getLogger(__name__)


def teams_of(user) -> QuerySet:
    """The user's teams, each annotated with the user's `role`; every user has their personal team among them."""
    Team.personal(user)
    return Team.objects.filter(memberships__user=user).annotate(role=F("memberships__role")).order_by("name", "pk")


def default_team(user) -> Team:
    """Where a new job of the user goes when they do not say: the team of their last job, while they are
    still in it; else their personal team (never a team someone else added them to and they never chose)."""
    teams = teams_of(user)
    last = Job.objects.filter(owner=user, team__in=teams).order_by("-created_at").values_list("team", flat=True)
    chosen = last.first()
    return teams.get(pk=chosen) if chosen else teams.get(personal_for=user)


def team_for_job(user, value) -> Team:
    """The team a new job goes to: `value` (a team id from the form or the API) or the default. 400 naming
    the field `team` for a team the user is not in, or a value that is not a team id."""
    if value in (None, ""):
        return default_team(user)
    try:
        team_id = int(value)
    except (TypeError, ValueError):
        raise Refused(f"team must be the id of one of your teams, not {str(value)[:40]!r}", field="team") from None
    team = teams_of(user).filter(pk=team_id).first()
    if team is None:
        raise Refused(f"you are not in a team with id {team_id}", field="team")
    return team


def create_team(user, name: str) -> Team:
    """A new team, with its creator as its manager."""
    name = " ".join(name.split()) if isinstance(name, str) else ""
    if not name or len(name) > MAX_TEAM_NAME_LENGTH or hidden_characters(name):
        raise Refused(f"a team's name is 1 to {MAX_TEAM_NAME_LENGTH} visible characters", field="name")
    with transaction.atomic():
        team = Team.objects.create(name=name)
        Membership.objects.create(team=team, user=user, role=Role.MANAGER)
    logger.info("team %s (%s) made by %s", team.pk, name, user)
    return team


def managed_team(user, team_id) -> Team:
    """The team, for a manager's change: 404 for an outsider (as a job of theirs would be), 403 for a member,
    409 for a personal team (it is its user's alone: a shared team is made on the Teams page)."""
    team = teams_of(user).filter(pk=team_id).first() if str(team_id).isdigit() else None
    if team is None:
        raise Refused("no such team", status=404)
    if team.role != Role.MANAGER:
        raise Refused("only the team's managers may change its members", status=403)
    if team.personal_for_id is not None:
        raise Refused("a personal team has only its user: make a team to share jobs", status=409)
    return team


def team_for_member_change(user, team_id, username) -> Team:
    """The team whose member `username` is being taken out: any member may leave a team (someone may have
    added them to it), a manager may take anyone out (managed_team)."""
    if username == user.get_username():
        team = teams_of(user).filter(pk=team_id).first() if str(team_id).isdigit() else None
        if team is None:
            raise Refused("no such team", status=404)
        if team.personal_for_id is not None:
            raise Refused("a personal team cannot be left", status=409)
        return team
    return managed_team(user, team_id)


def _username(value) -> str:
    if not isinstance(value, str) or not value or len(value) > 150 or hidden_characters(value):
        raise Refused("username is the name of a user", field="username")
    return value


def _lock(team: Team) -> None:
    """Inside a transaction: one change of the team's members at a time (the last-manager rule reads them)."""
    Team.objects.select_for_update().filter(pk=team.pk).exists()


def _keeps_a_manager(team: Team, leaving) -> bool:
    return Membership.objects.filter(team=team, role=Role.MANAGER).exclude(user=leaving).exists()


def add_member(team: Team, username: str, role: str = Role.MEMBER) -> Membership:
    """Add a user (or change their role when they are in the team already)."""
    if not isinstance(role, str) or role not in Role.values:
        raise Refused(f"role is one of {', '.join(Role.values)}", field="role")
    user = get_user_model().objects.filter(username=_username(username)).first()
    if user is None:
        raise Refused(f"no user named {username!r}", field="username")
    try:
        with transaction.atomic():
            _lock(team)
            if role != Role.MANAGER and not _keeps_a_manager(team, user):
                raise Refused("a team keeps at least one manager: make another one first", status=409)
            membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    except IntegrityError:  # added by a concurrent request meanwhile
        membership = Membership.objects.get(team=team, user=user)
    logger.info("team %s: %s is a %s", team.pk, user, membership.role)
    return membership


def remove_member(team: Team, username: str) -> None:
    """Take a user out of the team; a team keeps at least one manager."""
    with transaction.atomic():
        _lock(team)
        membership = Membership.objects.filter(team=team, user__username=_username(username)).first()
        if membership is None:
            raise Refused(f"{username!r} is not in this team", status=404, field="username")
        if not _keeps_a_manager(team, membership.user):
            raise Refused("a team keeps at least one manager: make another one first", status=409)
        membership.delete()
    logger.info("team %s: %s removed", team.pk, username)
