"""Alembic revision files, one per schema version (loaded by Alembic from their paths)."""
