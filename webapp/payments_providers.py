"""Payment providers: how a payment request reaches the patient and how it becomes paid.

A provider is a small object with ``request``, ``status`` and ``mark_paid``.
The only one built is ``offline``: the patient sees the amount and the
practice's instructions (bank transfer, cheque, card at the next visit...) and
staff mark the request paid. An online card provider would sit beside it,
built on its official library and tested against that provider's own test
mode; none is built without such a way to test it.
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _l, lazy_pgettext

from .money import MAX_CENTS
from .models import AuditEvent, Payment, db, utcnow

STATUSES = ("requested", "paid", "waived", "cancelled")

STATUS_LABELS = {
    "requested": lazy_pgettext("payment status", "Requested"),
    "paid": lazy_pgettext("payment status", "Paid"),
    "waived": lazy_pgettext("payment status", "Waived"),
    "cancelled": lazy_pgettext("payment status", "Cancelled"),
}



class PaymentError(ValueError):
    """A payment request cannot change this way (e.g. marking a cancelled request paid)."""


class OfflineProvider:
    """Paid outside Cabinet, following the practice's instructions; staff record it."""

    name = "offline"
    label = _l("Paid to the practice (offline)")

    def request(self, appointment, amount_cents: int, actor, currency: str = "EUR") -> Payment:
        """Create the payment request of a visit."""
        if not isinstance(amount_cents, int) or not 0 < amount_cents <= MAX_CENTS:
            raise PaymentError("amount")
        with db.atomic():
            payment = Payment.create(appointment=appointment, amount_cents=amount_cents, currency=currency,
                                     provider=self.name, updated_by=actor if hasattr(actor, "role") else None)
            AuditEvent.record(actor, "payment.requested", appointment)
        return payment

    def mark_paid(self, payment: Payment, actor) -> Payment:
        """Staff record that the patient paid."""
        return _change(payment, actor, "paid", "payment.marked_paid", paid_at=utcnow())

    def cancel(self, payment: Payment, actor) -> Payment:
        """Staff withdraw the request."""
        return _change(payment, actor, "cancelled", "payment.cancelled")


def _change(payment: Payment, actor, status: str, action: str, **fields) -> Payment:
    if payment.status != "requested":
        raise PaymentError(payment.status)
    with db.atomic():
        # Conditional update: two tabs clicking at once change it once.
        changed = (Payment.update(status=status, updated_by=actor, **fields)
                   .where(Payment.id == payment.id, Payment.status == "requested").execute())
        if not changed:
            raise PaymentError("changed")
        AuditEvent.record(actor, action, payment.appointment)
    return Payment.get_by_id(payment.id)


PROVIDERS = {"offline": OfflineProvider()}
DEFAULT_PROVIDER = "offline"


def provider_for(payment_or_name) -> OfflineProvider:
    """The provider of a payment (or by name); unknown names fall back to the default."""
    name = getattr(payment_or_name, "provider", payment_or_name)
    return PROVIDERS.get(name, PROVIDERS[DEFAULT_PROVIDER])


def current_payment(appointment) -> Payment | None:
    """The payment request that counts for a visit: the latest not cancelled, else the latest."""
    rows = list(Payment.select().where(Payment.appointment == appointment).order_by(Payment.id.desc()))
    live = [p for p in rows if p.status != "cancelled"]
    return (live or rows or [None])[0]
