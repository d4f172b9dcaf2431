from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from crowdplatform.accounts import api as accounts_api
from crowdplatform.accounts import views as accounts_views
from crowdplatform.core import api as core_api
from crowdplatform.core import views as core_views
from crowdplatform.core.health import healthz
from crowdplatform.integrity import api as integrity_api
from crowdplatform.integrity import views as integrity_views
from crowdplatform.integrity import views_provider as provider_views
from crowdplatform.integrity import views_staff as integrity_staff_views
from crowdplatform.raters import api as raters_api
from crowdplatform.raters import views as raters_views
from evaluations import api as evaluations_api
from evaluations import api_exports as exports_api
from evaluations import api_leaderboard, views_leaderboard
from evaluations import views as evaluations_views
from evaluations import views_exports as exports_views

api_v1 = [
    path("me/", accounts_api.MeApi.as_view(), name="me"),
    path("organizations/", accounts_api.OrganizationListApi.as_view(), name="organization-list"),
    path(
        "organizations/<int:organization_id>/", accounts_api.OrganizationDetailApi.as_view(), name="organization-detail"
    ),
    path("organizations/<int:organization_id>/members/", accounts_api.MemberListApi.as_view(), name="member-list"),
    path(
        "organizations/<int:organization_id>/api-keys/", accounts_api.ApiKeyListCreateApi.as_view(), name="api-key-list"
    ),
    path(
        "organizations/<int:organization_id>/api-keys/<int:api_key_id>/",
        accounts_api.ApiKeyRevokeApi.as_view(),
        name="api-key-detail",
    ),
    path("audit-events/", core_api.AuditEventListApi.as_view(), name="audit-event-list"),
    path("transparency/", integrity_api.TransparencyApi.as_view(), name="transparency"),
    path("leaderboards/", integrity_api.LeaderboardListApi.as_view(), name="public-leaderboard-list"),
    path(
        "leaderboards/<slug:slug>/submissions/",
        integrity_api.SubmissionListCreateApi.as_view(),
        name="submission-list",
    ),
    path(
        "leaderboards/<slug:slug>/prompts/", integrity_api.LeaderboardPromptsApi.as_view(), name="leaderboard-prompts"
    ),
    path(
        "leaderboards/<slug:slug>/submissions/<int:submission_id>/responses/",
        integrity_api.SubmissionResponsesApi.as_view(),
        name="submission-responses",
    ),
    path("campaigns/", raters_api.CampaignListApi.as_view(), name="campaign-list"),
    path(
        "campaigns/<int:campaign_id>/applicants/",
        raters_api.CampaignApplicantListApi.as_view(),
        name="campaign-applicant-list",
    ),
    path("qualification-tests/", raters_api.QualificationTestListApi.as_view(), name="qualification-test-list"),
    path(
        "qualification-tests/<int:test_id>/",
        raters_api.QualificationTestDetailApi.as_view(),
        name="qualification-test-detail",
    ),
    path("studies/", evaluations_api.StudyListCreateApi.as_view(), name="study-list"),
    path("studies/<int:study_id>/", evaluations_api.StudyDetailApi.as_view(), name="study-detail"),
    *(
        path(
            f"studies/<int:study_id>/{name}/",
            evaluations_api.StudyTransitionApi.as_view(transition=name),
            name=f"study-{name}",
        )
        for name in evaluations_api.StudyTransitionApi.ACTIONS
    ),
    path("studies/<int:study_id>/systems/", evaluations_api.SystemListCreateApi.as_view(), name="system-list"),
    path(
        "studies/<int:study_id>/systems/<int:system_id>/",
        evaluations_api.SystemDetailApi.as_view(),
        name="system-detail",
    ),
    path("studies/<int:study_id>/items/", evaluations_api.ItemListUploadApi.as_view(), name="item-list"),
    path("studies/<int:study_id>/progress/", evaluations_api.StudyProgressApi.as_view(), name="study-progress"),
    path("studies/<int:study_id>/quality/", evaluations_api.StudyQualityApi.as_view(), name="study-quality"),
    path("studies/<int:study_id>/votes.jsonl", exports_api.VotesJsonlApi.as_view(), name="study-votes-jsonl"),
    path("studies/<int:study_id>/votes.csv", exports_api.VotesCsvApi.as_view(), name="study-votes-csv"),
    path("studies/<int:study_id>/votes.parquet", exports_api.VotesParquetApi.as_view(), name="study-votes-parquet"),
    path("studies/<int:study_id>/exports/", exports_api.ExportJobListCreateApi.as_view(), name="study-export-list"),
    path(
        "studies/<int:study_id>/exports/<uuid:job_id>/",
        exports_api.ExportJobDetailApi.as_view(),
        name="study-export-detail",
    ),
    path(
        "studies/<int:study_id>/exports/<uuid:job_id>/download/",
        exports_api.ExportJobDownloadApi.as_view(),
        name="study-export-download",
    ),
    path(
        "studies/<int:study_id>/sampling-report/",
        evaluations_api.SamplingReportApi.as_view(),
        name="study-sampling-report",
    ),
    path(
        "studies/<int:study_id>/leaderboard/",
        api_leaderboard.StudyLeaderboardApi.as_view(),
        name="study-leaderboard",
    ),
    path("tasks/next/", evaluations_api.TaskNextApi.as_view(), name="task-next"),
    path("tasks/<str:task_id>/vote/", evaluations_api.TaskVoteApi.as_view(), name="task-vote"),
    path("tasks/<str:task_id>/skip/", evaluations_api.TaskSkipApi.as_view(), name="task-skip"),
    path("tasks/<str:task_id>/flag/", evaluations_api.TaskFlagApi.as_view(), name="task-flag"),
]

client_urls = (
    [
        path("", accounts_views.client_home, name="home"),
        path("organizations/new/", accounts_views.organization_create, name="organization_create"),
        path("orgs/<slug:slug>/", accounts_views.organization_detail, name="organization"),
        path("orgs/<slug:slug>/invitations/", accounts_views.invitation_create, name="invitation_create"),
        path(
            "orgs/<slug:slug>/invitations/<int:invitation_id>/revoke/",
            accounts_views.invitation_revoke,
            name="invitation_revoke",
        ),
        path(
            "orgs/<slug:slug>/members/<int:membership_id>/role/",
            accounts_views.membership_set_role,
            name="membership_set_role",
        ),
        path(
            "orgs/<slug:slug>/members/<int:membership_id>/remove/",
            accounts_views.membership_remove,
            name="membership_remove",
        ),
        path("orgs/<slug:slug>/api-keys/", accounts_views.api_key_create, name="api_key_create"),
        path("orgs/<slug:slug>/provider/", provider_views.provider_page, name="provider"),
        path(
            "orgs/<slug:slug>/provider/leaderboards/<slug:lb_slug>/submissions/",
            provider_views.provider_submit,
            name="provider_submit",
        ),
        path(
            "orgs/<slug:slug>/provider/leaderboards/<slug:lb_slug>/prompts.jsonl",
            provider_views.provider_prompts,
            name="provider_prompts",
        ),
        path(
            "orgs/<slug:slug>/provider/submissions/<int:submission_id>/responses/",
            provider_views.provider_responses,
            name="provider_responses",
        ),
        path("orgs/<slug:slug>/campaigns/", raters_views.client_campaigns, name="campaigns"),
        path("orgs/<slug:slug>/campaigns/<int:campaign_id>/", raters_views.client_campaign_detail, name="campaign"),
        path(
            "orgs/<slug:slug>/api-keys/<int:api_key_id>/revoke/", accounts_views.api_key_revoke, name="api_key_revoke"
        ),
        path("orgs/<slug:slug>/studies/", evaluations_views.study_list, name="studies"),
        path("orgs/<slug:slug>/studies/new/", evaluations_views.study_create, name="study_create"),
        path("orgs/<slug:slug>/studies/<int:study_id>/", evaluations_views.study_detail, name="study"),
        path("orgs/<slug:slug>/studies/<int:study_id>/edit/", evaluations_views.study_edit, name="study_edit"),
        path(
            "orgs/<slug:slug>/studies/<int:study_id>/progress/",
            evaluations_views.study_progress,
            name="study_progress",
        ),
        path(
            "orgs/<slug:slug>/studies/<int:study_id>/sampling/",
            evaluations_views.study_sampling,
            name="study_sampling",
        ),
        path(
            "orgs/<slug:slug>/studies/<int:study_id>/leaderboard/",
            views_leaderboard.study_leaderboard_page,
            name="study_leaderboard",
        ),
        path(
            "orgs/<slug:slug>/studies/<int:study_id>/leaderboard/visibility/",
            views_leaderboard.study_visibility,
            name="study_visibility",
        ),
        path("orgs/<slug:slug>/studies/<int:study_id>/exports/", exports_views.study_exports, name="study_exports"),
        path(
            "orgs/<slug:slug>/studies/<int:study_id>/exports/jobs/",
            exports_views.study_exports_jobs,
            name="study_exports_jobs",
        ),
        path(
            "orgs/<slug:slug>/studies/<int:study_id>/exports/<uuid:job_id>/download/",
            exports_views.study_export_download,
            name="study_export_download",
        ),
        path("orgs/<slug:slug>/studies/<int:study_id>/budget/", evaluations_views.study_budget, name="study_budget"),
        path(
            "orgs/<slug:slug>/studies/<int:study_id>/systems/",
            evaluations_views.system_register,
            name="system_register",
        ),
        path("orgs/<slug:slug>/studies/<int:study_id>/items/", evaluations_views.items_upload, name="items_upload"),
        path(
            "orgs/<slug:slug>/studies/<int:study_id>/<slug:action>/",
            evaluations_views.study_transition,
            name="study_transition",
        ),
    ],
    "client",
)

rater_urls = (
    [
        path("", raters_views.rater_home, name="home"),
        path("application/", raters_views.application_edit, name="application"),
        path("application/submit/", raters_views.application_submit, name="application_submit"),
        path("application/document/", raters_views.credential_document_upload, name="credential_document"),
        path("tests/<int:test_id>/start/", raters_views.attempt_start, name="attempt_start"),
        path("attempts/<int:attempt_id>/", raters_views.attempt_detail, name="attempt"),
        path("attempts/<int:attempt_id>/answer/", raters_views.attempt_answer, name="attempt_answer"),
        path("attempts/<int:attempt_id>/submit/", raters_views.attempt_submit, name="attempt_submit"),
        path("task/", evaluations_views.task_page, name="task"),
        path("task/next/", evaluations_views.task_next, name="task_next"),
        path("tasks/<uuid:task_id>/vote/", evaluations_views.task_vote, name="task_vote"),
        path("tasks/<uuid:task_id>/skip/", evaluations_views.task_skip, name="task_skip"),
        path("tasks/<uuid:task_id>/flag/", evaluations_views.task_flag, name="task_flag"),
    ],
    "rater",
)

staff_urls = (
    [
        path("", core_views.staff_dashboard, name="dashboard"),
        path("audit/", core_views.staff_audit_log, name="audit_log"),
        path("raters/", raters_views.staff_applications, name="rater_applications"),
        path("campaigns/", raters_views.staff_campaigns, name="campaigns"),
        path("campaigns/<int:campaign_id>/", raters_views.staff_campaign_detail, name="campaign"),
        path("qualification-tests/", raters_views.staff_qualification_tests, name="qualification_tests"),
        path("leaderboards/", integrity_staff_views.staff_leaderboards, name="leaderboards"),
        path("leaderboards/<slug:slug>/", integrity_staff_views.staff_leaderboard, name="leaderboard"),
        path("leaderboards/<slug:slug>/policy/", integrity_staff_views.staff_policy_publish, name="leaderboard_policy"),
        path(
            "leaderboards/<slug:slug>/submissions/",
            integrity_staff_views.staff_submission_register,
            name="leaderboard_submissions",
        ),
        path("leaderboards/<slug:slug>/publish/", integrity_staff_views.staff_publish_now, name="leaderboard_publish"),
        path("providers/", integrity_staff_views.staff_provider_register, name="providers"),
        path("raters/decide/", raters_views.staff_applications_decide, name="rater_applications_decide"),
        path("raters/<int:profile_id>/", raters_views.staff_rater_detail, name="rater_detail"),
        path(
            "raters/<int:profile_id>/qualifications/grant/",
            raters_views.staff_qualification_grant,
            name="qualification_grant",
        ),
        path(
            "raters/<int:profile_id>/qualifications/<int:qualification_id>/revoke/",
            raters_views.staff_qualification_revoke,
            name="qualification_revoke",
        ),
        path(
            "raters/<int:profile_id>/document/",
            raters_views.staff_credential_document,
            name="rater_credential_document",
        ),
    ],
    "staff",
)

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("invitations/<str:token>/", accounts_views.invitation_accept, name="invitation_accept"),
    path("join/<str:token>/", raters_views.campaign_join, name="campaign_join"),
    path("leaderboards/<int:study_id>/", views_leaderboard.public_leaderboard_page, name="leaderboard_public"),
    path("transparency/", integrity_views.transparency_page, name="transparency"),
    path(
        "transparency/releases/<int:release_id>/battles.jsonl",
        integrity_views.release_download,
        name="release_download",
    ),
    path("client/", include(client_urls)),
    path("rater/", include(rater_urls)),
    path("staff/", include(staff_urls)),
    # Payments: webhooks under /payments/, and the money pages under /rater/, /client/ and /staff/.
    path("", include("payments.urls")),
    path("", include("crowdplatform.quality.urls")),  # /staff/quality/ and /rater/quality/
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

handler400 = core_views.error_400
handler403 = core_views.error_403
handler404 = core_views.error_404
handler500 = core_views.error_500
