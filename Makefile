# ngx_http_siteflow_module
#
#   make deps       install the Debian packages needed to build and test
#   make build      build t/build/ngx_http_siteflow_module.so against
#                   Debian's nginx-dev tree (or NGINX_SRC=/path/to/nginx)
#   make test       build, then C unit tests + runner self-test + t/*.t,
#                   then t/100, t/110, t/120 and t/121 again on the PostgreSQL
#                   queue (make prove-pg; Debian's postgresql package)
#   make test-real TEST_NGINX_LIB=/path/to/test-nginx/lib
#                   build, then t/*.t under OpenResty's Test::Nginx
#                   (a checkout of openresty/test-nginx, never copied here)
#   make check      deps, test, deb (lintian), a short fuzz run, asan and
#                   valgrind (what CI runs)
#   make demo       deps + build + the local demo (t/demo/run.sh);
#                   KEEP=1 leaves it running and prints how to stop it
#   make asan       the whole suite against an nginx + module built with
#                   AddressSanitizer/UBSan (-DNGX_DEBUG_PALLOC=1)
#   make valgrind   the whole suite with nginx under valgrind memcheck
#   make fuzz       libFuzzer harnesses, FUZZ_SECONDS each (default 20)
#   make bench      benchmarks under t/bench/ (wrk, callgrind)
#   make torture    the delivery engine's torture test: ROUNDS rounds
#                   (default 20) of traffic under random crashes, reloads,
#                   upstream faults and a full disk; SEED=N replays
#                   (make check runs make torture-short: 2 rounds of 15 s,
#                   and 1 of the two-edge PostgreSQL mode; TORTURE_QUEUE=
#                   postgresql make torture runs that mode)
#   make style      nginx style checks (t/tools/style.sh)
#   make dashboard-png
#                   docs/img/dashboard.png: the Grafana dashboard drawn
#                   from the demo's metrics (t/tools/dashboard-png.sh,
#                   about 5 minutes; the demo's ports must be free)
#   make deb        t/build-deb/libnginx-mod-http-siteflow_<version>_<arch>.deb
#                   (debhelper + dh_nginx, packaging in t/tools/debian/),
#                   checked with lintian

NGINX_SRC    ?= /usr/share/nginx/src
BUILD        ?= t/build
ASAN_BUILD   ?= t/build-asan
NGINX_BIN    ?= /usr/sbin/nginx
PROVE        ?= prove
TESTS        ?= t/*.t
FUZZ_SECONDS ?= 20
ROUNDS       ?= 20

export NGINX_SRC

DEB_PACKAGES = make gcc nginx nginx-dev libjansson-dev libcurl4-openssl-dev \
    libssl-dev libpcre2-dev zlib1g-dev curl openssl perl ssl-cert \
    libtest-base-perl libtext-diff-perl libtest-longstring-perl \
    liblist-moreutils-perl libhttp-message-perl liburi-perl \
    libcmocka-dev clang libclang-rt-14-dev valgrind wrk jq \
    chromium nodejs prometheus debhelper dpkg-dev lintian postgresql libpq-dev

SHELL = /bin/bash
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

TEST_ENV = TEST_NGINX_BINARY=$(NGINX_BIN) \
    TEST_NGINX_LOAD_MODULES=$(CURDIR)/$(BUILD)/ngx_http_siteflow_module.so \
    SITEFLOW_TEST_STRICT=1

ASAN_OPTS = detect_leaks=0:detect_odr_violation=0:abort_on_error=0:log_path=$(CURDIR)/$(ASAN_BUILD)/asan

.PHONY: all deps build test test-real check demo asan valgrind fuzz bench \
        style unit runner-selftest mock-selftest prove prove-pg clean deb torture \
        torture-short dashboard-png

all: build

deps:
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends $(DEB_PACKAGES)
	# conf-examples/ship-api.conf uses Debian's snakeoil certificate
	[ -f /etc/ssl/certs/ssl-cert-snakeoil.pem ] \
	    || $(SUDO) make-ssl-cert generate-default-snakeoil

build:
	t/tools/build.sh $(BUILD)

unit:
	$(MAKE) -C t/unit

runner-selftest:
	$(PROVE) t/runner/selftest.t t/runner/sign-verify.t t/runner/flow-selftest.t \
	    t/runner/pg-selftest.t

mock-selftest:
	t/mock/selftest.sh

prove: build
	$(TEST_ENV) $(PROVE) $(TESTS)

# the flow files again with their jobs on PostgreSQL (Siteflow::Pg)
PG_TESTS ?= t/100-hook.t t/110-postback.t t/120-faults.t t/121-crash.t

prove-pg: build
	@why=$$(perl -It/lib -MSiteflow::Pg -e 'print Siteflow::Pg::pg_available()'); \
	if [ -n "$$why" ]; then echo "prove-pg: skipped: $$why"; exit 0; fi; \
	echo "$(TEST_ENV) SITEFLOW_TEST_QUEUE=postgresql $(PROVE) $(PG_TESTS)"; \
	$(TEST_ENV) SITEFLOW_TEST_QUEUE=postgresql $(PROVE) $(PG_TESTS)

test: build style unit runner-selftest mock-selftest prove prove-pg

# the real Test::Nginx leaves alone what it did not create in t/servroot,
# so a servroot of the built-in runner is removed first
test-real: build
	@[ -n "$(TEST_NGINX_LIB)" ] && [ -f "$(TEST_NGINX_LIB)/Test/Nginx/Socket.pm" ] \
	    || { echo "test-real: set TEST_NGINX_LIB to the lib/ directory of" \
	              "a checkout of https://github.com/openresty/test-nginx"; \
	         exit 1; }
	rm -rf t/servroot
	$(TEST_ENV) SITEFLOW_TEST_RUNNER=real \
	    $(PROVE) -I$(abspath $(TEST_NGINX_LIB)) $(TESTS)

check: deps
	$(MAKE) test
	$(MAKE) deb
	$(MAKE) torture-short
	$(MAKE) fuzz FUZZ_SECONDS=10
	$(MAKE) asan
	$(MAKE) valgrind

demo: deps
	$(MAKE) build
	KEEP=$(KEEP) t/demo/run.sh

asan:
	src=$$(t/tools/nginx-full-src.sh $(ASAN_BUILD)/dl) && \
	NGINX_SRC=$$src \
	NGINX_CONFIGURE_ARGS="$$(. $(NGINX_SRC)/conf_flags 2>/dev/null; \
	                        echo "$${NGX_CONF_FLAGS[@]:---with-compat}")" \
	t/tools/build.sh --full \
	    --cc-opt "-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -DNGX_DEBUG_PALLOC=1" \
	    --ld-opt "-fsanitize=address,undefined" $(ASAN_BUILD)
	rm -f $(ASAN_BUILD)/asan.*
	$(MAKE) -C t/unit SAN=1
	ASAN_OPTIONS=$(ASAN_OPTS) \
	UBSAN_OPTIONS=print_stacktrace=1:log_path=$(CURDIR)/$(ASAN_BUILD)/asan \
	TEST_NGINX_BINARY=$(CURDIR)/$(ASAN_BUILD)/nginx \
	TEST_NGINX_LOAD_MODULES=$(CURDIR)/$(ASAN_BUILD)/ngx_http_siteflow_module.so \
	TEST_NGINX_TIMEOUT=$${TEST_NGINX_TIMEOUT:-15} \
	SITEFLOW_TEST_STRICT=1 $(PROVE) $(TESTS)
	@if ls $(ASAN_BUILD)/asan.* >/dev/null 2>&1; then \
	    cat $(ASAN_BUILD)/asan.*; echo "asan: sanitizer reports found"; exit 1; \
	fi
	@echo "asan: clean"

valgrind: build
	$(TEST_ENV) TEST_NGINX_USE_VALGRIND=1 \
	TEST_NGINX_TIMEOUT=$${TEST_NGINX_TIMEOUT:-15} \
	TEST_NGINX_VALGRIND_SUPPRESSIONS=$(CURDIR)/t/valgrind.suppress \
	SITEFLOW_TEST_STRICT=1 \
	$(PROVE) $(TESTS)

fuzz:
	$(MAKE) -C t/fuzz run FUZZ_SECONDS=$(FUZZ_SECONDS)

bench: build
	t/bench/run.sh

style:
	t/tools/style.sh

dashboard-png: build
	t/tools/dashboard-png.sh docs/img/dashboard.png

deb:
	t/tools/build-deb.sh t/build-deb

# SEED, TORTURE_SECONDS, TORTURE_RATE, TORTURE_DRAIN, TORTURE_STOP and
# TORTURE_KEEP are read from the environment (see t/bench/torture.pl)
torture: build
	$(TEST_ENV) ROUNDS=$(ROUNDS) $(if $(SEED),SEED=$(SEED)) t/bench/torture.sh

# the short version make check runs: 2 rounds of 15 s with a short
# backoff (about 1 minute; at most about 3 when nothing drains)
torture-short: build
	$(TEST_ENV) ROUNDS=2 TORTURE_SECONDS=15 TORTURE_DRAIN=60 \
	    TORTURE_BACKOFF='100ms 1s' $(if $(SEED),SEED=$(SEED)) \
	    t/bench/torture.sh
	@why=$$(perl -It/lib -MSiteflow::Pg -e 'print Siteflow::Pg::pg_available()'); \
	if [ -n "$$why" ]; then echo "torture-short: PostgreSQL round skipped: $$why"; \
	else $(TEST_ENV) TORTURE_QUEUE=postgresql ROUNDS=1 TORTURE_SECONDS=15 \
	    TORTURE_DRAIN=60 TORTURE_BACKOFF='100ms 1s' $(if $(SEED),SEED=$(SEED)) \
	    t/bench/torture.sh; fi

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) t/build-deb t/servroot*
	$(MAKE) -C t/unit clean
