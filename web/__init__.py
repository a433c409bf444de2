"""Lineup web: pages, forms, htmx fragments and static files. Reaches live state only via hub services."""
