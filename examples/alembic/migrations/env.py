"""Alembic's environment, computing the database URL from the application's settings.

The three lines at the top of run_migrations_online() let pytest-sessionmaker run the migrations
in its test database: it passes its connection in config.attributes["connection"].
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

from blog.models import Base
from blog.settings import DATABASE_URL

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=DATABASE_URL, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    if (connection := config.attributes.get("connection")) is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        return context.run_migrations()
    engine = create_engine(DATABASE_URL)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    return None


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
