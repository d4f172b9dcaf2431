"""Study settings, budget and status transitions (evaluations.services)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters.models import ExpertiseDomain, QualificationTest
from evaluations import services
from evaluations.models import Study, StudyStatus
from tests.evaluations.conftest import CRITERIA, items_jsonl, snapshot, study_input
from tests.money import fund

pytestmark = pytest.mark.django_db

CRITERION_ERROR = "Criterion 1 needs a non-empty name and definition, and nothing else."
QUALIFICATIONS_SHAPE = "qualifications: a list of {test_id, min_score between 0 and 1}."


@pytest.fixture
def medical_test():
    domain, _ = ExpertiseDomain.objects.get_or_create(slug="medicine", defaults={"name": "Medicine"})
    return QualificationTest.objects.create(name="Medical accuracy — English", domain=domain, language="en")


def create(organization, owner, **overrides) -> Study:
    return services.study_create(organization=organization, actor=owner, data=study_input(**overrides))


# --- study_create ---------------------------------------------------------------------------------


def test_create_stores_the_settings_and_records_it(organization, owner, medical_test):
    study = create(
        organization,
        owner,
        name="  Coding help  ",
        description=" For engineers. ",
        question=" Which helps more? ",
        criteria=[{"name": " helpfulness ", "definition": " Answers what was asked. "}],
        requirements={
            "qualifications": [{"test_id": medical_test.pk, "min_score": 0.8}],
            "languages": ["en", "pt-BR"],
            "domains": ["medicine"],
            "countries": ["DE"],
        },
        votes_per_pair=2,
        pay_per_task_cents=20,
        est_seconds_per_task=45,
        sampling="balanced",
        gold_rate=0.1,
        lease_seconds=900,
        budget_cents=5_000,
    )
    study.refresh_from_db()
    assert (study.name, study.description, study.question) == ("Coding help", "For engineers.", "Which helps more?")
    assert study.criteria == [{"name": "helpfulness", "definition": "Answers what was asked."}]
    assert study.requirements["languages"] == ["en", "pt-BR"]
    assert (study.votes_per_pair, study.pay_per_task_cents, study.est_seconds_per_task) == (2, 20, 45)
    assert (study.sampling, study.gold_rate, study.lease_seconds, study.budget_cents) == ("balanced", 0.1, 900, 5000)
    assert (study.status, study.votes_count, study.organization, study.created_by) == (
        StudyStatus.DRAFT,
        0,
        organization,
        owner,
    )
    assert (study.launched_at, study.completed_at) == (None, None)
    event = AuditEvent.objects.get()
    assert (event.action, event.target_type, event.target_id, event.organization_id, event.actor_user) == (
        "study.create",
        "evaluations.study",
        str(study.pk),
        organization.pk,
        owner,
    )
    assert event.data == {"sampling": "balanced"}


def test_requirements_become_rater_requirements(organization, owner, medical_test):
    study = create(
        organization,
        owner,
        requirements={"qualifications": [{"test_id": medical_test.pk}], "languages": ["de"], "countries": ["AT"]},
    )
    requirements = services.requirements_of(study)
    assert [(q.test_id, q.min_score) for q in requirements.qualifications] == [(medical_test.pk, 0.0)]
    assert (requirements.languages, requirements.domains, requirements.countries) == (("de",), (), ("AT",))


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "   "}, "name", "Name the study."),
        ({"question": ""}, "question", "Write the question raters answer."),
        ({"criteria": []}, "criteria", "Define at least one criterion: a name and what 'better' means for it."),
        (
            {"criteria": "helpfulness"},
            "criteria",
            "Define at least one criterion: a name and what 'better' means for it.",
        ),
        ({"criteria": [{"name": f"c{n}", "definition": "d"} for n in range(11)]}, "criteria", "At most 10 criteria."),
        ({"criteria": [{"name": "x"}]}, "criteria", CRITERION_ERROR),
        ({"criteria": [{"name": " ", "definition": "d"}]}, "criteria", CRITERION_ERROR),
        ({"criteria": [{"name": "x", "definition": "d", "weight": "2"}]}, "criteria", CRITERION_ERROR),
        ({"criteria": ["helpfulness"]}, "criteria", CRITERION_ERROR),
        (
            {"criteria": [{"name": "a", "definition": "d"}, {"name": " a ", "definition": "e"}]},
            "criteria",
            "Give each criterion a different name.",
        ),
        ({"criteria": [{"name": "n" * 61, "definition": "d"}]}, "criteria", "Keep criterion names to 60 characters."),
        ({"requirements": ["en"]}, "requirements", "Give requirements as an object."),
        ({"requirements": {"age": 18, "languages": []}}, "requirements", "Unknown requirement(s): age."),
        (
            {"requirements": {"qualifications": [{"test_id": 987654}]}},
            "requirements",
            "qualifications: no test with id 987654.",
        ),
        ({"requirements": {"qualifications": [{"test_id": "1"}]}}, "requirements", QUALIFICATIONS_SHAPE),
        (
            {"requirements": {"qualifications": [{"test_id": 1, "min_score": 1.5}]}},
            "requirements",
            QUALIFICATIONS_SHAPE,
        ),
        ({"requirements": {"qualifications": {"test_id": 1}}}, "requirements", QUALIFICATIONS_SHAPE),
        ({"requirements": {"languages": ["English"]}}, "requirements", "languages: a list of codes such as en."),
        ({"requirements": {"languages": "en"}}, "requirements", "languages: a list of codes such as en."),
        ({"requirements": {"countries": ["de"]}}, "requirements", "countries: a list of codes such as DE."),
        ({"requirements": {"domains": ["astrology"]}}, "requirements", "domains: unknown astrology."),
        ({"requirements": {"domains": "medicine"}}, "requirements", "domains: a list of domain slugs."),
        ({"votes_per_pair": 0}, "votes_per_pair", "From 1 to 20 raters per item pair."),
        ({"votes_per_pair": 21}, "votes_per_pair", "From 1 to 20 raters per item pair."),
        ({"pay_per_task_cents": 0}, "pay_per_task_cents", "Pay at least 1 cent per task."),
        (
            {"pay_per_task_cents": 24},
            "pay_per_task_cents",
            "At 60 s per task this pays $14.40/h; the platform's floor is $15.00/h. Pay at least 25 cents per task.",
        ),
        (
            {"pay_per_task_cents": 18, "est_seconds_per_task": 45},
            "pay_per_task_cents",
            "At 45 s per task this pays $14.40/h; the platform's floor is $15.00/h. Pay at least 19 cents per task.",
        ),
        ({"est_seconds_per_task": 4}, "est_seconds_per_task", "Estimate between 5 seconds and an hour per task."),
        ({"est_seconds_per_task": 3601}, "est_seconds_per_task", "Estimate between 5 seconds and an hour per task."),
        ({"sampling": "random"}, "sampling", "Choose one of uniform, balanced, active."),
        ({"gold_rate": -0.01}, "gold_rate", "A share from 0 to 0.5."),
        ({"gold_rate": 0.51}, "gold_rate", "A share from 0 to 0.5."),
        ({"lease_seconds": 59}, "lease_seconds", "From 60 seconds to 4 hours."),
        ({"lease_seconds": 14_401}, "lease_seconds", "From 60 seconds to 4 hours."),
        ({"budget_cents": -1}, "budget_cents", "A budget cannot be negative."),
    ],
)
def test_create_refuses_each_invalid_field(organization, owner, overrides, field, message):
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        create(organization, owner, **overrides)
    assert error.value.status == 400
    assert error.value.message == "The study is not valid."
    assert error.value.fields == {field: [message]}
    assert snapshot() == before
    assert Study.objects.count() == 0


def test_create_reports_every_requirement_problem_and_every_field_at_once(organization, owner):
    with pytest.raises(ApplicationError) as error:
        create(
            organization,
            owner,
            name="",
            votes_per_pair=0,
            requirements={"languages": ["EN"], "countries": ["Germany"], "domains": ["astrology", "law"]},
        )
    assert error.value.fields == {
        "name": ["Name the study."],
        "votes_per_pair": ["From 1 to 20 raters per item pair."],
        "requirements": [
            "languages: a list of codes such as en.",
            "countries: a list of codes such as DE.",
            "domains: unknown astrology.",
        ],
    }
    assert Study.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_pay_below_the_floor_is_not_checked_when_the_estimate_is_invalid(organization, owner):
    with pytest.raises(ApplicationError) as error:
        create(organization, owner, pay_per_task_cents=1, est_seconds_per_task=3)
    assert error.value.fields == {"est_seconds_per_task": ["Estimate between 5 seconds and an hour per task."]}


@pytest.mark.parametrize(
    "overrides",
    [
        {"votes_per_pair": 1},
        {"votes_per_pair": 20},
        {"gold_rate": 0.5},
        {"lease_seconds": 60},
        {"lease_seconds": 14_400},
        {"est_seconds_per_task": 5, "pay_per_task_cents": 3},
        {"est_seconds_per_task": 3600, "pay_per_task_cents": 1500},
        {"criteria": [{"name": f"c{n}", "definition": "d"} for n in range(10)]},
        {"criteria": [{"name": "n" * 60, "definition": "d"}]},
        {"requirements": {"languages": [], "countries": [], "domains": [], "qualifications": []}},
    ],
)
def test_create_accepts_the_boundaries(organization, owner, overrides):
    study = create(organization, owner, **overrides)
    assert Study.objects.get() == study


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(est=st.integers(min_value=5, max_value=3600))
@example(est=3598)
@example(est=60)
def test_the_pay_floor_is_exact_and_the_suggested_minimum_is_enough(organization, owner, est):
    floor = django_settings.PAY_FLOOR_CENTS_PER_HOUR
    assert floor == 1500
    minimum = -(-floor * est // 3600)  # the least whole cents that pay the floor
    study = create(organization, owner, est_seconds_per_task=est, pay_per_task_cents=minimum)
    assert study.pay_per_task_cents * 3600 >= floor * est
    if minimum > 1:
        count = Study.objects.count()
        with pytest.raises(ApplicationError) as error:
            create(organization, owner, est_seconds_per_task=est, pay_per_task_cents=minimum - 1)
        assert set(error.value.fields) == {"pay_per_task_cents"}
        assert error.value.fields["pay_per_task_cents"][0].endswith(f"Pay at least {minimum} cents per task.")
        assert Study.objects.count() == count


def test_implied_hourly_pay():
    assert services.implied_hourly_cents(25, 60) == 1500
    assert services.implied_hourly_cents(20, 45) == 1600
    assert services.implied_hourly_cents(1, 0) == 3600  # never divides by zero


# --- study_update and study_budget_set -------------------------------------------------------------


def test_update_changes_a_draft_and_records_what_changed(make_study, owner):
    study = make_study()
    updated = services.study_update(
        study=study, actor=owner, data=study_input(name="Renamed", votes_per_pair=5, criteria=CRITERIA[:1])
    )
    updated.refresh_from_db()
    assert (updated.name, updated.votes_per_pair, updated.criterion_names) == ("Renamed", 5, ["helpfulness"])
    event = AuditEvent.objects.filter(action="study.update").get()
    assert event.data == {"changed": ["criteria", "name", "votes_per_pair"]}


def test_update_refuses_invalid_settings_and_changes_nothing(make_study, owner):
    study = make_study()
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        services.study_update(study=study, actor=owner, data=study_input(lease_seconds=10))
    assert error.value.fields == {"lease_seconds": ["From 60 seconds to 4 hours."]}
    assert snapshot() == before


@pytest.mark.parametrize("status", [StudyStatus.LIVE, StudyStatus.PAUSED, StudyStatus.COMPLETED, StudyStatus.ARCHIVED])
def test_update_is_only_for_drafts(make_study, owner, status):
    study = make_study()
    Study.objects.filter(pk=study.pk).update(status=status)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        services.study_update(study=study, actor=owner, data=study_input(name="Renamed"))
    assert (error.value.status, error.value.code) == (409, "not_draft")
    assert snapshot() == before
    assert Study.objects.get().name == "Coding help"


def test_budget_can_change_in_draft_live_and_paused(make_live_study, owner):
    study = make_live_study(budget_cents=1_000)
    services.study_budget_set(study=study, actor=owner, budget_cents=2_000)
    services.study_pause(study=study, actor=owner)
    services.study_budget_set(study=study, actor=owner, budget_cents=500)
    study.refresh_from_db()
    assert study.budget_cents == 500
    events = AuditEvent.objects.filter(action="study.budget_set").order_by("id")
    assert [e.data for e in events] == [{"from": 1000, "to": 2000}, {"from": 2000, "to": 500}]


def test_budget_cannot_drop_below_what_is_spent(make_live_study, owner):
    study = make_live_study(budget_cents=1_000)
    Study.objects.filter(pk=study.pk).update(votes_count=4)  # 4 votes at 25 cents: 100 spent
    services.study_budget_set(study=study, actor=owner, budget_cents=100)
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        services.study_budget_set(study=study, actor=owner, budget_cents=99)
    assert error.value.message == "The budget cannot be below what is already spent (100 cents)."
    assert error.value.fields == {"budget_cents": ["At least 100."]}
    assert snapshot() == before


@pytest.mark.parametrize("status", [StudyStatus.COMPLETED, StudyStatus.ARCHIVED])
def test_a_closed_study_keeps_its_budget(make_study, owner, status):
    study = make_study(budget_cents=1_000)
    Study.objects.filter(pk=study.pk).update(status=status)
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        services.study_budget_set(study=study, actor=owner, budget_cents=5_000)
    assert error.value.code == "study_closed"
    assert snapshot() == before


# --- Transitions ------------------------------------------------------------------------------------


def test_the_whole_life_of_a_study(make_study, add_systems, upload, owner):
    study = make_study()
    add_systems(study)
    upload(study, items_jsonl(2))
    fund(study.organization_id, 10_000_000)
    study = services.study_launch(study=study, actor=owner)
    assert study.status == StudyStatus.LIVE
    assert study.launched_at is not None
    study = services.study_pause(study=study, actor=owner, reason="Too many flags")
    assert study.status == StudyStatus.PAUSED
    study = services.study_resume(study=study, actor=owner)
    assert study.status == StudyStatus.LIVE
    study = services.study_complete(study=study, actor=owner)
    assert study.status == StudyStatus.COMPLETED
    assert study.completed_at is not None
    study = services.study_archive(study=study, actor=owner)
    study.refresh_from_db()
    assert study.status == StudyStatus.ARCHIVED
    events = AuditEvent.objects.filter(
        target_type="evaluations.study", action__in=[f"study.{name}" for name in services.TRANSITIONS]
    )
    assert [(e.action, e.data) for e in events.order_by("id")] == [
        ("study.launch", {"from": "draft", "to": "live"}),
        ("study.pause", {"from": "live", "to": "paused", "reason": "Too many flags"}),
        ("study.resume", {"from": "paused", "to": "live"}),
        ("study.complete", {"from": "live", "to": "completed"}),
        ("study.archive", {"from": "completed", "to": "archived"}),
    ]


def test_a_paused_study_can_complete_and_a_draft_can_be_archived(make_live_study, make_study, owner):
    live = make_live_study()
    services.study_pause(study=live, actor=owner)
    assert services.study_complete(study=live, actor=owner).status == StudyStatus.COMPLETED
    draft = make_study(name="Abandoned")
    assert services.study_archive(study=draft, actor=owner).status == StudyStatus.ARCHIVED


ACTIONS = {
    "launch": services.study_launch,
    "pause": services.study_pause,
    "resume": services.study_resume,
    "complete": services.study_complete,
    "archive": services.study_archive,
}
INVALID = [
    (name, status)
    for name, (allowed, _) in services.TRANSITIONS.items()
    for status in StudyStatus.values
    if status not in allowed
]


def test_the_transition_table():
    assert {name: (sorted(allowed), target) for name, (allowed, target) in services.TRANSITIONS.items()} == {
        "launch": (["draft"], "live"),
        "pause": (["live"], "paused"),
        "resume": (["paused"], "live"),
        "complete": (["live", "paused"], "completed"),
        "archive": (["completed", "draft"], "archived"),
    }
    assert len(INVALID) == 5 * 5 - 7


@pytest.mark.parametrize(("name", "status"), INVALID)
def test_every_invalid_transition_is_refused_and_changes_nothing(make_study, add_systems, upload, owner, name, status):
    study = make_study()
    add_systems(study)
    upload(study, items_jsonl(1))  # ready to launch, so only the status can stand in the way
    Study.objects.filter(pk=study.pk).update(status=status)
    study.refresh_from_db()
    before = snapshot()
    with pytest.raises(ConflictError) as error:
        ACTIONS[name](study=study, actor=owner)
    assert (error.value.status, error.value.code) == (409, "invalid_transition")
    label = StudyStatus(status).label.lower()
    assert error.value.message == f"A {label} study cannot {name}."
    assert snapshot() == before
    assert Study.objects.get().status == status


def test_pausing_a_draft_is_an_invalid_transition(make_study, owner):
    study = make_study()
    with pytest.raises(ConflictError, match=r"^A draft study cannot pause\.$") as error:
        services.study_pause(study=study, actor=owner)
    assert error.value.code == "invalid_transition"
    study.refresh_from_db()
    assert (study.status, study.launched_at) == (StudyStatus.DRAFT, None)


# --- launch_problems --------------------------------------------------------------------------------


def test_launch_problems_name_everything_missing(make_study, owner):
    study = make_study(gold_rate=0.2, budget_cents=10)
    assert services.launch_problems(study) == [
        "Register at least two systems.",
        "Upload items with responses from at least two systems.",
        "The gold rate is above 0 but no gold items are uploaded.",
        "Set a budget: it does not cover one task.",
        "Add funds: the organization's prepaid funds must cover the study's next task (0.30 USD including the "
        "platform fee).",
    ]
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        services.study_launch(study=study, actor=owner)
    assert error.value.code == "not_ready"
    assert error.value.message == (
        "The study cannot launch yet: Register at least two systems. "
        "Upload items with responses from at least two systems. "
        "The gold rate is above 0 but no gold items are uploaded. "
        "Set a budget: it does not cover one task. "
        "Add funds: the organization's prepaid funds must cover the study's next task (0.30 USD including the "
        "platform fee)."
    )
    assert snapshot() == before


def test_launch_problems_go_away_one_by_one(make_study, add_systems, upload, owner):
    study = make_study(gold_rate=0.2, budget_cents=24)
    add_systems(study, ["sys-a"])
    assert services.launch_problems(study)[0] == "Register at least two systems."
    add_systems(study, ["sys-b"])
    upload(study, items_jsonl(1))
    assert services.launch_problems(study) == [
        "The gold rate is above 0 but no gold items are uploaded.",
        "Set a budget: it does not cover one task.",
        "Add funds: the organization's prepaid funds must cover the study's next task (0.30 USD including the "
        "platform fee).",
    ]
    upload(study, items_jsonl(0, start=5, gold=1))
    services.study_budget_set(study=study, actor=owner, budget_cents=25)
    fund(study.organization_id, 1_000)
    study.refresh_from_db()
    assert services.launch_problems(study) == []
    assert services.study_launch(study=study, actor=owner).status == StudyStatus.LIVE


def test_gold_items_alone_do_not_make_a_study_ready(make_study, add_systems, upload):
    study = make_study()
    add_systems(study)
    upload(study, items_jsonl(0, gold=2))
    fund(study.organization_id, 10_000)
    assert services.launch_problems(study) == ["Upload items with responses from at least two systems."]


def test_an_inactive_domain_cannot_be_required(make_study):
    ExpertiseDomain.objects.create(slug="retired-field", name="Retired field", is_active=False)
    before = snapshot()
    with pytest.raises(ApplicationError) as error:
        make_study(requirements={"domains": ["retired-field"]})
    assert error.value.fields == {"requirements": ["domains: unknown retired-field."]}
    assert snapshot() == before
