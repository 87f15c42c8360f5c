# pgcourier: the two commands of the README are `make run` and `make test`;
# both install what they need (Debian packages) and build first.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=
BINDIR := $(PREFIX)/bin
DATADIR := $(PREFIX)/share/pgcourier
DOCDIR := $(PREFIX)/share/doc/pgcourier
UNITDIR ?= $(PREFIX)/lib/systemd/system

DEB_PACKAGES := build-essential cmake pkg-config libpqxx-dev libcurl4-openssl-dev libssl-dev \
  libyaml-cpp-dev libsimdjson-dev libspdlog-dev libfmt-dev prometheus-cpp-dev doctest-dev \
  libsystemd-dev libidn2-dev postgresql postgresql-client pgbouncer libfaketime python3 python3-psycopg2 python3-pytest python3-pytest-xdist \
  prometheus systemd clang libclang-rt-14-dev clang-tidy cppcheck nginx-light wrk squid \
  libcivetweb-dev chromium chromium-driver python3-selenium
# For make deb / make test-deb only: dpkg-buildflags, dpkg-shlibdeps, dpkg-deb, lintian.
DEB_PACKAGING := dpkg-dev lintian

SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps build build-asan build-tsan test test-unit test-pg test-e2e test-sanitize test-asan test-tsan test-chaos fuzz lint bench soak run clean install install-files uninstall schema-snapshot deb test-deb

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

# sql/schema.snapshot.sql from a fresh migrate in a throwaway cluster, after a
# deliberate change of sql/schema/ or sql/migrations/ (the e2e test
# test_schema_snapshot.py fails until the file matches; see sql/README.md).
schema-snapshot: build
	BUILD_DIR=$(BUILD_DIR) tools/schema-snapshot write

# Faults and hostile input: kill -9 under load, PostgreSQL restarts, misbehaving
# receivers, hostile producer rows, quarantine, secret leaks (tests/chaos).
test-chaos: build
	BUILD_DIR=$(BUILD_DIR) tests/chaos/run

# The same suites under AddressSanitizer + UndefinedBehaviorSanitizer, and
# under ThreadSanitizer (separate build folders; any report fails the run:
# the unit binaries exit non-zero, and the end-to-end fixtures scan every
# daemon's log).
test-sanitize: test-asan test-tsan

build-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPGCOURIER_SANITIZE=address,undefined >/dev/null
	cmake --build build-asan -j$(JOBS)

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  BUILD_DIR=build-asan tests/run all

build-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DPGCOURIER_SANITIZE=thread >/dev/null
	cmake --build build-tsan -j$(JOBS)

test-tsan: build-tsan
	TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" BUILD_DIR=build-tsan tests/run all

# libFuzzer (clang) over the policy loader, the SSRF checks, the Retry-After
# parser and the secret decoders, FUZZ_SECONDS each (default 60).
FUZZ_SECONDS ?= 60
fuzz: deps
	tests/fuzz/run.sh $(FUZZ_SECONDS)

# Static analysis of the project's own code (daemon/**/*.cpp, tools/ctl/*.cpp, gateway/**/*.cpp, and the
# daemon/ and tools/ headers they include): clang-tidy with the repository's .clang-tidy (every
# warning is an error), LINT_JOBS files at a time, then cppcheck with the build's flags; any
# finding fails. Needs the build for compile_commands.json; the generated migrations file under
# the build folder is not linted. Both tools always run, so one pass shows every finding.
LINT_JOBS ?= $(JOBS)
LINT_SOURCES = $(shell find daemon tools/ctl gateway -name '*.cpp' | sort) bench/receiver.cpp
CLANG_TIDY ?= clang-tidy
CPPCHECK ?= cppcheck

LINT_DEPS ?= build
lint: $(LINT_DEPS)
	@echo "lint: clang-tidy over $(words $(LINT_SOURCES)) files, $(LINT_JOBS) at a time"
	@status=0; \
	printf '%s\n' $(LINT_SOURCES) | xargs -P$(LINT_JOBS) -n1 sh -c \
	  'out=$$($(CLANG_TIDY) -p $(BUILD_DIR) --quiet "$$0" 2>&1); rc=$$?; \
	   out=$$(printf "%s\n" "$$out" | grep -v "^[0-9][0-9]* warnings\{0,1\} generated\.$$"); \
	   [ -z "$$out" ] || printf "%s\n" "$$out"; \
	   [ $$rc -eq 0 ] || echo "lint: clang-tidy failed on $$0"; exit $$rc' || status=1; \
	echo "lint: cppcheck"; \
	$(CPPCHECK) --project=$(BUILD_DIR)/compile_commands.json --file-filter='daemon/*' \
	  --file-filter='tools/ctl/*' --file-filter='gateway/*' --file-filter=bench/receiver.cpp --enable=warning,performance,portability --inline-suppr \
	  --std=c++20 --suppress=missingIncludeSystem --error-exitcode=1 --quiet -j$(LINT_JOBS) || status=1; \
	if [ $$status -eq 0 ]; then echo "lint: no findings"; else echo "lint: FAILED (findings above)"; fi; \
	exit $$status

# The benchmark of issue 6: every scenario against the two limits of this
# machine measured in the same run, the bare SQL delivery cycle (pgbench) and
# the receiver (wrk). SCENARIOS="drain latency" runs some only. See bench/run.
bench: build
	BUILD_DIR=$(BUILD_DIR) bench/run $(SCENARIOS)

# A steady mixed load for SOAK_MINUTES (default 30): RSS, fds, claim-path sizes, lag and throughput
# over time, all expected flat, nothing lost (bench/soak.py; results in bench/soak-results.json).
SOAK_MINUTES ?= 30
soak: build
	BUILD_DIR=$(BUILD_DIR) bench/soak.py --minutes $(SOAK_MINUTES)

# The demo: private PostgreSQL under .run/ unless DATABASE_URL (or PGHOST) is set.
run: build
	BUILD_DIR=$(BUILD_DIR) tools/demo

clean:
	rm -rf $(BUILD_DIR)

SQL_MIGRATIONS = $(wildcard sql/migrations/*.up.sql)

# Binaries, the systemd unit (its paths follow PREFIX), the SQL (the baseline's
# sql/schema/ files, the deltas of sql/migrations/ and the snapshot; the
# binaries embed them, these are for reading), the policies,
# docs, and example configuration, and an empty pgpass (0600) for the unit's
# LoadCredential=. Files under SYSCONFDIR are installed only when absent (never
# overwriting an operator's edits) and removed by uninstall only while they are
# unchanged (pgpass: while empty).
install: build
	@$(MAKE) --no-print-directory install-files

# The files of `make install` from an existing build, without building (the
# Debian package installs from its own build folder this way).
install-files:
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/sql/schema $(DESTDIR)$(DATADIR)/sql/migrations \
	  $(DESTDIR)$(DATADIR)/policies \
	  $(DESTDIR)$(DATADIR)/examples $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/pgcourier
	install -m 0755 $(BUILD_DIR)/pgcourierd $(BUILD_DIR)/pgcourierctl $(DESTDIR)$(BINDIR)/
	# pgcourier-gateway and its unit, when it was built (make build and the Debian package build it).
	[ ! -x $(BUILD_DIR)/pgcourier-gateway ] || install -m 0755 $(BUILD_DIR)/pgcourier-gateway $(DESTDIR)$(BINDIR)/
	[ ! -x $(BUILD_DIR)/pgcourier-gateway ] || { sed -e 's|/usr/local/bin/|$(BINDIR)/|g' \
	  -e 's|/etc/pgcourier/|$(SYSCONFDIR)/pgcourier/|g' -e 's|/usr/local/share/doc/pgcourier/|$(DOCDIR)/|g' \
	  systemd/pgcourier-gateway.service > $(DESTDIR)$(UNITDIR)/pgcourier-gateway.service && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/pgcourier-gateway.service; }
	install -m 0644 sql/schema/*.sql $(DESTDIR)$(DATADIR)/sql/schema/
	$(if $(SQL_MIGRATIONS),install -m 0644 $(SQL_MIGRATIONS) $(DESTDIR)$(DATADIR)/sql/migrations/)
	install -m 0644 sql/schema.snapshot.sql $(DESTDIR)$(DATADIR)/sql/
	install -m 0644 policies/default.yaml policies/local.yaml $(DESTDIR)$(DATADIR)/policies/
	install -m 0644 systemd/pgcourierd.yaml $(DESTDIR)$(DATADIR)/examples/pgcourierd.yaml
	install -m 0644 README.md docs/prometheus-alerts.yaml docs/grafana-dashboard.json $(DESTDIR)$(DOCDIR)/
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/pgcourier/|$(SYSCONFDIR)/pgcourier/|g' \
	  -e 's|/usr/local/share/doc/pgcourier/|$(DOCDIR)/|g' systemd/pgcourierd.service > $(DESTDIR)$(UNITDIR)/pgcourierd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/pgcourierd.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/pgcourier/pgcourierd.yaml ] || \
	  sed -e 's|/etc/pgcourier/|$(SYSCONFDIR)/pgcourier/|g' systemd/pgcourierd.yaml \
	    > $(DESTDIR)$(SYSCONFDIR)/pgcourier/pgcourierd.yaml
	[ -e $(DESTDIR)$(SYSCONFDIR)/pgcourier/policies.yaml ] || \
	  install -m 0644 policies/default.yaml $(DESTDIR)$(SYSCONFDIR)/pgcourier/policies.yaml
	[ -e $(DESTDIR)$(SYSCONFDIR)/pgcourier/pgpass ] || \
	  install -m 0600 /dev/null $(DESTDIR)$(SYSCONFDIR)/pgcourier/pgpass
	@echo "installed under $(DESTDIR)$(PREFIX); create the master key with: pgcourierctl keygen --out $(SYSCONFDIR)/pgcourier/master.key"

# build-deb/pgcourier_<version>_<arch>.deb: its own build with Debian's
# hardening flags, install-files into a staging root under /usr, dpkg-deb
# (packaging/deb/build; README: Debian package).
deb: deps
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(DEB_PACKAGING)"
	packaging/deb/build

# Builds the package, then checks it without installing it: its file list, the
# binaries run from a dpkg -x root, lintian when installed (tests/deb/).
test-deb: deb
	BUILD_DIR=$(BUILD_DIR) tests/deb/run

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pgcourierd $(DESTDIR)$(BINDIR)/pgcourierctl $(DESTDIR)$(UNITDIR)/pgcourierd.service \
	  $(DESTDIR)$(BINDIR)/pgcourier-gateway $(DESTDIR)$(UNITDIR)/pgcourier-gateway.service
	rm -rf $(DESTDIR)$(DATADIR) $(DESTDIR)$(DOCDIR)
	sed -e 's|/etc/pgcourier/|$(SYSCONFDIR)/pgcourier/|g' systemd/pgcourierd.yaml | \
	  cmp -s - $(DESTDIR)$(SYSCONFDIR)/pgcourier/pgcourierd.yaml && \
	  rm -f $(DESTDIR)$(SYSCONFDIR)/pgcourier/pgcourierd.yaml || true
	cmp -s policies/default.yaml $(DESTDIR)$(SYSCONFDIR)/pgcourier/policies.yaml && \
	  rm -f $(DESTDIR)$(SYSCONFDIR)/pgcourier/policies.yaml || true
	[ -s $(DESTDIR)$(SYSCONFDIR)/pgcourier/pgpass ] || rm -f $(DESTDIR)$(SYSCONFDIR)/pgcourier/pgpass
	rmdir $(DESTDIR)$(SYSCONFDIR)/pgcourier 2>/dev/null || true
