from django.apps import AppConfig


class RatersConfig(AppConfig):
    name = "crowdplatform.raters"
    label = "raters"
    verbose_name = "Raters"
