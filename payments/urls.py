"""Payments URLs under /payments/ (webhooks) and the money pages."""

from __future__ import annotations

from django.urls import path

from payments import views, views_webhooks

app_name = "payments"

urlpatterns: list = [
    # --- Webhooks (payments/webhooks.py) ---
    path("payments/stripe/webhook/", views_webhooks.stripe_webhook, name="stripe_webhook"),
    path("payments/stripe/connect-webhook/", views_webhooks.stripe_connect_webhook, name="stripe_connect_webhook"),
    # --- Connect onboarding (payments/connect.py) ---
    path("rater/payouts/setup/", views.connect_setup, name="connect_setup"),
    path("rater/payouts/return/", views.connect_return, name="connect_return"),
    path("rater/payouts/refresh/", views.connect_refresh, name="connect_refresh"),
    # --- Pages ---
    # Rater
    path("rater/earnings/", views.earnings, name="earnings"),
    path("rater/earnings/<int:earning_id>/appeal/", views.earning_appeal_create, name="earning_appeal"),
    # Client
    path("client/orgs/<slug:slug>/billing/", views.billing, name="billing"),
    path("client/orgs/<slug:slug>/billing/fund/", views.billing_fund, name="billing_fund"),
    path("client/orgs/<slug:slug>/billing/bonus/", views.billing_bonus, name="billing_bonus"),
    path(
        "client/orgs/<slug:slug>/billing/fundings/<int:funding_id>/status/",
        views.funding_status,
        name="funding_status",
    ),
    # Staff
    path("staff/payouts/", views.staff_payouts, name="staff_payouts"),
    path("staff/payouts/run/", views.staff_payout_run, name="staff_payout_run"),
    path("staff/payouts/<int:payout_id>/retry/", views.staff_payout_retry, name="staff_payout_retry"),
    path("staff/payouts/holds/", views.staff_payout_hold, name="staff_payout_hold"),
    path(
        "staff/payouts/holds/<int:hold_id>/release/",
        views.staff_payout_hold_release,
        name="staff_payout_hold_release",
    ),
    path("staff/payouts/reconcile/", views.staff_reconcile, name="staff_reconcile"),
    path("staff/payouts/appeals/<int:appeal_id>/decide/", views.staff_appeal_decide, name="staff_appeal_decide"),
    path("staff/payouts/raters/<int:user_id>/", views.staff_rater_money, name="staff_rater_money"),
    path(
        "staff/payouts/raters/<int:user_id>/earnings/<int:earning_id>/reject/",
        views.staff_earning_reject,
        name="staff_earning_reject",
    ),
    path("staff/payouts/raters/<int:user_id>/earnings/hold/", views.staff_earnings_hold, name="staff_earnings_hold"),
    path(
        "staff/payouts/raters/<int:user_id>/earnings/release/",
        views.staff_earnings_release,
        name="staff_earnings_release",
    ),
    path("staff/payouts/raters/<int:user_id>/bonus/", views.staff_bonus, name="staff_bonus"),
]
