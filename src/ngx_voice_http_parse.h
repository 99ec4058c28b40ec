/*
 * Copyright (C) ngx_voice authors
 *
 * HTTP/1.1 client side: a resumable response parser with private state
 * (one per outbound leg; nginx's own parsers keep state in the request)
 * and a request builder into a caller buffer.  nginx-free; libc only.
 *
 * Parsing model: the caller feeds bytes as they arrive and pulls one
 * event per call.  The status line and header fields are copied into a
 * buffer of max_header bytes allocated once at init (so they survive any
 * split); the body is never copied: BODY events point into the input.
 *
 * Decisions (RFC 9112):
 *   - a bare LF ends a line like CRLF (RFC 9112 2.2 allows it); a CR not
 *     followed by LF is an error, as are NUL and other controls but HT in
 *     field values;
 *   - obs-fold (a line starting with SP/HT), whitespace before the colon
 *     and an empty field name are errors;
 *   - only HTTP/1.0 and HTTP/1.1 are accepted; the status code is 3
 *     digits 100-599; the reason phrase may be empty or absent;
 *   - interim 1xx responses other than 101 are skipped silently (their
 *     fields are not reported) and the final response follows;
 *   - Transfer-Encoding other than exactly "chunked" is an error (we never
 *     ask for codings); Transfer-Encoding with Content-Length: chunked
 *     wins and the connection is not reusable; differing Content-Length
 *     values are an error; identical repeats are accepted;
 *   - 101, 204, 304, 1xx and responses to HEAD have no body; without
 *     Content-Length or chunked the body is delimited by the close;
 *   - chunk extensions and trailer fields are skipped (not reported) and
 *     count against max_header per chunk line / trailer section.
 */


#ifndef _NGX_VOICE_HTTP_PARSE_H_INCLUDED_
#define _NGX_VOICE_HTTP_PARSE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* events returned by ngx_voice_http_parse() */
#define NGX_VOICE_HTTP_AGAIN       0   /* all input consumed, need more */
#define NGX_VOICE_HTTP_HEADER      1   /* ev->name, ev->value: one field */
#define NGX_VOICE_HTTP_HEADER_DONE 2   /* status + framing known in *p */
#define NGX_VOICE_HTTP_BODY        3   /* ev->data, ev->len (in place) */
#define NGX_VOICE_HTTP_DONE        4   /* response complete */
#define NGX_VOICE_HTTP_ERROR       5   /* p->error holds a static text */

/* p->body: how the body is delimited (known at HEADER_DONE) */
#define NGX_VOICE_HTTP_BODY_NONE     0
#define NGX_VOICE_HTTP_BODY_LENGTH   1
#define NGX_VOICE_HTTP_BODY_CHUNKED  2
#define NGX_VOICE_HTTP_BODY_CLOSE    3
#define NGX_VOICE_HTTP_BODY_UPGRADE  4   /* 101: bytes after are not HTTP */


typedef struct {
    /* HEADER: NUL-terminated, in p's header buffer (see lifetimes) */
    const char           *name;
    size_t                name_len;
    const char           *value;       /* OWS trimmed */
    size_t                value_len;

    /* BODY: points into the input passed to this call */
    const unsigned char  *data;
    size_t                len;
} ngx_voice_http_event_t;


typedef struct {
    /* set by the caller; kept across responses */
    unsigned              head;        /* the request was HEAD: no body */

    /* the response; valid from HEADER_DONE until the next response */
    unsigned              version;     /* 10 or 11 */
    unsigned              status;      /* 101..599 */
    const char           *reason;      /* NUL-terminated, may be "" */
    size_t                reason_len;
    unsigned              body;        /* NGX_VOICE_HTTP_BODY_* */
    uint64_t              content_length;  /* BODY_LENGTH */
    unsigned              keepalive;   /* reusable after DONE */
    unsigned              chunked;     /* Transfer-Encoding: chunked */
    unsigned              has_length;  /* Content-Length seen */
    unsigned              conn_close;  /* Connection: close */
    unsigned              conn_keepalive;
    unsigned              conn_upgrade;
    unsigned              event_stream; /* Content-Type text/event-stream */
    unsigned              nfields;

    /* internal */
    unsigned              state;
    unsigned              line_state;
    unsigned char        *buf;         /* max_header bytes */
    size_t                max_header;
    size_t                used;        /* stored fields + current line */
    size_t                line_start;
    size_t                counted;     /* raw header bytes so far */
    uint64_t              remain;      /* body or chunk bytes left */
    unsigned              chunk_digits;
    unsigned              responses;

    const char           *error;       /* static text on ERROR */
} ngx_voice_http_parser_t;


/*
 * Allocates the header buffer (max_header bytes: status line, fields and
 * their line ends all count; 8192 is a good value) and prepares for a
 * response.  Returns 0, or -1 when malloc() fails.
 */
int ngx_voice_http_parser_init(ngx_voice_http_parser_t *p,
    size_t max_header);

/* frees the buffer; safe on a zeroed or freed parser */
void ngx_voice_http_parser_free(ngx_voice_http_parser_t *p);

/* forgets any response in progress (e.g. a new connection) */
void ngx_voice_http_parser_reset(ngx_voice_http_parser_t *p);

/*
 * Feeds len bytes at in and returns the next event; *consumed is how many
 * input bytes it used.  The caller handles the event and calls again with
 * in + consumed until AGAIN (then consumed == len) or ERROR.
 *
 * Lifetimes: BODY data points into in (no copy).  HEADER names/values
 * and p->reason live in p's buffer until the call after DONE.
 *
 * DONE: the response ended exactly at in + consumed.  If p->keepalive,
 * the next call starts the next response (back-to-back responses in one
 * input work).  Otherwise the connection must not be reused: after a 101
 * (p->body == BODY_UPGRADE) the remaining bytes are WebSocket frames for
 * the frame reader; any further call returns ERROR.
 *
 * After ERROR every call returns ERROR with *consumed == 0; p->error is
 * a static text for the log.
 */
int ngx_voice_http_parse(ngx_voice_http_parser_t *p, const unsigned char *in,
    size_t len, size_t *consumed, ngx_voice_http_event_t *ev);

/*
 * The peer closed the connection.  Returns DONE when that completes a
 * close-delimited body, AGAIN when no response was in progress (clean
 * close of an idle keep-alive connection, or after DONE), ERROR (with
 * p->error) when a response was cut short.
 */
int ngx_voice_http_eof(ngx_voice_http_parser_t *p);

/*
 * Case-insensitive lookup of a field of the current response, valid
 * after HEADER_DONE and until the next response.  Returns the first
 * occurrence's value (NUL-terminated, *len set) or NULL.
 */
const char *ngx_voice_http_header(const ngx_voice_http_parser_t *p,
    const char *name, size_t *len);

/* 1 when the value is a comma-separated list containing token
 * (case-insensitive), e.g. Connection: keep-alive, Upgrade */
int ngx_voice_http_list_has(const char *value, size_t len,
    const char *token);


typedef struct {
    const char           *name;
    size_t                name_len;
    const char           *value;
    size_t                value_len;
} ngx_voice_http_field_t;


/*
 * Request builder: "METHOD target HTTP/1.1\r\nHost: host\r\n" + fields +
 * "Content-Length: N\r\n" (only when body != NULL, even for N == 0) +
 * "\r\n" + body.  _len() returns the exact size, or 0 when an argument
 * would break the framing: method or field name not a token, target or
 * host with SP or controls, field value with CR, LF or NUL.  _write()
 * writes that many bytes to dst and returns the count (0 when invalid).
 */
size_t ngx_voice_http_request_len(const char *method, size_t method_len,
    const char *target, size_t target_len, const char *host,
    size_t host_len, const ngx_voice_http_field_t *fields, size_t nfields,
    const unsigned char *body, size_t body_len);
size_t ngx_voice_http_request_write(unsigned char *dst, const char *method,
    size_t method_len, const char *target, size_t target_len,
    const char *host, size_t host_len, const ngx_voice_http_field_t *fields,
    size_t nfields, const unsigned char *body, size_t body_len);


#endif /* _NGX_VOICE_HTTP_PARSE_H_INCLUDED_ */
