"""The closing checklist: what each item holds, and whether it is done, missing or waived."""
from __future__ import annotations

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l, lazy_pgettext

from ..models import Document, Incident, Payment, Report, VisitAct, Waiver
from ..outcomes import end_sources

ITEMS = ("traceability", "report", "documents", "acts", "payment")
# Traceability is Cabinet's own record of the call: nobody may waive it.
WAIVABLE = ITEMS[1:]

# The items each outcome closes with. A visit held, by video or by telephone, or cut short, is a
# consultation: report, documents, act and payment apply (each may be waived with a reason). A
# patient who did not come had no consultation: no report, document or act, and nothing to bill
# the health insurance. Their payment item stays: French practices usually ask nothing (waived,
# "no fee"), and some ask a no-show fee they announced beforehand (a payment request, not an act).
APPLIES = {
    "held": ITEMS, "phone": ITEMS, "outside": ITEMS, "left_early": ITEMS,
    "no_show": ("traceability", "payment"),
}


def item_titles() -> dict:
    return {"traceability": _l("Traceability"), "report": _l("Report"), "documents": _l("Documents sent"),
            "acts": _l("Act coded"), "payment": _l("Payment requested")}


def state_names() -> dict:
    return {"done": _l("Done"), "missing": _l("Missing"), "waived": lazy_pgettext("checklist item", "Waived"),
            "not_needed": _l("Not needed")}


@dataclass
class Item:
    key: str
    state: str                  # done, missing, waived or not_needed (the outcome does not need it)
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
    def outcome(self) -> str:
        return self.appt.outcome_shown

    @property
    def applies(self) -> tuple:
        return APPLIES.get(self.outcome, ITEMS)

    @property
    def traced(self) -> bool:
        """Traceability says what happened: an outcome, with the facts it rests on."""
        appt, outcome = self.appt, self.outcome
        if outcome == "held":
            return appt.consented and appt.admitted_at is not None and appt.call_ended_at is not None
        if outcome == "phone":
            return appt.outcome_at is not None and bool(appt.outcome_reason.strip())
        if outcome in ("outside", "left_early"):
            return appt.admitted_at is None or appt.call_ended_at is not None
        return outcome == "no_show"

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
        if key not in self.applies:
            return Item(key, "not_needed")
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


def outcome_sentence(appt, time) -> str:
    """What traceability says happened, in one sentence; ``time`` formats a UTC time as HH:MM."""
    outcome, reason = appt.outcome_shown, appt.outcome_reason.strip()
    if outcome == "held":
        return str(_l("Held in Cabinet by audio.") if appt.mode == "audio" else _l("Held in Cabinet by video."))
    if outcome == "phone":
        return str(_l("Held by telephone at %(time)s. Why: %(reason)s", time=time(appt.outcome_at), reason=reason))
    if outcome == "no_show":
        return str(_l("The patient did not come: they never entered the waiting room, so no consent was given "
                      "and no call took place."))
    if outcome == "outside":
        text = _l("The call ended outside Cabinet at %(time)s (%(source)s).", time=time(appt.call_ended_at),
                  source=end_sources()[appt.call_end_source])
    elif outcome == "left_early":
        if appt.admitted_at is None:
            text = _l("The patient left the waiting room before being admitted.")
        else:
            text = _l("The patient left early; the call ended at %(time)s (%(source)s).",
                      time=time(appt.call_ended_at), source=end_sources()[appt.call_end_source])
    else:
        return str(_l("Not recorded yet: say how the visit ended."))
    return f"{text} {_l('Why: %(reason)s', reason=reason)}" if reason else str(text)
