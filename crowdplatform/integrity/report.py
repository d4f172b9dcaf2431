"""The public transparency report: what every provider got from each public leaderboard, side by side.

Reads only (selectors). Everything here is public by design: providers, their systems (pre-release
variants included) with registration dates and published scores, battles and sampling shares per day,
retirements with the rule applied, the data released to everyone, the policy and its history, and the
digest chain of the released battles. Rater identities, prompts and responses never appear.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.urls import reverse
from django.utils import timezone

from crowdplatform.integrity.models import (
    PeriodRelease,
    PolicyVersion,
    Provider,
    PublicLeaderboard,
    PublishedResult,
    Submission,
)
from crowdplatform.integrity.selectors import latest_results, release_chain_verify, submission_status
from crowdplatform.integrity.services import parameters_of
from evaluations.models import QualityStatus, Vote
from evaluations.selectors import sampling_report

REPORT_LOCK_SECONDS = 60  # longer than a recomputation takes; a crashed one frees it when it expires
REPORT_KEEP_SECONDS = 24 * 3600  # an outdated copy is kept to serve while the next one is computed


@dataclass(frozen=True)
class Result:
    published_at: datetime
    rating: float | None
    ci_low: float | None
    ci_high: float | None
    rank: int | None
    votes: int
    provisional: bool


@dataclass(frozen=True)
class DaySampling:
    """One system on one day: its share of battle appearances and the mean probability recorded for the
    pairs drawn with it (the sampling policy's own figure, published so anyone can check it is equal)."""

    date: date
    battles: int
    share: float
    mean_probability: float | None


@dataclass(frozen=True)
class SystemEntry:
    name: str
    license_class: str
    prerelease: bool
    registered_at: datetime
    window_ends_at: datetime
    status: str  # "testing", "published" or "retired"
    result: Result | None  # the latest published result
    results: int  # how many times its result was published (history kept)
    retired_at: datetime | None
    retirement_rule: str
    battles: int  # tasks drawn with it (voted or not)
    votes: int
    mean_probability: float | None  # over all its battles
    days: list[DaySampling]


@dataclass(frozen=True)
class DayShare:
    date: date
    share: float  # of all battle appearances that day (each battle has two systems)
    battles: int
    mean_probability: float | None  # the recorded sampling probability over its systems' appearances


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    slug: str
    systems: list[SystemEntry]
    prerelease_tested: int
    battles: int
    votes: int
    battle_share: float | None  # of all battle appearances on the leaderboard
    days: list[DayShare]
    released_battles_with_its_systems: int
    released_battles_given: int  # every provider gets every released battle: the same for all

    @property
    def retirements(self) -> list[SystemEntry]:
        return [system for system in self.systems if system.retired_at is not None]


@dataclass(frozen=True)
class ReleaseEntry:
    period_start: datetime
    period_end: datetime
    battles: int
    size_bytes: int
    file_sha256: str
    previous_chain_sha256: str
    chain_sha256: str
    published_at: datetime
    download_url: str
    verified: bool  # its file and chain link recomputed just now
    problem: str  # why not, in words


@dataclass(frozen=True)
class PolicyEntry:
    number: int
    text: str
    parameters: dict[str, Any]
    effective_at: datetime


@dataclass(frozen=True)
class LeaderboardReport:
    name: str
    slug: str
    study_id: int
    sampling: str
    parameters: dict[str, int]
    policy: list[PolicyEntry]  # oldest first; the last is in force
    providers: list[ProviderEntry]
    releases: list[ReleaseEntry]
    battles: int
    votes: int
    chain_verified: bool  # every release's file and link recompute
    days: list[date] = field(default_factory=list)
    computed_at: datetime | None = None  # the figures are as of then (the report is cached briefly)


def transparency_reports() -> list[LeaderboardReport]:
    """Every public leaderboard's report, each cached (see `transparency_report_cached`)."""
    return [transparency_report_cached(leaderboard=leaderboard) for leaderboard in PublicLeaderboard.objects.all()]


def transparency_report_cached(*, leaderboard: PublicLeaderboard) -> LeaderboardReport:
    """The report as computed at most TRANSPARENCY_REPORT_CACHE_SECONDS ago, and after the newest
    publication, release, retirement, submission and policy version (they are compared on every view,
    so those show at once; only the running counts may lag). A public page that aggregated the whole
    history on every view would be its own denial of service.

    One request recomputes an outdated report at a time (a lock in the cache); the others serve the
    copy at hand meanwhile, a few seconds late, instead of all recomputing at once."""
    state = hashlib.sha256(repr(_published_state(leaderboard)).encode()).hexdigest()
    key = f"integrity:report:{leaderboard.pk}"
    entry = cache.get(key)  # (published state, report)
    if entry is not None and entry[0] == state and _fresh(entry[1]):
        return entry[1]
    lock = f"{key}:computing"
    if entry is not None and not cache.add(lock, 1, REPORT_LOCK_SECONDS):
        return entry[1]
    try:
        report = transparency_report(leaderboard=leaderboard)
        cache.set(key, (state, report), REPORT_KEEP_SECONDS)
    finally:
        cache.delete(lock)
    return report


def _fresh(report: LeaderboardReport) -> bool:
    age = timezone.now() - (report.computed_at or datetime.min.replace(tzinfo=UTC))
    return age.total_seconds() < settings.TRANSPARENCY_REPORT_CACHE_SECONDS


def _published_state(leaderboard: PublicLeaderboard) -> tuple[Any, ...]:
    """What the report's published part depends on, in one query of small subqueries."""

    def newest(queryset: Any, field: str = "pk") -> Subquery:
        return Subquery(queryset.order_by(f"-{field}").values(field)[:1])

    own = {"leaderboard": OuterRef("pk")}
    state = (
        PublicLeaderboard.objects.filter(pk=leaderboard.pk)
        .annotate(
            newest_submission=newest(Submission.objects.filter(**own)),
            submission_count=Subquery(
                Submission.objects.filter(**own).order_by().values("leaderboard").annotate(n=Count("pk")).values("n")
            ),
            newest_result=newest(PublishedResult.objects.filter(submission__leaderboard=OuterRef("pk"))),
            newest_retirement=newest(Submission.objects.filter(**own, retired_at__isnull=False), "retired_at"),
            newest_release=newest(PeriodRelease.objects.filter(**own)),
            newest_policy=newest(PolicyVersion.objects.filter(**own)),
            study_sampling=F("study__sampling"),
        )
        .values_list(
            "newest_submission",
            "submission_count",
            "newest_result",
            "newest_retirement",
            "newest_release",
            "newest_policy",
            "study_sampling",
        )
        .get()
    )
    return (leaderboard.pk, leaderboard.slug, leaderboard.name, *parameters_of(leaderboard).values(), *state)


def transparency_report(*, leaderboard: PublicLeaderboard) -> LeaderboardReport:
    study = leaderboard.study
    submissions = list(Submission.objects.filter(leaderboard=leaderboard).select_related("system", "provider"))
    sampling = sampling_report(study)
    battles_by_system = {entry.name: entry.battles for entry in sampling.systems}
    probability_by_system = {entry.name: entry.mean_probability for entry in sampling.systems}
    days_by_system: dict[str, list[DaySampling]] = defaultdict(list)
    for day in sampling.days:
        for entry in day.systems:
            if entry.battles:
                days_by_system[entry.name].append(
                    DaySampling(day.date, entry.battles, entry.share, entry.mean_probability)
                )
    votes_by_system = _votes_by_system(study.pk)
    latest, counts = latest_results(submissions)
    releases = list(PeriodRelease.objects.filter(leaderboard=leaderboard).order_by("period_start"))
    chain = release_chain_verify(leaderboard=leaderboard)
    checks = {check.period_start: check for check in chain.releases}
    released_total = sum(release.battles for release in releases)
    released_with = _released_battles_by_system(study.pk, releases)
    appearances = 2 * sampling.battles
    by_provider: dict[int, list[Submission]] = defaultdict(list)
    for submission in submissions:
        by_provider[submission.provider_id].append(submission)
    providers = []
    for provider in Provider.objects.filter(pk__in=list(by_provider)).order_by("name"):
        own = by_provider[provider.pk]
        names = {submission.system.name for submission in own}
        battles = sum(battles_by_system.get(name, 0) for name in names)
        providers.append(
            ProviderEntry(
                name=provider.name,
                slug=provider.slug,
                systems=[
                    _system_entry(
                        s,
                        latest.get(s.pk),
                        counts.get(s.pk, 0),
                        battles=battles_by_system,
                        votes=votes_by_system,
                        probability=probability_by_system,
                        days=days_by_system,
                    )
                    for s in own
                ],
                prerelease_tested=sum(1 for submission in own if submission.prerelease),
                battles=battles,
                votes=sum(votes_by_system.get(name, 0) for name in names),
                battle_share=battles / appearances if appearances else None,
                days=[_day_share(day, names) for day in sampling.days],
                released_battles_with_its_systems=sum(released_with.get(name, 0) for name in names),
                released_battles_given=released_total,
            )
        )
    return LeaderboardReport(
        name=leaderboard.name,
        slug=leaderboard.slug,
        study_id=study.pk,
        sampling=study.sampling,
        parameters=parameters_of(leaderboard),
        policy=[
            PolicyEntry(number=v.number, text=v.text, parameters=v.parameters, effective_at=v.effective_at)
            for v in PolicyVersion.objects.filter(leaderboard=leaderboard).order_by("number")
        ],
        providers=providers,
        releases=[
            ReleaseEntry(
                period_start=release.period_start,
                period_end=release.period_end,
                battles=release.battles,
                size_bytes=release.size_bytes,
                file_sha256=release.file_sha256,
                previous_chain_sha256=release.previous_chain_sha256,
                chain_sha256=release.chain_sha256,
                published_at=release.published_at,
                download_url=reverse("release_download", args=[release.pk]),
                verified=checks[release.period_start].ok,
                problem=checks[release.period_start].reason,
            )
            for release in releases
        ],
        battles=sampling.battles,
        votes=sampling.votes,
        chain_verified=chain.ok,
        days=[day.date for day in sampling.days],
        computed_at=timezone.now(),
    )


def _day_share(day: Any, names: set[str]) -> DayShare:
    """A provider's day: its systems' share and battles, and their recorded sampling probabilities
    averaged over their appearances (so it compares with any other provider's, system for system)."""
    own = [entry for entry in day.systems if entry.name in names]
    weighted = [(entry.mean_probability, entry.battles) for entry in own if entry.mean_probability is not None]
    appearances = sum(battles for _, battles in weighted)
    return DayShare(
        date=day.date,
        share=sum(entry.share for entry in own),
        battles=sum(entry.battles for entry in own),
        mean_probability=round(sum(p * b for p, b in weighted) / appearances, 4) if appearances else None,
    )


def _system_entry(
    submission: Submission,
    result: PublishedResult | None,
    results: int,
    *,
    battles: dict[str, int],
    votes: dict[str, int],
    probability: dict[str, float | None],
    days: dict[str, list[DaySampling]],
) -> SystemEntry:
    name = submission.system.name
    status = submission_status(submission)
    return SystemEntry(
        name=name,
        license_class=submission.license_class,
        prerelease=submission.prerelease,
        registered_at=submission.registered_at,
        window_ends_at=submission.window_ends_at,
        status=status,
        result=None
        if result is None
        else Result(
            published_at=result.published_at,
            rating=result.rating,
            ci_low=result.ci_low,
            ci_high=result.ci_high,
            rank=result.rank,
            votes=result.votes,
            provisional=result.provisional,
        ),
        results=results,
        retired_at=submission.retired_at,
        retirement_rule=submission.retirement_rule,
        battles=battles.get(name, 0),
        votes=votes.get(name, 0),
        mean_probability=probability.get(name),
        days=days.get(name, []),
    )


def _votes_by_system(study_id: int) -> dict[str, int]:
    """Counted votes per system name (a vote counts for both of its systems); gold never counts."""
    return _per_system(Vote.objects.filter(study_id=study_id, is_gold=False))


def _released_battles_by_system(study_id: int, releases: list[PeriodRelease]) -> dict[str, int]:
    """Votes in the released periods' files, per system (the files hold included, non-gold votes)."""
    if not releases:
        return {}
    periods = Q()
    for start, end in _spans(releases):
        periods |= Q(created_at__gte=start, created_at__lt=end)
    return _per_system(
        Vote.objects.filter(periods, study_id=study_id, is_gold=False, quality_status=QualityStatus.INCLUDED)
    )


def _spans(releases: list[PeriodRelease]) -> list[tuple[datetime, datetime]]:
    """The released periods as few ranges as they make: back-to-back periods join (one condition for a
    year of weekly releases instead of 52)."""
    spans: list[tuple[datetime, datetime]] = []
    for release in sorted(releases, key=lambda release: release.period_start):
        if spans and spans[-1][1] == release.period_start:
            spans[-1] = (spans[-1][0], release.period_end)
        else:
            spans.append((release.period_start, release.period_end))
    return spans


def _per_system(votes: Any) -> dict[str, int]:
    """Votes per system name, each vote counting for both of its systems: one grouped query."""
    counted: dict[str, int] = defaultdict(int)
    for row in votes.values("system_a__name", "system_b__name").annotate(n=Count("id")):
        counted[row["system_a__name"]] += row["n"]
        counted[row["system_b__name"]] += row["n"]
    return dict(counted)


def report_as_dict(report: LeaderboardReport) -> dict[str, Any]:
    """The API's shape: plain JSON values (dates as ISO 8601)."""

    def plain(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, list):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        if hasattr(value, "__dataclass_fields__"):
            return {name: plain(getattr(value, name)) for name in value.__dataclass_fields__}
        return value

    return plain(report)
