"""Reads behind a provider's own pages: its leaderboards, cap usage, submissions and missing responses.

Reads only; every change goes through `crowdplatform.integrity.services`. The cap usage is counted the
way `services.submission_register` counts it (by registration time within the period), so what the page
says is left is what the service will accept.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from crowdplatform.accounts.models import Organization
from crowdplatform.integrity.models import Provider, PublicLeaderboard, PublishedResult, Submission
from crowdplatform.integrity.selectors import latest_results, leaderboard_prompts, submission_status
from crowdplatform.integrity.services import period_bounds, prerelease_used
from evaluations.models import Item, Response

SUBMISSIONS_SHOWN = 50  # per leaderboard, newest first; the API lists every one


def provider_of(organization: Organization) -> Provider | None:
    """The provider this organization is, if staff registered it as one."""
    return Provider.objects.filter(organization=organization).first()


@dataclass(frozen=True)
class CapUsage:
    """Pre-release variants the provider registered in the period containing `at`, against the cap."""

    used: int
    cap: int
    period_start: datetime
    period_end: datetime
    started: bool  # False before the leaderboard's first period: nothing can be registered yet

    @property
    def left(self) -> int:
        return max(self.cap - self.used, 0)

    @property
    def reached(self) -> bool:
        return self.used >= self.cap


def cap_usage(leaderboard: PublicLeaderboard, provider: Provider, at: datetime) -> CapUsage:
    started = at >= leaderboard.starts_at
    period_start, period_end = period_bounds(leaderboard, at if started else leaderboard.starts_at)
    used = prerelease_used(leaderboard=leaderboard, provider=provider, period_start=period_start, period_end=period_end)
    return CapUsage(
        used=used,
        cap=leaderboard.prerelease_cap,
        period_start=period_start,
        period_end=period_end,
        started=started,
    )


@dataclass(frozen=True)
class SubmissionRow:
    submission: Submission
    status: str
    result: PublishedResult | None  # the latest published one
    responses: int  # the system's responses in the leaderboard's study


@dataclass(frozen=True)
class LeaderboardPanel:
    leaderboard: PublicLeaderboard
    usage: CapUsage
    submissions: list[SubmissionRow]  # at most SUBMISSIONS_SHOWN, newest first
    submissions_total: int


def provider_leaderboards(provider: Provider, at: datetime) -> list[LeaderboardPanel]:
    """Every public leaderboard, with the provider's cap usage now and its submissions on it."""
    panels = []
    for leaderboard in PublicLeaderboard.objects.order_by("name"):
        submissions = Submission.objects.filter(leaderboard=leaderboard, provider=provider)
        shown = list(submissions.select_related("system").order_by("-registered_at", "-id")[:SUBMISSIONS_SHOWN])
        panels.append(
            LeaderboardPanel(
                leaderboard=leaderboard,
                usage=cap_usage(leaderboard, provider, at),
                submissions=submission_rows(shown),
                submissions_total=submissions.count(),
            )
        )
    return panels


def submission_rows(submissions: list[Submission]) -> list[SubmissionRow]:
    """Each submission with its status, latest published result and responses count (three queries)."""
    latest, _ = latest_results(submissions)
    responses = _responses_per_system([submission.system_id for submission in submissions])
    return [
        SubmissionRow(
            submission=submission,
            status=submission_status(submission),
            result=latest.get(submission.pk),
            responses=responses.get(submission.system_id, 0),
        )
        for submission in submissions
    ]


def _responses_per_system(system_ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    rows = Response.objects.filter(system_id__in=system_ids).values("system_id").annotate(n=Count("id"))
    for row in rows:
        counts[row["system_id"]] = row["n"]
    return counts


def provider_submission(provider: Provider, submission_id: int) -> Submission | None:
    """One of the provider's submissions; None for any other id, whoever's it is."""
    return (
        Submission.objects.select_related("leaderboard__study", "provider__organization", "system")
        .filter(pk=submission_id, provider=provider)
        .first()
    )


def missing_prompt_ids(submission: Submission) -> QuerySet[Item, str]:
    """The study's prompt ids the system has not answered yet, in upload order. Gold items are left
    out: systems never answer them. A response counts by system or by its label, as the upload does."""
    system = submission.system
    answered = Response.objects.filter(item__study_id=submission.leaderboard.study_id).filter(
        Q(system=system) | Q(label=system.name)
    )
    return (
        Item.objects.filter(study_id=submission.leaderboard.study_id, is_gold=False)
        .exclude(pk__in=answered.values("item_id"))
        .order_by("id")
        .values_list("prompt_id", flat=True)
    )


def prompts_jsonl(leaderboard: PublicLeaderboard) -> Iterator[bytes]:
    """The leaderboard's prompts as JSONL lines `{"prompt_id", "prompt"}` (turns), in upload order,
    streamed from the database in chunks."""
    for prompt_id, prompt in leaderboard_prompts(leaderboard).values_list("prompt_id", "prompt").iterator(2000):
        yield json.dumps({"prompt_id": prompt_id, "prompt": prompt}, ensure_ascii=False).encode() + b"\n"
