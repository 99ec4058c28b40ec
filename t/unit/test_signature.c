/*
 * Copyright (C) ngx_voice authors
 *
 * X-Twilio-Signature: the protocols.md 1.6 test vectors and values
 * computed independently (Python hmac) for the other cases.
 */


#include "tap.h"
#include "ngx_voice_twilio.h"


#define T_P(n, v)  { { n, sizeof(n) - 1 }, { v, sizeof(v) - 1 } }


static int test_sig(const char *token, const char *url,
    ngx_voice_tw_param_t *params, size_t n, unsigned char *out);


void
test_signature(void)
{
    int             rc;
    size_t          i, errors;
    unsigned char   out[NGX_VOICE_TW_SIG_LEN + 1], got[40];

    static const char  sig1[] = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

    ngx_voice_tw_param_t  sorted[] = {
        T_P("CallSid", "CA1234567890ABCDE"),
        T_P("Caller", "+12349013030"),
        T_P("Digits", "1234"),
        T_P("From", "+12349013030"),
        T_P("To", "+18005551212")
    };

    ngx_voice_tw_param_t  shuffled[] = {
        T_P("To", "+18005551212"),
        T_P("Digits", "1234"),
        T_P("Caller", "+12349013030"),
        T_P("From", "+12349013030"),
        T_P("CallSid", "CA1234567890ABCDE")
    };

    ngx_voice_tw_param_t  multi[] = {
        T_P("b", "2"),
        T_P("a", "z"),
        T_P("a", "y"),
        T_P("a", "z"),
        T_P("ab", "1")
    };

    tap_diag("signature");

    /* protocols.md 1.6 vector 1: form POST parameters */

    out[NGX_VOICE_TW_SIG_LEN] = '#';
    rc = test_sig("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
                  sorted, 5, out);
    is(rc, 0, "vector 1: returns 0");
    is_mem(out, NGX_VOICE_TW_SIG_LEN, sig1, 28, "vector 1: signature");
    is(out[NGX_VOICE_TW_SIG_LEN], '#', "vector 1: 28 bytes written");

    rc = test_sig("12345", "https://mycompany.com/myapp.php?foo=1&bar=2",
                  shuffled, 5, out);
    is(rc, 0, "vector 1 shuffled: returns 0");
    is_mem(out, NGX_VOICE_TW_SIG_LEN, sig1, 28,
           "vector 1 shuffled: params sorted by name");

    errors = 0;

    for (i = 0; i < 5; i++) {
        if (shuffled[i].name.len != sorted[i].name.len
            || memcmp(shuffled[i].name.data, sorted[i].name.data,
                      sorted[i].name.len) != 0)
        {
            errors++;
        }
    }

    is(errors, 0, "vector 1 shuffled: array sorted in place");

    /* vector 2: a WebSocket upgrade, no parameters */

    rc = test_sig("12345", "wss://example.com/media", NULL, 0, out);
    is(rc, 0, "vector 2: returns 0");
    is_mem(out, NGX_VOICE_TW_SIG_LEN, "7PR3qMkpDyEJtMrVOY/LDyNq8J8=", 28,
           "vector 2: wss URL alone");

    /* vector 3: bodySHA256 in the query, only the URL is signed */

    rc = test_sig("12345", "https://mycompany.com/myapp.php?bodySHA256="
                  "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632"
                  "f96e6620", NULL, 0, out);
    is(rc, 0, "vector 3: returns 0");
    is_mem(out, NGX_VOICE_TW_SIG_LEN, "y77kIzt2vzLz71DgmJGsen2scGs=", 28,
           "vector 3: bodySHA256 URL");

    /* repeated names: values sorted, an identical pair appended once */

    rc = test_sig("secret", "https://x.example/cb", multi, 5, out);
    is(rc, 0, "repeated names: returns 0");
    is_mem(out, NGX_VOICE_TW_SIG_LEN, "YOtKaF6rLp4RqrL5mgGe8+6+jvg=", 28,
           "repeated names: sorted by name then value, deduplicated");
    ok(multi[0].name.len == 1 && multi[0].value.data[0] == 'y'
       && multi[3].name.len == 2 && multi[4].name.data[0] == 'b',
       "repeated names: sorted in place (a prefix sorts first)");

    rc = test_sig("secret", "https://x.example/cb", NULL, 0, out);
    is_mem(out, NGX_VOICE_TW_SIG_LEN, "5XEfjGNwIvVyYv4iSiwXXQ8BMI0=", 28,
           "another token");

    rc = test_sig("", "wss://example.com/media", NULL, 0, out);
    is(rc, 0, "empty token: returns 0");
    is_mem(out, NGX_VOICE_TW_SIG_LEN, "IDK8nhzkGmcwXZUzHQVq66soIbo=", 28,
           "empty token: signature");

    rc = test_sig("tttttttttttttttttttttttttttttttttttttttttttttttttt"
                  "tttttttttttttttttttttttttttttttttttttttttttttttttt",
                  "wss://example.com/media", NULL, 0, out);
    is_mem(out, NGX_VOICE_TW_SIG_LEN, "5xpEC2krFAxA6yuJUGZnqMIiFbI=", 28,
           "token longer than the SHA-1 block");

    /* constant time comparison */

    memcpy(got, sig1, 28);
    is(ngx_voice_tw_signature_ok((const unsigned char *) sig1, got, 28), 1,
       "signature_ok: equal");

    errors = 0;

    for (i = 0; i < 28; i++) {
        memcpy(got, sig1, 28);
        got[i] ^= 0x01;

        if (ngx_voice_tw_signature_ok((const unsigned char *) sig1, got, 28)
            != 0)
        {
            errors++;
        }
    }

    is(errors, 0, "signature_ok: one changed byte at each position fails");

    memcpy(got, sig1, 28);
    got[28] = '=';
    is(ngx_voice_tw_signature_ok((const unsigned char *) sig1, got, 29), 0,
       "signature_ok: longer fails");
    is(ngx_voice_tw_signature_ok((const unsigned char *) sig1, got, 27), 0,
       "signature_ok: shorter fails");
    is(ngx_voice_tw_signature_ok((const unsigned char *) sig1, got, 0), 0,
       "signature_ok: empty fails");
    is(ngx_voice_tw_signature_ok((const unsigned char *) sig1,
                                 (const unsigned char *)
                                 "7PR3qMkpDyEJtMrVOY/LDyNq8J8=", 28), 0,
       "signature_ok: another signature fails");
}


static int
test_sig(const char *token, const char *url, ngx_voice_tw_param_t *params,
    size_t n, unsigned char *out)
{
    return ngx_voice_tw_signature(out, (const unsigned char *) token,
                                  strlen(token), (const unsigned char *) url,
                                  strlen(url), params, n);
}
