from django.contrib import admin

from crowdplatform.core.admin import ReadOnlyAdmin
from crowdplatform.raters.models import ExpertiseDomain, Qualification, QualificationTest, RaterProfile


@admin.register(RaterProfile)
class RaterProfileAdmin(ReadOnlyAdmin):
    list_display = ["user", "display_name", "status", "country", "submitted_at"]
    list_filter = ["status", "country"]
    search_fields = ["user__email", "display_name"]


@admin.register(ExpertiseDomain)
class ExpertiseDomainAdmin(admin.ModelAdmin):
    """Staff manage the list of domains here; a domain in use is retired, not deleted."""

    list_display = ["name", "slug", "is_active"]
    list_filter = ["is_active"]
    prepopulated_fields = {"slug": ("name",)}

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(QualificationTest)
class QualificationTestAdmin(admin.ModelAdmin):
    """Staff define tests here until the qualification-test pages arrive; tests in use are retired, not deleted."""

    list_display = ["name", "domain", "language", "pass_score", "validity_days", "is_active"]
    list_filter = ["is_active", "domain", "language"]

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(Qualification)
class QualificationAdmin(ReadOnlyAdmin):
    list_display = ["profile", "test", "score", "source", "granted_at", "expires_at", "revoked_at"]
    list_filter = ["source", "test"]
    search_fields = ["profile__user__email"]
