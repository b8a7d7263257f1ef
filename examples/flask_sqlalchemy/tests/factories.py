"""factory_boy factories writing through the application's own db.session."""

from __future__ import annotations

import factory
from factory.alchemy import SQLAlchemyModelFactory

from blog.extensions import db
from blog.models import Author, Post


class AuthorFactory(SQLAlchemyModelFactory):
    class Meta:
        model = Author
        sqlalchemy_session = db.session
        # A commit of db.session releases a savepoint of the test's transaction.
        sqlalchemy_session_persistence = "commit"

    name = factory.Sequence(lambda n: f"author {n}")


class PostFactory(SQLAlchemyModelFactory):
    class Meta:
        model = Post
        sqlalchemy_session = db.session
        sqlalchemy_session_persistence = "flush"

    title = factory.Sequence(lambda n: f"post {n}")
    author = factory.SubFactory(AuthorFactory)
