"""The words for how a visit ended (``Appointment.outcome`` and ``call_end_source``), shared by the
closing checklist, its PDF report and the patient record."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l, lazy_pgettext


def outcome_titles() -> dict:
    return {"held": lazy_pgettext("visit outcome", "Held"), "phone": _l("Held by telephone"), "no_show": _l("Patient did not come"),
            "outside": _l("Ended outside Cabinet"), "left_early": _l("Patient left early")}


def end_sources() -> dict:
    """Where the time a call ended comes from (Appointment.call_end_source)."""
    return {"": _l("ended in Cabinet by the practitioner"),
            "media": _l("the last media Cabinet's relay saw (noted every 30 seconds)"),
            "activity": _l("the last chat message, file or incident (no later media was recorded)"),
            "start": _l("only the start is known: nothing was recorded after the admission")}
