from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from crowdplatform.accounts.access import (
    CLIENT_AREA,
    RATER_AREA,
    STAFF_AREA,
    area_required,
    can_manage_organization,
    organization_for,
)
from crowdplatform.core.errors import ApplicationError
from crowdplatform.core.forms import form_add_application_error
from crowdplatform.core.keyset import keyset_page
from crowdplatform.core.models import AuditEvent
from crowdplatform.raters import services
from crowdplatform.raters.forms import (
    CampaignForm,
    DecisionForm,
    QualificationGrantForm,
    QualificationTestImportForm,
    RaterProfileForm,
    ReasonForm,
    SubmitApplicationForm,
)
from crowdplatform.raters.invites import campaign_remember
from crowdplatform.raters.models import (
    ApplicationStatus,
    ExpertiseDomain,
    GoldAnswer,
    Qualification,
    QualificationAttempt,
    QualificationTest,
    RaterProfile,
    RecruitmentCampaign,
)
from crowdplatform.raters.selectors import ApplicationFilters, campaign_funnel, rater_applications
from evaluations.selectors import rater_task_counts
from payments.selectors import rater_money


def _own_profile(request: HttpRequest) -> RaterProfile:
    return services.rater_profile_create(user=request.user, actor=request.user)  # type: ignore[arg-type]


@area_required(RATER_AREA)
def rater_home(request: HttpRequest) -> HttpResponse:
    profile = _own_profile(request)
    context = {
        "profile": profile,
        "missing": services.application_missing(profile),
        "qualifications": profile.qualifications.select_related("test", "test__domain"),
        "open_tests": QualificationTest.objects.filter(is_active=True, items__isnull=False).distinct(),
        "attempts": profile.attempts.select_related("test")[:20],
        "now": timezone.now(),
        "tally": rater_task_counts(profile.pk),
        "money": rater_money(rater=request.user),
    }
    return render(request, "raters/home.html", context)


@area_required(RATER_AREA)
def application_edit(request: HttpRequest) -> HttpResponse:
    profile = _own_profile(request)
    editable = profile.status in services.EDITABLE_STATUSES
    form = RaterProfileForm(request.POST or None, initial=RaterProfileForm.initial_for(profile))
    if request.method == "POST" and form.is_valid():
        try:
            services.rater_profile_update(profile=profile, data=form.to_input(), actor=request.user)  # type: ignore[arg-type]
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, "Saved. Submit your application when it is complete.")
            return redirect("rater:application")
    context = {
        "profile": profile,
        "form": form,
        "editable": editable,
        "missing": services.application_missing(profile),
        "submit_form": SubmitApplicationForm(),
    }
    return render(request, "raters/application.html", context)


@require_POST
@area_required(RATER_AREA)
def credential_document_upload(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("document")
    if upload is None:
        messages.error(request, "Choose a file to upload.")
        return redirect("rater:application")
    try:
        services.rater_credential_document_set(profile=_own_profile(request), upload=upload, actor=request.user)  # type: ignore[arg-type]
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Document uploaded. Only staff can open it.")
    return redirect("rater:application")


@area_required(STAFF_AREA)
def staff_credential_document(request: HttpRequest, profile_id: int) -> FileResponse:
    profile = get_object_or_404(RaterProfile, pk=profile_id)
    if not profile.credential_document:
        raise Http404("This rater uploaded no document.")
    # Always a download, never rendered inline: the file came from outside.
    return FileResponse(profile.credential_document.open("rb"), as_attachment=True)


@require_POST
@area_required(RATER_AREA)
def application_submit(request: HttpRequest) -> HttpResponse:
    profile = _own_profile(request)
    form = SubmitApplicationForm(request.POST)
    form.is_valid()
    try:
        services.rater_application_submit(
            profile=profile,
            consent_terms=form.cleaned_data.get("consent_terms", False),
            consent_pay_policy=form.cleaned_data.get("consent_pay_policy", False),
            actor=request.user,  # type: ignore[arg-type]
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("rater:application")
    messages.success(request, "Application submitted. Staff will review it; you will see the decision here.")
    return redirect("rater:home")


@area_required(STAFF_AREA)
def staff_applications(request: HttpRequest) -> HttpResponse:
    filters = ApplicationFilters(
        status=request.GET.get("status", ApplicationStatus.APPLIED),
        domain=request.GET.get("domain", ""),
        language=request.GET.get("language", "").strip(),
        country=request.GET.get("country", "").strip(),
        campaign=int(request.GET["campaign"]) if request.GET.get("campaign", "").isdigit() else None,
    )
    # Oldest application first: applicants are reviewed in the order they applied.
    page = keyset_page(rater_applications(filters), request.GET, newest_first=False)
    context = {
        "page": page,
        "filters": filters,
        "statuses": ApplicationStatus.choices,
        "domains": ExpertiseDomain.objects.all(),
        "campaigns": RecruitmentCampaign.objects.only("id", "name"),
        "decision_form": DecisionForm(),
    }
    return render(request, "raters/staff_applications.html", context)


@require_POST
@area_required(STAFF_AREA)
def staff_applications_decide(request: HttpRequest) -> HttpResponse:
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose at least one rater and a decision.")
    else:
        outcome = services.rater_status_decide_many(
            profiles=form.cleaned_data["profiles"],
            decision=form.cleaned_data["decision"],
            reason=form.cleaned_data["reason"],
            actor=request.user,  # type: ignore[arg-type]
        )
        if outcome.decided:
            messages.success(request, f"{form.cleaned_data['decision'].capitalize()}: {len(outcome.decided)} rater(s).")
        for profile, why in outcome.refused:
            messages.error(request, f"{profile.user.email}: {why}")
    queue_url = reverse("staff:rater_applications")
    back = request.POST.get("next", "")
    return redirect(back if back.startswith(queue_url) else queue_url)


@area_required(STAFF_AREA)
def staff_qualification_tests(request: HttpRequest) -> HttpResponse:
    form = QualificationTestImportForm(request.POST or None, request.FILES or None)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            test = services.qualification_test_import(
                name=form.cleaned_data["name"],
                domain=form.cleaned_data["domain"],
                language=form.cleaned_data["language"].strip(),
                pass_score=form.cleaned_data["pass_score"],
                lines=form.cleaned_data["items"],
                actor=request.user,  # type: ignore[arg-type]
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
            errors = error.fields.get("lines", [])
        else:
            messages.success(request, f"Imported {test.items.count()} items into “{test.name}”.")
            return redirect("staff:qualification_tests")
    tests = QualificationTest.objects.select_related("domain").annotate(item_count=Count("items"))
    return render(request, "raters/staff_qualification_tests.html", {"form": form, "tests": tests, "errors": errors})


# --- Taking a qualification test ------------------------------------------------------------------


def _own_attempt(request: HttpRequest, attempt_id: int) -> QualificationAttempt:
    """The rater's own attempt; anyone else's is missing (404)."""
    return get_object_or_404(
        QualificationAttempt.objects.select_related("test"), pk=attempt_id, profile__user=request.user
    )


@require_POST
@area_required(RATER_AREA)
def attempt_start(request: HttpRequest, test_id: int) -> HttpResponse:
    test = get_object_or_404(QualificationTest, pk=test_id)
    try:
        attempt = services.qualification_attempt_start(profile=_own_profile(request), test=test, actor=request.user)  # type: ignore[arg-type]
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("rater:home")
    return redirect("rater:attempt", attempt_id=attempt.pk)


@area_required(RATER_AREA)
def attempt_detail(request: HttpRequest, attempt_id: int) -> HttpResponse:
    attempt = _own_attempt(request, attempt_id)
    answers = {answer.item_id: answer for answer in attempt.answers.all()}
    items = [(item, answers.get(item.pk)) for item in attempt.test.items.all()]
    context = {"attempt": attempt, "items": items, "choices": GoldAnswer.choices, "now": timezone.now()}
    return render(request, "raters/attempt.html", context)


def _posted_answers(request: HttpRequest, attempt: QualificationAttempt) -> dict[int, str]:
    item_ids = set(attempt.test.items.values_list("id", flat=True))
    return {item_id: request.POST[f"item-{item_id}"] for item_id in item_ids if request.POST.get(f"item-{item_id}")}


@require_POST
@area_required(RATER_AREA)
def attempt_answer(request: HttpRequest, attempt_id: int) -> HttpResponse:
    """Save answers as they are chosen (htmx), so they count even if the final submit comes late."""
    attempt = _own_attempt(request, attempt_id)
    try:
        services.qualification_attempt_answer(
            attempt=attempt, answers=_posted_answers(request, attempt), actor=request.user
        )  # type: ignore[arg-type]
    except ApplicationError as error:
        return HttpResponse(error.message, status=error.status)
    return HttpResponse("Saved")


@require_POST
@area_required(RATER_AREA)
def attempt_submit(request: HttpRequest, attempt_id: int) -> HttpResponse:
    attempt = _own_attempt(request, attempt_id)
    answers = _posted_answers(request, attempt)
    if answers and attempt.submitted_at is None:
        try:
            services.qualification_attempt_answer(attempt=attempt, answers=answers, actor=request.user)  # type: ignore[arg-type]
        except ApplicationError as error:
            messages.warning(request, f"{error.message} Graded on the answers that arrived in time.")
    attempt = services.qualification_attempt_submit(attempt=attempt, actor=request.user)  # type: ignore[arg-type]
    return redirect("rater:attempt", attempt_id=attempt.pk)


# --- Staff: one rater -----------------------------------------------------------------------------


@area_required(STAFF_AREA)
def staff_rater_detail(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = get_object_or_404(
        RaterProfile.objects.select_related("user").prefetch_related("languages", "domains"), pk=profile_id
    )
    context = {
        "profile": profile,
        "qualifications": profile.qualifications.select_related("test", "granted_by"),
        "attempts": profile.attempts.select_related("test"),
        "history": AuditEvent.objects.filter(target_type="raters.raterprofile", target_id=str(profile.pk)),
        "grant_form": QualificationGrantForm(),
        "reason_form": ReasonForm(),
        "now": timezone.now(),
    }
    return render(request, "raters/staff_rater_detail.html", context)


@require_POST
@area_required(STAFF_AREA)
def staff_qualification_grant(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = get_object_or_404(RaterProfile, pk=profile_id)
    form = QualificationGrantForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a test, a score between 0 and 1, and give a reason.")
    else:
        try:
            services.qualification_grant(profile=profile, actor=request.user, **form.cleaned_data)  # type: ignore[arg-type]
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Granted “{form.cleaned_data['test']}”.")
    return redirect("staff:rater_detail", profile_id=profile.pk)


@require_POST
@area_required(STAFF_AREA)
def staff_qualification_revoke(request: HttpRequest, profile_id: int, qualification_id: int) -> HttpResponse:
    qualification = get_object_or_404(Qualification, pk=qualification_id, profile_id=profile_id)
    form = ReasonForm(request.POST)
    try:
        services.qualification_revoke(
            qualification=qualification,
            reason=form.data.get("reason", ""),
            actor=request.user,  # type: ignore[arg-type]
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Revoked “{qualification.test}”.")
    return redirect("staff:rater_detail", profile_id=profile_id)


# --- Recruitment campaigns ------------------------------------------------------------------------


@area_required(STAFF_AREA)
def staff_campaigns(request: HttpRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(data=form.to_input(), actor=request.user)  # type: ignore[arg-type]
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, f"Opened “{campaign.name}”. Share its invite link.")
            return redirect("staff:campaign", campaign_id=campaign.pk)
    campaigns = RecruitmentCampaign.objects.select_related("organization").annotate(applicant_count=Count("applicants"))
    return render(request, "raters/staff_campaigns.html", {"form": form, "campaigns": campaigns})


@area_required(STAFF_AREA)
def staff_campaign_detail(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = get_object_or_404(RecruitmentCampaign.objects.prefetch_related("domains"), pk=campaign_id)
    return _campaign_page(request, campaign)


@area_required(CLIENT_AREA)
def client_campaigns(request: HttpRequest, slug: str) -> HttpResponse:
    """An organization's own campaigns; owners open new ones for their private studies."""
    organization = organization_for(request.user, slug=slug)  # type: ignore[arg-type]
    may_open = can_manage_organization(request.user, organization)  # type: ignore[arg-type]
    form = CampaignForm(request.POST or None)
    if request.method == "POST":
        if not may_open:
            raise PermissionDenied("Only an owner of this organization may open campaigns.")
        if form.is_valid():
            try:
                campaign = services.campaign_create(
                    data=form.to_input(),
                    actor=request.user,
                    organization=organization,  # type: ignore[arg-type]
                )
            except ApplicationError as error:
                form_add_application_error(form, error)
            else:
                messages.success(request, f"Opened “{campaign.name}”. Share its invite link.")
                return redirect("client:campaign", slug=slug, campaign_id=campaign.pk)
    campaigns = organization.campaigns.annotate(applicant_count=Count("applicants"))
    context = {"organization": organization, "campaigns": campaigns, "form": form, "may_open": may_open}
    return render(request, "raters/client_campaigns.html", context)


@area_required(CLIENT_AREA)
def client_campaign_detail(request: HttpRequest, slug: str, campaign_id: int) -> HttpResponse:
    organization = organization_for(request.user, slug=slug)  # type: ignore[arg-type]
    campaign = get_object_or_404(organization.campaigns.prefetch_related("domains"), pk=campaign_id)
    return _campaign_page(request, campaign)


def _campaign_page(request: HttpRequest, campaign: RecruitmentCampaign) -> HttpResponse:
    funnel = campaign_funnel(campaign)
    stages = [("Applied", funnel.applied), ("Approved", funnel.approved), ("Qualified", funnel.qualified)]
    stages.append(("Active", funnel.active))
    widest = max([campaign.raters_wanted, *(count for _, count in stages)])
    bars = [
        {"label": label, "count": count, "width": round(300 * count / widest), "y": 24 * row}
        for row, (label, count) in enumerate(stages)
    ]
    context = {
        "campaign": campaign,
        "bars": bars,
        "chart_height": 24 * len(bars),
        "invite_url": request.build_absolute_uri(reverse("campaign_join", args=[campaign.token])),
    }
    return render(request, "raters/campaign_detail.html", context)


def campaign_join(request: HttpRequest, token: str) -> HttpResponse:
    """The shareable invite page. Visitors sign up from here; raters already signed up join in one click."""
    campaign = get_object_or_404(RecruitmentCampaign.objects.prefetch_related("domains"), token=token)
    if request.method == "POST" and request.user.is_authenticated:
        try:
            services.rater_profile_join_campaign(profile=_own_profile(request), campaign=campaign, actor=request.user)  # type: ignore[arg-type]
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"You are applying through “{campaign.name}”.")
            return redirect("rater:application")
    elif not request.user.is_authenticated:
        campaign_remember(request, token)  # picked up when the sign-up completes
    return render(request, "raters/campaign_join.html", {"campaign": campaign})
