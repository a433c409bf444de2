"""sipp on loopback: agent phones and carrier calls against a ``KamailioServer``, and their logs.

``SippPhone`` is an agent phone (sipp UAS: answers / busy / never answers / accepts a click-to-call
REFER) that registers to Kamailio under an extension. ``carrier_call`` is a customer calling a DID
through the carrier trunk (sipp UAC), with a scripted talk time or an abandon (CANCEL while ringing);
it returns a ``CarrierResult``. ``parse_message_log`` reads sipp's ``-trace_msg`` logs into
``SipMessage``s.

Every wait is bounded; every process is stopped by its own PID (SIGTERM, then SIGKILL); phones stop
before Kamailio (``stop_all``). The scenarios are the packaged ``sipp/*.xml``.

sipp quirks kept from the reference lab: no Call-ID prefixes (sipp maps messages to calls by
Call-ID; only a ``prefix///`` form is ignored), ACK/BYE need ``rrs="true"`` with
``[next_url]``/``[routes]``, CANCEL needs ``[branch-N]``, background runs need ``-nostdin``, and a
message arriving while a scenario is between two ``<send>``s aborts the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from telephony.kamailio.lab import (
    _DID,
    PACKAGE_DIR,
    KamailioServer,
    LabError,
    _free_media_port,
    _stop_process,
    _tail,
    _udp_port_bound,
    ensure_installed,
    find_binary,
    free_port,
)

LOG = logging.getLogger("lineup.kamailio")

SIPP_DIR = PACKAGE_DIR / "sipp"

PhoneMode = Literal["answer", "busy", "noanswer", "refer"]
_PHONE_SCENARIOS: dict[str, str] = {
    "answer": "agent_answer.xml",
    "busy": "agent_busy.xml",
    "noanswer": "agent_noanswer.xml",
    "refer": "agent_refer.xml",
}


# ---------------------------------------------------------------------------------------------
# sipp message logs


@dataclass(frozen=True, slots=True)
class SipMessage:
    """One message from a sipp ``-trace_msg`` log."""

    direction: Literal["in", "out"]
    first_line: str
    call_id: str | None
    cseq_method: str | None

    @property
    def status(self) -> int | None:
        """The status code of a response, None for a request."""
        if self.first_line.startswith("SIP/2.0 "):
            with contextlib.suppress(ValueError, IndexError):
                return int(self.first_line.split()[1])
        return None

    @property
    def method(self) -> str | None:
        """The method of a request, None for a response."""
        return None if self.status is not None else self.first_line.split(" ", 1)[0]


_LOG_SEPARATOR = re.compile(r"^-{20,} .*$", re.MULTILINE)


def parse_message_log(text: str) -> list[SipMessage]:
    """Messages from a sipp message log, in order."""
    messages: list[SipMessage] = []
    for chunk in _LOG_SEPARATOR.split(text):
        lines = chunk.strip("\r\n").splitlines()
        if len(lines) < 2:
            continue
        header = lines[0]
        if "received" in header:
            direction: Literal["in", "out"] = "in"
        elif "sent" in header:
            direction = "out"
        else:
            continue
        body = [line for line in lines[1:]]
        while body and not body[0].strip():
            body.pop(0)
        if not body:
            continue
        call_id = cseq = None
        for line in body[1:]:
            if not line.strip():
                break
            name, _, value = line.partition(":")
            key = name.strip().lower()
            if key in ("call-id", "i"):
                call_id = value.strip()
            elif key == "cseq":
                cseq = value.split()[-1] if value.split() else None
        messages.append(SipMessage(direction, body[0].strip(), call_id, cseq))
    return messages


_STAT = re.compile(r"^\s*(Successful|Failed) call\s*\|\s*\d+\s*\|\s*(\d+)", re.MULTILINE)


def _screen_stats(*paths: Path) -> tuple[int | None, int | None]:
    # The last statistics screen of the first file that has one: sipp writes -screen_file when
    # it ends by itself, but on SIGTERM only prints the final screen to stdout.
    for path in paths:
        found = {kind: int(n) for kind, n in _STAT.findall(_tail(path, 20000))}  # later ones win
        if found:
            return found.get("Successful"), found.get("Failed")
    return None, None


# ---------------------------------------------------------------------------------------------
# sipp phones and calls


def _sipp_common(host: str, port: int, work_dir: Path, stem: str) -> list[str]:
    # Every socket sipp opens is bound to host: SIP (-i/-p), RTP echo (-mi/-mp), control (-ci/-cp).
    return [
        "-i", host, "-p", str(port),
        "-mi", host, "-mp", str(_free_media_port(host)),
        "-ci", host, "-cp", str(free_port("udp", host)),
        "-nostdin",
        # One message read per scheduler cycle: the scenario's reply is sent before the next message
        # is looked at. With sipp's default (1000 per cycle) two messages that arrive together (ACK
        # and REFER from Kamailio's controller) make the second one "unexpected while sending".
        "-max_recv_loops", "1",
        "-trace_msg", "-message_file", str(work_dir / f"{stem}.msg"),
        "-trace_err", "-error_file", str(work_dir / f"{stem}.err"),
        "-trace_screen", "-screen_file", str(work_dir / f"{stem}.screen"),
    ]  # fmt: skip


async def _run_sipp(cmd: list[str], cwd: Path, out: Path, timeout_s: float, what: str) -> int:
    """Run a bounded sipp client to completion; returns its exit code."""
    with out.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *cmd, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        return await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        LOG.warning("sipp overran, killing what=%s pid=%d", what, proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise LabError(f"{what}: sipp did not finish within {timeout_s:g} s; output:\n{_tail(out)}") from None
    except BaseException:
        # Cancelled: don't leave the sipp process behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(proc.wait(), 5)
        raise


@dataclass
class SippPhone:
    """An agent phone: a sipp UAS on ``host:port`` (free port when 0), registered under ``extension``.

    Modes: ``answer`` (180, answers after ``ring_ms``, talks ``talk_ms`` then hangs up, or until the
    other side hangs up when ``talk_ms`` is None), ``busy`` (486), ``noanswer`` (rings until
    CANCEL), ``refer`` (click-to-call: answers Kamailio's ``dlg.bridge_dlg`` INVITE after
    ``ring_ms``, accepts the REFER, calls the customer through Kamailio, talks ``talk_ms``; needs
    ``proxy`` = Kamailio's ``host:port``). A phone takes any number of calls, one after another or
    at once. An ``answer`` phone cannot take a CANCEL while it rings (use ``noanswer`` for that).
    """

    work_dir: Path
    extension: str
    mode: PhoneMode = "answer"
    ring_ms: int = 300
    talk_ms: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    proxy: str = ""
    binary: str = "sipp"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def contact(self) -> str:
        return f"sip:{self.extension}@{self.host}:{self.port}"

    @property
    def _stem(self) -> str:
        return f"phone-{self.extension}-{self.port}"

    @property
    def message_log(self) -> Path:
        return self.work_dir / f"{self._stem}.msg"

    @property
    def screen_file(self) -> Path:
        return self.work_dir / f"{self._stem}.screen"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout_s: float = 5.0) -> SippPhone:
        """Start the sipp UAS; returns once it listens on its SIP port."""
        if self.mode not in _PHONE_SCENARIOS:
            raise ValueError(f"unknown phone mode {self.mode!r}; one of {sorted(_PHONE_SCENARIOS)}")
        if self.mode == "refer" and not self.proxy:
            raise ValueError("a refer phone needs proxy='host:port' of Kamailio")
        if self.running:
            raise LabError(f"phone {self.extension} is already running")
        executable = find_binary(self.binary)
        if executable is None:
            raise LabError(ensure_installed() or f"{self.binary} not found")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port("udp", self.host)
        cmd = [executable, "-sf", str(SIPP_DIR / _PHONE_SCENARIOS[self.mode]),
               *_sipp_common(self.host, self.port, self.work_dir, self._stem),
               "-key", "ext", self.extension, "-d", str(int(self.ring_ms))]  # fmt: skip
        if self.talk_ms is not None:
            cmd += ["-recv_timeout", str(int(self.talk_ms))]
        if self.mode == "refer":
            cmd += ["-key", "proxy", self.proxy]
        out = self.work_dir / f"{self._stem}.out"
        with out.open("wb") as log:
            self.process = subprocess.Popen(
                cmd, cwd=self.work_dir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise LabError(f"phone {self.extension}: sipp exited with {code}:\n{_tail(out)}")
            if _udp_port_bound(self.host, self.port):
                LOG.info(
                    "phone started ext=%s mode=%s port=%d pid=%d", self.extension, self.mode, self.port,
                    self.process.pid,
                )  # fmt: skip
                return self
            time.sleep(0.01)  # another process binding its port: nothing to await
        self.stop()
        raise LabError(f"phone {self.extension}: sipp did not listen on {self.port} within {timeout_s:g} s")

    async def register(self, kamailio: KamailioServer, *, expires: int = 300, timeout_s: float = 5.0) -> None:
        """REGISTER this phone's contact at Kamailio under its extension (``expires=0``: unregister)."""
        stem = f"register-{self.extension}-{uuid.uuid4().hex[:6]}"
        cmd = [
            find_binary(self.binary) or self.binary, "-sf", str(SIPP_DIR / "agent_register.xml"),
            *_sipp_common(self.host, free_port("udp", self.host), self.work_dir, stem),
            "-key", "ext", self.extension, "-key", "contact", self.contact, "-key", "expires", str(expires),
            "-m", "1", "-timeout", f"{math.ceil(timeout_s)}s", "-timeout_error", kamailio.address,
        ]  # fmt: skip
        out = self.work_dir / f"{stem}.out"
        code = await _run_sipp(cmd, self.work_dir, out, timeout_s + 2, f"register {self.extension}")
        if code != 0:
            raise LabError(
                f"REGISTER of {self.extension} at {kamailio.address} failed (sipp exit {code}):\n"
                f"{_tail(self.work_dir / f'{stem}.msg', 1500)}{_tail(out, 1500)}"
            )
        LOG.info("phone registered ext=%s contact=%s expires=%d", self.extension, self.contact, expires)

    async def unregister(self, kamailio: KamailioServer, *, timeout_s: float = 5.0) -> None:
        """Remove this phone's registration."""
        await self.register(kamailio, expires=0, timeout_s=timeout_s)

    def messages(self) -> list[SipMessage]:
        """Every SIP message this phone sent or received so far."""
        return parse_message_log(_tail(self.message_log, 10_000_000))

    def received(self) -> list[str]:
        """First lines of the messages received so far (``"INVITE sip:..."``, ``"SIP/2.0 200 OK"``)."""
        return [m.first_line for m in self.messages() if m.direction == "in"]

    def stats(self) -> tuple[int | None, int | None]:
        """(successful, failed) calls from sipp's final screen; (None, None) before ``stop()``."""
        return _screen_stats(self.screen_file, self.work_dir / f"{self._stem}.out")

    def terminate(self) -> None:
        """Ask sipp to stop (SIGTERM) without waiting; ``stop()`` waits."""
        if self.running:
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop sipp by its PID (SIGTERM, SIGKILL after ``timeout_s``)."""
        if self.process is not None:
            _stop_process(self.process, f"phone-{self.extension}", timeout_s)
            self.process = None


@dataclass(frozen=True, slots=True)
class CarrierResult:
    """How a carrier call went."""

    returncode: int  # sipp's exit code: 0 = the scenario ran to its end (also after a failure code)
    final_code: int | None  # final response to the INVITE: 200, 480, 486, 487, 503, ...
    codes: tuple[int, ...]  # every response code received for the INVITE, in order
    successful_calls: int | None  # from sipp's final screen
    failed_calls: int | None
    elapsed_s: float
    call_id: str | None
    agent_hung_up: bool  # the carrier received a BYE (the agent side ended the call)
    message_log: Path

    @property
    def answered(self) -> bool:
        return self.final_code is not None and 200 <= self.final_code < 300


def _carrier_command(
    kamailio: KamailioServer,
    work_dir: Path,
    stem: str,
    *,
    did: str,
    caller: str,
    talk_ms: int | None,
    cancel_after_ms: int | None,
    timeout_s: float,
    host: str,
    calls: int = 1,
    rate_per_s: float | None = None,
    at_once: int | None = None,
) -> list[str]:
    if not _DID.fullmatch(did) or not _DID.fullmatch(caller):
        raise ValueError("did and caller must be plain SIP user parts (digits, +, *, #, ...)")
    work_dir.mkdir(parents=True, exist_ok=True)
    if cancel_after_ms is not None:
        scenario, extra = "carrier_cancel.xml", ["-d", str(int(cancel_after_ms))]
    elif talk_ms is not None:
        scenario, extra = "carrier_uac.xml", ["-recv_timeout", str(int(talk_ms))]
    else:
        scenario, extra = "carrier_uac.xml", []
    return [
        find_binary("sipp") or "sipp", "-sf", str(SIPP_DIR / scenario),
        *_sipp_common(host, free_port("udp", host), work_dir, stem),
        "-key", "did", did, "-key", "caller", caller, *extra,
        "-m", str(calls), *(["-r", f"{rate_per_s:g}", "-rp", "1000"] if rate_per_s else []),
        *(["-l", str(at_once)] if at_once else []),
        "-timeout", f"{math.ceil(timeout_s)}s", "-timeout_error", kamailio.address,
    ]  # fmt: skip


def _carrier_result(work_dir: Path, stem: str, code: int, elapsed: float) -> CarrierResult:
    msg_path = work_dir / f"{stem}.msg"
    messages = parse_message_log(_tail(msg_path, 10_000_000))
    codes = tuple(
        m.status
        for m in messages
        if m.direction == "in" and m.status is not None and m.cseq_method == "INVITE"
    )
    successful, failed = _screen_stats(work_dir / f"{stem}.screen", work_dir / f"{stem}.out")
    return CarrierResult(
        returncode=code,
        final_code=next((c for c in reversed(codes) if c >= 200), None),
        codes=codes,
        successful_calls=successful,
        failed_calls=failed,
        elapsed_s=elapsed,
        call_id=next((m.call_id for m in messages if m.method == "INVITE"), None),
        agent_hung_up=any(m.direction == "in" and m.method == "BYE" for m in messages),
        message_log=msg_path,
    )


async def carrier_call(
    kamailio: KamailioServer,
    work_dir: Path,
    *,
    did: str = "800",
    caller: str = "+15550001",
    talk_ms: int | None = 1000,
    cancel_after_ms: int | None = None,
    timeout_s: float = 30.0,
    host: str | None = None,
) -> CarrierResult:
    """A customer calls ``did`` from ``caller`` through the carrier trunk; returns when it is over.

    Answered calls last ``talk_ms`` (then the customer hangs up) unless the agent hangs up first;
    ``talk_ms=None`` waits for the agent's BYE. ``cancel_after_ms`` instead hangs up (CANCEL) that
    long after ringing started: an abandoned call. A failure code (480, 503, ...) ends the call
    normally: read ``final_code``. Bounded by ``timeout_s`` seconds (``LabError`` beyond).
    """
    stem = f"carrier-{uuid.uuid4().hex[:8]}"
    cmd = _carrier_command(
        kamailio, work_dir, stem, did=did, caller=caller, talk_ms=talk_ms,
        cancel_after_ms=cancel_after_ms, timeout_s=timeout_s, host=host or kamailio.host,
    )  # fmt: skip
    t0 = time.monotonic()
    code = await _run_sipp(cmd, work_dir, work_dir / f"{stem}.out", timeout_s + 2, f"carrier call to {did}")
    result = _carrier_result(work_dir, stem, code, time.monotonic() - t0)
    LOG.info(
        "carrier call done did=%s caller=%s rc=%d final=%s ms=%.0f",
        did, caller, code, result.final_code, result.elapsed_s * 1000,
    )  # fmt: skip
    return result


@dataclass(frozen=True, slots=True)
class BurstResult:
    """A carrier's burst of calls: sipp's exit code and counts, and when each call's INVITE left."""

    returncode: int
    successful_calls: int | None
    failed_calls: int | None
    invites: dict[str, float]  # Call-ID → wall-clock time its first INVITE was sent
    elapsed_s: float


_SENT_AT = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*\n\w+ message sent", re.MULTILINE)
_INVITE_CALL_ID = re.compile(r"\A\s*INVITE [^\n]*\n(?:[^\n]+\n)*?Call-ID:\s*(\S+)", re.IGNORECASE)


async def carrier_burst(
    kamailio: KamailioServer,
    work_dir: Path,
    *,
    calls: int,
    rate_per_s: float,
    at_once: int,
    did: str = "800",
    caller: str = "+15550001",
    talk_ms: int = 300,
    timeout_s: float = 120.0,
) -> BurstResult:
    """Many customers call ``did`` from one sipp process: ``rate_per_s`` new calls a second, at most
    ``at_once`` at a time, ``calls`` in all (one process, so the load generator stays light)."""
    stem = f"burst-{uuid.uuid4().hex[:8]}"
    cmd = _carrier_command(
        kamailio, work_dir, stem, did=did, caller=caller, talk_ms=talk_ms, cancel_after_ms=None,
        timeout_s=timeout_s, host=kamailio.host, calls=calls, rate_per_s=rate_per_s, at_once=at_once,
    )  # fmt: skip
    t0 = time.monotonic()
    code = await _run_sipp(cmd, work_dir, work_dir / f"{stem}.out", timeout_s + 2, f"burst to {did}")
    elapsed = time.monotonic() - t0
    log_text = (work_dir / f"{stem}.msg").read_text(errors="replace")
    invites: dict[str, float] = {}
    marks = list(_SENT_AT.finditer(log_text))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        body = log_text[mark.end() : following.start() if following else len(log_text)]
        body = body.split("\n", 1)[1] if "\n" in body else ""
        found = _INVITE_CALL_ID.match(body)
        if found and found.group(1) not in invites:
            invites[found.group(1)] = datetime.strptime(mark.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
    successful, failed = _screen_stats(work_dir / f"{stem}.screen", work_dir / f"{stem}.out")
    return BurstResult(code, successful, failed, invites, elapsed)


def stop_all(
    phones: Iterable[SippPhone], kamailio: KamailioServer | None = None, timeout_s: float = 5.0
) -> None:
    """Stop phones (all at once: sipp takes a moment to quit), then Kamailio."""
    phones = list(phones)
    for phone in phones:
        phone.terminate()
    for phone in phones:
        phone.stop(timeout_s)
    if kamailio is not None:
        kamailio.stop(timeout_s)
