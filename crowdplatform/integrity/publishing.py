"""Publishing a public leaderboard's results, retiring systems by its rule, releasing its battles.

Everything here runs from the periodic task (`crowdplatform.integrity.tasks.integrity_publish`); each
function is idempotent, audited (`integrity.*` actions, in the transaction of the change) and takes
`now` so tests and the demo can pass a clock.

Results (`results_publish_due`): when a submission's testing window ends its result is published,
whatever it is: the leaderboard's rating, interval, rank and counted votes of its system
(`evaluations.leaderboard.study_leaderboard`, quality=included, PUBLISH_BOOTSTRAP rounds, seed 0),
provisional below the leaderboard's `provisional_votes`. A submission without votes is published
too (no rating, 0 votes): nothing can be withheld. Afterwards a new result row is added whenever a
published, not retired, submission's vote count changes; older rows stay as history.

Retirement (`retirements_apply`): one rule for every license class. A published submission whose
latest published result counts at least `retire_after_votes` votes, and whose provider has at least
`retire_newer_required` published submissions registered after it on the same leaderboard, is
retired: its `retired_at` and `retirement_rule` (the rule with the figures it was applied with) are
set, and so is its system's `retired_at` (assignment then pairs it no more). Its votes and results
stay published. The published figures are used, so anyone can check a retirement on the report.

Period releases (`period_release`, `releases_due`): periods run back to back from the leaderboard's
`starts_at`, `period_days` long. Once a period has ended its battles (the study's votes with
`period_start <= created_at < period_end`, quality=included, gold excluded) are written, as the
arena JSONL export produces them (`evaluations.exports.export_stream`, the bytes the API streams
for the same `since`/`until`), to the private storage under
`releases/<leaderboard slug>/<period start date>.jsonl`. Releases go in order, each chained:

    file_sha256  = SHA-256 (hex) of the file's bytes
    chain_sha256 = SHA-256 (hex) of the UTF-8 text
        f"{previous_chain_sha256}\\n{file_sha256}\\n{leaderboard.slug}\\n"
        f"{period_start.isoformat()}\\n{period_end.isoformat()}\\n{battles}\\n"

where `previous_chain_sha256` is the previous period's `chain_sha256` ("" for the first period),
the instants are UTC (`2026-01-01T00:00:00+00:00`) and `battles` the number of lines in the file.
Anyone holding the files can recompute the chain (`selectors.chain_digest` is the recipe in code,
`selectors.release_chain_verify` the check); a rewritten file or period breaks every later link.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO

from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from crowdplatform.accounts.principals import Actor
from crowdplatform.core.audit import audit_record
from crowdplatform.core.errors import ApplicationError, ConflictError
from crowdplatform.integrity.models import PeriodRelease, PolicyVersion, PublicLeaderboard, PublishedResult, Submission
from crowdplatform.integrity.selectors import RELEASES_STORAGE, chain_digest, latest_results, release_chain_verify
from evaluations.exports import ExportFilters, export_stream
from evaluations.leaderboard import QUALITY_INCLUDED, LeaderboardRow, study_leaderboard
from evaluations.models import ExportFormat, System

logger = logging.getLogger(__name__)

PUBLISH_BOOTSTRAP = 1000  # bootstrap rounds of a published result's interval (tests lower it)
PUBLISH_SEED = 0  # fixed, so anyone recomputing a published result gets the same interval
SPOOL_BYTES = 8 * 1024 * 1024  # a release is built in memory up to this size, on disk beyond


# --- The periodic run ---------------------------------------------------------------------------


def publishing_run(*, actor: Actor = None, now: datetime | None = None) -> dict[str, int]:
    """Publish the results of ended windows (and refresh those whose votes changed), apply the
    retirement rule, release ended periods' battles: for every leaderboard, idempotently. Results
    first, so retirement reads the figures just published. Each step commits its own writes with
    their audit rows; a run asked for by someone (staff's "Run publishing now") is also recorded,
    with who asked and what it wrote. Returns the counts written."""
    now = now or timezone.now()
    done = {
        "results": results_publish_due(now=now),
        "retired": retirements_apply(now=now),
        "releases": releases_due(now=now),
        "releases_broken": releases_rehash(),
    }
    if actor is not None:
        with transaction.atomic():
            audit_record(actor=actor, action="integrity.publishing_run", data={"now": now.isoformat(), **done})
    return done


def releases_rehash() -> int:
    """Read every released file again (the public pages remember digests while a file's size and time
    stay the same; this catches a rewrite that forged both). Returns how many releases do not verify;
    each is logged, and the transparency report shows it."""
    broken = 0
    for leaderboard in PublicLeaderboard.objects.order_by("pk"):
        for check in release_chain_verify(leaderboard=leaderboard, rehash=True).releases:
            if not check.ok:
                broken += 1
                logger.error("Release of %s does not verify: %s", leaderboard.slug, check.reason)
    return broken


# --- Results ------------------------------------------------------------------------------------


def results_publish_due(*, now: datetime | None = None) -> int:
    """Publish every submission whose window has ended, and refresh published results whose votes
    changed. One leaderboard computation and one transaction per leaderboard. Returns rows written."""
    now = now or timezone.now()
    leaderboards = PublicLeaderboard.objects.filter(
        Q(submissions__published_at__isnull=True) | Q(submissions__retired_at__isnull=True),
        submissions__window_ends_at__lte=now,
    ).distinct()
    return sum(_results_publish_on(leaderboard, now) for leaderboard in leaderboards.select_related("study"))


def _results_publish_on(leaderboard: PublicLeaderboard, now: datetime) -> int:
    board = study_leaderboard(
        study=leaderboard.study, quality=QUALITY_INCLUDED, bootstrap=PUBLISH_BOOTSTRAP, seed=PUBLISH_SEED
    )
    rows = {row.system: row for row in board.rows}
    written = 0
    with transaction.atomic():
        # Locked, then read: a concurrent run waits here and then sees what this one wrote.
        submissions = list(
            Submission.objects.select_for_update(of=("self",))
            .filter(leaderboard=leaderboard, window_ends_at__lte=now)
            .filter(Q(published_at__isnull=True) | Q(retired_at__isnull=True))
            .select_related("system", "provider")
            .order_by("registered_at", "id")
        )
        last_votes = _latest_votes(submissions)
        for submission in submissions:
            row = rows.get(submission.system.name)
            votes = row.votes if row is not None else 0
            if submission.published_at is None:
                _result_write(submission, row, leaderboard, now, action="integrity.result_publish")
                submission.published_at = now
                submission.save(update_fields=["published_at"])
                written += 1
            elif last_votes.get(submission.pk) != votes:
                _result_write(submission, row, leaderboard, now, action="integrity.result_update")
                written += 1
    return written


def _latest_votes(submissions: list[Submission]) -> dict[int, int]:
    """Each submission's latest published vote count."""
    latest, _ = latest_results(submissions)
    return {submission_id: result.votes for submission_id, result in latest.items()}


def _result_write(
    submission: Submission, row: LeaderboardRow | None, leaderboard: PublicLeaderboard, now: datetime, *, action: str
) -> PublishedResult:
    votes = row.votes if row is not None else 0
    result = PublishedResult.objects.create(
        submission=submission,
        published_at=now,
        rating=row.rating if row is not None else None,
        ci_low=row.ci_low if row is not None else None,
        ci_high=row.ci_high if row is not None else None,
        rank=row.rank if row is not None else None,
        votes=votes,
        provisional=votes < leaderboard.provisional_votes,
    )
    audit_record(
        actor=None,
        action=action,
        target=submission,
        organization=submission.provider.organization,
        data={
            "leaderboard": leaderboard.slug,
            "system": submission.system.name,
            "result": result.pk,
            "rating": result.rating,
            "ci_low": result.ci_low,
            "ci_high": result.ci_high,
            "rank": result.rank,
            "votes": result.votes,
            "provisional": result.provisional,
        },
    )
    return result


# --- Retirement ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Published:
    pk: int
    provider_id: int
    registered_at: datetime
    system_name: str


def retirements_apply(*, now: datetime | None = None) -> int:
    """Retire every published submission that the leaderboard's rule retires (the same rule for all
    license classes and providers). Returns how many were retired."""
    now = now or timezone.now()
    leaderboards = PublicLeaderboard.objects.filter(
        submissions__published_at__isnull=False, submissions__retired_at__isnull=True
    ).distinct()
    return sum(_retirements_apply_on(leaderboard, now) for leaderboard in leaderboards)


def _retirements_apply_on(leaderboard: PublicLeaderboard, now: datetime) -> int:
    retired = 0
    with transaction.atomic():
        candidates = list(
            Submission.objects.select_for_update(of=("self",))
            .filter(leaderboard=leaderboard, published_at__isnull=False, retired_at__isnull=True)
            .select_related("provider", "system")
            .order_by("registered_at", "id")
        )
        if not candidates:
            return 0
        published = [
            _Published(pk, provider_id, registered_at, name)
            for pk, provider_id, registered_at, name in Submission.objects.filter(
                leaderboard=leaderboard, published_at__isnull=False
            )
            .order_by("registered_at", "id")
            .values_list("pk", "provider_id", "registered_at", "system__name")
        ]
        votes = _latest_votes(candidates)
        policy = _policy_label(leaderboard, now)
        for candidate in candidates:
            newer = [
                entry.system_name
                for entry in published
                if entry.provider_id == candidate.provider_id and entry.registered_at > candidate.registered_at
            ]
            count = votes.get(candidate.pk, 0)
            if count >= leaderboard.retire_after_votes and len(newer) >= leaderboard.retire_newer_required:
                _retire(candidate, leaderboard, now, votes=count, newer=newer, policy=policy)
                retired += 1
    return retired


def _policy_label(leaderboard: PublicLeaderboard, now: datetime) -> str:
    number = (
        PolicyVersion.objects.filter(leaderboard=leaderboard, effective_at__lte=now)
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
    )
    return f"policy v{number}" if number is not None else "leaderboard parameters, no policy version yet"


def retirement_rule_text(*, votes: int, threshold: int, provider_name: str, newer: list[str], policy: str) -> str:
    """The rule as applied, in words with its figures, e.g.
    "3,214 votes ≥ 3,000, and 2 newer published systems of Acme: acme-2, acme-3 (policy v1)"."""
    systems = "system" if len(newer) == 1 else "systems"
    names = f": {', '.join(newer)}" if newer else ""
    return (
        f"{votes:,} votes ≥ {threshold:,}, and {len(newer)} newer published {systems} of {provider_name}{names} "
        f"({policy})"
    )


def _retire(
    submission: Submission, leaderboard: PublicLeaderboard, now: datetime, *, votes: int, newer: list[str], policy: str
) -> None:
    rule = retirement_rule_text(
        votes=votes,
        threshold=leaderboard.retire_after_votes,
        provider_name=submission.provider.name,
        newer=newer,
        policy=policy,
    )
    submission.retired_at = now
    submission.retirement_rule = rule
    submission.save(update_fields=["retired_at", "retirement_rule"])
    # Sampling reads the system's own flag; an earlier retirement of the system keeps its date.
    System.objects.filter(pk=submission.system_id, retired_at__isnull=True).update(retired_at=now)
    audit_record(
        actor=None,
        action="integrity.retire",
        target=submission,
        organization=submission.provider.organization,
        data={
            "leaderboard": leaderboard.slug,
            "system": submission.system.name,
            "license_class": submission.license_class,
            "votes": votes,
            "retire_after_votes": leaderboard.retire_after_votes,
            "newer": newer,
            "retire_newer_required": leaderboard.retire_newer_required,
            "rule": rule,
        },
    )


# --- Period releases ----------------------------------------------------------------------------


def period_length(leaderboard: PublicLeaderboard) -> timedelta:
    if leaderboard.period_days < 1:
        raise ApplicationError("The leaderboard's periods must be at least one day long.", code="invalid_period")
    return timedelta(days=leaderboard.period_days)


def _period_starting(*, leaderboard: PublicLeaderboard, period_start: datetime) -> tuple[datetime, datetime]:
    """(start, end) in UTC of the period starting at `period_start`; ApplicationError when no period
    of the leaderboard starts there."""
    length = period_length(leaderboard)
    if timezone.is_naive(period_start):
        raise ApplicationError("Give the period's start with its time zone.", code="invalid_period")
    start = period_start.astimezone(UTC)
    first = leaderboard.starts_at.astimezone(UTC)
    offset = start - first
    if offset < timedelta(0) or offset % length:
        raise ApplicationError(
            f"No period of {leaderboard.slug} starts at {start.isoformat()}: periods start at "
            f"{first.isoformat()} and every {leaderboard.period_days} days after.",
            code="invalid_period",
        )
    return start, start + length


def period_release(
    *, leaderboard: PublicLeaderboard, period_start: datetime, now: datetime | None = None
) -> PeriodRelease:
    """Release one ended period's battles (see the module's docstring for the file and the chain).

    Idempotent: a released period's release is returned as it is. Refused (ConflictError, nothing
    written) for a period that has not ended, or whose previous period has no release yet.
    """
    release, _ = _period_release(leaderboard=leaderboard, period_start=period_start, now=now or timezone.now())
    return release


def _period_release(
    *, leaderboard: PublicLeaderboard, period_start: datetime, now: datetime
) -> tuple[PeriodRelease, bool]:
    """(release, created)."""
    start, end = _period_starting(leaderboard=leaderboard, period_start=period_start)
    existing = PeriodRelease.objects.filter(leaderboard=leaderboard, period_start=start).first()
    if existing is not None:
        return existing, False
    if end > now:
        raise ConflictError(
            f"The period from {start.date().isoformat()} ends at {end.isoformat()}: its battles are released then.",
            code="period_not_ended",
        )
    _previous_chain(leaderboard, start)  # refuse early, before rendering anything
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as scratch:
        file_sha256, size, battles = _battles_render(leaderboard, start, end, scratch)
        with transaction.atomic():
            # One writer per leaderboard at a time: the order check and the chain read stay true.
            PublicLeaderboard.objects.select_for_update().filter(pk=leaderboard.pk).first()
            existing = PeriodRelease.objects.filter(leaderboard=leaderboard, period_start=start).first()
            if existing is not None:
                return existing, False
            previous_chain = _previous_chain(leaderboard, start)
            chain = chain_digest(
                previous_chain_sha256=previous_chain,
                file_sha256=file_sha256,
                leaderboard_slug=leaderboard.slug,
                period_start=start,
                period_end=end,
                battles=battles,
            )
            try:
                with transaction.atomic():  # a savepoint: a lost race leaves the outer transaction usable
                    release = PeriodRelease.objects.create(
                        leaderboard=leaderboard,
                        period_start=start,
                        period_end=end,
                        battles=battles,
                        file_name=release_file_name(leaderboard=leaderboard, period_start=start),
                        size_bytes=size,
                        file_sha256=file_sha256,
                        previous_chain_sha256=previous_chain,
                        chain_sha256=chain,
                        published_at=now,
                    )
            except IntegrityError:
                # Another run released it between our check and our insert: theirs stands, file and all.
                return PeriodRelease.objects.get(leaderboard=leaderboard, period_start=start), False
            # The row is ours (the unique period is claimed), so the file is written only now.
            scratch.seek(0)
            _release_file_save(release.file_name, scratch)
            audit_record(
                actor=None,
                action="integrity.release",
                target=release,
                data={
                    "leaderboard": leaderboard.slug,
                    "period_start": start.isoformat(),
                    "period_end": end.isoformat(),
                    "battles": battles,
                    "file_name": release.file_name,
                    "size_bytes": size,
                    "file_sha256": file_sha256,
                    "previous_chain_sha256": previous_chain,
                    "chain_sha256": release.chain_sha256,
                },
            )
    return release, True


def release_file_name(*, leaderboard: PublicLeaderboard, period_start: datetime) -> str:
    return f"releases/{leaderboard.slug}/{period_start.astimezone(UTC).date().isoformat()}.jsonl"


def _previous_chain(leaderboard: PublicLeaderboard, start: datetime) -> str:
    """The previous period's chain digest ("" for the first period); ConflictError when the previous
    period has no release yet: releases go in order, or the chain would have a hole."""
    if start == leaderboard.starts_at.astimezone(UTC):
        return ""
    previous_start = start - period_length(leaderboard)
    chain = (
        PeriodRelease.objects.filter(leaderboard=leaderboard, period_start=previous_start)
        .values_list("chain_sha256", flat=True)
        .first()
    )
    if chain is None:
        raise ConflictError(
            f"The period from {previous_start.date().isoformat()} has no release yet: periods are released in order.",
            code="previous_period_unreleased",
        )
    return chain


def _battles_render(
    leaderboard: PublicLeaderboard, start: datetime, end: datetime, out: IO[bytes]
) -> tuple[str, int, int]:
    """Write the period's battles, exactly as the JSONL export streams them, to `out`:
    (sha256, size, battles). One JSON object per line, so the battles are the lines."""
    filters = ExportFilters(quality=QUALITY_INCLUDED, since=start, until=end, gold="exclude")
    digest, size, lines = hashlib.sha256(), 0, 0
    for chunk in export_stream(study=leaderboard.study, filters=filters, export_format=ExportFormat.JSONL):
        out.write(chunk)
        digest.update(chunk)
        size += len(chunk)
        lines += chunk.count(b"\n")
    return digest.hexdigest(), size, lines


def _release_file_save(name: str, content: IO[bytes]) -> None:
    storage = storages[RELEASES_STORAGE]
    if storage.exists(name):  # left by an attempt that rolled back: no release row points at it
        storage.delete(name)
    saved = storage.save(name, File(content, name=name))
    if saved != name:  # the row names the file: any other name would be a broken link
        raise RuntimeError(f"the release file was stored as {saved!r}, not {name!r}")


def releases_due(*, now: datetime | None = None) -> int:
    """Release every ended period of every leaderboard, oldest first. Returns releases written."""
    now = now or timezone.now()
    written = 0
    for leaderboard in PublicLeaderboard.objects.select_related("study").order_by("pk"):
        for start in _ended_periods(leaderboard, now):
            _, created = _period_release(leaderboard=leaderboard, period_start=start, now=now)
            written += int(created)
    return written


def _ended_periods(leaderboard: PublicLeaderboard, now: datetime) -> list[datetime]:
    """The starts of the leaderboard's ended periods that have no release yet, in order."""
    length = period_length(leaderboard)
    released = set(PeriodRelease.objects.filter(leaderboard=leaderboard).values_list("period_start", flat=True))
    start = leaderboard.starts_at.astimezone(UTC)
    due = []
    while start + length <= now:
        if start not in released:
            due.append(start)
        start += length
    return due
