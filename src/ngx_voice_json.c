/*
 * Copyright (C) ngx_voice authors
 */


#include <math.h>
#include <stdio.h>
#include <string.h>
#include <cjson/cJSON.h>

#include "ngx_voice_json.h"






static const char  ngx_voice_json_hex[] = "0123456789abcdef";


size_t
ngx_voice_json_escape_len(const unsigned char *s, size_t len)
{
    int            n;
    size_t         i, out;
    unsigned char  c;

    out = 0;
    i = 0;

    while (i < len) {
        c = s[i];

        if (c >= 0x20 && c < 0x7f) {
            out += (c == '"' || c == '\\') ? 2 : 1;
            i++;
            continue;
        }

        if (c < 0x80) {
            out += (c == '\b' || c == '\f' || c == '\n' || c == '\r'
                    || c == '\t') ? 2 : 6;
            i++;
            continue;
        }

        n = ngx_voice_utf8_seq(s + i, len - i);

        if (n > 0) {
            out += n;
            i += n;

        } else {
            out += 6;
            i++;
        }
    }

    return out;
}


unsigned char *
ngx_voice_json_escape(unsigned char *dst, const unsigned char *s,
    size_t len)
{
    int            n;
    size_t         i;
    unsigned char  c;

    i = 0;

    while (i < len) {
        c = s[i];

        if (c >= 0x20 && c < 0x7f) {
            if (c == '"' || c == '\\') {
                *dst++ = '\\';
            }

            *dst++ = c;
            i++;
            continue;
        }

        if (c < 0x80) {
            *dst++ = '\\';

            switch (c) {
            case '\b': *dst++ = 'b'; break;
            case '\f': *dst++ = 'f'; break;
            case '\n': *dst++ = 'n'; break;
            case '\r': *dst++ = 'r'; break;
            case '\t': *dst++ = 't'; break;
            default:
                *dst++ = 'u';
                *dst++ = '0';
                *dst++ = '0';
                *dst++ = ngx_voice_json_hex[c >> 4];
                *dst++ = ngx_voice_json_hex[c & 0xf];
            }

            i++;
            continue;
        }

        n = ngx_voice_utf8_seq(s + i, len - i);

        if (n > 0) {
            memcpy(dst, s + i, n);
            dst += n;
            i += n;

        } else {
            memcpy(dst, "\\ufffd", 6);
            dst += 6;
            i++;
        }
    }

    return dst;
}


size_t
ngx_voice_utf8_complete_len(const unsigned char *s, size_t len)
{
    size_t  i, start;

    /* look back at most 3 bytes for the lead byte of the last sequence */

    start = len > 3 ? len - 3 : 0;

    for (i = len; i > start; i--) {
        if ((s[i - 1] & 0xc0) != 0x80) {
            if (s[i - 1] >= 0xc0
                && ngx_voice_utf8_seq(s + i - 1, len - i + 1)
                   == NGX_VOICE_UTF8_SHORT)
            {
                return i - 1;
            }

            break;
        }
    }

    return len;
}


/*
 * Length of the valid UTF-8 sequence of a non-ASCII lead byte at p, or
 * _SHORT when the bytes present are a valid beginning cut by the end,
 * or _BAD (RFC 3629: no overlongs, surrogates or values past U+10FFFF).
 */

int
ngx_voice_utf8_seq(const unsigned char *p, size_t avail)
{
    int            n, i;
    unsigned char  c, lo, hi;

    c = p[0];
    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return NGX_VOICE_UTF8_BAD;
    }

    for (i = 1; i < n; i++) {
        if ((size_t) i >= avail) {
            return NGX_VOICE_UTF8_SHORT;
        }

        c = p[i];

        if (i == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xbf)) {
            return NGX_VOICE_UTF8_BAD;
        }
    }

    return n;
}


int
ngx_voice_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


void *
ngx_voice_json_parse(const unsigned char *json, size_t len)
{
    cJSON       *root;
    const char  *end, *last;

    end = NULL;

    root = cJSON_ParseWithLengthOpts((const char *) json, len, &end, 0);

    if (root == NULL) {
        return NULL;
    }

    /* cJSON stops after the value: only whitespace may follow it */

    last = (const char *) json + len;

    if (end == NULL) {
        end = last;
    }

    while (end < last) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            cJSON_Delete(root);
            return NULL;
        }

        end++;
    }

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }

    return root;
}


int
ngx_voice_json_text(void *obj, const char *name, ngx_voice_text_t *t)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        t->data = "";
        t->len = 0;
        return 0;
    }

    t->data = item->valuestring;
    t->len = strlen(item->valuestring);

    return 1;
}


int
ngx_voice_json_number(void *obj, const char *name, double *v)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsNumber(item)) {
        return 0;
    }

    *v = item->valuedouble;

    return 1;
}


int
ngx_voice_json_true(void *obj, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, name));
}


uint64_t
ngx_voice_json_uint(double v)
{
    /* also false for NaN */

    if (!(v > 0)) {
        return 0;
    }

    if (v >= 18446744073709551615.0) {
        return UINT64_MAX;
    }

    return (uint64_t) v;
}


void
ngx_voice_out_raw(ngx_voice_out_t *o, const void *s, size_t n)
{
    if (o->p != NULL && n) {
        memcpy(o->p + o->len, s, n);
    }

    o->len += n;
}


void
ngx_voice_out_lit(ngx_voice_out_t *o, const char *s)
{
    ngx_voice_out_raw(o, s, strlen(s));
}


void
ngx_voice_out_json(ngx_voice_out_t *o, const unsigned char *s, size_t n)
{
    unsigned char  *end;

    if (o->p == NULL) {
        o->len += ngx_voice_json_escape_len(s, n);
        return;
    }

    end = ngx_voice_json_escape(o->p + o->len, s, n);
    o->len = end - o->p;
}


void
ngx_voice_out_url(ngx_voice_out_t *o, const unsigned char *s, size_t n)
{
    size_t         i;
    unsigned char  c, *d;

    static const char  hex[] = "0123456789ABCDEF";

    for (i = 0; i < n; i++) {
        c = s[i];

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '~')
        {
            ngx_voice_out_raw(o, &c, 1);
            continue;
        }

        if (o->p != NULL) {
            d = o->p + o->len;
            d[0] = '%';
            d[1] = hex[c >> 4];
            d[2] = hex[c & 0xf];
        }

        o->len += 3;
    }
}


void
ngx_voice_out_uint(ngx_voice_out_t *o, uint64_t v)
{
    int   n;
    char  buf[24];

    n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long) v);
    ngx_voice_out_raw(o, buf, (size_t) n);
}


void
ngx_voice_out_double(ngx_voice_out_t *o, double v)
{
    int   n;
    char  buf[32];

    if (!isfinite(v)) {
        v = 0;
    }

    n = snprintf(buf, sizeof(buf), "%.6g", v);
    ngx_voice_out_raw(o, buf, (size_t) n);
}


int
ngx_voice_query_safe(const unsigned char *s, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '#' || s[i] == '"') {
            return 0;
        }
    }

    return 1;
}


void
ngx_voice_out_qparam(ngx_voice_out_t *o, const char *name,
    const ngx_voice_text_t *value)
{
    if (value->data == NULL) {
        return;
    }

    ngx_voice_out_lit(o, "&");
    ngx_voice_out_lit(o, name);
    ngx_voice_out_lit(o, "=");
    ngx_voice_out_url(o, (const unsigned char *) value->data, value->len);
}


void
ngx_voice_out_qbool(ngx_voice_out_t *o, const char *name, int v)
{
    if (v != 1 && v != 2) {
        return;
    }

    ngx_voice_out_lit(o, "&");
    ngx_voice_out_lit(o, name);
    ngx_voice_out_lit(o, v == 1 ? "=true" : "=false");
}


void
ngx_voice_out_quint(ngx_voice_out_t *o, const char *name, uint64_t v)
{
    ngx_voice_out_lit(o, "&");
    ngx_voice_out_lit(o, name);
    ngx_voice_out_lit(o, "=");
    ngx_voice_out_uint(o, v);
}
