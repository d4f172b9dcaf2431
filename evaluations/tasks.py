"""Celery entry points for studies: thin wrappers over the domain functions."""

from __future__ import annotations

from celery import Task, shared_task


@shared_task
def leases_expire() -> int:
    """Periodic (beat, every minute): mark lapsed leases expired. Idempotent."""
    from evaluations.assignment import leases_expire as expire

    return expire()


@shared_task(bind=True, max_retries=3)
def export_run(self: Task, job_id: str) -> str | None:
    """Write an export job's file (evaluations.exports). Idempotent: a finished job is not redone.
    Only database errors a retry may cure are retried; other failures are recorded on the job."""
    from django.db import InterfaceError, OperationalError

    from evaluations.exports import export_job_run

    try:
        job = export_job_run(job_id=job_id)
    except (OperationalError, InterfaceError) as exc:
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc
    return job.status if job is not None else None
