"""Staff see studies, systems, tasks, votes and flags in the admin; changes go through the domain
functions (client pages and API), so everything here is read-only."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.http import HttpRequest

from crowdplatform.core.admin import ReadOnlyAdmin
from evaluations.models import ContentFlag, Study, System, Task, Vote


@admin.register(Study)
class StudyAdmin(ReadOnlyAdmin):
    list_display = ["name", "organization", "status", "sampling", "votes_count", "budget_cents", "created_at"]
    list_filter = ["status", "sampling"]
    search_fields = ["name", "organization__name"]
    list_select_related = ["organization"]


@admin.register(System)
class SystemAdmin(ReadOnlyAdmin):
    list_display = ["name", "provider", "study", "votes_count", "registered_at"]
    search_fields = ["name", "provider", "study__name"]
    list_select_related = ["study"]

    def has_delete_permission(self, request: HttpRequest, obj: System | None = None) -> bool:
        # Stated here on its own, so that loosening the read-only base can never let a voted system go:
        # leaderboards list every system with votes, forever.
        if obj is not None and (obj.votes_count or Vote.objects.filter(Q(system_a=obj) | Q(system_b=obj)).exists()):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["id", "study", "rater", "status", "is_gold", "sampling_probability", "leased_at", "expires_at"]
    list_filter = ["status", "is_gold", "skip_reason"]
    list_select_related = ["study", "rater__user"]
    raw_id_fields = ["item_pair", "response_a", "response_b", "rater"]


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "study",
        "rater",
        "choice",
        "is_gold",
        "gold_correct",
        "duration_ms",
        "quality_status",
        "created_at",
    ]
    list_filter = ["choice", "is_gold", "quality_status"]
    list_select_related = ["study", "rater__user"]
    raw_id_fields = ["task", "item", "rater", "system_a", "system_b"]


@admin.register(ContentFlag)
class ContentFlagAdmin(ReadOnlyAdmin):
    list_display = ["reason", "study", "item", "rater", "note", "created_at"]
    list_filter = ["reason"]
    list_select_related = ["study", "item", "rater__user"]
    raw_id_fields = ["task", "item", "rater"]
