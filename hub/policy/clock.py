"""The customer's clock: time zones from phone numbers, and exact instants of local wall times.

Calling windows and daily caps are stated in the customer's local time. Turning "09:00 on
2026-03-08 in New York" into an instant needs care at daylight-saving changes: a wall time in the
spring-forward gap does not exist (the window opens when the clock jumps past it), and one in the
autumn overlap exists twice (the window opens at the first). :func:`first_instant` gives the first
instant at which the local wall clock shows the date and at least that time.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones

ONE_SECOND = timedelta(seconds=1)


@functools.lru_cache(maxsize=256)
def zone_named(name: str) -> ZoneInfo:
    """The IANA zone ``name``; raises ``ValueError`` for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def zone_for_phone(e164: str, fallback: ZoneInfo) -> ZoneInfo:
    """The customer's zone from their number when it has exactly one, else ``fallback``.

    Countries spanning several zones (Russia, the USA for some area codes) and numbers whose
    region is unknown fall back to the campaign's zone.
    """
    found = _zone_for_prefix(e164[:8]) if e164.startswith("+86") else _zone(e164)
    return found or fallback


@functools.lru_cache(maxsize=4096)
def _zone_for_prefix(prefix: str) -> ZoneInfo | None:
    # Mainland China has one zone; caching by prefix keeps the common case free.
    return _zone(prefix + "0" * 6)


def _zone(e164: str) -> ZoneInfo | None:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    zones = phone_zones.time_zones_for_number(number)
    if len(zones) != 1 or zones[0] == phone_zones.UNKNOWN_TIMEZONE:
        return None
    try:
        return zone_named(zones[0])
    except ValueError:
        return None


def local(instant: datetime, zone: ZoneInfo) -> datetime:
    """``instant`` (aware) as a naive local wall time in ``zone``."""
    return instant.astimezone(zone).replace(tzinfo=None)


def first_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) at which the wall clock in ``zone`` reads ``day`` and ``at`` or later.

    Normally that is ``day at`` itself (the earlier one in an autumn overlap); in a spring-forward
    gap it is the moment the clock jumps past ``at``.
    """
    wall = datetime.combine(day, at)
    earlier = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if local(earlier, zone) == wall:
        return earlier
    # `wall` falls in a gap: fold=0 reads it with the offset before the jump (an instant after
    # the jump), fold=1 with the offset after it (an instant before). The jump lies in between.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = earlier
    if low > high:
        low, high = high, low
    while high - low > ONE_SECOND:  # the first whole second whose wall time is past `wall`
        middle = low + (high - low) / 2
        middle -= timedelta(microseconds=middle.microsecond)
        if local(middle, zone) >= wall:
            high = middle
        else:
            low = middle
    return high


def start_of_next_day(instant: datetime, zone: ZoneInfo) -> datetime:
    """The instant the customer's next calendar day begins."""
    return first_instant(local(instant, zone).date() + timedelta(days=1), time(0), zone)


def start_of_day(instant: datetime, zone: ZoneInfo) -> datetime:
    """The instant the customer's current calendar day began."""
    return first_instant(local(instant, zone).date(), time(0), zone)
