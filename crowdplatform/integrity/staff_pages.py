"""Reads for the staff pages that run public leaderboards (`crowdplatform.integrity.views_staff`).

Only reads: every change those pages make goes through `crowdplatform.integrity.services` or
`crowdplatform.integrity.publishing.publishing_run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import QueryDict

from crowdplatform.accounts.models import Organization
from crowdplatform.core.keyset import KeysetPage, keyset_page
from crowdplatform.integrity.models import (
    PeriodRelease,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    PublishedResult,
    Submission,
)
from crowdplatform.integrity.selectors import latest_results, release_chain_verify, submission_status
from crowdplatform.integrity.services import PARAMETERS, parameters_of
from evaluations.models import Study, StudyStatus

# A paused study could run one (the service allows it), but staff should resume it first: a
# leaderboard opening on a study that hands out no tasks would publish results without votes.
OFFERED_STATUSES = (StudyStatus.DRAFT, StudyStatus.LIVE)
CLOSED_STATUSES = (StudyStatus.COMPLETED, StudyStatus.ARCHIVED)
SUBMISSIONS_PER_PAGE = 50


# --- The leaderboards page ----------------------------------------------------------------------


@dataclass(frozen=True)
class LeaderboardRow:
    leaderboard: PublicLeaderboard
    parameters: list[int]  # in the order of services.PARAMETERS
    policy_version: int | None
    submissions: int
    last_release: PeriodRelease | None


def _per_leaderboard_count(queryset: QuerySet) -> Coalesce:
    """A subquery counting `queryset`'s rows of the outer leaderboard: no join multiplies the rows."""
    counted = queryset.filter(leaderboard=OuterRef("pk")).order_by().values("leaderboard").annotate(n=Count("pk"))
    return Coalesce(Subquery(counted.values("n"), output_field=IntegerField()), 0)


def leaderboard_rows() -> list[LeaderboardRow]:
    """Every public leaderboard with its parameters, current policy version, submissions and last release."""
    latest_version = PolicyVersion.objects.filter(leaderboard=OuterRef("pk")).order_by("-number")
    latest_release = PeriodRelease.objects.filter(leaderboard=OuterRef("pk")).order_by("-period_start")
    leaderboards = list(
        PublicLeaderboard.objects.select_related("study__organization")
        .annotate(
            submission_count=_per_leaderboard_count(Submission.objects.all()),
            policy_number=Subquery(latest_version.values("number")[:1]),
            last_release_id=Subquery(latest_release.values("pk")[:1]),
        )
        .order_by("name", "pk")
    )
    releases = PeriodRelease.objects.in_bulk([lb.last_release_id for lb in leaderboards if lb.last_release_id])
    return [
        LeaderboardRow(
            leaderboard=leaderboard,
            parameters=list(parameters_of(leaderboard).values()),
            policy_version=leaderboard.policy_number,
            submissions=leaderboard.submission_count,
            last_release=releases.get(leaderboard.last_release_id),
        )
        for leaderboard in leaderboards
    ]


def _owned_by_a_provider() -> Exists:
    # The organization running a leaderboard's study sees its votes first: it may not compete on it.
    return Exists(Provider.objects.filter(organization=OuterRef("organization")))


def studies_offered() -> QuerySet[Study]:
    """The studies a new leaderboard may run over: live or draft, without one already, and not
    owned by an organization that is a provider."""
    return (
        Study.objects.filter(status__in=OFFERED_STATUSES, public_leaderboard__isnull=True)
        .exclude(_owned_by_a_provider())
        .select_related("organization")
        .order_by("organization__name", "name", "pk")
    )


@dataclass(frozen=True)
class StudiesWithheld:
    """Why the other studies are not offered, as counts."""

    running_leaderboard: int
    paused: int
    closed: int  # completed or archived
    provider_owned: int  # live or draft, but their organization is a provider

    @property
    def total(self) -> int:
        return self.running_leaderboard + self.paused + self.closed + self.provider_owned


def studies_withheld() -> StudiesWithheld:
    free = Q(public_leaderboard__isnull=True)
    counts = Study.objects.aggregate(
        running=Count("pk", filter=Q(public_leaderboard__isnull=False)),
        paused=Count("pk", filter=free & Q(status=StudyStatus.PAUSED)),
        closed=Count("pk", filter=free & Q(status__in=CLOSED_STATUSES)),
        provider_owned=Count("pk", filter=free & Q(status__in=OFFERED_STATUSES) & Q(_owned_by_a_provider())),
    )
    return StudiesWithheld(
        running_leaderboard=counts["running"],
        paused=counts["paused"],
        closed=counts["closed"],
        provider_owned=counts["provider_owned"],
    )


def providers_listed() -> QuerySet[Provider]:
    """Every provider with its organization and `submission_count` (on every leaderboard)."""
    return (
        Provider.objects.select_related("organization")
        .annotate(submission_count=Count("submissions"))
        .order_by("name", "pk")
    )


def organizations_offered() -> QuerySet[Organization]:
    """Client organizations that may become a provider: not one already, and running no leaderboard's study."""
    runs_a_leaderboard = Exists(PublicLeaderboard.objects.filter(study__organization=OuterRef("pk")))
    return Organization.objects.filter(provider__isnull=True).exclude(runs_a_leaderboard).order_by("name", "pk")


# --- One leaderboard's page ---------------------------------------------------------------------


@dataclass(frozen=True)
class ParameterValue:
    value: int | None  # None: the version did not record it
    changed: bool  # differs from the version before


@dataclass(frozen=True)
class PolicyRow:
    number: int
    text: str
    effective_at: datetime
    created_by: str
    parameters: list[ParameterValue]  # in the order of services.PARAMETERS


def policy_history(leaderboard: PublicLeaderboard) -> list[PolicyRow]:
    """Every policy version, newest first, each parameter marked where it changed from the version before."""
    rows: list[PolicyRow] = []
    previous: dict[str, int] | None = None
    for version in leaderboard.policy_versions.select_related("created_by").order_by("number"):
        recorded = version.parameters or {}
        rows.append(
            PolicyRow(
                number=version.number,
                text=version.text,
                effective_at=version.effective_at,
                created_by=version.created_by.email if version.created_by else "",
                parameters=[
                    ParameterValue(
                        value=recorded.get(name),
                        changed=previous is not None and recorded.get(name) != previous.get(name),
                    )
                    for name in PARAMETERS
                ],
            )
        )
        previous = recorded
    return rows[::-1]


def current_policy_text(leaderboard: PublicLeaderboard) -> str:
    latest = leaderboard.policy_versions.order_by("-number").values_list("text", flat=True).first()
    return latest or ""


@dataclass(frozen=True)
class SubmissionRow:
    submission: Submission
    status: str  # "testing", "published" or "retired", as the transparency report says
    result: PublishedResult | None  # the latest published one


def submissions_page(
    leaderboard: PublicLeaderboard, params: QueryDict
) -> tuple[KeysetPage[Submission], list[SubmissionRow]]:
    """A page of the leaderboard's submissions, newest first, each with its latest published result."""
    page = keyset_page(
        Submission.objects.filter(leaderboard=leaderboard).select_related("provider", "system"),
        params,
        size=SUBMISSIONS_PER_PAGE,
    )
    latest, _ = latest_results(list(page.items))
    rows = [SubmissionRow(s, submission_status(s), latest.get(s.pk)) for s in page.items]
    return page, rows


@dataclass(frozen=True)
class ReleaseRow:
    release: PeriodRelease
    verified: bool  # its file and chain link recomputed just now
    problem: str


def release_rows(leaderboard: PublicLeaderboard) -> list[ReleaseRow]:
    """The leaderboard's releases, newest first, each checked as the transparency report checks it."""
    checks = {check.period_start: check for check in release_chain_verify(leaderboard=leaderboard).releases}
    releases = PeriodRelease.objects.filter(leaderboard=leaderboard).order_by("-period_start")
    return [
        ReleaseRow(release, checks[release.period_start].ok, checks[release.period_start].reason)
        for release in releases
    ]
