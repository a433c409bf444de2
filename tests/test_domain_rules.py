"""Pure rules: the protocol parser, the agent state machine, disposition effects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.agent_state import PAUSE_REASONS, AgentState, StateChangeError, next_state
from hub.dispositions import DispositionError, disposition_effect, parse_outcome
from hub.protocol import COMMAND_TYPES, EventStamper, ProtocolError, parse_command
from storage.models import LeadStatus, Outcome

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_parser_never_crashes_on_junk(raw):
    try:
        command = parse_command(raw)
    except ProtocolError as exc:
        assert exc.code in ("bad_json", "invalid", "unknown_type") and exc.message
    else:
        assert command.type in COMMAND_TYPES


def test_parser_keeps_fields_and_drops_htmx_headers():
    command = parse_command(
        '{"type":"lead.dispose","id":4,"lead_id":"12","outcome":"busy","HEADERS":{"x":1}}'
    )
    assert command.id == 4 and command.int_field("lead_id") == 12 and "HEADERS" not in command.fields


def test_times_need_a_zone_or_the_browser_zone():
    command = parse_command('{"type":"lead.dispose","callback_at":"2026-11-22T09:30","tz":"Asia/Shanghai"}')
    assert command.time_field("callback_at") == datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    with pytest.raises(ProtocolError, match="time zone"):
        parse_command('{"type":"lead.dispose","callback_at":"2026-11-22T09:30"}').time_field("callback_at")


def test_stamper_numbers_events_in_order():
    stamper = EventStamper(clock=lambda: 1.5)
    assert [stamper.stamp({"type": "x"})["seq"] for _ in range(3)] == [1, 2, 3]
    assert stamper.stamp({"type": "x"})["ts"] == 1500


@given(st.sampled_from(list(AgentState)), st.text(max_size=12), st.one_of(st.none(), st.text(max_size=12)))
def test_state_machine_only_reaches_ready_or_paused_with_a_known_reason(current, wanted, reason):
    try:
        state, why = next_state(current, wanted, reason)
    except StateChangeError:
        return
    assert state in (AgentState.READY, AgentState.PAUSED)
    assert (state is AgentState.READY and why == "") or why in PAUSE_REASONS


@pytest.mark.parametrize("outcome", ["converted", "not_interested", "invalid_number", "dnc"])
def test_final_outcomes_close_the_lead(outcome):
    assert disposition_effect(Outcome(outcome), NOW, None).status == LeadStatus.CLOSED


def test_retries_are_left_to_the_policy_and_callbacks_are_checked():
    for outcome in (Outcome.NO_ANSWER, Outcome.BUSY, Outcome.INTERESTED):
        effect = disposition_effect(outcome, NOW, None)
        assert effect.status == LeadStatus.RETRY and effect.next_attempt_at == NOW
    later = NOW + timedelta(days=1)
    effect = disposition_effect(Outcome.CALLBACK, NOW, later)
    assert effect.status == LeadStatus.CALLBACK and effect.next_attempt_at == later
    for bad in (None, NOW - timedelta(minutes=1), NOW + timedelta(days=400)):
        with pytest.raises(DispositionError):
            disposition_effect(Outcome.CALLBACK, NOW, bad)
    with pytest.raises(DispositionError, match="unknown outcome"):
        parse_outcome("maybe")
