"""The leaderboard pages: the client's (with the public/private switch) and the public one.

Both render the same template from `study_leaderboard`: the table, the SVG charts built in
`evaluations.svg`, a criterion switcher (`?criterion=`), the method and the vote totals. The public
page, /leaderboards/<id>/, needs no login and answers 404 unless the study's owners made it public.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from crowdplatform.accounts.access import CLIENT_AREA, area_required, can_manage_organization
from crowdplatform.accounts.models import Organization
from crowdplatform.core.errors import ApplicationError
from evaluations import services
from evaluations.access import client_study_for
from evaluations.leaderboard import Leaderboard, public_study, study_leaderboard
from evaluations.models import Study
from evaluations.svg import IntervalEntry, rating_interval_chart, win_rate_heatmap

VISIBILITY_DONE = {
    True: "The leaderboard is public: anyone with its link can see it.",
    False: "The leaderboard is private again: only your organization sees it.",
}


def _client_study(request: HttpRequest, slug: str, study_id: int) -> tuple[Organization, Study]:
    return client_study_for(request.user, slug=slug, study_id=study_id)  # type: ignore[arg-type]


@require_GET
@area_required(CLIENT_AREA)
def study_leaderboard_page(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    organization, study = _client_study(request, slug, study_id)
    may_publish = can_manage_organization(request.user, organization)  # type: ignore[arg-type]
    return _render(request, study, organization=organization, may_publish=may_publish)


@require_GET
def public_leaderboard_page(request: HttpRequest, study_id: int) -> HttpResponse:
    return _render(request, public_study(study_id), organization=None, may_publish=False)


@require_POST
@area_required(CLIENT_AREA)
def study_visibility(request: HttpRequest, slug: str, study_id: int) -> HttpResponse:
    organization, study = _client_study(request, slug, study_id)
    page = reverse("client:study_leaderboard", args=[organization.slug, study.pk])
    choice = request.POST.get("is_public")
    if choice not in ("1", "0"):
        messages.error(request, "Choose public or private.")
        return redirect(page)
    is_public = choice == "1"
    services.study_visibility_set(study=study, actor=request.user, is_public=is_public)  # PermissionDenied: 403
    messages.success(request, VISIBILITY_DONE[is_public])
    return redirect(page)


def _render(
    request: HttpRequest, study: Study, *, organization: Organization | None, may_publish: bool
) -> HttpResponse:
    criterion = request.GET.get("criterion") or None
    try:
        board = study_leaderboard(study=study, criterion=criterion)
    except ApplicationError:
        raise Http404("No such criterion.") from None  # only a hand-edited link names an unknown one
    context: dict[str, Any] = {
        "study": study,
        "organization": organization,
        "board": board,
        "rating_chart": rating_interval_chart(_interval_entries(board)),
        "heatmap": win_rate_heatmap(board.matrix_systems, board.win_rate, board.battles),
        "criterion_links": _criterion_links(request, board),
        "may_publish": may_publish,
        "public_url": request.build_absolute_uri(reverse("leaderboard_public", args=[study.pk])),
        "provisional_votes": settings.LEADERBOARD_PROVISIONAL_VOTES,
        "votes_counted": f"{board.votes_counted:,}",
        "votes_excluded": f"{board.votes_excluded:,}",
    }
    return render(request, "evaluations/leaderboard.html", context)


def _interval_entries(board: Leaderboard) -> list[IntervalEntry]:
    return [
        IntervalEntry(row.system, row.rating, row.ci_low, row.ci_high, row.provisional)  # type: ignore[arg-type]
        for row in board.rated
    ]


def _criterion_links(request: HttpRequest, board: Leaderboard) -> list[dict[str, Any]]:
    """An "Overall" link and one per criterion: the page's own path with `?criterion=` changed."""
    links = [{"label": "Overall", "url": request.path, "current": board.criterion is None}]
    links += [
        {"label": name, "url": f"{request.path}?{urlencode({'criterion': name})}", "current": board.criterion == name}
        for name in board.criteria
    ]
    return links
