"""Broadcasts of a marketing template that never reach an opted-out customer.

`python -m bot broadcast` selects the audience in SQL (opted-out customers, and those who asked to
stop and have not confirmed, left out by `bot.consent.marketing_allowed_clause`) and writes one pending delivery per customer, then asks
Rasa to run `action_send_broadcast` in each customer's conversation (trigger_intent). The action
claims the delivery at most once, asks `bot.consent.may_send_marketing` at that moment, and sends.

- audience.py    who is in the audience: CSV, tag or everyone; counting and materialising in SQL
- deliveries.py  the broadcasts and broadcast_deliveries rows: create, claim, outcomes
- template.py    the Cloud API template body with the "Stop promotions" payload
- rate.py        the token bucket that keeps the command under WhatsApp's throughput limit
- runner.py      the command's send loop: paced, concurrent trigger_intent calls, progress
- report.py      where a broadcast stands, with delivery statuses from the webhooks
"""
