"""A tiny shop API, written the way Flask's documentation pattern "SQLAlchemy in Flask" shows."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shop.database import Product, Session


def create_app() -> Flask:
    app = Flask(__name__)

    @app.teardown_appcontext
    def remove_session(exception: BaseException | None = None) -> None:
        Session.remove()

    @app.get("/products")
    def list_products() -> list[dict[str, Any]]:
        products = Session.scalars(select(Product).order_by(Product.name))
        return [{"name": p.name, "price_cents": p.price_cents} for p in products]

    @app.post("/products")
    def add_product() -> tuple[dict[str, Any], int]:
        data = request.get_json()
        product = Product(name=data["name"], price_cents=data["price_cents"])
        Session.add(product)
        try:
            Session.commit()
        except IntegrityError:
            Session.rollback()
            return {"error": f"a product named {data['name']!r} exists already"}, 409
        return {"id": product.id, "name": product.name}, 201

    return app
