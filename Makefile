# Developer entry points. Every install step lives in scripts/ (idempotent).
.PHONY: dev test lint stop status bench fuzz migrate run build cluster cluster-stop test-cluster test-deploy observe observe-stop test-observe profile

ROLE ?= all
QUICK ?= 0

## dev: start the local stack, migrate, seed demo coupons, run every role (Ctrl-C stops)
dev:
	@scripts/dev.sh

## test: lint, supply-chain checks (cargo-deny, npm lock files), then the whole test suite
## against real MariaDB, Redis, Kafka and Keycloak, and Schemathesis against the API document
test: lint
	@scripts/supply-chain.sh
	@scripts/test.sh

## lint: formatting check and clippy with warnings as errors
lint:
	@scripts/build-tools.sh
	cargo fmt --all -- --check
	cargo clippy --all-targets --all-features -- -D warnings

## cluster: the production shape on one machine: NGINX with TLS in front of 2 api, 2 ws
## and 2 payment processes, a 3-master Redis Cluster, 3 Kafka brokers, MariaDB
cluster:
	@scripts/cluster.sh up

## cluster-stop: stop what `make cluster` started
cluster-stop:
	@scripts/cluster.sh down

## test-cluster: the fault drills against the cluster (brings it up and down as needed)
test-cluster:
	@scripts/test-cluster.sh

## test-deploy: the Kubernetes manifests rendered, validated (3 newest versions) and
## policy-checked, the Dockerfile linted, every role rehearsed as the manifests start it
test-deploy:
	@scripts/test-deploy.sh

## observe: Prometheus (Debian's) scraping the local roles (make cluster's, or make dev's)
## with the alert rules of deploy/observability/ loaded, on http://127.0.0.1:9090/
observe:
	@scripts/observe.sh up

## observe-stop: stop what `make observe` started
observe-stop:
	@scripts/observe.sh down

## test-observe: alert rule unit tests, and every dashboard query against the roles under load
test-observe:
	@scripts/test-observe.sh

## stop: stop the stack services these scripts started
stop:
	@scripts/stack.sh down

## status: which services answer
status:
	@scripts/stack.sh status

## bench: release build, every scenario with wrk/redis-benchmark, report in bench/results/ (QUICK=1: < 3 min)
bench:
	@QUICK=$(QUICK) scripts/bench.sh

SCENARIO ?= purchase
PROFILE_SECS ?= 10

## profile: CPU profile of the api under one scenario (SCENARIO=purchase|healthz|browse),
## a flame graph and a top-N table in bench/profiles/
profile:
	@SCENARIO=$(SCENARIO) PROFILE_SECS=$(PROFILE_SECS) scripts/profile.sh

FUZZ_SECONDS ?= 60

## fuzz: cargo-fuzz on the request parsers and token handling, FUZZ_SECONDS (60) per target
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

## migrate: apply pending migrations to the configured database
migrate:
	@scripts/build-tools.sh
	cargo run --quiet -- migrate

## run: run one role against the running stack, e.g. make run ROLE=api
run:
	@scripts/build-tools.sh
	cargo run --quiet -- --role $(ROLE)

build:
	@scripts/build-tools.sh
	cargo build --release
