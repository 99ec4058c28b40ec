/*
 * Copyright (C) ngx_voice authors
 */


#include <stdlib.h>

#include "tap.h"
#include "ngx_voice_base64.h"


typedef struct {
    const char  *plain;
    const char  *encoded;
} test_b64_vector_t;


static void test_b64_vectors(void);
static void test_b64_rejects(void);
static void test_b64_bytes(void);
static ssize_t test_b64_decode_str(const char *s, unsigned char *dst);


/* RFC 4648 section 10 */
static const test_b64_vector_t  test_b64_rfc[] = {
    { "", "" },
    { "f", "Zg==" },
    { "fo", "Zm8=" },
    { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" },
    { "fooba", "Zm9vYmE=" },
    { "foobar", "Zm9vYmFy" }
};


static const char  *test_b64_bad[] = {
    "Z",                /* length not a multiple of 4 */
    "Zg",
    "Zg=",
    "Zm9",
    "Zm9vY",
    "Zm9vYg=",
    "====",             /* padding only */
    "Z===",             /* too much padding */
    "Zg==Zg==",         /* padding in the middle */
    "Zm=v",             /* '=' before a data character */
    "Z=9v",
    "=m9v",
    "Zm9v====",
    "Zh==",             /* non-zero pad bits */
    "Zm9=",
    "Zm8/Zn==",
    "Zm9v\n",           /* whitespace */
    " Zm9v",
    "Zm 9v",
    "Zm9v\r\nZm9v",
    "Zm-v",             /* base64url alphabet */
    "Zm_v",
    "Zm.v",
    "Zm9v\x80\x80\x80\x80",
    "Zm\xffv",
    "Z\x01\x02v",
    NULL
};


void
test_base64(void)
{
    tap_diag("base64");

    test_b64_vectors();
    test_b64_rejects();
    test_b64_bytes();
}


static void
test_b64_vectors(void)
{
    size_t          i, n, plen;
    ssize_t         d;
    unsigned char   buf[64];

    for (i = 0; i < sizeof(test_b64_rfc) / sizeof(test_b64_rfc[0]); i++) {
        plen = strlen(test_b64_rfc[i].plain);

        is(ngx_voice_base64_encoded_len(plen), strlen(test_b64_rfc[i].encoded),
           "encoded_len(%zu)", plen);

        n = ngx_voice_base64_encode(buf,
                                    (const unsigned char *)
                                        test_b64_rfc[i].plain, plen);
        is_mem(buf, n, test_b64_rfc[i].encoded,
               strlen(test_b64_rfc[i].encoded), "encode \"%s\"",
               test_b64_rfc[i].plain);

        d = test_b64_decode_str(test_b64_rfc[i].encoded, buf);
        is_mem(buf, d < 0 ? 0 : (size_t) d, test_b64_rfc[i].plain, plen,
               "decode \"%s\"", test_b64_rfc[i].encoded);
        is(d, plen, "decode \"%s\" length", test_b64_rfc[i].encoded);

        /* in place */

        n = strlen(test_b64_rfc[i].encoded);
        memcpy(buf, test_b64_rfc[i].encoded, n);
        d = ngx_voice_base64_decode(buf, buf, n);
        is_mem(buf, d < 0 ? 0 : (size_t) d, test_b64_rfc[i].plain, plen,
               "decode \"%s\" in place", test_b64_rfc[i].encoded);

        ok(ngx_voice_base64_decoded_max(n) >= plen,
           "decoded_max(%zu) >= %zu", n, plen);
    }
}


static void
test_b64_rejects(void)
{
    size_t          i, pos, bad, fails;
    unsigned        c;
    unsigned char   buf[64], in[16];

    for (i = 0; test_b64_bad[i]; i++) {
        is(test_b64_decode_str(test_b64_bad[i], buf), -1,
           "reject bad base64 #%zu", i);
    }

    /* every byte that is not in the alphabet, at every position */

    fails = 0;
    bad = 0;

    for (c = 0; c < 256; c++) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '+' || c == '/')
        {
            continue;
        }

        for (pos = 0; pos < 8; pos++) {
            memcpy(in, "Zm9vYmFy", 8);
            in[pos] = (unsigned char) c;

            /* "Zm9vYm==" style endings are valid only with zero pad bits */

            if (c == '=' && pos >= 6) {
                continue;
            }

            bad++;

            if (ngx_voice_base64_decode(buf, in, 8) != -1) {
                fails++;
                tap_diag("accepted byte 0x%02x at %zu", c, pos);
            }
        }
    }

    is(fails, 0, "%zu strings with a foreign byte rejected", bad);

    /* "=" at 6 or 7 of "Zm9vYmFy": the pad bits decide */

    memcpy(in, "Zm9vYmF=", 8);
    is(ngx_voice_base64_decode(buf, in, 8), -1, "Zm9vYmF= (pad bits 01)");
    memcpy(in, "Zm9vYmE=", 8);
    is(ngx_voice_base64_decode(buf, in, 8), 5, "Zm9vYmE= ok");
    memcpy(in, "Zm9vYm=y", 8);
    is(ngx_voice_base64_decode(buf, in, 8), -1, "Zm9vYm=y");
    memcpy(in, "Zm9vYm==", 8);
    is(ngx_voice_base64_decode(buf, in, 8), -1, "Zm9vYm== (pad bits)");
    memcpy(in, "Zm9vYg==", 8);
    is(ngx_voice_base64_decode(buf, in, 8), 4, "Zm9vYg== ok");
}


static void
test_b64_bytes(void)
{
    size_t          len, n, errors;
    ssize_t         d;
    unsigned        i, pad;
    unsigned char   src[512], enc[700], dec[700];

    for (i = 0; i < sizeof(src); i++) {
        src[i] = (unsigned char) (i * 131 + 7);
    }

    /* all lengths 0..300, out of place and in place */

    errors = 0;

    for (len = 0; len <= 300; len++) {
        n = ngx_voice_base64_encode(enc, src, len);

        if (n != ngx_voice_base64_encoded_len(len)) {
            errors++;
            continue;
        }

        d = ngx_voice_base64_decode(dec, enc, n);

        if (d != (ssize_t) len || memcmp(dec, src, len) != 0) {
            errors++;
        }

        d = ngx_voice_base64_decode(enc, enc, n);

        if (d != (ssize_t) len || memcmp(enc, src, len) != 0) {
            errors++;
        }
    }

    is(errors, 0, "round trip of lengths 0..300");

    /* every byte value in every position of a group */

    for (i = 0; i < 256; i++) {
        src[i] = (unsigned char) i;
        src[256 + i] = (unsigned char) (255 - i);
    }

    n = ngx_voice_base64_encode(enc, src, 512);
    d = ngx_voice_base64_decode(dec, enc, n);
    is_mem(dec, d < 0 ? 0 : (size_t) d, src, 512, "round trip of 0..255");

    n = ngx_voice_base64_encode(enc, src + 1, 511);
    d = ngx_voice_base64_decode(dec, enc, n);
    is_mem(dec, d < 0 ? 0 : (size_t) d, src + 1, 511, "round trip, offset 1");

    n = ngx_voice_base64_encode(enc, src + 2, 510);
    d = ngx_voice_base64_decode(dec, enc, n);
    is_mem(dec, d < 0 ? 0 : (size_t) d, src + 2, 510, "round trip, offset 2");

    /* every non-zero pad bit combination is rejected */

    errors = 0;

    for (pad = 1; pad < 16; pad++) {
        memcpy(enc, "ZA==", 4);
        enc[1] = "ABCDEFGHIJKLMNOP"[pad];

        if (ngx_voice_base64_decode(dec, enc, 4) != -1) {
            errors++;
        }
    }

    for (pad = 1; pad < 4; pad++) {
        memcpy(enc, "ZmA=", 4);
        enc[2] = "ABCD"[pad];

        if (ngx_voice_base64_decode(dec, enc, 4) != -1) {
            errors++;
        }
    }

    is(errors, 0, "non-zero pad bits rejected (18 cases)");
}


static ssize_t
test_b64_decode_str(const char *s, unsigned char *dst)
{
    return ngx_voice_base64_decode(dst, (const unsigned char *) s, strlen(s));
}
