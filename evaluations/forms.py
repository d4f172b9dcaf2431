from __future__ import annotations

from typing import Any

from django import forms

from crowdplatform.raters.models import ExpertiseDomain, QualificationTest
from evaluations.models import FlagReason, SamplingPolicy, SkipReason, Study
from evaluations.services import StudyInput


def _codes(value: str, *, upper: bool) -> list[str]:
    codes = [code.strip() for code in value.replace(";", ",").split(",") if code.strip()]
    return [code.upper() if upper else code for code in codes]


class StudyForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    question = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What raters answer, e.g. “Which response helps the user more?”",
    )
    criteria = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="One per line, “name: what better means for it”, e.g. “correctness: the code runs and is right”.",
    )
    votes_per_pair = forms.IntegerField(
        min_value=1, max_value=20, initial=3, label="Raters per item pair", help_text="The overlap."
    )
    pay_per_task_cents = forms.IntegerField(min_value=1, label="Pay per task (cents)")
    est_seconds_per_task = forms.IntegerField(
        min_value=5,
        max_value=3600,
        initial=60,
        label="Estimated seconds per task",
        help_text="With the pay, this must reach the platform's hourly floor.",
    )
    sampling = forms.ChoiceField(choices=SamplingPolicy.choices, initial=SamplingPolicy.ACTIVE)
    gold_rate = forms.FloatField(
        min_value=0, max_value=0.5, initial=0.0, help_text="Share of tasks that are gold items (0 to 0.5)."
    )
    lease_seconds = forms.IntegerField(min_value=60, max_value=14400, initial=600, label="Lease (seconds)")
    budget_cents = forms.IntegerField(min_value=0, initial=0, label="Budget (cents)")
    languages = forms.CharField(required=False, help_text="Raters must work in one of these, e.g. “en, de”.")
    countries = forms.CharField(required=False, help_text="Raters must live in one of these, e.g. “US, GB”.")
    domains = forms.ModelMultipleChoiceField(
        queryset=ExpertiseDomain.objects.filter(is_active=True),
        to_field_name="slug",
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Expertise (any of)",
    )
    qualification = forms.ModelChoiceField(
        queryset=QualificationTest.objects.all(), required=False, label="Qualification required"
    )
    min_score = forms.FloatField(min_value=0, max_value=1, required=False, initial=0.8, label="Minimum score")

    def clean_criteria(self) -> list[dict[str, str]]:
        criteria = []
        for number, line in enumerate(self.cleaned_data["criteria"].splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, definition = line.partition(":")
            if not colon or not name.strip() or not definition.strip():
                raise forms.ValidationError(f"Line {number}: write “name: definition”.")
            criteria.append({"name": name.strip(), "definition": definition.strip()})
        return criteria

    def to_input(self) -> StudyInput:
        data = self.cleaned_data
        requirements: dict[str, Any] = {}
        if data["languages"]:
            requirements["languages"] = _codes(data["languages"], upper=False)
        if data["countries"]:
            requirements["countries"] = _codes(data["countries"], upper=True)
        if data["domains"]:
            requirements["domains"] = [domain.slug for domain in data["domains"]]
        if data["qualification"]:
            requirements["qualifications"] = [
                {"test_id": data["qualification"].pk, "min_score": data["min_score"] or 0.0}
            ]
        return StudyInput(
            name=data["name"],
            description=data["description"],
            question=data["question"],
            criteria=data["criteria"],
            requirements=requirements,
            votes_per_pair=data["votes_per_pair"],
            pay_per_task_cents=data["pay_per_task_cents"],
            est_seconds_per_task=data["est_seconds_per_task"],
            sampling=data["sampling"],
            gold_rate=data["gold_rate"],
            lease_seconds=data["lease_seconds"],
            budget_cents=data["budget_cents"],
        )

    @classmethod
    def initial_for(cls, study: Study) -> dict[str, Any]:
        requirements = study.requirements or {}
        qualifications = requirements.get("qualifications") or [{}]
        return {
            "name": study.name,
            "description": study.description,
            "question": study.question,
            "criteria": "\n".join(f"{c['name']}: {c['definition']}" for c in study.criteria),
            "votes_per_pair": study.votes_per_pair,
            "pay_per_task_cents": study.pay_per_task_cents,
            "est_seconds_per_task": study.est_seconds_per_task,
            "sampling": study.sampling,
            "gold_rate": study.gold_rate,
            "lease_seconds": study.lease_seconds,
            "budget_cents": study.budget_cents,
            "languages": ", ".join(requirements.get("languages", [])),
            "countries": ", ".join(requirements.get("countries", [])),
            "domains": requirements.get("domains", []),
            "qualification": qualifications[0].get("test_id"),
            "min_score": qualifications[0].get("min_score", 0.8),
        }


class SystemForm(forms.Form):
    name = forms.CharField(max_length=100)
    provider = forms.CharField(max_length=100, required=False)
    notes = forms.CharField(required=False, label="Version notes", widget=forms.Textarea(attrs={"rows": 2}))


class ItemsUploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL or CSV; every line must be valid or nothing is added.")


class BudgetForm(forms.Form):
    budget_cents = forms.IntegerField(min_value=0, label="Budget (cents)")


class SkipForm(forms.Form):
    reason = forms.ChoiceField(choices=SkipReason.choices)
    note = forms.CharField(max_length=500, required=False)


class FlagForm(forms.Form):
    reason = forms.ChoiceField(choices=FlagReason.choices)
    note = forms.CharField(max_length=1000, required=False)
