"""A demo practice: staff with their profiles, a dozen patients with records, last week's visits closed
with every outcome (or left to close), today's visits (one about to start) and next week's."""
from __future__ import annotations

import datetime as dt
import json
import random
import unicodedata

from flask import current_app

from .auth import hash_password
from .closing.acts import offered, preselected
from .closing.prescription import render_prescription
from .closing.service import close_visit
from .forms import nir_key
from .i18n import local_to_utc, utc_to_local
from .models import (Act, Appointment, Message, Patient, Payment, Practice, Report, User, VisitAct, VisitType, Waiver,
                     WeeklyHours, db, utcnow)
from .patient.join import CONSENT_VERSION
from .slots import next_free_slots, take_slot
from .uploads import store_document

DEMO_PASSWORD = "demo-cabinet"

STAFF = [
    ("admin", "Camille Admin", "admin@cabinet.example.org", "fr"),
    ("practitioner", "Dr Claire Martin", "claire.martin@cabinet.example.org", "fr"),
    ("practitioner", "Julien Bernard, infirmier", "julien.bernard@cabinet.example.org", "fr"),
    ("secretary", "Sophie Petit", "accueil@cabinet.example.org", "fr"),
]

# What the practitioners' prescriptions carry (made-up numbers that pass the RPPS check); no signature.
PROFILES = {
    "claire.martin@cabinet.example.org": {"profession": "doctor", "specialty": "Médecine générale",
                                          "rpps": "10101234564", "am_number": "691234567",
                                          "practice_address": "12 rue des Tilleuls\n69003 Lyon",
                                          "practice_phone": "+33478123456"},
    "julien.bernard@cabinet.example.org": {"profession": "nurse", "rpps": "10107654328",
                                           "practice_address": "12 rue des Tilleuls\n69003 Lyon"},
}

PATIENTS = [
    ("Louise", "Durand", "1948-03-12", "fr"), ("Hugo", "Lefèvre", "1985-07-30", "fr"),
    ("Chloé", "Moreau", "1992-11-02", "fr"), ("Lucas", "Girard", "2015-05-19", "fr"),
    ("Emma", "Roux", "1979-01-25", "en"), ("Nathan", "Fournier", "1963-09-08", "fr"),
    ("Inès", "Benali", "1990-04-14", "fr"), ("Arthur", "Lambert", "1956-12-31", "fr"),
    ("Jade", "Nguyen", "2001-06-06", "fr"), ("Paul", "Mercier", "1940-02-29", "fr"),
    ("Léa", "Faure", "1988-08-18", "en"), ("Mohamed", "Haddad", "1970-10-10", "fr"),
]

MOTIVES = ["Suivi tension artérielle", "Renouvellement d'ordonnance", "Résultats de prise de sang",
           "Suivi plaie post-opératoire", "Conseils traitement", ""]


def load_demo(seed: int = 7) -> list[User]:
    """Create the demo practice (or fill the existing one) and return its staff."""
    rng = random.Random(seed)
    with db.atomic():
        practice = Practice.select().order_by(Practice.id).first() or Practice.create(name="Cabinet")
        practice.name, practice.address = "Cabinet médical des Tilleuls", "12 rue des Tilleuls\n69003 Lyon"
        practice.default_locale = current_app.config["DEFAULT_LOCALE"]
        practice.save()
        Act.seed(practice)
        staff = [User.create(practice=practice, role=role, name=name, email=email, locale=locale,
                             password_hash=hash_password(DEMO_PASSWORD), **PROFILES.get(email, {}))
                 for role, name, email, locale in STAFF]
        patients = [Patient.create(practice=practice, first_name=first, last_name=last,
                                   birth_date=dt.date.fromisoformat(born), locale=locale,
                                   email=_ascii(f"{first}.{last}@example.org".lower()),
                                   phone=f"+3361234{5600 + i:04d}", nir=_nir(i, born))
                    for i, (first, last, born, locale) in enumerate(PATIENTS)]
        _book_week(practice, [u for u in staff if u.role == "practitioner"], patients, rng)
        _availability(practice, {u.email: u for u in staff})
        _online_booking(practice, patients[-1])
        # The closing messages of last week went out last week: the e-mails sent, the SMS copied.
        # (Without this, starting the demo would try to send them all now.)
        done = utcnow()
        Message.update(status="sent", sent_at=done).where(Message.kind == "closed").execute()
        Message.update(copied_at=done).where(Message.kind == "closed", Message.channel == "sms").execute()
    return staff


# Opening hours for teleconsultations (weekday, start, end in minutes) and visit types (names, minutes,
# mode, act, fee in cents, bookable online, for new patients, confirmation; whose: None for everyone).
HOURS = {
    "claire.martin@cabinet.example.org": [(d, s, e) for d in range(5) for s, e in ((540, 720), (840, 1080))
                                          if (d, s) != (2, 840)],        # Wednesday afternoons off
    "julien.bernard@cabinet.example.org": [(1, 480, 720), (3, 480, 720), (4, 1020, 1140)],
}
VISIT_TYPES = [
    ({"fr": "Téléconsultation de suivi", "en": "Follow-up teleconsultation"}, 15, "video", "TCG", 2500, True, False,
     "auto", None),
    ({"fr": "Première téléconsultation", "en": "First teleconsultation"}, 30, "video", "TCG", 2500, True, True,
     "staff", "claire.martin@cabinet.example.org"),
    ({"fr": "Télésoin infirmier", "en": "Nursing telecare"}, 20, "audio", "TLS", 1000, False, False, "staff",
     "julien.bernard@cabinet.example.org"),
]


def _availability(practice, staff_by_email):
    WeeklyHours.insert_many([{"practitioner": staff_by_email[email].id, "weekday": d, "start_minute": s,
                              "end_minute": e} for email, ranges in HOURS.items() for d, s, e in ranges]).execute()
    for names, minutes, mode, act, fee, online, new, confirmation, whose in VISIT_TYPES:
        VisitType.create(practice=practice, practitioner=staff_by_email[whose].id if whose else None,
                         names=json.dumps(names, ensure_ascii=False), duration_minutes=minutes, mode=mode,
                         act_code=act, fee_cents=fee, online=online, new_patients=new, confirmation=confirmation)


def _online_booking(practice, patient):
    """Online booking on, and one patient's request waiting for staff to approve (the header's
    badge, the requests page): the first visit type that staff confirm, at its first free slot."""
    practice.online_booking = True
    practice.save()
    kind = VisitType.get(VisitType.practice == practice, VisitType.confirmation == "staff", VisitType.online)
    for practitioner, slots in next_free_slots(kind, User.select().where(User.id == kind.practitioner_id), 1):
        if slots:
            take_slot(practitioner, slots[0].starts_at, kind, actor="patient", patient=patient, status="requested",
                      booked_online=True, contact_email=patient.email, contact_phone=patient.phone,
                      locale=patient.locale, motive="")


# Birthplaces for made-up social-security numbers (one in Corsica, one abroad); every third patient has none.
BIRTHPLACES = ["69123", "75115", "2A004", "13055", "99352", "69381", "33063", "59350"]
SEX = {"Louise": 2, "Chloé": 2, "Emma": 2, "Inès": 2, "Jade": 2, "Léa": 2}


def _nir(i: int, born: str) -> str:
    """A made-up NIR that passes the key check, or "" (the number is optional)."""
    if i % 3 == 2:
        return ""
    first = PATIENTS[i][0]
    number = f"{SEX.get(first, 1)}{born[2:4]}{born[5:7]}{BIRTHPLACES[i % len(BIRTHPLACES)]}{100 + i:03d}"
    return f"{number}{nir_key(number):02d}"


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


# A week of past visits ends every way a real week does. Each practitioner's past visits take these
# outcomes in turn; "open" ones are left for the closing list (/visits/open) to show.
PAST_OUTCOMES = ["held", "held", "phone", "held", "no_show", "held", "outside", "held", "left_early", "held",
                 "open_call_ended", "held", "open_no_show", "held", "held"]
FINDINGS = ["Tension 13/8, bien tolérée. Pas de signe d'alerte.", "Plaie propre, bords rapprochés, pas d'écoulement.",
            "Bilan biologique sans anomalie notable.", "Toux sèche depuis 5 jours, apyrétique, auscultation non faite."]
DECISIONS = ["Poursuite du traitement, contrôle dans 3 mois.", "Pansement à refaire tous les 2 jours.",
             "Pas de changement thérapeutique.", "Consulter en présentiel si fièvre ou gêne respiratoire."]
PRESCRIPTION = "Paracétamol 1 g : 1 comprimé jusqu'à 3 fois par jour si douleur, pendant 5 jours."


def _book_week(practice, practitioners, patients, rng):
    """The past week closed (or left to close) with every outcome; today's visits, one about to start;
    next week's agenda."""
    tz = practice.timezone
    now = utcnow().replace(second=0, microsecond=0)
    today = utc_to_local(now, tz).date()
    past = [d for d in (today - dt.timedelta(days=i) for i in range(7, 0, -1)) if d.weekday() < 5]
    coming = [d for d in (today + dt.timedelta(days=i) for i in range(1, 8)) if d.weekday() < 5]
    for practitioner in practitioners:
        outcomes = iter(PAST_OUTCOMES)
        for day in past:
            for hour in sorted(rng.sample([9, 10, 11, 14, 15, 16, 17], 3)):
                start = local_to_utc(dt.datetime.combine(day, dt.time(hour, rng.choice([0, 30]))), tz)
                appt = _book(practice, practitioner, rng.choice(patients), start, rng)
                _end(appt, practitioner, next(outcomes, "held"), rng)
        # One visit about to start, so the demo patient link opens straight away; then the rest of the day.
        _book(practice, practitioner, rng.choice(patients), now + dt.timedelta(minutes=5), rng)
        for hour in range(utc_to_local(now, tz).hour + 1, 19, 2):
            _book(practice, practitioner, rng.choice(patients),
                  local_to_utc(dt.datetime.combine(today, dt.time(hour, 30)), tz), rng)
        for day in coming:
            for hour in rng.sample([9, 10, 11, 14, 15, 16, 17], 3):
                start = local_to_utc(dt.datetime.combine(day, dt.time(hour, rng.choice([0, 30]))), tz)
                _book(practice, practitioner, rng.choice(patients), start, rng)


def _book(practice, practitioner, patient, starts_at, rng):
    return Appointment.create(practice=practice, practitioner=practitioner, patient=patient,
                              contact_email=patient.email, contact_phone=patient.phone, starts_at=starts_at,
                              duration_minutes=rng.choice([15, 20, 30]), motive=rng.choice(MOTIVES),
                              mode=rng.choice(["video", "video", "audio"]), locale=patient.locale)


def _end(appt, practitioner, outcome: str, rng) -> None:
    """What the visit's record holds once it ended this way; closed through the same service as the
    checklist, except the "open" ones. The times are the visit's own (the way in, the call);
    closing happens now, as when a practitioner catches up."""
    came = outcome not in ("no_show", "open_no_show")
    if came:
        start = appt.starts_at + dt.timedelta(minutes=rng.randint(0, 4))
        call_end = start + dt.timedelta(minutes=appt.duration_minutes - rng.randint(0, 5))
        fields = {"identity_confirmed_at": start - dt.timedelta(minutes=3), "consent_at": start - dt.timedelta(minutes=3),
                  "consent_version": CONSENT_VERSION, "consent_locale": appt.locale or "fr",
                  "waiting_since": start - dt.timedelta(minutes=2), "status": "in_call"}
        if outcome != "phone":
            fields["admitted_at"] = start
        if outcome in ("held", "open_call_ended", "left_early"):
            fields["call_ended_at"] = call_end
        if outcome == "outside":
            fields["media_seen_at"] = call_end - dt.timedelta(minutes=4)
        Appointment.update(**fields).where(Appointment.id == appt.id).execute()
        appt = Appointment.get_by_id(appt.id)
    if outcome.startswith("open_"):
        return
    reasons = {"phone": "La vidéo ne passait pas : appel sur le portable du patient.",
               "left_early": "Le patient a dû partir avant la fin.",
               "outside": "L'appareil du patient s'est éteint."}
    if outcome != "held":
        at = appt.starts_at + dt.timedelta(minutes=3) if outcome == "phone" else None
        appt.record_outcome(practitioner, outcome, at=at, reason=reasons.get(outcome, ""))
    if outcome == "no_show":
        Waiver.create(appointment=appt, item="payment", reason="Pas de frais : le patient n'est pas venu.",
                      user=practitioner)
    else:
        _fill_checklist(appt, practitioner, rng)
    close_visit(appt, practitioner)


def _fill_checklist(appt, practitioner, rng) -> None:
    Report.create(appointment=appt, findings=rng.choice(FINDINGS), decisions=rng.choice(DECISIONS),
                  prescriptions=PRESCRIPTION if practitioner.profession == "doctor" else "")
    if practitioner.profession == "doctor":
        locale = appt.effective_locale(appt.practice.default_locale)
        day = utc_to_local(appt.starts_at, appt.practice.timezone)
        store_document(appt, render_prescription(appt, practitioner, PRESCRIPTION, locale), source="closing",
                       kind="prescription", author="practitioner", user=practitioner, locale=locale,
                       content_type="application/pdf", filename=f"prescription-{day:%Y-%m-%d}.pdf")
    else:
        Waiver.create(appointment=appt, item="documents", reason="Aucun document à remettre.", user=practitioner)
    own, _others = offered(appt.practice, practitioner)
    code = preselected(practitioner, own) or (own[0].code if own else None)
    act = next((a for a in own if a.code == code), None)
    if act:
        VisitAct.create(appointment=appt, act=act, code=act.code, label=act.label, fee_cents=act.fee_cents)
    paid = rng.random() < 0.7
    asked = appt.ends_at + dt.timedelta(minutes=5)
    Payment.create(appointment=appt, amount_cents=act.fee_cents if act else 2500, status="paid" if paid else "requested",
                   requested_at=asked, paid_at=asked + dt.timedelta(hours=2) if paid else None, updated_by=practitioner)
