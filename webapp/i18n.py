"""Languages: flask-babel, the locale and time zone of each request.

Patient pages set ``g.locale`` (the appointment's language, see
``Appointment.effective_locale`` for who decides it); staff pages use the
user's choice, then the practice's default; public pages follow the browser. Times are stored in UTC and shown in the practice's time zone.
"""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale, UnknownLocaleError, dates
from babel.core import get_global
from babel.localedata import exists as locale_exists
from flask import current_app, g, request
from flask_babel import Babel, force_locale, get_locale, get_timezone, to_user_timezone
from flask_babel import lazy_gettext as _l, lazy_ngettext

from .money import money, plain

babel = Babel()


def available_locales() -> list[str]:
    """Locales that have a catalogue in ``translations/``, plus English (the source)."""
    folder = Path(current_app.config["BABEL_TRANSLATION_DIRECTORIES"])
    found = {p.name for p in folder.iterdir() if (p / "LC_MESSAGES" / "messages.po").exists()}
    return sorted(found | {"en"})


def locale_name(code: str) -> str:
    """The language's own name for itself ("français", "English")."""
    name = Locale.parse(code).get_display_name(code) or code
    return name[:1].upper() + name[1:]


def browser_locale() -> str | None:
    """The available locale the browser's Accept-Language prefers, or None when it asks for none of them."""
    return request.accept_languages.best_match(available_locales())


def best_browser_locale(default: str | None = None) -> str:
    return browser_locale() or default or current_app.config["DEFAULT_LOCALE"]


def select_locale() -> str:
    if getattr(g, "locale", None):
        return g.locale
    user = getattr(g, "user", None)
    if user is not None:
        return user.locale or _practice_locale()
    return best_browser_locale(_practice_locale())


def _practice_locale() -> str:
    practice = getattr(g, "practice", None)
    return practice.default_locale if practice else current_app.config["DEFAULT_LOCALE"]


def select_timezone() -> str:
    practice = getattr(g, "practice", None)
    return practice.timezone if practice else "Europe/Paris"


# Languages whose catalogue already is one country's variant: Babel's "pt" is Brazil's, and a
# Lisbon practice's dates in it would mix two norms. Not regionalised until a catalogue says which.
_NOT_REGIONAL = {"pt"}


@lru_cache(maxsize=256)
def dates_locale(language: str, tz_name: str) -> Locale:
    """The locale dates and times are written in: the reader's language as written in the practice's
    country, where the Unicode CLDR knows that pair (English in Paris or London "10 June 2036, 14:05",
    in New York "June 10, 2036, 2:05 PM"; German in Zurich de_CH); otherwise the language alone.

    The country comes from the practice's time zone (CLDR's zone → territory table), since the
    practice has no country of its own. Numbers and amounts keep the language's own conventions:
    they are what the reader types back.
    """
    base = Locale.parse(str(language))
    territory = get_global("zone_territories").get(tz_name or "")
    if base.territory or not territory or base.language in _NOT_REGIONAL:
        return base
    regional = f"{base.language}_{territory}"
    return Locale.parse(regional) if locale_exists(regional) else base


def reader_dates_locale() -> Locale:
    """``dates_locale`` of this request: its language in its practice's time zone."""
    return dates_locale(str(get_locale() or "en"), str(get_timezone()))


def format_date(value=None, format="medium", rebase=True):
    """The ``dateformat`` filter: as flask-babel's, in ``reader_dates_locale``."""
    if rebase and isinstance(value, datetime):
        value = to_user_timezone(value)
    return dates.format_date(value, format, locale=reader_dates_locale())


def format_datetime(value=None, format="medium", rebase=True):
    """The ``datetimeformat`` filter: a stored (naive UTC) instant in the practice's time zone."""
    return dates.format_datetime(value, format, tzinfo=get_timezone() if rebase else None,
                                 locale=reader_dates_locale())


def format_time(value=None, format="medium", rebase=True):
    """The ``timeformat`` filter: a stored (naive UTC) instant's time in the practice's time zone."""
    return dates.format_time(value, format, tzinfo=get_timezone() if rebase else None,
                             locale=reader_dates_locale())


def right_to_left(locale) -> bool:
    """Whether the language is written right to left (Arabic, Hebrew, Persian...), as Babel's CLDR data says."""
    try:
        return Locale.parse(str(locale)).character_order == "right-to-left"
    except (UnknownLocaleError, ValueError, TypeError):   # an unknown or malformed code: the default, left to right
        return False


def text_direction() -> str:
    """``dir`` of the page: "rtl" for a right-to-left language, else "ltr"."""
    locale = get_locale()
    return "rtl" if locale and right_to_left(locale) else "ltr"


def waiting_note_presets() -> list:
    """Messages a practitioner sends the waiting room in one click (offered as they type)."""
    # Translators: a message the practitioner sends the waiting room in one click; the patient
    # reads it in their own language
    # (a plural: Arabic says "5 minutes" and "15 minutes" with different forms of the word)
    return [lazy_ngettext("I am running about %(n)s minute late.", "I am running about %(n)s minutes late.", n, n=n)
            for n in (5, 10, 15, 30)]


def in_reader_language(note: str) -> str:
    """A waiting-room message in the reader's language when it is one of the presets, as typed otherwise.

    The note is stored as the practitioner sent it, in their language; a preset is recognised in
    any language the app speaks, and the patient reads it in theirs.
    """
    if not note:
        return note
    for preset in waiting_note_presets():
        for code in available_locales():
            with force_locale(code):
                matches = str(preset) == note
            if matches:
                return str(preset)
    return note


def picker_back() -> str:
    """Where the language picker leads back to: this page, with its query when that is short (a
    50 kB search is not echoed into every page); "" after a POST, whose URL cannot be reloaded."""
    if request.method != "GET":
        return ""
    return request.full_path.rstrip("?") if len(request.query_string) <= 200 else request.path


def local_to_utc(value: datetime, tz_name: str) -> datetime:
    """A naive wall-clock time in ``tz_name`` as the naive UTC the database stores."""
    aware = value.replace(tzinfo=ZoneInfo(tz_name))
    return aware.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def utc_to_local(value: datetime, tz_name: str) -> datetime:
    """A stored naive UTC time as a naive wall-clock time in ``tz_name``."""
    return value.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(tz_name)).replace(tzinfo=None)


def at_render(func):
    """``func`` as a Jinja filter that runs each time the page is rendered.

    Jinja computes a filter on a constant (``2500|amount_typed``) once, when it compiles the
    template, and keeps the result: the first reader's locale then decided the example amount
    for every reader after (25.00 for a French practitioner). A filter that takes the context is
    never computed ahead; these read the locale and time zone instead."""
    @jinja2.pass_context
    def filter_(context, *args, **kwargs):
        return func(*args, **kwargs)
    return filter_


def init_app(app, translations: Path):
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(translations))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    filters = app.jinja_env.filters
    own = {"money": money, "amount_typed": plain, "dateformat": format_date,
           "datetimeformat": format_datetime, "timeformat": format_time}
    filters.update({name: at_render(func) for name, func in own.items()})
    if "timedeltaformat" in filters:      # flask-babel's own
        filters["timedeltaformat"] = at_render(filters["timedeltaformat"])
    app.jinja_env.globals.update(text_direction=text_direction, right_to_left=right_to_left, locale_name=locale_name,
                                 available_locales=available_locales, in_reader_language=in_reader_language,
                                 picker_back=picker_back,
                                 get_locale=get_locale)
