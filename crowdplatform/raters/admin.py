from django.contrib import admin

from crowdplatform.core.admin import ReadOnlyAdmin
from crowdplatform.raters.models import RaterProfile


@admin.register(RaterProfile)
class RaterProfileAdmin(ReadOnlyAdmin):
    list_display = ["user", "created_at"]
    search_fields = ["user__email"]
