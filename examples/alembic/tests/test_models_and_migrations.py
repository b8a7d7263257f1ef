"""The models and the migrations describe the same tables (Alembic's compare_metadata)."""

from pytest_sessionmaker.checks import test_models_match_migrations

__all__ = ["test_models_match_migrations"]
