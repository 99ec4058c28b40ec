/*
 * Copyright (C) ngx_voice authors
 *
 * Server-Sent Events parser (WHATWG HTML "event stream interpretation"):
 * resumable at any byte, CRLF/CR/LF line ends, leading BOM, comments,
 * fields without a colon, data/event/id/retry.  Fixed memory: one buffer
 * of max_event (+ a small slack) allocated at init and reused for every
 * event; no allocation per event.  nginx-free; libc only.
 */


#ifndef _NGX_VOICE_SSE_H_INCLUDED_
#define _NGX_VOICE_SSE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_VOICE_SSE_AGAIN        0   /* all input consumed */
#define NGX_VOICE_SSE_EVENT        1   /* *ev holds a dispatched event */
#define NGX_VOICE_SSE_ERROR        2   /* p->error: static text */

#define NGX_VOICE_SSE_MAX_TYPE     64  /* longer "event:" is an error */
#define NGX_VOICE_SSE_MAX_ID       256 /* longer "id:" is an error */
#define NGX_VOICE_SSE_SLACK        16  /* buffer room for "data: " */


typedef struct {
    const char           *type;      /* "message" unless "event:" set */
    size_t                type_len;
    const char           *data;      /* lines joined with "\n", NUL after */
    size_t                len;
    const char           *id;        /* last event id, "" if none */
    size_t                id_len;
} ngx_voice_sse_event_t;


typedef struct {
    size_t                max_event;
    unsigned char        *buf;       /* max_event + SLACK bytes */
    size_t                dlen;      /* data of the event being built */
    size_t                line_len;  /* current line, at buf + dlen */
    unsigned              have_data;
    unsigned              dispatched;
    unsigned              state;
    unsigned              bom;       /* BOM bytes matched, 3: past it */

    char                  type[NGX_VOICE_SSE_MAX_TYPE + 1];
    size_t                type_len;
    char                  id[NGX_VOICE_SSE_MAX_ID + 1];
    size_t                id_len;
    uint64_t              retry;     /* last "retry:" in ms, 0 if none */

    const char           *error;
} ngx_voice_sse_parser_t;


/*
 * max_event bounds the data of one event (lines joined with "\n"), and a
 * single line of any field; beyond it the stream fails with "event too
 * large".  Returns 0, or -1 when malloc() fails.
 */
int ngx_voice_sse_init(ngx_voice_sse_parser_t *p, size_t max_event);
void ngx_voice_sse_free(ngx_voice_sse_parser_t *p);

/* restart at the beginning of a new stream (BOM allowed again) */
void ngx_voice_sse_reset(ngx_voice_sse_parser_t *p);

/*
 * Feeds len bytes at in; *consumed is how many were used.  On EVENT the
 * caller handles *ev and calls again with the rest of the input.  The
 * event's strings live in p and stay valid until the next call.  A blank
 * line with no "data:" line before it dispatches nothing (per WHATWG); an
 * incomplete event at the end of the stream is simply never dispatched.
 * After ERROR every call returns ERROR.
 */
int ngx_voice_sse_parse(ngx_voice_sse_parser_t *p, const unsigned char *in,
    size_t len, size_t *consumed, ngx_voice_sse_event_t *ev);


#endif /* _NGX_VOICE_SSE_H_INCLUDED_ */
