"""The subscriptions' composition: their database, the engine (consumer, matcher, sender)."""

from __future__ import annotations

from iopcare.gateway.settings import GatewaySettings
from iopcare.gateway.subscriptions.engine import Engine
from iopcare.gateway.subscriptions.settings import SubscriptionSettings
from iopcare.gateway.subscriptions.store import Store
from iopcare.kit import files
from iopcare.kit.settings import Settings


class SubscriptionsUnavailable(RuntimeError):
    """Subscriptions are switched on but the gateway cannot read as their owners."""


def database_url(settings: Settings, config: SubscriptionSettings) -> str:
    if config.database_url:
        return config.database_url
    folder = settings.data_dir / "gateway"
    files.private_dir(folder)
    return f"sqlite:///{folder / 'subscriptions.db'}"


def build(
    settings: Settings, gateway_settings: GatewaySettings, config: SubscriptionSettings
) -> Engine:
    # Notifications are read as their owners with a token the gateway signs (ADR 0027): the
    # gateway must hold the local issuer's key, as its embedded authorization server does.
    if not (settings.dev_mode or settings.token_private_key_file is not None):
        raise SubscriptionsUnavailable(
            "IOPCARE_GATEWAY_SUBSCRIPTIONS_ENABLED needs IOPCARE_TOKEN_PRIVATE_KEY_FILE (the "
            "gateway reads each notification's resource as its subscriber, with a token it signs)"
        )
    base_url = config.public_base_url.rstrip("/") or (
        f"http://{gateway_settings.host}:{gateway_settings.port}{gateway_settings.base_path}"
    )
    return Engine(settings, config, Store(database_url(settings, config)), base_url)
