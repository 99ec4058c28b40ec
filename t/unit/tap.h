/*
 * Copyright (C) ngx_voice authors
 *
 * A tiny TAP producer for the codec unit tests: "ok N - desc" lines,
 * "# ..." diagnostics on failures, and the plan printed at the end.
 */


#ifndef _NGX_VOICE_TAP_H_INCLUDED_
#define _NGX_VOICE_TAP_H_INCLUDED_


#include <stddef.h>
#include <stdio.h>
#include <string.h>


#if defined(__GNUC__) || defined(__clang__)
#define TAP_PRINTF(f, a)  __attribute__((format(printf, f, a)))
#else
#define TAP_PRINTF(f, a)
#endif


extern unsigned  tap_count;
extern unsigned  tap_failed;


int tap_ok(int pass, const char *file, int line, const char *fmt, ...)
    TAP_PRINTF(4, 5);
int tap_is(long long got, long long expected, const char *file, int line,
    const char *fmt, ...) TAP_PRINTF(5, 6);
int tap_is_mem(const void *got, size_t got_len, const void *expected,
    size_t expected_len, const char *file, int line, const char *fmt, ...)
    TAP_PRINTF(7, 8);
void tap_diag(const char *fmt, ...) TAP_PRINTF(1, 2);


/* ok(condition, "description %d", ...) */
#define ok(pass, ...)                                                         \
    tap_ok(!!(pass), __FILE__, __LINE__, __VA_ARGS__)

/* is(got, expected, "description") for integers */
#define is(got, expected, ...)                                                \
    tap_is((long long) (got), (long long) (expected), __FILE__, __LINE__,    \
           __VA_ARGS__)

/* is_mem(got, got_len, expected, expected_len, "description") */
#define is_mem(got, glen, exp, elen, ...)                                     \
    tap_is_mem(got, glen, exp, elen, __FILE__, __LINE__, __VA_ARGS__)

/* is_str(got, "expected C string", "description"); got may be NULL */
#define is_str(got, exp, ...)                                                 \
    tap_is_mem(got, (got) ? strlen(got) : (size_t) -1, exp, strlen(exp),     \
               __FILE__, __LINE__, __VA_ARGS__)


void test_base64(void);
void test_ws_codec(void);
void test_twilio(void);
void test_signature(void);
void test_json(void);
void test_http_parse(void);
void test_sse(void);
void test_openai(void);
void test_deepgram(void);
void test_elevenlabs(void);


#endif /* _NGX_VOICE_TAP_H_INCLUDED_ */
