# pgcourier: the two commands of the README are `make run` and `make test`;
# both install what they need (Debian packages) and build first.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local

DEB_PACKAGES := build-essential cmake pkg-config libpqxx-dev libcurl4-openssl-dev libssl-dev \
  libyaml-cpp-dev libsimdjson-dev libspdlog-dev libfmt-dev prometheus-cpp-dev doctest-dev \
  libsystemd-dev postgresql postgresql-client python3 python3-psycopg2 python3-pytest

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps build test test-unit test-pg test-e2e run clean

all: build

# Idempotent: apt-get runs only when a package is missing.
deps:
	@if ! dpkg-query -W -f='$${Status}\n' $(DEB_PACKAGES) 2>/dev/null | grep -qv '^install ok installed$$' \
	    && [ "$$(dpkg-query -W -f='$${Status}\n' $(DEB_PACKAGES) 2>/dev/null | wc -l)" -eq "$(words $(DEB_PACKAGES))" ]; then \
	  echo "deps: all $(words $(DEB_PACKAGES)) Debian packages present"; \
	else \
	  echo "deps: installing Debian packages"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES); \
	fi

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

# Every suite against a throwaway PostgreSQL cluster started by tests/run.
test: build
	BUILD_DIR=$(BUILD_DIR) tests/run all

test-unit: build
	BUILD_DIR=$(BUILD_DIR) tests/run unit

test-pg: build
	BUILD_DIR=$(BUILD_DIR) tests/run pg

test-e2e: build
	BUILD_DIR=$(BUILD_DIR) tests/run e2e

# The demo: private PostgreSQL under .run/ unless DATABASE_URL (or PGHOST) is set.
run: build
	BUILD_DIR=$(BUILD_DIR) tools/demo

clean:
	rm -rf $(BUILD_DIR)
