"""Teams: members share a team's jobs, outsiders get 404, managers manage; the API, the pages and the quota."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template.defaultfilters import filesizeformat
from django.test import Client
from django.utils import timezone
from model_bakery import baker

from jobs import storage
from jobs.models import Job, Membership, Status, Team
from jobs.services import quota, teams

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(user, other_user) -> Team:
    """Alice's team "Ads", with Bob as a member."""
    ads = teams.create_team(user, "Ads")
    teams.add_member(ads, other_user.username)
    return ads


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def outsider(db):
    return baker.make("auth.User", username="carol")


def test_a_user_in_no_team_works_in_a_personal_team_as_before(api, user, make_job):
    job = make_job()
    assert job.team == Team.objects.get(personal_for=user) and job.team.role_of(user) == "manager"
    body = api.get("/api/teams/").json()
    assert body == [{"id": job.team.pk, "name": "alice", "role": "manager", "personal": True}]
    assert api.get(f"/api/jobs/{job.pk}/").json()["team"] == job.team.pk


def test_a_teammate_sees_downloads_cancels_and_makes_more(user, other_user, team, make_job, api_client_for):
    finished = make_job(team=team)
    running = make_job(team=team, status=Status.PROCESSING)
    bob = api_client_for(other_user)
    document = bob.get(f"/api/jobs/{finished.pk}/").json()
    assert (document["team"], document["team_name"], document["created_by"]) == (team.pk, "Ads", "alice")
    assert {job["id"] for job in bob.get("/api/jobs/").json()["results"]} == {finished.pk, running.pk}
    download = bob.get(f"/api/jobs/{finished.pk}/download/")
    assert download.status_code == 200 and b"".join(download.streaming_content)[:2] == b"PK"
    assert bob.post(f"/api/jobs/{running.pk}/cancel/").json()["status"] == "cancelled"

    more = bob.post(f"/api/jobs/{finished.pk}/make-more/", {"variations": 1}, format="json")
    assert more.status_code == 201, more.content
    made = Job.objects.get(pk=more.json()["id"])
    assert (made.owner, made.team, more.json()["created_by"]) == (other_user, team, "bob")


@pytest.mark.parametrize(
    "method, suffix",
    [
        ("get", ""),
        ("get", "download/"),
        ("get", "thumbnail/"),
        ("post", "cancel/"),
        ("post", "make-more/"),
        ("post", "retry/"),
        ("delete", ""),
    ],
)
def test_an_outsider_gets_404_on_every_route_of_a_teams_job(team, make_job, outsider, api_client_for, method, suffix):
    job = make_job(team=team, status=Status.FAILED)
    response = getattr(api_client_for(outsider), method)(f"/api/jobs/{job.pk}/{suffix}")
    assert response.status_code == 404
    assert Job.objects.get(pk=job.pk).status == Status.FAILED
    assert api_client_for(outsider).get("/api/jobs/").json()["count"] == 0


def test_the_creator_and_the_managers_delete_a_member_does_not(user, other_user, team, make_job, api_client_for):
    bobs = make_job(team=team, owner=other_user)
    alices = make_job(team=team)
    bob, alice = api_client_for(other_user), api_client_for(user)
    refused = bob.delete(f"/api/jobs/{alices.pk}/")
    assert refused.status_code == 403 and Job.objects.filter(pk=alices.pk).exists()
    assert bob.delete(f"/api/jobs/{bobs.pk}/").status_code == 204  # his own
    assert alice.delete(f"/api/jobs/{alices.pk}/").status_code == 204  # the manager's (and her own)
    again = make_job(team=team, owner=other_user)
    assert alice.delete(f"/api/jobs/{again.pk}/").status_code == 204  # a manager deletes anyone's
    assert not storage.job_folder(again.pk).exists()


def test_a_job_goes_to_the_team_asked_for_else_the_last_one_used(user, team, post_job, upload, api):
    personal = Team.personal(user)
    first = post_job(["a.mp4"], 1, fields={"team": team.pk})
    assert first.team == team
    assert post_job(["b.mp4"], 1).team == team  # her last one
    assert post_job(["c.mp4"], 1, fields={"team": personal.pk}).team == personal
    for value, words in ((99999, "not in a team"), ("ads", "id of one of your teams")):
        response = api.post("/api/jobs/", {"videos": [upload("d.mp4")], "variations": 1, "team": value})
        assert response.status_code == 400 and response.json()["field"] == "team", response.content
        assert words in response.json()["detail"]
    assert Job.objects.count() == 3


def test_managers_add_and_remove_members_members_may_not_outsiders_get_404(
    user, other_user, outsider, team, api_client_for
):
    alice, bob, carol = (api_client_for(who) for who in (user, other_user, outsider))
    added = alice.post(f"/api/teams/{team.pk}/members/", {"username": "carol", "role": "member"}, format="json")
    assert added.status_code == 200 and added.json() == {"username": "carol", "role": "member"}
    assert carol.get("/api/teams/").json()[0]["role"] == "member"
    assert bob.post(f"/api/teams/{team.pk}/members/", {"username": "bob", "role": "manager"}).status_code == 403
    assert bob.delete(f"/api/teams/{team.pk}/members/carol/").status_code == 403
    assert alice.delete(f"/api/teams/{team.pk}/members/carol/").status_code == 204
    assert carol.post(f"/api/teams/{team.pk}/members/", {"username": "carol"}).status_code == 404
    assert carol.delete(f"/api/teams/{team.pk}/members/bob/").status_code == 404
    assert set(team.memberships.values_list("user__username", "role")) == {("alice", "manager"), ("bob", "member")}


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"username": "nobody"}, 400, "username"),
        ({"username": "bob", "role": "owner"}, 400, "role"),
        ({"username": ["bob"]}, 400, "username"),
        ([1, 2], 400, "username"),
    ],
)
def test_a_bad_member_change_is_a_clear_400(user, team, api_client_for, body, status, field):
    response = api_client_for(user).post(f"/api/teams/{team.pk}/members/", body, format="json")
    assert response.status_code == status and response.json()["field"] == field, response.content


def test_a_team_keeps_a_manager_and_a_new_team_makes_its_creator_manager(user, other_user, team, api_client_for):
    alice = api_client_for(user)
    last = alice.delete(f"/api/teams/{team.pk}/members/alice/")
    assert last.status_code == 409 and "at least one manager" in last.json()["detail"]
    made = api_client_for(other_user).post("/api/teams/", {"name": "  Video  "}, format="json")
    assert made.status_code == 201 and made.json()["name"] == "Video" and made.json()["role"] == "manager"
    for name in ("", "x" * 101, 5):
        refused = alice.post("/api/teams/", {"name": name}, format="json")
        assert refused.status_code == 400 and refused.json()["field"] == "name"


def test_the_list_filters_by_team_maker_status_and_name(user, other_user, team, make_job, api, logged_in):
    mine = make_job(team=team, name="Spring sale")
    bobs = make_job(team=team, owner=other_user, name="Autumn", status=Status.FAILED)
    personal = make_job(name="Spring teaser")

    def ids(query: str) -> set[str]:
        response = api.get(f"/api/jobs/?{query}")
        assert response.status_code == 200, response.content
        return {job["id"] for job in response.json()["results"]}

    assert ids("") == {mine.pk, bobs.pk, personal.pk}
    assert ids(f"team={team.pk}") == {mine.pk, bobs.pk}
    assert ids(f"team={team.pk}&mine=1") == {mine.pk}
    assert ids("status=failed") == {bobs.pk}
    assert ids("search=spring") == {mine.pk, personal.pk}
    assert ids("search=a.mp4&mine=0") == {mine.pk, bobs.pk, personal.pk}  # a video's name
    for query, field in (("status=done", "status"), ("mine=maybe", "mine"), ("team=x", "team")):
        response = api.get(f"/api/jobs/?{query}")
        assert response.status_code == 400 and field in response.json()["detail"], response.content
    page = logged_in.get(f"/?team={team.pk}&mine=1").content.decode()
    assert "Spring sale" in page and "Autumn" not in page and "Spring teaser" not in page
    assert "No jobs match these filters" in logged_in.get("/?search=nothing-like-it").content.decode()


def test_the_team_quota_refuses_new_work_naming_the_team(user, team, make_job, post_job, api, upload, settings):
    make_job(team=team, finished_at=None, status=Status.PROCESSING, reserved_bytes=4_000_000)
    settings.TEAM_STORAGE_BYTES = 5_000_000  # a job of one 1 s clip reserves about 2.7 MB
    response = api.post("/api/jobs/", {"videos": [upload("a.mp4")], "variations": 1, "team": team.pk})
    assert response.status_code == 507, response.content
    assert "storage quota of the team Ads" in response.json()["detail"]
    assert post_job(["a.mp4"], 1, fields={"team": Team.personal(user).pk}).status == Status.QUEUED  # another team


def test_the_teams_pages_let_a_manager_add_a_member(user, other_user, outsider, team, logged_in):
    page = logged_in.get("/teams/").content.decode()
    assert "Ads" in page and "You are a manager" in page
    assert logged_in.post(f"/teams/{team.pk}/members/", {"username": "carol", "role": "member"}).status_code == 302
    assert Membership.objects.filter(team=team, user=outsider).exists()
    bob = Client()
    bob.force_login(other_user)  # a member: sees the team, no forms, and a POST changes nothing
    assert 'name="username"' not in bob.get(f"/teams/{team.pk}/").content.decode()
    bob.post(f"/teams/{team.pk}/members/carol/remove/")
    assert Membership.objects.filter(team=team, user=outsider).exists()
    dave = Client()
    dave.force_login(baker.make("auth.User", username="dave"))
    assert dave.get(f"/teams/{team.pk}/").status_code == 404
    made = logged_in.post("/teams/", {"name": "Video"})
    assert made.status_code == 302 and Team.objects.get(name="Video").role_of(user) == "manager"


def test_a_teammate_renames_with_the_apis_rules(user, other_user, team, make_job, api_client_for):
    job = make_job(team=team)
    bob = api_client_for(other_user)
    renamed = bob.patch(f"/api/jobs/{job.pk}/", {"name": "  Spring   sale  "}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Spring sale"
    for body in ({"name": "x" * 101}, {"name": ["a"]}, {"name": "tab\u200bhidden"}):
        refused = bob.patch(f"/api/jobs/{job.pk}/", body, format="json")
        assert refused.status_code == 400 and refused.json()["field"] == "name", refused.content
    assert bob.put(f"/api/jobs/{job.pk}/", {"name": "x"}, format="json").status_code == 405
    assert Job.objects.get(pk=job.pk).name == "Spring sale"
    outsider = api_client_for(baker.make("auth.User", username="mallory"))
    assert outsider.patch(f"/api/jobs/{job.pk}/", {"name": "mine"}, format="json").status_code == 404


def test_the_pages_rename_and_delete_with_a_confirmation_that_says_what_is_freed(
    user, other_user, team, make_job, logged_in, files_under
):
    job = make_job(team=team, outputs=2, size=1000)
    logged_in.post(f"/jobs/{job.pk}/rename/", {"name": "Autumn promo"})
    assert Job.objects.get(pk=job.pk).name == "Autumn promo"
    long = logged_in.post(f"/jobs/{job.pk}/rename/", {"name": "y" * 150}, follow=True).content.decode()
    assert "Name: at most 100 characters, not 150" in long and Job.objects.get(pk=job.pk).name == "Autumn promo"

    bob = Client()
    bob.force_login(other_user)  # a member, not its creator: no Delete, and a POST is refused
    assert 'id="delete-link"' not in bob.get(f"/jobs/{job.pk}/").content.decode()
    assert bob.post(f"/jobs/{job.pk}/delete/").status_code == 403

    confirm = logged_in.get(f"/jobs/{job.pk}/delete/").content.decode()
    assert "Delete Autumn promo?" in confirm and "2 finished variations" in confirm and "the team Ads" in confirm
    freed = storage.job_bytes(job)  # its 2 outputs, its upload and its thumbnail
    assert freed > 3000 and f"it frees {filesizeformat(freed)}" in confirm
    assert Job.objects.filter(pk=job.pk).exists()  # the GET only asks
    listing = logged_in.post(f"/jobs/{job.pk}/delete/", follow=True).content.decode()
    assert "Deleted Autumn promo and its files." in listing
    assert not Job.objects.filter(pk=job.pk).exists() and not files_under(storage.job_folder(job.pk))


def test_a_running_job_is_cancelled_before_it_is_deleted_from_its_page(team, make_job, logged_in):
    job = make_job(team=team, status=Status.PROCESSING)
    assert "it is cancelled first" in logged_in.get(f"/jobs/{job.pk}/delete/").content.decode()
    logged_in.post(f"/jobs/{job.pk}/delete/")
    assert not Job.objects.filter(pk=job.pk).exists()


def test_being_added_to_a_team_never_sends_your_uploads_there_and_you_may_leave(
    user, other_user, upload, api_client_for
):
    aaa = teams.create_team(user, "AAA")  # sorts before anyone's personal team
    teams.add_member(aaa, other_user.username)
    bob = api_client_for(other_user)
    created = bob.post("/api/jobs/", {"videos": [upload("a.mp4")], "variations": 1}, format="multipart")
    assert created.status_code == 201, created.content
    assert Job.objects.get(pk=created.json()["id"]).team == Team.personal(other_user)  # his own, not AAA
    assert bob.delete(f"/api/teams/{aaa.pk}/members/bob/").status_code == 204  # he leaves it
    assert not aaa.memberships.filter(user=other_user).exists()


def test_a_team_keeps_a_manager_through_demotions_and_personal_teams_stay_personal(user, other_user, team, api):
    demoted = api.post(f"/api/teams/{team.pk}/members/", {"username": "alice", "role": "member"}, format="json")
    assert demoted.status_code == 409 and team.role_of(user) == "manager"
    personal = Team.personal(user)
    shared = api.post(f"/api/teams/{personal.pk}/members/", {"username": "bob"}, format="json")
    assert shared.status_code == 409 and "personal team" in shared.json()["detail"]
    assert api.delete(f"/api/teams/{personal.pk}/members/alice/").status_code == 409


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("get", "/api/jobs/?search=a%00b", None),
        ("post", "/api/teams/", {"name": "Ads\u202ereversed"}),
        ("post", "/api/teams/{team}/members/", {"username": "bo\x00b"}),
        ("patch", "/api/jobs/{job}/", {}),
        ("patch", "/api/jobs/{job}/", [1]),
    ],
)
def test_bad_text_and_missing_fields_are_clear_400s(team, make_job, api, method, path, body):
    job = make_job(team=team, name="Kept")
    response = getattr(api, method)(path.format(team=team.pk, job=job.pk), body, format="json")
    assert response.status_code == 400, response.content
    assert Job.objects.get(pk=job.pk).name == "Kept"


def test_new_work_never_evicts_another_teams_results(user, team, make_job, api, upload, settings):
    elsewhere = make_job(finished_at=timezone.now() - timedelta(days=1))  # alice's, in her personal team
    settings.MIN_RETENTION_MINUTES = 0
    settings.STORAGE_CAP_BYTES = quota.storage_used() + 1000  # a new job fits only if something goes
    response = api.post("/api/jobs/", {"videos": [upload("a.mp4")], "variations": 1, "team": team.pk})
    assert response.status_code == 507, response.content
    assert Job.objects.filter(pk=elsewhere.pk).exists()  # never evicted for the Ads team's work
