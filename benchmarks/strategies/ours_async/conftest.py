"""pytest-sessionmaker's async fixtures: the ini file names the models and the loop scope,
$PYTEST_DB_URL the server; the async driver is derived from it. Nothing else to write."""
