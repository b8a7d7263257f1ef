"""Tests through Flask's test client and with factory_boy; everything is rolled back."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from blog.extensions import db
from blog.models import Author, Post
from tests.factories import AuthorFactory, PostFactory


def test_a_post_added_through_the_api_is_listed(client: FlaskClient) -> None:
    assert client.post("/authors", json={"name": "ada"}).status_code == 201
    response = client.post("/posts", json={"author": "ada", "title": "Notes"})
    assert response.status_code == 201
    assert client.get("/posts").json == [{"title": "Notes", "author": "ada"}]


def test_each_test_starts_with_an_empty_blog(client: FlaskClient) -> None:
    assert client.get("/posts").json == []


def test_a_refused_duplicate_rolls_back_only_the_request(client: FlaskClient) -> None:
    client.post("/authors", json={"name": "ada"})
    assert client.post("/authors", json={"name": "ada"}).status_code == 409
    response = client.post("/posts", json={"author": "ada", "title": "Still here"})
    assert response.status_code == 201


@pytest.mark.usefixtures("app_context")
def test_factories_write_through_db_session_into_the_test_transaction(
    client: FlaskClient, db_session: Session
) -> None:
    post = PostFactory(title="Made by a factory")
    assert post.author.name.startswith("author ")
    assert client.get("/posts").json == [{"title": "Made by a factory", "author": post.author.name}]
    assert db_session.scalar(select(func.count()).select_from(Post)) == 1


@pytest.mark.usefixtures("app_context")
def test_model_query_and_db_session_see_the_same_rows(db_session: Session) -> None:
    AuthorFactory.create_batch(3)
    assert Author.query.count() == 3
    assert db.session.scalar(select(func.count()).select_from(Author)) == 3
    assert db_session.scalar(select(func.count()).select_from(Author)) == 3


@pytest.mark.usefixtures("app_context")
def test_the_factories_rows_are_gone_in_the_next_test() -> None:
    assert Author.query.count() == 0
    assert Post.query.count() == 0
