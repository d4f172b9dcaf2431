"""The rater's task API: next, vote, skip, flag."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from crowdplatform.accounts.models import AccountType
from crowdplatform.raters.models import ApplicationStatus, RaterLanguage, RaterProfile
from evaluations import services
from evaluations.models import ContentFlag, Task, TaskStatus, Vote
from tests.factories import UserFactory
from tests.money import fund

pytestmark = pytest.mark.django_db

SYSTEMS = {"atlas-7b": "Atlas Corp", "borealis-xl": "Borealis AI"}
# profile, open lease, live studies, eligibility, savepoint, budget, funds balance, funds committed to open
# leases, pairs, slot, leases, insert, release. (The quality pause check — no task in a study the rater
# is paused on — is a NOT EXISTS subquery inside the live-studies query: no query of its own.)
NEXT_QUERIES = 13
# profile, begin, task, update task, insert vote, 4 counters; the pay posting: savepoint, lock accounts,
# create the rater's new pending account and lock it (first vote only), insert transaction, insert
# entries, update balances, release; insert earning; commit
VOTE_QUERIES = 19


def approved_rater():
    user = UserFactory(account_type=AccountType.RATER)
    profile = RaterProfile.objects.create(user=user, status=ApplicationStatus.APPROVED, country="US")
    RaterLanguage.objects.create(profile=profile, language="en", proficiency="fluent")
    return user


@pytest.fixture
def study(organization, owner):
    study = services.study_create(
        organization=organization,
        actor=owner,
        data=services.StudyInput(
            name="Coding help",
            question="Which response helps more?",
            criteria=[
                {"name": "correctness", "definition": "Right and runnable."},
                {"name": "clarity", "definition": "Easy to follow."},
            ],
            pay_per_task_cents=25,
            est_seconds_per_task=45,
            votes_per_pair=2,
            sampling="uniform",
            requirements={"languages": ["en"]},
            budget_cents=10_000,
        ),
    )
    for name, provider in SYSTEMS.items():
        services.system_register(study=study, actor=owner, name=name, provider=provider)
    lines = [
        {
            "prompt_id": f"p{n}",
            "prompt": f"How do I sort list {n}?",
            "responses": {s: f"Use sorted() on {n}, way {i}." for i, s in enumerate(SYSTEMS)},
        }
        for n in range(3)
    ]
    services.items_upload(study=study, actor=owner, data="\n".join(json.dumps(line) for line in lines).encode())
    fund(organization.id, 10_000_000)
    return services.study_launch(study=study, actor=owner)


@pytest.fixture
def rater_api(api_client):
    api_client.force_authenticate(approved_rater())
    return api_client


def next_task(api):
    return api.post("/api/v1/tasks/next/", {}, format="json")


def test_next_returns_an_anonymous_task(rater_api, study):
    response = next_task(rater_api)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id", "study", "question", "prompt", "prompt_html", "response_a", "response_a_html",
        "response_b", "response_b_html", "criteria", "choices", "leased_at", "expires_at",
    }  # fmt: skip
    task = Task.objects.get()
    assert body["id"] == str(task.pk)
    assert body["prompt"] == [{"role": "user", "content": task.item_pair.item.prompt[0]["content"]}]
    assert body["response_a"] == task.response_a.content
    assert body["criteria"] == study.criteria
    assert [choice["value"] for choice in body["choices"]] == ["a", "b", "tie", "both_bad"]
    text = response.content.decode()
    for name, provider in SYSTEMS.items():
        assert name not in text
        assert provider not in text
    for identifying in (task.response_a_id, task.response_b_id, task.item_pair_id):
        assert f'"{identifying}"' not in text
        assert f": {identifying}," not in text


def test_asking_twice_returns_the_same_lease(rater_api, study):
    first = next_task(rater_api).json()["id"]

    assert next_task(rater_api).json()["id"] == first
    assert Task.objects.count() == 1


def test_no_task_is_204(rater_api, study, owner):
    services.study_pause(study=study, actor=owner)

    response = next_task(rater_api)

    assert response.status_code == 204
    assert Task.objects.count() == 0


def test_clients_cannot_take_tasks(api_client, owner, study):
    api_client.force_authenticate(owner)

    assert next_task(api_client).status_code == 403
    assert Task.objects.count() == 0


def test_vote_then_replay_then_conflict(rater_api, study):
    task_id = next_task(rater_api).json()["id"]
    url = f"/api/v1/tasks/{task_id}/vote/"
    payload = {"choice": "a", "criteria": {"clarity": "b"}, "rationale": "A runs."}

    first = rater_api.post(url, payload, format="json")
    again = rater_api.post(url, payload, format="json")
    different = rater_api.post(url, {**payload, "choice": "b"}, format="json")

    assert first.status_code == 201
    assert set(first.json()) == {"id", "task", "choice", "criteria", "rationale", "duration_ms", "created_at"}
    assert first.json()["criteria"] == {"clarity": "b"}
    assert again.status_code == 200
    assert again.json() == first.json()
    assert different.status_code == 409
    assert different.json()["error"]["code"] == "already_voted"
    assert Vote.objects.count() == 1
    assert Vote.objects.get().choice == "a"


def test_vote_after_the_lease_expired_is_409(rater_api, study):
    task_id = next_task(rater_api).json()["id"]
    Task.objects.filter(pk=task_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = rater_api.post(f"/api/v1/tasks/{task_id}/vote/", {"choice": "a"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "lease_expired"
    assert Vote.objects.count() == 0


def test_vote_on_someone_elses_task_is_404(rater_api, api_client, study):
    task_id = next_task(rater_api).json()["id"]
    api_client.force_authenticate(approved_rater())

    assert api_client.post(f"/api/v1/tasks/{task_id}/vote/", {"choice": "a"}, format="json").status_code == 404
    assert api_client.post(f"/api/v1/tasks/{uuid.uuid4()}/vote/", {"choice": "a"}, format="json").status_code == 404
    assert api_client.post("/api/v1/tasks/not-a-uuid/vote/", {"choice": "a"}, format="json").status_code == 404
    assert Vote.objects.count() == 0
    assert Task.objects.get().status == TaskStatus.LEASED


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"choice": "left"}, "choice"), ({"choice": "a", "criteria": {"speed": "a"}}, "criteria"), ({}, "choice")],
)
def test_invalid_votes_change_nothing(rater_api, study, payload, field):
    task_id = next_task(rater_api).json()["id"]

    response = rater_api.post(f"/api/v1/tasks/{task_id}/vote/", payload, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert Vote.objects.count() == 0
    assert Task.objects.get().status == TaskStatus.LEASED


def test_skip_records_the_reason_and_frees_the_rater(rater_api, study):
    first = next_task(rater_api).json()["id"]

    response = rater_api.post(
        f"/api/v1/tasks/{first}/skip/", {"reason": "expertise", "note": "Not Rust"}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {"status": "skipped"}
    task = Task.objects.get(pk=first)
    assert (task.skip_reason, task.skip_note) == ("expertise", "Not Rust")
    second = next_task(rater_api).json()["id"]
    assert second != first
    assert Task.objects.get(pk=second).item_pair_id != task.item_pair_id


def test_skip_needs_a_known_reason(rater_api, study):
    task_id = next_task(rater_api).json()["id"]

    response = rater_api.post(f"/api/v1/tasks/{task_id}/skip/", {"reason": "bored"}, format="json")

    assert response.status_code == 400
    assert Task.objects.get().status == TaskStatus.LEASED


def test_flag_once_per_reason(rater_api, study):
    task_id = next_task(rater_api).json()["id"]
    url = f"/api/v1/tasks/{task_id}/flag/"

    first = rater_api.post(url, {"reason": "identity", "note": "Says it is Atlas"}, format="json")
    again = rater_api.post(url, {"reason": "identity"}, format="json")

    assert (first.status_code, again.status_code) == (201, 200)
    flag = ContentFlag.objects.get()
    assert (flag.reason, flag.note) == ("identity", "Says it is Atlas")
    assert Task.objects.get().status == TaskStatus.LEASED


def test_a_cycle_runs_a_fixed_number_of_queries(rater_api, study, django_assert_num_queries):
    """Guards the hot path: a next-task and a vote each cost a known, small number of statements
    (request auth excluded: the test client is force-authenticated)."""
    with django_assert_num_queries(NEXT_QUERIES):
        task_id = next_task(rater_api).json()["id"]
    with django_assert_num_queries(VOTE_QUERIES):
        rater_api.post(f"/api/v1/tasks/{task_id}/vote/", {"choice": "a"}, format="json")
