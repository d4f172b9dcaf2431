"""Pages: the client's studies and the rater's task page."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from crowdplatform.accounts.models import AccountType
from crowdplatform.raters.models import ApplicationStatus, RaterLanguage, RaterProfile
from evaluations import services
from evaluations.models import ContentFlag, Item, Study, StudyStatus, System, Task, TaskStatus, Vote
from tests.factories import UserFactory
from tests.money import fund

pytestmark = pytest.mark.django_db

SYSTEMS = ("atlas-7b", "borealis-xl")


def study_form(**change) -> dict:
    return {
        "name": "Coding help",
        "question": "Which response helps more?",
        "criteria": "correctness: right and runnable\nclarity: easy to follow",
        "votes_per_pair": 3,
        "pay_per_task_cents": 25,
        "est_seconds_per_task": 45,
        "sampling": "active",
        "gold_rate": 0,
        "lease_seconds": 600,
        "budget_cents": 5000,
        "languages": "en",
        "countries": "",
        **change,
    }


@pytest.fixture
def live_study(organization, owner):
    study = services.study_create(
        organization=organization,
        actor=owner,
        data=services.StudyInput(
            name="Coding help",
            question="Which response helps more?",
            criteria=[{"name": "correctness", "definition": "Right and runnable."}],
            pay_per_task_cents=25,
            est_seconds_per_task=45,
            budget_cents=10_000,
        ),
    )
    for name in SYSTEMS:
        services.system_register(study=study, actor=owner, name=name, provider="Lab")
    line = {
        "prompt_id": "p1",
        "prompt": "Sort a list?",
        "responses": {s: f"**Use** `sorted()` ({n})" for n, s in enumerate(SYSTEMS)},
    }
    services.items_upload(study=study, actor=owner, data=json.dumps(line).encode())
    fund(study.organization_id, 10_000_000)
    return services.study_launch(study=study, actor=owner)


@pytest.fixture
def rater_client(client):
    user = UserFactory(account_type=AccountType.RATER)
    profile = RaterProfile.objects.create(user=user, status=ApplicationStatus.APPROVED)
    RaterLanguage.objects.create(profile=profile, language="en", proficiency="native")
    client.force_login(user)
    return client


def test_client_creates_a_study_from_the_form(client, owner, organization):
    client.force_login(owner)

    response = client.post(f"/client/orgs/{organization.slug}/studies/new/", study_form())

    study = Study.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/client/orgs/{organization.slug}/studies/{study.pk}/"
    assert study.criteria == [
        {"name": "correctness", "definition": "right and runnable"},
        {"name": "clarity", "definition": "easy to follow"},
    ]
    assert study.requirements == {"languages": ["en"]}


def test_form_shows_the_fair_pay_floor_and_creates_nothing(client, owner, organization):
    client.force_login(owner)

    response = client.post(f"/client/orgs/{organization.slug}/studies/new/", study_form(pay_per_task_cents=10))

    assert response.status_code == 200
    assert "the platform&#x27;s floor is $15.00/h" in response.content.decode()
    assert Study.objects.count() == 0


def test_study_list_empty_state(client, owner, organization):
    client.force_login(owner)

    response = client.get(f"/client/orgs/{organization.slug}/studies/")

    assert "No studies yet" in response.content.decode()


def test_detail_shows_progress_systems_and_polls_when_live(client, owner, organization, live_study):
    client.force_login(owner)

    page = client.get(f"/client/orgs/{organization.slug}/studies/{live_study.pk}/").content.decode()

    assert f'hx-get="/client/orgs/alpha-lab/studies/{live_study.pk}/progress/"' in page
    assert 'hx-trigger="every 5s"' in page
    assert "atlas-7b" in page
    partial = client.get(f"/client/orgs/{organization.slug}/studies/{live_study.pk}/progress/").content.decode()
    assert partial.startswith('\n<div id="progress"')
    assert "votes of 3" in partial


def test_upload_errors_are_listed_and_nothing_added(client, owner, organization, live_study):
    client.force_login(owner)
    bad = SimpleUploadedFile("items.jsonl", b'{"prompt_id": "p2", "prompt": "x", "responses": {"nope": "y"}}\n')

    response = client.post(f"/client/orgs/{organization.slug}/studies/{live_study.pk}/items/", {"file": bad})

    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was added." in page
    assert "unknown system &#x27;nope&#x27;" in page
    assert Item.objects.count() == 1


def test_register_system_and_transitions(client, owner, organization, live_study):
    client.force_login(owner)
    base = f"/client/orgs/{organization.slug}/studies/{live_study.pk}"

    client.post(f"{base}/systems/", {"name": "cygnus", "provider": "C"})
    client.post(f"{base}/pause/")

    assert System.objects.filter(name="cygnus").exists()
    live_study.refresh_from_db()
    assert live_study.status == StudyStatus.PAUSED
    response = client.post(f"{base}/launch/", follow=True)
    assert "A paused study cannot launch." in response.content.decode()


def test_other_organization_cannot_open_the_study(client, other_owner, organization, other_organization, live_study):
    client.force_login(other_owner)

    assert client.get(f"/client/orgs/{organization.slug}/studies/{live_study.pk}/").status_code == 404
    assert client.get(f"/client/orgs/{other_organization.slug}/studies/{live_study.pk}/").status_code == 404


def test_task_page_flow_vote_and_next(rater_client, live_study):
    page = rater_client.get("/rater/task/").content.decode()
    assert "Get a task" in page

    rater_client.post("/rater/task/next/")
    task = Task.objects.get()
    page = rater_client.get("/rater/task/").content.decode()
    assert "Response A" in page
    assert "Response B" in page
    assert "<strong>Use</strong>" in page
    assert 'data-shortcut="1"' in page
    assert 'data-shortcut="4"' in page
    for name in SYSTEMS:
        assert name not in page

    response = rater_client.post(f"/rater/tasks/{task.pk}/vote/", {"choice": "b", "criterion-1": "b"})

    assert response.status_code == 302
    vote = Vote.objects.get()
    assert (vote.choice, vote.criteria) == ("b", {"correctness": "b"})
    # One item pair only, and this rater judged it: the next ask finds nothing.
    assert response["Location"] == "/rater/task/?asked=1"
    assert "No task right now" in rater_client.get(response["Location"]).content.decode()


def test_task_page_skip_and_flag(rater_client, live_study):
    rater_client.post("/rater/task/next/")
    task = Task.objects.get()

    rater_client.post(f"/rater/tasks/{task.pk}/flag/", {"reason": "harmful"})
    rater_client.post(f"/rater/tasks/{task.pk}/skip/", {"reason": "unclear"})

    assert ContentFlag.objects.get().reason == "harmful"
    task.refresh_from_db()
    assert (task.status, task.skip_reason) == (TaskStatus.SKIPPED, "unclear")


def test_unapproved_rater_sees_why_there_are_no_tasks(client, rater):
    client.force_login(rater)

    page = client.get("/rater/task/").content.decode()

    assert "Tasks open after approval" in page


def test_clients_cannot_open_the_task_page(client, owner):
    client.force_login(owner)

    assert client.get("/rater/task/").status_code == 403
