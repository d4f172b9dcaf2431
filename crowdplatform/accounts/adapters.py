from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.http import HttpRequest

from crowdplatform.accounts.access import home_url_for


class AccountAdapter(DefaultAccountAdapter):
    def get_login_redirect_url(self, request: HttpRequest) -> str:
        """Each kind of user lands in its own area."""
        return home_url_for(request.user)  # type: ignore[arg-type]

    def get_email_verification_redirect_url(self, email_address: object) -> str:
        request = self.request
        if request.user.is_authenticated:
            return home_url_for(request.user)  # type: ignore[arg-type]
        return super().get_email_verification_redirect_url(email_address)
