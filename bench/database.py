"""What the benchmarks share: their own PostgreSQL database."""

import os
import sys


def ensure_database(*, fresh: bool = False):
    """Create the benchmark's database when missing; with `fresh`, drop it first (only a database whose name
    says "bench"), so that runs compare on the same empty tables instead of ever larger ones."""
    import dj_database_url
    import psycopg

    url = os.environ.get("DATABASE_URL", "")
    config = dj_database_url.parse(url) if url else {}
    if "postgresql" not in config.get("ENGINE", ""):
        sys.exit("Set DATABASE_URL to a PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/bench_import")
    name = config["NAME"]
    admin = psycopg.connect(
        host=config["HOST"], port=config["PORT"] or 5432, user=config["USER"], dbname="postgres", autocommit=True
    )
    if fresh:
        if "bench" not in name:
            sys.exit(f"--fresh drops the database; {name!r} does not look like a benchmark database (no 'bench').")
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        admin.execute(f'CREATE DATABASE "{name}"')
    admin.close()
