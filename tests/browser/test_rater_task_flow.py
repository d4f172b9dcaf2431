"""In a real browser (Playwright driving Debian's Chromium): a rater logs in, opens a task,
votes with the keyboard and gets the next task. A screenshot is kept as a test artifact.

Locally the test is skipped when Chromium is missing; in CI (CROWDPLATFORM_REQUIRE_SERVICES=1)
it fails instead, because `.ci/run` installs Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from crowdplatform.accounts.models import AccountType
from crowdplatform.raters.models import ApplicationStatus, RaterLanguage, RaterProfile
from evaluations import services
from evaluations.models import Task, TaskStatus, Vote
from tests.conftest import SERVICES_REQUIRED
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.money import fund

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", settings.BASE_DIR / "var" / "test-artifacts"))


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)"
        if SERVICES_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def browser_page() -> Iterator[object]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # ordinary synchronous code, so Django's async-safety guard is lifted for this test only.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            yield page
            browser.close()
        _close_server_connections()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _close_server_connections() -> None:
    """The live server's request threads may still hold a database session after the browser
    has gone; end them so the test database can be dropped at the end of the run."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def rater_with_work() -> str:
    owner = MembershipFactory(user__account_type=AccountType.CLIENT).user
    organization = owner.memberships.get().organization
    study = services.study_create(
        organization=organization,
        actor=owner,
        data=services.StudyInput(
            name="Coding help",
            question="Which response helps the user more?",
            criteria=[{"name": "correctness", "definition": "The code runs and does what was asked."}],
            pay_per_task_cents=25,
            est_seconds_per_task=45,
            budget_cents=10_000,
        ),
    )
    for name in ("atlas-7b", "borealis-xl"):
        services.system_register(study=study, actor=owner, name=name)
    lines = [
        {
            "prompt_id": f"p{n}",
            "prompt": f"How do I reverse a list in Python? ({n})",
            "responses": {"atlas-7b": "Use `items[::-1]`.", "borealis-xl": "Call **`items.reverse()`** in place."},
        }
        for n in range(3)
    ]
    services.items_upload(study=study, actor=owner, data="\n".join(map(json.dumps, lines)).encode())
    fund(study.organization_id, 10_000)
    services.study_launch(study=study, actor=owner)
    user = UserFactory(account_type=AccountType.RATER, email="browser-rater@example.com")
    profile = RaterProfile.objects.create(user=user, status=ApplicationStatus.APPROVED)
    RaterLanguage.objects.create(profile=profile, language="en", proficiency="fluent")
    return user.email


def test_rater_votes_with_the_keyboard_and_gets_the_next_task(live_server, browser_page, rater_with_work):
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", rater_with_work)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/rater/")

    page.goto(f"{live_server.url}/rater/task/")
    page.click("#get-task")
    page.wait_for_selector("#response-a-heading")
    first = Task.objects.get(status=TaskStatus.LEASED)
    assert "atlas-7b" not in page.content()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "rater-task-page.png"), full_page=True)

    page.keyboard.press("1")
    page.wait_for_selector("text=Vote recorded.")
    page.wait_for_selector("#response-a-heading")

    vote = Vote.objects.get()
    assert (vote.task_id, vote.choice) == (first.pk, "a")
    second = Task.objects.get(status=TaskStatus.LEASED)
    assert second.pk != first.pk
    assert page.get_attribute("#vote-form", "action") == f"/rater/tasks/{second.pk}/vote/"
