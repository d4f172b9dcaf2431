from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "crowdplatform.accounts"
    label = "accounts"
    verbose_name = "Accounts and organizations"
