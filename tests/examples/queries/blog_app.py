"""The application: a module-level sessionmaker on an engine of its own (rebound per test)."""

from pathlib import Path

from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from blog import Author

engine = create_engine(f"sqlite:///{Path(__file__).with_name('app.db')}")
SessionLocal = sessionmaker(engine)


def author_names():
    with SessionLocal() as session:
        return session.scalars(select(Author.name).order_by(Author.name)).all()
