"""Reads over the public leaderboards' records, and the one recipe of the release chain.

The release chain (see `crowdplatform.integrity.publishing` for the full recipe): each period's
battles file has a SHA-256, and each release's `chain_sha256` digests the previous release's chain
digest, this file's digest and the period, so rewriting any published file or period breaks every
later link. `chain_digest` is the one function that computes a link: the writer and the checker
both call it, so they cannot drift apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import storages
from django.db.models import QuerySet

from crowdplatform.integrity.models import PeriodRelease, PublicLeaderboard, PublishedResult, Submission
from evaluations.models import Item

RELEASES_STORAGE = "private"
READ_CHUNK_BYTES = 1024 * 1024  # files are hashed in chunks: memory stays flat whatever their size


def leaderboard_prompts(leaderboard: PublicLeaderboard) -> QuerySet[Item]:
    """The prompts providers answer, in upload order: every item but the gold checks (which are no
    systems' to answer, and whose answers stay with staff)."""
    return Item.objects.filter(study_id=leaderboard.study_id, is_gold=False).order_by("id")


def submission_status(submission: Submission) -> str:
    """ "testing", "published" or "retired": the one wording of the report, the API and the pages."""
    if submission.retired_at is not None:
        return "retired"
    return "published" if submission.published_at is not None else "testing"


def latest_results(submissions: list[Submission]) -> tuple[dict[int, PublishedResult], dict[int, int]]:
    """The latest published result of each submission, and how many were published (one query)."""
    latest: dict[int, PublishedResult] = {}
    counts: dict[int, int] = {}
    for result in PublishedResult.objects.filter(submission__in=submissions).order_by("published_at", "id"):
        latest[result.submission_id] = result  # oldest first: the last one stands
        counts[result.submission_id] = counts.get(result.submission_id, 0) + 1
    return latest, counts


def chain_digest(
    *,
    previous_chain_sha256: str,
    file_sha256: str,
    leaderboard_slug: str,
    period_start: datetime,
    period_end: datetime,
    battles: int,
) -> str:
    """The release chain's link: SHA-256 (hex) of the UTF-8 text

        f"{previous_chain_sha256}\\n{file_sha256}\\n{leaderboard_slug}\\n{period_start.isoformat()}\\n"
        f"{period_end.isoformat()}\\n{battles}\\n"

    `previous_chain_sha256` is "" for a leaderboard's first release; the instants are in UTC
    (e.g. "2026-01-01T00:00:00+00:00"). Pure: no database, no storage.
    """
    text = (
        f"{previous_chain_sha256}\n{file_sha256}\n{leaderboard_slug}\n"
        f"{period_start.isoformat()}\n{period_end.isoformat()}\n{battles}\n"
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stored_file_sha256(file_name: str) -> str | None:
    """The SHA-256 of a file in the releases' storage as it is now; None when it is missing."""
    storage = storages[RELEASES_STORAGE]
    if not storage.exists(file_name):
        return None
    digest = hashlib.sha256()
    with storage.open(file_name, "rb") as handle:
        while chunk := handle.read(READ_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def current_file_sha256(file_name: str, *, rehash: bool = False) -> str | None:
    """The file's SHA-256 as it is now, remembered per (name, size, modification time) for
    FILE_DIGEST_CACHE_SECONDS: a public page re-reading hundreds of megabytes per view would be its own
    denial of service. Any rewrite changes the modification time, so it is hashed again at once; a
    rewrite that also forges the time is caught by the next `rehash` (the periodic publishing run
    rehashes every release) or when the entry expires. None when the file is missing."""
    storage = storages[RELEASES_STORAGE]
    if not storage.exists(file_name):
        return None
    try:
        stamp = f"{storage.size(file_name)}:{storage.get_modified_time(file_name).timestamp()!r}"
    except (NotImplementedError, OSError):  # a storage that cannot tell: hash every time
        return stored_file_sha256(file_name)
    key = "integrity:file-sha256:" + hashlib.sha256(f"{file_name}\n{stamp}".encode()).hexdigest()
    digest = None if rehash else cache.get(key)
    if digest is None:
        digest = stored_file_sha256(file_name)
        if digest is not None:
            cache.set(key, digest, settings.FILE_DIGEST_CACHE_SECONDS)
    return digest


@dataclass(frozen=True)
class ReleaseCheck:
    """One release as checked: `ok`, or the first thing found wrong with it, in words."""

    period_start: datetime
    period_end: datetime
    file_name: str
    file_sha256: str
    chain_sha256: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class ChainCheck:
    """Every release of a leaderboard, oldest first, each recomputed from its file and its predecessor."""

    leaderboard_slug: str
    releases: tuple[ReleaseCheck, ...]

    @property
    def ok(self) -> bool:
        return all(release.ok for release in self.releases)

    @property
    def first_mismatch(self) -> ReleaseCheck | None:
        return next((release for release in self.releases if not release.ok), None)


def release_chain_verify(*, leaderboard: PublicLeaderboard, rehash: bool = False) -> ChainCheck:
    """Recompute each stored file's SHA-256 (remembered while the file is untouched, see
    `current_file_sha256`; all of them read again with `rehash`) and each chain link of the
    leaderboard's releases.

    Each release is checked on its own (a broken one does not hide the state of the later ones):
    its file must hash to the recorded digest, it must name its predecessor's chain digest (""
    for the first), start where its predecessor ended, and its chain digest must recompute.
    """
    releases = list(PeriodRelease.objects.filter(leaderboard=leaderboard).order_by("period_start"))
    checks = []
    previous: PeriodRelease | None = None
    for release in releases:
        reason = _release_problem(release, previous, leaderboard.slug, rehash=rehash)
        checks.append(
            ReleaseCheck(
                period_start=release.period_start,
                period_end=release.period_end,
                file_name=release.file_name,
                file_sha256=release.file_sha256,
                chain_sha256=release.chain_sha256,
                ok=not reason,
                reason=reason,
            )
        )
        previous = release
    return ChainCheck(leaderboard_slug=leaderboard.slug, releases=tuple(checks))


def _day(instant: datetime) -> str:
    return instant.date().isoformat()


def _release_problem(release: PeriodRelease, previous: PeriodRelease | None, slug: str, *, rehash: bool) -> str:
    """What is wrong with one release ("" when nothing is), the file first: it is what people download."""
    day = _day(release.period_start)
    file_now = current_file_sha256(release.file_name, rehash=rehash)
    if file_now is None:
        return f"file of {day} is missing: {release.file_name}"
    if file_now != release.file_sha256:
        return f"file of {day} changed: stored sha256 {release.file_sha256}, file now {file_now}"
    expected_previous = previous.chain_sha256 if previous is not None else ""
    if release.previous_chain_sha256 != expected_previous:
        before = f"the release of {_day(previous.period_start)}" if previous is not None else "no release"
        return (
            f"release of {day} does not follow {before}: it names previous chain sha256 "
            f"{release.previous_chain_sha256 or '(none)'}, expected {expected_previous or '(none)'}"
        )
    if previous is not None and release.period_start != previous.period_end:
        return f"release of {day} does not start where the release of {_day(previous.period_start)} ended"
    recomputed = chain_digest(
        previous_chain_sha256=release.previous_chain_sha256,
        file_sha256=file_now,
        leaderboard_slug=slug,
        period_start=release.period_start,
        period_end=release.period_end,
        battles=release.battles,
    )
    if recomputed != release.chain_sha256:
        return f"chain of {day} does not recompute: stored sha256 {release.chain_sha256}, recomputed {recomputed}"
    return ""
