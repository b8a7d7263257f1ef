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
    """Rows, counters and schema; on PostgreSQL with PG_DUMP_CHECK set, pg_dump's data too."""
    import os

    rows = {
        table: sorted(
            (tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))),
            key=repr,
        )
        for table in TABLES
    }
    result = {"rows": rows, "counters": counters(connection), "schema": schema(connection)}
    if connection.dialect.name == "postgresql" and os.environ.get("PG_DUMP_CHECK"):
        result["pg_dump"] = pg_dump_data(connection.engine.url)
    return result


def pg_dump_data(url):
    """pg_dump's data-only dump of the test database (sequences' values included), with each
    table's rows sorted: a restore may put rows back in another physical order."""
    import glob
    import os
    import shutil
    import subprocess

    program = shutil.which("pg_dump") or max(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))
    environment = {**os.environ, "PGPASSWORD": url.password or ""}
    output = subprocess.run(
        [
            program,
            "--data-only",
            "--no-owner",
            "--exclude-table=pytest_sessionmaker*",
            f"--host={url.host}",
            f"--port={url.port or 5432}",
            f"--username={url.username}",
            url.database,
        ],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    ).stdout
    lines, rows = [], None
    for line in output.splitlines():
        if rows is not None:
            if line == "\\.":
                lines += [*sorted(rows), line]
                rows = None
            else:
                rows.append(line)
        elif line.startswith("COPY "):
            lines.append(line)
            rows = []
        elif line.strip() and not line.startswith(("--", "\\restrict", "\\unrestrict")):
            # (\restrict carries a random key, different in every dump.)
            lines.append(line)
    return "\n".join(lines)
