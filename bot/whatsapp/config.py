"""Connector settings: credentials.yml first, the environment wins. Secrets never live in the repo."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import PROJECT_ROOT
from bot.settings import from_env
from bot.whatsapp.cloud_api import DEFAULT_API_URL


@dataclass(frozen=True)
class WhatsAppConfig:
    verify_token: str = ""
    app_secret: str = ""
    access_token: str = ""
    phone_number_id: str = ""
    api_url: str = DEFAULT_API_URL
    allow_unsigned: bool = False  # local development only: accept POSTs without a signature
    quick_replies_path: Path = PROJECT_ROOT / "quick_replies.yml"
    domain_path: Path = PROJECT_ROOT / "domain.yml"  # its buttons' payloads: the only ids a tap may carry

    @classmethod
    def load(
        cls, credentials: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None
    ) -> WhatsAppConfig:
        settings = from_env(environ)
        values = {key: value for key, value in (credentials or {}).items() if value not in (None, "")}
        # The environment (WHATSAPP_*, bot.settings) wins over credentials.yml.
        from_environment = {
            "verify_token": settings.whatsapp_verify_token,
            "app_secret": settings.whatsapp_app_secret,
            "access_token": settings.whatsapp_access_token,
            "phone_number_id": settings.whatsapp_phone_number_id,
            "api_url": settings.whatsapp_api_url,
            "allow_unsigned": settings.whatsapp_allow_unsigned,
        }
        values.update({key: value for key, value in from_environment.items() if value not in (None, "")})
        if "allow_unsigned" in values:
            values["allow_unsigned"] = str(values["allow_unsigned"]).lower() in {"1", "true", "yes"}
        if "quick_replies" in values:
            values["quick_replies_path"] = PROJECT_ROOT / str(values.pop("quick_replies"))
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown WhatsApp channel settings: {', '.join(sorted(unknown))}")
        return cls(**{k: (str(v) if isinstance(v, int) else v) for k, v in values.items()})

    @property
    def can_send(self) -> bool:
        return bool(self.access_token and self.phone_number_id)

    def warnings(self) -> list[str]:
        """What is missing, said at start so that a newcomer knows which variables to set."""
        notes = []
        if not self.verify_token:
            notes.append("WHATSAPP_VERIFY_TOKEN is not set: Meta's webhook handshake will be refused")
        if not self.app_secret and self.allow_unsigned:
            notes.append(
                "WHATSAPP_ALLOW_UNSIGNED is on: webhooks are accepted WITHOUT a signature check. "
                "Local development only!"
            )
        elif not self.app_secret:
            notes.append("WHATSAPP_APP_SECRET is not set: every webhook POST will be refused")
        if not self.phone_number_id:
            notes.append(
                "WHATSAPP_PHONE_NUMBER_ID is not set: every webhook POST will be refused (503, so WhatsApp"
                " retries), since none can be told apart from another business number's"
            )
        if not self.can_send:
            notes.append(
                "WHATSAPP_ACCESS_TOKEN and WHATSAPP_PHONE_NUMBER_ID are not set: replies cannot be sent"
            )
        return notes
