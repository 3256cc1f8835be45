"""Tables of our own. Rasa's SQL tracker store owns a table named `events`: never reuse that name."""

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# One row per inbound wamid: the atomic dedupe record and its processing lease.
inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("wamid", String(255), primary_key=True),
    Column("customer_key", String(32), nullable=False),  # the Rasa sender id of the turn
    Column("state", String(16), nullable=False),  # processing | done
    Column("attempts", Integer, nullable=False, default=1),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)

# Latest delivery status of each message the business sent; only ever moves forward.
message_statuses = Table(
    "message_statuses",
    metadata,
    Column("wamid", String(255), primary_key=True),
    Column("recipient_id", String(32)),
    Column("status", String(16), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("error_code", Integer),
    Column("error_title", Text),
    Column("callback_data", String(512)),
    Column("status_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The customer store. Opt-outs are a legal obligation: migration 0002 adds database triggers so
# that an OPT_OUT tag and the consent history can be neither changed nor deleted (see there).

# A customer is the project's own `key`: Rasa's sender id, unique and never changed (migration 0005
# guards it). Phone numbers, BSUIDs and parent BSUIDs live in customer_identities; the username and
# the profile name are display data, never keys. A customer merged into another keeps its row as a
# tombstone (`merged_into`, one hop to a live customer) so that its key and identities resolve.
# `language`: the language the bot answers the customer in, once detected (actions/language.py).
# `erased_at`: `python -m bot customers forget` anonymised the row (migration 0006, bot/store/erasure.py).
# The seen times track inbound messages only, so they stay NULL for a customer known only from an
# import: nothing may mistake an import for a conversation (e.g. for the 24-hour service window).
customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(32), nullable=False, unique=True),
    Column("name", String(255)),
    Column("username", String(64)),
    Column("first_seen_at", DateTime(timezone=True)),
    Column("last_seen_at", DateTime(timezone=True)),
    Column("merged_into", Integer, ForeignKey("customers.id")),
    CheckConstraint("merged_into IS NULL OR merged_into <> id", name="ck_customers_not_merged_into_self"),
    Column("language", String(8)),
    Column("erased_at", DateTime(timezone=True)),
    # The consent rule's search for a customer's merged family (bot/consent.py, migration 0008).
    Index("ix_customers_merged_into", "merged_into"),
)

# Every identifier WhatsApp gave us for a customer (bot/store/identities.py). A row never moves to
# another customer and is never deleted; it can only go from active to superseded (a changed
# number or BSUID). At most one ACTIVE row per identifier: a superseded phone number may come back
# as somebody else's recycled number.
customer_identities = Table(
    "customer_identities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("kind", String(16), nullable=False),  # phone | bsuid | parent_bsuid
    Column("value", String(160), nullable=False),  # phone: E.164 digits; BSUIDs: as received
    Column("status", String(16), nullable=False),  # active | superseded
    Column("evidence", String(32), nullable=False),  # how we learnt it
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("superseded_at", DateTime(timezone=True)),
    # HMAC of kind:value (bot/store/keyed_hash.py): what bot.consent matches the suppression list on.
    Column("keyed_hash", String(64)),
    CheckConstraint("kind IN ('phone', 'bsuid', 'parent_bsuid')", name="ck_customer_identities_kind"),
    CheckConstraint("status IN ('active', 'superseded')", name="ck_customer_identities_status"),
    Index(
        "uq_customer_identities_active",
        "kind",
        "value",
        unique=True,
        sqlite_where=text("status = 'active'"),
        postgresql_where=text("status = 'active'"),
    ),
    Index("ix_customer_identities_value", "value"),
    Index("ix_customer_identities_customer", "customer_id"),
    Index("ix_customer_identities_keyed_hash", "keyed_hash"),
)

# Append-only: customer `from_customer_id` turned out to be `into_customer_id` (Meta's evidence).
customer_merges = Table(
    "customer_merges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("from_customer_id", Integer, ForeignKey("customers.id"), nullable=False, unique=True),
    Column("into_customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("evidence", String(32), nullable=False),
    Column("message_id", String(255)),
    Column("merged_at", DateTime(timezone=True), nullable=False),
)

# Webhook events acknowledged without processing because their sender had no usable identifier,
# counted per reason (shown by the channel's health check).
unidentified_events = Table(
    "unidentified_events",
    metadata,
    Column("reason", String(64), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
)

# At most one tag of each name per customer; the row keeps when and how it was first added.
tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("source", String(32), nullable=False),
    Column("message_id", String(255)),  # the wamid that caused it
    UniqueConstraint("customer_id", "name", name="uq_tags_customer_name"),
)

# Append-only consent history. One event per customer per message (or, without a message id, per
# kind, source and instant): that is what makes a redelivered webhook add nothing.
consent_events = Table(
    "consent_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("source", String(32), nullable=False),
    Column("message_id", String(255)),
    Column("detail", Text),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    # The identifier the event was captured under (NULL: before migration 0005, or a customer key).
    Column("identifier_kind", String(16)),
    Column("identifier_value", String(160)),
    # Evidence (migration 0006, bot/store/evidence.py): what the customer said or used, when and
    # with which message they asked, in which language, the question they were shown (response,
    # version: a short hash of its rendered text and buttons) and their answer. `message_id` and
    # `occurred_at` above are the answer's: the confirmation.
    Column("language", String(8)),
    Column("words", Text),
    Column("requested_at", DateTime(timezone=True)),
    Column("request_message_id", String(255)),
    Column("question_response", String(128)),
    Column("question_version", String(16)),
    Column("question_text", Text),
    Column("question_buttons", Text),  # JSON list of the button titles shown
    Column("question_message_id", String(255)),
    Column("answer", Text),
    UniqueConstraint("customer_id", "message_id", name="uq_consent_events_customer_message"),
    Index(
        "uq_consent_events_customer_kind_source_time",
        "customer_id",
        "kind",
        "source",
        "occurred_at",
        unique=True,
        sqlite_where=text("message_id IS NULL"),
        postgresql_where=text("message_id IS NULL"),
    ),
)

# A customer asked to stop and has not confirmed yet: while a request is open (resolved_at NULL)
# no marketing reaches them (bot.consent). At most one open request per customer, so a repeated
# "stop" adds nothing; resolved ones stay as evidence. resolution: opted_out (the OPT_OUT tag was
# written, in the same transaction) | kept (they answered "no"). Migration 0004 lets the database
# change a row only from open to resolved, and never delete one.
opt_out_requests = Table(
    "opt_out_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("source", String(32), nullable=False),
    Column("message_id", String(255)),  # the wamid of the request
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolution", String(16)),
    Column("resolution_message_id", String(255)),  # the wamid of the answer
    CheckConstraint(
        "(resolved_at IS NULL AND resolution IS NULL)"
        " OR (resolved_at IS NOT NULL AND resolution IN ('opted_out', 'kept'))",
        name="ck_opt_out_requests_resolution",
    ),
    Index(
        "uq_opt_out_requests_open",
        "customer_id",
        unique=True,
        sqlite_where=text("resolved_at IS NULL"),
        postgresql_where=text("resolved_at IS NULL"),
    ),
)

# --- erasure (`python -m bot customers forget`, bot/store/erasure.py) -----------------------------

# One row per erasure: when, who ran it, how much went; no personal data. `customer_id` is the
# anonymised row the opt-out stays on. Append-only (migration 0006).
erasures = Table(
    "erasures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False, unique=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("customers", Integer, nullable=False),  # rows of the family anonymised
    Column("identifiers", Integer, nullable=False),
    Column("conversation_events", Integer, nullable=False),  # Rasa tracker store rows deleted
    Column("message_records", Integer, nullable=False),  # inbox and status rows deleted
)

# The suppression list: the keyed hash of every identifier of a forgotten customer. bot.consent
# allows no marketing to a customer holding one of them. Append-only (migration 0006).
suppressions = Table(
    "suppressions",
    metadata,
    Column("keyed_hash", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("suppressed_at", DateTime(timezone=True), nullable=False),
    Column("erasure_id", Integer, ForeignKey("erasures.id"), nullable=False),
)

# --- broadcasts (`python -m bot broadcast`, bot/broadcast/) --------------------------------------

# One row per broadcast: what is sent, to whom (described), how fast. `params` is a JSON list of
# the template's body parameters. The audience is selected once, when the row is created, in the
# same transaction as its deliveries; the two counts keep what that selection found.
broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("template", String(512), nullable=False),
    Column("language", String(16), nullable=False),
    Column("params", Text, nullable=False),
    Column("audience", Text, nullable=False),
    Column("rate", Float, nullable=False),
    Column("audience_count", Integer, nullable=False),  # customers in the audience
    Column("excluded_opted_out", Integer, nullable=False),  # of them, left out as opted out
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# One row per customer a broadcast may reach. state: pending -> claimed (a worker's lease:
# `claimed_by`, `claimed_at`; nothing sent yet, taken over once the lease runs out) -> sending (the
# request may have left) -> sent | skipped_opted_out | failed. A row left in `sending` is never
# sent again blindly (bot/broadcast/deliveries.py). `attempts` and `retry_at`: WhatsApp's
# per-customer pair limit (131056) made this delivery wait.
broadcast_deliveries = Table(
    "broadcast_deliveries",
    metadata,
    Column("broadcast_id", String(64), ForeignKey("broadcasts.id"), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("customer_key", String(32), nullable=False),  # the conversation the runner triggers
    Column("state", String(24), nullable=False),
    Column("wamid", String(255)),
    Column("error_code", Integer),
    Column("error_title", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("claimed_by", String(96)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),
    Column("retry_at", DateTime(timezone=True)),
    UniqueConstraint("broadcast_id", "customer_id", name="uq_broadcast_deliveries_customer"),
    Index("ix_broadcast_deliveries_key", "broadcast_id", "customer_key", unique=True),
    Index("ix_broadcast_deliveries_claim", "broadcast_id", "state", "customer_id"),
    Index("ix_broadcast_deliveries_wamid", "wamid"),
)

# One token bucket per business phone number, shared by every broadcast worker on every host
# (bot/broadcast/pacing.py): WhatsApp's throughput limit (130429) is per number. Times are Unix
# seconds as floats, because the bucket is arithmetic on them. `ceiling`: the rate WhatsApp's
# last 130429 pushed every worker down to, since `lowered_at`.
send_rate_buckets = Table(
    "send_rate_buckets",
    metadata,
    Column("phone_number_id", String(64), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("ceiling", Float),
    Column("lowered_at", Float),
)
