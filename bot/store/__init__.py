"""The customer store: customers, their tags and their consent history.

`customers` (profiles and sightings), `tags` (opt-outs and other tags, consent history),
`customer_import` (CSV import) and `phone_numbers`. Every function takes a Connection inside the
caller's transaction (`bot.db.transaction()`); async callers wrap it in `bot.db.run_sync`.
"Never remove an opt-out" and "may we send marketing?" live in `bot.consent` and the database.
"""
