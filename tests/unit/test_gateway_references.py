"""Which references name this server's resources (gateway resources/base.py)."""

from __future__ import annotations

from iopcare.gateway.resources.base import local_reference, reference_id

BASE = "https://iop.example.org/fhir"


def test_an_absolute_url_is_never_read_as_ours() -> None:
    assert reference_id("Patient/1", "Patient") == "1"
    assert reference_id("Patient/1/_history/2", "Patient") == "1"
    assert reference_id("https://other.example/fhir/Patient/1", "Patient") == ""
    assert reference_id(f"{BASE}/Patient/1", "Patient") == ""  # local_reference first


def test_only_our_own_base_makes_an_absolute_url_local() -> None:
    assert local_reference("Patient/1", BASE) == "Patient/1"
    assert local_reference(f"{BASE}/Patient/1", BASE) == "Patient/1"
    assert local_reference(f"{BASE}/Patient/1", BASE + "/") == "Patient/1"
    assert local_reference("https://other.example/fhir/Patient/1", BASE) is None
    assert local_reference("https://iop.example.org/fhir2/Patient/1", BASE) is None
    assert local_reference("https://iop.example.org.evil/fhir/Patient/1", BASE) is None
    assert local_reference(f"{BASE}/Patient/1", "") is None
