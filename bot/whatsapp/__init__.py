"""WhatsApp Cloud API: webhook parsing, signatures, sending, and the Rasa channel that joins them."""
