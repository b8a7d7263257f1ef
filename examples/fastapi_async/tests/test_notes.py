"""Tests through httpx's AsyncClient; the endpoints' commits are rolled back after each test."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from notes.models import Note


async def test_a_note_added_through_the_api_is_listed(client: AsyncClient) -> None:
    response = await client.post("/notes", json={"title": "write tests"})
    assert response.status_code == 201
    listed = (await client.get("/notes")).json()
    assert [note["title"] for note in listed] == ["write tests"]


async def test_each_test_starts_with_no_notes(client: AsyncClient) -> None:
    assert (await client.get("/notes")).json() == []


async def test_a_refused_duplicate_rolls_back_only_the_request(client: AsyncClient) -> None:
    await client.post("/notes", json={"title": "write tests"})
    assert (await client.post("/notes", json={"title": "write tests"})).status_code == 409
    assert len((await client.get("/notes")).json()) == 1


async def test_rows_added_with_db_async_session_are_served_by_the_api(
    client: AsyncClient, db_async_session: AsyncSession
) -> None:
    db_async_session.add(Note(title="from the test"))
    await db_async_session.commit()
    note_id = (await client.get("/notes")).json()[0]["id"]
    assert (await client.post(f"/notes/{note_id}/done")).json()["done"] is True


async def test_what_the_api_wrote_is_in_the_test_transaction(
    client: AsyncClient, db_async_session: AsyncSession
) -> None:
    assert (await db_async_session.scalars(select(Note))).all() == []
    await client.post("/notes", json={"title": "seen by the test"})
    titles = (await db_async_session.scalars(select(Note.title))).all()
    assert titles == ["seen by the test"]
