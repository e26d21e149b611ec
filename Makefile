# Dataforce Webhooks. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# System packages the tests and `make dev` need (Debian names). The tests run the chart's alerts
# with promtool (from `prometheus`), its Argo CD health check with a real Lua 5.1 (`lua5.1`), and
# the event log console in a real browser (`chromium`, driven by playwright-core), and build and
# run the image with `podman` on `runc` from a local base made with `debootstrap` (test/image/),
# and run a real PostgreSQL 15 for the durable log store (`postgresql-15`: initdb, postgres), and
# install the chart on a real node: `containerd`, the CNI plugins, `gcc` for the pause image
# (test/node/).
DEBIAN_PACKAGES := redis-server openssl prometheus lua5.1 chromium podman runc debootstrap postgresql-15 containerd containernetworking-plugins gcc libc6-dev

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install missing system packages (redis-server, openssl, promtool, lua5.1, chromium, podman, runc, debootstrap, postgresql-15, containerd, CNI plugins, gcc) with apt-get
	@missing=(); \
	command -v redis-server >/dev/null || missing+=(redis-server); \
	command -v openssl >/dev/null || missing+=(openssl); \
	command -v promtool >/dev/null || missing+=(prometheus); \
	command -v lua5.1 >/dev/null || missing+=(lua5.1); \
	[[ -x /usr/bin/chromium ]] || missing+=(chromium); \
	command -v podman >/dev/null || missing+=(podman); \
	command -v runc >/dev/null || missing+=(runc); \
	command -v debootstrap >/dev/null || missing+=(debootstrap); \
	command -v initdb >/dev/null || [[ -x /usr/lib/postgresql/15/bin/initdb ]] || missing+=(postgresql-15); \
	command -v containerd >/dev/null || missing+=(containerd); \
	[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins); \
	command -v gcc >/dev/null || missing+=(gcc); \
	[[ -e /usr/lib/x86_64-linux-gnu/libc.a || -e /usr/lib/aarch64-linux-gnu/libc.a ]] || missing+=(libc6-dev); \
	if (( $${#missing[@]} )); then \
	  sudo=; [[ $$(id -u) == 0 ]] || sudo=sudo; \
	  echo "installing $${missing[*]}"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends "$${missing[@]}" >/dev/null; \
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

.PHONY: kstatus
kstatus: ## Build (once, cached) test/kstatus: Flux's kstatus verdicts for objects (KSTATUS_BIN overrides)
	@bash test/env/build-kstatus.sh >/dev/null

.PHONY: node
node: ## Build (once, cached) kubelet, kube-proxy, CoreDNS, the pause image and the Redis image for the node test (test/node/)
	@bash test/node/build-node.sh >/dev/null
	@bash test/node/build-coredns.sh >/dev/null
	@bash test/node/build-pause.sh >/dev/null
	@bash test/node/build-redis-image.sh >/dev/null

.PHONY: dev
dev: install ## Run everything locally (control plane, Redis, operator, dispatcher, demo receiver); Ctrl-C stops
	@# With KUBECONFIG and REDIS_URL set, runs the operator and dispatcher against those instead.
	@if [[ -z "$$KUBECONFIG" || -z "$$REDIS_URL" ]]; then $(MAKE) --no-print-directory control-plane; fi
	npm run dev

.PHONY: image-podman
image-podman: ## Build the image with podman, no Docker, no registry: local base (cached), then the Dockerfile (test/image/)
	@bash test/image/build-image.sh >/dev/null

.PHONY: test
test: install control-plane helm kstatus image-podman node ## Type check, lint, and run unit, integration and e2e tests
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
build: node_modules/.package-lock.json ## Bundle each process into dist/ (as the image runs them)
	npm run build

# =============================================================================
# kind workflow (needs Docker; not runnable in CI here)
#   make kind-up image kind-load kind-install kind-smoke    then    make kind-down
# Needs docker, kind and kubectl on PATH; helm is built by `make helm` (or HELM_BIN).
# =============================================================================
KIND ?= kind
KIND_CLUSTER ?= dataforce-webhooks
KIND_CONTEXT := kind-$(KIND_CLUSTER)
KIND_NAMESPACE ?= dataforce-system
IMAGE ?= dataforce-webhooks:dev
KIND_KUBECTL = kubectl --context $(KIND_CONTEXT)

.PHONY: kind-up
kind-up: ## Create the kind cluster (once)
	@$(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || $(KIND) create cluster --name $(KIND_CLUSTER) --wait 120s

.PHONY: image
image: ## docker build the image (both entrypoints) as $(IMAGE)
	docker build -t $(IMAGE) \
	  --build-arg VERSION=$$(node -p 'require("./package.json").version') \
	  --build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
	  --build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
	  --build-arg SOURCE=$$(git remote get-url origin 2>/dev/null || true) .

.PHONY: kind-load
kind-load: ## Load $(IMAGE) into the kind cluster's nodes
	$(KIND) load docker-image $(IMAGE) --name $(KIND_CLUSTER)

.PHONY: kind-install
kind-install: helm ## helm upgrade --install the chart (embedded Redis) and the demo receiver
	$$(bash test/env/build-helm.sh) upgrade --install dfw charts/dataforce-webhooks \
	  --kube-context $(KIND_CONTEXT) --namespace $(KIND_NAMESPACE) --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  --set image.pullPolicy=Never --set redis.embedded.enabled=true \
	  --set 'dispatcher.allowedDestinations={10.96.0.0/12}' --wait --timeout 5m
	@# right after a first install the API server refuses Webhooks until the new admission policy
	@# resolves its parameter kind (up to ~30 s: README, failure modes): apply again until admitted
	@for i in $$(seq 30); do \
	  sed 's|image: dataforce-webhooks:dev|image: $(IMAGE)|' test/kind/demo.yaml | $(KIND_KUBECTL) apply -f - && exit 0; \
	  echo "kind-install: not admitted yet, again in 2 s" >&2; sleep 2; done; exit 1
	$(KIND_KUBECTL) -n demo rollout status deploy/demo-receiver --timeout 2m

# Runs inside a dispatcher pod (its node, its port): no port-forward, no curl needed. Arguments:
# (after --: a token may start with "-") the namespace's own ingest token (Secret webhook-ingest-token,
# generated by the operator), the namespace.
KIND_SMOKE_JS = const [token, namespace] = process.argv.slice(1); \
  fetch("http://127.0.0.1:" + process.env.DISPATCHER_PORT + "/v1/events", { method: "POST", \
    headers: { authorization: "Bearer " + token, "content-type": "application/json" }, \
    body: JSON.stringify({ type: "job.created", namespace, id: "smoke-" + Date.now(), data: { jobId: "J-1" } }) }) \
  .then(async (r) => { console.log(r.status, await r.text()); process.exit(r.ok ? 0 : 1); });

.PHONY: kind-smoke
kind-smoke: ## Publish a job.created event to namespace demo and wait for a SENT WebhookEvent
	@for i in $$(seq 30); do $(KIND_KUBECTL) -n demo get secret webhook-ingest-token >/dev/null 2>&1 && break; sleep 2; done
	TOKEN=$$($(KIND_KUBECTL) -n demo get secret webhook-ingest-token -o jsonpath='{.data.token}' | base64 -d) && \
	  $(KIND_KUBECTL) -n $(KIND_NAMESPACE) exec deploy/dfw-dataforce-webhooks-dispatcher -- node -e '$(KIND_SMOKE_JS)' -- "$$TOKEN" demo
	@for i in $$(seq 60); do \
	  if $(KIND_KUBECTL) -n demo get webhookevents -l webhooks.dataforce.io/phase=SENT -o name | grep -q .; then \
	    $(KIND_KUBECTL) -n demo get webhookevents; echo "kind-smoke: delivered"; exit 0; fi; \
	  sleep 2; done; \
	$(KIND_KUBECTL) -n demo get webhookevents -o wide; $(KIND_KUBECTL) -n demo logs deploy/demo-receiver --tail 20; \
	echo "kind-smoke: no SENT WebhookEvent after 120 s" >&2; exit 1

.PHONY: kind-down
kind-down: ## Delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
