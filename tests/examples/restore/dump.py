"""The whole database as a comparable value, read with plain SQL (not the plugin's code)."""

from sqlalchemy import inspect, text

TABLES = ("authors", "books", "tags", "events", "notes")


def counters(connection):
    backend = connection.dialect.name
    if backend == "postgresql":
        rows = connection.execute(
            text(
                "SELECT sequencename, last_value FROM pg_sequences "
                "WHERE schemaname = current_schema() ORDER BY sequencename"
            )
        )
    elif backend == "mysql":
        rows = connection.execute(
            text(
                "SELECT table_name, auto_increment FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name NOT LIKE 'pytest%' "
                "ORDER BY table_name"
            )
        )
    else:
        if not connection.execute(
            text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
        ).first():
            return []
        rows = connection.execute(text("SELECT name, seq FROM sqlite_sequence ORDER BY name"))
    return [tuple(row) for row in rows]


def schema(connection):
    inspector = inspect(connection)
    names = sorted(name for name in inspector.get_table_names() if not name.startswith("pytest_"))
    return {
        name: (
            [(column["name"], str(column["type"])) for column in inspector.get_columns(name)],
            sorted(index["name"] or "" for index in inspector.get_indexes(name)),
        )
        for name in names
    }


def dump(connection):
    rows = {
        table: sorted(
            (tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))),
            key=repr,
        )
        for table in TABLES
    }
    return {"rows": rows, "counters": counters(connection), "schema": schema(connection)}
