"""The opt-out link of marketing templates: a signed token per recipient and the page it opens.

A broadcast's template carries a URL button ("Unsubscribe") whose dynamic suffix is a token naming
the customer and the broadcast (`token`). The button opens `/webhooks/whatsapp/opt-out/<token>` on
the webhook's own public port and path prefix (`routes`), which asks the customer to confirm and
only then writes OPT_OUT (source `link`). The page's texts are in `texts`, its markup in `page`.
"""
