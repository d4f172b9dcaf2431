"""Money on the payments pages: integer cents shown as an amount with two decimals and the currency."""

from __future__ import annotations

from django import template

from evaluations.templatetags.evaluations import duration

register = template.Library()


@register.filter
def money(cents: int | None, currency: str | None = "usd") -> str:
    """12345, "usd" -> "123.45 USD"; negative amounts keep their sign; a dash when unknown.

    Integer arithmetic only, so no amount is ever rounded on its way to the page.
    """
    if cents is None or cents == "":
        return "—"
    cents = int(cents)
    sign = "−" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d} {(currency or 'usd').upper()}"


@register.filter
def amount(cents: int | None) -> str:
    """The number alone ("123.45"), for big figures that print the currency code apart."""
    if cents is None or cents == "":
        return "—"
    return money(cents).rsplit(" ", 1)[0]


@register.filter
def seconds_words(seconds: float | None) -> str:
    """Time on task: "40 s", "12 min", "3 h 20 min"."""
    if seconds is None:
        return "—"
    return duration(round(seconds))


@register.filter
def per_hour(cents: int | None, currency: str | None = "usd") -> str:
    return "—" if cents is None or cents == "" else f"{money(cents, currency)}/h"


@register.filter
def requirement_words(name: str) -> str:
    """A Stripe requirement id ("individual.dob.day") in words ("date of birth (day)")."""
    known = {
        "business_type": "business type",
        "external_account": "bank account for payouts",
        "individual.dob.day": "date of birth (day)",
        "individual.dob.month": "date of birth (month)",
        "individual.dob.year": "date of birth (year)",
        "individual.email": "email address",
        "individual.first_name": "first name",
        "individual.last_name": "last name",
        "individual.phone": "phone number",
        "individual.address.line1": "address",
        "individual.address.city": "city",
        "individual.address.postal_code": "postal code",
        "individual.id_number": "identity number",
        "individual.ssn_last_4": "last 4 digits of the SSN",
        "individual.verification.document": "identity document",
        "tos_acceptance.date": "acceptance of Stripe's terms",
        "tos_acceptance.ip": "acceptance of Stripe's terms",
    }
    return known.get(name, name.replace("individual.", "").replace(".", " ").replace("_", " "))


@register.filter
def words(name: str) -> str:
    """An identifier in words: "balance_transactions" -> "balance transactions"."""
    return str(name).replace("_", " ")
