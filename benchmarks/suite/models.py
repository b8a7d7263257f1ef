"""The application models of every generated suite: ``$BENCH_TABLES`` tables (default 32).

Each table looks like a small real one (a key, an indexed name, a default, a nullable column, a
server default) and references the previous one, so creating and dropping them costs what a
real schema of that size costs. The count comes from the environment, not from the file, so one
suite runs with any schema size.
"""

from __future__ import annotations

import os
from typing import Any, cast

from sqlalchemy import DateTime, ForeignKey, Integer, String, func
from sqlalchemy.orm import DeclarativeBase, mapped_column

TABLES = int(os.environ.get("BENCH_TABLES", "32"))


class Base(DeclarativeBase):
    pass


def _model(index: int) -> type[Base]:
    attributes: dict[str, Any] = {
        "__tablename__": f"thing{index:02d}",
        "id": mapped_column(Integer, primary_key=True),
        "name": mapped_column(String(80), index=True, nullable=False),
        "amount": mapped_column(Integer, default=0, nullable=False),
        "note": mapped_column(String(200)),
        "created": mapped_column(DateTime, server_default=func.now()),
    }
    if index:
        attributes["parent_id"] = mapped_column(ForeignKey(f"thing{index - 1:02d}.id"))
    return cast("type[Base]", type(f"Thing{index:02d}", (Base,), attributes))


MODELS = [_model(index) for index in range(TABLES)]
