"""Staff see quality signals, actions, pauses and appeals in the admin; changes go through
`crowdplatform.quality.services` (the review pages), so everything here is read-only."""

from __future__ import annotations

from django.contrib import admin

from crowdplatform.core.admin import ReadOnlyAdmin
from crowdplatform.quality.models import QualityAction, QualityAppeal, RaterSignal, RaterStudyPause, StudySignal


@admin.register(RaterSignal)
class RaterSignalAdmin(ReadOnlyAdmin):
    list_display = [
        "rater",
        "study",
        "votes",
        "gold_votes",
        "gold_correct",
        "fast_votes",
        "longest_run",
        "refreshed_at",
    ]
    list_select_related = ["rater__user", "study"]
    raw_id_fields = ["rater", "study"]


@admin.register(StudySignal)
class StudySignalAdmin(ReadOnlyAdmin):
    list_display = ["study", "votes", "alpha", "flags", "speed_typical_seconds", "speed_log_sd", "refreshed_at"]
    list_select_related = ["study"]


@admin.register(QualityAction)
class QualityActionAdmin(ReadOnlyAdmin):
    list_display = ["id", "rater", "study", "kind", "status", "rule", "created_at", "decided_at"]
    list_filter = ["status", "kind", "rule"]
    list_select_related = ["rater__user", "study"]
    raw_id_fields = ["rater", "study", "created_by", "decided_by"]


@admin.register(RaterStudyPause)
class RaterStudyPauseAdmin(ReadOnlyAdmin):
    list_display = ["rater", "study", "action", "created_at", "lifted_at"]
    list_select_related = ["rater__user", "study"]
    raw_id_fields = ["rater", "study", "action", "lifted_by"]


@admin.register(QualityAppeal)
class QualityAppealAdmin(ReadOnlyAdmin):
    list_display = ["id", "action", "rater", "status", "created_at", "decided_at"]
    list_filter = ["status"]
    list_select_related = ["rater__user"]
    raw_id_fields = ["action", "rater", "decided_by"]
