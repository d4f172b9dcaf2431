"""The client's exports page: filters, direct downloads, prepared files with progress."""

from __future__ import annotations

import html
import re

import pytest

from evaluations.models import ExportJob
from tests.evaluations.test_exports import build_exported_study, export_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def private_storage(settings, tmp_path):
    private = settings.STORAGES["private"]
    settings.STORAGES = {
        **settings.STORAGES,
        "private": {**private, "OPTIONS": {**private["OPTIONS"], "location": str(tmp_path / "private")}},
    }


@pytest.fixture
def exported(make_study, add_systems, upload, make_rater, owner):
    return build_exported_study(make_study, add_systems, upload, make_rater, owner)


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def page_url(study) -> str:
    return f"/client/orgs/{study.organization.slug}/studies/{study.pk}/exports/"


def links(page: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="([^"]*/votes\.[a-z]+[^"]*)"', page)]


def test_the_study_page_links_to_the_exports(signed_in, exported):
    page = signed_in.get(f"/client/orgs/alpha-lab/studies/{exported.study.pk}/").text

    assert f'href="{page_url(exported.study)}">Export votes</a>' in page


def test_the_page_offers_downloads_with_the_default_filters_and_an_empty_state(signed_in, exported):
    study = exported.study

    response = signed_in.get(page_url(study))

    assert response.status_code == 200
    page = response.text
    assert "<h1>Export votes</h1>" in page
    assert links(page) == [
        f"/api/v1/studies/{study.pk}/votes.{fmt}?quality=included&gold=exclude" for fmt in ("jsonl", "csv", "parquet")
    ]
    assert "No prepared files yet" in page
    assert '<option value="accuracy">accuracy</option>' in page  # the study's criteria to choose from
    assert 'hx-trigger="every 2s"' not in page


def test_the_links_carry_the_filters_given(signed_in, exported):
    study = exported.study
    query = {
        "quality": "all",
        "gold": "include",
        "criterion": "accuracy",
        "include": "conversations",
        "since": "2025-03-01",
    }

    page = signed_in.get(page_url(study), query).text

    assert links(page)[0] == (
        f"/api/v1/studies/{study.pk}/votes.jsonl?quality=all&gold=include&since=2025-03-01T00%3A00%3A00Z"
        "&criterion=accuracy&include=conversations"
    )
    assert '<option value="accuracy" selected>accuracy</option>' in page
    assert 'name="include" value="conversations" id="id_include" checked' in page
    assert '<input type="hidden" name="criterion" value="accuracy">' in page


def test_a_link_downloads_the_export(signed_in, exported):
    page = signed_in.get(page_url(exported.study), {"gold": "only"}).text

    response = signed_in.get(links(page)[1])

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == export_bytes(exported.study, "csv", gold="only")


def test_bad_filters_are_shown_and_offer_no_download(signed_in, exported):
    response = signed_in.get(page_url(exported.study), {"since": "soon", "gold": "include"})

    assert response.status_code == 400
    page = response.text
    assert "These filters are not valid:" in page
    assert html.escape("since must be an ISO 8601 date and time") in page
    assert 'class="field has-error"' in page
    assert links(page) == []
    assert 'value="soon"' in page  # what was typed stays in the form


def test_preparing_a_file_creates_a_job_that_is_listed_with_a_download(
    signed_in, exported, django_capture_on_commit_callbacks
):
    study = exported.study

    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(page_url(study), {"format": "parquet", "quality": "all", "gold": "exclude"})

    assert response.status_code == 302
    assert response["Location"] == page_url(study) + "?quality=all&gold=exclude"
    job = ExportJob.objects.get()
    assert (job.format, job.filters, job.status, job.requested_by) == (
        "parquet",
        {"quality": "all", "gold": "exclude"},
        "done",
        exported.study.created_by,
    )
    page = signed_in.get(response["Location"]).text
    assert "Preparing the file" in page
    download = f"{page_url(study)}{job.pk}/download/"
    assert f'href="{download}">Download</a>' in page
    assert "quality=all, gold=exclude" in page
    file = signed_in.get(download)
    assert file["Content-Disposition"] == f'attachment; filename="study-{study.pk}-votes.parquet"'
    assert b"".join(file.streaming_content) == export_bytes(study, "parquet", quality="all")


def test_a_running_job_is_polled_until_it_is_done(signed_in, exported, django_capture_on_commit_callbacks):
    study = exported.study
    with django_capture_on_commit_callbacks(execute=False):
        signed_in.post(page_url(study), {"format": "jsonl"})
    job = ExportJob.objects.get()
    ExportJob.objects.filter(pk=job.pk).update(status="running", rows_done=2, rows_total=4)
    partial_url = f"{page_url(study)}jobs/"

    page = signed_in.get(page_url(study)).text
    partial = signed_in.get(partial_url).text

    assert f'hx-get="{partial_url}" hx-trigger="every 2s" hx-swap="outerHTML"' in page
    assert 'hx-trigger="every 2s"' in partial
    assert "2 of 4" in partial
    assert "Download" not in partial

    ExportJob.objects.filter(pk=job.pk).update(status="done", rows_done=4, size_bytes=10)
    finished = signed_in.get(partial_url).text
    assert 'hx-trigger="every 2s"' not in finished
    assert "Ready to download" in finished


def test_a_failed_job_shows_its_error(signed_in, exported, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        signed_in.post(page_url(exported.study), {"format": "csv"})
    ExportJob.objects.update(status="failed", error="The export failed (RuntimeError). Try again.")

    partial = signed_in.get(f"{page_url(exported.study)}jobs/").text

    assert "Failed" in partial
    assert "The export failed (RuntimeError). Try again." in partial


def test_a_bad_request_for_a_file_creates_nothing(signed_in, exported):
    response = signed_in.post(page_url(exported.study), {"format": "xlsx"}, follow=True)

    assert ExportJob.objects.count() == 0
    assert "No file was prepared: format must be one of jsonl, csv, parquet" in html.unescape(response.text)


def test_an_unfinished_file_cannot_be_downloaded(signed_in, exported, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        signed_in.post(page_url(exported.study), {"format": "csv"})
    job = ExportJob.objects.get()

    assert signed_in.get(f"{page_url(exported.study)}{job.pk}/download/").status_code == 404


def test_other_organizations_get_404_and_raters_403(
    client, exported, other_owner, rater, owner, django_capture_on_commit_callbacks
):
    study = exported.study
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(page_url(study), {"format": "csv"})
    job = ExportJob.objects.get()
    urls = [page_url(study), f"{page_url(study)}jobs/", f"{page_url(study)}{job.pk}/download/"]

    client.force_login(other_owner)
    assert [client.get(url).status_code for url in urls] == [404, 404, 404]
    assert client.get(f"/client/orgs/beta-lab/studies/{study.pk}/exports/").status_code == 404
    assert client.post(page_url(study), {"format": "csv"}).status_code == 404
    client.force_login(rater)
    assert [client.get(url).status_code for url in urls] == [403, 403, 403]
    assert ExportJob.objects.count() == 1
