"""Quality pages under /staff/quality/ and /rater/quality/ (included at the root, namespace "quality")."""

from __future__ import annotations

from django.urls import path

from crowdplatform.quality import views

app_name = "quality"

urlpatterns: list = [
    # Staff
    path("staff/quality/", views.staff_queue, name="staff_queue"),
    path("staff/quality/raters/<int:profile_id>/", views.staff_rater, name="staff_rater"),
    path("staff/quality/raters/<int:profile_id>/actions/", views.staff_action_create, name="staff_action_create"),
    path("staff/quality/actions/<int:action_id>/decide/", views.staff_action_decide, name="staff_action_decide"),
    path("staff/quality/appeals/<int:appeal_id>/decide/", views.staff_appeal_decide, name="staff_appeal_decide"),
    # Rater
    path("rater/quality/", views.mine, name="mine"),
    path("rater/quality/actions/<int:action_id>/appeal/", views.appeal_create, name="appeal_create"),
]
