# The newcomer's commands: `make run` (the whole system on SQLite with a demo patient) and
# `make test` (the whole suite against a real Kafka, SQLite and PostgreSQL).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test unit bench bench-anchor proto proto-release lint typecheck jars keycloak buf clean

# buf (proto lint and breaking-change check): on x86-64 Linux the release binary buf publishes on
# the npm registry (@bufbuild/buf-linux-x64, checked against the digest pinned here: a second, not
# the 2.5 minutes of building it); elsewhere built from the Go module proxy.
BUF_VERSION := v1.75.0
BUF := .cache/bin/buf
BUF_NPM := https://registry.npmjs.org/@bufbuild/buf-linux-x64/-/buf-linux-x64-1.75.0.tgz
BUF_NPM_SHA512 := 606189031d25a4c084eda3168cd38971fa04686fdefa26079d30b8499d0fe5e4b821f7ccaf203d678fdb6f59b5c0d5c0109f004c530464e024ff9c7d544e3b8a

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

jars: $(STAMP)
	$(PY) -c "from iopcare.devtools.kafka_broker import ensure_jars; print(ensure_jars())"

# Keycloak (the external identity provider of tests/integration/test_smart_keycloak.py), from
# Maven Central into .cache/keycloak; the test's fixture downloads it too when it is missing.
keycloak: $(STAMP)
	$(PY) -m iopcare.devtools.keycloak

run: $(STAMP) jars
	IOPCARE_DEV_MODE=true $(VENV)/bin/iopcare up --demo

# Two test workers (pytest-xdist, whole files per worker: a module's stack is set up once). The
# suite waits on brokers, databases and child processes more than it computes, so two workers
# nearly halve its time on two cores. `make test PYTEST_WORKERS=0` runs it in one process.
PYTEST_WORKERS ?= 2

test: $(STAMP) jars keycloak
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

unit: $(STAMP)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

bench: $(STAMP) jars
	$(PY) -m bench.run $(BENCH_ARGS)
	$(PY) -m bench.gateway

# The project and HAPI FHIR JPA (bench/anchor/, built once from Maven Central and cached under
# .cache/hapi-jpa/) one after the other under the same wrk load; prints the ratio table.
bench-anchor: $(STAMP) jars
	bench/anchor/side_by_side.sh

# Regenerates the gRPC code from protos/ (checked in; tests/unit/test_proto_drift.py fails when it
# is stale).
proto: $(STAMP)
	$(PY) -m iopcare.devtools.protogen

$(BUF):
	mkdir -p .cache/bin
	if [ "$$(uname -sm)" = "Linux x86_64" ]; then \
	  curl -sfL --retry 3 -o .cache/buf.tgz $(BUF_NPM) && \
	  echo "$(BUF_NPM_SHA512)  .cache/buf.tgz" | sha512sum -c --quiet && \
	  tar -xzf .cache/buf.tgz -C .cache/bin --strip-components=2 package/bin/buf && \
	  rm .cache/buf.tgz; \
	else \
	  GOBIN=$(abspath .cache/bin) go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION); \
	fi

buf: $(BUF)

# Run when cutting a release: rebuilds protos/released.binpb, the image of the released API that
# `make lint` (buf breaking) and tests/unit/test_api_guidelines.py hold protos/ to. Record the
# release's breaking changes in CHANGELOG.md first; never run it to silence a breaking change.
proto-release: $(BUF)
	$(BUF) build -o protos/released.binpb

lint: $(STAMP) $(BUF)
	$(VENV)/bin/ruff check services tests bench
	$(VENV)/bin/ruff format --check services tests bench
	$(BUF) lint
	$(BUF) breaking --against protos/released.binpb

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf var .pytest_cache
