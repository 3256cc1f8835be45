"""The customer's language (issue 13): which one a message is written in, and which ones we answer in.

The bot answers in the seven languages its NLU understands; `hi` is Hindi, which customers mostly
write in Latin script ("Hinglish": "mujhe messages mat bhejo"). The language the bot answers a
customer in is the Rasa slot `language` (domain.yml); its initial value is the business's default.
"""

SUPPORTED = ("en", "es", "pt", "fr", "de", "id", "hi")
