from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseServerError
from django.shortcuts import redirect, render
from django.template import loader
from django.utils import timezone

from crowdplatform.accounts.access import STAFF_AREA, area_required, home_url_for
from crowdplatform.accounts.models import ApiKey, Organization
from crowdplatform.core.api_errors import error_json_response
from crowdplatform.core.keyset import keyset_page
from crowdplatform.core.models import AuditEvent
from crowdplatform.core.selectors import AuditFilters, audit_actions, audit_events


def home(request: HttpRequest) -> HttpResponse:
    """Logged-in users go to their own area; everyone else sees what this is."""
    if request.user.is_authenticated:
        return redirect(home_url_for(request.user))  # type: ignore[arg-type]
    return render(request, "core/landing.html")


@area_required(STAFF_AREA)
def staff_dashboard(request: HttpRequest) -> HttpResponse:
    users_by_type = dict(
        get_user_model().objects.filter(is_staff=False).values_list("account_type").annotate(n=Count("id"))
    )
    context = {
        "raters": users_by_type.get("rater", 0),
        "clients": users_by_type.get("client", 0),
        "staff": get_user_model().objects.filter(is_staff=True).count(),
        "organizations": Organization.objects.count(),
        "active_api_keys": ApiKey.objects.filter(revoked_at__isnull=True).count(),
        "events_last_day": AuditEvent.objects.filter(created_at__gte=timezone.now() - timedelta(days=1)).count(),
        "recent_events": AuditEvent.objects.order_by("-id")[:10],
    }
    return render(request, "core/staff_dashboard.html", context)


@area_required(STAFF_AREA)
def staff_audit_log(request: HttpRequest) -> HttpResponse:
    organization = request.GET.get("organization", "")
    filters = AuditFilters(
        action=request.GET.get("action", "").strip(),
        actor=request.GET.get("actor", "").strip(),
        organization_id=int(organization) if organization.isdigit() else None,
        target_type=request.GET.get("target_type", "").strip(),
        target_id=request.GET.get("target_id", "").strip(),
    )
    page = keyset_page(audit_events(filters), request.GET)
    context = {
        "page": page,
        "filters": filters,
        "actions": audit_actions(),
        "organizations": Organization.objects.order_by("name").only("id", "name"),
    }
    return render(request, "core/staff_audit_log.html", context)


# --- Error handlers: JSON under /api/, pages elsewhere ------------------------------------------


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def error_400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return error_json_response(status=400, message="Bad request.")
    return render(request, "400.html", status=400)


def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return error_json_response(status=403, message=str(exception) or "Permission denied.")
    return render(request, "403.html", {"exception": str(exception or "")}, status=403)


def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return error_json_response(status=404, message="Not found.")
    return render(request, "404.html", status=404)


def error_500(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return error_json_response(status=500, message="Server error. It has been logged.")
    # No context processors here: whatever failed may be what they would call.
    return HttpResponseServerError(loader.get_template("500.html").render())
