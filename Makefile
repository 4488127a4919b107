# Entry points. Every target sets up what it needs itself.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

venv: ## create .venv with the package and its dev tools (from requirements-dev.lock)
	bash hack/venv.sh

lock: ## regenerate requirements.lock and requirements-dev.lock (hashes) from pyproject.toml
	bash hack/lock.sh

tools: ## build etcd, Kubernetes, kubectl and helm once into ~/.cache/jobchain
	bash hack/build-tools.sh

cluster-up: ## start the local single-node Kubernetes (Linux, root); idempotent
	bash hack/cluster-up.sh

cluster-down: ## stop it and remove everything it made
	bash hack/cluster-down.sh

kind-up: ## for machines with Docker: a kind cluster instead (not exercised by CI)
	bash hack/kind-up.sh

demo: ## local cluster + operator via Helm + an example workflow shown live
	bash hack/demo.sh

test: ## everything: lint, unit tier, local cluster, end-to-end tier
	bash hack/test.sh

.PHONY: help venv lock tools cluster-up cluster-down kind-up demo test
