"""Staff see providers, public leaderboards, policy versions, submissions and what was published,
read-only: every change goes through `crowdplatform.integrity.services`, and nothing is ever deleted
(the database refuses it too, migration 0002)."""

from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from crowdplatform.core.admin import ReadOnlyAdmin
from crowdplatform.integrity.models import (
    PeriodRelease,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    PublishedResult,
    Submission,
)


class IntegrityAdmin(ReadOnlyAdmin):
    """Stated here on its own, so that loosening the read-only base can never let a published record go."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Provider)
class ProviderAdmin(IntegrityAdmin):
    list_display = ["name", "slug", "organization", "website", "registered_at"]
    search_fields = ["name", "slug", "organization__name"]
    list_select_related = ["organization"]
    # Django 5.2 warns that URLField's default scheme becomes https in 6.0: choose it now.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(PublicLeaderboard)
class PublicLeaderboardAdmin(IntegrityAdmin):
    list_display = [
        "name",
        "slug",
        "study",
        "starts_at",
        "period_days",
        "prerelease_cap",
        "window_days",
        "provisional_votes",
        "retire_after_votes",
        "retire_newer_required",
    ]
    search_fields = ["name", "slug", "study__name"]
    list_select_related = ["study"]


@admin.register(PolicyVersion)
class PolicyVersionAdmin(IntegrityAdmin):
    list_display = ["leaderboard", "number", "effective_at", "created_by"]
    list_filter = ["leaderboard"]
    list_select_related = ["leaderboard", "created_by"]


@admin.register(Submission)
class SubmissionAdmin(IntegrityAdmin):
    list_display = [
        "system",
        "provider",
        "leaderboard",
        "license_class",
        "prerelease",
        "period_start",
        "registered_at",
        "window_ends_at",
        "published_at",
        "retired_at",
    ]
    list_filter = ["license_class", "prerelease", "leaderboard"]
    search_fields = ["system__name", "provider__name"]
    list_select_related = ["system", "provider", "leaderboard"]
    raw_id_fields = ["system"]


@admin.register(PublishedResult)
class PublishedResultAdmin(IntegrityAdmin):
    list_display = ["submission", "published_at", "rating", "ci_low", "ci_high", "rank", "votes", "provisional"]
    list_filter = ["provisional"]
    list_select_related = ["submission__system", "submission__provider"]


@admin.register(PeriodRelease)
class PeriodReleaseAdmin(IntegrityAdmin):
    list_display = ["leaderboard", "period_start", "period_end", "battles", "size_bytes", "chain_sha256"]
    list_filter = ["leaderboard"]
    list_select_related = ["leaderboard"]
