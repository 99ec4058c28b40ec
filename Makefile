# ngx_voice: build, test and fuzz the module.
#
#   make                 objs/ngx_http_voice_module.so against Debian's
#                        nginx-dev (/usr/share/nginx/src), or NGINX_SRC=...
#   make test            install missing Debian packages (as root), build,
#                        run the unit tests and every Test::Nginx suite
#   make test-valgrind   the same suites with nginx under valgrind
#   make demo            simulators + nginx + a scripted Twilio call
#   make fuzz            each libFuzzer target for FUZZ_SECONDS
#   make clean

NGINX_SRC     ?= /usr/share/nginx/src
NGINX_BIN     ?= /usr/sbin/nginx
OBJS          := $(CURDIR)/objs
BUILD         := $(OBJS)/nginx
MODULE        := $(OBJS)/ngx_http_voice_module.so
FUZZ_SECONDS  ?= 30
PROVE         ?= prove
CC            ?= cc

CODEC_SRCS    := src/ngx_voice_ws_codec.c src/ngx_voice_base64.c \
                 src/ngx_voice_twilio.c src/ngx_voice_json.c \
                 src/ngx_voice_http_parse.c src/ngx_voice_sse.c \
                 src/ngx_voice_openai.c src/ngx_voice_deepgram.c \
                 src/ngx_voice_elevenlabs.c src/ngx_voice_heard.c \
                 src/ngx_voice_form.c
CODEC_HDRS    := $(CODEC_SRCS:.c=.h)
MODULE_SRCS   := config ngx_voice_module.c $(wildcard src/*.c src/*.h)
UNIT_SRCS     := $(wildcard t/unit/*.c t/unit/*.h)
FUZZ_TARGETS  := $(patsubst t/fuzz/%.c,%,$(wildcard t/fuzz/fuzz_*.c))
WARN          := -W -Wall -Wextra -Wpointer-arith -Wno-unused-parameter \
                 -Werror

# Debian packages the build and the suites need (see README).
DEB_BUILD     := build-essential nginx nginx-dev libcjson-dev libpcre2-dev \
                 libssl-dev zlib1g-dev
DEB_TEST      := libtest-base-perl libtest-longstring-perl \
                 liblist-moreutils-perl libhttp-message-perl \
                 libprotocol-websocket-perl libio-socket-ssl-perl \
                 libmojolicious-perl libev-perl espeak-ng sox \
                 openssl tini valgrind
DEB_FUZZ      := clang libclang-rt-dev

.PHONY: all module deps deps-test unit test test-valgrind fuzz demo clean

all: module

module: $(MODULE)

$(BUILD)/Makefile: config
	@test -f $(NGINX_SRC)/auto/module || { echo "no nginx source tree" \
	    "at NGINX_SRC=$(NGINX_SRC) (apt-get install nginx-dev)"; exit 1; }
	mkdir -p $(BUILD)
	cd $(NGINX_SRC) && \
	if [ -f conf_flags ]; then \
	    . ./conf_flags; \
	    ./configure \
	        --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS)" \
	        --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC" \
	        "$${NGX_CONF_FLAGS[@]}" \
	        --add-dynamic-module=$(CURDIR) --builddir=$(BUILD); \
	else \
	    ./$$(test -x configure && echo configure || echo auto/configure) \
	        --with-compat --with-debug --with-http_ssl_module \
	        --add-dynamic-module=$(CURDIR) --builddir=$(BUILD); \
	fi > $(BUILD)/configure.log 2>&1 || { cat $(BUILD)/configure.log; exit 1; }

$(MODULE): $(BUILD)/Makefile $(MODULE_SRCS)
	$(MAKE) -s -f $(BUILD)/Makefile -C $(NGINX_SRC) modules
	@# a new inode: nginx processes running the old file keep it intact
	cp $(BUILD)/ngx_http_voice_module.so $@.tmp && mv -f $@.tmp $@
	@echo "built $@"

SHELL := /bin/bash

deps:
	@tools/install-deps $(DEB_BUILD)

deps-test:
	@tools/install-deps $(DEB_BUILD) $(DEB_TEST)

$(OBJS)/unit/ngx_voice_unit: $(UNIT_SRCS) $(CODEC_SRCS) $(CODEC_HDRS)
	mkdir -p $(OBJS)/unit
	$(CC) -std=gnu99 -g -O1 $(WARN) -Isrc -o $@ \
	    $(filter %.c,$(UNIT_SRCS)) $(CODEC_SRCS) -lcjson -lcrypto

unit: $(OBJS)/unit/ngx_voice_unit
	$(OBJS)/unit/ngx_voice_unit

test: deps-test
	$(MAKE) module $(OBJS)/unit/ngx_voice_unit
	TEST_NGINX_BINARY=$(NGINX_BIN) TEST_NGINX_VOICE_SO=$(MODULE) \
	    TEST_NGINX_UNIT=$(OBJS)/unit/ngx_voice_unit TEST_NGINX_RANDOMIZE=1 \
	    tini -s -- $(PROVE) -r t

test-valgrind: deps-test
	$(MAKE) module $(OBJS)/unit/ngx_voice_unit
	TEST_NGINX_BINARY=$(NGINX_BIN) TEST_NGINX_VOICE_SO=$(MODULE) \
	    TEST_NGINX_UNIT=$(OBJS)/unit/ngx_voice_unit \
	    TEST_NGINX_USE_VALGRIND=1 TEST_NGINX_RANDOMIZE=1 \
	    tini -s -- $(PROVE) -r t

demo: deps-test
	$(MAKE) module
	NGINX_BIN=$(NGINX_BIN) tools/demo

$(OBJS)/fuzz/%: t/fuzz/%.c $(CODEC_SRCS) $(CODEC_HDRS)
	mkdir -p $(OBJS)/fuzz
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc -o $@ \
	    $< $(CODEC_SRCS) -lcjson -lcrypto

fuzz:
	@tools/install-deps $(DEB_FUZZ) libcjson-dev libssl-dev
	$(MAKE) $(addprefix $(OBJS)/fuzz/,$(FUZZ_TARGETS))
	@for f in $(FUZZ_TARGETS); do \
	    mkdir -p $(OBJS)/fuzz/corpus/$$f; \
	    echo "fuzz: $$f for $(FUZZ_SECONDS)s"; \
	    $(OBJS)/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) \
	        -print_final_stats=1 $(OBJS)/fuzz/corpus/$$f \
	        t/fuzz/corpus/$$f 2>&1 | grep -E 'stat::number_of_executed|ERROR|SUMMARY' ; \
	    test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

clean:
	rm -rf $(OBJS) t/servroot*
