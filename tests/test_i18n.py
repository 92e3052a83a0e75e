"""Languages: catalogues complete, pages in the chosen language, right-to-left."""
from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from conftest import login_as, text_of

ROOT = Path(__file__).resolve().parent.parent


def catalog(locale):
    with (ROOT / "translations" / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh)


KEYWORDS = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2),
            "lazy_ngettext": (1, 2), "pgettext": ((1, "c"), 2), "lazy_pgettext": ((1, "c"), 2)}


def source_messages() -> dict:
    """(msgid, context) → translator comments, for every string the code and templates mark."""
    method_map = [("webapp/**.py", "python"), ("templates/**.html", "jinja2")]
    found = {}
    for _file, _line, message, comments, context in extract_from_dir(
            str(ROOT), method_map, keywords=KEYWORDS, comment_tags=["Translators:"]):
        found.setdefault((message if isinstance(message, str) else message[0], context), []).extend(comments)
    return found


def source_strings():
    return {message for message, _context in source_messages()}


@pytest.mark.parametrize("locale", ["fr", "en", "es", "de", "it", "pt", "ar"])
def test_catalogues_are_complete(locale):
    cat = catalog(locale)
    missing = sorted(s for s, ctx in source_messages() if s and (
        cat.get(s, context=ctx) is None or not cat.get(s, context=ctx).string or cat.get(s, context=ctx).fuzzy))
    assert missing == [], f"{locale}: {len(missing)} strings untranslated, e.g. {missing[:5]}"
    for message in cat:
        if message.id and isinstance(message.string, tuple):
            assert all(message.string), f"{locale}: plural forms missing for {message.id}"


def test_french_placeholders_match():
    for message in catalog("fr"):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            for name in __import__("re").findall(r"%\((\w+)\)s", ids[-1]):
                assert f"%({name})s" in text, f"{message.id!r} lost %({name})s"


def test_staff_page_in_french(client):
    login_as(client, "practitioner", locale="fr")
    text = text_of(client.get("/agenda/"))
    assert "Nouvelle téléconsultation" in text and "Semaine" in text


def test_staff_page_in_english(client):
    login_as(client, "practitioner", locale="en")
    assert "New teleconsultation" in text_of(client.get("/agenda/"))


def test_staff_without_choice_get_the_practice_language(client):
    from webapp.models import Practice
    Practice.update(default_locale="fr").execute()
    login_as(client, "practitioner", locale="")
    assert "Nouvelle téléconsultation" in text_of(client.get("/agenda/"))


def test_right_to_left_languages_are_mirrored(app):
    from flask_babel import force_locale
    from webapp.i18n import text_direction
    with app.test_request_context(), force_locale("ar"):
        assert text_direction() == "rtl"
    with app.test_request_context(), force_locale("fr"):
        assert text_direction() == "ltr"


def test_translate_stats_command(runner):
    result = runner.invoke(args=["translate", "stats"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "100.0%" in lines["fr"] and "100.0%" in lines["en"]


# Short words that mean different things in different places carry a context, so that a language can
# tell a cancelled visit (French "annulée") from a cancelled payment ("annulé").
AMBIGUOUS = ["Cancelled", "Closed", "Waived", "Held", "Send", "Mute", "Scheduled", "Waiting", "Requested",
             "Paid", "Pending", "Sent", "Failed", "From", "To"]


def test_short_ambiguous_words_are_marked_with_a_context():
    contexts = {}
    for message, context in source_messages():
        contexts.setdefault(message, set()).add(context)
    for word in AMBIGUOUS:
        assert contexts.get(word), f"{word!r} is no longer used: drop it from AMBIGUOUS"
        # "Scheduled", "Requested" and "Paid" also head a field or column on their own, with a comment.
        assert None not in contexts[word] or word in ("Scheduled",), f"{word!r} without a context"


def test_a_word_reads_differently_in_each_context(app):
    from flask_babel import force_locale, pgettext
    with app.test_request_context(), force_locale("fr"):
        assert pgettext("visit status", "Cancelled") == "Annulée"
        assert pgettext("payment status", "Cancelled") == "Annulé"
        assert pgettext("date range", "From") == "Du" and pgettext("where a request came from", "From") == "Provenance"


def test_translator_comments_reach_every_catalogue():
    """The legal wording of consent says so to translators, in every language's file."""
    consent = {k: v for k, v in source_messages().items() if any("LEGAL WORDING" in c for c in v)}
    assert len(consent) >= 7
    for locale in ("fr", "es", "de", "it", "pt", "ar"):
        cat = catalog(locale)
        for (message, context), comments in consent.items():
            assert any("LEGAL WORDING" in c for c in cat.get(message, context=context).auto_comments), (locale, message)


@pytest.mark.parametrize("locale, count, expected", [
    ("en", 1, "At most 1 character."), ("en", 300, "At most 300 characters."),
    ("fr", 1, "1 caractère au maximum."), ("fr", 300, "300 caractères au maximum."),
    ("ar", 2, "2 حرفان على الأكثر."), ("ar", 5, "5 أحرف على الأكثر."), ("ar", 300, "300 حرف على الأكثر."),
])
def test_counts_take_the_plural_form_of_the_language(app, locale, count, expected):
    from flask_babel import force_locale
    from webapp.closing.forms import at_most
    with app.test_request_context(), force_locale(locale):
        assert str(at_most(count)) == expected
