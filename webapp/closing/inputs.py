"""What the closing forms accept: amounts in euros, a weight in kilograms."""
from __future__ import annotations

import re
from decimal import Decimal

from flask_babel import lazy_gettext as _l
from wtforms import StringField
from wtforms.validators import ValidationError

from ..money import MAX_CENTS, parse_cents


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
            # Translators: write the example amounts with your language's decimal mark; both "25,50" and "25.50" are accepted
            raise ValidationError(_l("Enter an amount in euros like 25 or 25,50.")) from None
        if self.cents < self.minimum:
            raise ValidationError(_l("The amount must be more than 0 €.") if self.minimum > 0
                             else _l("The amount cannot be negative."))
        if self.cents > self.maximum:
            self.cents = None
            raise ValidationError(_l("At most %(max)s €.", max=self.maximum // 100))


WEIGHT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3})?")


class WeightField(StringField):
    """A weight in kilograms as people type it ("72", "3,45"), held as ``kg`` (a Decimal, None when empty)."""

    def __init__(self, *args, minimum: str = "0.3", maximum: str = "400", **kwargs):
        super().__init__(*args, **kwargs)
        self.minimum, self.maximum = Decimal(minimum), Decimal(maximum)
        self.kg = None

    def pre_validate(self, form):
        raw = (self.data or "").strip().replace(",", ".")
        self.kg = None
        if not raw:
            return
        if not WEIGHT.fullmatch(raw):
            raise ValidationError(_l("Enter a weight in kilograms like 72 or 3,45."))
        kg = Decimal(raw)
        if not self.minimum <= kg <= self.maximum:
            raise ValidationError(_l("The weight must be between 0.3 and 400 kg."))
        self.kg = kg.quantize(Decimal(1)) if kg == kg.to_integral_value() else kg.normalize()
