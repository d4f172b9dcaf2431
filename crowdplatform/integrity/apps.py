from django.apps import AppConfig


class IntegrityConfig(AppConfig):
    name = "crowdplatform.integrity"
    label = "integrity"
    verbose_name = "Integrity: public leaderboards"
