"""Topic-based Subscriptions (FHIR Subscriptions R5 Backport IG 1.1.0 on R4); ADR 0027."""
