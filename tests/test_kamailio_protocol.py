"""The hub <-> Kamailio JSON contract, without processes (telephony.kamailio.protocol)."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telephony.kamailio.protocol import (
    KamailioProtocolError,
    KamailioRpcError,
    NetstringDecoder,
    bridge_request,
    dlg_list_request,
    encode_netstring,
    event_key,
    parse_dlg_list,
    parse_event,
    parse_route_query,
    parse_rpc_response,
    parse_ul_dump,
    reject_answer,
    route_answer,
    rpc_request,
    ul_dump_request,
)

# Bodies as Kamailio 5.6 sends them with telephony/kamailio/kamailio.cfg (captured on loopback).
ROUTE_QUERY = (
    b'{"call_id":"1-25535@127.0.0.1","from_user":"+15550001","from_uri":"sip:+15550001@127.0.0.1:15091",'
    b'"to_user":"800","did":"800","ruri":"sip:800@127.0.0.1:15070","source":"127.0.0.1:15091",'
    b'"attempt":1,"kam_ts":1795325126.765367}'
)
RE_QUERY = (
    b'{"call_id":"1-25535@127.0.0.1","from_user":"+15550001","from_uri":"sip:+15550001@127.0.0.1:15091",'
    b'"to_user":"800","did":"800","ruri":"sip:800@127.0.0.1:15070","source":"127.0.0.1:15091",'
    b'"attempt":2,"failed_agent":"1002","failed_code":486,"kam_ts":1795325126.77009}'
)
ENDED = (
    b'{"event":"ended","call_id":"1-25535@127.0.0.1","agent_id":"1001","caller":"+15550001","did":"800",'
    b'"start_ts":1795325127,"duration_s":1,"answered_at":1795325127.075892,'
    b'"ended_by":"sip:800@127.0.0.1:15070","ended_side":"callee","seq":6,"kam_ts":1795325128.0848069}'
)
REGISTER = (
    b'{"event":"register","aor":"sip:1001@127.0.0.1:15070","contact":"<sip:1001@127.0.0.1:15080>",'
    b'"expires":"300","seq":1,"kam_ts":1795325122.4800529}'
)
BRIDGE_ANSWERED = (
    b'{"event":"answered","call_id":"48cf4ab174deef69-28461@127.0.0.1","agent_id":"2001","caller":"c2c",'
    b'"did":"<null>","from_uri":"sip:c2c@127.0.0.1:15070","to_uri":"sip:2001@127.0.0.1:15070",'
    b'"answered_at":1795325306.008363,"seq":8,"kam_ts":1795325306.008471}'
)
# dlg.list during a click-to-call: the controller leg (ended), the customer leg (ended) and a
# confirmed-but-not-ACKed dialog left over from an earlier run.
DLG_LIST = """{"jsonrpc":"2.0","result":[
{"h_entry":2549,"h_id":3806,"ref":1,"call-id":"48cf4ab174deef69-28461@127.0.0.1","from_uri":"sip:c2c@127.0.0.1:15070",
 "to_uri":"sip:2001@127.0.0.1:15070","state":5,"start_ts":1795325306,"init_ts":1795325305,"end_ts":1795325306,
 "duration":0,"timeout":0,"lifetime":3600,"dflags":647,"sflags":0,"iflags":0,
 "caller":{"tag":"f34206b1354b747de87a3cdf6a191529-2cbc32a5","contact":"sip:c2c@127.0.0.1:15070","cseq":"11",
  "route_set":"","socket":"udp:127.0.0.1:15070"},
 "callee":{"tag":"30176SIPpTag011","contact":"sip:2001@127.0.0.1:15086;transport=UDP","cseq":"0","route_set":"",
  "socket":"udp:127.0.0.1:15070"},"profiles":[],"variables":[]},
{"h_entry":3177,"h_id":9277,"ref":1,"call-id":"c2c///48cf4ab174deef69-28461@127.0.0.1",
 "from_uri":"sip:2001@127.0.0.1:15070","to_uri":"sip:+15550003333@127.0.0.1:15070","state":5,
 "start_ts":1795325306,"init_ts":1795325306,"end_ts":1795325307,"duration":1,"timeout":0,"lifetime":3600,
 "dflags":647,"sflags":0,"iflags":0,
 "caller":{"tag":"30176SIPpTag021","contact":"sip:2001@127.0.0.1:15086;transport=UDP","cseq":"1","route_set":"",
  "socket":"udp:127.0.0.1:15070"},
 "callee":{"tag":"30178SIPpTag011","contact":"sip:cust@127.0.0.1:15090;transport=UDP","cseq":"0","route_set":"",
  "socket":"udp:127.0.0.1:15070"},"profiles":[],"variables":[]},
{"h_entry":3222,"h_id":9210,"ref":2,"call-id":"c2c///48cf4ab174deef68-28461@127.0.0.1",
 "from_uri":"sip:2001@127.0.0.1:15070","to_uri":"sip:+15550003333@127.0.0.1:15070","state":3,
 "start_ts":1795325285,"init_ts":1795325284,"end_ts":0,"duration":23,"timeout":1795328884,"lifetime":3600,
 "dflags":641,"sflags":0,"iflags":0,
 "caller":{"tag":"29499SIPpTag021","contact":"sip:2001@127.0.0.1:15086;transport=UDP","cseq":"1","route_set":"",
  "socket":"udp:127.0.0.1:15070"},
 "callee":{"tag":"29501SIPpTag011","contact":"sip:cust@127.0.0.1:15090;transport=UDP","cseq":"0","route_set":"",
  "socket":"udp:127.0.0.1:15070"},"profiles":[],
 "variables":[{"answered_at":"1795325285.039641"},{"caller":"2001"},{"agent_id":"2001"},{"did":"<null>"}]},
{"h_entry":1067,"h_id":3766,"ref":1,"call-id":"1-25694@127.0.0.1","from_uri":"sip:+15550001@127.0.0.1:15091",
 "to_uri":"sip:800@127.0.0.1:15070","state":2,"start_ts":0,"init_ts":1795325149,"end_ts":0,"duration":0,
 "timeout":0,"lifetime":3600,"dflags":640,"sflags":0,"iflags":0,
 "caller":{"tag":"25694SIPpTag001","contact":"sip:+15550001@127.0.0.1:15091","cseq":"1","route_set":"",
  "socket":"udp:127.0.0.1:15070"},
 "callee":{"tag":null,"contact":null,"cseq":null,"route_set":null,"socket":null},"profiles":[],"variables":[]}
],"id":1}"""
UL_DUMP = """{"jsonrpc":"2.0","result":{"Domains":[{"Domain":{"Domain":"location","Size":1024,"AoRs":[
{"Info":{"AoR":"1002","HashID":924766745,"Contacts":[{"Contact":{"Address":"sip:1002@127.0.0.1:15082","Expires":300,
 "Q":-1,"Call-ID":"1-25475@127.0.0.1","CSeq":1,"User-Agent":"lineup-sipp-agent-1002","Received":"[not set]",
 "Path":"[not set]","State":"CS_NEW","Flags":0,"CFlags":0,"Socket":"udp:127.0.0.1:15070","Methods":4294967295,
 "Ruid":"uloc-6b027cb3-627d-1","Instance":"[not set]","Reg-Id":0,"Server-Id":0,"Tcpconn-Id":-1,"Keepalive":0,
 "Last-Keepalive":1795325122,"KA-Roundtrip":0,"Last-Modified":1795325122}}]}},
{"Info":{"AoR":"1001","HashID":924766748,"Contacts":[{"Contact":{"Address":"sip:1001@127.0.0.1:15080","Expires":300,
 "Q":-1,"Call-ID":"1-25473@127.0.0.1","CSeq":1,"User-Agent":"lineup-sipp-agent-1001","Received":"[not set]",
 "Path":"[not set]","State":"CS_NEW","Flags":0,"CFlags":0,"Socket":"udp:127.0.0.1:15070","Methods":4294967295,
 "Ruid":"uloc-6b027cb3-627c-1","Instance":"[not set]","Reg-Id":0,"Server-Id":0,"Tcpconn-Id":-1,"Keepalive":0,
 "Last-Keepalive":1795325122,"KA-Roundtrip":0,"Last-Modified":1795325122}}]}}],
"Stats":{"Records":2,"Max-Slots":1}}}]},"id":1}"""


# --- routing query ---------------------------------------------------------------------------


def test_route_query_first_attempt() -> None:
    q = parse_route_query(ROUTE_QUERY)
    assert (q.call_id, q.caller, q.did, q.attempt) == ("1-25535@127.0.0.1", "+15550001", "800", 1)
    assert q.failed_agent is None and q.failed_code is None
    assert q.source == "127.0.0.1:15091" and q.kam_ts == pytest.approx(1795325126.765367)


def test_route_query_after_agent_failure() -> None:
    q = parse_route_query(RE_QUERY)
    assert (q.attempt, q.failed_agent, q.failed_code) == (2, "1002", 486)


def test_route_query_tolerates_strings_nulls_and_reference_bodies() -> None:
    body = json.loads(ROUTE_QUERY)
    del body["did"]  # the reference lab's body: the DID is the To user
    body.update(attempt="2", failed_agent="<null>", failed_code="", kam_ts="1795325126.5")
    q = parse_route_query(body)
    assert (q.did, q.attempt, q.failed_agent, q.failed_code, q.kam_ts) == ("800", 2, None, None, 1795325126.5)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"from_user":"+1555","did":"800","attempt":1}', "missing field 'call_id'"),
        (b'{"call_id":"c","did":"800","attempt":1}', "missing field 'from_user'"),
        (b'{"call_id":"c","from_user":"+1","attempt":1}', "missing field 'did'"),
        (b'{"call_id":"c","from_user":"+1","did":"800"}', "missing field 'attempt'"),
        (b'{"call_id":"c","from_user":"+1","did":"800","attempt":"two"}', "not a number"),
        (b'{"call_id":"c","from_user":"+1","did":"800","attempt":1.5}', "whole number"),
        (b'{"call_id":"c","from_user":"+1","did":"800","attempt":true}', "boolean"),
        (b'{"call_id":"c","from_user":"+1","did":"800","attempt":0}', ">= 1"),
        (b'{"call_id":["c"],"from_user":"+1","did":"800","attempt":1}', "must be a string"),
        (b'{"call_id":"c","from_user":"+1","did":"800","attempt":2,"failed_code":42}', "not a SIP code"),
        (b'{"call_id":"c","from_user":"+1","did":"800","attempt":NaN}', "finite"),
    ],
)
def test_malformed_route_queries_are_rejected(body: bytes, message: str) -> None:
    with pytest.raises(KamailioProtocolError, match=message):
        parse_route_query(body)


def test_protocol_error_is_a_value_error() -> None:
    assert issubclass(KamailioProtocolError, ValueError)


def test_route_and_reject_answers() -> None:
    assert route_answer("1001", "sip:1001@127.0.0.1:5070", 15) == {
        "action": "route",
        "agent_id": "1001",
        "target": "sip:1001@127.0.0.1:5070",
        "ring_timeout": 15,
    }
    assert reject_answer() == {"action": "reject", "code": 480, "reason": "No Agent Available"}
    assert reject_answer(486, "Busy Here")["code"] == 486


@pytest.mark.parametrize(
    "call",
    [
        lambda: route_answer("", "sip:1@h", 15),
        lambda: route_answer("1001", "1001@h", 15),
        lambda: route_answer("1001", "sip:1001@h\r\nX-Evil: 1", 15),
        lambda: route_answer("1001", "sip:1001@h", 0),
        lambda: route_answer("1001", "sip:1001@h", 2.5),
        lambda: route_answer("1001", "sip:1001@h", True),
        lambda: reject_answer(200, "OK"),
        lambda: reject_answer(480, "Gone\r\nX-Evil: 1"),
        lambda: reject_answer(480, ""),
    ],
)
def test_answers_refuse_what_kamailio_cannot_use(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


# --- events ----------------------------------------------------------------------------------


def test_ended_event() -> None:
    ev = parse_event(ENDED)
    assert (ev.event, ev.call_id, ev.agent_extension, ev.seq) == ("ended", "1-25535@127.0.0.1", "1001", 6)
    assert (ev.duration_s, ev.ended_side, ev.caller, ev.did) == (1.0, "callee", "+15550001", "800")
    assert ev.talk_s == pytest.approx(1795325128.0848069 - 1795325127.075892)
    assert not ev.is_bridge_leg
    assert ev.raw["ended_by"] == "sip:800@127.0.0.1:15070"


def test_null_markers_and_string_numbers_are_normalised() -> None:
    ev = parse_event(BRIDGE_ANSWERED)
    assert ev.did is None and ev.is_bridge_leg and ev.agent_extension == "2001"
    reg = parse_event(REGISTER)
    assert (reg.call_id, reg.aor, reg.expires) == (None, "sip:1001@127.0.0.1:15070", 300)
    ev = parse_event({"event": "failed", "call_id": "c", "agent_id": "", "code": "0", "caller": " <null> "})
    assert (ev.agent_extension, ev.code, ev.caller, ev.talk_s) == (None, 0, None, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not valid JSON"),
        (b'"ended"', "must be a JSON object"),
        (b'{"call_id":"c"}', "missing field 'event'"),
        (b'{"event":"exploded","call_id":"c"}', "unknown event"),
        (b'{"event":"answered"}', "missing field 'call_id'"),
        (b'{"event":"answered","call_id":"<null>"}', "missing field 'call_id'"),
        (b'{"event":"register","contact":"<sip:1@h>"}', "missing field 'aor'"),
        (b'{"event":"ringing","call_id":"c","code":"one-eighty"}', "not a number"),
        (b'{"event":"ended","call_id":"c","duration_s":{"s":1}}', "must be a number"),
    ],
)
def test_malformed_events_are_rejected(body: bytes, message: str) -> None:
    with pytest.raises(KamailioProtocolError, match=message):
        parse_event(body)


def test_event_keys_deduplicate_repeats_but_not_attempts() -> None:
    ended = parse_event(ENDED)
    assert event_key(ended) == ("1-25535@127.0.0.1", "ended")
    assert event_key(parse_event(ENDED)) == event_key(ended)  # the same event via HTTP and evapi
    first = parse_event({"event": "agent_failed", "call_id": "c", "agent_id": "1002", "attempt": 1})
    second = parse_event({"event": "agent_failed", "call_id": "c", "agent_id": "1003", "attempt": 2})
    assert event_key(first) != event_key(second)
    assert event_key(first) == ("c", "agent_failed#1")
    no_attempt = parse_event({"event": "ringing", "call_id": "c", "agent_id": "1001"})
    assert event_key(no_attempt) == ("c", "ringing:1001")
    assert event_key(parse_event(REGISTER)) == ("sip:1001@127.0.0.1:15070", "register#1")


# --- netstrings ------------------------------------------------------------------------------


def test_netstrings_whole_split_and_empty() -> None:
    dec = NetstringDecoder()
    assert dec.feed(b"5:hello,0:,3:a") == [b"hello", b""]
    assert dec.pending == 3
    assert dec.feed(b"b") == []
    assert dec.feed(b"c,\n2:") == [b"abc"]
    assert dec.feed(b"{},") == [b"{}"]
    assert dec.pending == 0


def test_netstring_decoder_reads_an_evapi_capture() -> None:
    frames = [ENDED, REGISTER, BRIDGE_ANSWERED]
    stream = b"".join(encode_netstring(f) for f in frames)
    assert [parse_event(f).event for f in NetstringDecoder().feed(stream)] == [
        "ended",
        "register",
        "answered",
    ]


@pytest.mark.parametrize(
    ("stream", "message"),
    [
        (b"12x:abc", "bad length prefix"),
        (b"abc:def,", "bad length prefix"),
        (b":abc,", "bad length prefix"),
        (b"-1:a,", "bad length prefix"),
        (b"01:a,", "bad length prefix"),
        (b"3:abcX", "not terminated"),
        (b"9999999:", "exceeds max_frame"),
        (b"12345678901234567890", "exceeds max_frame"),  # no colon where one must be by now
    ],
)
def test_garbled_or_oversized_netstrings_are_rejected(stream: bytes, message: str) -> None:
    dec = NetstringDecoder(max_frame=1000)
    with pytest.raises(KamailioProtocolError, match=message):
        dec.feed(stream)
    with pytest.raises(KamailioProtocolError, match="already broken"):
        dec.feed(b"1:a,")  # framing is lost: the caller must reconnect


def test_frames_before_garbage_are_delivered_then_the_stream_is_broken() -> None:
    dec = NetstringDecoder()
    assert dec.feed(b"2:ok,3:yes,zz") == [b"ok", b"yes"]
    assert dec.broken is not None and "bad length prefix" in dec.broken
    with pytest.raises(KamailioProtocolError, match="already broken"):
        dec.feed(b"1:a,")


def test_oversized_frame_is_rejected_before_its_payload_arrives() -> None:
    dec = NetstringDecoder(max_frame=64)
    assert dec.feed(b"6") == []
    with pytest.raises(KamailioProtocolError, match="exceeds"):
        dec.feed(b"5:")


@given(
    frames=st.lists(st.binary(max_size=300), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=20),
)
def test_any_split_of_a_stream_decodes_to_the_same_frames(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode_netstring(f) for f in frames)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    dec = NetstringDecoder(max_frame=300)
    decoded: list[bytes] = []
    for start, end in itertools.pairwise(points):
        decoded += dec.feed(stream[start:end])
    assert decoded == frames
    assert dec.pending == 0


# --- JSON-RPC --------------------------------------------------------------------------------


def test_rpc_requests() -> None:
    assert rpc_request("core.version", None, 7) == {"jsonrpc": "2.0", "method": "core.version", "id": 7}
    assert dlg_list_request(1) == {"jsonrpc": "2.0", "method": "dlg.list", "id": 1}
    assert ul_dump_request(2)["method"] == "ul.dump"
    assert bridge_request("sip:2001@h:5070", "sip:+1555@h:5070", "sip:h:5070", 3) == {
        "jsonrpc": "2.0",
        "method": "dlg.bridge_dlg",
        "params": ["sip:2001@h:5070", "sip:+1555@h:5070", "sip:h:5070"],
        "id": 3,
    }
    with pytest.raises(ValueError):
        bridge_request("2001", "sip:+1555@h", "sip:h", 4)


def test_rpc_responses() -> None:
    assert parse_rpc_response(b'{"jsonrpc":"2.0","result":{},"id":9}', 9) == {}
    with pytest.raises(KamailioRpcError) as err:
        parse_rpc_response(b'{"jsonrpc":"2.0","error":{"code":500,"message":"Method Not Found"},"id":7}', 7)
    assert (err.value.code, err.value.message) == (500, "Method Not Found")
    with pytest.raises(KamailioProtocolError, match="empty body"):
        parse_rpc_response(b"", 1)  # Kamailio's answer to an unparsable request
    with pytest.raises(KamailioProtocolError, match="does not match"):
        parse_rpc_response(b'{"jsonrpc":"2.0","result":[],"id":2}', 1)
    with pytest.raises(KamailioProtocolError, match="neither"):
        parse_rpc_response(b'{"jsonrpc":"2.0","id":1}', 1)


def test_dlg_list_parsing() -> None:
    live = parse_dlg_list(parse_rpc_response(DLG_LIST, 1))
    assert [(d.call_id, d.state_name) for d in live] == [
        ("c2c///48cf4ab174deef68-28461@127.0.0.1", "confirmed_na"),
        ("1-25694@127.0.0.1", "early"),
    ]
    talking, ringing = live
    assert (talking.caller, talking.callee) == (
        "sip:2001@127.0.0.1:15070",
        "sip:+15550003333@127.0.0.1:15070",
    )
    assert talking.agent_extension == "2001" and "did" not in talking.variables  # "<null>" dropped
    assert (talking.h_entry, talking.h_id, talking.start_ts) == (3222, 9210, 1795325285)
    assert talking.answered and not ringing.answered
    assert ringing.start_ts is None and ringing.callee_contact is None
    assert ringing.caller_contact == "sip:+15550001@127.0.0.1:15091"
    assert len(parse_dlg_list(parse_rpc_response(DLG_LIST, 1), include_deleted=True)) == 4
    assert parse_dlg_list([]) == [] and parse_dlg_list({}) == []
    with pytest.raises(KamailioProtocolError):
        parse_dlg_list("nope")
    with pytest.raises(KamailioProtocolError, match="call-id"):
        parse_dlg_list([{"state": 4, "from_uri": "sip:a@h", "to_uri": "sip:b@h"}])


def test_ul_dump_parsing_full_and_brief() -> None:
    aors = parse_ul_dump(parse_rpc_response(UL_DUMP, 1))
    assert [a.aor for a in aors] == ["1002", "1001"]
    contact = aors[1].contacts[0]
    assert (contact.address, contact.expires, contact.user_agent) == (
        "sip:1001@127.0.0.1:15080",
        300,
        "lineup-sipp-agent-1001",
    )
    brief = {"Domains": [{"Domain": {"Domain": "location", "AoRs": [{"AoR": "2001"}]}}]}
    assert [(a.aor, a.contacts) for a in parse_ul_dump(brief)] == [("2001", ())]
    empty = {"Domains": [{"Domain": {"Domain": "location", "AoRs": []}}]}
    assert parse_ul_dump(empty) == []
    with pytest.raises(KamailioProtocolError, match="Domains"):
        parse_ul_dump({})
