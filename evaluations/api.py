"""Study API for lab clients and the task API for raters.

The paths and payload fields are public contracts (README "Studies API"): client scripts
depend on them. Every endpoint resolves its objects through `evaluations.access`, calls one
domain function, and serializes the result; nothing else happens here.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from django.db.models import Count, QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crowdplatform.accounts.access import organizations_visible_to
from crowdplatform.accounts.models import Organization
from crowdplatform.core.api_errors import error_body
from evaluations import assignment, selectors, services
from evaluations.access import rater_profile_of, studies_visible_to, study_for
from evaluations.item_import import ItemImportError
from evaluations.models import FlagReason, Item, SkipReason, Study, System

# --- Studies ------------------------------------------------------------------------------------


class CriterionSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=60)
    definition = serializers.CharField()


class StudyOutput(serializers.ModelSerializer):
    organization = serializers.IntegerField(source="organization_id")
    implied_hourly_cents = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields = [
            "id",
            "organization",
            "name",
            "description",
            "question",
            "criteria",
            "requirements",
            "votes_per_pair",
            "pay_per_task_cents",
            "currency",
            "est_seconds_per_task",
            "implied_hourly_cents",
            "sampling",
            "gold_rate",
            "lease_seconds",
            "budget_cents",
            "pay_floor_cents_per_hour",
            "platform_fee_bps",
            "fee_per_task_cents",
            "cost_per_task_cents",
            "status",
            "paused_reason",
            "votes_count",
            "created_at",
            "launched_at",
            "completed_at",
        ]

    def get_implied_hourly_cents(self, study: Study) -> int:
        return services.implied_hourly_cents(study.pay_per_task_cents, study.est_seconds_per_task)


class StudyInputSerializer(serializers.Serializer):
    """Shape only; the rules (fair-pay floor, known tests and domains...) are the domain's."""

    organization = serializers.IntegerField(required=False, help_text="Needed only if you belong to several.")
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    question = serializers.CharField()
    criteria = CriterionSerializer(many=True)
    requirements = serializers.DictField(required=False, default=dict)
    votes_per_pair = serializers.IntegerField(required=False, default=3)
    pay_per_task_cents = serializers.IntegerField()
    est_seconds_per_task = serializers.IntegerField(required=False, default=60)
    sampling = serializers.CharField(required=False, default="active")
    gold_rate = serializers.FloatField(required=False, default=0.0)
    lease_seconds = serializers.IntegerField(required=False, default=600)
    budget_cents = serializers.IntegerField(required=False, default=0)
    pay_floor_cents_per_hour = serializers.IntegerField(required=False, allow_null=True, default=None)


def _study_input(data: dict[str, Any]) -> services.StudyInput:
    fields = {key: value for key, value in data.items() if key != "organization"}
    fields["criteria"] = [dict(criterion) for criterion in fields["criteria"]]
    return services.StudyInput(**fields)


def _organization_for_new_study(actor: Any, requested: int | None) -> Organization:
    organizations = organizations_visible_to(actor)
    if requested is not None:
        organization = organizations.filter(pk=requested).first()
        if organization is None:
            raise Http404("No such organization.")
        return organization
    mine = list(organizations[:2])
    if len(mine) != 1:
        raise serializers.ValidationError({"organization": ["Say which organization the study belongs to."]})
    return mine[0]


class StudyListCreateApi(generics.ListAPIView):
    serializer_class = StudyOutput

    def get_queryset(self) -> QuerySet[Study]:
        return studies_visible_to(self.request.user)

    @extend_schema(request=StudyInputSerializer, responses={201: StudyOutput})
    def post(self, request: Request) -> Response:
        payload = StudyInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        organization = _organization_for_new_study(request.user, payload.validated_data.get("organization"))
        study = services.study_create(
            organization=organization, actor=request.user, data=_study_input(payload.validated_data)
        )
        return Response(StudyOutput(study).data, status=status.HTTP_201_CREATED)


class StudyUpdateSerializer(StudyInputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    question = serializers.CharField(required=False)
    criteria = CriterionSerializer(many=True, required=False)
    pay_per_task_cents = serializers.IntegerField(required=False)


class StudyDetailApi(APIView):
    @extend_schema(responses=StudyOutput)
    def get(self, request: Request, study_id: int) -> Response:
        return Response(StudyOutput(study_for(request.user, study_id)).data)

    @extend_schema(request=StudyUpdateSerializer, responses=StudyOutput)
    def patch(self, request: Request, study_id: int) -> Response:
        """A draft's settings; once launched, only `budget_cents`."""
        study = study_for(request.user, study_id)
        payload = StudyUpdateSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        changes = {key: value for key, value in payload.validated_data.items() if key in request.data}
        changes.pop("organization", None)
        if set(changes) == {"budget_cents"}:
            study = services.study_budget_set(study=study, actor=request.user, budget_cents=changes["budget_cents"])
        else:
            current = {name: getattr(study, name) for name in services.StudyInput.__dataclass_fields__}
            study = services.study_update(study=study, actor=request.user, data=_study_input({**current, **changes}))
        return Response(StudyOutput(study).data)


class StudyTransitionApi(APIView):
    """POST /studies/{id}/launch|pause|resume|complete|archive/."""

    transition: str = ""
    ACTIONS = {
        "launch": services.study_launch,
        "pause": services.study_pause,
        "resume": services.study_resume,
        "complete": services.study_complete,
        "archive": services.study_archive,
    }

    @extend_schema(request=None, responses=StudyOutput)
    def post(self, request: Request, study_id: int) -> Response:
        study = study_for(request.user, study_id)
        study = self.ACTIONS[self.transition](study=study, actor=request.user)
        return Response(StudyOutput(study).data)


# --- Systems ------------------------------------------------------------------------------------


class SystemOutput(serializers.ModelSerializer):
    class Meta:
        model = System
        fields = ["id", "name", "provider", "notes", "registered_at", "votes_count"]


class SystemInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    provider = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class SystemListCreateApi(generics.ListAPIView):
    serializer_class = SystemOutput
    pagination_class = None  # a study compares a handful of systems, never thousands

    def get_queryset(self) -> QuerySet[System]:
        return study_for(self.request.user, self.kwargs["study_id"]).systems.all()

    @extend_schema(request=SystemInput, responses={201: SystemOutput})
    def post(self, request: Request, study_id: int) -> Response:
        study = study_for(request.user, study_id)
        payload = SystemInput(data=request.data)
        payload.is_valid(raise_exception=True)
        system = services.system_register(study=study, actor=request.user, **payload.validated_data)
        return Response(SystemOutput(system).data, status=status.HTTP_201_CREATED)


class SystemDetailApi(APIView):
    def _system(self, request: Request, study_id: int, system_id: int) -> System:
        system = study_for(request.user, study_id).systems.filter(pk=system_id).first()
        if system is None:
            raise Http404("No such system.")
        return system

    @extend_schema(request=SystemInput, responses=SystemOutput)
    def patch(self, request: Request, study_id: int, system_id: int) -> Response:
        """Rename or edit; refused (409) once the system has votes, except its notes."""
        system = self._system(request, study_id, system_id)
        payload = SystemInput(data={**SystemOutput(system).data, **request.data})
        payload.is_valid(raise_exception=True)
        system = services.system_update(system=system, actor=request.user, **payload.validated_data)
        return Response(SystemOutput(system).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, study_id: int, system_id: int) -> Response:
        """Refused (409) once the system has votes: results are never retracted."""
        services.system_delete(system=self._system(request, study_id, system_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Items --------------------------------------------------------------------------------------


class RawUploadParser(BaseParser):
    """JSONL or CSV as the request body; the bytes go to the domain's parser unchanged."""

    media_type = "*/*"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> bytes:
        return stream.read() if stream is not None else b""


class ItemOutput(serializers.ModelSerializer):
    responses = serializers.SerializerMethodField()

    class Meta:
        model = Item
        fields = ["id", "prompt_id", "language", "category", "is_gold", "responses", "created_at"]

    def get_responses(self, item: Item) -> int:
        return item.responses_count  # type: ignore[attr-defined]


ITEM_ERRORS = inline_serializer(
    "ItemUploadErrors",
    {"errors": serializers.ListField(child=serializers.DictField()), "error": serializers.DictField()},
)


class ItemListUploadApi(generics.ListAPIView):
    serializer_class = ItemOutput
    parser_classes = [MultiPartParser, FormParser, RawUploadParser]

    def get_queryset(self) -> QuerySet[Item]:
        study = study_for(self.request.user, self.kwargs["study_id"])
        return study.items.annotate(responses_count=Count("responses"))

    @extend_schema(
        request={"application/jsonl": bytes, "text/csv": bytes, "multipart/form-data": bytes},
        responses={
            201: inline_serializer(
                "ItemsUploaded",
                {
                    "created": serializers.IntegerField(),
                    "gold": serializers.IntegerField(),
                    "item_pairs": serializers.IntegerField(),
                },
            ),
            400: OpenApiResponse(ITEM_ERRORS, description="Nothing was added; every bad line is listed."),
        },
    )
    def post(self, request: Request, study_id: int) -> Response:
        """Add items: JSONL or CSV as the body, or a multipart `file`. All lines valid, or none added."""
        study = study_for(request.user, study_id)
        data, filename = _upload_of(request)
        try:
            result = services.items_upload(
                study=study, actor=request.user, data=data, content_type=request.content_type, filename=filename
            )
        except ItemImportError as error:
            body = error_body(status=400, code="invalid_items", message="No items were added: fix these lines.")
            body["errors"] = [{"line": e.line, "error": e.error} for e in error.errors]
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(
            {"created": result.created, "gold": result.gold, "item_pairs": result.item_pairs},
            status=status.HTTP_201_CREATED,
        )


def _upload_of(request: Request) -> tuple[bytes, str]:
    if isinstance(request.data, bytes):
        return request.data, ""
    upload = request.FILES.get("file")
    if upload is None:
        raise serializers.ValidationError({"file": ["Send the items as the body, or as a multipart field `file`."]})
    return upload.read(), upload.name or ""


# --- Progress and sampling ----------------------------------------------------------------------


class StudyProgressApi(APIView):
    @extend_schema(
        responses=inline_serializer(
            "StudyProgress",
            {
                "status": serializers.CharField(),
                "votes": serializers.IntegerField(),
                "gold_votes": serializers.IntegerField(),
                "target_votes": serializers.IntegerField(),
                "completion": serializers.FloatField(),
                "systems": serializers.ListField(child=serializers.DictField()),
                "criteria": serializers.ListField(child=serializers.DictField()),
                "open_leases": serializers.IntegerField(),
                "skips": serializers.IntegerField(),
                "flags": serializers.IntegerField(),
                "votes_last_hour": serializers.IntegerField(),
                "eta_seconds": serializers.IntegerField(allow_null=True),
                "spent_cents": serializers.IntegerField(),
                "budget_cents": serializers.IntegerField(),
                "tasks_affordable": serializers.IntegerField(),
            },
        )
    )
    def get(self, request: Request, study_id: int) -> Response:
        return Response(selectors.study_progress(study_for(request.user, study_id)).as_dict())


class StudyQualityApi(APIView):
    @extend_schema(
        responses=OpenApiResponse(
            description="Krippendorff's alpha (overall and per criterion) with its meaning, gold accuracy across "
            "raters (raters per 10% band), flags, excluded votes by reason, the typical time per vote."
        )
    )
    def get(self, request: Request, study_id: int) -> Response:
        from crowdplatform.quality.selectors import study_quality

        return Response(study_quality(study=study_for(request.user, study_id)))


class SamplingReportApi(APIView):
    @extend_schema(responses=OpenApiResponse(description="Battles, votes and sampling share per system and per day."))
    def get(self, request: Request, study_id: int) -> Response:
        return Response(asdict(selectors.sampling_report(study_for(request.user, study_id))))


# --- Rater tasks --------------------------------------------------------------------------------


class RaterTaskApi(APIView):
    """Base of the task endpoints. They are not throttled: a rater holds one open lease at a time and
    can vote only on it, which bounds them already, and the throttle's Redis round trips would be a
    tenth of the hottest path's cost (benchmarks/RESULTS.md)."""

    throttle_classes: list[type] = []
    parser_classes = [JSONParser, FormParser]


class TaskOutput(serializers.Serializer):
    """What a rater sees: nothing here names, or leads to, a system or its provider."""

    id = serializers.CharField()
    study = serializers.CharField()
    question = serializers.CharField()
    prompt = serializers.ListField(child=serializers.DictField())
    prompt_html = serializers.CharField()
    response_a = serializers.ListField(child=serializers.DictField())
    response_a_html = serializers.CharField()
    response_b = serializers.ListField(child=serializers.DictField())
    response_b_html = serializers.CharField()
    criteria = serializers.ListField(child=serializers.DictField())
    choices = serializers.ListField(child=serializers.DictField())
    leased_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class TaskNextInput(serializers.Serializer):
    study = serializers.IntegerField(required=False, help_text="Only this study.")


class TaskNextApi(RaterTaskApi):
    @extend_schema(request=TaskNextInput, responses={200: TaskOutput, 204: OpenApiResponse(description="No task now.")})
    def post(self, request: Request) -> Response:
        """Your open task, or the next one; 204 when there is none right now."""
        rater = rater_profile_of(request.user)
        payload = TaskNextInput(data=request.data)
        payload.is_valid(raise_exception=True)
        study = None
        if "study" in payload.validated_data:
            study = Study.objects.filter(pk=payload.validated_data["study"]).first()
            if study is None:
                raise Http404("No such study.")
        task = assignment.task_next(rater=rater, study=study)
        if task is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(TaskOutput(selectors.task_view(task)).data)


class VoteInputSerializer(serializers.Serializer):
    choice = serializers.CharField()
    criteria = serializers.DictField(child=serializers.CharField(), required=False, default=dict)
    rationale = serializers.CharField(required=False, allow_blank=True, default="")


class VoteOutput(serializers.Serializer):
    id = serializers.IntegerField()
    task = serializers.CharField(source="task_id")
    choice = serializers.CharField()
    criteria = serializers.DictField()
    rationale = serializers.CharField()
    duration_ms = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class TaskVoteApi(RaterTaskApi):
    @extend_schema(
        request=VoteInputSerializer,
        responses={
            201: VoteOutput,
            200: OpenApiResponse(VoteOutput, description="The same vote was already recorded: it is returned."),
            404: OpenApiResponse(description="Not your task."),
            409: OpenApiResponse(description="The lease expired, or a different vote was already recorded."),
        },
    )
    def post(self, request: Request, task_id: str) -> Response:
        rater = rater_profile_of(request.user)
        payload = VoteInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        vote, created = assignment.vote_submit(
            task_id=_task_uuid(task_id), rater=rater, data=assignment.VoteInput(**payload.validated_data)
        )
        return Response(VoteOutput(vote).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _task_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise Http404("No such task.") from None


class SkipInput(serializers.Serializer):
    reason = serializers.ChoiceField(choices=SkipReason.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class TaskSkipApi(RaterTaskApi):
    @extend_schema(
        request=SkipInput, responses={200: inline_serializer("Skipped", {"status": serializers.CharField()})}
    )
    def post(self, request: Request, task_id: str) -> Response:
        rater = rater_profile_of(request.user)
        payload = SkipInput(data=request.data)
        payload.is_valid(raise_exception=True)
        task = assignment.task_skip(task_id=_task_uuid(task_id), rater=rater, **payload.validated_data)
        return Response({"status": task.status})


class FlagInput(serializers.Serializer):
    reason = serializers.ChoiceField(choices=FlagReason.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


class TaskFlagApi(RaterTaskApi):
    @extend_schema(
        request=FlagInput, responses={201: inline_serializer("Flagged", {"reason": serializers.CharField()})}
    )
    def post(self, request: Request, task_id: str) -> Response:
        rater = rater_profile_of(request.user)
        payload = FlagInput(data=request.data)
        payload.is_valid(raise_exception=True)
        flag, created = assignment.task_flag(task_id=_task_uuid(task_id), rater=rater, **payload.validated_data)
        return Response({"reason": flag.reason}, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
