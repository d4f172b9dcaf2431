"""Celery entry points for public leaderboards: thin wrappers over the domain functions."""

from __future__ import annotations

from celery import shared_task


@shared_task
def integrity_publish() -> dict[str, int]:
    """Periodic (beat, every 15 minutes): `publishing.publishing_run`. Idempotent: a second run writes
    nothing new."""
    from crowdplatform.integrity.publishing import publishing_run

    return publishing_run()
