from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from crowdplatform.accounts.models import ApiKey, Membership, Organization, User
from crowdplatform.core.models import AuditEvent
from crowdplatform.integrity.models import PublishedResult
from crowdplatform.raters.models import (
    Qualification,
    QualificationAttempt,
    QualificationTest,
    RaterProfile,
    RecruitmentCampaign,
)

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "organizations": Organization.objects.count(),
        "memberships": Membership.objects.count(),
        "api_keys": ApiKey.objects.count(),
        "rater_profiles": RaterProfile.objects.count(),
        # Refreshed arena results are left out: how many depends on which votes fall before which window's
        # end, which the database's row order can shift by one or two; the test below ties them to the rows.
        "audit_events": AuditEvent.objects.exclude(action="integrity.result_update").count(),
    }


def test_seed_demo_creates_the_demo_and_writes_credentials(tmp_path):
    target = tmp_path / "out" / "credentials.json"
    output = seed("--credentials", str(target))
    data = json.loads(target.read_text())
    assert set(data) == {"admin", "client", "raters"}
    assert set(data["admin"]) == {"email", "password"}
    assert {"email", "password", "organization", "api_key"} <= set(data["client"])
    assert [set(rater) for rater in data["raters"]] == [{"email", "password"}] * 6
    assert data["client"]["organization"] == "Demo Lab"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert data["client"]["api_key"] in output
    assert counts() == {
        "users": 48,
        "organizations": 2,  # the demo lab, and the public arena's "Open Arena (demo)" (owned by the staff admin)
        "memberships": 2,
        "api_keys": 1,
        "rater_profiles": 46,
        # The accounts' 250, plus the demo study (its quality rules too), the funding, Connect and payouts: 331;
        # plus the public arena's 72: its organization 1, funding 3 (create, checkout, paid), study 1 (+ launch 1),
        # leaderboard 1, providers 9, submissions 16 with their systems 16, uploads 7 (items + 6 responses),
        # results published 16 (their updates at each later window end not counted here), the ended period's
        # release 1.
        "audit_events": 403,
    }
    # Each refreshed result is a new published row with its audit event: 16 first publications, the rest updates.
    updates = AuditEvent.objects.filter(action="integrity.result_update").count()
    assert updates > 0
    assert PublishedResult.objects.count() == 16 + updates
    # Every application status, and a 10-item test that one demo rater passed and another failed.
    statuses = dict(RaterProfile.objects.exclude(user__email__startswith="crowd").values_list("user__email", "status"))
    assert statuses == {
        "rater1@example.com": "approved",
        "rater2@example.com": "applied",
        "rater3@example.com": "draft",
        "rater4@example.com": "rejected",
        "rater5@example.com": "suspended",
        "rater6@example.com": "approved",
    }
    test = QualificationTest.objects.get()
    assert test.items.count() == 10
    attempts = QualificationAttempt.objects.values_list("profile__user__email", "correct", "passed")
    assert sorted(attempts) == [("rater1@example.com", 9, True), ("rater6@example.com", 5, False)]
    assert list(Qualification.objects.values_list("profile__user__email", flat=True)) == ["rater1@example.com"]
    campaign = RecruitmentCampaign.objects.get()
    assert sorted(campaign.applicants.values_list("user__email", flat=True)) == [
        "rater1@example.com",
        "rater2@example.com",
        "rater6@example.com",
    ]
    assert User.objects.get(email=data["admin"]["email"]).is_staff is True


def test_seed_demo_twice_creates_nothing_new_and_keeps_the_credentials(tmp_path):
    first_file, second_file = tmp_path / "first.json", tmp_path / "second.json"
    seed("--credentials", str(first_file))
    before = counts()
    seed("--credentials", str(second_file))
    assert counts() == before
    assert json.loads(first_file.read_text()) == json.loads(second_file.read_text())


def test_seeded_credentials_work(tmp_path):
    target = tmp_path / "credentials.json"
    seed("--credentials", str(target))
    data = json.loads(target.read_text())
    web = Client()
    for account, landing in [(data["admin"], "/staff/"), (data["client"], "/client/"), (data["raters"][0], "/rater/")]:
        response = web.post(reverse("account_login"), {"login": account["email"], "password": account["password"]})
        assert response["Location"] == landing, account["email"]
        web.logout()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {data['client']['api_key']}")
    assert api.get(reverse("api:me")).json()["organization"]["name"] == "Demo Lab"


def test_seed_demo_repairs_lost_credentials_without_new_rows(settings):
    seed()
    settings.DEMO_CREDENTIALS_FILE.unlink()  # the remembered credentials are gone
    before = counts()
    data = json.loads(seed() and settings.DEMO_CREDENTIALS_FILE.read_text())
    after = counts()
    # Passwords are reset in place; the lost API key is revoked and replaced.
    assert after["users"] == before["users"]
    assert after["api_keys"] == before["api_keys"] + 1
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 1
    user = User.objects.get(email=data["client"]["email"])
    assert user.check_password(data["client"]["password"])
