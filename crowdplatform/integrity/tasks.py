"""Celery entry points for public leaderboards: thin wrappers over the domain functions."""

from __future__ import annotations

from celery import shared_task


@shared_task
def integrity_publish() -> dict[str, int]:
    """Periodic (beat, every 15 minutes): publish the results of ended windows (and refresh those whose
    votes changed), apply the retirement rule, release ended periods' battles. Idempotent: a second
    run writes nothing new. Results first, so retirement reads the figures just published."""
    from crowdplatform.integrity.publishing import releases_due, results_publish_due, retirements_apply

    return {
        "results": results_publish_due(),
        "retired": retirements_apply(),
        "releases": releases_due(),
    }
