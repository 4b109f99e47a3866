# Everything a fresh machine needs, from Python 3.11 and make alone.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed

.PHONY: test lint demo clean e2e bench crds

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	@touch $(STAMP)

$(DEMO_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	@touch $(DEMO_STAMP)

# The whole product on loopback: embedded Kubernetes API, stand-in providers, the real operator.
demo: $(DEMO_STAMP)
	$(BIN)/llm-failover demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check operator tests deploy examples bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

# Against the cluster of KUBECONFIG (kind, k3d), with the operator image loaded on its nodes:
# README "Real-cluster tests". Exits 2, saying why, when no cluster answers.
e2e: $(STAMP)
	$(BIN)/python -m pytest -m e2e tests/e2e -v

# Figures, not tests (bench/*.py print numbers): what hostile providers cost the operator, how
# its cost grows with routes (SCALE_ARGS="--routes 100,1000 --cluster embedded --rest 60"),
# how long a standby takes over a pending failover when the leader dies
# (TAKEOVER_ARGS="--runs 3 --cluster embedded"), and what traffic signals and adaptive probes buy:
# time to failover with and without a signal, probes saved (SIGNALS_ARGS="--runs 3 --routes 50";
# its Prometheus variant needs `prometheus` on PATH, as .ci/run installs it), and what
# `llm-failover probe` costs on a 55 MB `kind: List` (PROBE_ARGS="--megabytes 5").
bench: $(STAMP)
	$(BIN)/python bench/hostile.py $(BENCH_ARGS)
	$(BIN)/python bench/scale.py $(SCALE_ARGS)
	$(BIN)/python bench/takeover.py $(TAKEOVER_ARGS)
	$(BIN)/python bench/signals.py $(SIGNALS_ARGS)
	$(BIN)/python bench/probecli.py $(PROBE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check operator tests deploy examples bench
	$(BIN)/ruff format --check operator tests deploy examples bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# crds/llmroutes.yaml is the CRD's one source; the Helm chart and the Python package (for
# `llm-failover demo` after a pip install) carry copies, which tests/test_crd.py checks are equal.
crds:
	cp crds/llmroutes.yaml deploy/helm/llm-failover/crds/llmroutes.yaml
	cp crds/llmroutes.yaml operator/llm_failover/crds/llmroutes.yaml

# The Helm chart as a package, dist/llm-failover-<version>.tgz, with its CRD and files as real
# files (Helm's own `helm package`, through helm-python-sdk: no helm binary needed). Publishing
# it and the image: docs/upgrading.md#building-and-publishing-a-release.
.PHONY: chart
chart: $(STAMP)
	@mkdir -p dist
	$(BIN)/python -c "import helm_python; print(helm_python.package('deploy/helm/llm-failover', destination='dist'))"
