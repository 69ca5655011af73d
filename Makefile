# Everything a newcomer needs: `make demo` runs previewbot on the bundled example, `make test` runs
# every check CI runs. Both set up the virtualenv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-cluster lint check-workflows pytest bench bench-short schema rbac lock clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

EXAMPLE ?= hello

demo: $(STAMP)
	$(BIN)/previewbot plan examples/$(EXAMPLE)

test: lint check-workflows pytest bench-short

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

check-workflows: $(STAMP)
	$(BIN)/zizmor --no-progress action.yml .github/workflows/*.yml examples/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml examples/workflows/*.yml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-actions action.yml

# The cluster tests again, on the real cluster of REAL_KUBECONFIG (an admin's): .ci/run starts one.
# These files' tests are written for a cluster that other tests share (unique names, their own clean-up).
CLUSTER_TESTS := tests/test_cluster_adapter.py tests/test_e2e_tests.py tests/test_lifecycle.py \
	tests/test_rbac.py tests/test_refusals.py tests/test_chart.py \
	tests/test_gc.py tests/test_cap.py tests/test_keep_wake.py tests/test_races.py
test-cluster: $(STAMP)
	test -n "$(REAL_KUBECONFIG)" || { echo "make test-cluster REAL_KUBECONFIG=path/to/admin/kubeconfig"; exit 2; }
	# One test at a time: a close or a sweep acts on every preview of its PR or repo, and the cluster is shared.
	PREVIEWBOT_TEST_KUBECONFIG="$(REAL_KUBECONFIG)" $(BIN)/pytest -m cluster -p no:xdist $(CLUSTER_TESTS)

pytest: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

# previewbot side by side with the kubectl steps (a table, and JSON under .bench/), then its own parts.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.compare
	$(BIN)/pytest benchmarks --benchmark-only -p no:xdist

# One small round, so that CI keeps the benchmark working; it never fails on a time.
bench-short: $(STAMP)
	$(BIN)/python -m benchmarks.compare --short

schema: $(STAMP)
	$(BIN)/previewbot schema > previewbot/schema/preview.schema.json

rbac: $(STAMP)
	$(BIN)/previewbot rbac > rbac/previewbot.yaml

# The Action installs from these, every package pinned by hash: regenerate them after changing the
# dependencies in pyproject.toml or the uv version in requirements/uv.in.
lock: $(STAMP)
	$(BIN)/uv pip compile --no-config --quiet --universal --python-version 3.11 --generate-hashes pyproject.toml -o requirements/action.txt
	$(BIN)/uv pip compile --no-config --quiet --universal --python-version 3.11 --generate-hashes requirements/uv.in -o requirements/uv.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
