"""The practice's act catalogue: codes, labels, default fees, for which profession; administrators edit it.

When closing a visit, a practitioner sees their profession's acts first (``offered``), one of them
chosen already when the choice is plain (``preselected``).
"""
from __future__ import annotations

import unicodedata

from flask import abort, g, redirect, request, url_for
from flask_babel import gettext as _

from ..auth import staff_required
from ..models import Act, AuditEvent, db
from ..answers import form_status, render
from . import bp
from .forms import ActCatalogueForm
from ..money import plain as euros
from ..profiles import profession_names


def offered(practice, practitioner) -> tuple[list, list]:
    """The active acts for this practitioner's profession (and for any profession), then the others'.

    Without a profession said, every act is theirs."""
    acts = list(Act.catalogue(practice, active_only=True))
    if not practitioner.profession:
        return acts, []
    own = [a for a in acts if a.profession == practitioner.profession] + [a for a in acts if not a.profession]
    return own, [a for a in acts if a not in own]


def preselected(practitioner, own: list) -> str | None:
    """The act to offer first: a doctor's TCG (general practice) or TC (other specialties); for another
    profession, its one act when it has only one. None when the practitioner must choose."""
    codes = [a.code for a in own if a.profession]
    if practitioner.profession == "doctor":
        specialty = "".join(c for c in unicodedata.normalize("NFD", practitioner.specialty.lower())
                            if not unicodedata.combining(c))
        wanted = "TCG" if not specialty or "general" in specialty else "TC"
        return wanted if wanted in codes else None
    return codes[0] if len(codes) == 1 else None


def _clashes(form, act) -> bool:
    other = Act.get_or_none(Act.practice == g.practice, Act.code == form.code.data)
    if other is not None and (act is None or other.id != act.id):
        form.code.errors.append(_("Another act already uses this code."))
        return True
    return False


def _save(form, act):
    with db.atomic():
        act.practice = g.practice
        act.code, act.label, act.fee_cents, act.active = (form.code.data, form.label.data, form.fee.cents,
                                                          form.active.data)
        act.profession = form.profession.data or ""
        act.save()
        AuditEvent.record(g.user, "act.saved", detail=f"act:{act.id}")
    return redirect(url_for("closing.acts"))


@bp.route("/acts", methods=["GET", "POST"])
@staff_required("admin")
def acts():
    """The catalogue, and a form to add an act."""
    catalogue = list(Act.catalogue(g.practice))
    form = ActCatalogueForm()
    if form.validate_on_submit() and not _clashes(form, None):
        return _save(form, Act())
    return render("closing/acts.html", "closing/_act_form.html", form=form, act=None, catalogue=catalogue,
                  euros=euros, professions=profession_names(), status=form_status(form))


@bp.route("/acts/<int:act_id>", methods=["GET", "POST"])
@staff_required("admin")
def edit_act(act_id):
    """Change an act's code, label, default fee, or whether it is offered."""
    act = Act.get_or_none(Act.id == act_id, Act.practice == g.practice) or abort(404)
    form = ActCatalogueForm() if request.method == "POST" else ActCatalogueForm(data=_data(act))
    if form.validate_on_submit() and not _clashes(form, act):
        return _save(form, act)
    return render("closing/act.html", "closing/_act_form.html", form=form, act=act, status=form_status(form))


def _data(act) -> dict:
    return {"code": act.code, "label": act.label, "fee": euros(act.fee_cents), "active": act.active,
            "profession": act.profession}
