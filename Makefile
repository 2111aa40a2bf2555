# Two commands do all the set-up: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PG_URL ?= postgres://postgres@127.0.0.1:5432/coaching
REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: run test test-embedded test-services lint bench load worker system-deps vendor

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

system-deps:
	./scripts/system-deps.sh

## make run: the product on the embedded default (SQLite, eager Celery), demo data seeded once.
run: $(VENV)/.runtime system-deps
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --no-progress
	$(VENV)/bin/uvicorn coaching.asgi:application --host 127.0.0.1 --port 8000  # ASGI: the live event streams (docs/dashboard.md)

## make test: lint, then the whole suite on the embedded default, then on PostgreSQL + Redis with a real worker.
test: $(VENV)/.dev
	./scripts/system-deps.sh --test
	$(MAKE) lint
	$(MAKE) test-embedded
	$(MAKE) test-services

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null
	DEBUG=false SECRET_KEY=check-deploy-$$(date +%s)-a-long-random-enough-secret-value-for-checks ALLOWED_HOSTS=example.com \
		$(PY) manage.py check --deploy --fail-level WARNING

test-embedded: $(VENV)/.dev
	env -u DATABASE_URL -u CELERY_BROKER_URL $(VENV)/bin/pytest -q

test-services: $(VENV)/.dev
	./scripts/services.sh
	DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) $(VENV)/bin/pytest -q -m "not browser"

## make bench: every script in benchmarks/, on PostgreSQL + Redis.
bench: $(VENV)/.dev
	./scripts/services.sh
	@for script in $$(ls benchmarks/*.py | grep -v '/_'); do \
		echo "== $$script"; \
		DATABASE_URL=$(PG_URL) CELERY_BROKER_URL=$(REDIS_URL) $(PY) $$script || exit 1; \
	done

## make load: gunicorn on PostgreSQL + Redis under 32 concurrent clients (bounded; fails on any error).
load: $(VENV)/.dev
	./scripts/services.sh
	$(PY) benchmarks/load.py --clients 32 --seconds 20

## make worker: a Celery worker for running on real services.
worker: $(VENV)/.runtime
	$(VENV)/bin/celery -A coaching worker -l info

## make vendor: refresh static/vendor from the npm registry (the files are committed; users may be offline).
vendor:
	rm -rf node_modules && npm install --no-audit --no-fund --silent
	mkdir -p static/vendor/chart.js
	cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/dist/chart.umd.min.js.map node_modules/chart.js/LICENSE.md static/vendor/chart.js/
