"""Client pages of a provider's organization: submit systems to the public leaderboards, upload their responses.

The services decide who may do what (staff, or an owner or member of the provider's organization); the
pages only hide the forms from whom the services would refuse. Another provider's submission is a 404.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crowdplatform.accounts.access import CLIENT_AREA, area_required, organization_for
from crowdplatform.accounts.models import Organization
from crowdplatform.core.errors import ApplicationError
from crowdplatform.core.forms import form_add_application_error
from crowdplatform.integrity import provider_pages, services
from crowdplatform.integrity.models import LicenseClass, Provider, PublicLeaderboard, Submission
from crowdplatform.integrity.selectors import submission_status
from evaluations.item_import import ItemImportError, LineError

MISSING_PER_PAGE = 100
EXAMPLE_LINES = 2


class SubmissionForm(forms.Form):
    name = forms.CharField(
        max_length=services.MAX_NAME,
        label="System name",
        help_text="Its public name; for a pre-release variant, the codename it is shown under.",
    )
    license_class = forms.ChoiceField(choices=LicenseClass.choices, label="License class")
    prerelease = forms.BooleanField(
        required=False,
        label="Pre-release variant",
        help_text="Unnamed variants count against the cap per period; a released, named system does not.",
    )
    notes = forms.CharField(
        required=False,
        label="Version notes",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Checkpoint, settings, date: anything that identifies this variant.",
    )


class ResponsesUploadForm(forms.Form):
    file = forms.FileField(
        label="Responses file (JSONL)",
        help_text='One {"prompt_id", "response"} per line; every line valid or nothing is added.',
    )


def _submission_form(leaderboard: PublicLeaderboard, data: Any = None) -> SubmissionForm:
    # One form per leaderboard on the same page: ids must differ, the field names need not.
    return SubmissionForm(data, auto_id=f"id_{leaderboard.slug}_%s")


def _organization_and_provider(request: HttpRequest, slug: str) -> tuple[Organization, Provider | None]:
    organization = organization_for(request.user, slug=slug)  # type: ignore[arg-type]
    return organization, provider_pages.provider_of(organization)


def _provider_required(provider: Provider | None) -> Provider:
    if provider is None:
        raise Http404("This organization is not a provider.")
    return provider


def _page_url(organization: Organization, leaderboard: PublicLeaderboard | None = None) -> str:
    url = reverse("client:provider", args=[organization.slug])
    return f"{url}#lb-{leaderboard.slug}" if leaderboard is not None else url


def _page_context(
    request: HttpRequest,
    organization: Organization,
    provider: Provider | None,
    *,
    failed: tuple[PublicLeaderboard, SubmissionForm] | None = None,
    error: str = "",
) -> dict[str, Any]:
    context: dict[str, Any] = {"organization": organization, "provider": provider, "error": error}
    if provider is None:
        return context
    panels = provider_pages.provider_leaderboards(provider, timezone.now())
    # The forms show where the services would accept them: the very rule, so the two cannot disagree.
    context["can_submit"] = services.may_submit_for(request.user, provider)  # type: ignore[arg-type]
    context["panels"] = [
        (
            panel,
            failed[1]
            if failed is not None and failed[0].pk == panel.leaderboard.pk
            else _submission_form(panel.leaderboard),
        )
        for panel in panels
    ]
    return context


@require_GET
@area_required(CLIENT_AREA)
def provider_page(request: HttpRequest, slug: str) -> HttpResponse:
    organization, provider = _organization_and_provider(request, slug)
    return render(request, "integrity/provider.html", _page_context(request, organization, provider))


@require_POST
@area_required(CLIENT_AREA)
def provider_submit(request: HttpRequest, slug: str, lb_slug: str) -> HttpResponse:
    organization, provider = _organization_and_provider(request, slug)
    provider = _provider_required(provider)
    leaderboard = get_object_or_404(PublicLeaderboard, slug=lb_slug)
    form = _submission_form(leaderboard, request.POST)
    status, error = 400, "Nothing was registered: correct the form."
    if form.is_valid():
        try:
            submission = services.submission_register(
                leaderboard=leaderboard, provider=provider, actor=request.user, **form.cleaned_data
            )
        except PermissionDenied as refusal:
            status, error = 403, str(refusal)
        except ApplicationError as refusal:
            form_add_application_error(form, refusal)
            status, error = refusal.status, f"Nothing was registered: {refusal.message}"
        else:
            messages.success(
                request,
                f"Registered {submission.system.name} on {leaderboard.name}; its testing window ends on "
                f"{submission.window_ends_at:%Y-%m-%d %H:%M} UTC. Upload its responses next.",
            )
            return redirect(_page_url(organization, leaderboard))
    context = _page_context(request, organization, provider, failed=(leaderboard, form), error=error)
    return render(request, "integrity/provider.html", context, status=status)


@require_GET
@area_required(CLIENT_AREA)
def provider_prompts(request: HttpRequest, slug: str, lb_slug: str) -> StreamingHttpResponse:
    """The leaderboard's prompts to answer, as a JSONL file: every provider gets the same file."""
    _, provider = _organization_and_provider(request, slug)
    _provider_required(provider)
    leaderboard = get_object_or_404(PublicLeaderboard, slug=lb_slug)
    response = StreamingHttpResponse(provider_pages.prompts_jsonl(leaderboard), content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="{leaderboard.slug}-prompts.jsonl"'
    return response


@require_http_methods(["GET", "POST"])
@area_required(CLIENT_AREA)
def provider_responses(request: HttpRequest, slug: str, submission_id: int) -> HttpResponse:
    organization, provider = _organization_and_provider(request, slug)
    submission = provider_pages.provider_submission(_provider_required(provider), submission_id)
    if submission is None:
        raise Http404("No such submission.")
    if request.method != "POST":
        return _responses_page(request, organization, submission, ResponsesUploadForm())
    form = ResponsesUploadForm(request.POST, request.FILES)
    status, error, upload_errors = 400, "", []
    if form.is_valid():
        try:
            result = services.submission_responses_upload(
                submission=submission, actor=request.user, data=form.cleaned_data["file"].read()
            )
        except ItemImportError as refusal:
            upload_errors = refusal.errors
        except PermissionDenied as refusal:
            status, error = 403, str(refusal)
        except ApplicationError as refusal:
            status, error = refusal.status, f"No responses were added: {refusal.message}"
        else:
            messages.success(request, f"Added {result.created} responses, {result.item_pairs} new item pairs.")
            return redirect(reverse("client:provider_responses", args=[organization.slug, submission.pk]))
    return _responses_page(
        request, organization, submission, form, status=status, error=error, upload_errors=upload_errors
    )


def _responses_page(
    request: HttpRequest,
    organization: Organization,
    submission: Submission,
    form: ResponsesUploadForm,
    *,
    status: int = 200,
    error: str = "",
    upload_errors: list[LineError] | None = None,
) -> HttpResponse:
    missing = Paginator(provider_pages.missing_prompt_ids(submission), MISSING_PER_PAGE)
    page = missing.get_page(request.GET.get("page"))
    context = {
        "organization": organization,
        "submission": submission,
        "status": submission_status(submission),
        "responses": provider_pages.submission_rows([submission])[0].responses,
        "can_submit": services.may_submit_for(request.user, submission.provider),  # type: ignore[arg-type]
        "form": form,
        "error": error,
        "upload_errors": upload_errors or [],
        "missing_total": missing.count,
        "page_obj": page,
        "example": [
            json.dumps({"prompt_id": prompt_id, "response": "…"}, ensure_ascii=False)
            for prompt_id in list(page.object_list)[:EXAMPLE_LINES]
        ],
    }
    return render(request, "integrity/provider_responses.html", context, status=status)
