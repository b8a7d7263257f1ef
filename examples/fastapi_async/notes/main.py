"""Async endpoints over an AsyncSession from Depends(get_db)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from notes.database import get_db
from notes.models import Note

app = FastAPI()
Database = Annotated[AsyncSession, Depends(get_db)]


class NoteIn(BaseModel):
    title: str


class NoteOut(BaseModel):
    id: int
    title: str
    done: bool


@app.post("/notes", status_code=201)
async def add_note(note: NoteIn, db: Database) -> NoteOut:
    row = Note(title=note.title)
    db.add(row)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise HTTPException(409, f"{note.title!r} is noted already") from None
    return NoteOut(id=row.id, title=row.title, done=row.done)


@app.get("/notes")
async def list_notes(db: Database) -> list[NoteOut]:
    rows = await db.scalars(select(Note).order_by(Note.id))
    return [NoteOut(id=row.id, title=row.title, done=row.done) for row in rows]


@app.post("/notes/{note_id}/done")
async def mark_done(note_id: int, db: Database) -> NoteOut:
    row = await db.get(Note, note_id)
    if row is None:
        raise HTTPException(404, "no such note")
    row.done = True
    await db.commit()
    return NoteOut(id=row.id, title=row.title, done=row.done)
