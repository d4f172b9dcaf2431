"""Systems: registered before any vote, editable and removable until voted on, permanent after."""

from __future__ import annotations

import pytest

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from evaluations import services
from evaluations.models import ItemPair, PairStat, Response, Study, StudyStatus, System
from tests.evaluations.conftest import cast_vote, items_jsonl, snapshot

pytestmark = pytest.mark.django_db

THREE = ("sys-a", "sys-b", "sys-c")


def test_register_stores_the_system_and_records_it(make_study, owner, organization):
    study = make_study()
    system = services.system_register(
        study=study, actor=owner, name="  atlas-7b ", provider=" Atlas Corp ", notes=" ckpt 2024-05 "
    )
    system.refresh_from_db()
    assert (system.study, system.name, system.provider, system.notes) == (
        study,
        "atlas-7b",
        "Atlas Corp",
        "ckpt 2024-05",
    )
    assert (system.registered_by, system.votes_count) == (owner, 0)
    event = AuditEvent.objects.get(action="system.register")
    assert (event.target_type, event.target_id, event.organization_id) == (
        "evaluations.system",
        str(system.pk),
        organization.pk,
    )
    assert event.data == {"name": "atlas-7b", "provider": "Atlas Corp", "notes": "ckpt 2024-05"}


@pytest.mark.parametrize(
    ("name", "provider", "fields"),
    [
        ("", "", {"name": ["Name the system (up to 100 characters)."]}),
        ("   ", "", {"name": ["Name the system (up to 100 characters)."]}),
        ("x" * 101, "", {"name": ["Name the system (up to 100 characters)."]}),
        ("tie", "", {"name": ["'tie' and 'both_bad' are answers, not system names."]}),
        ("both_bad", "", {"name": ["'tie' and 'both_bad' are answers, not system names."]}),
        ("ok", "p" * 101, {"provider": ["Up to 100 characters."]}),
    ],
)
def test_register_refuses_invalid_fields(make_study, owner, name, provider, fields):
    study = make_study()
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        services.system_register(study=study, actor=owner, name=name, provider=provider)
    assert (error.value.status, error.value.fields) == (400, fields)
    assert snapshot() == before


def test_register_accepts_a_name_of_100_characters(make_study, owner):
    system = services.system_register(study=make_study(), actor=owner, name="x" * 100)
    assert len(System.objects.get(pk=system.pk).name) == 100


def test_a_duplicate_name_is_a_conflict(make_study, add_systems, owner):
    study = make_study()
    add_systems(study)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        services.system_register(study=study, actor=owner, name=" sys-a ")
    assert (error.value.status, error.value.code) == (409, "duplicate")
    assert error.value.message == "A system named 'sys-a' is already registered."
    assert snapshot() == before


def test_the_same_name_in_another_study_is_fine(make_study, add_systems):
    first, second = make_study(), make_study(name="Other")
    add_systems(first)
    add_systems(second)
    assert System.objects.filter(name="sys-a").count() == 2


@pytest.mark.parametrize("status", [StudyStatus.COMPLETED, StudyStatus.ARCHIVED])
def test_a_closed_study_takes_no_systems(make_study, owner, status):
    study = make_study()
    Study.objects.filter(pk=study.pk).update(status=status)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        services.system_register(study=study, actor=owner, name="late")
    assert error.value.code == "study_closed"
    assert snapshot() == before


def test_rename_before_any_vote(make_live_study, owner):
    study = make_live_study()
    system = study.systems.get(name="sys-a")
    updated = services.system_update(system=system, actor=owner, name="sys-a2", provider="New Lab", notes="v2")
    updated.refresh_from_db()
    assert (updated.name, updated.provider, updated.notes) == ("sys-a2", "New Lab", "v2")
    event = AuditEvent.objects.get(action="system.update")
    assert event.data == {
        "before": {"name": "sys-a", "provider": "Lab", "notes": ""},
        "after": {"name": "sys-a2", "provider": "New Lab", "notes": "v2"},
    }


def test_rename_to_a_taken_name_is_a_conflict(make_study, add_systems, owner):
    study = make_study()
    system, _ = add_systems(study)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        services.system_update(system=system, actor=owner, name="sys-b", provider="Lab", notes="")
    assert error.value.code == "duplicate"
    assert snapshot() == before


@pytest.mark.parametrize(("name", "provider"), [("renamed", "Lab"), ("sys-a", "Other Lab")])
def test_rename_after_a_vote_is_refused(make_live_study, rater_profile, owner, name, provider):
    study = make_live_study(items=1)
    cast_vote(rater_profile)
    system = study.systems.get(name="sys-a")
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        services.system_update(system=system, actor=owner, name=name, provider=provider, notes="")
    assert (error.value.status, error.value.code) == (409, "system_has_votes")
    assert error.value.message == "'sys-a' has votes; it cannot be renamed."
    assert snapshot() == before


def test_notes_can_change_after_votes(make_live_study, rater_profile, owner):
    study = make_live_study(items=1)
    cast_vote(rater_profile)
    system = study.systems.get(name="sys-a")
    services.system_update(system=system, actor=owner, name="sys-a", provider="Lab", notes="temperature 0.7")
    system.refresh_from_db()
    assert (system.name, system.notes, system.votes_count) == ("sys-a", "temperature 0.7", 1)


def test_delete_before_any_vote_removes_its_responses_pairs_and_totals(make_study, add_systems, upload, owner):
    study = make_study()
    add_systems(study, THREE)
    upload(study, items_jsonl(2, THREE, gold=1))
    assert (Response.objects.count(), ItemPair.objects.count(), PairStat.objects.count()) == (2 * 3 + 2, 2 * 3 + 1, 3)
    system = study.systems.get(name="sys-c")
    services.system_delete(system=system, actor=owner)
    assert list(study.systems.values_list("name", flat=True)) == ["sys-a", "sys-b"]
    assert Response.objects.count() == 2 * 2 + 2
    assert ItemPair.objects.count() == 2 + 1
    stat = PairStat.objects.get()
    assert (stat.system_low.name, stat.system_high.name, stat.item_pairs_count) == ("sys-a", "sys-b", 2)
    assert ItemPair.objects.filter(is_gold=True).count() == 1
    event = AuditEvent.objects.get(action="system.delete")
    assert (event.target_id, event.target_label) == (str(system.pk), "sys-c")


def test_delete_after_a_vote_is_refused(make_live_study, rater_profile, owner):
    study = make_live_study(items=1)
    cast_vote(rater_profile)
    before = snapshot()
    for name in ("sys-a", "sys-b"):
        with pytest.raises(ConflictError) as error:
            services.system_delete(system=study.systems.get(name=name), actor=owner)
        assert error.value.code == "system_has_votes"
        assert error.value.message == f"{name!r} has votes; it cannot be deleted."
    assert snapshot() == before


def test_votes_are_found_even_if_the_counter_was_not_moved(make_live_study, rater_profile, owner):
    study = make_live_study(items=1)
    cast_vote(rater_profile)
    System.objects.update(votes_count=0)
    before = snapshot()
    with pytest.raises(ConflictError, match="has votes"):
        services.system_delete(system=study.systems.get(name="sys-b"), actor=owner)
    assert snapshot() == before


def test_delete_in_a_closed_study_is_refused(make_study, add_systems, owner):
    study = make_study()
    system, _ = add_systems(study)
    Study.objects.filter(pk=study.pk).update(status=StudyStatus.COMPLETED)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        services.system_delete(system=system, actor=owner)
    assert error.value.code == "study_closed"
    assert snapshot() == before


def test_rename_keeps_the_response_labels_in_step(make_live_study, owner):
    study = make_live_study(items=2)
    system = study.systems.get(name="sys-a")

    services.system_update(system=system, actor=owner, name="sys-a2", provider="Lab", notes="")

    assert set(Response.objects.filter(system=system).values_list("label", flat=True)) == {"sys-a2"}


@pytest.mark.parametrize("status", [StudyStatus.COMPLETED, StudyStatus.ARCHIVED])
def test_edit_in_a_closed_study_is_refused(make_study, add_systems, owner, status):
    study = make_study()
    system, _ = add_systems(study)
    Study.objects.filter(pk=study.pk).update(status=status)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        services.system_update(system=system, actor=owner, name=system.name, provider="", notes="late note")
    assert error.value.code == "study_closed"
    assert snapshot() == before


def test_delete_once_shown_to_a_rater_is_refused(make_live_study, rater_profile, owner):
    from evaluations.assignment import task_next

    study = make_live_study(items=1)
    task_next(rater=rater_profile)  # leased, not voted
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        services.system_delete(system=study.systems.get(name="sys-a"), actor=owner)
    assert error.value.code == "system_in_use"
    assert snapshot() == before
