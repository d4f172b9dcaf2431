"""API endpoints for the caller, organizations, members and API keys."""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from crowdplatform.accounts import selectors, services
from crowdplatform.accounts.access import can_manage_organization, organization_for, organizations_visible_to
from crowdplatform.accounts.models import ApiKey, Membership, Organization, User
from crowdplatform.accounts.principals import ApiKeyPrincipal


class OrganizationOutput(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]


class ApiKeyOutput(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]


class MeOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["user", "api_key"])
    email = serializers.EmailField(allow_null=True)
    account_type = serializers.CharField(allow_null=True)
    is_staff = serializers.BooleanField()
    organization = OrganizationOutput(allow_null=True, help_text="The key's organization (API keys only).")


class MeApi(APIView):
    @extend_schema(responses=MeOutput, summary="Who the request is authenticated as")
    def get(self, request: Request) -> Response:
        actor = request.user
        if isinstance(actor, ApiKeyPrincipal):
            data = {
                "kind": "api_key",
                "email": None,
                "account_type": None,
                "is_staff": False,
                "organization": actor.api_key.organization,
            }
        else:
            user: User = actor  # type: ignore[assignment]  # IsAuthenticated let only users and keys through
            data = {
                "kind": "user",
                "email": user.email,
                "account_type": user.account_type,
                "is_staff": user.is_staff,
                "organization": None,
            }
        return Response(MeOutput(data).data)


class OrganizationListApi(generics.ListAPIView):
    serializer_class = OrganizationOutput

    def get_queryset(self) -> QuerySet[Organization]:
        return organizations_visible_to(self.request.user).distinct()  # type: ignore[arg-type]


class OrganizationDetailApi(APIView):
    @extend_schema(responses=OrganizationOutput)
    def get(self, request: Request, organization_id: int) -> Response:
        organization = organization_for(request.user, pk=organization_id)  # type: ignore[arg-type]
        return Response(OrganizationOutput(organization).data)


class MemberOutput(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email")
    joined_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "joined_at"]


class MemberListApi(generics.ListAPIView):
    serializer_class = MemberOutput

    def get_queryset(self) -> QuerySet[Membership]:
        organization = organization_for(self.request.user, pk=self.kwargs["organization_id"])  # type: ignore[arg-type]
        return selectors.organization_members(organization)


def _owner_user(request: Request, organization: Organization) -> User:
    """API keys are managed by owners signed in as themselves, never by a key."""
    actor = request.user
    if not isinstance(actor, User) or not can_manage_organization(actor, organization):
        raise PermissionDenied("Only an owner of this organization, signed in, may manage its API keys.")
    return actor


class ApiKeyCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class ApiKeyCreatedOutput(ApiKeyOutput):
    key = serializers.CharField(help_text="The key itself. Shown only in this response; store it now.")

    class Meta(ApiKeyOutput.Meta):
        fields = [*ApiKeyOutput.Meta.fields, "key"]


class ApiKeyListCreateApi(generics.ListAPIView):
    serializer_class = ApiKeyOutput

    def get_queryset(self) -> QuerySet[ApiKey]:
        organization = organization_for(self.request.user, pk=self.kwargs["organization_id"])  # type: ignore[arg-type]
        return selectors.organization_api_keys(organization)

    @extend_schema(request=ApiKeyCreateInput, responses={201: ApiKeyCreatedOutput}, summary="Create an API key")
    def post(self, request: Request, organization_id: int) -> Response:
        organization = organization_for(request.user, pk=organization_id)  # type: ignore[arg-type]
        owner = _owner_user(request, organization)
        payload = ApiKeyCreateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        api_key, raw_key = services.api_key_create(
            organization=organization, name=payload.validated_data["name"], actor=owner
        )
        api_key.key = raw_key  # type: ignore[attr-defined]
        return Response(ApiKeyCreatedOutput(api_key).data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeApi(APIView):
    @extend_schema(request=None, responses=ApiKeyOutput, summary="Revoke an API key")
    def delete(self, request: Request, organization_id: int, api_key_id: int) -> Response:
        organization = organization_for(request.user, pk=organization_id)  # type: ignore[arg-type]
        owner = _owner_user(request, organization)
        api_key: ApiKey = get_object_or_404(selectors.organization_api_keys(organization), pk=api_key_id)
        api_key = services.api_key_revoke(api_key=api_key, actor=owner)
        return Response(ApiKeyOutput(api_key).data)
