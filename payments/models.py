# Ledger, pay rules, Stripe Connect payouts and client funding: filled by the Payments issue.
