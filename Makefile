# Developer entry points. Every install step lives in scripts/ (idempotent).
.PHONY: dev test lint stop status bench migrate run build

ROLE ?= all

## dev: start the local stack, migrate, seed demo coupons, run every role (Ctrl-C stops)
dev:
	@scripts/dev.sh

## test: lint, then the whole test suite against real MariaDB, Redis and tansu
test: lint
	@scripts/test.sh

## lint: formatting check and clippy with warnings as errors
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

## stop: stop the stack services these scripts started
stop:
	@scripts/stack.sh down

## status: which services answer
status:
	@scripts/stack.sh status

## bench: benchmark harness (issue #10 fills it in)
bench:
	@echo "make bench: the benchmark harness is not built yet (issue #10)."

## migrate: apply pending migrations to the configured database
migrate:
	cargo run --quiet -- migrate

## run: run one role against the running stack, e.g. make run ROLE=api
run:
	cargo run --quiet -- --role $(ROLE)

build:
	cargo build --release
