/*
 * Copyright (C) ngx_voice authors
 */


#include <stdlib.h>
#include <string.h>

#include "ngx_voice_sse.h"


enum {
    sse_line_start = 0,
    sse_line,
    sse_comment,
    sse_after_cr,
    sse_error
};


static int ngx_voice_sse_fail(ngx_voice_sse_parser_t *p, const char *error);
static int ngx_voice_sse_append(ngx_voice_sse_parser_t *p,
    const unsigned char *s, size_t n);
static int ngx_voice_sse_line(ngx_voice_sse_parser_t *p,
    ngx_voice_sse_event_t *ev);
static int ngx_voice_sse_field(ngx_voice_sse_parser_t *p,
    const unsigned char *name, size_t name_len, const unsigned char *value,
    size_t value_len);
static int ngx_voice_sse_is(const unsigned char *s, size_t len,
    const char *lit);


static const unsigned char  ngx_voice_sse_bom[3] = { 0xef, 0xbb, 0xbf };


int
ngx_voice_sse_init(ngx_voice_sse_parser_t *p, size_t max_event)
{
    memset(p, 0, sizeof(ngx_voice_sse_parser_t));

    p->buf = malloc(max_event + NGX_VOICE_SSE_SLACK);
    if (p->buf == NULL) {
        p->state = sse_error;
        p->error = "out of memory";
        return -1;
    }

    p->max_event = max_event;

    return 0;
}


void
ngx_voice_sse_free(ngx_voice_sse_parser_t *p)
{
    free(p->buf);
    p->buf = NULL;
    p->state = sse_error;
    p->error = "parser freed";
}


void
ngx_voice_sse_reset(ngx_voice_sse_parser_t *p)
{
    p->dlen = 0;
    p->line_len = 0;
    p->have_data = 0;
    p->dispatched = 0;
    p->state = sse_line_start;
    p->bom = 0;
    p->type_len = 0;
    p->id_len = 0;
    p->retry = 0;
    p->error = NULL;
}


int
ngx_voice_sse_parse(ngx_voice_sse_parser_t *p, const unsigned char *in,
    size_t len, size_t *consumed, ngx_voice_sse_event_t *ev)
{
    int            rc;
    size_t         pos, i;
    unsigned char  c;

    *consumed = 0;

    if (p->state == sse_error || p->buf == NULL) {
        if (p->error == NULL) {
            p->error = "parser not initialized";
        }

        return NGX_VOICE_SSE_ERROR;
    }

    if (p->dispatched) {
        /* the previous event's buffers are free again */
        p->dispatched = 0;
        p->dlen = 0;
        p->have_data = 0;
        p->type_len = 0;
    }

    pos = 0;

    while (pos < len) {
        c = in[pos];

        if (p->bom < 3) {
            /* a UTF-8 BOM may start the stream, possibly split */

            if (c == ngx_voice_sse_bom[p->bom]) {
                pos++;

                if (++p->bom == 3) {
                    p->bom = 3;
                }

                continue;
            }

            if (p->bom > 0) {
                /* not a BOM after all: those bytes start a line */
                p->state = sse_line;

                if (ngx_voice_sse_append(p, ngx_voice_sse_bom, p->bom)
                    != 0)
                {
                    return NGX_VOICE_SSE_ERROR;
                }
            }

            p->bom = 3;
        }

        switch (p->state) {

        case sse_after_cr:
            p->state = sse_line_start;

            if (c == '\n') {
                pos++;
                continue;
            }

            /* fall through */

        case sse_line_start:
            if (c == ':') {
                p->state = sse_comment;
                pos++;
                continue;
            }

            p->state = sse_line;

            /* fall through */

        case sse_line:
            if (c == '\r' || c == '\n') {
                pos++;
                p->state = (c == '\r') ? sse_after_cr : sse_line_start;

                rc = ngx_voice_sse_line(p, ev);

                if (rc == NGX_VOICE_SSE_AGAIN) {
                    continue;
                }

                *consumed = pos;
                return rc;
            }

            for (i = pos; i < len && in[i] != '\r' && in[i] != '\n'; i++) {
                /* void */
            }

            if (ngx_voice_sse_append(p, in + pos, i - pos) != 0) {
                return NGX_VOICE_SSE_ERROR;
            }

            pos = i;
            continue;

        case sse_comment:
            if (c == '\r' || c == '\n') {
                p->state = (c == '\r') ? sse_after_cr : sse_line_start;
            }

            pos++;
            continue;

        default:
            return ngx_voice_sse_fail(p, "internal parser state");
        }
    }

    *consumed = len;

    return NGX_VOICE_SSE_AGAIN;
}


static int
ngx_voice_sse_fail(ngx_voice_sse_parser_t *p, const char *error)
{
    p->state = sse_error;
    p->error = error;

    return NGX_VOICE_SSE_ERROR;
}


static int
ngx_voice_sse_append(ngx_voice_sse_parser_t *p, const unsigned char *s,
    size_t n)
{
    /* data so far + this line must fit; the slack covers "data: " */

    if (n > p->max_event + NGX_VOICE_SSE_SLACK - 1 - p->dlen - p->line_len)
    {
        return ngx_voice_sse_fail(p, "event too large");
    }

    memcpy(p->buf + p->dlen + p->line_len, s, n);
    p->line_len += n;

    return 0;
}


static int
ngx_voice_sse_line(ngx_voice_sse_parser_t *p, ngx_voice_sse_event_t *ev)
{
    size_t          i, name_len;
    unsigned char  *line, *value;

    line = p->buf + p->dlen;

    if (p->line_len == 0) {

        /* a blank line dispatches the event */

        if (!p->have_data) {
            p->type_len = 0;
            return NGX_VOICE_SSE_AGAIN;
        }

        p->buf[p->dlen] = '\0';
        p->type[p->type_len] = '\0';
        p->id[p->id_len] = '\0';

        ev->type = p->type_len ? p->type : "message";
        ev->type_len = p->type_len ? p->type_len : 7;
        ev->data = (const char *) p->buf;
        ev->len = p->dlen;
        ev->id = p->id;
        ev->id_len = p->id_len;

        p->dispatched = 1;

        return NGX_VOICE_SSE_EVENT;
    }

    for (i = 0; i < p->line_len && line[i] != ':'; i++) {
        /* void */
    }

    name_len = i;

    if (i < p->line_len) {
        i++;

        if (i < p->line_len && line[i] == ' ') {
            i++;
        }
    }

    value = line + i;

    if (ngx_voice_sse_field(p, line, name_len, value, p->line_len - i)
        != 0)
    {
        return NGX_VOICE_SSE_ERROR;
    }

    p->line_len = 0;

    return NGX_VOICE_SSE_AGAIN;
}


static int
ngx_voice_sse_field(ngx_voice_sse_parser_t *p, const unsigned char *name,
    size_t name_len, const unsigned char *value, size_t value_len)
{
    size_t    i;
    uint64_t  v;

    if (ngx_voice_sse_is(name, name_len, "data")) {

        if (p->have_data) {
            if (value_len + 1 > p->max_event - p->dlen) {
                return ngx_voice_sse_fail(p, "event too large");
            }

            /* the line begins at buf + dlen: value is past the '\n' */
            p->buf[p->dlen] = '\n';
            memmove(p->buf + p->dlen + 1, value, value_len);
            p->dlen += 1 + value_len;

        } else {
            if (value_len > p->max_event - p->dlen) {
                return ngx_voice_sse_fail(p, "event too large");
            }

            memmove(p->buf + p->dlen, value, value_len);
            p->dlen += value_len;
            p->have_data = 1;
        }

        return 0;
    }

    if (ngx_voice_sse_is(name, name_len, "event")) {
        if (value_len > NGX_VOICE_SSE_MAX_TYPE) {
            return ngx_voice_sse_fail(p, "event type too long");
        }

        memcpy(p->type, value, value_len);
        p->type_len = value_len;

        return 0;
    }

    if (ngx_voice_sse_is(name, name_len, "id")) {
        if (memchr(value, '\0', value_len) != NULL) {
            return 0;            /* WHATWG: ignore ids with NUL */
        }

        if (value_len > NGX_VOICE_SSE_MAX_ID) {
            return ngx_voice_sse_fail(p, "event id too long");
        }

        memcpy(p->id, value, value_len);
        p->id_len = value_len;

        return 0;
    }

    if (ngx_voice_sse_is(name, name_len, "retry")) {
        if (value_len == 0) {
            return 0;
        }

        v = 0;

        for (i = 0; i < value_len; i++) {
            if (value[i] < '0' || value[i] > '9') {
                return 0;        /* WHATWG: ignore */
            }

            if (v < UINT64_MAX / 10 - 10) {
                v = v * 10 + (value[i] - '0');
            }
        }

        p->retry = v;

        return 0;
    }

    /* other fields are ignored */

    return 0;
}


static int
ngx_voice_sse_is(const unsigned char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}
