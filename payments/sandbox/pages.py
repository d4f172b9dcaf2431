"""The two hosted pages Stripe would show users: Connect onboarding and Checkout. Plain HTML, no assets."""

from __future__ import annotations

from html import escape
from typing import Any

from payments.sandbox.params import format_amount

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 34rem; margin: 3rem auto; padding: 0 1rem; color: #1a1a1a; }
.banner { background: #fff4d6; border: 1px solid #e8c766; padding: .6rem .8rem; border-radius: 6px; font-size: .9rem; }
button { font-size: 1rem; padding: .55rem 1rem; margin: .3rem .3rem .3rem 0; border-radius: 6px; cursor: pointer; }
.primary { background: #635bff; color: #fff; border: 1px solid #635bff; }
.amount { font-size: 1.8rem; font-weight: 600; margin: .5rem 0 1rem; }
.error { color: #b00020; font-weight: 600; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        "<p class='banner'>Stripe sandbox: a local stand-in for Stripe's hosted pages. No real money moves "
        "and no card or bank data is entered.</p>"
        f"{body}</body></html>\n"
    )


def onboarding(*, account: dict[str, Any], token: str) -> str:
    account_id = escape(account["id"])
    email = escape(account.get("email") or "no email")
    return _page(
        "Sandbox onboarding",
        f"<h1>Sandbox onboarding for {account_id}</h1>"
        f"<p>Account {account_id} ({email}). This stands in for Stripe's hosted onboarding; no bank data is "
        "entered. Completing it activates the account's transfers capability and enables payouts.</p>"
        f"<form method='post' action='/sandbox/onboard/{escape(token)}'>"
        "<button class='primary' type='submit'>Complete onboarding</button></form>"
        f"<p><a href='/sandbox/onboard/{escape(token)}/leave'>Leave unfinished</a></p>",
    )


def checkout(*, session: dict[str, Any], lines: list[dict[str, Any]]) -> str:
    session_id = escape(session["id"])
    items = "".join(
        f"<li>{escape(line['name'])} × {line['quantity']}: "
        f"{escape(format_amount(line['unit_amount'] * line['quantity'], line['currency']))}</li>"
        for line in lines
    )
    email = session.get("customer_email")
    payer = f"<p>Paying as {escape(email)}</p>" if email else ""
    return _page(
        "Sandbox checkout",
        f"<h1>Pay {escape(lines[0]['name']) if lines else 'order'}</h1>"
        f"<p class='amount'>{escape(format_amount(session['amount_total'], session['currency']))}</p>"
        f"<ul>{items}</ul>{payer}"
        f"<form method='post' action='/sandbox/checkout/{session_id}'>"
        "<button class='primary' type='submit' name='outcome' value='paid'>Pay</button>"
        "<button type='submit' name='outcome' value='declined'>Decline</button>"
        "<button type='submit' name='outcome' value='async'>Pay by bank transfer (settles later)</button>"
        "</form>",
    )


def checkout_declined(*, session: dict[str, Any]) -> str:
    back = session.get("cancel_url")
    back_link = f" <a href='{escape(back)}'>Return to the site</a>" if back else ""
    return _page(
        "Card declined",
        "<h1>Payment failed</h1><p class='error'>Your card was declined.</p>"
        f"<p><a href='/sandbox/checkout/{escape(session['id'])}'>Try again</a>{back_link}</p>",
    )


def checkout_closed(*, session: dict[str, Any], success_url: str | None) -> str:
    link = f"<p><a href='{escape(success_url)}'>Return to the site</a></p>" if success_url else ""
    return _page(
        "Checkout closed",
        f"<h1>This Checkout Session is no longer open</h1><p>Status: {escape(session['status'])}, payment "
        f"{escape(session['payment_status'])}.</p>{link}",
    )


def not_found(what: str) -> str:
    return _page("Not found", f"<h1>Not found</h1><p>{escape(what)}</p>")
