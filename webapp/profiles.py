"""A practitioner's professional identity, as their prescriptions carry it: profession and specialty,
RPPS and health-insurance (AM) numbers, practice address and phone, and a signature image.

Shared by the practitioner's own profile page (``profile``) and the administrators' (``admin``);
the prescription reads it through ``signature_image`` and ``missing_for_prescription``. The
signature is kept like a document: encrypted in the document store, its key on the user.
"""
from __future__ import annotations

import io
import warnings

import phonenumbers
from flask_babel import lazy_gettext as _l, lazy_ngettext
from flask_wtf import FlaskForm
from PIL import Image, UnidentifiedImageError
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import Length, ValidationError

from .forms import PhoneField, options, strip, valid_phone
from .models import AuditEvent, db
from .storage import DocumentMissing, documents
from .uploads import sniff

# The professions that practise teleconsultation or telecare (télésoin) in France.
PROFESSIONS = ("doctor", "nurse", "midwife", "physiotherapist", "speech_therapist", "orthoptist",
               "chiropodist", "occupational_therapist", "psychomotor_therapist", "dietitian", "dentist",
               "pharmacist")
SIGNATURE_MAX_BYTES = 1024 * 1024
SIGNATURE_MAX_PIXELS = 4000 * 4000
SIGNATURE_TYPES = ("image/png", "image/jpeg")


def profession_names() -> dict:
    return {"doctor": _l("Doctor"), "nurse": _l("Nurse"), "midwife": _l("Midwife"),
            "physiotherapist": _l("Physiotherapist"), "speech_therapist": _l("Speech therapist"),
            "orthoptist": _l("Orthoptist"), "chiropodist": _l("Chiropodist (podiatrist)"),
            "occupational_therapist": _l("Occupational therapist"),
            "psychomotor_therapist": _l("Psychomotor therapist"), "dietitian": _l("Dietitian"),
            "dentist": _l("Dentist"), "pharmacist": _l("Pharmacist")}


def profession_name(code: str) -> str:
    return str(profession_names().get(code, ""))


def luhn_valid(digits: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn check (its last digit is the key)."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def rpps_valid(raw: str) -> bool:
    """An RPPS number: 11 digits whose last is the Luhn key of the first ten."""
    return len(raw) == 11 and luhn_valid(raw)


def _digits_only(value):
    """What people type, spaces and dots taken out ("10 10 123 456 7" as typed from a card)."""
    return "".join(value.split()).replace(".", "").replace("-", "") if isinstance(value, str) else value


def _valid_rpps(form, field):
    if field.data and not rpps_valid(field.data):
        raise ValidationError(_l("An RPPS number has 11 digits and a valid check digit: check it on your card."))


def _valid_am(form, field):
    if field.data and not (len(field.data) == 9 and field.data.isascii() and field.data.isdigit()):
        raise ValidationError(_l("The health-insurance (AM) number has 9 digits."))


class ProfileForm(FlaskForm):
    """What a prescription says of its practitioner; every field may stay empty until known."""
    profession = SelectField(_l("Profession"))
    specialty = StringField(_l("Specialty"), filters=[strip], validators=[
        Length(max=100, message=lazy_ngettext("At most %(num)d character.", "At most %(num)d characters.", 100))],
        description=_l("As on your prescriptions, like “General medicine” or “Paediatrics”."))
    rpps = StringField(_l("RPPS number"), filters=[_digits_only], validators=[_valid_rpps])
    am_number = StringField(_l("Health-insurance (AM) number"), filters=[_digits_only], validators=[_valid_am])
    practice_address = TextAreaField(_l("Practice address"), filters=[strip], validators=[
        Length(max=300, message=lazy_ngettext("At most %(num)d character.", "At most %(num)d characters.", 300))])
    practice_phone = PhoneField(_l("Practice phone"), validators=[valid_phone])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.profession.choices = options([("", _l("Not given"))] + list(profession_names().items()))

    FIELDS = ("profession", "specialty", "rpps", "am_number", "practice_address", "practice_phone")


def save_profile(user, form, actor) -> list[str]:
    """Keep the form's fields on ``user``; audited with the names of the fields changed (no values)."""
    with db.atomic():
        before = {name: getattr(user, name) for name in ProfileForm.FIELDS}
        for name in ProfileForm.FIELDS:
            setattr(user, name, getattr(form, name).data or "")
        user.save()
        changed = sorted(n for n in ProfileForm.FIELDS if getattr(user, n) != before[n])
        AuditEvent.record(actor, "staff.profile_saved", detail=f"user:{user.id} {','.join(changed)}"[:200])
    return changed


def read_signature(upload) -> tuple[bytes | None, str | None, str | None]:
    """(bytes, content type, None) of an uploaded signature, or (None, None, the reason it is refused):
    a PNG or JPEG judged by its bytes, at most 1 MB, that really decodes as an image of sensible size."""
    data = upload.stream.read(SIGNATURE_MAX_BYTES + 1) if upload is not None else b""
    if not data:
        return None, None, str(_l("Choose an image of your signature."))
    if len(data) > SIGNATURE_MAX_BYTES:
        return None, None, str(_l("The image is larger than 1 MB: scan or photograph it at a lower resolution."))
    kind = sniff(data, heic=False)
    if kind is None or kind[0] not in SIGNATURE_TYPES:
        return None, None, str(_l("Only PNG and JPEG images are accepted for a signature."))
    if not _decodes(data):
        return None, None, str(_l("This image cannot be read: it may be damaged. Save it again as PNG or JPEG."))
    return data, kind[0], None


def _decodes(data: bytes) -> bool:
    """Whether the whole image decodes, within the pixel limit (no decompression bomb)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > SIGNATURE_MAX_PIXELS or image.format not in ("PNG", "JPEG"):
                    return False
                image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning):
        return False
    return True


def save_signature(user, data: bytes, content_type: str, actor) -> None:
    """Keep the new signature encrypted; the old one's file goes once the user points to the new one."""
    old = user.signature_key
    key = documents().store(data)
    try:
        with db.atomic():
            type(user).update(signature_key=key, signature_type=content_type).where(
                type(user).id == user.id).execute()
            AuditEvent.record(actor, "staff.signature_saved", detail=f"user:{user.id}")
    except BaseException:
        documents().delete(key)
        raise
    user.signature_key, user.signature_type = key, content_type
    if old:
        documents().delete(old)


def remove_signature(user, actor) -> None:
    old = user.signature_key
    with db.atomic():
        type(user).update(signature_key="", signature_type="").where(type(user).id == user.id).execute()
        AuditEvent.record(actor, "staff.signature_removed", detail=f"user:{user.id}")
    user.signature_key = user.signature_type = ""
    if old:
        documents().delete(old)


def signature_image(user) -> bytes | None:
    """The signature's bytes, or None when there is none (or its file cannot be read)."""
    if not user.signature_key:
        return None
    try:
        return documents().load(user.signature_key)
    except DocumentMissing:
        return None


def missing_for_prescription(user) -> list[str]:
    """What a French pharmacist expects on a prescription and this practitioner's profile lacks."""
    # Translators: what a practitioner's profile still lacks for prescriptions, listed after
    # "Missing on your prescriptions:"
    wanted = (("profession", _l("profession")), ("rpps", _l("RPPS number")),
              ("practice_address", _l("practice address")), ("signature_key", _l("signature")))
    return [str(label) for name, label in wanted if not getattr(user, name)]


def phone_for_print(e164: str) -> str:
    """A stored number as people write it at home (01 23 45 67 89 in France), else international."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    fmt = phonenumbers.PhoneNumberFormat.NATIONAL if number.country_code == 33 else \
        phonenumbers.PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, fmt)
