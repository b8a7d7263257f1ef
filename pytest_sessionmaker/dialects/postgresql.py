"""PostgreSQL: one round trip ends a test, checks for escaped commits and clears session state."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from pytest_sessionmaker.dialects.base import (
    CHANGE_LOG,
    SCHEMA_MARK,
    TEARDOWN_LOCK_TIMEOUT,
    Counters,
    DialectSupport,
    TestEnding,
    ending,
)
from pytest_sessionmaker.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from sqlalchemy import URL, Connection, Engine, Table
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState

LOG_FUNCTION = "pytest_sessionmaker_note_change"

# After the ROLLBACK, in the same round trip: release session-level advisory locks (a ROLLBACK
# keeps them), deallocate statements prepared with SQL PREPARE (kept too; the driver's own,
# prepared through the protocol, have from_sql = false and stay), and read the change log, which
# now holds only what other transactions, or this one before a COMMIT of the test's, committed.
# One row of JSON text: [prepared names, tables written by this connection, by others].
DEALLOCATE_SQL_PREPARED = (
    "DO $$ DECLARE r record; BEGIN "
    "FOR r IN SELECT name FROM pg_prepared_statements WHERE from_sql LOOP "
    "EXECUTE format('DEALLOCATE %I', r.name); END LOOP; END $$"
)
PREPARED = "ARRAY(SELECT name FROM pg_prepared_statements WHERE from_sql)"
WRITTEN = f"ARRAY(SELECT DISTINCT table_name FROM {CHANGE_LOG} WHERE connection_id {{}} " + (
    "pg_backend_pid())"
)
# One statement (the unlock in FROM runs once, before the checks): drivers that prepare every
# statement (asyncpg) take it as it is.
END_TEST = f"SELECT json_build_array({PREPARED})::text FROM (SELECT pg_advisory_unlock_all()) u"
END_TEST_WITH_LOG = (
    f"SELECT json_build_array({PREPARED}, {WRITTEN.format('=')}, {WRITTEN.format('<>')})::text "
    "FROM (SELECT pg_advisory_unlock_all()) u"
)

# What a connection going back to the pool sheds: DISCARD ALL without its DEALLOCATE ALL, because
# psycopg keeps a client-side cache of the statements it prepared and does not always notice a
# DISCARD ALL (the next use of a cached statement then failed with "prepared statement does not
# exist"). Statements prepared with SQL PREPARE are deallocated by name instead.
RESET = (
    "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; "
    f"SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES; {DEALLOCATE_SQL_PREPARED}"
)

# DDL outside the plugin's own objects and temporary tables marks the change log (superusers).
DDL_FUNCTION = "pytest_sessionmaker_note_ddl"
DDL_EVENT_TRIGGERS = ("pytest_sessionmaker_ddl_end", "pytest_sessionmaker_ddl_drop")
_OURS_OR_TEMPORARY = (
    "(r.object_identity LIKE '%pytest_sessionmaker%' OR coalesce(r.schema_name, '') "
    "LIKE 'pg_temp%' OR coalesce(r.schema_name, '') LIKE 'pg_toast%')"
)
_NOTE_SCHEMA = (
    f"IF NOT {_OURS_OR_TEMPORARY} THEN INSERT INTO {CHANGE_LOG} VALUES "
    f"('{SCHEMA_MARK}', pg_backend_pid()) ON CONFLICT DO NOTHING; END IF;"
)
DDL_WATCH = [
    f"CREATE OR REPLACE FUNCTION {DDL_FUNCTION}() RETURNS event_trigger AS $$ "
    "DECLARE r record; BEGIN "
    "IF TG_EVENT = 'sql_drop' THEN "
    f"FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() LOOP {_NOTE_SCHEMA} END LOOP; "
    f"ELSE FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP {_NOTE_SCHEMA} END LOOP; "
    "END IF; END $$ LANGUAGE plpgsql",
    f"DROP EVENT TRIGGER IF EXISTS {DDL_EVENT_TRIGGERS[0]}",
    f"CREATE EVENT TRIGGER {DDL_EVENT_TRIGGERS[0]} ON ddl_command_end "
    f"EXECUTE FUNCTION {DDL_FUNCTION}()",
    f"DROP EVENT TRIGGER IF EXISTS {DDL_EVENT_TRIGGERS[1]}",
    f"CREATE EVENT TRIGGER {DDL_EVENT_TRIGGERS[1]} ON sql_drop EXECUTE FUNCTION {DDL_FUNCTION}()",
]
# Without an event trigger: a digest of the user schemas' relations, columns and constraints.
SCHEMA_FINGERPRINT = """
SELECT md5(coalesce(string_agg(d, '|' ORDER BY d), '')) FROM (
  SELECT n.nspname::text || '.' || c.relname::text || ':' || c.relkind::text || ':' || coalesce((
    SELECT string_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
      || a.attnotnull::text, ',' ORDER BY a.attnum)
    FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS d
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_t%'
    AND c.relname NOT LIKE 'pytest_sessionmaker%'
  UNION ALL
  SELECT conrelid::regclass::text || ':' || conname::text || ':' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE conrelid <> 0
    AND conrelid::regclass::text NOT LIKE '%pytest_sessionmaker%'
    AND connamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN
      ('pg_catalog', 'information_schema'))
) s"""

# The plugin's own objects: the change log and snapshot tables, the triggers, their functions
# and the event triggers. A template database's copy is checked against the template's digest.
PLUGIN_OBJECTS_FINGERPRINT = """
SELECT md5(coalesce(string_agg(d, '|' ORDER BY d), '')) FROM (
  SELECT 'r:' || relname::text AS d FROM pg_class
  WHERE relname LIKE 'pytest_sessionmaker%' AND relkind IN ('r', 'u', 'p')
  UNION ALL
  SELECT 't:' || tgname::text || ':' || tgrelid::regclass::text || ':' || tgenabled::text
  FROM pg_trigger WHERE tgname LIKE 'pytest_sessionmaker%'
  UNION ALL
  SELECT 'f:' || proname::text || ':' || md5(prosrc) FROM pg_proc
  WHERE proname LIKE 'pytest_sessionmaker%'
  UNION ALL
  SELECT 'e:' || evtname::text || ':' || evtenabled::text FROM pg_event_trigger
  WHERE evtname LIKE 'pytest_sessionmaker%'
) s"""

# Statement-level triggers, so a bulk write logs once. A statement trigger fires even when the
# statement touched no row (a cleanup DELETE after the rows were rolled back), so INSERT, UPDATE
# and DELETE triggers look at their transition table and log only when it holds rows; a
# trigger with a transition table serves one event, hence one trigger per event. TRUNCATE has no
# transition table and always logs.
LOG_FUNCTIONS = {
    "pytest_sessionmaker_note_new": "pytest_sessionmaker_new_rows",
    "pytest_sessionmaker_note_old": "pytest_sessionmaker_old_rows",
}
NOTE = f"INSERT INTO {CHANGE_LOG} VALUES (TG_ARGV[0], pg_backend_pid()) ON CONFLICT DO NOTHING;"
LOG_FUNCTIONS_DDL = [
    f"CREATE OR REPLACE FUNCTION {LOG_FUNCTION}() RETURNS trigger AS $$ "
    f"BEGIN {NOTE} RETURN NULL; END $$ LANGUAGE plpgsql",
    *(
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$ "
        f"BEGIN IF EXISTS (SELECT FROM {rows}) THEN {NOTE} END IF; RETURN NULL; END "
        "$$ LANGUAGE plpgsql"
        for function, rows in LOG_FUNCTIONS.items()
    ),
]
TRIGGERS = (
    (
        "insert",
        "INSERT",
        "REFERENCING NEW TABLE AS pytest_sessionmaker_new_rows",
        "pytest_sessionmaker_note_new",
    ),
    (
        "update",
        "UPDATE",
        "REFERENCING NEW TABLE AS pytest_sessionmaker_new_rows",
        "pytest_sessionmaker_note_new",
    ),
    (
        "delete",
        "DELETE",
        "REFERENCING OLD TABLE AS pytest_sessionmaker_old_rows",
        "pytest_sessionmaker_note_old",
    ),
    ("truncate", "TRUNCATE", "", LOG_FUNCTION),
)


class PostgreSQLSupport(DialectSupport):
    name: ClassVar[str] = "postgresql"
    has_change_log: ClassVar[bool] = True
    # A COMMIT of the test's transaction that wrote no logged table (DDL alone) is not worth a
    # statement per test here; see the README's list of what is not detected.
    marks_transactions: ClassVar[bool] = False
    current_database_sql: ClassVar[str | None] = "SELECT current_database()"

    def prepare_engine(self, engine: Engine) -> None:
        super().prepare_engine(engine)
        event.listen(engine, "reset", self._on_reset)

    def _on_reset(
        self, dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, state: PoolResetState
    ) -> None:
        dbapi_connection.rollback()
        if not state.terminate_only:
            self.reset_connection(dbapi_connection)

    def reset_connection(self, dbapi_connection: DBAPIConnection) -> None:
        """One round trip in autocommit mode (DISCARD TEMP refuses a transaction block)."""
        _in_autocommit(dbapi_connection, RESET)

    def left_autocommit(self, dbapi_connection: DBAPIConnection) -> bool:
        return bool(getattr(dbapi_connection, "autocommit", False))

    def connection_id_sql(self) -> str:
        return "pg_backend_pid()"

    def end_test(self, connection: Connection, *, change_log: bool) -> TestEnding:
        query = END_TEST_WITH_LOG if change_log else END_TEST
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        # psycopg's own connection, or the one under SQLAlchemy's adapter of its async mode.
        pgconn = getattr(dbapi_connection, "pgconn", None) or getattr(
            getattr(dbapi_connection, "driver_connection", None), "pgconn", None
        )
        answer: object
        if pgconn is not None:
            answer = self._end_in_one_round_trip(pgconn, query)
            # The server is idle now; psycopg reads the state from libpq, so SQLAlchemy's
            # rollback sends nothing.
            connection.rollback()
        elif connection.dialect.is_async:  # asyncpg
            connection.rollback()
            # In autocommit: in a transaction, asyncpg would send a BEGIN and a ROLLBACK too.
            answer = _in_autocommit(dbapi_connection, query, fetch=True)
        else:  # psycopg2, pg8000: SQLAlchemy's rollback, then the checks
            connection.rollback()
            answer = connection.exec_driver_sql(query).scalar()
            connection.rollback()
        prepared, *written = json.loads(str(answer))
        if prepared:
            # Rare enough for a round trip of its own.
            _in_autocommit(dbapi_connection, DEALLOCATE_SQL_PREPARED)
        found = [(name, True) for name in written[0]] if written else []
        found += [(name, False) for name in written[1]] if written else []
        state = (f"prepared statements ({', '.join(prepared)})",) if prepared else ()
        # Advisory locks released, prepared statements deallocated: the connection is clean
        # again and may serve the next test.
        return ending(found, state)._replace(discard=False)

    @staticmethod
    def _end_in_one_round_trip(pgconn: Any, query: str) -> str:
        """ROLLBACK and the checks in one round trip, through psycopg's libpq connection.

        Several statements without parameters go in one simple-protocol message. They go
        through ``pgconn`` (psycopg's public libpq wrapper) rather than a cursor because psycopg
        empties its cache of prepared statements, and sends DEALLOCATE ALL, after any query
        whose status is ROLLBACK.
        """
        result = pgconn.exec_(f"ROLLBACK; {query}".encode())
        value = result.get_value(0, 0) if result.ntuples else None
        if value is None:
            message = (result.error_message or b"").decode(errors="replace").strip()
            raise DatabaseUnavailable(f"Ending the test's transaction failed: {message}")
        return bytes(value).decode()

    # -- the change log -------------------------------------------------------------------

    def install_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        """Four statement-level triggers per table, sent as one batch (one round trip on
        psycopg: no parameters, so the simple query protocol takes them all at once)."""
        # Unlogged: the log is scratch data of the run, not worth the write-ahead log.
        statements = [self.change_log_table_ddl("CREATE UNLOGGED TABLE"), *LOG_FUNCTIONS_DDL]
        preparer = connection.dialect.identifier_preparer
        for position, table in enumerate(tables):
            target = preparer.format_table(table)
            key = literal(table.fullname)
            for suffix, event_name, referencing, function in TRIGGERS:
                name = preparer.quote(f"{trigger_name(position)}_{suffix}")
                statements.append(f"DROP TRIGGER IF EXISTS {name} ON {target}")
                statements.append(
                    f"CREATE TRIGGER {name} AFTER {event_name} ON {target} {referencing} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {function}({key})"
                )
        self.execute_batch(connection, statements)

    def watch_ddl(self, connection: Connection) -> bool:
        """An event trigger logs DDL (superusers only may create one); the plugin's own objects
        and temporary tables do not count."""
        superuser = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        if not self.scalar(connection, superuser):
            return False
        self.execute_batch(connection, DDL_WATCH)
        return True

    def unwatch_ddl(self, connection: Connection) -> None:
        self.execute_batch(
            connection,
            [f"DROP EVENT TRIGGER IF EXISTS {name}" for name in DDL_EVENT_TRIGGERS]
            + [f"DROP FUNCTION IF EXISTS {DDL_FUNCTION}() CASCADE"],
        )

    def schema_fingerprint(self, connection: Connection) -> str:
        return str(self.scalar(connection, SCHEMA_FINGERPRINT))

    def plugin_objects_fingerprint(self, connection: Connection) -> str:
        return str(self.scalar(connection, PLUGIN_OBJECTS_FINGERPRINT))

    def ddl_watched(self, connection: Connection) -> bool:
        return bool(
            self.scalar(
                connection,
                "SELECT count(*) = 2 FROM pg_event_trigger WHERE evtname IN (:end, :drop)",
                end=DDL_EVENT_TRIGGERS[0],
                drop=DDL_EVENT_TRIGGERS[1],
            )
        )

    def lock(self, admin: Connection, key: str, *, shared: bool) -> None:
        """Wait for the advisory lock ``key`` (shared: others may hold it shared too)."""
        function = "pg_advisory_lock_shared" if shared else "pg_advisory_lock"
        self.scalar(admin, f"SELECT {function}(hashtext(:k))", k=key)

    def unlock_lock(self, admin: Connection, key: str, *, shared: bool) -> None:
        function = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
        self.scalar(admin, f"SELECT {function}(hashtext(:k))", k=key)

    def refuse_connections(self, admin: Connection, name: str) -> None:
        """Nobody may connect to ``name`` any more: a session in a template (a GUI left open
        on it) would make every CREATE DATABASE ... TEMPLATE fail."""
        quoted = admin.dialect.identifier_preparer.quote_identifier(name)
        admin.exec_driver_sql(f"ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS false")

    def drop_tables(self, connection: Connection, names: Sequence[str]) -> None:
        preparer = connection.dialect.identifier_preparer
        self.execute_batch(
            connection, [f"DROP TABLE IF EXISTS {preparer.quote(name)} CASCADE" for name in names]
        )

    def uninstall_change_log(self, connection: Connection, tables: Sequence[Table]) -> None:
        # Dropping the functions with CASCADE drops every trigger that calls them.
        functions = [LOG_FUNCTION, *LOG_FUNCTIONS]
        self.execute_batch(
            connection,
            [f"DROP FUNCTION IF EXISTS {name}() CASCADE" for name in functions]
            + [f"DROP TABLE IF EXISTS {CHANGE_LOG}"],
        )

    def execute_batch(self, connection: Connection, statements: Sequence[str]) -> None:
        """Several parameterless statements in one round trip where the driver allows it.

        On the driver's cursor, without parameters: the simple query protocol takes them all
        at once, and nothing reads their ``%`` signs as placeholders.
        """
        dbapi_connection = connection.connection.dbapi_connection
        if self.driver != "psycopg" or dbapi_connection is None:
            for statement in statements:
                connection.exec_driver_sql(statement.replace("%", "%%"))
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("; ".join(statements))
        finally:
            cursor.close()

    # -- identity counters ----------------------------------------------------------------

    def read_counters(
        self, connection: Connection, tables: Sequence[Table], *, every_sequence: bool = False
    ) -> Counters:
        """Every sequence owned by one of the tables (serial and identity columns), and with
        ``every_sequence`` every sequence outside the system schemas (standalone ones too)."""
        if not tables and not every_sequence:
            return {}
        preparer = connection.dialect.identifier_preparer
        owned_by_tables = (
            "EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
            "AND d.objid = c.oid AND d.deptype IN ('a', 'i') "
            "AND d.refobjid = ANY(CAST(:tables AS regclass[])))"
        )
        rows = connection.execute(
            text(
                "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename), "
                "s.last_value FROM pg_sequences s "
                "JOIN pg_class c ON c.oid = "
                "(quote_ident(s.schemaname) || '.' || quote_ident(s.sequencename))::regclass "
                f"WHERE {'TRUE' if every_sequence else owned_by_tables}"
            ),
            {"tables": [preparer.format_table(table) for table in tables]},
        ).all()
        return {name: (value, value is not None) for name, value in rows}

    def reset_counters(
        self, connection: Connection, counters: Counters, tables: Mapping[str, Table]
    ) -> None:
        for name, (value, is_called) in counters.items():
            connection.execute(
                text("SELECT setval(CAST(:name AS regclass), :value, :called)"),
                {"name": name, "value": value if value is not None else 1, "called": is_called},
            )

    @contextlib.contextmanager
    def foreign_keys_relaxed(self, connection: Connection) -> Iterator[None]:
        """Deferrable constraints wait for the commit; others are checked per statement, which
        the restore's order (children's rows removed first, parents' put back first) meets."""
        connection.exec_driver_sql("SET CONSTRAINTS ALL DEFERRED")
        yield

    def empty_tables(self, connection: Connection, tables: Sequence[Table]) -> None:
        if not tables:
            return
        preparer = connection.dialect.identifier_preparer
        names = ", ".join(preparer.format_table(table) for table in tables)
        connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY")

    # -- test databases -------------------------------------------------------------------

    def can_create_databases(self) -> bool:
        return True

    def admin_url(self, url: URL) -> URL:
        return self.lock_url(url)

    def lock_url(self, url: URL) -> URL:
        """Always the maintenance database ``postgres``: advisory locks belong to the database
        they are taken in, so runs connected to different databases would not see each other's.
        ``postgres`` is made by initdb in every cluster, and CREATE DATABASE never copies it
        (a session in template1 would make every CREATE DATABASE fail)."""
        return url.set(database=LOCK_DATABASE)

    def check_server(self, connection: Connection) -> None:
        refuse_unsupported_version(server_version(connection))

    def prepare_lock_connection(self, admin: Connection) -> None:
        """No idle timeout may end the lock connection (it sits idle for the whole run), and
        pg_stat_activity says what it is."""
        self.check_server(admin)
        if server_version(admin) >= (14,):
            admin.exec_driver_sql("SET idle_session_timeout = 0")
        admin.exec_driver_sql("SET application_name = 'pytest-sessionmaker lock'")

    def database_mark(self, admin: Connection, name: str) -> str | None:
        """The database's comment (readable from any database: pg_shdescription is shared)."""
        row = admin.execute(
            text(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
                "WHERE datname = :n"
            ),
            {"n": name},
        ).first()
        return None if row is None else str(row[0])

    def create_marked_database(
        self, admin: Connection, name: str, mark: str, template: str | None = None
    ) -> None:
        """Create under a temporary name, mark, then rename: the name only ever exists marked.

        PostgreSQL has no CREATE DATABASE option for a comment, and CREATE DATABASE cannot run in
        a transaction with the COMMENT, so the rename (atomic) is what makes it safe. The
        temporary name is derived from the final one and only used under the final name's
        lock, so a leftover of an interrupted creation is dropped here without doubt. A copy of
        ``template`` gets its own comment: the template's is not copied (it is a shared object).
        """
        temporary = creating_name(name)
        quote = admin.dialect.identifier_preparer.quote_identifier
        admin.exec_driver_sql(f"DROP DATABASE IF EXISTS {quote(temporary)}")
        source = f" TEMPLATE {quote(template)}" if template is not None else ""
        admin.exec_driver_sql(f"CREATE DATABASE {quote(temporary)}{source}")
        admin.exec_driver_sql(f"COMMENT ON DATABASE {quote(temporary)} IS {literal(mark)}")
        admin.exec_driver_sql(f"ALTER DATABASE {quote(temporary)} RENAME TO {quote(name)}")

    def set_mark(self, admin: Connection, name: str, mark: str) -> None:
        quoted = admin.dialect.identifier_preparer.quote_identifier(name)
        admin.exec_driver_sql(f"COMMENT ON DATABASE {quoted} IS {literal(mark)}")

    def others_connected(self, admin: Connection, name: str) -> bool:
        return bool(
            self.scalar(
                admin,
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = :n "
                "AND pid <> pg_backend_pid())",
                n=name,
            )
        )

    def drop_own_database(self, admin: Connection, name: str) -> None:
        """DROP DATABASE ... WITH (FORCE) from PostgreSQL 13; before it, end the database's
        other sessions first (WITH (FORCE) does the same inside the server)."""
        if has_drop_force(server_version(admin)):
            quoted = admin.dialect.identifier_preparer.quote_identifier(name)
            admin.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        else:
            self.drop_after_ending_sessions(admin, name)

    def drop_after_ending_sessions(self, admin: Connection, name: str) -> None:
        """PostgreSQL 12's way: pg_terminate_backend each session, then DROP DATABASE (which
        waits up to five seconds for terminated sessions to exit). A session that connects in
        between makes the DROP fail; it is tried again."""
        for attempt in range(3):
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            try:
                self.drop_database(admin, name)
                return
            except OperationalError:
                if attempt == 2:
                    raise

    def try_lock(self, admin: Connection, key: str) -> bool:
        return bool(self.scalar(admin, "SELECT pg_try_advisory_lock(hashtext(:k))", k=key))

    def unlock(self, admin: Connection, key: str) -> None:
        self.scalar(admin, "SELECT pg_advisory_unlock(hashtext(:k))", k=key)

    def holds_lock(self, admin: Connection, key: str) -> bool:
        return bool(
            self.scalar(
                admin,
                "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' "
                "AND pid = pg_backend_pid() AND granted "
                "AND objid = (hashtext(:k)::bigint & 4294967295))",
                k=key,
            )
        )

    @contextlib.contextmanager
    def lock_waits_limited(self, connection: Connection) -> Iterator[None]:
        """SET LOCAL: it ends with the transaction, so the connection keeps no setting."""
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{TEARDOWN_LOCK_TIMEOUT}s'")
        yield


# The oldest PostgreSQL the plugin supports, and the README says so.
OLDEST_SUPPORTED = (12,)
LOCK_DATABASE = "postgres"


def server_version(connection: Connection) -> tuple[int, ...]:
    """The server's version as SQLAlchemy read it on connecting (no round trip)."""
    info = connection.dialect.server_version_info or ()
    return tuple(part for part in info if isinstance(part, int))


def refuse_unsupported_version(version: tuple[int, ...]) -> None:
    if version and version < OLDEST_SUPPORTED:
        shown = ".".join(str(part) for part in version)
        raise DatabaseUnavailable(
            f"The server runs PostgreSQL {shown}, older than 12, the oldest version "
            "pytest-sessionmaker supports; upgrade the server, or point --db-url at a newer one."
        )


def has_drop_force(version: tuple[int, ...]) -> bool:
    """DROP DATABASE ... WITH (FORCE) exists from PostgreSQL 13."""
    return version >= (13,)


def creating_name(name: str) -> str:
    """The temporary name ``name`` is created under: derived from it (so a leftover is known to
    be the plugin's), and short enough for PostgreSQL's 63-byte names."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"pytest_sessionmaker_creating_{digest}"


def trigger_name(position: int) -> str:
    return f"pytest_sessionmaker_log_{position}"


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_autocommit(
    dbapi_connection: DBAPIConnection, statement: str, *, fetch: bool = False
) -> object:
    """One parameterless statement on the driver's connection in autocommit mode, outside
    SQLAlchemy's view; with ``fetch``, the first value of its first row."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(statement)
            row = cursor.fetchone() if fetch else None
        finally:
            cursor.close()
    finally:
        dbapi_connection.autocommit = autocommit
    return None if row is None else row[0]
