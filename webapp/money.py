"""Amounts: held as integer cents, typed by people in euros, shown by Babel in the reader's locale.

One limit for every amount Cabinet takes (a fee, a payment request, a preset), one
reader for what people type, one way to show an amount.
"""
from __future__ import annotations

import re
from decimal import Decimal

from babel.numbers import format_currency
from flask_babel import get_locale

# 1000 €: above that, a teleconsultation amount is a typo (25000 typed for 25.00).
MAX_CENTS = 100_000
_AMOUNT = re.compile(r"^(\d{1,7})(?:[.,](\d{1,2}))?$")


def parse_cents(text: str) -> int:
    """ "25", "25.5", "25,50 €" → cents; ValueError for anything else (signs, exponents, letters)."""
    cleaned = (text or "").replace("€", "").replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    match = _AMOUNT.match(cleaned)
    if not match:
        raise ValueError(cleaned)
    units, cents = match.group(1), (match.group(2) or "0").ljust(2, "0")
    return int(units) * 100 + int(cents)


def typed(cents: int) -> str:
    """Cents as a plain decimal, as an input field shows it back, e.g. 2550 → "25.50", 3000 → "30"."""
    return f"{cents // 100}" if cents % 100 == 0 else f"{cents // 100}.{cents % 100:02d}"


def plain(cents: int) -> str:
    """Cents as a plain decimal with two places, e.g. 2550 → "25.50" (what an amount field is filled with)."""
    return f"{cents // 100}.{cents % 100:02d}"


def with_comma(cents: int) -> str:
    """Cents with a decimal comma and no symbol, e.g. 2550 → "25,50": the acts export's fixed format."""
    return f"{cents // 100},{cents % 100:02d}"


def money(cents: int, currency: str = "EUR", locale=None) -> str:
    """An amount as the reader writes it: "25,50 €" in French, "€25.50" in English."""
    return format_currency(Decimal(cents) / 100, currency, locale=locale or get_locale() or "en")
