"""Forms of the quality pages. They check shape and length; the services check everything again."""

from __future__ import annotations

from typing import Any

from django import forms

from crowdplatform.quality.models import ActionKind
from crowdplatform.quality.services import MAX_MESSAGE_CHARS, MAX_REASON_CHARS, MIN_REASON_CHARS
from evaluations.models import Study

STAFF_KIND_CHOICES = [
    (ActionKind.CLEAR, "Clear: lift pauses, release held pay, re-include excluded votes"),
    (ActionKind.WARN, "Warn"),
    (ActionKind.PAUSE, "Pause on the study"),
    (ActionKind.HOLD_PAY, "Hold pending pay"),
    (ActionKind.EXCLUDE_VOTES, "Exclude their votes from the study's results"),
    (ActionKind.REJECT_PAY, "Reject pay for the tasks ticked in the vote sample"),
    (ActionKind.SUSPEND, "Suspend the account"),
]


def _text(label: str, *, minimum: int, maximum: int, help_text: str = "", rows: int = 3) -> forms.CharField:
    return forms.CharField(
        label=label,
        min_length=minimum,
        max_length=maximum,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": rows}),
        error_messages={"min_length": f"Write at least {minimum} characters."},
    )


class StaffActionForm(forms.Form):
    kind = forms.ChoiceField(label="Action", choices=STAFF_KIND_CHOICES)
    study = forms.ModelChoiceField(
        label="Study",
        queryset=Study.objects.none(),
        required=False,
        empty_label="All studies / the account",
        help_text="Pausing and excluding votes need a study; a clear without one covers every study.",
    )
    reason = _text(
        "Reason (the rater reads it word for word)",
        minimum=MIN_REASON_CHARS,
        maximum=MAX_REASON_CHARS,
        help_text="Say what you saw and what the rater can do about it.",
    )
    # The tasks whose pay is rejected come as `task_ids` checkboxes of the vote sample; the service
    # checks each is the rater's.

    def __init__(self, *args: Any, studies: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["study"].queryset = studies


class ProposalDecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("apply", "Apply"), ("dismiss", "Dismiss")])
    note = forms.CharField(required=False, max_length=MAX_REASON_CHARS, widget=forms.Textarea(attrs={"rows": 2}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("decision") == "dismiss" and len((data.get("note") or "").strip()) < MIN_REASON_CHARS:
            self.add_error("note", f"Say why it is dismissed (at least {MIN_REASON_CHARS} characters).")
        return data


class AppealForm(forms.Form):
    message = _text(
        "Why is this wrong?", minimum=1, maximum=MAX_MESSAGE_CHARS, help_text="Staff read it and answer here."
    )


class AppealDecisionForm(forms.Form):
    decision = forms.ChoiceField(
        choices=[("uphold", "Uphold: reverse the action"), ("deny", "Deny: the action stands")],
        widget=forms.RadioSelect,
    )
    response = _text(
        "Answer to the rater",
        minimum=MIN_REASON_CHARS,
        maximum=MAX_REASON_CHARS,
        help_text="The rater reads it.",
        rows=2,
    )
