"""Export jobs (evaluations.exports.export_job_create / export_job_run, evaluations.tasks.export_run)."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from django.core.files.storage import storages
from django.db import OperationalError

from crowdplatform.core.errors import ApplicationError
from crowdplatform.core.models import AuditEvent
from evaluations import exports
from evaluations.models import ExportJob
from evaluations.tasks import export_run
from tests.evaluations.test_exports import build_exported_study, export_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    """Each test its own private storage folder: files from other tests never show up."""
    private = settings.STORAGES["private"]
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {**private, "OPTIONS": {**private["OPTIONS"], "location": str(tmp_path / "private")}},
    }


@pytest.fixture
def exported(make_study, add_systems, upload, make_rater, owner):
    return build_exported_study(make_study, add_systems, upload, make_rater, owner)


def create(study, owner, captured, export_format: str = "jsonl", **filters: Any) -> ExportJob:
    with captured(execute=True):
        job = exports.export_job_create(study=study, actor=owner, format=export_format, filters=filters)
    job.refresh_from_db()
    return job


def stored(job: ExportJob) -> bytes:
    with storages["private"].open(job.file_name, "rb") as file:
        return file.read()


@pytest.mark.parametrize("export_format", ["jsonl", "csv", "parquet"])
def test_a_job_writes_the_streamed_export_to_private_storage(
    exported, owner, django_capture_on_commit_callbacks, export_format
):
    study = exported.study

    job = create(study, owner, django_capture_on_commit_callbacks, export_format, quality="all", gold="include")

    content = stored(job)
    assert content == export_bytes(study, export_format, quality="all", gold="include")
    assert job.status == "done"
    assert job.file_name == f"exports/{study.pk}/{job.pk}.{export_format}"
    assert (job.rows_total, job.rows_done) == (6, 6)
    assert (job.size_bytes, job.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert job.filters == {"quality": "all", "gold": "include"}
    assert job.requested_by == owner
    assert job.started_at is not None
    assert job.finished_at >= job.started_at
    assert job.error == ""


def test_creating_a_job_is_audited_and_queues_it_after_commit(exported, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = exports.export_job_create(
            study=exported.study, actor=owner, format="csv", filters={"criterion": "accuracy", "since": "1740830400"}
        )

    assert len(callbacks) == 1
    job.refresh_from_db()
    assert job.status == "queued"  # nothing ran before the commit
    event = AuditEvent.objects.get(action="export.create")
    assert (event.target_id, event.organization_id, event.actor_user) == (
        str(job.pk),
        exported.study.organization_id,
        owner,
    )
    assert event.data == {
        "study": exported.study.pk,
        "format": "csv",
        "filters": {"quality": "included", "gold": "exclude", "since": "2025-03-01T12:00:00Z", "criterion": "accuracy"},
    }


@pytest.mark.parametrize(
    ("export_format", "filters", "field"),
    [
        ("xlsx", {}, "format"),
        ("", {}, "format"),
        ("jsonl", {"quality": "best"}, "quality"),
        ("jsonl", {"criterion": "speed"}, "criterion"),
        ("jsonl", {"since": "soon"}, "since"),
        ("jsonl", {"format": "csv"}, "format"),
        ("jsonl", {"page": "2"}, "page"),
    ],
)
def test_a_bad_job_is_refused_and_nothing_is_created(exported, owner, export_format, filters, field):
    audit_before = AuditEvent.objects.count()

    with pytest.raises(ApplicationError) as refused:
        exports.export_job_create(study=exported.study, actor=owner, format=export_format, filters=filters)

    assert list(refused.value.fields) == [field]
    assert ExportJob.objects.count() == 0
    assert AuditEvent.objects.count() == audit_before


def test_running_a_finished_job_again_changes_nothing(exported, owner, django_capture_on_commit_callbacks):
    job = create(exported.study, owner, django_capture_on_commit_callbacks)
    first = (job.started_at, job.finished_at, job.sha256, job.file_name)

    again = exports.export_job_run(job_id=job.pk)
    assert export_run(str(job.pk)) == "done"

    assert (again.started_at, again.finished_at, again.sha256, again.file_name) == first
    assert storages["private"].listdir(f"exports/{exported.study.pk}")[1] == [f"{job.pk}.jsonl"]


def test_a_failed_job_is_recorded_and_can_be_run_again(
    exported, owner, django_capture_on_commit_callbacks, monkeypatch
):
    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(exports, "export_blocks", broken)
    job = create(exported.study, owner, django_capture_on_commit_callbacks)  # nothing raised

    assert job.status == "failed"
    assert job.error == "The export failed (RuntimeError). Try again; if it fails again, contact support."
    assert "disk on fire" not in job.error  # details go to the log, not to the client
    assert job.file_name == ""
    assert not storages["private"].exists(exports.export_job_storage_name(job))

    monkeypatch.undo()
    rerun = exports.export_job_run(job_id=job.pk)
    assert (rerun.status, rerun.error, rerun.rows_done) == ("done", "", 4)
    assert stored(rerun) == export_bytes(exported.study)


def test_a_database_error_fails_the_job_and_is_raised_for_a_retry(
    exported, owner, django_capture_on_commit_callbacks, monkeypatch
):
    with django_capture_on_commit_callbacks(execute=False):
        job = exports.export_job_create(study=exported.study, actor=owner, format="jsonl", filters={})

    def lost(**kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(exports, "export_blocks", lost)
    with pytest.raises(OperationalError):
        exports.export_job_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.status == "failed"


def test_the_task_retries_database_errors(exported, owner, django_capture_on_commit_callbacks, monkeypatch):
    from celery.exceptions import Retry

    with django_capture_on_commit_callbacks(execute=False):
        job = exports.export_job_create(study=exported.study, actor=owner, format="jsonl", filters={})

    def lost(**kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(exports, "export_job_run", lost)
    with pytest.raises((Retry, OperationalError)):
        export_run.apply(args=[str(job.pk)], throw=True)


def test_the_task_of_a_job_that_is_gone_does_nothing():
    assert export_run("00000000-0000-0000-0000-000000000000") is None


def test_progress_is_recorded_between_pages(exported, owner, django_capture_on_commit_callbacks, monkeypatch):
    monkeypatch.setattr(exports, "PAGE_ROWS", 2)
    monkeypatch.setattr(exports, "PROGRESS_ROWS", 2)
    real = exports.export_blocks
    progress: list[tuple[int, int | None]] = []

    def watched(**kwargs: Any) -> Any:
        assert kwargs["prefetch"] is False  # the job needs the connection free between pages
        for block in real(**kwargs):
            yield block
            if block.page_end:  # the job has recorded it by the time it asks for more
                job = ExportJob.objects.get()
                progress.append((job.rows_done, job.rows_total))

    monkeypatch.setattr(exports, "export_blocks", watched)
    job = create(exported.study, owner, django_capture_on_commit_callbacks, "csv", quality="all")

    assert progress == [(2, 5), (4, 5), (4, 5)]  # the last page's rows come with the finish
    assert (job.rows_done, job.rows_total, job.status) == (5, 5, "done")


def test_a_parquet_job_file_reads_back(exported, owner, django_capture_on_commit_callbacks):
    import pyarrow.parquet as pq

    job = create(exported.study, owner, django_capture_on_commit_callbacks, "parquet", gold="only")

    table = pq.read_table(io.BytesIO(stored(job)))
    assert table.column("vote_id").to_pylist() == [exported.votes[5].pk]
    assert table.column("model_a").to_pylist() == ["gold:bad"]


def test_an_interrupted_job_is_redone_from_the_start(exported, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = exports.export_job_create(study=exported.study, actor=owner, format="jsonl", filters={})
    ExportJob.objects.filter(pk=job.pk).update(status="running", rows_done=3)  # a worker died here
    storages["private"].save(exports.export_job_storage_name(job), io.BytesIO(b"partial"))

    done = exports.export_job_run(job_id=job.pk)

    assert (done.status, done.rows_done) == ("done", 4)
    assert done.file_name == exports.export_job_storage_name(job)  # replaced, not a second file
    assert stored(done) == export_bytes(exported.study)
