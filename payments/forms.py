"""Forms for the money pages. Amounts are typed in dollars and cents and become integer cents here,
through Decimal, never a float; the domain functions check everything again."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.conf import settings

from crowdplatform.accounts.models import AccountType, User

_AMOUNT = re.compile(r"\d+(?:\.\d+)?")
MIN_REASON_CHARS = 10  # as payments.earnings asks; checked here so the form says so before any work


def _money(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d} USD"


def cents_from_dollars(text: str, *, minimum: int, maximum: int) -> int:
    """ "250", "250.5" or "250.50" dollars -> 25050 cents. Raises ValidationError with words a person
    understands for anything else: not a number, more than two decimals, zero or negative, outside
    [minimum, maximum]."""
    value = (text or "").strip()
    if value.startswith("-"):
        raise forms.ValidationError("Enter an amount above zero.", code="not_positive")
    if not _AMOUNT.fullmatch(value):
        raise forms.ValidationError("Enter an amount in dollars, like 250 or 250.00.", code="not_a_number")
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern only lets plain decimals through
        raise forms.ValidationError("Enter an amount in dollars, like 250 or 250.00.", code="not_a_number") from None
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise forms.ValidationError("Use at most two decimals: amounts are in whole cents.", code="too_precise")
    cents = int(amount * 100)
    if cents <= 0:
        raise forms.ValidationError("Enter an amount above zero.", code="not_positive")
    if cents < minimum:
        raise forms.ValidationError(f"The smallest amount is {_money(minimum)}.", code="too_small")
    if cents > maximum:
        raise forms.ValidationError(f"The largest amount is {_money(maximum)}.", code="too_large")
    return cents


class AmountField(forms.CharField):
    """Dollars and cents typed as text; `clean` returns integer cents within [minimum, maximum]
    (names of settings, read when the form is used, so a changed setting applies at once)."""

    def __init__(self, *, minimum: str | int, maximum: str | int, **kwargs: Any) -> None:
        self.minimum, self.maximum = minimum, maximum
        kwargs.setdefault("max_length", 20)
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal", "class": "input-short"}))
        super().__init__(**kwargs)

    def clean(self, value: Any) -> int:  # type: ignore[override]
        text = super().clean(value)
        return cents_from_dollars(text, minimum=_limit(self.minimum), maximum=_limit(self.maximum))


def _limit(value: str | int) -> int:
    return int(getattr(settings, value)) if isinstance(value, str) else value


def _reason_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        min_length=MIN_REASON_CHARS,
        max_length=2000,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"min_length": f"Give a reason of at least {MIN_REASON_CHARS} characters."},
    )


# --- Client -------------------------------------------------------------------------------------


class FundingForm(forms.Form):
    amount = AmountField(minimum="FUNDING_MIN_CENTS", maximum="FUNDING_MAX_CENTS", label="Amount (USD)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].help_text = (
            f"Dollars and cents, e.g. 250.00: from {_money(settings.FUNDING_MIN_CENTS)} "
            f"to {_money(settings.FUNDING_MAX_CENTS)}. You pay on Stripe's page."
        )


class BonusForm(forms.Form):
    """A client's bonus to a rater of one of its studies, who is known to the client by pseudonym only.

    `studies` is [(study, [pseudonym, ...]), ...]: the organization's studies that have raters.
    """

    study = forms.TypedChoiceField(coerce=int, label="Study")
    rater = forms.ChoiceField(label="Rater", help_text="Raters appear under a pseudonym that is stable within a study.")
    amount = AmountField(minimum=1, maximum="BONUS_MAX_CENTS", label="Amount (USD)")
    reason = _reason_field("Reason", "Shown to the rater with the bonus.")
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args: Any, studies: list[tuple[Any, list[str]]], **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("idempotency_key", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
        self.raters_by_study = {study.pk: set(pseudonyms) for study, pseudonyms in studies}
        self.fields["study"].choices = [("", "Choose a study"), *((study.pk, study.name) for study, _ in studies)]
        self.fields["rater"].choices = [
            ("", "Choose a rater"),
            *((study.name, [(name, name) for name in pseudonyms]) for study, pseudonyms in studies),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        study_id, rater = data.get("study"), data.get("rater")
        if study_id is not None and rater and rater not in self.raters_by_study.get(study_id, set()):
            self.add_error("rater", "This rater did not work on the chosen study.")
        return data


# --- Rater --------------------------------------------------------------------------------------


class AppealForm(forms.Form):
    message = forms.CharField(
        label="Why is the rejection wrong?",
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Staff read your appeal and answer here.",
    )


# --- Staff --------------------------------------------------------------------------------------


class ReasonForm(forms.Form):
    reason = _reason_field("Reason", "The rater sees it.")


class NoteForm(forms.Form):
    note = forms.CharField(label="Note", max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class PayoutHoldForm(forms.Form):
    email = forms.EmailField(label="Rater's email")
    reason = forms.CharField(label="Reason", max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_email(self) -> User:  # type: ignore[override]
        email = self.cleaned_data["email"]
        rater = User.objects.filter(email__iexact=email, account_type=AccountType.RATER).first()
        if rater is None:
            raise forms.ValidationError("No rater has this email address.", code="unknown_rater")
        return rater


class AppealDecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("uphold", "Uphold: reinstate the pay"), ("deny", "Deny")], widget=forms.RadioSelect
    )
    response = _reason_field("Response", "The rater reads it.")


class StaffBonusForm(forms.Form):
    amount = AmountField(minimum=1, maximum="BONUS_MAX_CENTS", label="Amount (USD)")
    reason = _reason_field("Reason", "Shown to the rater with the bonus; the platform pays it.")
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=100)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("idempotency_key", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)
