"""Once a system has votes it stays, under its name, on every leaderboard: no path deletes, renames
or hides it (domain functions, API, client pages, Django admin, the ORM's cascades). Systems
without votes keep their old freedom."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site as admin_site
from django.db import transaction
from django.db.models import ProtectedError
from django.test import RequestFactory

from crowdplatform.core.errors import ConflictError
from evaluations import services
from evaluations.leaderboard import study_leaderboard
from evaluations.models import Study, System, Vote
from tests.evaluations.conftest import snapshot
from tests.evaluations.test_leaderboard import X, Y, Z, vote

pytestmark = pytest.mark.django_db


@pytest.fixture
def voted(make_live_study, make_rater, owner) -> Study:
    """X and Y have votes; Z was registered afterwards and has none."""
    study = make_live_study(systems=(X, Y), items=2)
    vote(make_rater(), study, X)
    services.system_register(study=study, actor=owner, name=Z)
    return study


@pytest.fixture
def client_api(api_client, api_key_pair):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_pair[1]}")
    return api_client


def system(study: Study, name: str) -> System:
    return study.systems.get(name=name)


def names(study: Study) -> list[str]:
    return [row.system for row in study_leaderboard(study=study, bootstrap=0).rows]


# --- Domain functions ---------------------------------------------------------------------------


def test_delete_is_refused(voted, owner):
    before = snapshot()

    with pytest.raises(ConflictError) as error:
        services.system_delete(system=system(voted, X), actor=owner)

    assert (error.value.status, error.value.code, error.value.message) == (
        409,
        "system_has_votes",
        "'sys-x' has votes; it cannot be deleted.",
    )
    assert snapshot() == before


@pytest.mark.parametrize(("name", "provider"), [("sys-x-old", "Lab"), (X, "Someone else")])
def test_rename_is_refused(voted, owner, name, provider):
    before = snapshot()

    with pytest.raises(ConflictError) as error:
        services.system_update(system=system(voted, X), actor=owner, name=name, provider=provider, notes="")

    assert error.value.code == "system_has_votes"
    assert snapshot() == before


def test_a_stale_copy_cannot_rename_a_voted_system_back(make_live_study, make_rater, owner):
    study = make_live_study(systems=(X, Y), items=2)
    stale = system(study, X)  # loaded while it was still sys-x
    services.system_update(system=system(study, X), actor=owner, name="sys-x2", provider="Lab", notes="")
    vote(make_rater(), study, "sys-x2")
    before = snapshot()

    # The copy still says sys-x, so "sys-x" looks like no change; the stored name is sys-x2.
    with pytest.raises(ConflictError) as error:
        services.system_update(system=stale, actor=owner, name=X, provider="Lab", notes="")

    assert error.value.message == "'sys-x2' has votes; it cannot be renamed."
    assert snapshot() == before
    assert names(study) == ["sys-x2", Y]


def test_a_system_with_only_excluded_votes_is_still_listed(voted):
    Vote.objects.update(quality_status="excluded")

    assert names(voted) == [X, Y, Z]


# --- API ----------------------------------------------------------------------------------------


def test_api_delete_is_409_and_changes_nothing(client_api, voted):
    before = snapshot()

    response = client_api.delete(f"/api/v1/studies/{voted.pk}/systems/{system(voted, Y).pk}/")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "system_has_votes"
    assert snapshot() == before


def test_api_rename_is_409_and_changes_nothing(client_api, voted):
    before = snapshot()

    response = client_api.patch(f"/api/v1/studies/{voted.pk}/systems/{system(voted, Y).pk}/", {"name": "hidden"})

    assert response.status_code == 409
    assert snapshot() == before


def test_api_leaderboard_takes_no_filter_that_could_hide_a_system(client_api, voted):
    body = client_api.get(f"/api/v1/studies/{voted.pk}/leaderboard/", {"bootstrap": 0, "systems": X}).json()

    assert [entry["system"] for entry in body["systems"]] == [X, Y, Z]


def test_a_system_without_votes_can_still_be_deleted(client_api, voted):
    response = client_api.delete(f"/api/v1/studies/{voted.pk}/systems/{system(voted, Z).pk}/")

    assert response.status_code == 204
    assert names(voted) == [X, Y]


# --- Client pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["delete", "hide", "remove"])
def test_client_pages_have_no_way_to_remove_a_system(client, owner, voted, action):
    client.force_login(owner)
    before = snapshot()

    response = client.post(f"/client/orgs/{voted.organization.slug}/studies/{voted.pk}/{action}/")

    assert response.status_code == 404
    assert snapshot() == before


# --- Django admin -------------------------------------------------------------------------------


def test_admin_refuses_to_delete_a_voted_system(client, staff_user, voted):
    client.force_login(staff_user)
    target = system(voted, X)
    before = snapshot()

    page = client.get(f"/admin/evaluations/system/{target.pk}/delete/")
    confirmed = client.post(f"/admin/evaluations/system/{target.pk}/delete/", {"post": "yes"})
    bulk = client.post(
        "/admin/evaluations/system/", {"action": "delete_selected", "_selected_action": [target.pk], "post": "yes"}
    )

    assert (page.status_code, confirmed.status_code) == (403, 403)
    assert bulk.status_code in (200, 302)
    assert snapshot() == before


def test_admin_delete_permission_is_false_for_a_voted_system(staff_user, voted):
    model_admin = admin_site._registry[System]
    request = RequestFactory().get("/admin/")
    request.user = staff_user

    assert model_admin.has_delete_permission(request, system(voted, X)) is False
    assert "delete_selected" not in model_admin.get_actions(request)


# --- The ORM ------------------------------------------------------------------------------------


def test_the_database_protects_voted_systems_even_from_raw_deletes(voted):
    before = snapshot()

    for target in (system(voted, X), Study.objects.get(pk=voted.pk)):
        with pytest.raises(ProtectedError), transaction.atomic():
            target.delete()

    assert snapshot() == before
