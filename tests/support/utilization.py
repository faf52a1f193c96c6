"""Examples of utilization review resources (Coverage, an authorization as ClaimResponse)."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from iopcare.careplan import codes
from iopcare.careplan.domain.utilization import ASAM_LEVEL_SYSTEM, EPISODE_EXTENSION


def coverage_example(patient_id: str) -> dict[str, Any]:
    """Acme Health's GOLD-PPO plan, member id ACME-0042."""
    return {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{patient_id}"},
        "payor": [{"display": "Acme Health"}],
        "subscriberId": "ACME-0042",
        "class": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                            "code": "plan",
                        }
                    ]
                },
                "value": "GOLD-PPO",
                "name": "Gold PPO",
            }
        ],
    }


def authorization_example(
    patient_id: str,
    episode_id: str,
    coverage_id: str,
    start: date,
    end: date,
    sessions: int = 12,
) -> dict[str, Any]:
    """The payer's authorization of `sessions` IOP sessions (ASAM 2.1) of the stay."""
    return {
        "resourceType": "ClaimResponse",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "institutional",
                }
            ]
        },
        "use": "preauthorization",
        "patient": {"reference": f"Patient/{patient_id}"},
        "created": start.isoformat(),
        "insurer": {"display": "Acme Health"},
        "outcome": "complete",
        "extension": [
            {
                "url": EPISODE_EXTENSION,
                "valueReference": {"reference": f"EpisodeOfCare/{episode_id}"},
            }
        ],
        "preAuthRef": f"AUTH-{uuid.uuid4().hex[:6]}",
        "preAuthPeriod": {"start": start.isoformat(), "end": end.isoformat()},
        "addItem": [
            {
                "productOrService": {
                    "coding": [
                        {"system": codes.LEVEL_SYSTEM, "code": "iop"},
                        {"system": ASAM_LEVEL_SYSTEM, "code": "2.1"},
                    ],
                    "text": "Intensive outpatient program (ASAM 2.1)",
                },
                "adjudication": [
                    {
                        "category": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                    "code": "eligible",
                                }
                            ]
                        },
                        "value": sessions,
                    }
                ],
            }
        ],
        "insurance": [
            {"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{coverage_id}"}}
        ],
    }
