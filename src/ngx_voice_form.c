/*
 * Copyright (C) ngx_voice authors
 */


#include <string.h>

#include "ngx_voice_form.h"
#include "ngx_voice_json.h"


static size_t ngx_voice_form_decode(unsigned char *p, size_t len, int *bad);


size_t
ngx_voice_form_count(const unsigned char *buf, size_t len)
{
    size_t  i, n;

    n = 1;

    for (i = 0; i < len; i++) {
        if (buf[i] == '&') {
            n++;
        }
    }

    return n;
}


int
ngx_voice_form_parse(unsigned char *buf, size_t len,
    ngx_voice_form_field_t *fields, size_t max, size_t *n)
{
    int                      bad;
    size_t                   plen;
    unsigned char           *p, *end, *amp, *eq;
    ngx_voice_form_field_t  *f;

    *n = 0;
    bad = 0;

    p = buf;
    end = buf + len;

    while (p < end) {
        amp = memchr(p, '&', end - p);
        if (amp == NULL) {
            amp = end;
        }

        plen = amp - p;

        if (plen == 0) {
            p = amp + 1;
            continue;
        }

        if (*n == max) {
            return NGX_VOICE_FORM_TOO_MANY;
        }

        f = &fields[(*n)++];

        eq = memchr(p, '=', plen);

        /* decoding shrinks in place: the pair's bytes are its own */

        f->name = p;

        if (eq) {
            f->name_len = ngx_voice_form_decode(p, eq - p, &bad);
            f->value = eq + 1;
            f->value_len = ngx_voice_form_decode(eq + 1, amp - eq - 1, &bad);

        } else {
            f->name_len = ngx_voice_form_decode(p, plen, &bad);
            f->value = amp;
            f->value_len = 0;
        }

        if (bad) {
            return NGX_VOICE_FORM_BAD;
        }

        p = amp + 1;
    }

    return NGX_VOICE_FORM_OK;
}


static size_t
ngx_voice_form_decode(unsigned char *p, size_t len, int *bad)
{
    int             hi, lo;
    size_t          i;
    unsigned char  *d;

    d = p;

    for (i = 0; i < len; i++) {

        if (p[i] == '+') {
            *d++ = ' ';
            continue;
        }

        if (p[i] != '%') {
            *d++ = p[i];
            continue;
        }

        /* Twilio encodes correctly: a broken escape is a broken body */

        if (i + 2 >= len) {
            *bad = 1;
            return 0;
        }

        hi = ngx_voice_hex(p[i + 1]);
        lo = ngx_voice_hex(p[i + 2]);

        if (hi < 0 || lo < 0) {
            *bad = 1;
            return 0;
        }

        *d++ = (unsigned char) (hi << 4 | lo);
        i += 2;
    }

    return d - p;
}


size_t
ngx_voice_form_encode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    size_t          i, n;
    unsigned char   c;

    static const char  hex[] = "0123456789ABCDEF";

    n = 0;

    for (i = 0; i < len; i++) {
        c = src[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || c == '*' || c == '-' || c == '.' || c == '_')
        {
            if (dst) {
                dst[n] = c;
            }

            n++;
            continue;
        }

        if (c == ' ') {
            if (dst) {
                dst[n] = '+';
            }

            n++;
            continue;
        }

        if (dst) {
            dst[n] = '%';
            dst[n + 1] = hex[c >> 4];
            dst[n + 2] = hex[c & 0x0f];
        }

        n += 3;
    }

    return n;
}


size_t
ngx_voice_xml_escape(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    int             seq;
    size_t          i, n, u, elen;
    const char     *e;
    unsigned char   c;

    static const unsigned char  fffd[] = { 0xef, 0xbf, 0xbd };

    n = 0;

    for (i = 0; i < len; /* void */ ) {
        c = src[i];
        e = NULL;
        elen = 0;

        switch (c) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&apos;";
            break;

        /* kept in attribute values, which XML would turn into spaces */
        case '\t':
            e = "&#9;";
            break;
        case '\n':
            e = "&#10;";
            break;
        case '\r':
            e = "&#13;";
            break;
        }

        if (e) {
            elen = strlen(e);

            if (dst) {
                memcpy(dst + n, e, elen);
            }

            n += elen;
            i++;
            continue;
        }

        if (c < 0x20) {
            i++;
            continue;
        }

        if (c < 0x80) {
            if (dst) {
                dst[n] = c;
            }

            n++;
            i++;
            continue;
        }

        seq = ngx_voice_utf8_seq(src + i, len - i);

        if (seq <= 0) {
            if (dst) {
                memcpy(dst + n, fffd, sizeof(fffd));
            }

            n += sizeof(fffd);
            i++;
            continue;
        }

        u = (size_t) seq;

        if (dst) {
            memcpy(dst + n, src + i, u);
        }

        n += u;
        i += u;
    }

    return n;
}


