"""Formatting for study pages: shares, money, durations, and the actions a study offers."""

from __future__ import annotations

from django import template

from evaluations.models import Study, StudyStatus

register = template.Library()

# The buttons a study shows, by status: (action, label, button style).
ACTIONS: dict[str, list[tuple[str, str, str]]] = {
    StudyStatus.DRAFT: [("launch", "Launch", "btn-primary"), ("archive", "Discard (archive)", "btn-secondary")],
    StudyStatus.LIVE: [("pause", "Pause", "btn-secondary"), ("complete", "Complete", "btn-secondary")],
    StudyStatus.PAUSED: [("resume", "Resume", "btn-primary"), ("complete", "Complete", "btn-secondary")],
    StudyStatus.COMPLETED: [("archive", "Archive", "btn-secondary")],
    StudyStatus.ARCHIVED: [],
}


@register.filter
def actions(study: Study) -> list[tuple[str, str, str]]:
    return ACTIONS[study.status]


@register.filter
def percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%".replace(".0%", "%")


@register.filter
def percent_number(share: float | None) -> int:
    return round((share or 0) * 100)


@register.filter
def dollars(cents: int | None) -> str:
    return "—" if cents is None else f"${cents / 100:,.2f}"


@register.filter
def duration(seconds: int | None) -> str:
    """Seconds as "3 h 20 min", "12 min", "40 s"; a dash when unknown."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{round(hours / 24)} days"


# --- Server-rendered bar charts (SVG): one 24 px row per bar -------------------------------------
ROW = 24


@register.filter
def chart_height(rows: int) -> int:
    return max(rows, 1) * ROW


@register.filter
def row_y(index: int, offset: int) -> int:
    return index * ROW + offset


@register.filter
def bar_width(share: float | None, full: int) -> int:
    return round((share or 0) * full)


@register.filter
def requirements_text(requirements: dict | None) -> str:
    """A study's rater requirements in words: "languages en, de; expertise medicine"."""
    requirements = requirements or {}
    parts = [
        f"{label} {', '.join(requirements[key])}"
        for key, label in (("languages", "languages"), ("countries", "countries"), ("domains", "expertise"))
        if requirements.get(key)
    ]
    if requirements.get("qualifications"):
        count = len(requirements["qualifications"])
        parts.append(f"{count} qualification{'s' if count > 1 else ''}")
    return "; ".join(parts) or "any approved rater"
