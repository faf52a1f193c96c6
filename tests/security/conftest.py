"""Attack tests (issue 10): each test plays an attacker (a forged or over-reaching token, an
outside EHR, a clinician off the team, an anonymous Kafka client) against the real services,
gateway and broker, and proves the attack is refused. docs/security.md lists every attack with
the test that covers it.

The fixtures are the integration suite's (a careplan and notes on the database under test, on
the session's real broker)."""

from __future__ import annotations

from tests.integration.conftest import (  # noqa: F401  (fixtures, registered by import)
    careplan,
    notes,
    notes_runtime,
    patient,
    settings,
    stub,
)
