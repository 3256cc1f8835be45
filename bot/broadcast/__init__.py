"""Broadcasts of a marketing template that never reach an opted-out customer.

`python -m bot broadcast` selects the audience in SQL (opted-out customers, and those who asked to
stop and have not confirmed, left out by `bot.consent.marketing_allowed_clause`) and writes one
pending delivery per customer, then starts worker processes that send without a Rasa turn per
customer: each claims deliveries in batches, asks `bot.consent` at that moment and sends. A
single send (`action_send_broadcast`, Rasa's trigger_intent for one customer) takes the same steps.

- audience.py    who is in the audience: CSV, tag or everyone; counting and materialising in SQL
- deliveries.py  the broadcasts and broadcast_deliveries rows: create, claim, outcomes, takeover
- states.py      the delivery states and the one table of the moves between them
- sending.py     the per-customer decision every send path shares: consent, message, outcome
- worker.py      the workers' loop: paced batches, one HTTP session, shared rate
- rate.py        the token bucket per business number, shared by every worker in the database
- template.py    the Cloud API template body with the "Stop promotions" payload and opt-out link
- report.py      where a broadcast stands, with delivery statuses from the webhooks

A reply to a broadcast (quoting its template's wamid) reaches Rasa with the broadcast's id in the
message metadata and the slot `broadcast_id` (bot.contract names both, and the entity of the
single send's EXTERNAL_send_broadcast).
"""
