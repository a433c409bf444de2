"""Real Kamailio and sipp processes on loopback, for tests and a "real phone system" run mode.

``KamailioServer`` renders ``kamailio.cfg`` with free ports and the hub URL into a work directory and
runs ``kamailio -DD -E`` until it answers SIP OPTIONS. ``SippPhone`` is an agent phone (sipp UAS:
answers / busy / never answers / accepts a click-to-call REFER) that registers to Kamailio under an
extension. ``carrier_call`` is a customer calling a DID through the carrier trunk (sipp UAC), with a
scripted talk time or an abandon (CANCEL while ringing).

Every wait is bounded; every process is stopped by its own PID (SIGTERM, then SIGKILL); phones stop
before Kamailio (``stop_all``). Installation of the binaries is left to ``scripts/test``;
``ensure_installed()`` says what is missing.

sipp quirks kept from the reference lab: no Call-ID prefixes (sipp maps messages to calls by
Call-ID; only a ``prefix///`` form is ignored), ACK/BYE need ``rrs="true"`` with
``[next_url]``/``[routes]``, CANCEL needs ``[branch-N]``, background runs need ``-nostdin``, and a
message arriving while a scenario is between two ``<send>``s aborts the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

LOG = logging.getLogger("lineup.kamailio")

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_TEMPLATE = PACKAGE_DIR / "kamailio.cfg"
SIPP_DIR = PACKAGE_DIR / "sipp"

DEBIAN_PACKAGES = (
    "kamailio",
    "kamailio-extra-modules",
    "kamailio-json-modules",
    "kamailio-utils-modules",
    "sip-tester",
)
# Modules the cfg loads that are not in Debian's base "kamailio" package.
_EXTRA_MODULES = {
    "http_client.so": "kamailio-utils-modules",
    "jansson.so": "kamailio-extra-modules",
    "evapi.so": "kamailio-extra-modules",
}
_MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/kamailio/modules",
    "/usr/lib/aarch64-linux-gnu/kamailio/modules",
    "/usr/lib/kamailio/modules",
    "/usr/lib64/kamailio/modules",
    "/usr/local/lib64/kamailio/modules",
    "/usr/local/lib/kamailio/modules",
)

_PLACEHOLDER = re.compile(r"@[A-Z][A-Z_]*@")
_DID = re.compile(r"[0-9A-Za-z+*#._-]{1,64}")
_UNIX_SOCKET_MAX = 100  # sun_path is 108 bytes; keep a margin

PhoneMode = Literal["answer", "busy", "noanswer", "refer"]
_PHONE_SCENARIOS: dict[str, str] = {
    "answer": "agent_answer.xml",
    "busy": "agent_busy.xml",
    "noanswer": "agent_noanswer.xml",
    "refer": "agent_refer.xml",
}


class LabError(RuntimeError):
    """A lab process could not be started or did not do what it was asked."""


# ---------------------------------------------------------------------------------------------
# installation, ports, probes


def find_binary(name: str) -> str | None:
    """Path of an executable: on PATH, or in the sbin directories (kamailio is /usr/sbin/kamailio,
    which a normal user's PATH may lack)."""
    found = shutil.which(name)
    if found is None and os.sep not in name:
        found = shutil.which(name, path=os.pathsep.join(("/usr/local/sbin", "/usr/sbin", "/sbin")))
    return found


def ensure_installed() -> str | None:
    """None when kamailio, sipp and the needed Kamailio modules are installed, else what is missing.

    The message names the Debian packages to install (``scripts/test`` installs them).
    """
    missing: list[str] = []
    if find_binary("kamailio") is None:
        missing.append("the `kamailio` binary (Debian package kamailio)")
    else:
        module_dir = next((Path(d) for d in _MODULE_DIRS if Path(d).is_dir()), None)
        if module_dir is not None:
            for module, package in _EXTRA_MODULES.items():
                if not (module_dir / module).exists():
                    missing.append(f"Kamailio module {module} (Debian package {package})")
    if find_binary("sipp") is None:
        missing.append("the `sipp` binary (Debian package sip-tester)")
    if not missing:
        return None
    return (
        "missing for the real SIP lab: "
        + "; ".join(missing)
        + ". Install with: apt-get install "
        + " ".join(DEBIAN_PACKAGES)
        + " (scripts/test does this)"
    )


def free_port(kind: Literal["udp", "tcp"] = "tcp", host: str = "127.0.0.1") -> int:
    """A port that is free on ``host`` right now (the OS's choice)."""
    sock_type = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, sock_type) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _free_media_port(host: str) -> int:
    # sipp binds its RTP echo port and port + 2 (video) even when no media flows.
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            if port + 2 > 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
                try:
                    second.bind((host, port + 2))
                except OSError:
                    continue
                return port
    raise LabError(f"no free UDP port pair for sipp media on {host}")


def _udp_port_bound(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def _tcp_accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


def sip_ping(port: int, host: str = "127.0.0.1", timeout_s: float = 10.0) -> str:
    """Send SIP OPTIONS to ``host:port`` every 50 ms until a reply; returns its status line.

    Raises ``TimeoutError`` when nothing answers within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        s.settimeout(0.05)
        local_port = s.getsockname()[1]
        while True:
            cid = uuid.uuid4().hex
            msg = (
                f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{local_port};branch=z9hG4bK{cid[:10]}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:probe@{host}>;tag={cid[:6]}\r\nTo: <sip:{host}:{port}>\r\n"
                f"Call-ID: {cid}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            with contextlib.suppress(OSError):  # ICMP port unreachable surfaces as ECONNREFUSED
                s.sendto(msg.encode(), (host, port))
            try:
                data = s.recv(4096)
            except TimeoutError:
                data = b""
            except OSError:
                data = b""
                time.sleep(0.05)  # refused at once: nothing listens yet; don't spin
            if data.startswith(b"SIP/2.0"):
                return data.split(b"\r\n", 1)[0].decode(errors="replace")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no SIP answer from {host}:{port} within {timeout_s:g} s")


# ---------------------------------------------------------------------------------------------
# configuration


def did_regex(dids: Iterable[str]) -> str:
    """The cfg's POSIX regex matching exactly the given DIDs (R-URI users)."""
    parts: list[str] = []
    for did in dids:
        if not _DID.fullmatch(did):
            raise ValueError(f"DID {did!r} must be 1-64 of 0-9 A-Z a-z + * # . _ -")
        # Bracket the regex metacharacters: a backslash would need escaping again inside the cfg string.
        parts.append(re.sub(r"([+*.])", r"[\1]", did))
    if not parts:
        raise ValueError("at least one DID is needed")
    return "^(" + "|".join(parts) + ")$"


def _cfg_string(value: str, name: str) -> str:
    if any(c in value for c in "\"'\\\r\n\0 "):
        raise ValueError(f"{name} must not contain quotes, backslashes or whitespace: {value!r}")
    return value


def render_config(
    *,
    host: str,
    sip_port: int,
    rpc_port: int,
    evapi_port: int,
    hub_url: str,
    rundir: Path | str,
    dids: Sequence[str] = ("800",),
    carrier_gateway: str | None = None,
    hub_timeout_s: int = 2,
    template: str | None = None,
) -> str:
    """The Kamailio cfg text: the packaged template with every ``@PLACEHOLDER@`` replaced.

    ``hub_url`` is the hub's base URL (Kamailio appends ``/gateway/kamailio/route`` and ``/event``).
    ``carrier_gateway`` is the SIP URI calls to unregistered numbers go to (None: they get 503).
    """
    ipaddress.IPv4Address(host)  # raises ValueError for anything but an IPv4 address
    for name, port in (("sip_port", sip_port), ("rpc_port", rpc_port), ("evapi_port", evapi_port)):
        if not 0 < port < 65536:
            raise ValueError(f"{name} must be a port number, got {port}")
    if not hub_url.startswith(("http://", "https://")):
        raise ValueError(f"hub_url must be an http(s) URL, got {hub_url!r}")
    if carrier_gateway is not None and not carrier_gateway.startswith("sip:"):
        raise ValueError(f"carrier_gateway must be a sip: URI, got {carrier_gateway!r}")
    if not 1 <= hub_timeout_s <= 30:
        raise ValueError("hub_timeout_s must be whole seconds in 1..30")
    values = {
        "HOST": host,
        "SIP_PORT": str(sip_port),
        "RPC_PORT": str(rpc_port),
        "EVAPI_PORT": str(evapi_port),
        "HUB_URL": _cfg_string(hub_url.rstrip("/"), "hub_url"),
        "HUB_TIMEOUT_S": str(int(hub_timeout_s)),
        "RUNDIR": _cfg_string(str(rundir), "rundir"),
        "DID_REGEX": did_regex(dids),
        "CARRIER_GW": _cfg_string(carrier_gateway or "", "carrier_gateway"),
    }
    text = template if template is not None else CONFIG_TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    leftover = sorted(set(_PLACEHOLDER.findall(text)))
    if leftover:
        raise ValueError(f"cfg template has placeholders without a value: {', '.join(leftover)}")
    return text


# ---------------------------------------------------------------------------------------------
# process helpers


def _stop_process(proc: subprocess.Popen[bytes] | None, name: str, timeout_s: float) -> None:
    """SIGTERM our child ``proc``, SIGKILL its process group after ``timeout_s``; reap it."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            LOG.warning("process did not stop on SIGTERM, killing name=%s pid=%d", name, proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is ours alone
            proc.wait(5)
    # Children left behind (Kamailio's workers if the main process died first) share its group.
    deadline = time.monotonic() + 1.0
    while True:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        if time.monotonic() >= deadline:
            LOG.warning("killing leftover process group name=%s pgid=%d", name, proc.pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)  # waiting for other processes to exit: nothing to await


def _tail(path: Path | None, chars: int = 3000) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-chars:]


# ---------------------------------------------------------------------------------------------
# Kamailio


@dataclass
class KamailioServer:
    """One Kamailio process with the project's cfg, on free loopback ports (unless given).

    ``sip_port`` (UDP), ``rpc_port`` (TCP, JSON-RPC at ``rpc_url``) and ``evapi_port`` (TCP) are
    chosen at ``start()`` when 0. Kamailio asks ``hub_url`` + ``/gateway/kamailio/route`` about
    INVITEs to ``dids`` and posts events to ``/gateway/kamailio/event``.
    """

    work_dir: Path
    hub_url: str
    dids: Sequence[str] = ("800",)
    carrier_gateway: str | None = None
    host: str = "127.0.0.1"
    hub_timeout_s: int = 2
    sip_port: int = 0
    rpc_port: int = 0
    evapi_port: int = 0
    binary: str = "kamailio"
    shm_mb: int = 64
    pkg_mb: int = 8
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    started_in_s: float | None = field(default=None, init=False)
    _own_rundir: Path | None = field(default=None, init=False, repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.rpc_port}/RPC"

    @property
    def address(self) -> str:
        """``host:sip_port``: where phones and carriers send SIP."""
        return f"{self.host}:{self.sip_port}"

    @property
    def sip_uri(self) -> str:
        """``sip:host:port``: the proxy URI (e.g. for ``KamailioRpc.bridge``)."""
        return f"sip:{self.host}:{self.sip_port}"

    def agent_uri(self, extension: str) -> str:
        """``sip:<extension>@host:port``: an agent's phone through Kamailio (route target, bridge)."""
        return f"sip:{extension}@{self.host}:{self.sip_port}"

    @property
    def cfg_path(self) -> Path:
        return self.work_dir / "kamailio.cfg"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "kamailio.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of Kamailio's log (stderr)."""
        return _tail(self.log_path, chars)

    def __enter__(self) -> KamailioServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _rundir(self) -> Path:
        rundir = self.work_dir / "run"
        if len(str(rundir / "ctl")) > _UNIX_SOCKET_MAX:
            # The ctl unix socket lives in rundir and its path has a hard length limit.
            self._own_rundir = Path(tempfile.mkdtemp(prefix="lineup-kam-"))
            rundir = self._own_rundir
        rundir.mkdir(parents=True, exist_ok=True)
        return rundir

    def start(self, timeout_s: float = 10.0) -> KamailioServer:
        """Render the cfg, start Kamailio, return once it answers SIP OPTIONS and its TCP ports accept.

        Ports chosen here are re-chosen (up to 3 tries) if another process took one meanwhile.
        """
        if self.running:
            raise LabError("Kamailio is already running")
        executable = find_binary(self.binary)
        if executable is None:
            raise LabError(ensure_installed() or f"{self.binary} not found")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        rundir = self._rundir()
        auto = {"sip": self.sip_port == 0, "rpc": self.rpc_port == 0, "evapi": self.evapi_port == 0}
        deadline = time.monotonic() + timeout_s
        for attempt in range(1, 4):
            if auto["sip"]:
                self.sip_port = free_port("udp", self.host)
            if auto["rpc"]:
                self.rpc_port = free_port("tcp", self.host)
            if auto["evapi"]:
                self.evapi_port = free_port("tcp", self.host)
            self.cfg_path.write_text(
                render_config(
                    host=self.host,
                    sip_port=self.sip_port,
                    rpc_port=self.rpc_port,
                    evapi_port=self.evapi_port,
                    hub_url=self.hub_url,
                    rundir=rundir,
                    dids=self.dids,
                    carrier_gateway=self.carrier_gateway,
                    hub_timeout_s=self.hub_timeout_s,
                )
            )
            t0 = time.monotonic()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        executable,
                        "-f",
                        str(self.cfg_path),
                        "-DD",
                        "-E",
                        "-m",
                        str(self.shm_mb),
                        "-M",
                        str(self.pkg_mb),
                    ],
                    cwd=self.work_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: stop() can reap its workers
                )
            if self._wait_ready(deadline):
                self.started_in_s = time.monotonic() - t0
                LOG.info(
                    "kamailio started pid=%d sip=%s rpc=%s evapi=%d ms=%.0f",
                    self.process.pid, self.address, self.rpc_url, self.evapi_port, self.started_in_s * 1000,
                )  # fmt: skip
                return self
            tail = self.log_tail()
            _stop_process(self.process, "kamailio", 5.0)
            self.process = None
            if any(auto.values()) and "bind" in tail.lower() and attempt < 3 and time.monotonic() < deadline:
                LOG.warning("kamailio port taken, retrying attempt=%d", attempt)
                continue
            self.stop()
            raise LabError(f"Kamailio did not start within {timeout_s:g} s; log tail:\n{tail}")
        raise LabError("Kamailio did not start")  # pragma: no cover - the loop always returns or raises

    def _wait_ready(self, deadline: float) -> bool:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                sip_ping(self.sip_port, self.host, timeout_s=min(0.2, max(0.05, deadline - time.monotonic())))
            except TimeoutError:
                continue
            break
        else:
            return False
        # SIP answers first; the TCP listeners (xhttp, evapi) follow within milliseconds.
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _tcp_accepts(self.host, self.rpc_port) and _tcp_accepts(self.host, self.evapi_port):
                return True
            time.sleep(0.02)  # another process's listener: nothing to await
        return False

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop Kamailio (SIGTERM, SIGKILL after ``timeout_s``); stop phones first (see ``stop_all``)."""
        if self.process is not None:
            pid = self.process.pid
            t0 = time.monotonic()
            _stop_process(self.process, "kamailio", timeout_s)
            LOG.info("kamailio stopped pid=%d ms=%.0f", pid, (time.monotonic() - t0) * 1000)
            self.process = None
        if self._own_rundir is not None:
            shutil.rmtree(self._own_rundir, ignore_errors=True)
            self._own_rundir = None


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
        "-m", "1", "-timeout", f"{math.ceil(timeout_s)}s", "-timeout_error", kamailio.address,
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
