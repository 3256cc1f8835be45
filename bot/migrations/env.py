"""Alembic environment: runs migrations online against the configured URL."""

from alembic import context

from bot.db import engine_for
from bot.schema import metadata

config = context.config
engine = engine_for(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
