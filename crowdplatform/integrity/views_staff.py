"""Staff pages that run public leaderboards: open one, register providers, publish the policy's
next version, register submissions on a provider's behalf, and run the publishing now.

Every change goes through `crowdplatform.integrity.services` (the publishing run through
`publishing.publishing_run`, as the beat task runs it); reads come from `crowdplatform.integrity.staff_pages`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crowdplatform.accounts.access import STAFF_AREA, area_required
from crowdplatform.accounts.models import Organization
from crowdplatform.core.errors import ApplicationError
from crowdplatform.core.forms import form_add_application_error
from crowdplatform.integrity import publishing, services, staff_pages
from crowdplatform.integrity.models import LicenseClass, Provider, PublicLeaderboard
from crowdplatform.integrity.services import PARAMETER_MAXIMUM, PARAMETER_MINIMUMS, PARAMETERS
from evaluations.models import Study

T = TypeVar("T")

PROVIDERS_PER_PAGE = 50
PARAMETER_LABELS: dict[str, str] = {
    "period_days": "Period (days)",
    "prerelease_cap": "Pre-release cap",
    "window_days": "Testing window (days)",
    "provisional_votes": "Provisional below (votes)",
    "retire_after_votes": "Retire after (votes)",
    "retire_newer_required": "Newer systems to retire",
}
PARAMETER_HELP: dict[str, str] = {
    "period_days": "Periods run back to back from the start; the cap counts and battles are released per period.",
    "prerelease_cap": "Pre-release (unnamed) variants each provider may test per period, the same for all; "
    "0 forbids them.",
    "window_days": "A submission's testing window; its result is published when the window ends.",
    "provisional_votes": "A published result with fewer votes is labelled provisional.",
    "retire_after_votes": "Retirement rule: a system with at least this many votes …",
    "retire_newer_required": "… and this many newer published systems of the same provider is retired.",
}


# --- Forms: they shape the input; the services judge it -------------------------------------------


def _parameter_field(name: str, initial: int | None) -> forms.IntegerField:
    minimum = PARAMETER_MINIMUMS[name]
    # The range is only a hint to the browser: the service checks it and names the field.
    return forms.IntegerField(
        label=PARAMETER_LABELS[name],
        help_text=f"{PARAMETER_HELP[name]} A whole number from {minimum} to {PARAMETER_MAXIMUM:,}.",
        initial=initial,
        widget=forms.NumberInput(attrs={"min": minimum, "max": PARAMETER_MAXIMUM}),
    )


def _model_default(name: str) -> int:
    return int(PublicLeaderboard._meta.get_field(name).default)


class StudyChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Study) -> str:  # type: ignore[override]
        return f"{obj.name} — {obj.organization.name} ({obj.get_status_display().lower()})"


class LeaderboardForm(forms.Form):
    study = StudyChoiceField(queryset=Study.objects.none(), empty_label="Choose a study")
    name = forms.CharField(max_length=200, help_text="Shown on the transparency report.")
    slug = forms.CharField(
        max_length=100, help_text="Its address in the API and the released files: lower-case letters, digits, hyphens."
    )
    starts_at = forms.DateTimeField(
        label="Starts (UTC)",
        help_text="The start of the first period, in UTC; submissions are taken from then on.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    policy_text = forms.CharField(
        label="Policy, first version",
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Published on the transparency report with the parameters; later versions keep it as history.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["study"].queryset = staff_pages.studies_offered()  # type: ignore[attr-defined]
        for name in PARAMETERS:
            self.fields[name] = _parameter_field(name, _model_default(name))
        self.order_fields(["study", "name", "slug", "starts_at", *PARAMETERS, "policy_text"])

    def clean_starts_at(self) -> datetime:
        # The field reads the wall time in the active time zone; the label promises UTC.
        value: datetime = self.cleaned_data["starts_at"]
        return timezone.make_naive(value).replace(tzinfo=UTC)


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="The lab's public name, as the transparency report shows it.")
    website = forms.CharField(required=False, max_length=200, help_text="Optional: http:// or https://.")
    organization = forms.ModelChoiceField(
        queryset=Organization.objects.none(),
        required=False,
        empty_label="None: staff submit its systems",
        label="Client organization",
        help_text="Optional: its owners and members may then submit the provider's systems themselves. "
        "Listed: organizations that are not a provider yet and run no leaderboard's study.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = staff_pages.organizations_offered()  # type: ignore[attr-defined]


class PolicyForm(forms.Form):
    text = forms.CharField(
        label="Policy text",
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="The whole text of the new version; the versions before stay published.",
    )

    def __init__(self, *args: Any, current: dict[str, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.current = current
        for name in PARAMETERS:
            self.fields[name] = _parameter_field(name, current[name])

    def parameter_changes(self) -> dict[str, int]:
        """Only the parameters that differ from the leaderboard's: the service records what changed."""
        return {name: self.cleaned_data[name] for name in PARAMETERS if self.cleaned_data[name] != self.current[name]}


class SubmissionForm(forms.Form):
    provider = forms.ModelChoiceField(queryset=Provider.objects.none(), empty_label="Choose a provider")
    name = forms.CharField(
        max_length=100, label="System name", help_text="Its public name; for a pre-release variant, its codename."
    )
    license_class = forms.ChoiceField(choices=LicenseClass.choices, label="License class")
    prerelease = forms.BooleanField(required=False, label="Pre-release variant")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="Optional.")

    def __init__(self, *args: Any, cap: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["provider"].queryset = Provider.objects.order_by("name")  # type: ignore[attr-defined]
        prerelease = self.fields["prerelease"]
        prerelease.help_text = f"Counts against the cap of {cap} per provider per period, the same for every provider."


def _submitted(form: forms.Form, act: Callable[[dict[str, Any]], T]) -> tuple[T | None, int]:
    """(result, 200) when the form is valid and the service agrees; else (None, the status to answer
    with: 400, or the service's own, e.g. 409) with the errors shown on the form."""
    if not form.is_valid():
        return None, 400
    try:
        return act(form.cleaned_data), 200
    except ApplicationError as error:
        form_add_application_error(form, error)
        return None, error.status


# --- The leaderboards and providers page ----------------------------------------------------------


@require_http_methods(["GET", "POST"])
@area_required(STAFF_AREA)
def staff_leaderboards(request: HttpRequest) -> HttpResponse:
    form = LeaderboardForm(request.POST or None)
    if request.method != "POST":
        return _leaderboards_page(request, leaderboard_form=form)
    leaderboard, status = _submitted(
        form,
        lambda data: services.leaderboard_create(
            study=data["study"],
            name=data["name"],
            slug=data["slug"],
            starts_at=data["starts_at"],
            policy_text=data["policy_text"],
            actor=request.user,  # type: ignore[arg-type]
            **{name: data[name] for name in PARAMETERS},
        ),
    )
    if leaderboard is None:
        return _leaderboards_page(request, leaderboard_form=form, status=status)
    messages.success(
        request,
        f"Opened “{leaderboard.name}” on {leaderboard.study.name}: the study is public and sampled with the "
        "active policy for every system; policy version 1 is published.",
    )
    return redirect("staff:leaderboard", slug=leaderboard.slug)


@require_POST
@area_required(STAFF_AREA)
def staff_provider_register(request: HttpRequest) -> HttpResponse:
    form = ProviderForm(request.POST)
    provider, status = _submitted(
        form,
        lambda data: services.provider_register(
            name=data["name"],
            website=data["website"],
            organization=data["organization"],
            actor=request.user,  # type: ignore[arg-type]
        ),
    )
    if provider is None:
        return _leaderboards_page(request, provider_form=form, status=status)
    who = f"members of {provider.organization.name} or staff" if provider.organization else "staff"
    messages.success(request, f"Registered the provider “{provider.name}”: {who} may submit its systems.")
    return redirect(reverse("staff:leaderboards") + "#providers")


def _leaderboards_page(
    request: HttpRequest,
    *,
    leaderboard_form: LeaderboardForm | None = None,
    provider_form: ProviderForm | None = None,
    status: int = 200,
) -> HttpResponse:
    leaderboard_form = leaderboard_form or LeaderboardForm()
    context = {
        "rows": staff_pages.leaderboard_rows(),
        "parameter_labels": list(PARAMETER_LABELS.values()),
        "leaderboard_form": leaderboard_form,
        "studies_offered": leaderboard_form.fields["study"].queryset.exists(),  # type: ignore[attr-defined]
        "withheld": staff_pages.studies_withheld(),
        "providers": Paginator(staff_pages.providers_listed(), PROVIDERS_PER_PAGE).get_page(request.GET.get("page")),
        "provider_form": provider_form or ProviderForm(),
    }
    return render(request, "integrity/staff_leaderboards.html", context, status=status)


# --- One leaderboard ------------------------------------------------------------------------------


def _leaderboard(slug: str) -> PublicLeaderboard:
    return get_object_or_404(PublicLeaderboard.objects.select_related("study__organization"), slug=slug)


@require_GET
@area_required(STAFF_AREA)
def staff_leaderboard(request: HttpRequest, slug: str) -> HttpResponse:
    return _leaderboard_page(request, _leaderboard(slug))


@require_POST
@area_required(STAFF_AREA)
def staff_policy_publish(request: HttpRequest, slug: str) -> HttpResponse:
    leaderboard = _leaderboard(slug)
    before = services.parameters_of(leaderboard)
    form = PolicyForm(request.POST, current=before)
    version, status = _submitted(
        form,
        lambda data: services.policy_publish(
            leaderboard=leaderboard,
            text=data["text"],
            actor=request.user,  # type: ignore[arg-type]
            **form.parameter_changes(),
        ),
    )
    if version is None:
        return _leaderboard_page(request, leaderboard, policy_form=form, status=status)
    changed = [
        f"{PARAMETER_LABELS[name].lower()} {before[name]} → {value}"
        for name, value in version.parameters.items()
        if before.get(name) != value
    ]
    summary = f"changed: {'; '.join(changed)}" if changed else "the parameters are unchanged"
    messages.success(request, f"Published policy version {version.number} ({summary}).")
    return redirect(reverse("staff:leaderboard", args=[leaderboard.slug]) + "#policy")


@require_POST
@area_required(STAFF_AREA)
def staff_submission_register(request: HttpRequest, slug: str) -> HttpResponse:
    leaderboard = _leaderboard(slug)
    form = SubmissionForm(request.POST, cap=leaderboard.prerelease_cap)
    submission, status = _submitted(
        form,
        lambda data: services.submission_register(
            leaderboard=leaderboard,
            provider=data["provider"],
            name=data["name"],
            license_class=data["license_class"],
            prerelease=data["prerelease"],
            notes=data["notes"],
            actor=request.user,  # type: ignore[arg-type]
        ),
    )
    if submission is None:
        return _leaderboard_page(request, leaderboard, submission_form=form, status=status)
    messages.success(
        request,
        f"Registered {submission.system.name} for {submission.provider.name}; its testing window ends on "
        f"{submission.window_ends_at:%Y-%m-%d %H:%M} UTC, when its result is published.",
    )
    return redirect(reverse("staff:leaderboard", args=[leaderboard.slug]) + "#submissions")


@require_POST
@area_required(STAFF_AREA)
def staff_publish_now(request: HttpRequest, slug: str) -> HttpResponse:
    """Run the periodic publishing now, as the beat task does: for every leaderboard at once,
    idempotently, recorded with who asked."""
    leaderboard = _leaderboard(slug)
    try:
        done = publishing.publishing_run(actor=request.user)  # type: ignore[arg-type]
    except ApplicationError as error:
        messages.error(request, f"Publishing stopped: {error.message}")
    else:
        messages.success(request, publishing_summary(done))
    return redirect(reverse("staff:leaderboard", args=[leaderboard.slug]) + "#publishing")


def publishing_summary(done: dict[str, int]) -> str:
    broken = done.get("releases_broken", 0)
    warning = f" {broken} released file{'s do' if broken != 1 else ' does'} not verify: see Releases." if broken else ""
    if not any(done[name] for name in ("results", "retired", "releases")):
        return "Publishing ran for every leaderboard: nothing was due, nothing new was written." + warning
    results, retired, releases = done["results"], done["retired"], done["releases"]
    return (
        f"Publishing ran for every leaderboard: {results} result{'s' if results != 1 else ''} published or "
        f"refreshed, {retired} system{'s' if retired != 1 else ''} retired, {releases} "
        f"period{'s' if releases != 1 else ''} released." + warning
    )


def _leaderboard_page(
    request: HttpRequest,
    leaderboard: PublicLeaderboard,
    *,
    policy_form: PolicyForm | None = None,
    submission_form: SubmissionForm | None = None,
    status: int = 200,
) -> HttpResponse:
    current = services.parameters_of(leaderboard)
    now = timezone.now()
    page, submissions = staff_pages.submissions_page(leaderboard, request.GET)
    context = {
        "leaderboard": leaderboard,
        "parameter_labels": list(PARAMETER_LABELS.values()),
        "parameters": [(PARAMETER_LABELS[name], value) for name, value in current.items()],
        "policy": staff_pages.policy_history(leaderboard),
        "policy_form": policy_form
        or PolicyForm(initial={"text": staff_pages.current_policy_text(leaderboard)}, current=current),
        "submissions": submissions,
        "submission_count": leaderboard.submissions.count(),
        "previous_url": page.previous_query,
        "next_url": page.next_query,
        "submission_form": submission_form or SubmissionForm(cap=leaderboard.prerelease_cap),
        "has_providers": Provider.objects.exists(),
        "releases": staff_pages.release_rows(leaderboard),
        "now": now,
        "opens_later": leaderboard.starts_at > now,
    }
    return render(request, "integrity/staff_leaderboard.html", context, status=status)
