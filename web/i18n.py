"""One translation function for every user-facing string (gettext; English first)."""

from __future__ import annotations

import gettext
from pathlib import Path

LOCALE_DIR = Path(__file__).with_name("locale")
_translations = gettext.translation("lineup", localedir=LOCALE_DIR, languages=["en"], fallback=True)


def _(message: str) -> str:
    return _translations.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translations.ngettext(singular, plural, n)


def translations() -> gettext.NullTranslations:
    return _translations
