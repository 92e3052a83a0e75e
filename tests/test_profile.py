"""A practitioner on paper: their profile (RPPS, AM, address, signature), and the prescription that carries it."""
from __future__ import annotations

import datetime as dt
import io

import pypdf
import pytest
from PIL import Image, ImageDraw
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from conftest import HX, db_snapshot, login_as, make_appointment, make_patient, make_user, text_of
from webapp.db import _correct_seeded_acts
from webapp.models import Act, AuditEvent, Document, User, db, utcnow
from webapp.profiles import rpps_valid
from webapp.storage import documents


def luhn_key(stem: str) -> str:
    """The digit that makes ``stem`` + digit pass Luhn, worked out here independently of the app."""
    for key in "0123456789":
        digits = [int(c) for c in stem + key][::-1]
        total = sum(d if i % 2 == 0 else (d * 2 if d < 5 else d * 2 - 9) for i, d in enumerate(digits))
        if total % 10 == 0:
            return key
    raise AssertionError(stem)


def rpps(stem: str) -> str:
    return stem + luhn_key(stem)


VALID = rpps("1010123456")                      # "10101234564": RPPS numbers of people start with 10


def image(kind: str = "PNG", size=(300, 120)) -> bytes:
    picture = Image.new("RGB", size, "white")
    ImageDraw.Draw(picture).line([(10, 100), (80, 20), (150, 100), (290, 30)], fill="navy", width=5)
    out = io.BytesIO()
    picture.save(out, kind)
    return out.getvalue()


# RPPS: 11 digits, Luhn-checked.

@pytest.mark.parametrize("number, valid", [
    (VALID, True),
    ("10101234564", True),                      # the same, written out
    ("12345678903", True),
    (rpps("1000000000"), True),
    (rpps("1099999999"), True),
    (rpps("1234567890"), True),
    ("10101234565", False),                     # the key off by one
    ("10101234654", False),                     # two digits swapped
    ("1010123456", False),                      # 10 digits
    ("101012345640", False),                    # 12 digits
    ("1010123456a", False),
    ("１０１０１２３４５６４", False),             # full-width digits pass isdigit(), never Luhn here
    ("", False),
])
def test_rpps_numbers(number, valid):
    assert rpps_valid(number) is valid


# The practitioner's own profile.

PROFILE = {"profession": "doctor", "specialty": "Médecine générale", "rpps": "101 0123 4564",
           "am_number": "69 1 23456 7", "practice_address": "12 rue des Tilleuls\n69003 Lyon",
           "practice_phone": "04 78 12 34 56"}


def test_practitioner_fills_in_their_profile(client):
    doctor = login_as(client)
    assert "My profile" in text_of(client.get("/profile/"))
    response = client.post("/profile/", data=PROFILE)
    assert response.status_code == 302 and response.headers["Location"].startswith("/profile/")
    saved = User.get_by_id(doctor.id)
    assert (saved.profession, saved.specialty, saved.rpps, saved.am_number, saved.practice_address,
            saved.practice_phone) == ("doctor", "Médecine générale", "10101234564", "691234567",
                                      "12 rue des Tilleuls\n69003 Lyon", "+33478123456")
    event = AuditEvent.get(AuditEvent.action == "staff.profile_saved")
    assert event.user_id == doctor.id and "10101234564" not in event.detail and "rpps" in event.detail
    assert "Profile saved." in text_of(client.get("/profile/?saved=1"))


@pytest.mark.parametrize("change, message", [
    ({"rpps": "10101234568"}, "An RPPS number has 11 digits and a valid check digit"),
    ({"rpps": "1010123456"}, "An RPPS number has 11 digits and a valid check digit"),
    ({"rpps": "RPPS10101234564"}, "An RPPS number has 11 digits and a valid check digit"),
    ({"am_number": "12345678"}, "The health-insurance (AM) number has 9 digits."),
    ({"am_number": "12345678X"}, "The health-insurance (AM) number has 9 digits."),
    ({"practice_phone": "12"}, "Enter a valid phone number"),
    ({"profession": "wizard"}, "Not a valid choice"),
    ({"specialty": "x" * 101}, "At most 100 characters."),
    ({"practice_address": "x" * 301}, "At most 300 characters."),
])
def test_bad_profile_is_refused_and_changes_nothing(client, change, message):
    login_as(client)
    before = db_snapshot()
    response = client.post("/profile/", data={**PROFILE, **change}, headers=HX)
    assert response.status_code == 422
    assert message in text_of(response)
    assert response.get_data(as_text=True).lstrip().startswith('<form id="profile-form"')
    assert db_snapshot() == before


def test_only_practitioners_have_a_profile_page(client):
    login_as(client, "secretary")
    assert client.get("/profile/").status_code == 403


# The signature.

def upload(client, data: bytes, name: str = "signature.png", **kw):
    # Encoded here, in memory: the test client would spool a big body to a file it never closes.
    boundary, body = encode_multipart({"signature": FileStorage(io.BytesIO(data), name)})
    return client.post("/profile/signature", data=body, content_type=f"multipart/form-data; boundary={boundary}", **kw)


@pytest.mark.parametrize("kind, content_type", [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_signature_is_kept_encrypted_and_shown_to_its_owner(client, app, kind, content_type):
    doctor = login_as(client)
    data = image(kind)
    assert upload(client, data, "scan.bin").status_code == 302
    doctor = User.get_by_id(doctor.id)
    assert doctor.signature_type == content_type
    stored = app.extensions["documents"].root / doctor.signature_key[:2] / doctor.signature_key
    with app.app_context():
        assert stored.read_bytes() != data and data[:8] not in stored.read_bytes()      # encrypted at rest
        assert documents().load(doctor.signature_key) == data
    shown = client.get("/profile/signature")
    assert shown.status_code == 200 and shown.data == data and shown.mimetype == content_type
    assert shown.headers["Cache-Control"] == "private, no-store"
    assert "Your prescriptions carry this signature" in text_of(client.get("/profile/"))
    assert AuditEvent.select().where(AuditEvent.action == "staff.signature_saved").count() == 1
    login_as(client, "practitioner")            # a colleague sees only their own (none)
    assert client.get("/profile/signature").status_code == 404


def test_a_new_signature_replaces_the_old_one_and_removing_it_deletes_the_file(client, app):
    doctor = login_as(client)
    upload(client, image())
    first = User.get_by_id(doctor.id).signature_key
    upload(client, image("JPEG"))
    second = User.get_by_id(doctor.id).signature_key
    assert first != second
    root = app.extensions["documents"].root
    assert not (root / first[:2] / first).exists() and (root / second[:2] / second).exists()
    response = client.post("/profile/signature/delete", headers=HX)
    assert response.status_code == 200 and "No signature yet" in text_of(response)
    assert User.get_by_id(doctor.id).signature_key == "" and not (root / second[:2] / second).exists()


@pytest.mark.parametrize("data, name, message", [
    (b"GIF89a" + b"\x00" * 40, "signature.gif", "Only PNG and JPEG images are accepted for a signature."),
    (b"%PDF-1.4\n%%EOF\n", "signature.pdf", "Only PNG and JPEG images are accepted for a signature."),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "sig.png", "This image cannot be read"),     # PNG by its first bytes only
    (image()[:200], "cut.png", "This image cannot be read"),                                # cut short
    (image(size=(5000, 4000)), "huge.png", "This image cannot be read"),                     # 20 million pixels
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * (1024 * 1024), "big.png", "The image is larger than 1 MB"),
    (b"", "", "Choose an image of your signature."),
])
def test_bad_signature_is_refused_and_changes_nothing(client, app, data, name, message):
    login_as(client)
    before = db_snapshot()
    response = upload(client, data, name, headers=HX)
    assert response.status_code == 422
    assert message in text_of(response)
    assert db_snapshot() == before
    assert list(app.extensions["documents"].root.glob("??/*")) == []


# The administrator edits a practitioner's profile (not their signature).

def test_admin_edits_a_practitioner_s_profile(client):
    doctor = make_user("practitioner")
    admin = login_as(client, "admin")
    assert "Edit the professional profile" in text_of(client.get(f"/admin/staff/{doctor.id}"))
    assert "Their prescriptions still lack" in text_of(client.get(f"/admin/staff/{doctor.id}/profile"))
    response = client.post(f"/admin/staff/{doctor.id}/profile",
                           data={**PROFILE, "profession": "nurse", "specialty": ""})
    assert response.status_code == 302
    assert (User.get_by_id(doctor.id).profession, User.get_by_id(doctor.id).rpps) == ("nurse", "10101234564")
    assert AuditEvent.get(AuditEvent.action == "staff.profile_saved").user_id == admin.id
    bad = client.post(f"/admin/staff/{doctor.id}/profile", data={**PROFILE, "rpps": "12345678901"})
    assert bad.status_code == 422 and User.get_by_id(doctor.id).profession == "nurse"
    secretary = make_user("secretary")
    assert client.get(f"/admin/staff/{secretary.id}/profile").status_code == 404


# The prescription.

@pytest.fixture
def visit(app):
    now = utcnow()
    patient = make_patient(first_name="Jeanne", last_name="Dupont", birth_date=dt.date(1970, 5, 17))
    return make_appointment(patient=patient, starts_in=-dt.timedelta(minutes=30), status="in_call",
                            admitted_at=now - dt.timedelta(minutes=28), call_ended_at=now - dt.timedelta(minutes=5),
                            consent_at=now - dt.timedelta(minutes=29), consent_version="2026-01", consent_locale="en")


def prescription(app):
    doc = Document.get(Document.kind == "prescription")
    with app.app_context():
        return pypdf.PdfReader(io.BytesIO(documents().load(doc.storage_key))).pages[0]


def test_prescription_carries_what_a_pharmacist_expects(client, app, visit, clock):
    clock.move_to(dt.datetime(2036, 6, 10, 22, 30, tzinfo=dt.timezone.utc))    # 11 June, 00:30 in Paris
    doctor = login_as(client, visit.practitioner)
    client.post("/profile/", data=PROFILE)
    upload(client, image())
    response = client.post(f"/visits/{visit.id}/prescription",
                           data={"text": "Amoxicilline 1 g matin et soir, 6 jours", "weight": "72,5"})
    assert response.status_code == 302
    page = prescription(app)
    text = page.extract_text()
    for expected in (doctor.name, "Doctor — Médecine générale", "RPPS: 10101234564",
                     "Health-insurance (AM) no.: 691234567", "12 rue des Tilleuls", "69003 Lyon",
                     "Phone: 04 78 12 34 56", "On 11 June 2036", "Patient: Jeanne DUPONT",
                     "Born on 17 May 1970 (66 years old)", "Weight: 72.5 kg", "PRESCRIPTION",
                     "Amoxicilline 1 g matin et soir, 6 jours",
                     "Prescription issued after a teleconsultation on 10 June 2036."):
        assert expected in text, expected
    assert len(page.images) == 1                # the signature
    assert page.images[0].image.size == (300, 120)


def test_prescription_in_french_with_a_baby_s_age_in_months(client, app, clock):
    baby = make_patient(first_name="Léo", last_name="Martin", birth_date=dt.date(2035, 3, 20), locale="fr")
    visit = make_appointment(patient=baby, starts_in=-dt.timedelta(minutes=30), locale="fr")
    login_as(client, visit.practitioner)
    client.post(f"/visits/{visit.id}/prescription", data={"text": "Paracétamol 15 mg/kg", "weight": "9,2"})
    text = prescription(app).extract_text()
    for expected in ("Le 10 juin 2036", "Patient : Léo MARTIN", "Né(e) le 20 mars 2035 (14 mois)",
                     "Poids : 9,2 kg", "ORDONNANCE", "Ordonnance établie à la suite d’une téléconsultation"):
        assert expected in text, expected


def test_without_a_profile_the_prescription_still_goes_and_the_checklist_says_what_is_missing(client, app, visit):
    login_as(client, visit.practitioner)
    page = text_of(client.get(f"/visits/{visit.id}/close"))
    assert "Your prescriptions lack: profession, RPPS number, practice address, signature." in page
    assert 'href="/profile/"' in client.get(f"/visits/{visit.id}/close").get_data(as_text=True)
    assert client.post(f"/visits/{visit.id}/prescription", data={"text": "Repos"}).status_code == 302
    page = prescription(app)
    assert "RPPS" not in page.extract_text() and "Repos" in page.extract_text() and len(page.images) == 0
    client.post("/profile/", data=PROFILE)
    upload(client, image())
    assert "Your prescriptions lack" not in text_of(client.get(f"/visits/{visit.id}/close"))


@pytest.mark.parametrize("weight, message", [
    ("lourd", "Enter a weight in kilograms like 72 or 3,45."),
    ("72,12345", "Enter a weight in kilograms like 72 or 3,45."),
    ("1e2", "Enter a weight in kilograms like 72 or 3,45."),
    ("0", "The weight must be between 0.3 and 400 kg."),
    ("401", "The weight must be between 0.3 and 400 kg."),
])
def test_a_bad_weight_is_refused(client, visit, weight, message):
    login_as(client, visit.practitioner)
    Act.catalogue(visit.practice)            # seeded when the page first shows it: not this test's change
    before = db_snapshot()
    response = client.post(f"/visits/{visit.id}/prescription", data={"text": "Repos", "weight": weight}, headers=HX)
    assert response.status_code == 422 and message in text_of(response)
    assert db_snapshot() == before


# Each profession its own acts.

def act_options(client, visit) -> tuple[list[str], list[str], str | None]:
    """The act select's codes before the "other professions" group, inside it, and the one selected."""
    html = client.get(f"/visits/{visit.id}/close").get_data(as_text=True)
    select = html[html.index('<select id="act-code"'):html.index("</select>", html.index('<select id="act-code"'))]
    own, _, others = select.partition("<optgroup")
    codes = lambda part: [c.split('"')[0] for c in part.split('<option value="')[1:] if c.split('"')[0]]
    chosen = [c.split('"')[0] for c in select.split('<option value="')[1:] if '" selected>' in c.split(">")[0] + ">"]
    return codes(own), codes(others), (chosen[0] if chosen else None)


@pytest.mark.parametrize("profession, specialty, own, others, chosen", [
    ("doctor", "Médecine générale", ["TC", "TCG"], ["TLD", "TLL", "TLS"], "TCG"),
    ("doctor", "", ["TC", "TCG"], ["TLD", "TLL", "TLS"], "TCG"),
    ("doctor", "Dermatologie", ["TC", "TCG"], ["TLD", "TLL", "TLS"], "TC"),
    ("nurse", "", ["TLD", "TLL", "TLS"], ["TC", "TCG"], None),          # three situations: the nurse says which
    ("", "", ["TC", "TCG", "TLD", "TLL", "TLS"], [], None),
])
def test_the_checklist_offers_the_practitioner_s_own_acts_first(client, visit, profession, specialty, own, others,
                                                               chosen):
    User.update(profession=profession, specialty=specialty).where(User.id == visit.practitioner_id).execute()
    login_as(client, User.get_by_id(visit.practitioner_id))
    assert act_options(client, visit) == (own, others, chosen)


def test_a_midwife_s_own_act_is_chosen_when_it_is_the_only_one(client, visit):
    User.update(profession="midwife").where(User.id == visit.practitioner_id).execute()
    Act.catalogue(visit.practice)
    Act.create(practice=visit.practice, code="TCSF", label="Téléconsultation sage-femme", fee_cents=2500,
               profession="midwife")
    login_as(client, User.get_by_id(visit.practitioner_id))
    assert act_options(client, visit) == (["TCSF"], ["TC", "TCG", "TLD", "TLL", "TLS"], "TCSF")


def test_the_admin_says_which_profession_an_act_is_for(client):
    login_as(client, "admin")
    response = client.post("/visits/acts", data={"code": "TCSF", "label": "Téléconsultation sage-femme",
                                                 "fee": "25", "profession": "midwife", "active": "y"})
    assert response.status_code == 302
    assert Act.get(Act.code == "TCSF").profession == "midwife"
    page = text_of(client.get("/visits/acts"))
    assert "Midwife" in page and "The fees are defaults" in page


def test_migration_corrects_seed_rows_nobody_edited(app):
    practice = make_patient().practice
    Act.insert_many([
        {"practice": practice, "code": "TCG", "label": "Téléconsultation du médecin généraliste",
         "fee_cents": 3000},
        {"practice": practice, "code": "TC", "label": "Téléconsultation", "fee_cents": 2800},   # edited: kept
        {"practice": practice, "code": "TLS", "label": "Télésoin infirmier : accompagnement d'une "
         "téléconsultation lors d'un soin", "fee_cents": 1000},
    ]).execute()
    with db.atomic():
        _correct_seeded_acts(db)
    rows = {a.code: (a.label, a.fee_cents) for a in Act.select().where(Act.practice == practice)}
    assert rows == {"TCG": ("Téléconsultation du médecin généraliste", 2500), "TC": ("Téléconsultation", 2800),
                    "TLS": ("Accompagnement infirmier d'une téléconsultation, lors d'un soin prévu", 1000)}
