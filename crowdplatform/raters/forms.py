from __future__ import annotations

from django import forms

from crowdplatform.raters.models import ExpertiseDomain, Proficiency, QualificationTest, RaterProfile
from crowdplatform.raters.services import TRANSITIONS, CampaignInput, ProfileInput

LANGUAGE_ROWS = 3


class RaterProfileForm(forms.Form):
    display_name = forms.CharField(
        max_length=80, required=False, help_text="How staff address you. Clients never see it."
    )
    country = forms.CharField(max_length=2, required=False, help_text="Where you live: two-letter ISO code, e.g. DE.")
    timezone = forms.CharField(max_length=64, required=False, label="Time zone", help_text="e.g. Europe/Berlin")
    years_of_experience = forms.IntegerField(min_value=0, max_value=80, required=False)
    domains = forms.ModelMultipleChoiceField(
        queryset=ExpertiseDomain.objects.filter(is_active=True),
        to_field_name="slug",
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Expertise domains",
    )
    credentials = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text="Degrees, licences, positions. Only staff see this.",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        for row in range(1, LANGUAGE_ROWS + 1):
            self.fields[f"language_{row}"] = forms.CharField(max_length=12, required=False, label=f"Language {row}")
            self.fields[f"proficiency_{row}"] = forms.ChoiceField(
                choices=[("", "—"), *Proficiency.choices], required=False, label=f"Proficiency {row}"
            )

    def profile_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if not name.startswith(("language_", "proficiency_"))]

    def language_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [(self[f"language_{row}"], self[f"proficiency_{row}"]) for row in range(1, LANGUAGE_ROWS + 1)]

    @classmethod
    def initial_for(cls, profile: RaterProfile) -> dict[str, object]:
        initial: dict[str, object] = {
            "display_name": profile.display_name,
            "country": profile.country,
            "timezone": profile.timezone,
            "years_of_experience": profile.years_of_experience,
            "credentials": profile.credentials,
            "domains": list(profile.domains.values_list("slug", flat=True)),
        }
        for row, language in enumerate(profile.languages.all()[:LANGUAGE_ROWS], start=1):
            initial[f"language_{row}"] = language.language
            initial[f"proficiency_{row}"] = language.proficiency
        return initial

    def to_input(self) -> ProfileInput:
        data = self.cleaned_data
        languages = tuple(
            (data[f"language_{row}"].strip(), data[f"proficiency_{row}"])
            for row in range(1, LANGUAGE_ROWS + 1)
            if data[f"language_{row}"].strip()
        )
        return ProfileInput(
            display_name=data["display_name"],
            country=data["country"].strip().upper(),
            timezone=data["timezone"].strip(),
            years_of_experience=data["years_of_experience"],
            credentials=data["credentials"],
            languages=languages,
            domain_slugs=tuple(domain.slug for domain in data["domains"]),
        )


class SubmitApplicationForm(forms.Form):
    consent_terms = forms.BooleanField(required=False, label="I agree to the terms of work.")
    consent_pay_policy = forms.BooleanField(
        required=False, label="I have read the pay policy: pay per accepted task, never below the hourly floor."
    )


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[(name, name.capitalize()) for name in TRANSITIONS])
    reason = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Required to reject or suspend."
    )
    profiles = forms.ModelMultipleChoiceField(queryset=RaterProfile.objects.all())


class QualificationTestImportForm(forms.Form):
    name = forms.CharField(max_length=150, help_text="e.g. Medical accuracy — English")
    domain = forms.ModelChoiceField(queryset=ExpertiseDomain.objects.filter(is_active=True), to_field_name="slug")
    language = forms.CharField(max_length=12, help_text="BCP 47 code, e.g. en")
    pass_score = forms.FloatField(min_value=0.01, max_value=1, initial=0.8, help_text="Share of items right to pass")
    items = forms.FileField(
        label="Items (JSONL)",
        help_text='One item per line: {"item_id", "prompt", "response_a", "response_b", "answer", "explanation"}; '
        "answer is A, B, tie or both_bad.",
    )


class QualificationGrantForm(forms.Form):
    test = forms.ModelChoiceField(queryset=QualificationTest.objects.filter(is_active=True))
    score = forms.FloatField(min_value=0, max_value=1, help_text="Share between 0 and 1, e.g. 0.9")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="Why you grant it by hand.")


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="The rater sees this reason.")


def _codes(raw: str, *, upper: bool = False) -> tuple[str, ...]:
    codes = (code.strip() for code in raw.split(","))
    return tuple(code.upper() if upper else code for code in codes if code)


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=150)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    raters_wanted = forms.IntegerField(min_value=1)
    languages = forms.CharField(required=False, help_text="Comma-separated codes, e.g. en, de")
    domains = forms.ModelMultipleChoiceField(
        queryset=ExpertiseDomain.objects.filter(is_active=True),
        to_field_name="slug",
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )
    countries = forms.CharField(required=False, help_text="Comma-separated ISO codes; empty: anywhere")

    def to_input(self) -> CampaignInput:
        data = self.cleaned_data
        return CampaignInput(
            name=data["name"],
            description=data["description"],
            raters_wanted=data["raters_wanted"],
            languages=_codes(data["languages"]),
            domain_slugs=tuple(domain.slug for domain in data["domains"]),
            countries=_codes(data["countries"], upper=True),
        )
