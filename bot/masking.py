"""Phone numbers are personal data: logs at INFO and above only ever show a masked form."""


def mask_phone(wa_id: str | None) -> str:
    """Keep the country-code-ish prefix and the last two digits: '16505551234' -> '165******34'."""
    if not wa_id:
        return "<unknown>"
    if len(wa_id) <= 5:
        return "*" * len(wa_id)
    return wa_id[:3] + "*" * (len(wa_id) - 5) + wa_id[-2:]
