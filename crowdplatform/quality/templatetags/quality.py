"""Figures on the quality pages: shares as percentages, seconds, and evidence as readable pairs."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def percent(share: float | None) -> str:
    """0.333 -> "33%"; a dash when unknown."""
    if share is None or share == "":
        return "—"
    return f"{round(float(share) * 100)}%"


@register.filter
def secs(value: float | None) -> str:
    """Seconds with a sensible precision: "4.2 s", "45 s"; a dash when unknown."""
    if value is None or value == "":
        return "—"
    value = float(value)
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


@register.filter
def evidence_items(evidence: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An action's evidence as (label, value) pairs, floats rounded, nested values flattened."""
    pairs = []
    for key, value in (evidence or {}).items():
        if isinstance(value, float):
            shown = f"{value:.3g}"
        elif isinstance(value, dict):
            shown = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value[:10]) + (f" … ({len(value)} in all)" if len(value) > 10 else "")
        else:
            shown = str(value)
        pairs.append((key.replace("_", " "), shown))
    return pairs
