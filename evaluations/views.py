"""Pages: the client's studies (create, fill, launch, watch) and the rater's task page."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from crowdplatform.accounts.access import CLIENT_AREA, RATER_AREA, area_required, organization_for
from crowdplatform.accounts.models import Organization
from crowdplatform.core.errors import ApplicationError
from crowdplatform.core.forms import form_add_application_error
from crowdplatform.quality.selectors import study_quality
from evaluations import assignment, selectors, services
from evaluations.access import client_study_for, rater_profile_of
from evaluations.forms import BudgetForm, FlagForm, ItemsUploadForm, SkipForm, StudyForm, SystemForm
from evaluations.item_import import ItemImportError
from evaluations.models import Choice, Study, Task, TaskStatus

# --- Client: studies ----------------------------------------------------------------------------


def _client_study(request: HttpRequest, slug: str, study_id: int) -> tuple[Organization, Study]:
    return client_study_for(request.user, slug=slug, study_id=study_id)  # type: ignore[arg-type]


def _study_url(study: Study) -> str:
    return reverse("client:study", args=[study.organization.slug, study.pk])


@area_required(CLIENT_AREA)
def study_list(request: HttpRequest, slug: str) -> HttpResponse:
    organization = organization_for(request.user, slug=slug)  # type: ignore[arg-type]
    studies = organization.studies.all()
    return render(request, "evaluations/study_list.html", {"organization": organization, "studies": studies})


@area_required(CLIENT_AREA)
def study_create(request: HttpRequest, slug: str) -> HttpResponse:
    organization = organization_for(request.user, slug=slug)  # type: ignore[arg-type]
    form = StudyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            study = services.study_create(organization=organization, actor=request.user, data=form.to_input())
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, "Study created. Register its systems, then upload items.")
            return redirect(_study_url(study))
    return render(request, "evaluations/study_form.html", {"organization": organization, "form": form})


@area_required(CLIENT_AREA)
def study_edit(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    organization, study = _client_study(request, slug, study_id)
    form = StudyForm(request.POST or None, initial=StudyForm.initial_for(study))
    if request.method == "POST" and form.is_valid():
        try:
            services.study_update(study=study, actor=request.user, data=form.to_input())
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, "Settings saved.")
            return redirect(_study_url(study))
    context = {"organization": organization, "form": form, "study": study}
    return render(request, "evaluations/study_form.html", context)


@area_required(CLIENT_AREA)
def study_detail(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    organization, study = _client_study(request, slug, study_id)
    return render(request, "evaluations/study_detail.html", _detail_context(request, organization, study))


def _detail_context(request: HttpRequest, organization: Organization, study: Study, **extra: Any) -> dict[str, Any]:
    return {
        "organization": organization,
        "study": study,
        "progress": selectors.study_progress(study),
        "systems": study.systems.all(),
        "items_count": study.items.count(),
        "gold_count": study.items.filter(is_gold=True).count(),
        "launch_problems": services.launch_problems(study) if study.status == "draft" else [],
        "hourly_cents": services.implied_hourly_cents(study.pay_per_task_cents, study.est_seconds_per_task),
        "system_form": SystemForm(),
        "upload_form": ItemsUploadForm(),
        "budget_form": BudgetForm(initial={"budget_cents": study.budget_cents}),
        "quality": study_quality(study=study),
        **extra,
    }


@area_required(CLIENT_AREA)
def study_progress(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    """The progress panel alone: the detail page polls it with htmx while the study is live."""
    _, study = _client_study(request, slug, study_id)
    context = {"study": study, "progress": selectors.study_progress(study)}
    return render(request, "evaluations/_progress.html", context)


@area_required(CLIENT_AREA)
def study_sampling(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    organization, study = _client_study(request, slug, study_id)
    report = selectors.sampling_report(study)
    context = {"organization": organization, "study": study, "report": report}
    return render(request, "evaluations/sampling_report.html", context)


TRANSITIONS = {
    "launch": (services.study_launch, "The study is live: raters can take its tasks."),
    "pause": (services.study_pause, "Paused: no new tasks go out; open leases can still be finished."),
    "resume": (services.study_resume, "Resumed: tasks go out again."),
    "complete": (services.study_complete, "Completed: the results are final."),
    "archive": (services.study_archive, "Archived."),
}


@require_POST
@area_required(CLIENT_AREA)
def study_transition(request: HttpRequest, slug: str, study_id: int, action: str) -> HttpResponse:
    _, study = _client_study(request, slug, study_id)
    if action not in TRANSITIONS:
        raise Http404("No such action.")
    change, done = TRANSITIONS[action]
    try:
        change(study=study, actor=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    return redirect(_study_url(study))


@require_POST
@area_required(CLIENT_AREA)
def study_budget(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    _, study = _client_study(request, slug, study_id)
    form = BudgetForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter the budget in cents, 0 or more.")
        return redirect(_study_url(study))
    try:
        services.study_budget_set(study=study, actor=request.user, budget_cents=form.cleaned_data["budget_cents"])
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Budget updated.")
    return redirect(_study_url(study))


@require_POST
@area_required(CLIENT_AREA)
def system_register(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    organization, study = _client_study(request, slug, study_id)
    form = SystemForm(request.POST)
    if form.is_valid():
        try:
            system = services.system_register(study=study, actor=request.user, **form.cleaned_data)
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, f"Registered {system.name}.")
            return redirect(_study_url(study) + "#systems")
    context = _detail_context(request, organization, study, system_form=form)
    return render(request, "evaluations/study_detail.html", context, status=400)


@require_POST
@area_required(CLIENT_AREA)
def items_upload(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    organization, study = _client_study(request, slug, study_id)
    form = ItemsUploadForm(request.POST, request.FILES)
    upload_errors: list[Any] = []
    if form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            result = services.items_upload(
                study=study,
                actor=request.user,
                data=upload.read(),
                content_type=upload.content_type or "",
                filename=upload.name or "",
            )
        except ItemImportError as error:
            upload_errors = error.errors
        except ApplicationError as error:
            form_add_application_error(form, error)
        else:
            messages.success(request, f"Added {result.created} items ({result.gold} gold), {result.item_pairs} pairs.")
            return redirect(_study_url(study) + "#items")
    context = _detail_context(request, organization, study, upload_form=form, upload_errors=upload_errors)
    return render(request, "evaluations/study_detail.html", context, status=400)


# --- Rater: the task page -----------------------------------------------------------------------


@area_required(RATER_AREA)
def task_page(request: HttpRequest) -> HttpResponse:
    """The rater's open task, or a "no task right now" state with a button to ask for one."""
    rater = rater_profile_of(request.user)  # type: ignore[arg-type]
    lease = Task.objects.filter(rater=rater, status=TaskStatus.LEASED).first()
    view = selectors.task_view(lease) if lease is not None and not _lapsed(lease) else None
    context = {
        "task": view,
        "choices": [(value, label, number) for number, (value, label) in enumerate(Choice.choices, start=1)],
        "skip_form": SkipForm(),
        "flag_form": FlagForm(),
        "tally": selectors.rater_task_counts(rater.pk),
        "approved": rater.status == "approved",
        "asked": request.GET.get("asked") == "1",
    }
    return render(request, "evaluations/task.html", context)


def _lapsed(task: Task) -> bool:
    return task.expires_at <= timezone.now()


def _next(request: HttpRequest) -> HttpResponse:
    rater = rater_profile_of(request.user)  # type: ignore[arg-type]
    task = assignment.task_next(rater=rater)
    return redirect(reverse("rater:task") + ("" if task is not None else "?asked=1"))


@require_POST
@area_required(RATER_AREA)
def task_next(request: HttpRequest) -> HttpResponse:
    return _next(request)


@require_POST
@area_required(RATER_AREA)
def task_vote(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    rater = rater_profile_of(request.user)  # type: ignore[arg-type]
    criteria = {
        name: request.POST[f"criterion-{number}"]
        for number, name in enumerate(_criterion_names(rater, task_id), start=1)
        if request.POST.get(f"criterion-{number}")
    }
    data = assignment.VoteInput(
        choice=request.POST.get("choice", ""), criteria=criteria, rationale=request.POST.get("rationale", "")
    )
    try:
        assignment.vote_submit(task_id=task_id, rater=rater, data=data)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("rater:task")
    messages.success(request, "Vote recorded.")
    return _next(request)


def _criterion_names(rater: Any, task_id: uuid.UUID) -> list[str]:
    task = Task.objects.select_related("study").filter(pk=task_id, rater=rater).first()
    if task is None:
        raise Http404("No such task.")
    return task.study.criterion_names


@require_POST
@area_required(RATER_AREA)
def task_skip(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    rater = rater_profile_of(request.user)  # type: ignore[arg-type]
    form = SkipForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose why you skip.")
        return redirect("rater:task")
    try:
        assignment.task_skip(task_id=task_id, rater=rater, **form.cleaned_data)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("rater:task")
    messages.info(request, "Skipped. Skips are never held against you.")
    return _next(request)


@require_POST
@area_required(RATER_AREA)
def task_flag(request: HttpRequest, task_id: uuid.UUID) -> HttpResponse:
    rater = rater_profile_of(request.user)  # type: ignore[arg-type]
    form = FlagForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose what is wrong with the content.")
    else:
        try:
            assignment.task_flag(task_id=task_id, rater=rater, **form.cleaned_data)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, "Thank you: the content is flagged for review. You can still vote or skip.")
    return redirect("rater:task")
