from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "crowdplatform.core"
    label = "core"
    verbose_name = "Core"
