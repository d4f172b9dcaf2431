"""The public transparency report page, `/transparency/`, and the released battle files: no login."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import storages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from crowdplatform.integrity.charts import share_bars, share_over_time, share_table
from crowdplatform.integrity.models import PeriodRelease
from crowdplatform.integrity.report import transparency_reports


@require_GET
def transparency_page(request: HttpRequest) -> HttpResponse:
    reports = transparency_reports()
    return render(
        request,
        "integrity/transparency.html",
        {
            "reports": [
                {
                    "report": report,
                    "bars": share_bars(report),
                    "share_chart": share_over_time(report),
                    "share_table": share_table(report),
                }
                for report in reports
            ],
            "cache_seconds": settings.TRANSPARENCY_REPORT_CACHE_SECONDS,
        },
    )


@require_GET
def release_download(request: HttpRequest, release_id: int) -> FileResponse:
    """A period's released battles, for anyone: the same file for every provider and every reader."""
    release = get_object_or_404(PeriodRelease.objects.select_related("leaderboard"), pk=release_id)
    storage = storages["private"]
    if not storage.exists(release.file_name):
        raise Http404("The file of this release is missing; the transparency report says so.")
    name = f"{release.leaderboard.slug}-{release.period_start:%Y-%m-%d}.jsonl"
    response = FileResponse(storage.open(release.file_name, "rb"), as_attachment=True, filename=name)
    response["Content-Type"] = "application/jsonl"
    return response
