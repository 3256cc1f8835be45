"""The dashboard and the WhatsApp simulator: a small aiohttp app served on loopback by `python -m bot run`.

- app.py            routes, token check, security headers (thin shells around the modules below)
- auth.py           the admin token -> session cookie exchange
- html.py           escaped-by-default HTML from Python strings
- pages.py          every page, as pure functions from data to HTML
- queries.py        the database reads (SELECT only: the dashboard never writes consent)
- stats.py          opt-outs per day / week / month and the inline SVG chart
- conversation.py   a customer's conversation from Rasa's tracker (HTTP API)
- simulator.py      the simulator's backend: signed webhooks in, the stand-in's messages out
- bubbles.py        what a chat bubble shows for a Cloud API message body
- local_whatsapp.py generated local credentials when `make run` has no WhatsApp ones
- static/           the stylesheet and the simulator's script (no CDN: works offline)
"""
