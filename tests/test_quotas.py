"""Agent quotas: the rules (property tests), their storage, and the supervisors' page and API."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from hub.policy import zone_named
from hub.quotas import (
    DEFAULT_QUOTAS_JSON,
    MAX_DAILY,
    QUOTA_FIELDS,
    AgentDay,
    Quota,
    QuotaBook,
    QuotaError,
    Source,
    WarningKind,
    day_bounds,
    parse_quotas,
    quota_book,
    quota_warnings,
    quotas_json,
    warning_key,
)
from storage import quotas as quota_store
from storage import users as user_store
from tests.seed import add_user, api_client, csrf_in, signed_in

# --- the rules ---------------------------------------------------------------------------------

daily = st.integers(1, MAX_DAILY)
maybe_daily = st.none() | daily
quotas = st.builds(Quota, maybe_daily, maybe_daily)
set_quotas = quotas.filter(lambda q: not q.is_empty())
tiers = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=8).map(
    str.strip
)
ids = st.integers(1, 2**31 - 1)
minutes = st.integers(0, 23 * 60 + 58)
books = st.builds(
    QuotaBook,
    default=quotas,
    tiers=st.dictionaries(tiers.filter(bool), set_quotas, max_size=4),
    teams=st.dictionaries(ids, set_quotas, max_size=4),
    agents=st.dictionaries(ids, set_quotas, max_size=4),
    zone=st.sampled_from(["Asia/Shanghai", "UTC", "America/New_York", "Europe/London"]).map(zone_named),
    start=minutes.map(lambda m: time(m // 60, m % 60)),
).flatmap(
    lambda b: st.integers(b.start.hour * 60 + b.start.minute + 1, 23 * 60 + 59).map(
        lambda m: dataclasses.replace(b, end=time(m // 60, m % 60))
    )
)
OFFICE = quota_book(None)  # the built-in book: 09:00-18:00 in Asia/Shanghai
MORNING = datetime(2026, 5, 4, 8, 0)  # a Monday, local wall times
NOON = datetime(2026, 5, 4, 12, 0)


def test_the_built_in_defaults_are_sensible_and_valid():
    assert quotas_json(OFFICE) == DEFAULT_QUOTAS_JSON
    assert OFFICE.for_agent(1, None, "A") == Quota(daily_new_leads=80, daily_calls=120)
    assert (OFFICE.start, OFFICE.end, OFFICE.zone.key) == (time(9), time(18), "Asia/Shanghai")


def test_the_most_specific_setting_wins_field_by_field():
    book = parse_quotas(
        {
            "default": {"daily_new_leads": 80, "daily_calls": 120},
            "tiers": {"B": {"daily_new_leads": 60, "daily_calls": 100}},
            "teams": {"3": {"daily_calls": 150}},
            "agents": {"17": {"daily_new_leads": 40}},
        }
    )
    quota, origin = book.resolve(17, 3, "B")
    assert quota == Quota(daily_new_leads=40, daily_calls=150)
    assert (origin.daily_new_leads, origin.daily_calls) == (Source.AGENT, Source.TEAM)
    assert book.resolve(18, 4, "B") == (Quota(60, 100), type(origin)(Source.TIER, Source.TIER))
    assert book.for_agent(18, None, "A") == Quota(80, 120)


@given(books, ids, st.none() | ids, st.none() | tiers, st.sampled_from(QUOTA_FIELDS), daily)
def test_an_agents_own_setting_overrides_that_field_only(book, agent, team, tier, name, value):
    before = book.for_agent(agent, team, tier)
    own = dataclasses.replace(book.agents.get(agent, Quota()), **{name: value})
    after = dataclasses.replace(book, agents={**book.agents, agent: own}).for_agent(agent, team, tier)
    assert getattr(after, name) == value
    for other in QUOTA_FIELDS:
        if other != name and getattr(own, other) is None:
            assert getattr(after, other) == getattr(before, other)


@given(books, ids, ids, tiers, quotas, quotas, quotas)
def test_wider_settings_never_change_a_field_set_more_specifically(
    book, agent, team, tier, new_default, new_tier, new_team
):
    before, origin = book.resolve(agent, team, tier)
    wider = dataclasses.replace(
        book,
        default=new_default,
        tiers={**book.tiers, tier: new_tier},
        teams={**book.teams, team: new_team},
    )
    after = wider.for_agent(agent, team, tier)
    for name in QUOTA_FIELDS:
        if getattr(origin, name) is Source.AGENT:
            assert getattr(after, name) == getattr(before, name)
    # The team is more specific than the tier and the default.
    wider_than_team = dataclasses.replace(book, default=new_default, tiers={**book.tiers, tier: new_tier})
    for name in QUOTA_FIELDS:
        if getattr(origin, name) in (Source.AGENT, Source.TEAM):
            assert getattr(wider_than_team.for_agent(agent, team, tier), name) == getattr(before, name)


@given(books)
def test_quotas_survive_a_round_trip_through_json(book):
    stored = json.loads(json.dumps(quotas_json(book)))  # as jsonb gives it back: string keys
    assert parse_quotas(stored) == book
    assert quotas_json(parse_quotas(stored)) == stored


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=20,
    )
)
def test_junk_is_refused_with_named_fields_never_a_crash(raw):
    if not isinstance(raw, dict):
        raw = {"default": raw}
    try:
        book = parse_quotas(raw)
    except QuotaError as exc:
        assert exc.problems and all(isinstance(field, str) and message for field, message in exc.problems)
    else:
        assert parse_quotas(quotas_json(book)) == book


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        ({"default": {"daily_new_leads": 0}}, {"default.daily_new_leads"}),
        ({"default": {"daily_calls": -5}}, {"default.daily_calls"}),
        (
            {"default": {"daily_calls": 1.5, "daily_new_leads": True}},
            {"default.daily_calls", "default.daily_new_leads"},
        ),
        ({"tiers": {"A": {"daily_new_leads": "lots"}}}, {"tiers.A.daily_new_leads"}),
        ({"teams": {"3": {"daily_calls": MAX_DAILY + 1}}}, {"teams.3.daily_calls"}),
        ({"agents": {"x": {"daily_calls": 5}, "7": {"daily_call": 5}}}, {"agents.x", "agents.7.daily_call"}),
        (
            {"teams": {"-1": {"daily_calls": 5}}, "tiers": {"TOO-LONG-X": {"daily_calls": 5}}},
            {"teams.-1", "tiers.TOO-LONG-X"},
        ),
        ({"zone": "Mars/Olympus_Mons"}, {"zone"}),
        ({"zone": "localtime"}, {"zone"}),
        ({"working_day": {"start": "18:00", "end": "09:00"}}, {"working_day.end"}),
        ({"working_day": {"start": "9am", "end": "24:00"}}, {"working_day.start", "working_day.end"}),
        ({"default": [80, 120], "tier": {}}, {"default", "tier"}),
    ],
)
def test_bad_quotas_are_refused_naming_each_field(raw, fields):
    with pytest.raises(QuotaError) as refused:
        parse_quotas(raw)
    assert {field for field, _ in refused.value.problems} == fields


def test_a_zero_cap_says_to_leave_it_empty():
    with pytest.raises(QuotaError) as refused:
        parse_quotas({"default": {"daily_new_leads": 0}, "agents": {"5": {"daily_new_leads": "0"}}})
    messages = dict(refused.value.problems)
    assert "leave it empty for no cap" in messages["default.daily_new_leads"]
    assert "leave it empty to use the wider setting" in messages["agents.5.daily_new_leads"]


def test_form_strings_are_read_as_numbers_and_empty_ones_as_not_set():
    book = parse_quotas(
        {"default": {"daily_new_leads": " 70 ", "daily_calls": ""}, "tiers": {"B": {"daily_calls": ""}}}
    )
    assert book.default == Quota(70, None) and book.tiers == {}


counts = st.builds(AgentDay, st.integers(0, 2 * MAX_DAILY), st.integers(0, 2 * MAX_DAILY))
local_times = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31))


def _kinds(warnings):
    return {(w.kind, w.level) for w in warnings}


@given(quotas, counts, local_times, st.integers(0, 500))
def test_more_calls_never_take_back_a_reached_target(quota, day, now, more):
    before = quota_warnings(quota, day, now, OFFICE)
    after = quota_warnings(quota, AgentDay(day.new_leads, day.calls + more), now, OFFICE)
    if (WarningKind.CALL_TARGET, 100) in _kinds(before):
        assert (WarningKind.CALL_TARGET, 100) in _kinds(after)
    if WarningKind.BEHIND_PACE not in {w.kind for w in before}:
        assert WarningKind.BEHIND_PACE not in {w.kind for w in after}


@given(quotas, counts, local_times)
def test_the_cap_warning_is_at_100_exactly_when_the_cap_is_reached(quota, day, now):
    warnings = quota_warnings(quota, day, now, OFFICE)
    reached = quota.daily_new_leads is not None and day.new_leads >= quota.daily_new_leads
    assert ((WarningKind.DAILY_CAP, 100) in _kinds(warnings)) == reached
    assert len({w.kind for w in warnings}) == len(warnings), "at most one warning of each kind"
    for w in warnings:
        assert w.level in (80, 100) and w.remaining >= 0 and w.threshold >= 0 and w.message
        if w.kind is WarningKind.DAILY_CAP:
            assert (w.threshold, w.remaining) == (quota.daily_new_leads, max(w.threshold - day.new_leads, 0))
            assert w.level == 100 or day.new_leads * 10 >= 8 * quota.daily_new_leads


@given(books, daily, st.integers(0, MAX_DAILY), local_times)
def test_pace_is_judged_only_inside_the_working_day_after_its_first_hour(book, target, calls, now):
    warnings = quota_warnings(Quota(daily_calls=target), AgentDay(0, calls), now, book)
    behind = [w for w in warnings if w.kind is WarningKind.BEHIND_PACE]
    judged = (
        datetime.combine(now.date(), book.start) + timedelta(hours=1)
        <= now
        < datetime.combine(now.date(), book.end)
    )
    if not judged:
        assert not behind
    elif calls == 0:
        assert behind, "no calls at all an hour into the day is behind any pace"
    for w in behind:
        assert w.remaining == target - calls > 0 and calls < 0.8 * w.threshold + 1


def test_warnings_read_like_a_coach():
    quota = Quota(daily_new_leads=80, daily_calls=120)
    near = quota_warnings(quota, AgentDay(new_leads=64, calls=96), NOON, OFFICE)
    assert [(w.kind, w.level, w.remaining, w.threshold) for w in near] == [
        (WarningKind.DAILY_CAP, 80, 16, 80),
        (WarningKind.CALL_TARGET, 80, 24, 120),
    ]
    done = quota_warnings(quota, AgentDay(new_leads=80, calls=121), NOON, OFFICE)
    assert [(w.kind, w.level, w.remaining) for w in done] == [
        (WarningKind.DAILY_CAP, 100, 0),
        (WarningKind.CALL_TARGET, 100, 0),
    ]
    assert "Well done" in done[1].message and "Callbacks and retries" in done[0].message
    # At noon a third of the 9-hour day is gone: 40 calls keep pace, under 32 is behind.
    assert not quota_warnings(quota, AgentDay(0, 32), NOON, OFFICE)
    (behind,) = quota_warnings(quota, AgentDay(0, 31), NOON, OFFICE)
    assert (behind.kind, behind.threshold, behind.remaining) == (WarningKind.BEHIND_PACE, 40, 89)
    assert behind.as_event()["type"] == "quota.warning" and behind.as_event()["kind"] == "behind_pace"
    assert not quota_warnings(quota, AgentDay(0, 0), MORNING, OFFICE), "nothing before the day starts"
    aware = datetime(2026, 5, 4, 4, 0, tzinfo=UTC)  # noon in Shanghai
    assert quota_warnings(quota, AgentDay(0, 31), aware, OFFICE) == [behind]


def test_each_warning_has_one_key_a_day():
    quota = Quota(daily_new_leads=10)
    (eighty,) = quota_warnings(quota, AgentDay(8, 0), NOON, OFFICE)
    (hundred,) = quota_warnings(quota, AgentDay(10, 0), NOON, OFFICE)
    (again,) = quota_warnings(quota, AgentDay(11, 0), NOON, OFFICE)
    today, tomorrow = date(2026, 5, 4), date(2026, 5, 5)
    assert warning_key(hundred, today) == warning_key(again, today)
    assert len({warning_key(eighty, today), warning_key(hundred, today), warning_key(hundred, tomorrow)}) == 3


def test_the_company_day_begins_at_its_own_midnight_even_when_the_clock_skips_it():
    assert day_bounds(OFFICE, datetime(2026, 5, 1, 17, 0, tzinfo=UTC)) == (
        date(2026, 5, 2),
        datetime(2026, 5, 1, 16, 0, tzinfo=UTC),
    )
    # Chile springs forward at midnight: 6 September 2026 begins at 01:00 local (-03).
    santiago = dataclasses.replace(OFFICE, zone=zone_named("America/Santiago"))
    assert day_bounds(santiago, datetime(2026, 9, 6, 15, 0, tzinfo=UTC)) == (
        date(2026, 9, 6),
        datetime(2026, 9, 6, 4, 0, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="aware"):
        day_bounds(OFFICE, datetime(2026, 5, 1, 12, 0))


@given(
    books,
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_now_is_always_inside_the_day_it_belongs_to(book, now):
    day, began = day_bounds(book, now)
    assert began <= now and book.local(began).date() == day
    assert book.local(began - timedelta(seconds=1)).date() < day


# --- storage ------------------------------------------------------------------------------------


async def _call(s, agent_id: int, at: datetime, direction: str = "outbound") -> None:
    await s.execute(
        text(
            "INSERT INTO calls (id, started_at, direction, agent_id, phone_e164, state)"
            " VALUES (:id, :at, :dir, :agent, '+8613800000000', 'ended')"
        ),
        {"id": uuid.uuid4(), "at": at, "dir": direction, "agent": agent_id},
    )


async def _floor(db):
    """Ann (sales, team North, tier B), Tia (TMK, tier A), Old (inactive), Sue (supervisor).

    Nothing stored: the built-in quotas apply (the test template stores "no quotas").
    """
    async with db() as s:
        await s.execute(text("DELETE FROM system_settings WHERE key = :k"), {"k": quota_store.QUOTAS})
        await s.commit()
    ann, tia, old = (
        await add_user(db, "ann"),
        await add_user(db, "tia", role="tmk"),
        await add_user(db, "old"),
    )
    await add_user(db, "sue", role="supervisor")
    now = datetime.now(UTC)
    day, began = day_bounds(OFFICE, now)
    async with db() as s:
        north = (await user_store.team_named(s, "North")).id
        await s.execute(
            text("UPDATE users SET team_id = :t, tier = 'B' WHERE id = :a"), {"t": north, "a": ann}
        )
        await s.execute(text("UPDATE users SET active = false WHERE id = :a"), {"a": old})
        await s.execute(
            text(
                "INSERT INTO agent_days (agent_id, day, new_leads) VALUES (:a, :d, 70), (:a, :y, 9), (:t, :d, 3)"
            ),
            {"a": ann, "t": tia, "d": day, "y": day - timedelta(days=1)},
        )
        for minutes in (1, 2, 3):
            await _call(s, ann, began + timedelta(minutes=minutes))
        await _call(s, ann, began + timedelta(minutes=4), "inbound")
        await _call(s, ann, began - timedelta(minutes=1))  # yesterday's
        await _call(s, tia, now)
        await _call(s, old, now)
        await s.commit()
    return {"ann": ann, "tia": tia, "old": old, "north": north, "day": day, "began": began}


async def test_storage_counts_an_agents_day_and_the_floors_standing(db):
    floor = await _floor(db)
    async with db() as s:
        assert await quota_store.agent_day(s, floor["ann"], floor["day"], floor["began"]) == AgentDay(70, 3)
        assert await quota_store.agent_day(s, floor["old"], floor["day"], floor["began"]) == AgentDay(0, 1)
        standing = await quota_store.team_standing(s, floor["day"], floor["began"])
        scopes = await quota_store.quota_scopes(s)
    assert [(a.username, a.team_name, a.tier, a.new_leads, a.calls) for a in standing] == [
        ("ann", "North", "B", 70, 3),
        ("tia", None, "A", 3, 1),
    ], "active agents only, by team: supervisors are not on the floor"
    assert scopes.teams == {floor["north"]: "North"} and scopes.tiers == ["A", "B"]
    assert set(scopes.agents) == {floor["ann"], floor["tia"], floor["old"]}

    async with db() as s:
        assert await quota_store.quota_book_json(s) is None
        await quota_store.save_quota_book(s, DEFAULT_QUOTAS_JSON, floor["ann"], "10.0.0.1")
        await s.commit()
        assert await quota_store.quota_book_json(s) == DEFAULT_QUOTAS_JSON
        audit = (await s.execute(text("SELECT actor_id, action, detail, ip FROM audit_log"))).one()
    assert audit == (
        floor["ann"],
        "quotas_changed",
        {"before": None, "after": DEFAULT_QUOTAS_JSON},
        "10.0.0.1",
    )


# --- the page and the API -----------------------------------------------------------------------


async def test_supervisors_read_and_set_quotas_through_the_api(hub_server, db):
    floor = await _floor(db)
    await add_user(db, "root", role="admin")
    async with await api_client(hub_server.base, "sue") as api:
        built_in = (await api.get("/api/quotas")).json()
        assert built_in == {"source": "built-in", "quotas": DEFAULT_QUOTAS_JSON}
        standing = (await api.get("/api/quotas/standing")).json()
        assert standing["day"] == floor["day"].isoformat() and standing["zone"] == "Asia/Shanghai"
        ann = standing["agents"][0]
        assert (ann["name"], ann["new_leads"], ann["daily_new_leads"], ann["daily_new_leads_from"]) == (
            "Ann",
            70,
            80,
            "default",
        )
        assert [w["kind"] for w in ann["warnings"] if w["kind"] == "daily_cap"] == ["daily_cap"]

        bad = await api.put(
            "/api/quotas",
            json={
                "default": {"daily_new_leads": 0},
                "agents": {"x": {"daily_calls": 5}},
                "working_day": {"start": "18:00", "end": "09:00"},
            },
        )
        assert bad.status_code == 400
        assert {p["field"] for p in bad.json()["problems"]} == {
            "default.daily_new_leads",
            "agents.x",
            "working_day.end",
        }
        unknown = await api.put(
            "/api/quotas",
            json={"agents": {"999999": {"daily_calls": 5}}, "teams": {"12345": {"daily_calls": 5}}},
        )
        assert unknown.status_code == 400
        assert {p["field"] for p in unknown.json()["problems"]} == {"agents.999999", "teams.12345"}
        not_json = await api.put("/api/quotas", content=json.dumps(DEFAULT_QUOTAS_JSON))
        assert not_json.status_code == 415, "writes take JSON only"
        assert (await api.put("/api/quotas", json=[1])).status_code == 400  # httpx sends a list as JSON
        assert (await api.get("/api/quotas")).json()["source"] == "built-in", "nothing was saved"

        wanted = {
            "default": {"daily_new_leads": 80, "daily_calls": 120},
            "tiers": {"A": {"daily_calls": 90}},
            "teams": {str(floor["north"]): {"daily_calls": 150}},
            "agents": {str(floor["ann"]): {"daily_new_leads": 70}},
            "zone": "Asia/Shanghai",
            "working_day": {"start": "09:00", "end": "18:00"},
        }
        saved = await api.put("/api/quotas", json=wanted)
        assert saved.status_code == 200 and saved.json() == {"source": "stored", "quotas": wanted}
        assert (await api.get("/api/quotas")).json() == {"source": "stored", "quotas": wanted}
        agents = {a["username"]: a for a in (await api.get("/api/quotas/standing")).json()["agents"]}
    ann, tia = agents["ann"], agents["tia"]
    assert (
        ann["daily_new_leads"],
        ann["daily_new_leads_from"],
        ann["daily_calls"],
        ann["daily_calls_from"],
    ) == (
        70,
        "agent",
        150,
        "team",
    )
    assert (tia["daily_new_leads_from"], tia["daily_calls"], tia["daily_calls_from"]) == (
        "default",
        90,
        "tier",
    )
    ann_cap = next(w for w in ann["warnings"] if w["kind"] == "daily_cap")
    assert (ann_cap["level"], ann_cap["remaining"], ann_cap["threshold"]) == (100, 0, 70), "70 given of 70"

    async with await api_client(hub_server.base, "ann") as agent:
        assert (await agent.get("/api/quotas")).status_code == 403
        assert (await agent.get("/api/quotas/standing")).status_code == 403
        assert (await agent.put("/api/quotas", json=DEFAULT_QUOTAS_JSON)).status_code == 403
    async with await api_client(hub_server.base, "root") as admin:
        assert (await admin.get("/api/quotas")).json()["source"] == "stored"
    async with db() as s:
        audit = (
            await s.execute(
                text(
                    "SELECT u.username, a.detail FROM audit_log a JOIN users u ON u.id = a.actor_id WHERE action = 'quotas_changed'"
                )
            )
        ).all()
    assert [(who, detail["after"]) for who, detail in audit] == [("sue", wanted)]


async def test_the_page_shows_the_floor_and_saves_the_form(hub_server, db):
    floor = await _floor(db)
    page = await signed_in(hub_server.base, "sue")
    try:
        shown = await page.get("/quotas")
        assert shown.status_code == 200
        assert f'data-agent="{floor["ann"]}"' in shown.text and f'data-agent="{floor["tia"]}"' in shown.text
        assert f'data-agent="{floor["old"]}"' not in shown.text
        assert 'data-testid="quotas-built-in"' in shown.text and 'name="tiers.B.daily_calls"' in shown.text
        assert f'name="teams.{floor["north"]}.daily_new_leads"' in shown.text
        assert '<details data-testid="agent-overrides">' in shown.text, "no agent has an override yet"
        csrf = csrf_in(shown.text)
        form = {
            "csrf": csrf,
            "default.daily_new_leads": "0",
            "default.daily_calls": "120",
            "tiers.B.daily_new_leads": "",
            "tiers.B.daily_calls": "lots",
            f"agents.{floor['ann']}.daily_new_leads": "60",
            "zone": "Asia/Shanghai",
            "working_day.start": "18:00",
            "working_day.end": "09:00",
        }
        refused = await page.post("/quotas", data=form)
        assert refused.status_code == 400
        for field in ("default.daily_new_leads", "tiers.B.daily_calls", "working_day.end"):
            assert f'data-error-for="{field}"' in refused.text, field
        assert "leave it empty for no cap" in refused.text
        assert 'value="lots"' in refused.text and 'value="18:00"' in refused.text, "the submitted values stay"
        assert '<details open data-testid="agent-overrides">' in refused.text and 'value="60"' in refused.text

        expired = await page.post("/quotas", data={**form, "csrf": "stale"})
        assert expired.status_code == 400 and "form expired" in expired.text

        good = {
            **form,
            "default.daily_new_leads": "",
            "tiers.B.daily_calls": "100",
            "working_day.start": "08:30",
            "working_day.end": "17:30",
        }
        saved = await page.post("/quotas", data=good)
        assert saved.status_code == 303 and saved.headers["location"] == "/quotas?saved=1"
        after = await page.get("/quotas?saved=1")
        assert (
            'data-testid="quotas-saved"' in after.text and 'data-testid="quotas-built-in"' not in after.text
        )
        ann_row = after.text.split(f'data-agent="{floor["ann"]}"')[1].split("</tr>")[0]
        assert "70 of 60" in ann_row and 'data-source="agent"' in ann_row, (
            "Ann's own cap, and where it comes from"
        )
        assert 'data-warning="daily_cap"' in ann_row
    finally:
        await page.aclose()
    agent = await signed_in(hub_server.base, "ann")
    try:
        assert (await agent.get("/quotas")).status_code == 403
    finally:
        await agent.aclose()
    async with db() as s:
        stored = await quota_store.quota_book_json(s)
        actions = (
            await s.execute(text("SELECT action FROM audit_log WHERE action = 'quotas_changed'"))
        ).all()
    assert stored == {
        "default": {"daily_new_leads": None, "daily_calls": 120},
        "tiers": {"B": {"daily_calls": 100}},
        "teams": {},
        "agents": {str(floor["ann"]): {"daily_new_leads": 60}},
        "zone": "Asia/Shanghai",
        "working_day": {"start": "08:30", "end": "17:30"},
    }
    assert len(actions) == 1, "only the valid form was saved"
