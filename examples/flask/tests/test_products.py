"""API tests through Flask's test client; every commit the application makes is rolled back."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from shop.database import Product


def test_a_product_added_through_the_api_is_listed(client: FlaskClient) -> None:
    response = client.post("/products", json={"name": "tea", "price_cents": 450})
    assert response.status_code == 201
    assert client.get("/products").json == [{"name": "tea", "price_cents": 450}]


def test_each_test_starts_with_an_empty_shop(client: FlaskClient) -> None:
    assert client.get("/products").json == []


def test_a_refused_duplicate_rolls_back_only_the_request(client: FlaskClient) -> None:
    client.post("/products", json={"name": "tea", "price_cents": 450})
    response = client.post("/products", json={"name": "tea", "price_cents": 500})
    assert response.status_code == 409
    assert client.get("/products").json == [{"name": "tea", "price_cents": 450}]


def test_rows_added_with_db_session_are_served_by_the_api(
    client: FlaskClient, db_session: Session
) -> None:
    db_session.add(Product(name="coffee", price_cents=300))
    db_session.commit()
    assert client.get("/products").json == [{"name": "coffee", "price_cents": 300}]


def test_what_the_api_wrote_is_in_the_test_transaction(
    client: FlaskClient, db_session: Session
) -> None:
    client.post("/products", json={"name": "tea", "price_cents": 450})
    assert db_session.scalars(select(Product.name)).all() == ["tea"]
