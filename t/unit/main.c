/*
 * Copyright (C) ngx_voice authors
 *
 * Unit tests of the nginx-free codecs (WebSocket framing, base64,
 * Twilio messages and signatures).  Prints TAP; exits 1 on failure.
 */


#include <stdarg.h>
#include <stdlib.h>

#include "tap.h"


void test_heard(void);
void test_form(void);

static void tap_line(int pass, const char *fmt, va_list args);
static void tap_where(const char *file, int line);


unsigned  tap_count;
unsigned  tap_failed;


int
main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    test_base64();
    test_ws_codec();
    test_twilio();
    test_signature();
    test_json();
    test_http_parse();
    test_sse();
    test_openai();
    test_deepgram();
    test_elevenlabs();
    test_heard();
    test_form();

    printf("1..%u\n", tap_count);

    if (tap_failed) {
        printf("# failed %u of %u tests\n", tap_failed, tap_count);
        return 1;
    }

    return 0;
}


int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    tap_line(pass, fmt, args);
    va_end(args);

    if (!pass) {
        tap_where(file, line);
    }

    return pass;
}


int
tap_is(long long got, long long expected, const char *file, int line,
    const char *fmt, ...)
{
    int      pass;
    va_list  args;

    pass = (got == expected);

    va_start(args, fmt);
    tap_line(pass, fmt, args);
    va_end(args);

    if (!pass) {
        tap_where(file, line);
        printf("#          got: %lld\n#     expected: %lld\n", got, expected);
    }

    return pass;
}


int
tap_is_mem(const void *got, size_t got_len, const void *expected,
    size_t expected_len, const char *file, int line, const char *fmt, ...)
{
    int      pass;
    va_list  args;

    pass = (got != NULL && got_len == expected_len
            && (got_len == 0 || memcmp(got, expected, got_len) == 0));

    va_start(args, fmt);
    tap_line(pass, fmt, args);
    va_end(args);

    if (!pass) {
        tap_where(file, line);

        if (got == NULL) {
            printf("#          got: NULL\n");

        } else {
            printf("#          got: \"%.*s\" (%zu bytes)\n",
                   (int) (got_len > 200 ? 200 : got_len),
                   (const char *) got, got_len);
        }

        printf("#     expected: \"%.*s\" (%zu bytes)\n",
               (int) (expected_len > 200 ? 200 : expected_len),
               (const char *) expected, expected_len);
    }

    return pass;
}


void
tap_diag(const char *fmt, ...)
{
    va_list  args;

    printf("# ");

    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);

    printf("\n");
}


static void
tap_line(int pass, const char *fmt, va_list args)
{
    tap_count++;

    if (!pass) {
        tap_failed++;
    }

    printf("%sok %u - ", pass ? "" : "not ", tap_count);
    vprintf(fmt, args);
    printf("\n");
}


static void
tap_where(const char *file, int line)
{
    printf("#   Failed test at %s line %d.\n", file, line);
}
