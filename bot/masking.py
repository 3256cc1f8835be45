"""Phone numbers are personal data: logs at INFO and above only ever show a masked form.

So are WhatsApp message ids: a wamid is base64 that spells out the customer's number
('wamid.HBgLMTY1MDU1NTEyMzQV...' holds '16505551234').
"""


def mask_phone(wa_id: str | None) -> str:
    """Keep the country-code-ish prefix and the last two digits: '16505551234' -> '165******34'."""
    if not wa_id:
        return "<unknown>"
    if len(wa_id) <= 5:
        return "*" * len(wa_id)
    return wa_id[:3] + "*" * (len(wa_id) - 5) + wa_id[-2:]


def mask_identifier(value: str | None) -> str:
    """A phone number as `mask_phone`; a BSUID keeps its country prefix (and `ENT.`) and its last
    two characters: 'DE.7730551842193' -> 'DE.***********93'. A customer key is no personal data."""
    if not value:
        return "<unknown>"
    if value.startswith("c_"):
        return value
    if "." in value:
        prefix, _, rest = value.rpartition(".")
        if len(rest) <= 4:
            return f"{prefix}.{'*' * len(rest)}"
        return f"{prefix}.{'*' * (len(rest) - 2)}{rest[-2:]}"
    return mask_phone(value)


def mask_message_id(message_id: str | None) -> str:
    """Keep only the last 8 characters (the message's own random part, never the number's), enough
    to find it in the database: 'wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQ3QUY...QzRDAA==' -> 'wamid…QzRDAA=='."""
    if not message_id:
        return "<unknown>"
    if len(message_id) <= 16:
        return "*" * len(message_id)
    return "wamid…" + message_id[-8:]
