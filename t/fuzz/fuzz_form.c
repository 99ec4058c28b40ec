/*
 * Copyright (C) ngx_voice authors
 *
 * libFuzzer target for the webhook form and XML escaping: fields stay
 * inside the buffer and within the count, the escaped length computed
 * without writing equals what is written, and the escaped text holds no
 * raw markup characters or C0 controls.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_voice_form.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static void check_escape(const unsigned char *s, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                      rc;
    size_t                   i, max, n;
    unsigned char           *buf;
    ngx_voice_form_field_t  *f;

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        abort();
    }

    memcpy(buf, data, size);

    max = ngx_voice_form_count(buf, size);

    f = malloc(max * sizeof(ngx_voice_form_field_t));
    if (f == NULL) {
        abort();
    }

    rc = ngx_voice_form_parse(buf, size, f, max, &n);

    if (rc == NGX_VOICE_FORM_TOO_MANY || n > max) {
        abort();
    }

    if (rc == NGX_VOICE_FORM_OK) {
        for (i = 0; i < n; i++) {
            if (f[i].name < buf || f[i].name + f[i].name_len > buf + size
                || f[i].value < buf
                || f[i].value + f[i].value_len > buf + size)
            {
                abort();
            }

            check_escape(f[i].name, f[i].name_len);
            check_escape(f[i].value, f[i].value_len);
        }
    }

    check_escape(data, size);

    free(f);
    free(buf);

    return 0;
}


static void
check_escape(const unsigned char *s, size_t len)
{
    size_t          n, m, i;
    unsigned char  *out;

    n = ngx_voice_xml_escape(NULL, s, len);

    out = malloc(n + 1);
    if (out == NULL) {
        abort();
    }

    m = ngx_voice_xml_escape(out, s, len);

    if (m != n) {
        abort();
    }

    for (i = 0; i < m; i++) {
        if (out[i] < 0x20 || out[i] == '<' || out[i] == '>'
            || out[i] == '"' || out[i] == '\'')
        {
            abort();
        }
    }

    free(out);
}
