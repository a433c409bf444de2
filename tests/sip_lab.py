"""Fixtures for tests that drive real Kamailio and sipp processes on loopback.

Not auto-imported: a test module (or conftest.py) imports the fixtures it uses. They are defined
as ``<name>_fixture`` functions registered under ``<name>`` (``sip_lab``, ``kamailio``,
``sip_phone``, ``carrier``), so that importing them does not clash with test parameters::

    from tests.sip_lab import SipLab, closed_hub_url, sip_lab_fixture  # noqa: F401  (fixture)

    async def test_call(sip_lab: SipLab) -> None:
        kam = sip_lab.kamailio("http://127.0.0.1:8000")   # the hub's base URL
        await sip_lab.agent(kam, "1001", talk_ms=500)     # sipp phone, started and registered
        result = await sip_lab.carrier_call(kam, did="800", caller="+15550001", talk_ms=1000)
        assert result.final_code == 200

Missing binaries: under CI (``CI`` set) the test fails with what to install, elsewhere it is skipped.
Everything a test started is stopped after it, phones before Kamailio.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from telephony.kamailio.lab import KamailioServer, ensure_installed, free_port
from telephony.kamailio.phones import CarrierResult, PhoneMode, SippPhone, carrier_call, stop_all

__all__ = [
    "SipLab",
    "carrier_fixture",
    "closed_hub_url",
    "kamailio_fixture",
    "require_sip_tools",
    "sip_lab_fixture",
    "sip_phone_fixture",
]


def require_sip_tools() -> None:
    """Fail (CI) or skip (elsewhere) the current test when kamailio or sipp is missing."""
    missing = ensure_installed()
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{missing}; CI must provide them", pytrace=False)
    pytest.skip(missing)


def closed_hub_url() -> str:
    """A hub URL on a loopback port nobody listens on: Kamailio's queries are refused at once."""
    return f"http://127.0.0.1:{free_port('tcp')}"


class SipLab:
    """The Kamailio servers and phones of one test, all under ``work_dir``."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.servers: list[KamailioServer] = []
        self.phones: list[SippPhone] = []

    def kamailio(
        self,
        hub_url: str,
        *,
        dids: Sequence[str] = ("800",),
        carrier_gateway: str | None = None,
        **options: Any,
    ) -> KamailioServer:
        """Start a Kamailio asking ``hub_url`` about calls to ``dids``; stopped after the test."""
        server = KamailioServer(
            self.work_dir / f"kamailio-{len(self.servers) + 1}",
            hub_url,
            dids=tuple(dids),
            carrier_gateway=carrier_gateway,
            **options,
        )
        self.servers.append(server)
        return server.start()

    def phone(
        self,
        extension: str,
        mode: PhoneMode = "answer",
        *,
        ring_ms: int = 300,
        talk_ms: int | None = None,
        proxy: str = "",
    ) -> SippPhone:
        """Start a sipp phone (not registered: see ``agent``); stopped after the test."""
        if mode == "refer" and not proxy and self.servers:
            proxy = self.servers[-1].address
        phone = SippPhone(self.work_dir, extension, mode, ring_ms=ring_ms, talk_ms=talk_ms, proxy=proxy)
        self.phones.append(phone)
        return phone.start()

    async def agent(
        self,
        kamailio: KamailioServer,
        extension: str,
        mode: PhoneMode = "answer",
        *,
        ring_ms: int = 300,
        talk_ms: int | None = None,
    ) -> SippPhone:
        """Start a phone and register it at ``kamailio`` under ``extension``."""
        phone = self.phone(extension, mode, ring_ms=ring_ms, talk_ms=talk_ms, proxy=kamailio.address)
        await phone.register(kamailio)
        return phone

    async def carrier_call(self, kamailio: KamailioServer, **options: Any) -> CarrierResult:
        """``telephony.kamailio.phones.carrier_call`` with this lab's work directory."""
        return await carrier_call(kamailio, self.work_dir, **options)

    def stop(self) -> None:
        """Stop every phone, then every Kamailio."""
        stop_all(self.phones)
        for server in self.servers:
            server.stop()


@pytest.fixture(name="sip_lab")
def sip_lab_fixture(tmp_path: Path) -> Iterator[SipLab]:
    """A ``SipLab`` in this test's tmp_path; requires kamailio and sipp."""
    require_sip_tools()
    lab = SipLab(tmp_path / "sip")
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(name="kamailio")
def kamailio_fixture(sip_lab: SipLab) -> Callable[..., KamailioServer]:
    """Factory: ``kamailio(hub_url, dids=("800",), carrier_gateway=None)`` -> started server."""
    return sip_lab.kamailio


@pytest.fixture(name="sip_phone")
def sip_phone_fixture(sip_lab: SipLab) -> Callable[..., SippPhone]:
    """Factory: ``sip_phone(extension, mode="answer", ring_ms=300, talk_ms=None)`` -> started phone."""
    return sip_lab.phone


@pytest.fixture(name="carrier")
def carrier_fixture(sip_lab: SipLab) -> Callable[..., Awaitable[CarrierResult]]:
    """Factory: ``await carrier(kamailio, did="800", caller=..., talk_ms=..., cancel_after_ms=...)``."""
    return sip_lab.carrier_call
