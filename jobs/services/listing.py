"""Which of the jobs a user sees a list shows: the filters of the list page and of GET /api/jobs/."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.models import MAX_JOB_NAME_LENGTH, Status, Team
from jobs.services import teams
from jobs.services.names import hidden_characters
from jobs.services.refusal import Refused

TRUE, FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class JobFilters:
    team: Team | None = None
    mine: bool = False
    status: str = ""
    search: str = ""

    def apply(self, jobs, user):
        """`jobs` (the ones `user` sees) narrowed to these filters."""
        return jobs.matching(team=self.team, owner=user if self.mine else None, status=self.status, search=self.search)

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for the page's links)."""
        pairs = {"team": self.team.pk if self.team else "", "mine": "1" if self.mine else ""}
        pairs |= {"status": self.status, "search": self.search}
        return {key: str(value) for key, value in pairs.items() if value}


def parse_filters(params, user) -> JobFilters:
    """team (one of the user's teams, by id), mine (1/0), status (a job status), search (a job's or a video's
    name, in part); 400 naming the parameter for anything else."""
    team_value = params.get("team") or ""
    team = teams.team_for_job(user, team_value) if team_value else None
    mine = str(params.get("mine") or "").lower()
    if mine not in TRUE + FALSE:
        raise Refused("mine is 1 (only the jobs you made) or 0", field="mine")
    status = params.get("status") or ""
    if status and status not in Status.values:
        raise Refused(f"status is one of {', '.join(Status.values)}", field="status")
    search = (params.get("search") or "").strip()
    if len(search) > MAX_JOB_NAME_LENGTH or hidden_characters(search):
        raise Refused(f"search is at most {MAX_JOB_NAME_LENGTH} visible characters", field="search")
    return JobFilters(team=team, mine=mine in TRUE, status=status, search=search)
