"""Quota-aware, resumable history backfill: pure planning/progress logic with I/O kept at the edges."""
