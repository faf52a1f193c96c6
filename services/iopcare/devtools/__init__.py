"""Development tooling, not part of any service's runtime: the local Kafka broker (`kafka`;
`kafka_broker` re-exports it), services and the gateway as child processes (`processes`, for
`iopcare up`, the end-to-end tests and the benchmarks) and the gRPC code generator
(`protogen`, `make proto`).

Only `iopcare.cli` (for `iopcare up`) imports it from the runtime packages
(`tests/unit/test_architecture.py`)."""
