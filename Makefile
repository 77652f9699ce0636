# dkimkeyd — plain make + pkg-config.
#
#   make              build ./dkimkeyd
#   make check        install what is missing, build, run every test
#   make check SANITIZE=1   the same under ASan+UBSan
#   make demo         install what is missing, build, rotate a demo domain
#                     against a throwaway BIND on loopback, signed by the
#                     real OpenDKIM milter
#   make install      PREFIX=/usr/local DESTDIR=
#   make bench        benchmarks (ratios against reference runs; about
#                     20 minutes; BENCH_ARGS=--quick for a smoke run)

PREFIX	?= /usr/local
DESTDIR	?=
SBINDIR	?= $(PREFIX)/sbin
MANDIR	?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc

CC	?= cc
PKGS	 = ldns libcurl libcrypto inih libpsl jansson libpq expat
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN	 = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
	   -Wmissing-prototypes -Wno-unused-parameter
CFLAGS	?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) -Ilib
LDFLAGS	?=

ifeq ($(SANITIZE),1)
BUILD	 = build-san
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
else
BUILD	 = build
endif
# The crash-point build (tests only) lives apart from the real one.
CRASH_BIN := $(BUILD)-crash/dkimkeyd
ifeq ($(CRASHPOINTS),1)
BUILD	:= $(BUILD)-crash
ALL_CFLAGS += -DDK_CRASHPOINTS
endif

LIB_SRC	 = $(sort $(wildcard lib/*.c))
PROV_SRC = $(sort $(wildcard providers/*/*.c))
DAEMON_SRC = $(sort $(wildcard daemon/*.c))
# Everything of the program but main() goes into the archive, so that unit
# tests can link the daemon's objects (engine, domain context) too.
DAEMON_LIB_SRC = $(filter-out daemon/main.c,$(DAEMON_SRC))
UNIT_SRC = $(sort $(wildcard tests/unit/test_*.c))

LIB_OBJ	 = $(LIB_SRC:%.c=$(BUILD)/%.o)
PROV_OBJ = $(PROV_SRC:%.c=$(BUILD)/%.o)
DAEMON_OBJ = $(DAEMON_SRC:%.c=$(BUILD)/%.o)
DAEMON_LIB_OBJ = $(DAEMON_LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

BIN	 = $(BUILD)/dkimkeyd

.PHONY: all check unit integration demo install clean deps bench fuzz crash \
	fuzz-syntax

all: $(BIN) dkimkeyd

dkimkeyd: $(BIN)
	ln -sf $(BIN) $@

$(BUILD)/%.o: %.c $(wildcard lib/*.h providers/*/*.h daemon/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libdk.a: $(LIB_OBJ) $(PROV_OBJ) $(DAEMON_LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/daemon/main.o $(BUILD)/libdk.a
	$(CC) $(LDFLAGS) -o $@ $(BUILD)/daemon/main.o $(BUILD)/libdk.a $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libdk.a tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/libdk.a \
	    $(PKG_LIBS) $(CMOCKA_LIBS)

deps:
	@sh contrib/install-deps.sh

# build-crash/dkimkeyd: the binary the crash-safety tests kill at named
# points (DKIMKEYD_CRASH=point[:N]).
ifeq ($(CRASHPOINTS),1)
crash: $(BIN)
else
crash:
	@$(MAKE) --no-print-directory CRASHPOINTS=1 crash
endif

unit: $(UNIT_BIN)
	@BUILD=$(BUILD) sh tests/run-unit.sh $(UNIT_BIN)

integration: all crash
	@DKIMKEYD=$(CURDIR)/$(BIN) DKIMKEYD_CRASH_BIN=$(CURDIR)/$(CRASH_BIN) \
	    /usr/bin/python3 tests/integration/run.py

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory $(UNIT_BIN)
	@$(MAKE) --no-print-directory fuzz-syntax
	@$(MAKE) --no-print-directory crash
	@BUILD=$(BUILD) DKIMKEYD=$(CURDIR)/$(BIN) \
	    DKIMKEYD_CRASH_BIN=$(CURDIR)/$(CRASH_BIN) \
	    sh tests/run-all.sh $(UNIT_BIN)

demo: deps
	@$(MAKE) --no-print-directory all
	@DKIMKEYD=$(CURDIR)/$(BIN) /usr/bin/python3 contrib/demo.py

# BENCH_ARGS=--quick: a smoke run at small sizes; BENCH_ARGS=--scale:
# growth from 10k to 100k domains (tests/bench/bench_scale.py).  Results also in
# build/bench-results.txt.
bench: deps
	@sh contrib/install-deps.sh dnsperf
	@$(MAKE) --no-print-directory all
	@DKIMKEYD=$(CURDIR)/$(BIN) /usr/bin/python3 tests/bench/run.py $(BENCH_ARGS)

UNITDIR	?= $(PREFIX)/lib/systemd/system
DOCDIR	?= $(PREFIX)/share/doc/dkimkeyd
LOCALSTATEDIR ?= /var
# Installed units and cron file name the installed binary.
SUBST	 = sed -e 's,/usr/local/sbin/,$(SBINDIR)/,g' \
	    -e 's,/etc/dkimkeyd/,$(SYSCONFDIR)/dkimkeyd/,g' \
	    -e 's,/var/lib/dkimkeyd,$(LOCALSTATEDIR)/lib/dkimkeyd,g'

# INSTALL_BIN=FILE installs a binary built elsewhere, building nothing
# (the tree's ./dkimkeyd link is left alone either way).
INSTALL_BIN ?= $(BIN)

install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(SYSCONFDIR)/dkimkeyd/conf.d \
	    $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/cron.d \
	    $(DESTDIR)$(SYSCONFDIR)/polkit-1/rules.d \
	    $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)/monitoring
	install -d -m 750 $(DESTDIR)$(LOCALSTATEDIR)/lib/dkimkeyd \
	    $(DESTDIR)$(LOCALSTATEDIR)/lib/dkimkeyd/keys
	install -m 755 $(INSTALL_BIN) $(DESTDIR)$(SBINDIR)/dkimkeyd
	install -m 644 man/dkimkeyd.8 $(DESTDIR)$(MANDIR)/man8/dkimkeyd.8
	install -m 644 man/dkimkeyd.conf.5 $(DESTDIR)$(MANDIR)/man5/dkimkeyd.conf.5
	for u in dkimkeyd.service dkimkeyd-once.service dkimkeyd-once.timer \
	    dkimkeyd-agent@.service; do \
	    $(SUBST) contrib/systemd/$$u >$(DESTDIR)$(UNITDIR)/$$u && \
	    chmod 644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	[ -e $(DESTDIR)$(SYSCONFDIR)/cron.d/dkimkeyd ] || \
	    { $(SUBST) contrib/cron/dkimkeyd \
	    >$(DESTDIR)$(SYSCONFDIR)/cron.d/dkimkeyd && \
	    chmod 644 $(DESTDIR)$(SYSCONFDIR)/cron.d/dkimkeyd; }
	install -m 644 contrib/polkit/50-dkimkeyd.rules \
	    $(DESTDIR)$(SYSCONFDIR)/polkit-1/rules.d/50-dkimkeyd.rules
	install -m 644 conf.d/example.com.conf \
	    $(DESTDIR)$(DOCDIR)/examples/example.com.conf
	install -m 644 conf.d/dkimkeyd.conf.example \
	    $(DESTDIR)$(DOCDIR)/examples/dkimkeyd.conf.example
	install -m 755 contrib/setup.sh $(DESTDIR)$(DOCDIR)/setup.sh
	install -d $(DESTDIR)$(DOCDIR)/canary
	install -m 755 contrib/canary/* $(DESTDIR)$(DOCDIR)/canary/
	install -m 644 contrib/monitoring/* $(DESTDIR)$(DOCDIR)/monitoring/
	install -d $(DESTDIR)$(DOCDIR)/postgresql $(DESTDIR)$(DOCDIR)/exec \
	    $(DESTDIR)$(DOCDIR)/rspamd $(DESTDIR)$(DOCDIR)/exim
	install -m 644 contrib/postgresql/roles.sql $(DESTDIR)$(DOCDIR)/postgresql/
	install -m 755 contrib/exec/dkimkeyd-nsupdate $(DESTDIR)$(DOCDIR)/exec/
	install -m 644 contrib/rspamd/dkim_signing.conf $(DESTDIR)$(DOCDIR)/rspamd/
	install -m 755 contrib/rspamd/dkimkeyd-rspamd-reload $(DESTDIR)$(DOCDIR)/rspamd/
	install -m 644 contrib/exim/dkim-transport.conf $(DESTDIR)$(DOCDIR)/exim/
	[ -e $(DESTDIR)$(SYSCONFDIR)/dkimkeyd/dkimkeyd.conf ] || \
	    install -m 640 conf.d/dkimkeyd.conf.example \
	    $(DESTDIR)$(SYSCONFDIR)/dkimkeyd/dkimkeyd.conf

clean:
	rm -rf build build-san build-crash build-san-crash build-fuzz dkimkeyd

# libFuzzer targets for every parser: make fuzz FUZZ_SECONDS=60.  The
# library and provider objects are built once (fuzzer-no-link) into one
# archive each target links; a target's " * FUZZ_EXTRA_SRC: FILES" comment
# line adds sources.  Inputs saved under tests/fuzz/regress/TARGET-* are
# replayed first (past findings stay fixed), then the target fuzzes from
# its corpus in build-fuzz/TARGET.corpus and the seeds in
# tests/fuzz/seeds/TARGET/, if any.  CI runs FUZZ_SECONDS=10.
FUZZ_SECONDS ?= 30
FUZZ_SRC = $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_CFLAGS = -g -O1 -std=c11 -D_GNU_SOURCE -Ilib $(PKG_CFLAGS) \
	-fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJ = $(LIB_SRC:%.c=build-fuzz/%.o) $(PROV_SRC:%.c=build-fuzz/%.o)

build-fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

build-fuzz/libfuzz.a: $(FUZZ_OBJ)
	ar rcs $@ $(FUZZ_OBJ)

# The fuzz targets include provider sources: make check compiles each one
# (syntax only, with the project's warnings) so that a change to a
# provider's structures cannot break `make fuzz` unnoticed.
fuzz-syntax:
	@for f in $(FUZZ_SRC); do \
	    $(CC) $(ALL_CFLAGS) -fsyntax-only $$f || exit 1; done

fuzz:
	@sh contrib/install-deps.sh clang
	@$(MAKE) --no-print-directory CC=clang build-fuzz/libfuzz.a
	@for f in $(FUZZ_SRC); do \
	    n=$$(basename $$f .c); \
	    x=$$(sed -n 's/^ \* FUZZ_EXTRA_SRC: //p' $$f); \
	    clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o build-fuzz/$$n $$f $$x \
	        build-fuzz/libfuzz.a $(PKG_LIBS) || exit 1; \
	    mkdir -p build-fuzz/$$n.corpus; \
	    r=$$(ls tests/fuzz/regress/$$n-* 2>/dev/null || true); \
	    if [ -n "$$r" ]; then \
	        build-fuzz/$$n $$r >build-fuzz/$$n.regress.log 2>&1 || \
	        { echo "$$n: a saved input fails again:"; \
	          tail -40 build-fuzz/$$n.regress.log; exit 1; }; \
	    fi; \
	    echo "fuzzing $$n for $(FUZZ_SECONDS)s"; \
	    s=; [ -d tests/fuzz/seeds/$$n ] && s=tests/fuzz/seeds/$$n; \
	    build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) \
	        build-fuzz/$$n.corpus $$s >build-fuzz/$$n.log 2>&1 || \
	        { tail -40 build-fuzz/$$n.log; exit 1; }; \
	    tail -1 build-fuzz/$$n.log; \
	done
