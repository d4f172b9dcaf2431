from __future__ import annotations

from typing import Any

from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.db import transaction
from django.http import HttpRequest

from crowdplatform.accounts.models import AccountType, Role, User
from crowdplatform.accounts.services import user_signup_complete


class SignupForm(AllauthSignupForm):
    account_type = forms.ChoiceField(
        label="I am signing up as",
        choices=[
            (AccountType.RATER, "A rater: I want to be paid to evaluate AI responses"),
            (AccountType.CLIENT, "A lab client: my organization wants to commission evaluations"),
        ],
        widget=forms.RadioSelect,
        initial=AccountType.RATER,
    )
    organization_name = forms.CharField(
        label="Organization name (lab clients)",
        max_length=200,
        required=False,
        help_text="Creates your organization with you as its owner. Leave empty if you are joining one by invitation.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("account_type") == AccountType.RATER:
            cleaned["organization_name"] = ""
        return cleaned

    def save(self, request: HttpRequest) -> User:
        from crowdplatform.raters.invites import campaign_from_session
        from crowdplatform.raters.services import rater_profile_join_campaign

        with transaction.atomic():
            user = super().save(request)
            user_signup_complete(
                user=user,
                account_type=self.cleaned_data["account_type"],
                organization_name=self.cleaned_data.get("organization_name", ""),
            )
            campaign = campaign_from_session(request)
            if campaign is not None and user.account_type == AccountType.RATER:
                # Signed up through a campaign's invite link: tag the application with it.
                rater_profile_join_campaign(profile=user.rater_profile, campaign=campaign, actor=user)
            return user


class OrganizationForm(forms.Form):
    name = forms.CharField(label="Organization name", max_length=200)


class InvitationForm(forms.Form):
    email = forms.EmailField(label="Email address")
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEMBER)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label="Key name", max_length=100, help_text="What uses this key, e.g. “nightly export script”."
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)
