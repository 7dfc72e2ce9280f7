"""The database: tables, engine set-up, migrations and queries. SQLite (WAL) by default,
PostgreSQL by URL."""
