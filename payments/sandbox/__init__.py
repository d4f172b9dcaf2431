"""A local, Stripe-compatible stand-in for the parts of Stripe the platform uses (see server.py).

Standard library only, no Django and no `stripe` import, so it also runs standalone:
`python -m payments.sandbox.server`.
"""

from payments.sandbox.errors import ApiError
from payments.sandbox.server import SandboxServer
from payments.sandbox.webhooks import Delivery

__all__ = ["ApiError", "Delivery", "SandboxServer"]
