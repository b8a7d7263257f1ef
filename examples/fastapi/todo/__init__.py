"""A to-do list API on FastAPI and SQLModel."""
