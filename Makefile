# bulkd: the team's interface. `make` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@latest
# The API description's linter, fetched by npx on first use (a pinned version: a new rule must not fail lint by itself).
REDOCLY ?= @redocly/cli@2.77.0
# Go's default install place, for machines where it is not on PATH yet.
export PATH := $(PATH):/usr/local/go/bin

# Tests (and benchmarks) run against real Postgres and Redis; each test makes its own
# database from this connection. Override on the command line or in the environment.
test test-race test-short chaos bench: export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
test test-race test-short chaos bench: export REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: help run test test-race test-short chaos fuzz lint bench migrate up down build tidy fmt services

help: ## list the targets
	@echo 'usage: make <target>'
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_-]+:.*## / { printf "  %-11s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: ## start Postgres/Redis if needed, build, migrate, print a dev API key and curl lines, serve on :8080
	scripts/dev.sh

services: ## start Postgres and Redis if they do not answer at DATABASE_URL / REDIS_URL
	scripts/services.sh

test-services: # what the tests need: the services, redis-server for the fault tests to kill, chromium and prometheus for the queue UI test
	NEED_REDIS_SERVER=1 NEED_CHROMIUM=1 NEED_PROMETHEUS=1 scripts/services.sh

test: test-services ## the whole suite with the race detector, against real Postgres and Redis
	@race=-race; \
	if [ "$$($(GO) env CGO_ENABLED)" != 1 ] || ! command -v "$$($(GO) env CC)" >/dev/null 2>&1; then \
		echo 'test: no C compiler for the race detector (apt-get install gcc); running without -race'; race=; \
	fi; \
	echo "$(GO) test $$race -count=1 -timeout 15m ./..."; \
	$(GO) test $$race -count=1 -timeout 15m ./...

test-race: test ## same as test

test-short: test-services ## quicker: no race detector, -short
	$(GO) test -short -count=1 -timeout 15m ./...

chaos: test-services ## the slow fault tests: workers killed again and again under load (a few minutes)
	$(GO) test -tags chaos -run '^TestChaos' -count=1 -v -timeout 20m ./cmd/bulkd

FUZZTIME ?= 2m
FUZZPKGS := ./pkg/jsonscan ./pkg/bulk
fuzz: ## run each fuzz target of pkg/jsonscan and pkg/bulk for FUZZTIME (default 2m); crashers land in their testdata/fuzz
	@for pkg in $(FUZZPKGS); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "$$pkg $$target"; $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

lint: ## go vet, gofmt, staticcheck (skipped if it cannot be fetched), no tracked file over 1 MiB outside testdata/, the API description (Redocly)
	@big="$$(git ls-files -z | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > 1048576 && $$2 !~ /(^|\/)testdata\// {print $$2}')"; \
	if [ -n "$$big" ]; then echo "tracked files over 1 MiB (built binaries or data belong elsewhere):"; echo "$$big"; exit 1; fi
	$(GO) vet ./...
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change (run make fmt):"; echo "$$unformatted"; exit 1; fi
	@if $(GO) run $(STATICCHECK) -version >/dev/null 2>&1; then \
		echo "staticcheck ./..."; $(GO) run $(STATICCHECK) ./...; \
	else \
		echo 'lint: staticcheck could not be fetched or built here; skipped'; \
	fi
	@command -v npx >/dev/null || { echo 'lint: the API description is linted with Node (npx): apt-get install nodejs npm'; exit 1; }
	npx --yes $(REDOCLY) lint --config pkg/apidoc/redocly.yaml pkg/apidoc/openapi.yaml

bench: services ## Go benchmarks, then bulkbench's small preset on a spawned bulkd (more: BENCHFLAGS='--preset default')
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) build -o bin/bulkd ./cmd/bulkd
	$(GO) run ./cmd/bulkbench --bulkd bin/bulkd --preset small $(BENCHFLAGS)

build: ## build bin/bulkd
	$(GO) build -o bin/bulkd ./cmd/bulkd

migrate: build ## apply the database migrations (DATABASE_URL)
	scripts/services.sh
	bin/bulkd migrate

up: ## docker compose: postgres, redis, mailpit (UI :8025) and bulkd (:8080)
	docker compose up -d --build

down: ## docker compose: stop and remove the containers (volumes are kept)
	docker compose down

tidy: ## go mod tidy
	$(GO) mod tidy

fmt: ## gofmt every Go file
	gofmt -w .
