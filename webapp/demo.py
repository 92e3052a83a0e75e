"""A demo practice: staff, a dozen patients, today's and this week's teleconsultations."""
from __future__ import annotations

import datetime as dt
import random
import unicodedata

from flask import current_app

from .auth import hash_password
from .i18n import local_to_utc, utc_to_local
from .models import Act, Appointment, Patient, Practice, User, db, utcnow

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
                                   phone=f"+3361234{5600 + i:04d}")
                    for i, (first, last, born, locale) in enumerate(PATIENTS)]
        _book_week(practice, [u for u in staff if u.role == "practitioner"], patients, rng)
    return staff


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _book_week(practice, practitioners, patients, rng):
    tz = practice.timezone
    now_local = utc_to_local(utcnow(), tz)
    monday = now_local.date() - dt.timedelta(days=now_local.weekday())
    for practitioner in practitioners:
        # One visit about to start, so the demo patient link opens straight away.
        _book(practice, practitioner, rng.choice(patients),
              utcnow().replace(second=0, microsecond=0) + dt.timedelta(minutes=5), rng)
        for day in (monday + dt.timedelta(days=i) for i in range(5)):
            for hour in rng.sample([9, 10, 11, 14, 15, 16, 17], 3):
                start = local_to_utc(dt.datetime.combine(day, dt.time(hour, rng.choice([0, 30]))), tz)
                _book(practice, practitioner, rng.choice(patients), start, rng)


def _book(practice, practitioner, patient, starts_at, rng):
    Appointment.create(practice=practice, practitioner=practitioner, patient=patient,
                       contact_email=patient.email, contact_phone=patient.phone, starts_at=starts_at,
                       duration_minutes=rng.choice([15, 20, 30]), motive=rng.choice(MOTIVES),
                       mode=rng.choice(["video", "video", "audio"]), locale=patient.locale)
