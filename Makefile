# The menu. `make run` starts the bot; `make test` runs every check. Both set up what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
RASA   := $(VENV)/bin/rasa
MODEL  := models/current.tar.gz
TRAINING_FILES := config.yml domain.yml $(shell find data -name '*.yml' 2>/dev/null)

export RASA_PORT    ?= 5005
export ACTIONS_PORT ?= 5055
# Rasa and TensorFlow are chatty and phone home by default.
export RASA_TELEMETRY_ENABLED := false
export TF_CPP_MIN_LOG_LEVEL   := 2

.PHONY: help run test fast lint unit validate story-test train migrate install eval eval-cv eval-dev bench bench-turn \
	bench-status bench-send bench-broadcast-latency bench-publish lock clean publish

help:
	@echo "make run    start the bot: action server + Rasa server with the WhatsApp channel"
	@echo "make test   lint, unit and integration tests, data validation, test stories"
	@echo "make fast   lint + the tests that need no trained model and no server process (under a minute)"
	@echo "make train  (re)train the model when data, config or domain changed"
	@echo "make publish  train, check and evaluate a candidate, then load it into the running bot"
	@echo "            without a restart (PUBLISH_ARGS=\"--rasa-url URL ...\", --rollback, --force)"
	@echo "make eval   opt-out recognition and confirmation answers on the held-out sets (vs the"
	@echo "            keyword baseline) + 5-fold cross-validation; writes results/nlu_eval.json;"
	@echo "            then language detection per language (results/language_eval.json)"
	@echo "make eval-dev  the same on the DEV sets (tuned against); make eval-cv  cross-validation only"
	@echo "make bench  benchmarks (webhook vs REST channel, NLU eval, ...)"
	@echo "make bench-turn    where a Rasa turn's CPU goes (py-spy profile of the opt-out flow)"
	@echo "make bench-status  status webhooks/s and latency at 3x a broadcast's send rate"
	@echo "make bench-send    broadcast workers: messages/s (unlimited, 1 and 2 workers; --rate 80)"
	@echo "make bench-broadcast-latency  inbound webhook latency idle vs during an 80/s broadcast"
	@echo "make bench-publish  webhooks at 6/s through a whole publish, one replica then two"
	@echo "make lock   re-resolve requirements.in into requirements.lock"

# --- setup: each step runs only when its inputs changed ------------------------------------
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || $$(scripts/find-python3.10) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) -m bot db upgrade

$(MODEL): $(TRAINING_FILES) | $(VENV)/.installed
	$(RASA) train --fixed-model-name current --out models
	@touch $@

train: $(MODEL)

# --- the two commands --------------------------------------------------------------------
run: migrate train
	$(PY) -m bot run --model $(MODEL)

test: lint validate unit story-test

# Edit flow -> Publish (docs/conversation-design.md): the bot must be running.
publish: install
	$(PY) -m bot publish $(PUBLISH_ARGS)

# The quick check while editing: no training, no Rasa/PostgreSQL/Redis/Chromium/worker processes
# (tests marked `servers`, see tests/conftest.py) and no long property-based runs (`slow`).
# `make test` stays the whole suite.
fast: lint
	$(VENV)/bin/pytest -m "not servers and not slow" -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

validate: install
	$(RASA) data validate --fail-on-warnings

unit: migrate train
	$(VENV)/bin/pytest

# Test stories replay their own action events, so no action server is needed here; the actions
# themselves are exercised end to end by the pytest suite (tests/test_end_to_end.py).
story-test: train
	$(RASA) test core --model $(MODEL) --stories tests/stories --fail-on-prediction-errors --out results/stories

# --- measurement -------------------------------------------------------------------------
# Held-out sets (frozen, never tuned against): bench/data/opt_out_holdout_v11.yml, _v12.yml and
# bench/data/confirmation_answers_holdout_v11.yml, _v12.yml (the defaults; v13 is kept fresh for
# the next change: bench/data/README.md), plus 5-fold cross-validation;
# then language detection on bench/data/language_holdout.yml (no training: a second or two).
eval: install
	$(PY) -m bench.nlu_eval --cross-validation --json results/nlu_eval.json
	$(PY) -m bench.language_eval --json results/language_eval.json

eval-cv: install
	$(PY) -m bench.nlu_eval --cv-only --json results/nlu_eval_cv.json

# DEV sets: tuned against, so optimistic. The other spent opt-out sets (up to v10) are training data
# now (data/nlu/spent_sets.yml); v5 is the publish gate's. No confirmation set was folded.
eval-dev: install
	$(PY) -m bench.nlu_eval --holdout bench/data/opt_out_holdout_v5.yml \
		--confirmation bench/data/confirmation_answers_dev.yml bench/data/confirmation_answers_holdout.yml \
		$(foreach v,3 4 5 6 7 8 9 10,bench/data/confirmation_answers_holdout_v$(v).yml) --json results/nlu_eval_dev.json
	$(PY) -m bench.language_eval --dev

bench: eval train
	$(PY) -m bench.webhook_vs_rest --model $(MODEL)
	$(PY) -m bench.broadcast
	$(PY) -m bench.broadcast_send --json results/broadcast_send.json
	$(PY) -m bench.load --model $(MODEL)
	$(PY) -m bench.status_webhooks --model $(MODEL)
	$(PY) -m bench.turn_profile --model $(MODEL)

bench-turn: install train
	$(PY) -m bench.turn_profile --model $(MODEL) --json results/turn_profile.json

# SEND_RATE: the broadcast send rate to check against (status webhooks are offered at 3x).
bench-send: migrate
	$(PY) -m bench.broadcast_send --json results/broadcast_send.json

bench-status: install train
	$(PY) -m bench.status_webhooks --model $(MODEL) --send-rate $(or $(SEND_RATE),80) --json results/status_webhooks.json

bench-broadcast-latency: install train
	$(PY) -m bench.broadcast_latency --model $(MODEL) --json results/broadcast_latency.json

# An edited response published with webhooks arriving all the while (docs/benchmarks.md); the
# publishes train from a copy of the project and of the component cache `make train` filled.
bench-publish: install train
	$(PY) -m bench.publish_load --model $(MODEL) --json results/publish_load.json

lock:
	rm -rf /tmp/lock-venv && $$(scripts/find-python3.10) -m venv /tmp/lock-venv
	/tmp/lock-venv/bin/pip install --quiet -r requirements.in
	{ sed -n '1,2p' requirements.lock; /tmp/lock-venv/bin/pip freeze --exclude-editable | sort -f; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf results .pytest_cache .ruff_cache
