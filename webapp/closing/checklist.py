"""The closing checklist: what each item holds, and whether it is done, missing or waived."""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

from ..models import Document, Incident, Payment, Report, VisitAct, Waiver

ITEMS = ("traceability", "report", "documents", "acts", "payment")
# Traceability is Cabinet's own record of the call: nobody may waive it.
WAIVABLE = ITEMS[1:]


def item_titles() -> dict:
    return {"traceability": _l("Traceability"), "report": _l("Report"), "documents": _l("Documents sent"),
            "acts": _l("Act coded"), "payment": _l("Payment requested")}


def state_names() -> dict:
    return {"done": _l("Done"), "missing": _l("Missing"), "waived": _l("Waived")}


@dataclass
class Item:
    key: str
    state: str                  # done, missing or waived
    waiver: Waiver | None = None

    @property
    def title(self):
        return item_titles()[self.key]


class Checklist:
    """Everything the checklist page shows about one visit, read once."""

    def __init__(self, appt):
        self.appt = appt
        self.report = Report.get_or_none(Report.appointment == appt)
        self.waivers = {w.item: w for w in Waiver.select().where(Waiver.appointment == appt)}
        self.documents = list(Document.of(appt))
        self.incidents = list(Incident.of(appt))
        self.acts = list(VisitAct.select().where(VisitAct.appointment == appt).order_by(VisitAct.id))
        self.payment = (Payment.select().where(Payment.appointment == appt, Payment.status != "cancelled")
                        .order_by(Payment.id.desc()).first())

    @property
    def sent(self) -> list:
        """Documents the practitioner gave the patient: at closing, or during the call."""
        return [d for d in self.documents if d.source == "closing"
                or (d.source == "call" and d.author == "practitioner")]

    @property
    def exchanged(self) -> list:
        return [d for d in self.documents if d.source == "call"]

    @property
    def reports(self) -> list:
        return [d for d in self.documents if d.source == "report"]

    @property
    def traced(self) -> bool:
        appt = self.appt
        return appt.consented and appt.admitted_at is not None and appt.call_ended_at is not None

    def done(self, key: str) -> bool:
        report = self.report
        return {
            "traceability": self.traced,
            "report": bool(report and any(t.strip() for t in (report.findings, report.decisions, report.prescriptions))),
            "documents": bool(self.sent),
            "acts": bool(self.acts),
            "payment": self.payment is not None and self.payment.status in ("requested", "paid"),
        }[key]

    def item(self, key: str) -> Item:
        if self.done(key):
            return Item(key, "done")
        waiver = self.waivers.get(key) if key in WAIVABLE else None
        return Item(key, "waived", waiver) if waiver else Item(key, "missing")

    @property
    def items(self) -> list[Item]:
        return [self.item(key) for key in ITEMS]

    @property
    def missing(self) -> list[Item]:
        return [i for i in self.items if i.state == "missing"]

    @property
    def total_cents(self) -> int:
        return sum(a.fee_cents for a in self.acts)
