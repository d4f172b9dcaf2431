"""A study's quality figures: the API (`GET /api/v1/studies/{id}/quality/`) and the study page."""

from __future__ import annotations

import pytest

from crowdplatform.quality.models import StudySignal
from crowdplatform.quality.refresh import signals_refresh
from tests.evaluations import conftest as evaluations_fixtures
from tests.quality import test_refresh as refresh_tests

SYSTEMS, vote = refresh_tests.SYSTEMS, refresh_tests.vote
clock = refresh_tests.clock
make_live_study = evaluations_fixtures.make_live_study
make_rater = evaluations_fixtures.make_rater
make_study = evaluations_fixtures.make_study
add_systems = evaluations_fixtures.add_systems
upload = evaluations_fixtures.upload

pytestmark = pytest.mark.django_db


def test_the_study_quality_api_and_page_show_the_study_signals(make_live_study, make_rater, clock, client, owner):
    from rest_framework.test import APIClient

    study = make_live_study(systems=SYSTEMS, items=10, votes_per_pair=3)
    raters = [make_rater() for _ in range(3)]
    for _ in range(4):
        for rater in raters:
            vote(study, rater, clock, seconds=30)
    api = APIClient()
    api.force_authenticate(owner)
    assert api.get(f"/api/v1/studies/{study.pk}/quality/").json()["refreshed_at"] is None

    signals_refresh(now=clock.later())

    body = api.get(f"/api/v1/studies/{study.pk}/quality/").json()
    summary = StudySignal.objects.get(study=study)
    assert (body["votes"], body["flags"], body["excluded"]) == (12, 0, {})
    assert body["alpha"] == summary.alpha
    assert set(body["alpha_by_criterion"]) == {"helpfulness", "accuracy"}
    client.force_login(owner)
    page = client.get(f"/client/orgs/{study.organization.slug}/studies/{study.pk}/").content.decode()
    assert "Rating quality" in page
    assert "Krippendorff" in page
