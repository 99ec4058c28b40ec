/*
 * Copyright (C) ngx_voice authors
 *
 * "voice_pipeline echo": a diagnostic mode that needs no provider.  The
 * caller's audio is played back after voice_echo_delay, with a mark
 * after every voice_echo_mark_every media messages; any DTMF digit sends
 * "clear" and drops the audio not yet echoed; "stop" closes the stream.
 * Operators use it to check Twilio connectivity; tests use it to check
 * the server on its own.
 *
 * The delay line is a fixed ring of contiguous segments, sized from the
 * delay at start, so an hour-long call allocates nothing after "start".
 */


#include "ngx_voice.h"


typedef struct {
    ngx_msec_t                due;
    uint32_t                  off;
    uint32_t                  len;
} ngx_voice_echo_seg_t;


typedef struct {
    ngx_voice_call_t         *call;
    ngx_event_t               timer;

    u_char                   *ring;
    size_t                    size;
    size_t                    tail;            /* where the next one goes */

    ngx_voice_echo_seg_t     *segs;
    ngx_uint_t                nsegs;
    ngx_uint_t                first;
    ngx_uint_t                count;

    ngx_uint_t                echoed;          /* media messages sent */
    ngx_uint_t                dropped;
} ngx_voice_echo_t;


static ngx_int_t ngx_voice_echo_start(ngx_voice_call_t *call);
static ngx_int_t ngx_voice_echo_media(ngx_voice_call_t *call, u_char *audio,
    size_t len);
static ngx_int_t ngx_voice_echo_dtmf(ngx_voice_call_t *call, u_char digit);
static ngx_int_t ngx_voice_echo_mark(ngx_voice_call_t *call,
    ngx_str_t *name);
static ngx_int_t ngx_voice_echo_stop(ngx_voice_call_t *call);
static void ngx_voice_echo_cleanup(ngx_voice_call_t *call);
static u_char *ngx_voice_echo_room(ngx_voice_echo_t *e, size_t len);
static ngx_int_t ngx_voice_echo_send(ngx_voice_echo_t *e, u_char *audio,
    size_t len);
static ngx_int_t ngx_voice_echo_flush(ngx_voice_echo_t *e);
static void ngx_voice_echo_timer(ngx_event_t *ev);


ngx_voice_mode_t  ngx_voice_echo_mode = {
    ngx_string("echo"),
    0,
    ngx_voice_echo_start,
    ngx_voice_echo_media,
    ngx_voice_echo_dtmf,
    ngx_voice_echo_mark,
    ngx_voice_echo_stop,
    NULL,
    ngx_voice_echo_cleanup
};


static ngx_int_t
ngx_voice_echo_start(ngx_voice_call_t *call)
{
    ngx_msec_t         delay;
    ngx_pool_t        *pool;
    ngx_voice_echo_t  *e;

    pool = call->request->pool;
    delay = call->conf->echo_delay;

    e = ngx_pcalloc(pool, sizeof(ngx_voice_echo_t));
    if (e == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    e->call = call;
    call->mode_ctx = e;

    e->timer.handler = ngx_voice_echo_timer;
    e->timer.data = call;
    e->timer.log = call->connection->log;
    e->timer.cancelable = 1;

    if (delay == 0) {
        return NGX_OK;
    }

    /* twice the delay of 8 kHz audio: room for a burst of early frames */
    e->size = delay * 16 + 4096;
    e->nsegs = delay / 10 + 32;

    e->ring = ngx_palloc(pool, e->size);
    e->segs = ngx_palloc(pool, e->nsegs * sizeof(ngx_voice_echo_seg_t));

    if (e->ring == NULL || e->segs == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_voice_echo_media(ngx_voice_call_t *call, u_char *audio, size_t len)
{
    u_char                *p;
    ngx_voice_echo_t      *e;
    ngx_voice_echo_seg_t  *seg;

    e = call->mode_ctx;

    if (e->size == 0) {
        return ngx_voice_echo_send(e, audio, len);
    }

    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_voice_echo_room(e, len);

    if (p == NULL) {
        if (e->dropped++ == 0) {
            ngx_log_error(NGX_LOG_WARN, call->connection->log, 0,
                          "voice: echo: caller audio arrives faster than "
                          "real time, dropping the oldest");
        }

        return NGX_OK;
    }

    ngx_memcpy(p, audio, len);

    seg = &e->segs[(e->first + e->count) % e->nsegs];
    seg->due = ngx_current_msec + call->conf->echo_delay;
    seg->off = p - e->ring;
    seg->len = len;

    e->count++;
    e->tail = seg->off + len;

    return ngx_voice_echo_flush(e);
}


/* contiguous room for len bytes, dropping the oldest audio if needed */

static u_char *
ngx_voice_echo_room(ngx_voice_echo_t *e, size_t len)
{
    size_t  head;

    if (len > e->size) {
        return NULL;
    }

    for ( ;; ) {

        if (e->count == 0) {
            e->tail = 0;
            return e->ring;
        }

        if (e->count < e->nsegs) {
            head = e->segs[e->first].off;

            if (e->tail > head) {
                if (e->tail + len <= e->size) {
                    return e->ring + e->tail;
                }

                if (len <= head) {
                    return e->ring;
                }

            } else if (e->tail + len <= head) {
                return e->ring + e->tail;
            }
        }

        /* full: the oldest segment goes unheard */
        e->first = (e->first + 1) % e->nsegs;
        e->count--;
        e->dropped++;
    }
}


static ngx_int_t
ngx_voice_echo_flush(ngx_voice_echo_t *e)
{
    ngx_msec_int_t         wait;
    ngx_voice_echo_seg_t  *seg;

    while (e->count) {
        seg = &e->segs[e->first];
        wait = (ngx_msec_int_t) (seg->due - ngx_current_msec);

        if (wait > 0) {
            if (!e->timer.timer_set) {
                ngx_add_timer(&e->timer, (ngx_msec_t) wait);
            }

            return NGX_OK;
        }

        e->first = (e->first + 1) % e->nsegs;
        e->count--;

        if (ngx_voice_echo_send(e, e->ring + seg->off, seg->len) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_voice_echo_send(ngx_voice_echo_t *e, u_char *audio, size_t len)
{
    u_char             *p;
    ngx_voice_call_t   *call;
    u_char              name[32];

    call = e->call;

    if (ngx_voice_call_send_media(call, audio, len) != NGX_OK) {
        return NGX_ERROR;
    }

    if (++e->echoed % call->conf->echo_mark_every == 0) {
        p = ngx_sprintf(name, "echo-%ui",
                        e->echoed / call->conf->echo_mark_every);

        return ngx_voice_call_send_mark(call, name, p - name);
    }

    return NGX_OK;
}


static void
ngx_voice_echo_timer(ngx_event_t *ev)
{
    ngx_connection_t  *c;
    ngx_voice_call_t  *call;

    call = ev->data;
    c = call->connection;

    if (call->state == NGX_VOICE_CALL_STARTED) {
        (void) ngx_voice_echo_flush(call->mode_ctx);
    }

    ngx_voice_ws_event_done(call);

    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_voice_echo_dtmf(ngx_voice_call_t *call, u_char digit)
{
    ngx_voice_echo_t  *e;

    e = call->mode_ctx;

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: echo: DTMF \"%c\", clearing %ui pending segments",
                  digit, e->count);

    e->count = 0;

    if (e->timer.timer_set) {
        ngx_del_timer(&e->timer);
    }

    return ngx_voice_call_send_clear(call);
}


static ngx_int_t
ngx_voice_echo_mark(ngx_voice_call_t *call, ngx_str_t *name)
{
    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: echo: mark \"%V\" played", name);

    return NGX_OK;
}


static ngx_int_t
ngx_voice_echo_stop(ngx_voice_call_t *call)
{
    return ngx_voice_ws_close(call, NGX_VOICE_WS_CLOSE_NORMAL,
                              "stream stopped");
}


static void
ngx_voice_echo_cleanup(ngx_voice_call_t *call)
{
    ngx_voice_echo_t  *e;

    e = call->mode_ctx;

    if (e == NULL) {
        return;
    }

    if (e->timer.timer_set) {
        ngx_del_timer(&e->timer);
    }

    if (e->timer.posted) {
        ngx_delete_posted_event(&e->timer);
    }

    if (e->dropped) {
        ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                      "voice: echo: %ui segments dropped", e->dropped);
    }
}
