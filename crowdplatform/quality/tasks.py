"""Celery entry points for quality: thin wrappers over the domain functions."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.core.cache import cache

# A full refresh (Dawid-Skene and Noisy BT on every study, however large) at most this often; the
# refreshes in between are incremental. The cache only remembers when the last one ran: if it
# forgets, the next refresh is simply a full one.
FULL_REFRESH_SECONDS = 6 * 3600
FULL_REFRESH_KEY = "quality:full-refresh-done"


@shared_task
def quality_refresh(*, full: bool | None = None) -> dict[str, Any]:
    """Periodic (beat, every QUALITY_REFRESH_SECONDS): refresh the signals, then run the rules on the
    raters whose signals changed. Idempotent: with nothing new it changes nothing and acts on no one.

    `full=None` (the beat's call) makes it a full refresh when none ran for FULL_REFRESH_SECONDS."""
    from crowdplatform.quality.refresh import signals_refresh
    from crowdplatform.quality.rules import rules_evaluate

    if full is None:
        full = cache.add(FULL_REFRESH_KEY, True, timeout=FULL_REFRESH_SECONDS)
    report = signals_refresh(full=full)
    rules_evaluate(changed=report.changed)
    return {
        "full": report.full,
        "studies": report.studies,
        "votes": report.votes,
        "rows_written": report.rows_written,
        "raters_changed": len(set().union(*report.changed.values())),
        "seconds": round(report.seconds, 3),
    }
