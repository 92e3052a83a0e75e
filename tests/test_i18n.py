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


def source_strings():
    method_map = [("webapp/**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, keywords={"_": None, "_l": None, "gettext": None, "lazy_gettext": None,
                                             "ngettext": (1, 2)}):
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("locale", ["fr", "en"])
def test_catalogues_are_complete(locale):
    cat = catalog(locale)
    missing = sorted(s for s in source_strings() if s and (s not in cat or not cat[s].string or cat[s].fuzzy))
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
