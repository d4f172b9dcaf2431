from django.contrib import admin

from crowdplatform.core.admin import ReadOnlyAdmin
from crowdplatform.raters.models import ExpertiseDomain, RaterProfile


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
