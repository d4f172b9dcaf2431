from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "crowdplatform.quality"
    label = "quality"
    verbose_name = "Quality"
