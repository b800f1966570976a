"""The teams API: the caller's teams, a new team, and a manager's changes to its members."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs.models import MAX_TEAM_NAME_LENGTH, Role
from jobs.services import teams
from jobs.services.refusal import Refused
from jobs.web.api.errors import refusal_response
from jobs.web.api.parsers import SmallFormParser, SmallJSONParser


class TeamSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=MAX_TEAM_NAME_LENGTH, help_text="1 to 100 characters.")
    role = serializers.ChoiceField(choices=Role.choices, read_only=True, help_text="The caller's role in it.")
    personal = serializers.BooleanField(read_only=True, help_text="The caller's personal team.")

    def to_representation(self, team) -> dict:
        return {"id": team.pk, "name": team.name, "role": team.role, "personal": team.personal_for_id is not None}


class MemberSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


def _field(request, name: str):
    """A field of the body, whatever shape a client sent (a JSON list or number has no fields)."""
    return request.data.get(name) if hasattr(request.data, "get") else None


TEAM_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The team's id")


class TeamViewSet(viewsets.ViewSet):
    """The caller's teams. A team the caller is not in is a 404; a member who is not a manager gets 403 for
    changes to its members."""

    parser_classes = [SmallJSONParser, SmallFormParser]
    serializer_class = TeamSerializer
    lookup_value_regex = r"[0-9]+"

    @extend_schema(responses={200: TeamSerializer(many=True)})
    def list(self, request, **kwargs):
        """The caller's teams, each with the caller's role (a user in no team has a personal one)."""
        return Response([TeamSerializer().to_representation(team) for team in teams.teams_of(request.user)])

    @extend_schema(request=TeamSerializer, responses={201: TeamSerializer, 400: OpenApiResponse(description="name")})
    def create(self, request, **kwargs):
        """A new team, with the caller as its manager."""
        try:
            team = teams.create_team(request.user, _field(request, "name"))
        except Refused as exc:
            return refusal_response(exc)
        team = teams.teams_of(request.user).get(pk=team.pk)
        return Response(TeamSerializer().to_representation(team), status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[TEAM_ID],
        request=MemberSerializer,
        responses={
            200: MemberSerializer,
            400: OpenApiResponse(description="an unknown user or role"),
            403: OpenApiResponse(description="the caller is a member, not a manager"),
            404: OpenApiResponse(description="no such team of the caller's"),
        },
    )
    @action(detail=True, methods=["post"], url_path="members")
    def members(self, request, pk=None, **kwargs):
        """Add a member by username with a role (member or manager), or change a member's role."""
        try:
            team = teams.managed_team(request.user, pk)
            role = _field(request, "role") or Role.MEMBER
            membership = teams.add_member(team, _field(request, "username"), role)
        except Refused as exc:
            return refusal_response(exc)
        return Response({"username": membership.user.get_username(), "role": membership.role})

    @extend_schema(
        parameters=[TEAM_ID, OpenApiParameter("username", str, OpenApiParameter.PATH)],
        responses={
            204: None,
            403: OpenApiResponse(description="the caller is a member, not a manager"),
            404: OpenApiResponse(description="no such team of the caller's, or no such member"),
            409: OpenApiResponse(description="the team's last manager"),
        },
    )
    @action(detail=True, methods=["delete"], url_path=r"members/(?P<username>[^/]+)")
    def remove_member(self, request, pk=None, username=None, **kwargs):
        """Take a member out of the team (a manager), or leave it (any member, with their own username); a team
        keeps at least one manager."""
        try:
            teams.remove_member(teams.team_for_member_change(request.user, pk, username), username)
        except Refused as exc:
            return refusal_response(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)
