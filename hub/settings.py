"""One typed settings object, read from ``LINEUP_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of a Lineup process. Empty service URLs mean "start the bundled server"."""

    model_config = SettingsConfigDict(env_prefix="LINEUP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")

    database_url: str = ""
    redis_url: str = ""
    redis_prefix: str = "lineup:"
    kafka_bootstrap: str = ""
    gateway: Literal["simulator", "kamailio"] = "simulator"
    # Kamailio (LINEUP_GATEWAY=kamailio): its JSON-RPC URL, the SIP address agents' phones register
    # at, and the addresses allowed to call the hub's /gateway/kamailio/* endpoints.
    kamailio_rpc_url: str = "http://127.0.0.1:5071/RPC"
    kamailio_sip_address: str = "127.0.0.1:5070"
    gateway_addresses: str = "127.0.0.1,::1"

    secret_key: str = ""
    demo: bool = False
    default_region: str = "CN"

    cookie_secure: bool = False  # set true behind TLS: the session cookie then travels over HTTPS only
    session_max_age_s: int = 12 * 3600
    token_ttl_s: int = 12 * 3600

    lead_lease_s: int = 300
    # Connections the lead claim keeps open in each hub process (a claim holds one for about 1 ms).
    dispatch_pool_size: int = Field(default=4, ge=1, le=50)
    presence_ttl_s: int = 60
    heartbeat_s: float = 15.0
    idle_rescan_s: float = 10.0
    stock_low_threshold: int = 10
    # A callback promised by an agent is theirs until it has been due this long, then anyone's.
    callback_grace_s: float = Field(default=900.0, gt=0)
    callback_poll_s: float = Field(default=0.5, gt=0)  # how often due callbacks are looked for

    ws_max_frame_bytes: int = 64 * 1024
    ws_send_queue: int = 256

    upload_max_bytes: int = 200 * 1024 * 1024
    import_max_rows: int = 5_000_000
    # Rows per chunk of an import: Postgres settles one while the parser reads the next.
    import_chunk_rows: int = Field(default=50_000, ge=1)
    dedup_window_days: int = 0  # an existing lead blocks a re-import for this many days; 0 = forever
    # Leads created more than this many days ago are purged with their contact history; 0 = off.
    retention_days: int = Field(default=0, ge=0)

    sim_answer_rate: float = 0.75
    sim_ring_s: tuple[float, float] = (1.0, 4.0)
    sim_talk_s: tuple[float, float] = (3.0, 8.0)
    sim_no_answer_after_s: float = 20.0
    sim_agent_answer_s: tuple[float, float] = (1.0, 2.5)
    sim_abandon_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    sim_inbound_every_s: float = Field(default=0.0, ge=0.0, description="0: no customer calls in by themself")
    sim_inbound_did: str = "800"

    process_id: str = Field(default="", description="Name of this hub process; random when empty.")

    # Registration stream (read only when kafka_bootstrap is set).
    registrations_topic: str = "lineup.leads.inbound"
    registrations_dlq_topic: str = "lineup.leads.inbound.dlq"
    registrations_group_id: str = "lineup-registrations"
    registrations_campaign: str = "Registrations"  # TMK campaign of the new leads, created if missing
    registrations_session_timeout_ms: int = 10_000
    registrations_batch_max: int = 2000  # messages per poll, stored in one transaction
    registrations_retry_max_s: float = 30.0  # back-off ceiling while Kafka or Postgres is down

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
