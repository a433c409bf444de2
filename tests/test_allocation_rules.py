"""Allocation rules (pure): ratio parsing, largest-remainder shares, shuffling and dealing."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.allocation import (
    AgentWeight,
    AllocationError,
    Mode,
    deal,
    make_plan,
    parse_ratio,
    parse_request,
    shares,
    weights_for,
)

agent_weights = st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=12).map(
    lambda ws: [AgentWeight(agent_id=100 + i, weight=w) for i, w in enumerate(ws)]
)
weighted_agents = agent_weights.filter(lambda agents: any(a.weight for a in agents))
lead_counts = st.integers(min_value=0, max_value=5_000)


@given(lead_counts, weighted_agents)
def test_ratio_counts_follow_the_weights_within_one_lead_and_use_every_lead(n, agents):
    counts = shares(n, agents)
    total_weight = sum(a.weight for a in agents)
    assert list(counts) == [a.agent_id for a in agents]
    assert sum(counts.values()) == n
    for agent in agents:
        exact = Fraction(n * agent.weight, total_weight)
        assert abs(counts[agent.agent_id] - exact) < 1
        if agent.weight == 0:
            assert counts[agent.agent_id] == 0


@given(lead_counts, st.integers(min_value=1, max_value=30))
def test_even_split_differs_by_at_most_one(n, agent_count):
    request = parse_request({"mode": "even"})
    agents = weights_for([(i, "A" if i % 2 else "B") for i in range(agent_count)], request)
    counts = shares(n, agents)
    assert sum(counts.values()) == n
    assert max(counts.values()) - min(counts.values()) <= 1


@given(lead_counts, weighted_agents, st.integers(min_value=1, max_value=400))
def test_a_cap_is_never_passed_and_the_rest_stays_in_the_pool(n, agents, cap):
    counts = shares(n, agents, per_agent_cap=cap)
    weighted = [a for a in agents if a.weight]
    assert all(c <= cap for c in counts.values())
    assert sum(counts.values()) == min(n, cap * len(weighted))
    # Below the cap the weights still rule: a heavier uncapped agent never gets fewer leads.
    for a in weighted:
        for b in weighted:
            if a.weight > b.weight and counts[b.agent_id] < cap:
                assert counts[a.agent_id] >= counts[b.agent_id]


@given(lead_counts, st.lists(st.integers(min_value=0, max_value=5), min_size=0, max_size=5))
def test_no_weighted_agent_means_everything_is_left_over(n, zeros):
    agents = [AgentWeight(i, 0) for i in range(len(zeros))]
    assert sum(shares(n, agents).values()) == 0


@given(
    st.lists(st.integers(min_value=1, max_value=10**9), unique=True, max_size=300),
    weighted_agents,
    st.integers(min_value=0, max_value=2**32),
)
def test_deal_gives_every_lead_at_most_once_and_matches_the_counts(lead_ids, agents, seed):
    counts = shares(len(lead_ids), agents)
    dealt = deal(lead_ids, counts, random.Random(seed))
    given_out = [lead for leads in dealt.values() for lead in leads]
    assert {agent: len(leads) for agent, leads in dealt.items()} == counts
    assert len(given_out) == len(set(given_out)) == len(lead_ids)
    assert sorted(given_out) == sorted(lead_ids)  # with weights, a permutation of the input


@given(
    st.lists(st.integers(min_value=1, max_value=10**6), unique=True, min_size=1, max_size=200),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=0, max_value=2**32),
)
def test_a_capped_deal_is_a_subset_and_the_same_seed_deals_the_same(lead_ids, cap, seed):
    agents = [AgentWeight(1, 1), AgentWeight(2, 2), AgentWeight(3, 0)]
    counts = shares(len(lead_ids), agents, per_agent_cap=cap)
    dealt = deal(lead_ids, counts, random.Random(seed))
    given_out = [lead for leads in dealt.values() for lead in leads]
    assert len(given_out) == len(set(given_out)) == sum(counts.values())
    assert set(given_out) <= set(lead_ids)
    assert dealt == deal(lead_ids, counts, random.Random(seed))


def test_shuffling_mixes_the_file_instead_of_cutting_it_in_blocks():
    # 1,000 leads in file order, two agents: each gets both halves of the file, not one half each.
    dealt = deal(list(range(1000)), {1: 500, 2: 500}, random.Random(7))
    for leads in dealt.values():
        first_half = sum(1 for lead in leads if lead < 500)
        assert 200 < first_half < 300


@given(
    st.lists(st.integers(min_value=1, max_value=10**6), unique=True, min_size=1, max_size=100),
    st.integers(min_value=0, max_value=2**32),
)
def test_a_plan_does_not_depend_on_the_order_the_leads_were_read_in(lead_ids, seed):
    agents = [AgentWeight(1, 1), AgentWeight(2, 2)]
    forward = make_plan(lead_ids, agents, seed)
    backward = make_plan(list(reversed(lead_ids)), agents, seed)
    assert forward.assignments == backward.assignments
    assert forward.fingerprint == backward.fingerprint
    assert forward.leftover == 0 and forward.allocated == len(lead_ids)


def test_tier_a_to_b_one_to_two():
    request = parse_request({"mode": "ratio", "ratio": "A:1, B:2"})
    agents = weights_for([(1, "A"), (2, "B"), (3, "b"), (4, "C")], request)
    assert [a.weight for a in agents] == [1, 2, 2, 0]
    assert shares(90, agents) == {1: 18, 2: 36, 3: 36, 4: 0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A:1,B:2", {"A": 1, "B": 2}),
        (" a : 1 ; b=2 ", {"A": 1, "B": 2}),
        ("A：1，B：3", {"A": 1, "B": 3}),
        ("A:0, B:1", {"A": 0, "B": 1}),
        ("gold:5", {"GOLD": 5}),
    ],
)
def test_parse_ratio_accepts_what_people_type(text, expected):
    assert parse_ratio(text) == expected


@pytest.mark.parametrize(
    ("text", "code", "words"),
    [
        ("", "ratio_empty", "Enter a ratio"),
        ("A:x", "ratio_format", "“A:x” is not TIER:WEIGHT"),
        ("A1 B2", "ratio_format", "is not TIER:WEIGHT"),
        ("A:1.5", "ratio_format", "is not TIER:WEIGHT"),
        ("A:0,B:0", "ratio_all_zero", "above 0"),
        ("A:-1,B:2", "ratio_negative", "tier A cannot be negative"),
        ("A:1,a:2", "ratio_duplicate", "Tier A appears twice"),
        ("A:100000", "ratio_too_big", "too large"),
        ("toolongtier:1", "ratio_format", "is not TIER:WEIGHT"),
    ],
)
def test_parse_ratio_says_what_is_wrong(text, code, words):
    with pytest.raises(AllocationError) as refused:
        parse_ratio(text)
    assert refused.value.code == code
    assert words in refused.value.message
    assert isinstance(refused.value, ValueError)


@given(st.text(max_size=40))
def test_parse_ratio_never_fails_with_anything_but_a_clear_error(text):
    try:
        ratio = parse_ratio(text)
    except AllocationError as exc:
        assert exc.message
    else:
        assert ratio and any(ratio.values()) and all(0 <= w for w in ratio.values())


def test_requests_from_forms_and_json():
    form = parse_request(
        {"mode": "ratio", "ratio": "A:1,B:2", "team_id": "3", "batch_id": "", "per_agent_cap": ""}
    )
    assert (form.mode, form.ratio, form.team_id, form.batch_id, form.per_agent_cap) == (
        Mode.RATIO,
        {"A": 1, "B": 2},
        3,
        None,
        None,
    )
    body = parse_request({"mode": "ratio", "ratio": {"A": 1, "B": 2}, "batch_id": 7, "per_agent_cap": 50})
    assert (body.ratio, body.batch_id, body.per_agent_cap) == ({"A": 1, "B": 2}, 7, 50)
    assert parse_request({"mode": "even", "ratio": "junk"}).ratio == {}  # ignored for an even split
    for fields, code in (
        ({"mode": "fair"}, "bad_mode"),
        ({"mode": "even", "team_id": "x"}, "bad_team"),
        ({"mode": "even", "batch_id": True}, "bad_batch"),
        ({"mode": "even", "per_agent_cap": "0"}, "bad_cap"),
        ({"mode": "ratio"}, "ratio_empty"),
    ):
        with pytest.raises(AllocationError) as refused:
            parse_request(fields)
        assert refused.value.code == code


def test_a_plan_refuses_nothing_to_do():
    for leads, agents, code in (
        ([], [AgentWeight(1, 1)], "no_leads"),
        ([1, 2], [], "no_agents"),
        ([1, 2], [AgentWeight(1, 0)], "no_weighted_agents"),
    ):
        with pytest.raises(AllocationError) as refused:
            make_plan(leads, agents, seed=1)
        assert refused.value.code == code
