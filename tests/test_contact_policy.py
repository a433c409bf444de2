"""The contact policy as a pure rule set: examples, bad policies, and properties over random histories."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.policy import (
    DEFAULT_POLICY_JSON,
    DEMO_POLICY_JSON,
    CallingWindow,
    Caps,
    ContactFacts,
    ContactPolicy,
    PolicyError,
    decide,
    inside_window,
    local,
    parse_policy,
    policy_json,
    zone_named,
)

SHANGHAI = zone_named("Asia/Shanghai")
PHONE = "+8613812345678"
SECOND = timedelta(seconds=1)


def at(text: str, zone: str = "Asia/Shanghai") -> datetime:
    """A local wall time in ``zone`` as an aware UTC instant."""
    return datetime.fromisoformat(text).replace(tzinfo=zone_named(zone)).astimezone(UTC)


def codes(decision) -> set[str]:
    return {r.code for r in decision.reasons}


# -- saving a policy ----------------------------------------------------------------------------


def test_default_and_demo_policies_parse_and_round_trip() -> None:
    for raw in (DEFAULT_POLICY_JSON, DEMO_POLICY_JSON):
        policy = parse_policy(raw)
        assert parse_policy(policy_json(policy)) == policy
    demo = parse_policy(DEMO_POLICY_JSON)
    assert all(inside_window(demo, at("2026-11-22T03:17"), SHANGHAI) for _ in range(1))


@pytest.mark.parametrize(
    ("change", "where", "words"),
    [
        ({"lead_caps": {"per_day": 0}}, "lead_caps.per_day", "cap of 0"),
        ({"phone_caps": {"per_day": 5, "lifetime": 3}}, "phone_caps.per_day", "more than the lifetime"),
        ({"phone_caps": {"per_24h": "many"}}, "phone_caps.per_24h", "whole number"),
        ({"windows": []}, "windows", "no call could ever be made"),
        ({"windows": [{"weekdays": [0], "start": "18:00", "end": "09:00"}]}, "windows[0]", "never opens"),
        ({"windows": [{"weekdays": [7], "start": "09:00", "end": "18:00"}]}, "windows[0].weekdays", "Monday"),
        ({"windows": [{"weekdays": [1], "start": "9", "end": "24:01"}]}, "windows[0]", "times like"),
        ({"zone": "Mars/Olympus"}, "zone", "unknown time zone"),
        ({"retry_after_minutes": {"fax": 3}}, "retry_after_minutes.fax", "unknown outcome"),
        ({"retry_after_minutes": {"busy": -1}}, "retry_after_minutes.busy", "0 or more"),
        ({"retry_after_minutes": {"callback": 5}}, "retry_after_minutes.callback", "chosen by the agent"),
        ({"blackout_dates": ["2026-02-30"]}, "blackout_dates", "not a date"),
    ],
)
def test_contradictory_or_malformed_policies_are_refused_with_the_field(change, where, words) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy({**DEFAULT_POLICY_JSON, **change})
    assert any(field == where and words in message for field, message in refused.value.problems), (
        refused.value.problems
    )


# -- examples -----------------------------------------------------------------------------------

WEEKDAY_DAYTIME = ContactPolicy(
    windows=(CallingWindow(frozenset(range(5)), 9 * 60, 20 * 60),),
    lead_caps=Caps(per_day=2, lifetime=3),
    phone_caps=Caps(per_24h=2),
    retry_after={"no_answer": timedelta(hours=2), "invalid_number": None},
)


def test_outside_calling_hours_waits_for_the_next_window() -> None:
    friday_night = at("2026-11-27T21:00")  # a Friday
    decision = decide([WEEKDAY_DAYTIME], ContactFacts(PHONE), friday_night)
    assert codes(decision) == {"outside_window"}
    assert decision.earliest == at("2026-11-30T09:00")  # Monday morning


def test_retry_pause_and_daily_cap_combine_to_the_exact_minute() -> None:
    tries = (at("2026-11-23T10:00"), at("2026-11-23T19:00"))
    facts = ContactFacts(
        PHONE, "retry", last_outcome="no_answer", last_attempt_at=tries[-1], lead_attempts=tries
    )
    decision = decide([WEEKDAY_DAYTIME], facts, at("2026-11-23T19:30"))
    assert codes(decision) == {"retry_pause", "lead_cap_day"}
    # Tomorrow's cap is fresh at midnight, the pause ended at 21:00, the window opens at 09:00.
    assert decision.earliest == at("2026-11-24T09:00")


def test_rolling_cap_on_the_number_frees_up_when_the_filling_attempt_is_a_day_old() -> None:
    other_leads = (at("2026-11-23T10:00"), at("2026-11-23T16:00"))
    facts = ContactFacts(PHONE, phone_attempts=other_leads)
    decision = decide([WEEKDAY_DAYTIME], facts, at("2026-11-23T17:00"))
    assert codes(decision) == {"phone_cap_24h"}
    assert decision.earliest == at("2026-11-24T10:00")


def test_final_states_never_come_back() -> None:
    now = at("2026-11-23T10:00")
    assert decide([WEEKDAY_DAYTIME], ContactFacts(PHONE, on_dnc=True), now).earliest is None
    closed = ContactFacts(PHONE, "closed", last_outcome="converted", last_attempt_at=now - SECOND)
    assert decide([WEEKDAY_DAYTIME], closed, now).earliest is None
    invalid = ContactFacts(PHONE, "retry", last_outcome="invalid_number", last_attempt_at=now - SECOND)
    assert codes(decide([WEEKDAY_DAYTIME], invalid, now)) == {"no_retry_after_outcome"}
    three = tuple(now - timedelta(days=d) for d in (3, 2, 1))
    assert decide([WEEKDAY_DAYTIME], ContactFacts(PHONE, lead_attempts=three), now).earliest is None


def test_a_callback_waits_for_its_time_and_blackout_dates_skip_a_day() -> None:
    policy = ContactPolicy(blackout_dates=frozenset({date(2026, 11, 24)}))
    facts = ContactFacts(PHONE, "callback", callback_at=at("2026-11-23T15:00"))
    assert decide([policy], facts, at("2026-11-23T14:00")).earliest == at("2026-11-23T15:00")
    decision = decide([policy], ContactFacts(PHONE), at("2026-11-24T11:00"))
    assert codes(decision) == {"blackout_date"} and decision.earliest == at("2026-11-25T00:00")


def test_system_limits_apply_on_top_of_the_campaign() -> None:
    campaign = ContactPolicy(phone_caps=Caps(per_day=5))
    system = ContactPolicy(
        phone_caps=Caps(per_day=1), windows=(CallingWindow(frozenset(range(7)), 8 * 60, 21 * 60),)
    )
    facts = ContactFacts(PHONE, phone_attempts=(at("2026-11-23T09:00"),))
    decision = decide([campaign, system], facts, at("2026-11-23T10:00"))
    assert codes(decision) == {"phone_cap_day"}
    assert decision.earliest == at("2026-11-24T08:00")


def test_the_customers_zone_comes_from_their_number_or_the_campaign() -> None:
    nine_to_five = ContactPolicy(windows=(CallingWindow(frozenset(range(7)), 9 * 60, 17 * 60),))
    san_francisco = "+14155552671"
    ten_am_shanghai = at("2026-11-23T10:00")  # 18:00 the day before in San Francisco
    assert decide([nine_to_five], ContactFacts(PHONE), ten_am_shanghai).dialable
    decision = decide([nine_to_five], ContactFacts(san_francisco), ten_am_shanghai)
    assert decision.earliest == at("2026-11-23T09:00", "America/Los_Angeles")
    overridden = ContactPolicy(windows=nine_to_five.windows, zone_override=True)
    assert decide([overridden], ContactFacts(san_francisco), ten_am_shanghai).dialable
    russia = "+79161234567"  # eleven zones: the campaign's zone
    assert decide([nine_to_five], ContactFacts(russia), ten_am_shanghai).dialable


def test_a_window_opening_in_the_spring_forward_gap_opens_when_the_clock_jumps() -> None:
    policy = ContactPolicy(
        windows=(CallingWindow(frozenset(range(7)), 2 * 60 + 30, 4 * 60),),
        zone=zone_named("America/New_York"),
        zone_override=True,
    )
    decision = decide([policy], ContactFacts(PHONE), at("2026-03-08T00:00", "America/New_York"))
    assert decision.earliest == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT, the jump
    assert local(decision.earliest, policy.zone) == datetime(2026, 3, 8, 3, 0)


# -- properties ---------------------------------------------------------------------------------

ZONES = ["Asia/Shanghai", "America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago"]
START = datetime(2026, 3, 1, tzinfo=UTC)  # DST changes fall inside the generated spans


@st.composite
def policies(draw) -> ContactPolicy:
    def caps() -> Caps:
        return Caps(
            per_day=draw(st.none() | st.integers(1, 3)),
            per_24h=draw(st.none() | st.integers(1, 4)),
            lifetime=draw(st.none() | st.integers(3, 12)),
        )

    windows = []
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, 23 * 60))
        windows.append(
            CallingWindow(
                frozenset(draw(st.sets(st.integers(0, 6), min_size=1))),
                start,
                draw(st.integers(start + 1, 24 * 60)),
            )
        )
    blackout = draw(st.sets(st.dates(date(2026, 3, 1), date(2026, 4, 30)), max_size=5))
    retry = draw(
        st.dictionaries(
            st.sampled_from(["no_answer", "busy", "interested"]),
            st.timedeltas(timedelta(0), timedelta(days=2)).map(
                lambda d: timedelta(seconds=int(d.total_seconds()))
            ),
        )
    )
    return ContactPolicy(
        lead_caps=caps(),
        phone_caps=caps(),
        retry_after=retry,
        windows=tuple(windows),
        blackout_dates=frozenset(blackout),
        zone=zone_named(draw(st.sampled_from(ZONES))),
        zone_override=True,
    )


instants = st.integers(0, 50 * 24 * 3600).map(lambda s: START + timedelta(seconds=s))


@st.composite
def facts(draw) -> ContactFacts:
    lead = sorted(draw(st.lists(instants, max_size=6)))
    phone = sorted(lead + draw(st.lists(instants, max_size=6)))
    outcome = draw(st.none() | st.sampled_from(["no_answer", "busy", "interested"]))
    return ContactFacts(
        PHONE,
        "retry" if lead else "new",
        last_outcome=outcome if lead else None,
        last_attempt_at=lead[-1] if lead else None,
        lead_attempts=tuple(lead),
        phone_attempts=tuple(phone),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(policies(), min_size=1, max_size=2), facts(), instants)
def test_the_earliest_time_is_exact(rules, lead, now) -> None:
    now = max([now, *lead.phone_attempts])  # the history is the past
    decision = decide(rules, lead, now)
    assert decision.dialable == (decision.earliest == now)
    if decision.earliest is None:
        assert any(r.until is None for r in decision.reasons)
        return
    assert decide(rules, lead, decision.earliest).dialable, "dialable at the earliest time"
    if decision.earliest > now:
        assert not decide(rules, lead, decision.earliest - SECOND).dialable, "not one second before"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.lists(st.integers(1, 20 * 3600), min_size=1, max_size=60), st.booleans())
def test_no_sequence_of_calls_breaks_a_cap_a_window_or_the_do_not_call_list(policy, steps, listed) -> None:
    """Dial whenever the policy allows, at random moments, then audit the whole history."""
    t, made = START, []
    for step in steps:
        t += timedelta(seconds=step)
        lead = ContactFacts(
            PHONE,
            "retry" if made else "new",
            on_dnc=listed,
            last_outcome="no_answer" if made else None,
            last_attempt_at=made[-1] if made else None,
            lead_attempts=tuple(made),
            phone_attempts=tuple(made),
        )
        if decide([policy], lead, t).dialable:
            made.append(t)
    if listed:
        assert made == []
    zone = policy.zone
    for caps in (policy.lead_caps, policy.phone_caps):
        if caps.lifetime is not None:
            assert len(made) <= caps.lifetime
        for a in made:
            if caps.per_24h is not None:
                assert sum(a - DAY_ < b <= a for b in made) <= caps.per_24h
            if caps.per_day is not None:
                assert sum(local(b, zone).date() == local(a, zone).date() for b in made) <= caps.per_day
    assert all(inside_window(policy, a, zone) for a in made)
    pause = policy.retry_after.get("no_answer")
    if pause is not None:
        assert all(later - earlier >= pause for earlier, later in itertools.pairwise(made))


DAY_ = timedelta(days=1)
