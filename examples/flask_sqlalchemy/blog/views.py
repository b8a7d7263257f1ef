"""Two blueprints writing through db.session and reading through Model.query."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from blog.extensions import db
from blog.models import Author, Post

authors = Blueprint("authors", __name__, url_prefix="/authors")
posts = Blueprint("posts", __name__, url_prefix="/posts")


@authors.post("")
def add_author() -> tuple[dict[str, Any], int]:
    author = Author(name=request.get_json()["name"])
    db.session.add(author)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return {"error": "that name is taken"}, 409
    return {"id": author.id, "name": author.name}, 201


@posts.get("")
def list_posts() -> list[dict[str, Any]]:
    found = db.session.scalars(select(Post).join(Post.author).order_by(Post.id))
    return [{"title": post.title, "author": post.author.name} for post in found]


@posts.post("")
def add_post() -> tuple[dict[str, Any], int]:
    data = request.get_json()
    author = Author.query.filter_by(name=data["author"]).one_or_none()
    if author is None:
        return {"error": f"no author named {data['author']!r}"}, 404
    post = Post(author=author, title=data["title"])
    db.session.add(post)
    db.session.commit()
    return {"id": post.id, "title": post.title}, 201
