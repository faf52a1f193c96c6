"""The FHIR R4 REST gateway: hospital EHRs' way into the IOP's services (issue 5).

It owns no clinical data: every request becomes gRPC calls to careplan, scheduling and notes,
made with the caller's own bearer token so that the services apply their care-team and label
rules to the real caller. See docs/gateway.md.
"""
