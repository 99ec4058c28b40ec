/*
 * Copyright (C) ngx_voice authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_voice_http_parse.h"
#include "ngx_voice_json.h"


enum {
    st_status = 0,
    st_fields,
    st_body_length,
    st_body_close,
    st_chunk_size,
    st_chunk_bws,
    st_chunk_ext,
    st_chunk_size_lf,
    st_chunk_data,
    st_chunk_data_end,
    st_chunk_data_lf,
    st_trailer_start,
    st_trailer_end_lf,
    st_trailer_line,
    st_done_next,          /* DONE is due on the next call */
    st_idle,               /* after DONE, reusable: next response */
    st_finished,           /* after DONE, not reusable */
    st_error
};

/* return values of ngx_voice_http_read_line() */
#define NGX_VOICE_HTTP_LINE_MORE   0
#define NGX_VOICE_HTTP_LINE_OK     1
#define NGX_VOICE_HTTP_LINE_BAD    2

#define ngx_voice_http_lc(c)       (((c) >= 'A' && (c) <= 'Z') ? (c) | 0x20 \
                                                               : (c))


static void ngx_voice_http_response_reset(ngx_voice_http_parser_t *p);
static int ngx_voice_http_fail(ngx_voice_http_parser_t *p,
    const char *error);
static int ngx_voice_http_read_line(ngx_voice_http_parser_t *p,
    const unsigned char *in, size_t len, size_t *pos);
static int ngx_voice_http_status_line(ngx_voice_http_parser_t *p);
static int ngx_voice_http_field(ngx_voice_http_parser_t *p,
    ngx_voice_http_event_t *ev);
static int ngx_voice_http_header_done(ngx_voice_http_parser_t *p);
static int ngx_voice_http_done(ngx_voice_http_parser_t *p);
static int ngx_voice_http_chunk_line(ngx_voice_http_parser_t *p);
static int ngx_voice_http_eq(const char *a, size_t len, const char *lc);
static int ngx_voice_http_tchar(unsigned char c);
static int ngx_voice_http_vchar(unsigned char c);
static unsigned char *ngx_voice_http_cpy(unsigned char *p, const void *s,
    size_t len);


int
ngx_voice_http_parser_init(ngx_voice_http_parser_t *p, size_t max_header)
{
    memset(p, 0, sizeof(ngx_voice_http_parser_t));

    if (max_header < 16) {
        max_header = 16;
    }

    p->buf = malloc(max_header);
    if (p->buf == NULL) {
        return -1;
    }

    p->max_header = max_header;

    ngx_voice_http_response_reset(p);

    return 0;
}


void
ngx_voice_http_parser_free(ngx_voice_http_parser_t *p)
{
    free(p->buf);
    p->buf = NULL;
    p->state = st_error;
    p->error = "parser freed";
}


void
ngx_voice_http_parser_reset(ngx_voice_http_parser_t *p)
{
    p->responses = 0;
    p->error = NULL;

    ngx_voice_http_response_reset(p);
}


int
ngx_voice_http_parse(ngx_voice_http_parser_t *p, const unsigned char *in,
    size_t len, size_t *consumed, ngx_voice_http_event_t *ev)
{
    int            rc;
    size_t         pos, n;
    unsigned char  c;

    pos = 0;
    *consumed = 0;

    memset(ev, 0, sizeof(ngx_voice_http_event_t));

    if (p->state == st_error) {
        return NGX_VOICE_HTTP_ERROR;
    }

    if (p->buf == NULL) {
        return ngx_voice_http_fail(p, "parser not initialized");
    }

    if (p->state == st_idle) {
        if (len == 0) {
            return NGX_VOICE_HTTP_AGAIN;
        }

        ngx_voice_http_response_reset(p);
    }

    for ( ;; ) {

        switch (p->state) {

        case st_status:
        case st_fields:
            rc = ngx_voice_http_read_line(p, in, len, &pos);

            if (rc == NGX_VOICE_HTTP_LINE_MORE) {
                *consumed = pos;
                return NGX_VOICE_HTTP_AGAIN;
            }

            if (rc == NGX_VOICE_HTTP_LINE_BAD) {
                return NGX_VOICE_HTTP_ERROR;
            }

            if (p->state == st_status) {
                if (ngx_voice_http_status_line(p) != 0) {
                    return NGX_VOICE_HTTP_ERROR;
                }

                continue;
            }

            if (p->used == p->line_start) {
                /* the empty line ending the header */

                rc = ngx_voice_http_header_done(p);

                if (rc == NGX_VOICE_HTTP_AGAIN) {
                    continue;        /* an interim 1xx was skipped */
                }

                *consumed = pos;
                return rc;
            }

            rc = ngx_voice_http_field(p, ev);

            if (rc == NGX_VOICE_HTTP_AGAIN) {
                continue;            /* a field of an interim 1xx */
            }

            *consumed = pos;
            return rc;

        case st_body_length:
            if (pos == len) {
                *consumed = pos;
                return NGX_VOICE_HTTP_AGAIN;
            }

            n = len - pos;

            if ((uint64_t) n > p->remain) {
                n = (size_t) p->remain;
            }

            p->remain -= n;

            if (p->remain == 0) {
                p->state = st_done_next;
            }

            ev->data = in + pos;
            ev->len = n;
            *consumed = pos + n;
            return NGX_VOICE_HTTP_BODY;

        case st_body_close:
            if (pos == len) {
                *consumed = pos;
                return NGX_VOICE_HTTP_AGAIN;
            }

            ev->data = in + pos;
            ev->len = len - pos;
            *consumed = len;
            return NGX_VOICE_HTTP_BODY;

        case st_chunk_data:
            if (pos == len) {
                *consumed = pos;
                return NGX_VOICE_HTTP_AGAIN;
            }

            n = len - pos;

            if ((uint64_t) n > p->remain) {
                n = (size_t) p->remain;
            }

            p->remain -= n;

            if (p->remain == 0) {
                p->state = st_chunk_data_end;
            }

            ev->data = in + pos;
            ev->len = n;
            *consumed = pos + n;
            return NGX_VOICE_HTTP_BODY;

        case st_done_next:
            *consumed = pos;
            return ngx_voice_http_done(p);

        case st_idle:
            /* only reached after DONE within this call: never */
            *consumed = pos;
            return NGX_VOICE_HTTP_AGAIN;

        case st_finished:
            if (pos == len) {
                *consumed = pos;
                return NGX_VOICE_HTTP_AGAIN;
            }

            return ngx_voice_http_fail(p,
                       "data after the end of a non-reusable response");

        case st_error:
            return NGX_VOICE_HTTP_ERROR;

        default:
            break;
        }

        /* byte-wise states of chunked framing */

        if (pos == len) {
            *consumed = pos;
            return NGX_VOICE_HTTP_AGAIN;
        }

        c = in[pos++];

        if (p->state != st_chunk_data_end && p->state != st_chunk_data_lf
            && ++p->counted > p->max_header)
        {
            return ngx_voice_http_fail(p, p->state >= st_trailer_start
                                          ? "trailer section too large"
                                          : "chunk size line too long");
        }

        switch (p->state) {

        case st_chunk_size:
            if (ngx_voice_hex(c) >= 0) {
                if (p->remain > (UINT64_MAX >> 4)) {
                    return ngx_voice_http_fail(p, "chunk size overflow");
                }

                p->remain = (p->remain << 4) | ngx_voice_hex(c);
                p->chunk_digits++;
                break;
            }

            if (p->chunk_digits == 0) {
                return ngx_voice_http_fail(p, "invalid chunk size");
            }

            if (c == ' ' || c == '\t') {
                p->state = st_chunk_bws;

            } else if (c == ';') {
                p->state = st_chunk_ext;

            } else if (c == '\r') {
                p->state = st_chunk_size_lf;

            } else if (c == '\n') {
                if (ngx_voice_http_chunk_line(p) != 0) {
                    return NGX_VOICE_HTTP_ERROR;
                }

            } else {
                return ngx_voice_http_fail(p, "invalid chunk size");
            }

            break;

        case st_chunk_bws:
            if (c == ' ' || c == '\t') {
                break;
            }

            if (c == ';') {
                p->state = st_chunk_ext;

            } else if (c == '\r') {
                p->state = st_chunk_size_lf;

            } else if (c == '\n') {
                if (ngx_voice_http_chunk_line(p) != 0) {
                    return NGX_VOICE_HTTP_ERROR;
                }

            } else {
                return ngx_voice_http_fail(p, "invalid chunk size");
            }

            break;

        case st_chunk_ext:
            if (c == '\r') {
                p->state = st_chunk_size_lf;

            } else if (c == '\n') {
                if (ngx_voice_http_chunk_line(p) != 0) {
                    return NGX_VOICE_HTTP_ERROR;
                }

            } else if (c != '\t' && !ngx_voice_http_vchar(c) && c != ' ') {
                return ngx_voice_http_fail(p, "invalid chunk extension");
            }

            break;

        case st_chunk_size_lf:
            if (c != '\n') {
                return ngx_voice_http_fail(p, "bare CR in chunk size line");
            }

            if (ngx_voice_http_chunk_line(p) != 0) {
                return NGX_VOICE_HTTP_ERROR;
            }

            break;

        case st_chunk_data_end:
            if (c == '\r') {
                p->state = st_chunk_data_lf;
                break;
            }

            /* fall through */

        case st_chunk_data_lf:
            if (c != '\n') {
                return ngx_voice_http_fail(p, "no CRLF after chunk data");
            }

            p->state = st_chunk_size;
            p->counted = 0;
            p->chunk_digits = 0;
            p->remain = 0;
            break;

        case st_trailer_start:
            if (c == '\r') {
                p->state = st_trailer_end_lf;

            } else if (c == '\n') {
                p->state = st_done_next;

            } else {
                p->state = st_trailer_line;
            }

            break;

        case st_trailer_end_lf:
            if (c != '\n') {
                return ngx_voice_http_fail(p, "bare CR in trailer section");
            }

            p->state = st_done_next;
            break;

        case st_trailer_line:
            if (c == '\n') {
                p->state = st_trailer_start;

            } else if (c == '\0') {
                return ngx_voice_http_fail(p, "NUL in trailer section");
            }

            break;

        default:
            return ngx_voice_http_fail(p, "internal parser state");
        }
    }
}


int
ngx_voice_http_eof(ngx_voice_http_parser_t *p)
{
    switch (p->state) {

    case st_body_close:
        p->state = st_finished;
        p->responses++;
        return NGX_VOICE_HTTP_DONE;

    case st_idle:
    case st_finished:
        return NGX_VOICE_HTTP_AGAIN;

    case st_status:
        if (p->counted == 0 && p->responses > 0) {
            return NGX_VOICE_HTTP_AGAIN;
        }

        if (p->counted == 0) {
            ngx_voice_http_fail(p, "connection closed before a response");
            return NGX_VOICE_HTTP_ERROR;
        }

        break;

    case st_error:
        return NGX_VOICE_HTTP_ERROR;

    default:
        break;
    }

    ngx_voice_http_fail(p, "connection closed in the middle of a response");

    return NGX_VOICE_HTTP_ERROR;
}


const char *
ngx_voice_http_header(const ngx_voice_http_parser_t *p, const char *name,
    size_t *len)
{
    size_t       off, n;
    unsigned     i;
    const char  *s, *v;

    if (p->buf == NULL || p->nfields == 0) {
        return NULL;
    }

    /* fields are stored as name NUL value NUL after the reason phrase */

    s = (const char *) p->buf;
    off = p->reason_len + 1;

    for (i = 0; i < p->nfields; i++) {
        n = strlen(s + off);
        v = s + off + n + 1;

        if (ngx_voice_http_eq(s + off, n, name)) {
            *len = strlen(v);
            return v;
        }

        off += n + 1 + strlen(v) + 1;
    }

    return NULL;
}


int
ngx_voice_http_list_has(const char *value, size_t len, const char *token)
{
    size_t  i, start, end, tlen;

    tlen = strlen(token);
    i = 0;

    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t'
                           || value[i] == ','))
        {
            i++;
        }

        start = i;

        while (i < len && value[i] != ',') {
            i++;
        }

        end = i;

        while (end > start && (value[end - 1] == ' '
                               || value[end - 1] == '\t'))
        {
            end--;
        }

        if (end - start == tlen
            && ngx_voice_http_eq(value + start, tlen, token))
        {
            return 1;
        }
    }

    return 0;
}


size_t
ngx_voice_http_request_len(const char *method, size_t method_len,
    const char *target, size_t target_len, const char *host,
    size_t host_len, const ngx_voice_http_field_t *fields, size_t nfields,
    const unsigned char *body, size_t body_len)
{
    size_t  i, j, len;
    char    num[24];

    if (method_len == 0 || target_len == 0 || host_len == 0) {
        return 0;
    }

    for (i = 0; i < method_len; i++) {
        if (!ngx_voice_http_tchar((unsigned char) method[i])) {
            return 0;
        }
    }

    for (i = 0; i < target_len; i++) {
        if (!ngx_voice_http_vchar((unsigned char) target[i])) {
            return 0;
        }
    }

    for (i = 0; i < host_len; i++) {
        if (!ngx_voice_http_vchar((unsigned char) host[i])) {
            return 0;
        }
    }

    /* "M T HTTP/1.1\r\n" "Host: h\r\n" ... "\r\n" */

    len = method_len + 1 + target_len + sizeof(" HTTP/1.1\r\n") - 1
          + sizeof("Host: \r\n") - 1 + host_len + 2;

    for (i = 0; i < nfields; i++) {
        if (fields[i].name_len == 0) {
            return 0;
        }

        for (j = 0; j < fields[i].name_len; j++) {
            if (!ngx_voice_http_tchar((unsigned char) fields[i].name[j])) {
                return 0;
            }
        }

        for (j = 0; j < fields[i].value_len; j++) {
            if (fields[i].value[j] == '\r' || fields[i].value[j] == '\n'
                || fields[i].value[j] == '\0')
            {
                return 0;
            }
        }

        len += fields[i].name_len + 2 + fields[i].value_len + 2;
    }

    if (body != NULL) {
        len += sizeof("Content-Length: \r\n") - 1
               + (size_t) snprintf(num, sizeof(num), "%zu", body_len)
               + body_len;
    }

    return len;
}


size_t
ngx_voice_http_request_write(unsigned char *dst, const char *method,
    size_t method_len, const char *target, size_t target_len,
    const char *host, size_t host_len, const ngx_voice_http_field_t *fields,
    size_t nfields, const unsigned char *body, size_t body_len)
{
    int             n;
    size_t          i, len;
    char            num[24];
    unsigned char  *p;

    len = ngx_voice_http_request_len(method, method_len, target, target_len,
                                     host, host_len, fields, nfields, body,
                                     body_len);
    if (len == 0) {
        return 0;
    }

    p = ngx_voice_http_cpy(dst, method, method_len);
    *p++ = ' ';
    p = ngx_voice_http_cpy(p, target, target_len);
    p = ngx_voice_http_cpy(p, " HTTP/1.1\r\nHost: ", 17);
    p = ngx_voice_http_cpy(p, host, host_len);
    p = ngx_voice_http_cpy(p, "\r\n", 2);

    for (i = 0; i < nfields; i++) {
        p = ngx_voice_http_cpy(p, fields[i].name, fields[i].name_len);
        p = ngx_voice_http_cpy(p, ": ", 2);
        p = ngx_voice_http_cpy(p, fields[i].value, fields[i].value_len);
        p = ngx_voice_http_cpy(p, "\r\n", 2);
    }

    if (body != NULL) {
        n = snprintf(num, sizeof(num), "%zu", body_len);
        p = ngx_voice_http_cpy(p, "Content-Length: ", 16);
        p = ngx_voice_http_cpy(p, num, (size_t) n);
        p = ngx_voice_http_cpy(p, "\r\n", 2);
    }

    p = ngx_voice_http_cpy(p, "\r\n", 2);

    if (body != NULL) {
        p = ngx_voice_http_cpy(p, body, body_len);
    }

    return (size_t) (p - dst);
}


static void
ngx_voice_http_response_reset(ngx_voice_http_parser_t *p)
{
    p->version = 0;
    p->status = 0;
    p->reason = "";
    p->reason_len = 0;
    p->body = NGX_VOICE_HTTP_BODY_NONE;
    p->content_length = 0;
    p->keepalive = 0;
    p->chunked = 0;
    p->has_length = 0;
    p->conn_close = 0;
    p->conn_keepalive = 0;
    p->conn_upgrade = 0;
    p->event_stream = 0;
    p->nfields = 0;

    p->state = st_status;
    p->line_state = 0;
    p->used = 0;
    p->line_start = 0;
    p->counted = 0;
    p->remain = 0;
    p->chunk_digits = 0;
}


static int
ngx_voice_http_fail(ngx_voice_http_parser_t *p, const char *error)
{
    p->state = st_error;
    p->error = error;
    p->keepalive = 0;

    return NGX_VOICE_HTTP_ERROR;
}


/*
 * Appends the input up to the end of a line to the header buffer.  The
 * line is then buf[line_start, used) without its CRLF or LF.
 */

static int
ngx_voice_http_read_line(ngx_voice_http_parser_t *p, const unsigned char *in,
    size_t len, size_t *pos)
{
    size_t         i;
    unsigned char  c;

    for (i = *pos; i < len; i++) {
        c = in[i];

        if (++p->counted > p->max_header) {
            *pos = i;
            ngx_voice_http_fail(p, "response header too large");
            return NGX_VOICE_HTTP_LINE_BAD;
        }

        if (p->line_state) {
            if (c != '\n') {
                *pos = i;
                ngx_voice_http_fail(p, "bare CR in response header");
                return NGX_VOICE_HTTP_LINE_BAD;
            }

            p->line_state = 0;
            *pos = i + 1;
            return NGX_VOICE_HTTP_LINE_OK;
        }

        if (c == '\n') {
            *pos = i + 1;
            return NGX_VOICE_HTTP_LINE_OK;
        }

        if (c == '\r') {
            p->line_state = 1;
            continue;
        }

        p->buf[p->used++] = c;
    }

    *pos = len;

    return NGX_VOICE_HTTP_LINE_MORE;
}


static int
ngx_voice_http_status_line(ngx_voice_http_parser_t *p)
{
    size_t          len, i;
    unsigned char  *s;

    s = p->buf;
    len = p->used;

    /* HTTP/1.x SP 3DIGIT [SP reason] */

    if (len < 12 || memcmp(s, "HTTP/1.", 7) != 0
        || (s[7] != '0' && s[7] != '1') || s[8] != ' ')
    {
        return ngx_voice_http_fail(p, "invalid status line");
    }

    if (s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9'
        || s[11] < '0' || s[11] > '9' || (len > 12 && s[12] != ' '))
    {
        return ngx_voice_http_fail(p, "invalid status code");
    }

    for (i = 13; i < len; i++) {
        if (s[i] != '\t' && s[i] != ' ' && !ngx_voice_http_vchar(s[i])) {
            return ngx_voice_http_fail(p, "invalid reason phrase");
        }
    }

    p->version = (s[7] == '1') ? 11 : 10;
    p->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');

    len = (len > 13) ? len - 13 : 0;
    memmove(s, s + 13, len);
    s[len] = '\0';

    p->reason = (const char *) s;
    p->reason_len = len;
    p->used = len + 1;
    p->line_start = p->used;
    p->state = st_fields;

    return 0;
}


static int
ngx_voice_http_field(ngx_voice_http_parser_t *p, ngx_voice_http_event_t *ev)
{
    size_t          i, len, name_len, vstart, vend;
    uint64_t        cl;
    unsigned char  *s, c;

    s = p->buf + p->line_start;
    len = p->used - p->line_start;

    if (s[0] == ' ' || s[0] == '\t') {
        return ngx_voice_http_fail(p, "obsolete line folding");
    }

    for (i = 0; i < len && s[i] != ':'; i++) {
        if (!ngx_voice_http_tchar(s[i])) {
            return ngx_voice_http_fail(p, "invalid header field name");
        }
    }

    if (i == len || i == 0) {
        return ngx_voice_http_fail(p, "invalid header field name");
    }

    name_len = i;
    vstart = i + 1;

    while (vstart < len && (s[vstart] == ' ' || s[vstart] == '\t')) {
        vstart++;
    }

    vend = len;

    while (vend > vstart && (s[vend - 1] == ' ' || s[vend - 1] == '\t')) {
        vend--;
    }

    for (i = vstart; i < vend; i++) {
        c = s[i];

        if (c != '\t' && c != ' ' && !ngx_voice_http_vchar(c)) {
            return ngx_voice_http_fail(p, "invalid header field value");
        }
    }

    /* store as name NUL value NUL; fits: the raw line had ':' and LF */

    s[name_len] = '\0';
    memmove(s + name_len + 1, s + vstart, vend - vstart);
    s[name_len + 1 + vend - vstart] = '\0';

    ev->name = (const char *) s;
    ev->name_len = name_len;
    ev->value = (const char *) s + name_len + 1;
    ev->value_len = vend - vstart;

    p->used = p->line_start + name_len + 1 + ev->value_len + 1;
    p->line_start = p->used;
    p->nfields++;

    if (ngx_voice_http_eq(ev->name, name_len, "content-length")) {
        if (ev->value_len == 0) {
            return ngx_voice_http_fail(p, "invalid Content-Length");
        }

        cl = 0;

        for (i = 0; i < ev->value_len; i++) {
            c = (unsigned char) ev->value[i];

            if (c < '0' || c > '9') {
                return ngx_voice_http_fail(p, "invalid Content-Length");
            }

            if (cl > (UINT64_MAX - (c - '0')) / 10) {
                return ngx_voice_http_fail(p, "Content-Length overflow");
            }

            cl = cl * 10 + (c - '0');
        }

        if (p->has_length && cl != p->content_length) {
            return ngx_voice_http_fail(p, "conflicting Content-Length");
        }

        p->has_length = 1;
        p->content_length = cl;

    } else if (ngx_voice_http_eq(ev->name, name_len, "transfer-encoding")) {

        if (p->chunked
            || !ngx_voice_http_eq(ev->value, ev->value_len, "chunked"))
        {
            return ngx_voice_http_fail(p, "unsupported Transfer-Encoding");
        }

        p->chunked = 1;

    } else if (ngx_voice_http_eq(ev->name, name_len, "connection")) {
        if (ngx_voice_http_list_has(ev->value, ev->value_len, "close")) {
            p->conn_close = 1;
        }

        if (ngx_voice_http_list_has(ev->value, ev->value_len, "keep-alive"))
        {
            p->conn_keepalive = 1;
        }

        if (ngx_voice_http_list_has(ev->value, ev->value_len, "upgrade")) {
            p->conn_upgrade = 1;
        }

    } else if (ngx_voice_http_eq(ev->name, name_len, "content-type")) {
        if (ev->value_len >= 17
            && ngx_voice_http_eq(ev->value, 17, "text/event-stream")
            && (ev->value_len == 17 || ev->value[17] == ';'
                || ev->value[17] == ' ' || ev->value[17] == '\t'))
        {
            p->event_stream = 1;
        }
    }

    if (p->status < 200 && p->status != 101) {
        /* fields of an interim response are not reported */
        memset(ev, 0, sizeof(ngx_voice_http_event_t));
        return NGX_VOICE_HTTP_AGAIN;
    }

    return NGX_VOICE_HTTP_HEADER;
}


static int
ngx_voice_http_header_done(ngx_voice_http_parser_t *p)
{
    if (p->status < 200 && p->status != 101) {
        ngx_voice_http_response_reset(p);
        return NGX_VOICE_HTTP_AGAIN;
    }

    if (p->version == 11) {
        p->keepalive = !p->conn_close;

    } else {
        p->keepalive = p->conn_keepalive && !p->conn_close;
    }

    if (p->status == 101) {
        p->body = NGX_VOICE_HTTP_BODY_UPGRADE;
        p->keepalive = 0;
        p->state = st_done_next;

    } else if (p->head || p->status == 204 || p->status == 304) {
        p->body = NGX_VOICE_HTTP_BODY_NONE;
        p->state = st_done_next;

    } else if (p->chunked) {
        /* RFC 9112 6.3: chunked wins over Content-Length, but then the
         * framing is suspect and the connection must not be reused */

        p->body = NGX_VOICE_HTTP_BODY_CHUNKED;

        if (p->has_length) {
            p->keepalive = 0;
        }

        p->state = st_chunk_size;
        p->counted = 0;
        p->chunk_digits = 0;
        p->remain = 0;

    } else if (p->has_length) {
        p->body = NGX_VOICE_HTTP_BODY_LENGTH;
        p->remain = p->content_length;
        p->state = p->remain ? st_body_length : st_done_next;

    } else {
        p->body = NGX_VOICE_HTTP_BODY_CLOSE;
        p->keepalive = 0;
        p->state = st_body_close;
    }

    return NGX_VOICE_HTTP_HEADER_DONE;
}


static int
ngx_voice_http_done(ngx_voice_http_parser_t *p)
{
    p->responses++;

    /* the header strings stay valid: the reset waits for the next call */

    p->state = p->keepalive ? st_idle : st_finished;

    return NGX_VOICE_HTTP_DONE;
}


static int
ngx_voice_http_chunk_line(ngx_voice_http_parser_t *p)
{
    if (p->remain == 0) {
        p->state = st_trailer_start;
        p->counted = 0;

    } else {
        p->state = st_chunk_data;
    }

    return 0;
}


static int
ngx_voice_http_eq(const char *a, size_t len, const char *lc)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (lc[i] == '\0'
            || ngx_voice_http_lc(a[i]) != ngx_voice_http_lc(lc[i]))
        {
            return 0;
        }
    }

    return lc[len] == '\0';
}


static int
ngx_voice_http_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }

    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}


static int
ngx_voice_http_vchar(unsigned char c)
{
    /* VCHAR and obs-text */
    return c > 0x20 && c != 0x7f;
}




static unsigned char *
ngx_voice_http_cpy(unsigned char *p, const void *s, size_t len)
{
    if (len) {
        memcpy(p, s, len);
    }

    return p + len;
}
