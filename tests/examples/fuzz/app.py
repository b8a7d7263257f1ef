"""An application's own session factory, which the plugin binds to each test."""

from sqlalchemy.orm import sessionmaker

SessionLocal = sessionmaker()
