"""The scheduling domain: plain Python, no I/O, no FHIR models, no gRPC."""
