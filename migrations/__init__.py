"""Alembic migrations for the umstrack schema (shipped with the package)."""
