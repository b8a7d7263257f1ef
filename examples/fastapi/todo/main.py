"""Sync endpoints: FastAPI runs each in a worker thread of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from todo.database import engine, get_db
from todo.models import Todo


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # As FastAPI's tutorial does: create the tables at start-up, through the engine itself.
    SQLModel.metadata.create_all(engine)
    yield


app = FastAPI(lifespan=lifespan)
Database = Annotated[Session, Depends(get_db)]


@app.post("/todos", status_code=201)
def add_todo(todo: Todo, db: Database) -> Todo:
    db.add(todo)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise HTTPException(409, f"{todo.title!r} is on the list already") from None
    db.refresh(todo)
    return todo


@app.get("/todos")
def list_todos(db: Database) -> list[Todo]:
    return list(db.exec(select(Todo).order_by(Todo.id)))


@app.post("/todos/{todo_id}/done")
def mark_done(todo_id: int, db: Database) -> Todo:
    todo = db.get(Todo, todo_id)
    if todo is None:
        raise HTTPException(404, "no such to-do")
    todo.done = True
    db.commit()
    db.refresh(todo)
    return todo
