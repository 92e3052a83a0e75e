"""Amounts: held as integer cents, typed by people in euros, shown by Babel in the reader's locale.

One limit for every amount Cabinet takes (a fee, a payment request, a preset), one
reader for what people type, one way to show an amount.
"""
from __future__ import annotations

import re
from decimal import Decimal

from babel.numbers import format_currency, get_decimal_symbol
from flask_babel import get_locale

# 1000 €: above that, a teleconsultation amount is a typo (25000 typed for 25.00).
MAX_CENTS = 100_000
# Either decimal mark, whatever the reader's language: a French keyboard's numeric pad types ".",
# and an English reader may paste "25,50". The Arabic decimal separator (٫) too; ``\d`` and ``int``
# read Arabic-Indic digits. No group separators: "1,000.50" is refused rather than guessed.
_AMOUNT = re.compile(r"^(\d{1,7})(?:[.,\u066b](\d{1,2}))?$")


def parse_cents(text: str) -> int:
    """ "25", "25.5", "25,50 €", "30.00" → cents; ValueError for anything else (signs, exponents, letters)."""
    cleaned = (text or "").replace("€", "").replace("\u00a0", "").replace("\u202f", "").replace(" ", "")
    match = _AMOUNT.match(cleaned)
    if not match:
        raise ValueError(cleaned)
    units, cents = match.group(1), (match.group(2) or "0").ljust(2, "0")
    return int(units) * 100 + int(cents)


def _decimal_mark(locale) -> str:
    return get_decimal_symbol(locale or get_locale() or "en")


def typed(cents: int, locale=None) -> str:
    """Cents as the reader types them, shortest: 2550 → "25,50" in French, "25.50" in English; 3000 → "30"."""
    return f"{cents // 100}" if cents % 100 == 0 else f"{cents // 100}{_decimal_mark(locale)}{cents % 100:02d}"


def plain(cents: int, locale=None) -> str:
    """Cents with two places as the reader types them, no symbol, no grouping: 2550 → "25,50" in French,
    "25.50" in English (what an amount field is filled with, and reads back with ``parse_cents``)."""
    return f"{cents // 100}{_decimal_mark(locale)}{cents % 100:02d}"


def with_comma(cents: int) -> str:
    """Cents with a decimal comma and no symbol, e.g. 2550 → "25,50": the acts export's fixed format."""
    return f"{cents // 100},{cents % 100:02d}"


def money(cents: int, currency: str = "EUR", locale=None) -> str:
    """An amount as the reader writes it: "25,50 €" in French, "€25.50" in English."""
    return format_currency(Decimal(cents) / 100, currency, locale=locale or get_locale() or "en")
