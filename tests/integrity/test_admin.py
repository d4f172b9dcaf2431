"""The admin shows the integrity records to staff, read-only: nothing is added, changed or deleted there."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import RequestFactory

from crowdplatform.integrity.models import (
    PeriodRelease,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    PublishedResult,
    Submission,
)
from tests.integrity.conftest import NOW, START, integrity_snapshot

pytestmark = pytest.mark.django_db

MODELS = (Provider, PublicLeaderboard, PolicyVersion, Submission, PublishedResult, PeriodRelease)


@pytest.fixture
def records(submit, providers):
    submission = submit(providers["open_source"], "commons-7b")
    PublishedResult.objects.create(submission=submission, published_at=NOW, rating=1000.0, votes=12)
    PeriodRelease.objects.create(
        leaderboard=submission.leaderboard,
        period_start=START,
        period_end=START + timedelta(days=30),
        battles=12,
        file_name="integrity/open-arena/2026-01-01.jsonl",
        size_bytes=2048,
        file_sha256="a" * 64,
        chain_sha256="b" * 64,
        published_at=START + timedelta(days=30),
    )
    return submission


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model._meta.model_name)
def test_every_model_is_registered_and_nothing_may_change(model, staff_user, records):
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/admin/")
    request.user = staff_user
    obj = model.objects.first()
    assert obj is not None
    assert model_admin.has_add_permission(request) is False
    assert model_admin.has_change_permission(request, obj) is False
    assert model_admin.has_delete_permission(request) is False
    assert model_admin.has_delete_permission(request, obj) is False


def test_staff_browse_every_list_and_cannot_add_or_delete(client, staff_user, records):
    client.force_login(staff_user)
    before = integrity_snapshot()
    for model in MODELS:
        name = model._meta.model_name
        obj = model.objects.first()
        assert client.get(f"/admin/integrity/{name}/").status_code == 200, name
        assert client.get(f"/admin/integrity/{name}/{obj.pk}/change/").status_code == 200, name
        assert client.get(f"/admin/integrity/{name}/add/").status_code == 403, name
        assert client.post(f"/admin/integrity/{name}/{obj.pk}/delete/", {"post": "yes"}).status_code == 403, name
    assert integrity_snapshot() == before
