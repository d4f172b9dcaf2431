"""Providers, public leaderboards, policy versions and submissions: the integrity services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import connection

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity import services
from crowdplatform.integrity.models import LicenseClass, PolicyVersion, Provider, Submission
from evaluations import services as evaluations
from evaluations.models import Study, StudyStatus, System
from tests.integrity.conftest import NOW, PARAMETERS, POLICY_TEXT, START, integrity_snapshot
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db

PROPRIETARY, OPEN_WEIGHTS, OPEN_SOURCE = LicenseClass.PROPRIETARY, LicenseClass.OPEN_WEIGHTS, LicenseClass.OPEN_SOURCE


def audit_actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


# --- provider_register --------------------------------------------------------------------------


def test_staff_register_a_provider_with_a_slug_and_an_audit_row(staff_user, provider_organization):
    provider = services.provider_register(
        name="  Gamma AI ", actor=staff_user, organization=provider_organization, website="https://gamma.example"
    )

    assert (provider.name, provider.slug, provider.organization, provider.website, provider.registered_by) == (
        "Gamma AI",
        "gamma-ai",
        provider_organization,
        "https://gamma.example",
        staff_user,
    )
    event = AuditEvent.objects.get()
    assert (event.action, event.target_id, event.organization_id) == (
        "integrity.provider_register",
        str(provider.pk),
        provider_organization.pk,
    )
    assert event.data == {"name": "Gamma AI", "slug": "gamma-ai", "organization_id": provider_organization.pk}


@pytest.mark.parametrize("name", ["Gamma AI", "gamma ai", "Gamma-AI"])
def test_a_provider_name_is_registered_once(providers, staff_user, name):
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        services.provider_register(name=name, actor=staff_user)
    assert error.value.code == "duplicate"
    assert integrity_snapshot() == before


def test_an_organization_is_one_provider_at_most(providers, staff_user, provider_organization):
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        services.provider_register(name="Gamma Research", actor=staff_user, organization=provider_organization)
    assert error.value.code == "duplicate"
    assert integrity_snapshot() == before


@pytest.mark.parametrize(
    ("name", "website", "field"),
    [
        ("", "", "name"),
        ("   ", "", "name"),
        ("x" * 101, "", "name"),
        ("!!!", "", "name"),
        ("Delta", "ftp://d", "website"),
    ],
)
def test_an_invalid_provider_is_refused(staff_user, name, website, field):
    before = integrity_snapshot()
    with pytest.raises(ApplicationError) as error:
        services.provider_register(name=name, actor=staff_user, website=website)
    assert list(error.value.fields) == [field]
    assert integrity_snapshot() == before


def test_only_staff_register_providers(owner, provider_owner):
    before = integrity_snapshot()
    for actor in (owner, provider_owner, None):
        with pytest.raises(PermissionDenied):
            services.provider_register(name="Delta", actor=actor)
    assert integrity_snapshot() == before


# --- leaderboard_create -------------------------------------------------------------------------


def test_a_leaderboard_makes_its_study_public_and_active_and_publishes_policy_one(
    make_leaderboard, public_study, staff_user
):
    assert (public_study.is_public, public_study.sampling) == (False, "uniform")

    leaderboard = make_leaderboard(public_study)

    study = Study.objects.get(pk=public_study.pk)
    assert (study.is_public, study.sampling) == (True, "active")
    assert (leaderboard.name, leaderboard.slug, leaderboard.starts_at, leaderboard.created_by) == (
        "Open Arena",
        "open-arena",
        START,
        staff_user,
    )
    assert {name: getattr(leaderboard, name) for name in services.PARAMETERS} == PARAMETERS
    version = PolicyVersion.objects.get()
    assert (version.leaderboard, version.number, version.text, version.parameters, version.created_by) == (
        leaderboard,
        1,
        POLICY_TEXT,
        PARAMETERS,
        staff_user,
    )
    event = AuditEvent.objects.filter(action__startswith="integrity.").get()
    assert (event.action, event.target_id, event.organization_id) == (
        "integrity.leaderboard_create",
        str(leaderboard.pk),
        study.organization_id,
    )
    assert event.data == {
        "study_id": study.pk,
        "study_before": {"is_public": False, "sampling": "uniform"},
        "policy_version": 1,
        **PARAMETERS,
    }


def test_parameters_left_out_take_the_defaults_and_are_snapshotted(public_study, staff_user):
    leaderboard = services.leaderboard_create(
        study=public_study, name="Arena", slug="arena", starts_at=START, actor=staff_user, policy_text="Rules."
    )
    defaults = {
        "period_days": 30,
        "prerelease_cap": 5,
        "window_days": 14,
        "provisional_votes": 1000,
        "retire_after_votes": 3000,
        "retire_newer_required": 2,
    }
    assert services.parameters_of(leaderboard) == defaults
    assert PolicyVersion.objects.get().parameters == defaults


def test_a_study_runs_one_leaderboard_at_most(leaderboard, make_leaderboard, public_study):
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        make_leaderboard(public_study, slug="second-arena")
    assert error.value.code == "leaderboard_exists"
    assert integrity_snapshot() == before


def test_a_leaderboard_slug_is_taken_once(leaderboard, make_leaderboard, make_live_study):
    other = make_live_study(name="Other arena")
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        make_leaderboard(other, slug="open-arena")
    assert error.value.code == "duplicate"
    assert integrity_snapshot() == before


def test_a_providers_organization_cannot_own_a_leaderboards_study(make_leaderboard, public_study, staff_user):
    """The study's organization reads its votes as they arrive; a provider waits for the release."""
    services.provider_register(name="Alpha Lab", actor=staff_user, organization=public_study.organization)
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        make_leaderboard(public_study)
    assert error.value.code == "operator_is_provider"
    assert error.value.message == (
        "Alpha Lab owns a public leaderboard's study and would see its votes before everyone else: it cannot "
        "also be a provider on it. Run the leaderboard from a separate organization."
    )
    assert integrity_snapshot() == before


def test_the_organization_owning_a_leaderboards_study_cannot_become_a_provider(leaderboard, staff_user):
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        services.provider_register(name="Alpha Lab", actor=staff_user, organization=leaderboard.study.organization)
    assert error.value.code == "operator_is_provider"
    assert integrity_snapshot() == before


@pytest.mark.parametrize("status", [StudyStatus.COMPLETED, StudyStatus.ARCHIVED])
def test_a_closed_study_runs_no_leaderboard(make_leaderboard, public_study, status):
    Study.objects.filter(pk=public_study.pk).update(status=status)
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        make_leaderboard(public_study)
    assert error.value.code == "study_closed"
    assert integrity_snapshot() == before


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"boost": 2}, "unknown_parameter"),
        ({"provider_weight": 1}, "unknown_parameter"),
        ({"prerelease_cap": -1}, "invalid"),
        ({"period_days": 0}, "invalid"),
        ({"window_days": "14"}, "invalid"),
        ({"prerelease_cap": True}, "invalid"),
    ],
)
def test_bad_parameters_are_refused(make_leaderboard, public_study, overrides, code):
    before = integrity_snapshot()
    with pytest.raises(ApplicationError) as error:
        make_leaderboard(public_study, **overrides)
    assert error.value.code == code
    assert list(error.value.fields) == list(overrides)
    assert integrity_snapshot() == before


def test_a_leaderboard_needs_a_policy_text(public_study, staff_user):
    before = integrity_snapshot()
    with pytest.raises(ApplicationError) as error:
        services.leaderboard_create(
            study=public_study, name="Arena", slug="arena", starts_at=START, actor=staff_user, policy_text="  "
        )
    assert error.value.code == "policy_text_required"
    assert integrity_snapshot() == before


def test_only_staff_create_leaderboards(public_study, owner):
    before = integrity_snapshot()
    with pytest.raises(PermissionDenied):
        services.leaderboard_create(
            study=public_study, name="Arena", slug="arena", starts_at=START, actor=owner, policy_text="Rules."
        )
    assert integrity_snapshot() == before


# --- policy_publish -----------------------------------------------------------------------------


def test_a_new_policy_version_changes_the_parameters_for_everyone(leaderboard, staff_user):
    version = services.policy_publish(
        leaderboard=leaderboard, text="Cap raised to 3.", actor=staff_user, prerelease_cap=3, window_days=7
    )

    assert (version.number, version.text, version.created_by) == (2, "Cap raised to 3.", staff_user)
    expected = {**PARAMETERS, "prerelease_cap": 3, "window_days": 7}
    assert version.parameters == expected
    leaderboard.refresh_from_db()
    assert services.parameters_of(leaderboard) == expected
    assert list(PolicyVersion.objects.values_list("number", "text", "parameters")) == [
        (1, POLICY_TEXT, PARAMETERS),
        (2, "Cap raised to 3.", expected),
    ]
    event = AuditEvent.objects.filter(action="integrity.policy_publish").get()
    assert (event.target_id, event.data) == (
        str(version.pk),
        {"leaderboard_id": leaderboard.pk, "number": 2, "changed": {"prerelease_cap": [2, 3], "window_days": [14, 7]}},
    )


def test_a_new_text_alone_keeps_the_parameters(leaderboard, staff_user):
    version = services.policy_publish(leaderboard=leaderboard, text="Clarified wording.", actor=staff_user)
    assert (version.number, version.parameters) == (2, PARAMETERS)
    third = services.policy_publish(leaderboard=leaderboard, text="Again.", actor=staff_user, prerelease_cap=2)
    assert third.number == 3
    assert AuditEvent.objects.filter(action="integrity.policy_publish").order_by("id").last().data["changed"] == {}


@pytest.mark.parametrize(
    ("text", "changes", "code"),
    [
        ("", {}, "policy_text_required"),
        ("   ", {"prerelease_cap": 3}, "policy_text_required"),
        ("Boost one provider.", {"sampling_boost": 2}, "unknown_parameter"),
        ("Weights.", {"weight": 1, "prerelease_cap": 3}, "unknown_parameter"),
        ("Negative.", {"window_days": 0}, "invalid"),
    ],
)
def test_a_bad_policy_version_is_refused(leaderboard, staff_user, text, changes, code):
    before = integrity_snapshot()
    with pytest.raises(ApplicationError) as error:
        services.policy_publish(leaderboard=leaderboard, text=text, actor=staff_user, **changes)
    assert error.value.code == code
    assert integrity_snapshot() == before


def test_only_staff_publish_policy(leaderboard, owner, provider_owner):
    before = integrity_snapshot()
    for actor in (owner, provider_owner):
        with pytest.raises(PermissionDenied):
            services.policy_publish(leaderboard=leaderboard, text="Mine now.", actor=actor, prerelease_cap=50)
    assert integrity_snapshot() == before


# --- submission_register ------------------------------------------------------------------------


def test_a_named_submission_registers_its_system_first(submit, providers, leaderboard, staff_user):
    provider = providers[OPEN_WEIGHTS]
    submission = submit(provider, "ow-large-2", notes="checkpoint 2026-01-05")

    system = System.objects.get(name="ow-large-2")
    assert (system.study_id, system.provider, system.notes, system.votes_count) == (
        leaderboard.study_id,
        "Open Weights Co",
        "checkpoint 2026-01-05",
        0,
    )
    assert (
        submission.leaderboard,
        submission.provider,
        submission.system,
        submission.license_class,
        submission.prerelease,
        submission.period_start,
        submission.registered_at,
        submission.registered_by,
        submission.window_ends_at,
        submission.published_at,
        submission.retired_at,
    ) == (
        leaderboard,
        provider,
        system,
        OPEN_WEIGHTS,
        False,
        START,
        NOW,
        staff_user,
        NOW + timedelta(days=14),
        None,
        None,
    )
    assert audit_actions()[-2:] == ["system.register", "integrity.submission_register"]
    event = AuditEvent.objects.get(action="integrity.submission_register")
    assert event.data == {
        "leaderboard_id": leaderboard.pk,
        "provider": "Open Weights Co",
        "system": "ow-large-2",
        "license_class": OPEN_WEIGHTS,
        "prerelease": False,
        "period_start": START.isoformat(),
    }


@pytest.mark.parametrize(
    ("offset", "period"),
    [
        (timedelta(0), 0),
        (timedelta(days=29, hours=23), 0),
        (timedelta(days=30), 1),
        (timedelta(days=75), 2),
    ],
)
def test_the_period_is_counted_from_the_start_in_equal_lengths(submit, providers, offset, period):
    submission = submit(providers[OPEN_SOURCE], "commons-7b", now=START + offset)
    assert submission.period_start == START + timedelta(days=30 * period)
    assert submission.window_ends_at == START + offset + timedelta(days=14)


def test_nothing_is_registered_before_the_leaderboard_starts(submit, providers):
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        submit(providers[OPEN_SOURCE], "early", now=START - timedelta(seconds=1))
    assert error.value.code == "not_started"
    assert integrity_snapshot() == before


def test_the_prerelease_cap_stops_the_third_variant_with_a_clear_message(submit, providers):
    gamma = providers[PROPRIETARY]
    submit(gamma, "codename-1", prerelease=True)
    submit(gamma, "codename-2", prerelease=True, now=NOW + timedelta(days=1))
    before = integrity_snapshot()

    with pytest.raises(ConflictError) as error:
        submit(gamma, "codename-3", prerelease=True, now=NOW + timedelta(days=2))

    assert error.value.code == "prerelease_cap_reached"
    assert error.value.message == (
        "Gamma AI has registered 2 pre-release variant(s) in the period that began on 2026-01-01 00:00 UTC; "
        "the cap is 2 per provider per period, the same for everyone. The next period starts on "
        "2026-01-31 00:00 UTC. A named (released) system does not count against the cap."
    )
    assert integrity_snapshot() == before


def test_named_systems_other_providers_and_the_next_period_are_not_capped(submit, providers):
    gamma = providers[PROPRIETARY]
    submit(gamma, "codename-1", prerelease=True)
    submit(gamma, "codename-2", prerelease=True)

    submit(gamma, "gamma-4", prerelease=False)
    submit(providers[OPEN_WEIGHTS], "ow-secret-1", prerelease=True)
    submit(providers[OPEN_WEIGHTS], "ow-secret-2", prerelease=True)
    submit(gamma, "codename-3", prerelease=True, now=START + timedelta(days=30))

    rows = Submission.objects.order_by("id").values_list("provider__name", "system__name", "prerelease", "period_start")
    assert list(rows) == [
        ("Gamma AI", "codename-1", True, START),
        ("Gamma AI", "codename-2", True, START),
        ("Gamma AI", "gamma-4", False, START),
        ("Open Weights Co", "ow-secret-1", True, START),
        ("Open Weights Co", "ow-secret-2", True, START),
        ("Gamma AI", "codename-3", True, START + timedelta(days=30)),
    ]


def test_a_published_cap_change_applies_from_then_on_to_everyone(submit, providers, leaderboard, staff_user):
    for provider in providers.values():
        submit(provider, f"{provider.slug}-v1", prerelease=True)
        submit(provider, f"{provider.slug}-v2", prerelease=True)
    services.policy_publish(leaderboard=leaderboard, text="Three per period.", actor=staff_user, prerelease_cap=3)

    for provider in providers.values():
        submit(provider, f"{provider.slug}-v3", prerelease=True)
        with pytest.raises(ConflictError):
            submit(provider, f"{provider.slug}-v4", prerelease=True)

    assert Submission.objects.filter(prerelease=True).count() == 9


def test_a_cap_of_zero_forbids_prerelease_testing(submit, providers, leaderboard, staff_user):
    services.policy_publish(leaderboard=leaderboard, text="No hidden testing.", actor=staff_user, prerelease_cap=0)
    with pytest.raises(ConflictError) as error:
        submit(providers[OPEN_SOURCE], "secret", prerelease=True)
    assert error.value.code == "prerelease_cap_reached"
    assert Submission.objects.count() == 0


def test_members_of_the_providers_organization_submit_for_it(submit, providers, provider_owner, provider_member):
    gamma = providers[PROPRIETARY]
    first = submit(gamma, "gamma-named", actor=provider_owner)
    second = submit(gamma, "gamma-secret", actor=provider_member, prerelease=True)
    assert (first.registered_by, second.registered_by) == (provider_owner, provider_member)


def test_nobody_else_submits_for_a_provider(submit, providers, owner, other_owner, provider_owner):
    before = integrity_snapshot()
    for provider, actor in (
        (providers[PROPRIETARY], owner),  # the study's own organization is not the provider
        (providers[PROPRIETARY], other_owner),
        (providers[OPEN_WEIGHTS], provider_owner),  # a provider with no organization: staff only
        (providers[OPEN_WEIGHTS], AnonymousUser()),
    ):
        with pytest.raises(PermissionDenied):
            submit(provider, "sneaky", actor=actor)
    assert integrity_snapshot() == before


def test_a_bad_license_class_is_refused(submit, providers):
    before = integrity_snapshot()
    with pytest.raises(ApplicationError) as error:
        submit(providers[OPEN_SOURCE], "commons", license_class="freeware")
    assert list(error.value.fields) == ["license_class"]
    assert integrity_snapshot() == before


def test_a_system_name_already_in_the_study_is_refused_whole(submit, providers):
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        submit(providers[OPEN_SOURCE], "base-a", prerelease=True)
    assert error.value.code == "duplicate"
    assert integrity_snapshot() == before


def test_a_closed_leaderboard_study_takes_no_submission(submit, providers, leaderboard, owner):
    evaluations.study_complete(study=leaderboard.study, actor=owner)
    before = integrity_snapshot()
    with pytest.raises(ConflictError) as error:
        submit(providers[OPEN_SOURCE], "late")
    assert error.value.code == "study_closed"
    assert integrity_snapshot() == before


# --- The cap under concurrency (PostgreSQL: row locks across connections) -----------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: row locks across connections")
@pytest.mark.django_db(transaction=True)
def test_two_registrations_at_once_cannot_both_take_the_last_slot(submit, providers):
    gamma = providers[PROPRIETARY]
    submit(gamma, "codename-1", prerelease=True)  # one of two slots left

    def register(name: str):
        def call() -> str:
            try:
                submit(Provider.objects.get(pk=gamma.pk), name, prerelease=True)
            except ConflictError as error:
                return error.code
            return "registered"

        return call

    results = run_at_once([register(f"codename-{n}") for n in range(2, 6)])

    assert sorted(results) == ["prerelease_cap_reached"] * 3 + ["registered"]
    assert Submission.objects.filter(provider=gamma, prerelease=True).count() == 2
    assert System.objects.filter(name__startswith="codename-").count() == 2
    assert AuditEvent.objects.filter(action="integrity.submission_register").count() == 2
