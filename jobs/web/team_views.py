"""The teams pages: the user's teams, a new team, and a team's members (which its managers change)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from jobs.models import MAX_TEAM_NAME_LENGTH, Role
from jobs.services import teams
from jobs.services.refusal import Refused, as_sentence


@require_http_methods(["GET", "POST"])
def team_list(request):
    """The user's teams; a POST makes a new one, with the user as its manager."""
    if request.method == "POST":
        try:
            team = teams.create_team(request.user, request.POST.get("name"))
        except Refused as exc:
            messages.error(request, as_sentence(exc.message))
        else:
            messages.success(request, f"The team {team.name} is made: add its members here.")
            return redirect("teams-detail", pk=team.pk)
    context = {"teams": teams.teams_of(request.user), "max_name_length": MAX_TEAM_NAME_LENGTH}
    return render(request, "jobs/teams.html", context)


def _team_of(request, pk: int):
    team = teams.teams_of(request.user).filter(pk=pk).first()
    if team is None:
        raise Http404("No such team.")
    return team


def team_detail(request, pk: int):
    team = _team_of(request, pk)
    members = team.memberships.select_related("user").order_by("user__username")
    context = {"team": team, "members": members, "roles": Role.choices, "manager": team.role == Role.MANAGER}
    return render(request, "jobs/team_detail.html", context)


@require_POST
def team_add_member(request, pk: int):
    try:
        team = teams.managed_team(request.user, pk)
        membership = teams.add_member(team, request.POST.get("username", "").strip(), request.POST.get("role"))
    except Refused as exc:
        if exc.status == 404:
            raise Http404("No such team.") from None
        messages.error(request, as_sentence(exc.message))
    else:
        messages.success(request, f"{membership.user} is a {membership.role} of the team.")
    return redirect("teams-detail", pk=pk)


@require_POST
def team_remove_member(request, pk: int, username: str):
    try:
        teams.remove_member(teams.team_for_member_change(request.user, pk, username), username)
    except Refused as exc:
        if exc.status == 404 and exc.field != "username":
            raise Http404("No such team.") from None
        messages.error(request, as_sentence(exc.message))
    else:
        if username == request.user.get_username():
            messages.success(request, "You left the team.")
            return redirect("teams-list")
        messages.success(request, f"{username} is no longer in the team.")
    return redirect("teams-detail", pk=pk)
