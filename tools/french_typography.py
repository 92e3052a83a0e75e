"""Apply French typography to the French catalogue: ’ for ', a no-break space before : ; ? ! and
inside « ». Run after adding French strings (tests/test_i18n_formats.py checks the result):

    .venv/bin/python tools/french_typography.py && .venv/bin/flask --app wsgi translate update

Placeholders, tags and addresses are left as they are (a URL's "?" or a time's "10:00" is no
punctuation), by the same rule the test uses.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

CATALOGUE = Path(__file__).resolve().parent.parent / "translations/fr/LC_MESSAGES/messages.po"
PROTECTED = re.compile(r"%\(\w+\)[sd]|%[sd]|<[^>]*>|https?://\S+|\{[\w.]+\}")
NBSP, NARROW = "\u00a0", "\u202f"


def _plain(text: str) -> str:
    text = text.replace("'", "’")
    text = re.sub(r"[ \u00a0\u202f]?:(?=$|[\s)»\"])", NBSP + ":", text)
    text = re.sub(r"[ \u00a0\u202f]?([;?!])(?=$|[\s)»\"])", NARROW + r"\1", text)
    text = re.sub(r"«[ \u00a0\u202f]?", "«" + NARROW, text)
    return re.sub(r"[ \u00a0\u202f]?»", NARROW + "»", text)


def fix(text: str) -> str:
    """``text`` with French typography, protected spans untouched."""
    out, last = [], 0
    for span in PROTECTED.finditer(text):
        out += [_plain(text[last:span.start()]), span.group()]
        last = span.end()
    return "".join(out + [_plain(text[last:])])


def main() -> int:
    with CATALOGUE.open("rb") as fh:
        catalogue = read_po(fh)
    changed = 0
    for message in catalogue:
        if not message.id or not message.string:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        fixed = tuple(fix(s) for s in strings)
        if fixed != strings:
            message.string = fixed if isinstance(message.string, tuple) else fixed[0]
            changed += 1
    with CATALOGUE.open("wb") as fh:
        write_po(fh, catalogue, sort_output=True, width=76)
    print(f"{changed} French strings set in French typography")
    return 0


if __name__ == "__main__":
    sys.exit(main())
