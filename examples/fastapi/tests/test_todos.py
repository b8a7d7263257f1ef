"""Tests through FastAPI's TestClient; the endpoints' commits are rolled back after each test."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from todo.models import Todo


def test_a_todo_added_through_the_api_is_listed(client: TestClient) -> None:
    response = client.post("/todos", json={"title": "write tests"})
    assert response.status_code == 201
    assert [todo["title"] for todo in client.get("/todos").json()] == ["write tests"]


def test_each_test_starts_with_an_empty_list(client: TestClient) -> None:
    assert client.get("/todos").json() == []


def test_a_refused_duplicate_rolls_back_only_the_request(client: TestClient) -> None:
    client.post("/todos", json={"title": "write tests"})
    assert client.post("/todos", json={"title": "write tests"}).status_code == 409
    assert len(client.get("/todos").json()) == 1


def test_rows_added_with_db_session_are_served_by_the_api(
    client: TestClient, db_session: Session
) -> None:
    db_session.add(Todo(title="from the test"))
    db_session.commit()
    todo_id = client.get("/todos").json()[0]["id"]
    assert client.post(f"/todos/{todo_id}/done").json()["done"] is True


def test_what_the_api_wrote_is_in_the_test_transaction(
    client: TestClient, db_session: Session
) -> None:
    # db_session holds a transaction open while the request runs in a worker thread.
    assert db_session.exec(select(Todo)).all() == []
    client.post("/todos", json={"title": "seen by the test"})
    assert [todo.title for todo in db_session.exec(select(Todo))] == ["seen by the test"]
