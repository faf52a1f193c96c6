"""Settings of the gateway's subscriptions (prefix `IOPCARE_GATEWAY_SUBSCRIPTIONS_`)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class SubscriptionSettings(BaseSettings):
    """Topic-based Subscriptions (docs/gateway.md, "Subscriptions"; ADR 0027)."""

    model_config = SettingsConfigDict(env_prefix="IOPCARE_GATEWAY_SUBSCRIPTIONS_", extra="ignore")

    #: On: `Subscription` is served and the gateway consumes the services' topics.
    enabled: bool = False
    #: The subscription database. Empty: SQLite at `<data_dir>/gateway/subscriptions.db`;
    #: `postgresql+psycopg://...` for PostgreSQL.
    database_url: str = ""
    #: The FHIR base URL notifications name (`fullUrl`, `focus`). Empty: the gateway's own
    #: `http://host:port/fhir`.
    public_base_url: str = ""
    #: The consumer group (prefixed with IOPCARE_TOPIC_PREFIX like the services').
    consumer_group: str = "iopcare-gateway-subscriptions"
    #: First retry after a failed delivery, doubled after each further failure, up to the max.
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    #: Seconds a receiver may take to answer, unless the Subscription's `backport-timeout` says.
    timeout_seconds: float = 10.0
    #: Failures in a row after which the subscription's status is `error` (deliveries go on).
    error_after_failures: int = 5
    #: How often the matcher and the sender look for work when nothing wakes them.
    poll_seconds: float = 0.5
    #: Deliveries in flight at once (one per subscription at a time).
    delivery_workers: int = 4
    #: Plain http endpoints outside the loopback interface (development only: notifications
    #: can carry patient data).
    allow_http: bool = False
