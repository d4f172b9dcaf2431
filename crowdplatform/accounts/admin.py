from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from crowdplatform.accounts import services
from crowdplatform.accounts.models import ApiKey, Invitation, Membership, Organization, User
from crowdplatform.core.admin import ReadOnlyAdmin
from crowdplatform.core.errors import ApplicationError


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "account_type", "is_staff", "is_active", "date_joined", "last_login"]
    list_filter = ["account_type", "is_staff", "is_active"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("first_name", "last_name", "account_type")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "account_type", "password1", "password2")}),)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Accounts are deactivated (is_active), never deleted: votes, ledger entries, audit rows and the
        # public leaderboards' append-only records refer to them, and the database refuses to rewrite those.
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    fields = ["user", "role", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(ReadOnlyAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "organization", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email", "organization__name"]


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["name", "organization", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["name", "prefix", "organization__name"]
    exclude = ["hashed_key"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            try:
                services.api_key_revoke(api_key=api_key, actor=request.user)  # type: ignore[arg-type]
            except ApplicationError as error:
                messages.error(request, f"{api_key}: {error.message}")
            else:
                revoked += 1
        messages.success(request, f"Revoked {revoked} key(s).")
