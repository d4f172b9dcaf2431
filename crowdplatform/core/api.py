from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from crowdplatform.accounts.access import is_staff
from crowdplatform.core.models import AuditEvent
from crowdplatform.core.pagination import CursorPagination
from crowdplatform.core.selectors import AuditFilters, audit_events


class IsStaff(BasePermission):
    message = "Only staff may do this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return is_staff(request.user)  # type: ignore[arg-type]


class AuditEventOutput(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_label",
            "actor_user_id",
            "actor_api_key_id",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "organization_id",
            "data",
        ]


class AuditPagination(CursorPagination):
    ordering = ("-id",)


@extend_schema(
    summary="Browse the audit log (staff)",
    parameters=[
        OpenApiParameter("action", str, description='Exact action, or a prefix ending in "." such as "api_key."'),
        OpenApiParameter("actor", str, description="Part of the actor's label"),
        OpenApiParameter("organization", int),
        OpenApiParameter("target_type", str, description="app_label.model"),
        OpenApiParameter("target_id", str),
    ],
)
class AuditEventListApi(generics.ListAPIView):
    serializer_class = AuditEventOutput
    permission_classes = [IsStaff]
    pagination_class = AuditPagination

    def get_queryset(self) -> QuerySet[AuditEvent]:
        params = self.request.query_params
        organization = params.get("organization", "")
        return audit_events(
            AuditFilters(
                action=params.get("action", ""),
                actor=params.get("actor", ""),
                organization_id=int(organization) if organization.isdigit() else None,
                target_type=params.get("target_type", ""),
                target_id=params.get("target_id", ""),
            )
        )
