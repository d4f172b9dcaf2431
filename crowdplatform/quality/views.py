"""The quality pages: staff's review queue and a rater's evidence (with the actions staff take
there), and each rater's own quality page with their figures, thresholds, actions and appeals.

Actions are POSTs that redirect with a message; a refused one says why and changes nothing.
"""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Q, QuerySet
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from crowdplatform.accounts.access import RATER_AREA, STAFF_AREA, area_required
from crowdplatform.core.errors import ApplicationError
from crowdplatform.quality import selectors, services
from crowdplatform.quality.forms import AppealDecisionForm, AppealForm, ProposalDecisionForm, StaffActionForm
from crowdplatform.quality.models import QualityAction, QualityAppeal
from crowdplatform.raters.models import RaterProfile
from evaluations.models import Study


def _problems(form: Form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


# --- Staff ----------------------------------------------------------------------------------------


@require_GET
@area_required(STAFF_AREA)
def staff_queue(request: HttpRequest) -> HttpResponse:
    return render(
        request, "quality/staff_queue.html", {"rows": selectors.staff_queue(), "recent_days": selectors.RECENT_DAYS}
    )


def _rater_studies(profile: RaterProfile) -> QuerySet[Study]:
    """The studies a staff action on this rater can name: those they worked on or have signals in."""
    return Study.objects.filter(Q(votes__rater=profile) | Q(rater_signals__rater=profile)).distinct().order_by("name")


def _staff_rater_page(profile_id: int) -> str:
    return reverse("quality:staff_rater", args=[profile_id])


@require_GET
@area_required(STAFF_AREA)
def staff_rater(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = get_object_or_404(RaterProfile.objects.select_related("user"), pk=profile_id)
    context = {
        "profile": profile,
        "evidence": selectors.rater_evidence(profile=profile),
        "action_form": StaffActionForm(studies=_rater_studies(profile)),
        "decision_form": ProposalDecisionForm(),
        "appeal_decision_form": AppealDecisionForm(),
    }
    return render(request, "quality/staff_rater.html", context)


@require_POST
@area_required(STAFF_AREA)
def staff_action_create(request: HttpRequest, profile_id: int) -> HttpResponse:
    profile = get_object_or_404(RaterProfile.objects.select_related("user"), pk=profile_id)
    form = StaffActionForm(request.POST, studies=_rater_studies(profile))
    if not form.is_valid():
        messages.error(request, "Nothing was done: " + _problems(form))
        return redirect(_staff_rater_page(profile.pk) + "#act")
    try:
        action = services.staff_action(
            rater=profile,
            study=form.cleaned_data["study"],
            kind=form.cleaned_data["kind"],
            reason=form.cleaned_data["reason"],
            actor=request.user,
            task_ids=request.POST.getlist("task_ids"),
        )
    except ApplicationError as error:
        messages.error(request, "Nothing was done: " + error.message)
        return redirect(_staff_rater_page(profile.pk) + "#act")
    messages.success(request, f"{action.get_kind_display()}: done. The rater sees the reason on their quality page.")
    return redirect(_staff_rater_page(profile.pk) + f"#action-{action.pk}")


@require_POST
@area_required(STAFF_AREA)
def staff_action_decide(request: HttpRequest, action_id: int) -> HttpResponse:
    action = get_object_or_404(QualityAction, pk=action_id)
    form = ProposalDecisionForm(request.POST)
    back = _staff_rater_page(action.rater_id) + f"#action-{action.pk}"
    if not form.is_valid():
        messages.error(request, "Not decided: " + _problems(form))
        return redirect(back)
    try:
        if form.cleaned_data["decision"] == "apply":
            services.action_apply(action=action, actor=request.user)
        else:
            services.action_dismiss(action=action, actor=request.user, note=form.cleaned_data["note"])
    except ApplicationError as error:
        messages.error(request, "Not decided: " + error.message)
    else:
        done = "applied" if form.cleaned_data["decision"] == "apply" else "dismissed"
        messages.success(request, f"Proposal {done}.")
    return redirect(back)


@require_POST
@area_required(STAFF_AREA)
def staff_appeal_decide(request: HttpRequest, appeal_id: int) -> HttpResponse:
    appeal = get_object_or_404(QualityAppeal, pk=appeal_id)
    form = AppealDecisionForm(request.POST)
    back = _staff_rater_page(appeal.rater_id) + f"#action-{appeal.action_id}"
    if not form.is_valid():
        messages.error(request, "Appeal not decided: " + _problems(form))
        return redirect(back)
    uphold = form.cleaned_data["decision"] == "uphold"
    try:
        services.quality_appeal_decide(
            appeal=appeal, actor=request.user, uphold=uphold, response=form.cleaned_data["response"]
        )
    except ApplicationError as error:
        messages.error(request, "Appeal not decided: " + error.message)
    else:
        messages.success(
            request, "Appeal upheld: the action is reversed." if uphold else "Appeal denied: the action stands."
        )
    return redirect(back)


# --- Rater ----------------------------------------------------------------------------------------


def _own_profile(request: HttpRequest) -> RaterProfile:
    profile = RaterProfile.objects.filter(user=request.user).first()
    if profile is None:
        raise Http404("You have no rater profile.")
    return profile


@require_GET
@area_required(RATER_AREA)
def mine(request: HttpRequest) -> HttpResponse:
    profile = _own_profile(request)
    context = {"page": selectors.rater_quality(profile=profile), "appeal_form": AppealForm()}
    return render(request, "quality/mine.html", context)


@require_POST
@area_required(RATER_AREA)
def appeal_create(request: HttpRequest, action_id: int) -> HttpResponse:
    profile = _own_profile(request)
    action = get_object_or_404(QualityAction, pk=action_id, rater=profile)  # another rater's: 404
    form = AppealForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Appeal not sent: say why the action is wrong. " + _problems(form))
    else:
        try:
            services.quality_appeal_create(action=action, rater=profile, message=form.cleaned_data["message"])
        except ApplicationError as error:
            messages.error(request, "Appeal not sent: " + error.message)
        else:
            messages.success(request, "Appeal sent. Staff will answer it here, on this page.")
    return redirect(reverse("quality:mine") + f"#action-{action.pk}")
