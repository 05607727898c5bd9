# The README's commands. `make demo` sets up and serves the portal on the embedded defaults (SQLite, Celery
# eager, demo data); `make test` runs the whole test suite. Both create the virtualenv when it is missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
SIMULATOR_PORT ?= 8100
# The portal's own address: its demo webhook receiver (/demo/webhook-receiver/) is the one private address the
# webhook guard lets destinations point at.
WEBHOOK_HOSTS := $(HOST):$(PORT),localhost:$(PORT)

.PHONY: install demo demo-setup serve test lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo-setup: install
	DEBUG=1 $(BIN)/python manage.py migrate --no-input
	DEBUG=1 WEBHOOK_ALLOWED_HOSTS=$(WEBHOOK_HOSTS) $(BIN)/python manage.py seed_demo $(if $(DEMO_PASSWORD),--password $(DEMO_PASSWORD))

# The OEM simulator (every OEM cloud, seeded with the demo fleet) and the integration schedule (discovery,
# telemetry, offline sweep; what celery beat runs in production) run in the background until runserver stops.
serve: install
	@echo "Texture Portal: open http://$(HOST):$(PORT)/admin/ and log in with the user printed above."
	@DEBUG=1 $(BIN)/python manage.py run_oem_simulator --port $(SIMULATOR_PORT) & sim=$$!; \
	DEBUG=1 WEBHOOK_ALLOWED_HOSTS=$(WEBHOOK_HOSTS) OEM_SIMULATOR_URL=http://127.0.0.1:$(SIMULATOR_PORT) $(BIN)/python manage.py run_integration_schedule --wait-for http://127.0.0.1:$(SIMULATOR_PORT)/_sim/stats & jobs=$$!; \
	trap 'kill $$sim $$jobs 2>/dev/null' EXIT INT TERM; \
	DEBUG=1 WEBHOOK_ALLOWED_HOSTS=$(WEBHOOK_HOSTS) OEM_SIMULATOR_URL=http://127.0.0.1:$(SIMULATOR_PORT) $(BIN)/python manage.py runserver $(HOST):$(PORT)

demo: demo-setup serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
