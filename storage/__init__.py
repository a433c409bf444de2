"""Lineup storage: Postgres tables, migrations and queries. Knows nothing of hub, web or telephony."""
