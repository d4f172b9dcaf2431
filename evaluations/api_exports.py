"""Vote export API: streamed exports and export jobs (README "Exports").

    GET  /api/v1/studies/{id}/votes.jsonl | .csv | .parquet  ?quality&since&until&criterion&gold&include&after_id
    POST /api/v1/studies/{id}/exports/                 {"format": "jsonl", ...the same filters} -> 202, the job
    GET  /api/v1/studies/{id}/exports/                 the study's jobs, newest first (paginated)
    GET  /api/v1/studies/{id}/exports/{job_id}/        status, rows_done, rows_total, download_url when done
    GET  /api/v1/studies/{id}/exports/{job_id}/download/   the file

The study's client organization (members and API keys) and staff; anyone else gets 404.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, StreamingHttpResponse
from django.http.response import FileResponse, HttpResponseBase
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evaluations import exports
from evaluations.access import study_for
from evaluations.models import ExportFormat, ExportJob, ExportStatus, Study

FILTER_PARAMETERS = [
    OpenApiParameter(
        "quality",
        str,
        enum=list(exports.QUALITY_CHOICES),
        description="`included` (default): votes the quality "
        "checks kept; `all`: excluded votes too, with `quality_status` and `quality_reason`.",
    ),
    OpenApiParameter("since", str, description="Votes cast at or after: ISO 8601 (UTC when no zone) or unix seconds."),
    OpenApiParameter("until", str, description="Votes cast before: ISO 8601 (UTC when no zone) or unix seconds."),
    OpenApiParameter(
        "criterion",
        str,
        description="One of the study's criteria: `winner` is that criterion's answer; votes without one are left out.",
    ),
    OpenApiParameter(
        "gold",
        str,
        enum=list(exports.GOLD_CHOICES),
        description="`exclude` (default), `include` or `only` the "
        "gold votes; their `model_a`/`model_b` are `gold:<response label>`.",
    ),
    OpenApiParameter(
        "include",
        str,
        enum=["conversations"],
        description="Add `conversation_a`/`conversation_b`: the prompt turns, then that side's response turns.",
    ),
    OpenApiParameter("after_id", int, description="Only votes with a larger id (incremental pulls; rows come by id)."),
]
ERROR_400 = OpenApiResponse(description="A filter is not valid; `fields` names it.")


def _query(request: Request) -> dict[str, list[str]]:
    return {name: request.query_params.getlist(name) for name in request.query_params}


class _FileApi(APIView):
    """Answers with a file whatever the Accept header asks for (no 406); errors answer JSON."""

    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[BaseRenderer, str]:
        return JSONRenderer(), JSONRenderer.media_type


class VotesExportApi(_FileApi):
    """GET /studies/{id}/votes.<format>: the study's votes, streamed (constant memory at any size)."""

    export_format: str = ""

    def _stream(self, request: Request, study_id: int) -> HttpResponseBase:
        study = study_for(request.user, study_id)
        filters = exports.export_filters_parse(study=study, params=_query(request))
        response = StreamingHttpResponse(
            exports.export_stream(study=study, filters=filters, export_format=self.export_format),
            content_type=exports.MEDIA_TYPES[self.export_format],
        )
        name = exports.export_file_name(study=study, export_format=self.export_format)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "no-store"
        return response


def _file_responses(media_type: str, kind: Any, description: str) -> dict[Any, Any]:
    return {(200, media_type): OpenApiResponse(kind, description=description), 400: ERROR_400}


class VotesJsonlApi(VotesExportApi):
    export_format = ExportFormat.JSONL

    @extend_schema(
        operation_id="study_votes_jsonl",
        parameters=FILTER_PARAMETERS,
        responses=_file_responses(
            "application/jsonl", OpenApiTypes.STR, "One arena battle per line (FastChat's clean_battle schema)."
        ),
    )
    def get(self, request: Request, study_id: int) -> HttpResponseBase:
        return self._stream(request, study_id)


class VotesCsvApi(VotesExportApi):
    export_format = ExportFormat.CSV

    @extend_schema(
        operation_id="study_votes_csv",
        parameters=FILTER_PARAMETERS,
        responses=_file_responses("text/csv", OpenApiTypes.STR, "The same columns with a header row."),
    )
    def get(self, request: Request, study_id: int) -> HttpResponseBase:
        return self._stream(request, study_id)


class VotesParquetApi(VotesExportApi):
    export_format = ExportFormat.PARQUET

    @extend_schema(
        operation_id="study_votes_parquet",
        parameters=FILTER_PARAMETERS,
        responses=_file_responses(
            "application/vnd.apache.parquet", OpenApiTypes.BINARY, "The same columns, typed; nested values as JSON."
        ),
    )
    def get(self, request: Request, study_id: int) -> HttpResponseBase:
        return self._stream(request, study_id)


# --- Export jobs --------------------------------------------------------------------------------


class ExportJobOutput(serializers.ModelSerializer):
    study = serializers.IntegerField(source="study_id")
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "study",
            "format",
            "filters",
            "status",
            "rows_total",
            "rows_done",
            "size_bytes",
            "sha256",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "download_url",
        ]

    def get_download_url(self, job: ExportJob) -> str | None:
        if job.status != ExportStatus.DONE:
            return None
        path = reverse("api:study-export-download", args=[job.study_id, job.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path


class ExportJobInput(serializers.Serializer):
    """Shape only; the filters are checked by the domain, exactly as the streamed exports check them."""

    format = serializers.ChoiceField(choices=ExportFormat.choices)
    quality = serializers.CharField(required=False)
    since = serializers.CharField(required=False)
    until = serializers.CharField(required=False)
    criterion = serializers.CharField(required=False)
    gold = serializers.CharField(required=False)
    include = serializers.CharField(required=False)
    after_id = serializers.IntegerField(required=False)


class ExportJobListCreateApi(generics.ListAPIView):
    serializer_class = ExportJobOutput

    def get_queryset(self) -> Any:
        return exports.export_jobs_of(study_for(self.request.user, self.kwargs["study_id"]))

    @extend_schema(
        request=ExportJobInput,
        responses={202: ExportJobOutput, 400: ERROR_400},
        description="Prepare a file of the study's votes in the background; poll the job for `download_url`.",
    )
    def post(self, request: Request, study_id: int) -> Response:
        study = study_for(request.user, study_id)
        body = dict(request.data.items()) if hasattr(request.data, "items") else {}
        export_format = body.pop("format", None)
        job = exports.export_job_create(study=study, actor=request.user, format=export_format, filters=body)
        job.refresh_from_db()  # the job may have run already (tasks run in-process without a broker)
        return Response(ExportJobOutput(job, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


def _job(request: Request, study_id: int, job_id: Any) -> tuple[Study, ExportJob]:
    study = study_for(request.user, study_id)
    job = exports.export_job_for(study, job_id)
    if job is None:
        raise Http404("No such export.")
    return study, job


class ExportJobDetailApi(APIView):
    @extend_schema(responses=ExportJobOutput)
    def get(self, request: Request, study_id: int, job_id: Any) -> Response:
        _, job = _job(request, study_id, job_id)
        return Response(ExportJobOutput(job, context={"request": request}).data)


class ExportJobDownloadApi(_FileApi):
    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The export file."),
            404: OpenApiResponse(description="No such export, or it is not finished."),
        }
    )
    def get(self, request: Request, study_id: int, job_id: Any) -> HttpResponseBase:
        study, job = _job(request, study_id, job_id)
        if job.status != ExportStatus.DONE:
            raise Http404("This export is not ready.")
        return export_job_file_response(study, job)


def export_job_file_response(study: Study, job: ExportJob) -> FileResponse:
    """The job's file as a download (shared with the client pages)."""
    response = FileResponse(
        exports.export_job_file(job),
        as_attachment=True,
        filename=exports.export_file_name(study=study, export_format=job.format),
        content_type=exports.MEDIA_TYPES[job.format],
    )
    response["Cache-Control"] = "no-store"
    return response
