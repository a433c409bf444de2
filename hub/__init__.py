"""Lineup hub: the real-time core and composition root."""
