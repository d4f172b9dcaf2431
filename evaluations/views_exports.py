"""Client pages: export a study's votes, now (streamed through the API) or as a prepared file (a job)."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from crowdplatform.accounts.access import CLIENT_AREA, area_required
from crowdplatform.accounts.models import Organization
from crowdplatform.core.errors import ApplicationError
from evaluations import exports
from evaluations.access import client_study_for
from evaluations.api_exports import export_job_file_response
from evaluations.models import ExportFormat, ExportStatus, Study

JOBS_SHOWN = 20
DOWNLOAD_ROUTES = {
    ExportFormat.JSONL: "api:study-votes-jsonl",
    ExportFormat.CSV: "api:study-votes-csv",
    ExportFormat.PARQUET: "api:study-votes-parquet",
}


def _client_study(request: HttpRequest, slug: str, study_id: int) -> tuple[Organization, Study]:
    return client_study_for(request.user, slug=slug, study_id=study_id)  # type: ignore[arg-type]


def _page_url(study: Study, organization: Organization, query: str = "") -> str:
    url = reverse("client:study_exports", args=[organization.slug, study.pk])
    return f"{url}?{query}" if query else url


def _filter_values(data: Any) -> dict[str, str]:
    """The filter fields of a submitted form (the page's own fields, nothing else)."""
    return {name: data.get(name, "") for name in exports.FILTER_NAMES if data.get(name, "") != ""}


def _jobs_context(study: Study) -> dict[str, Any]:
    jobs = list(exports.export_jobs_of(study)[:JOBS_SHOWN])
    for job in jobs:
        job.filters_label = exports.export_filters_label(job.filters)  # type: ignore[attr-defined]
    running = any(job.status in (ExportStatus.QUEUED, ExportStatus.RUNNING) for job in jobs)
    return {"jobs": jobs, "jobs_running": running}


@require_http_methods(["GET", "POST"])
@area_required(CLIENT_AREA)
def study_exports(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    """GET: the filter form, download links for the filters given, prepared files. POST: prepare a file."""
    organization, study = _client_study(request, slug, study_id)
    if request.method == "POST":
        return _job_create(request, organization, study)
    values = _filter_values(request.GET)
    filters, error = None, None
    try:
        filters = exports.export_filters_parse(study=study, params=values)
    except ApplicationError as problem:
        error = problem
    context: dict[str, Any] = {
        "organization": organization,
        "study": study,
        "values": values,
        "error": error,
        "filters": filters,
        "quality_choices": exports.QUALITY_CHOICES,
        "gold_choices": exports.GOLD_CHOICES,
        **_jobs_context(study),
    }
    if filters is not None:
        params = filters.as_params()
        query = urlencode(params)
        context["params"] = params
        context["downloads"] = [
            (ExportFormat(value).label, f"{reverse(route, args=[study.pk])}?{query}")
            for value, route in DOWNLOAD_ROUTES.items()
        ]
    return render(request, "evaluations/study_exports.html", context, status=400 if error else 200)


def _job_create(request: HttpRequest, organization: Organization, study: Study) -> HttpResponse:
    values = _filter_values(request.POST)
    try:
        exports.export_job_create(
            study=study,
            actor=request.user,  # type: ignore[arg-type]
            format=request.POST.get("format", ""),
            filters=values,
        )
    except ApplicationError as error:
        messages.error(request, f"No file was prepared: {error.message}")
    else:
        messages.success(request, "Preparing the file: it appears under “Prepared files” when it is ready.")
    return redirect(_page_url(study, organization, urlencode(values)))


@require_GET
@area_required(CLIENT_AREA)
def study_exports_jobs(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    """The prepared files alone: the exports page polls it (htmx) while a job runs."""
    organization, study = _client_study(request, slug, study_id)
    context = {"organization": organization, "study": study, **_jobs_context(study)}
    return render(request, "evaluations/exports/_jobs.html", context)


@require_GET
@area_required(CLIENT_AREA)
def study_export_download(request: HttpRequest, slug: str, study_id: int, job_id: uuid.UUID) -> HttpResponse:
    _, study = _client_study(request, slug, study_id)
    job = exports.export_job_for(study, job_id)
    if job is None or job.status != ExportStatus.DONE:
        raise Http404("No such file.")
    return export_job_file_response(study, job)
