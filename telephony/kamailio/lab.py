"""A real Kamailio process on loopback, for tests and a "real phone system" run mode.

``KamailioServer`` renders ``kamailio.cfg`` (``render_config``) with free ports and the hub URL into a
work directory and runs ``kamailio -DD -E`` until it answers SIP OPTIONS (``sip_ping``) and its TCP
listeners accept. Also here: ``LabError``, finding the binaries (``find_binary``; installation is left
to ``scripts/test``, ``ensure_installed()`` says what is missing), free ports, and stopping a child
process by its own PID (SIGTERM, then SIGKILL of its process group). Every wait is bounded.

The sipp side (agent phones, carrier calls, message logs) is in ``telephony.kamailio.phones``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
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
        """Stop Kamailio (SIGTERM, SIGKILL after ``timeout_s``); phones first (``phones.stop_all``)."""
        if self.process is not None:
            pid = self.process.pid
            t0 = time.monotonic()
            _stop_process(self.process, "kamailio", timeout_s)
            LOG.info("kamailio stopped pid=%d ms=%.0f", pid, (time.monotonic() - t0) * 1000)
            self.process = None
        if self._own_rundir is not None:
            shutil.rmtree(self._own_rundir, ignore_errors=True)
            self._own_rundir = None
