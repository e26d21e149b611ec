# Dataforce Webhooks. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# System packages the tests and `make dev` need (Debian names).
DEBIAN_PACKAGES := redis-server openssl

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install missing system packages (redis-server, openssl) with apt-get
	@missing=(); \
	command -v redis-server >/dev/null || missing+=(redis-server); \
	command -v openssl >/dev/null || missing+=(openssl); \
	if (( $${#missing[@]} )); then \
	  sudo=; [[ $$(id -u) == 0 ]] || sudo=sudo; \
	  echo "installing $${missing[*]}"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq "$${missing[@]}" >/dev/null; \
	fi

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

.PHONY: install
install: deps node_modules/.package-lock.json ## Install system packages and npm packages (brings Node 24)

.PHONY: control-plane
control-plane: ## Build (once, cached) kube-apiserver, etcd and kubectl for the tests
	@bash test/env/build-control-plane.sh >/dev/null

.PHONY: helm
helm: ## Build (once, cached) the helm CLI from its Go module for the chart tests (HELM_BIN overrides)
	@bash test/env/build-helm.sh >/dev/null

.PHONY: test
test: install control-plane helm ## Type check, lint, and run unit, integration and e2e tests
	npm test

.PHONY: test-unit
test-unit: node_modules/.package-lock.json ## Unit tests only (seconds)
	npx vitest run --project unit

.PHONY: lint
lint: node_modules/.package-lock.json ## Type check and lint
	npm run typecheck && npm run lint

.PHONY: format
format: node_modules/.package-lock.json ## Format and apply safe lint fixes
	npm run format

.PHONY: crds
crds: node_modules/.package-lock.json ## Regenerate crds/ (and the chart's copies) from the zod schemas in operator/api
	npm run crds
	@# The chart ships copies, not symlinks: `helm package`, Argo CD and Windows checkouts
	@# all handle plain files alike. test/chart/chart-files.test.ts fails when they differ.
	cp crds/webhooks.dataforce.io_webhook*.yaml charts/dataforce-webhooks/crds/
	cp crds/webhooks.dataforce.io_destination-policy.yaml charts/dataforce-webhooks/files/destination-policy.yaml

.PHONY: build
build: node_modules/.package-lock.json ## Compile TypeScript to dist/
	npm run build
