"""API for campaigns and qualification tests.

Clients see their own organization's campaigns and their applicants under
pseudonymous ids only; staff see everything. Gold answers never leave staff pages.
"""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers

from crowdplatform.accounts.access import is_staff, organizations_visible_to
from crowdplatform.core.pagination import CursorPagination
from crowdplatform.core.pseudonyms import pseudonym
from crowdplatform.raters.models import QualificationTest, RaterProfile, RecruitmentCampaign


def campaigns_visible_to(actor: object) -> QuerySet[RecruitmentCampaign]:
    if is_staff(actor):  # type: ignore[arg-type]
        return RecruitmentCampaign.objects.all()
    return RecruitmentCampaign.objects.filter(organization__in=organizations_visible_to(actor))  # type: ignore[arg-type]


class CampaignOutput(serializers.ModelSerializer):
    domains = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)

    class Meta:
        model = RecruitmentCampaign
        fields = [
            "id",
            "name",
            "description",
            "organization_id",
            "languages",
            "domains",
            "countries",
            "raters_wanted",
            "is_open",
            "created_at",
        ]


class CampaignListApi(generics.ListAPIView):
    serializer_class = CampaignOutput

    def get_queryset(self) -> QuerySet[RecruitmentCampaign]:
        return campaigns_visible_to(self.request.user).prefetch_related("domains")


class ApplicantOutput(serializers.Serializer):
    """One applicant. Clients get the pseudonymous id only; staff also get who it is."""

    rater = serializers.CharField(help_text="Pseudonymous id, stable within this campaign.")
    email = serializers.EmailField(required=False, help_text="Staff only.")
    display_name = serializers.CharField(required=False, help_text="Staff only.")
    status = serializers.CharField()
    country = serializers.CharField()
    languages = serializers.ListField(child=serializers.DictField())
    domains = serializers.ListField(child=serializers.CharField())
    submitted_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, profile: RaterProfile) -> dict[str, object]:
        row: dict[str, object] = {
            "rater": pseudonym(scope=f"campaign:{self.context['campaign_id']}", value=profile.pk),
            "status": profile.status,
            "country": profile.country,
            "languages": [{"language": x.language, "proficiency": x.proficiency} for x in profile.languages.all()],
            "domains": [domain.slug for domain in profile.domains.all()],
            "submitted_at": serializers.DateTimeField().to_representation(profile.submitted_at)
            if profile.submitted_at
            else None,
        }
        if self.context["staff"]:
            row |= {"email": profile.user.email, "display_name": profile.display_name}
        return row


class ApplicantPagination(CursorPagination):
    ordering = ("-id",)


@extend_schema(summary="A campaign's applicants (pseudonymous to clients)")
class CampaignApplicantListApi(generics.ListAPIView):
    serializer_class = ApplicantOutput
    pagination_class = ApplicantPagination

    def get_queryset(self) -> QuerySet[RaterProfile]:
        campaign = get_object_or_404(campaigns_visible_to(self.request.user), pk=self.kwargs["campaign_id"])
        return campaign.applicants.select_related("user").prefetch_related("languages", "domains")

    def get_serializer_context(self) -> dict[str, object]:
        staff = is_staff(self.request.user)  # type: ignore[arg-type]
        return {**super().get_serializer_context(), "campaign_id": self.kwargs["campaign_id"], "staff": staff}


class QualificationTestOutput(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    items = serializers.IntegerField(source="item_count", read_only=True)

    class Meta:
        model = QualificationTest
        fields = [
            "id",
            "name",
            "domain",
            "language",
            "pass_score",
            "validity_days",
            "time_limit_seconds",
            "retake_cooldown_hours",
            "max_attempts",
            "is_active",
            "items",
        ]


class QualificationTestListApi(generics.ListAPIView):
    """Tests a study can require. Items and gold answers are not exposed."""

    serializer_class = QualificationTestOutput
    pagination_class = None
    queryset = QualificationTest.objects.select_related("domain").annotate(item_count=Count("items")).order_by("name")


class QualificationTestDetailApi(generics.RetrieveAPIView):
    serializer_class = QualificationTestOutput
    queryset = QualificationTest.objects.select_related("domain").annotate(item_count=Count("items"))
    lookup_url_kwarg = "test_id"
