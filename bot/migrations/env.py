"""Alembic environment: runs migrations online against the configured URL.

On SQLite, foreign keys are switched off for the migrations (and back on afterwards): rebuilding
a table (0005 rebuilds `customers`, which SQLite cannot otherwise drop a UNIQUE column from) must
not trip over the rows that reference it. The migration checks them itself before it commits.
The PRAGMA only works outside a transaction, hence before `begin_transaction`.
"""

from alembic import context

from bot.db import engine_for
from bot.schema import metadata

config = context.config
engine = engine_for(config.get_main_option("sqlalchemy.url"))
sqlite = engine.dialect.name == "sqlite"

with engine.connect() as connection:
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
