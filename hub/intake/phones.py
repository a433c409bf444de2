"""Phone number normalisation and masking for imported leads."""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers

# Separators people type or spreadsheets produce; phonenumbers tolerates most of
# them, but stripping them first keeps the float check below simple.
_SEPARATORS = re.compile(r"[\s\-.()\u200b-\u200f\u2060\ufeff]")
# A number typed into a numeric spreadsheet cell comes back as `13812345678.0`.
_FLOAT_FORM = re.compile(r"^(\+?\d+)\.0+$")
# phonenumbers maps letters to keypad digits (vanity numbers), which would turn
# `1.38E10` or `tel 138...` into a different but possibly valid number.
_LETTERS = re.compile(r"[^\W\d_]")
_MAX_INPUT_LENGTH = 64

# Fast path for the common case, a Chinese mobile typed with ASCII digits and separators:
# phonenumbers takes ~50 µs a number, too slow for million-row imports. A CN mobile's validity
# depends only on its first five digits (metadata pattern `1(?:610\d|740[0-5])\d{6}|1(?:[38]\d|…)\d{8}`),
# so it is decided once per prefix by phonenumbers itself; tests/test_intake.py checks the two
# paths agree on every prefix.
_PLAIN = re.compile(r"[0-9+\-(). ]{11,30}")
_COMPACT = str.maketrans("", "", " -().")
_CN_MOBILE = re.compile(r"(\+86|0086|86)?(1\d{10})")


def normalise_phone(raw: str, region: str = "CN") -> str | None:
    """Return ``raw`` as an E.164 string (``+8613812345678``), or None if it is not a valid number.

    Accepts spaces, dashes, dots and parentheses anywhere, full-width digits, an
    international prefix (``+86``/``0086``/``86``) and the ``.0`` suffix of numbers
    read from numeric spreadsheet cells. Numbers without a country code are read
    as numbers of ``region``. Anything containing letters is rejected rather than
    guessed at.
    """
    if not raw:
        return None
    fast = _fast_cn_mobile(raw.strip(), region)
    if fast is not None:
        return fast or None
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text or len(text) > _MAX_INPUT_LENGTH or _LETTERS.search(text):
        return None
    candidates = [_SEPARATORS.sub("", text)]
    # Drop a float's `.0` only when the digits as typed are not valid, so a
    # dotted number whose last group is `0` keeps its last digit.
    match = _FLOAT_FORM.match(text)
    if match:
        candidates.append(match.group(1))
    for candidate in candidates:
        e164 = _to_e164(candidate, region)
        if e164 is not None:
            return e164
    return None


def _fast_cn_mobile(text: str, region: str) -> str | None:
    """E.164 for a plainly typed CN mobile, "" if it is one but invalid, None to take the slow path."""
    if not _PLAIN.fullmatch(text):
        return None
    match = _CN_MOBILE.fullmatch(text.translate(_COMPACT))
    if match is None:
        return None
    prefix, national = match.groups()
    # Without "+86" the number is Chinese only when the default region is.
    if prefix != "+86" and region != "CN":
        return None
    return "+86" + national if cn_mobile_prefix_valid(national[:5]) else ""


@functools.cache
def cn_mobile_prefix_valid(prefix5: str) -> bool:
    """Whether 11-digit CN numbers starting with these five digits are valid mobiles."""
    return _to_e164(prefix5 + "000000", "CN") is not None


def _to_e164(text: str, region: str) -> str | None:
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_national_number(digits: str) -> str:
    """Mask a national significant number so that it is never fully revealed.

    Rule (``n`` = number of characters):

    * ``n >= 11``: first 3 and last 4 shown, e.g. ``138****5678``;
    * ``8 <= n <= 10``: last 4 shown and as many leading digits (at most 3) as
      still leave 4 stars, e.g. ``10****5678``;
    * ``n <= 7``: only the last 2 shown (fewer for 1–2 digit inputs), e.g. ``*****78``.

    At most 7 characters are ever revealed, at least one is always hidden, and
    the result has the same length as the input.
    """
    n = len(digits)
    if n >= 8:
        tail = 4
        head = min(3, n - tail - 4)
    else:
        tail = min(2, n - 1) if n > 0 else 0
        head = 0
    return digits[:head] + "*" * (n - head - tail) + digits[n - tail :]


def mask_phone(e164: str) -> str:
    """Mask an E.164 number for display to agents, e.g. ``+8613812345678`` → ``138****5678``.

    The country code is dropped and the national significant number is masked
    with :func:`mask_national_number`. Input that does not parse as a phone
    number has all its digits masked the same way, so nothing leaks either way.
    """
    try:
        number = phonenumbers.parse(e164, None)
        national = phonenumbers.national_significant_number(number)
    except phonenumbers.NumberParseException:
        national = re.sub(r"\D", "", e164)
    return mask_national_number(national)
