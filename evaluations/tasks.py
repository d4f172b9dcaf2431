"""Celery entry points for studies: thin wrappers over the domain functions."""

from __future__ import annotations

from celery import shared_task


@shared_task
def leases_expire() -> int:
    """Periodic (beat, every minute): mark lapsed leases expired. Idempotent."""
    from evaluations.assignment import leases_expire as expire

    return expire()
