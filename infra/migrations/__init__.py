"""Alembic migrations of the whole database, shipped inside the infra package.

Run with ``dialer db upgrade`` (also applied at start). New revisions:
``.venv/bin/alembic -c infra/migrations/alembic.ini revision --autogenerate -m "..."``.
"""
