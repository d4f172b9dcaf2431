"""The public leaderboards' API: the transparency report, the leaderboards, and providers' submissions.

Reading is public (no key needed); submitting a system and uploading its responses is for staff and the
provider's own organization (members and API keys), through the integrity services.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crowdplatform.core.api_errors import error_body
from crowdplatform.core.pagination import CursorPagination
from crowdplatform.integrity import services
from crowdplatform.integrity.models import LicenseClass, Provider, PublicLeaderboard, Submission
from crowdplatform.integrity.report import report_as_dict, transparency_reports
from crowdplatform.integrity.selectors import leaderboard_prompts
from crowdplatform.integrity.services import PARAMETERS
from evaluations.api import RawUploadParser
from evaluations.item_import import ItemImportError
from evaluations.models import Item


class TransparencyApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: OpenApiResponse(
                description=(
                    '{"leaderboards": [{"name", "slug", "study_id", "sampling", "parameters", "policy": [{"number", '
                    '"text", "parameters", "effective_at"}], "providers": [{"name", "slug", "systems": [{"name", '
                    '"license_class", "prerelease", "registered_at", "window_ends_at", "status", "result", "results", '
                    '"retired_at", "retirement_rule", "battles", "votes", "mean_probability", '
                    '"days": [{"date", "battles", "share", "mean_probability"}]}], '
                    '"prerelease_tested", "battles", "votes", '
                    '"battle_share", "days": [{"date", "share", "battles", "mean_probability"}], '
                    '"released_battles_with_its_systems", '
                    '"released_battles_given"}], "releases": [{"period_start", "period_end", "battles", "size_bytes", '
                    '"file_sha256", "previous_chain_sha256", "chain_sha256", "published_at"}], "battles", "votes", '
                    '"days"}]}'
                )
            )
        }
    )
    def get(self, request: Request) -> Response:
        """Every public leaderboard: per provider its systems (pre-release variants included) with their
        published scores, battles and sampling share per day, retirements with the rule applied, and the
        data released to everyone; the policy and its history; the digest chain of released battles."""
        return Response({"leaderboards": [report_as_dict(report) for report in transparency_reports()]})


class LeaderboardOutput(serializers.ModelSerializer):
    study = serializers.IntegerField(source="study_id")
    policy_version = serializers.SerializerMethodField()

    class Meta:
        model = PublicLeaderboard
        fields = ["slug", "name", "description", "study", "starts_at", *PARAMETERS, "policy_version"]

    def get_policy_version(self, leaderboard: PublicLeaderboard) -> int | None:
        latest = leaderboard.policy_versions.order_by("-number").first()
        return latest.number if latest else None


class SubmissionOutput(serializers.ModelSerializer):
    system = serializers.CharField(source="system.name")
    provider = serializers.CharField(source="provider.slug")

    class Meta:
        model = Submission
        fields = [
            "id",
            "system",
            "provider",
            "license_class",
            "prerelease",
            "period_start",
            "registered_at",
            "window_ends_at",
            "published_at",
            "retired_at",
            "retirement_rule",
        ]


class SubmissionInput(serializers.Serializer):
    provider = serializers.SlugField(help_text="The provider's slug.")
    name = serializers.CharField(max_length=100, help_text="The system's public name (a codename if pre-release).")
    license_class = serializers.ChoiceField(choices=LicenseClass.choices)
    prerelease = serializers.BooleanField(default=False)
    notes = serializers.CharField(required=False, allow_blank=True, default="")


class LeaderboardListApi(APIView):
    permission_classes = [AllowAny]

    @extend_schema(responses={200: LeaderboardOutput(many=True)})
    def get(self, request: Request) -> Response:
        """Every public leaderboard with the parameters of its policy in force (the same for all providers)."""
        leaderboards = PublicLeaderboard.objects.order_by("name")
        return Response(LeaderboardOutput(leaderboards, many=True).data)


class SubmissionListCreateApi(APIView):
    permission_classes = [AllowAny]  # reading is public; `post` requires a signed-in caller

    @extend_schema(responses={200: SubmissionOutput(many=True)})
    def get(self, request: Request, slug: str) -> Response:
        """Every submission, pre-release variants included, oldest first: none is ever removed."""
        leaderboard = get_object_or_404(PublicLeaderboard, slug=slug)
        submissions = leaderboard.submissions.select_related("system", "provider").order_by("registered_at", "id")
        return Response(SubmissionOutput(submissions, many=True).data)

    @extend_schema(
        request=SubmissionInput,
        responses={
            201: SubmissionOutput,
            403: OpenApiResponse(description="Not staff, nor of the provider's organization."),
            409: OpenApiResponse(description="prerelease_cap_reached, duplicate (name taken), study_closed."),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        """Register a system before it gets any vote; a pre-release variant counts against the cap."""
        if not request.user.is_authenticated:
            raise NotAuthenticated()
        leaderboard = get_object_or_404(PublicLeaderboard, slug=slug)
        data = SubmissionInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields: dict[str, Any] = data.validated_data
        provider = get_object_or_404(Provider, slug=fields["provider"])
        submission = services.submission_register(
            leaderboard=leaderboard,
            provider=provider,
            name=fields["name"],
            license_class=fields["license_class"],
            prerelease=fields["prerelease"],
            notes=fields["notes"],
            actor=request.user,
        )
        return Response(SubmissionOutput(submission).data, status=status.HTTP_201_CREATED)


class PromptOutput(serializers.ModelSerializer):
    prompt = serializers.JSONField(help_text="Turns: [{role, content}], as raters see them.")

    class Meta:
        model = Item
        fields = ["prompt_id", "prompt", "language", "category"]


class PromptPagination(CursorPagination):
    ordering = ("id",)  # the upload's order: a provider pages through once and answers each


class LeaderboardPromptsApi(generics.ListAPIView):
    """The leaderboard's prompts, for providers to answer: staff and every provider's organization
    (members and API keys) get all of them, the same for all. Gold checks are not prompts to answer."""

    serializer_class = PromptOutput
    pagination_class = PromptPagination

    def get_queryset(self) -> QuerySet[Item]:
        if not self.request.user.is_authenticated:
            raise NotAuthenticated()
        if not services.may_read_prompts(self.request.user):
            raise PermissionDenied("The prompts are given to staff and to every provider's organization.")
        return leaderboard_prompts(get_object_or_404(PublicLeaderboard, slug=self.kwargs["slug"]))


class SubmissionResponsesApi(APIView):
    parser_classes = [RawUploadParser]

    @extend_schema(
        request={"application/jsonl": {"type": "string", "format": "binary"}},
        responses={
            201: OpenApiResponse(description='{"created", "item_pairs"}'),
            400: OpenApiResponse(description='Nothing was added: {"errors": [{"line", "error"}], "error": {...}}'),
            403: OpenApiResponse(description="Not staff, nor of the provider's organization."),
        },
    )
    def post(self, request: Request, slug: str, submission_id: int) -> Response:
        """The system's answers to the leaderboard's prompts, JSONL `{"prompt_id", "response"}` as the body."""
        submission = get_object_or_404(
            Submission.objects.select_related("leaderboard__study", "provider", "system"),
            pk=submission_id,
            leaderboard__slug=slug,
        )
        data = request.data if isinstance(request.data, bytes) else b""
        try:
            result = services.submission_responses_upload(submission=submission, actor=request.user, data=data)
        except ItemImportError as error:
            body = error_body(status=400, code="invalid_responses", message="No responses were added: fix these lines.")
            body["errors"] = [{"line": e.line, "error": e.error} for e in error.errors]
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response({"created": result.created, "item_pairs": result.item_pairs}, status=status.HTTP_201_CREATED)
