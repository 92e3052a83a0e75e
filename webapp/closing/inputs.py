"""What the closing forms accept: amounts in euros."""
from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from wtforms import StringField
from wtforms.validators import ValidationError

MAX_CENTS = 100_000          # 1000 €: above that a teleconsultation amount is a typo
_AMOUNT = re.compile(r"^(\d{1,7})(?:[.,](\d{1,2}))?$")


def parse_cents(text: str) -> int:
    """ "25", "25.5", "25,50 €" → cents; ValueError for anything else (signs, exponents, letters)."""
    cleaned = (text or "").replace("€", "").replace("\u00a0", "").replace(" ", "")
    match = _AMOUNT.match(cleaned)
    if not match:
        raise ValueError(cleaned)
    euros, cents = match.group(1), (match.group(2) or "0").ljust(2, "0")
    return int(euros) * 100 + int(cents)


def euros(cents: int) -> str:
    """Cents as a plain decimal (what an input field shows back), e.g. 2550 → "25.50"."""
    return f"{cents // 100}.{cents % 100:02d}"


class MoneyField(StringField):
    """An amount in euros, held as ``cents`` (None when empty or unreadable); bounds in cents."""

    def __init__(self, *args, minimum: int = 1, maximum: int = MAX_CENTS, required: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.minimum, self.maximum, self.required = minimum, maximum, required
        self.cents = None

    def pre_validate(self, form):
        raw = (self.data or "").strip()
        if not raw:
            if self.required:
                raise ValidationError(_l("Enter an amount."))
            return
        try:
            self.cents = parse_cents(raw)
        except ValueError:
            raise ValidationError(_l("Enter an amount in euros like 25 or 25,50.")) from None
        if self.cents < self.minimum:
            raise ValidationError(_l("The amount must be more than 0 €.") if self.minimum > 0
                             else _l("The amount cannot be negative."))
        if self.cents > self.maximum:
            self.cents = None
            raise ValidationError(_l("At most %(max)s €.", max=self.maximum // 100))
