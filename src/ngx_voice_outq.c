/*
 * Copyright (C) ngx_voice authors
 *
 * The output queue of a socket we write to: fixed blocks allocated once
 * and recycled for the whole connection, so a long call never grows
 * memory, and a hard cap so a peer that stops reading cannot make us
 * buffer without bound.  Frames are appended after the bytes of a block
 * that are still pending; pending bytes are never moved, which keeps
 * OpenSSL's write retry rules (same buffer, same length) intact.
 */


#include "ngx_voice.h"


static ngx_chain_t *ngx_voice_outq_block(ngx_voice_outq_t *q);


void
ngx_voice_outq_init(ngx_voice_outq_t *q, ngx_pool_t *pool, size_t limit)
{
    q->out = NULL;
    q->last = &q->out;
    q->free = NULL;
    q->pool = pool;
    q->pending = 0;
    q->limit = limit;
    q->blocks = 0;
}


/*
 * Returns room for n contiguous bytes (n <= NGX_VOICE_OUT_BLOCK) at the
 * end of the queue, or NULL when the bytes would exceed the limit or no
 * memory is left.
 */

u_char *
ngx_voice_outq_reserve(ngx_voice_outq_t *q, size_t n)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    if (n > NGX_VOICE_OUT_BLOCK || q->pending + n > q->limit) {
        return NULL;
    }

    if (q->out) {
        cl = (ngx_chain_t *) ((u_char *) q->last
                              - offsetof(ngx_chain_t, next));
        b = cl->buf;

        if ((size_t) (b->end - b->last) >= n) {
            return b->last;
        }
    }

    cl = ngx_voice_outq_block(q);
    if (cl == NULL) {
        return NULL;
    }

    *q->last = cl;
    q->last = &cl->next;

    return cl->buf->last;
}


void
ngx_voice_outq_commit(ngx_voice_outq_t *q, size_t n)
{
    ngx_chain_t  *cl;

    cl = (ngx_chain_t *) ((u_char *) q->last - offsetof(ngx_chain_t, next));

    cl->buf->last += n;
    q->pending += n;
}


/*
 * Writes what the socket takes.  NGX_OK: the queue is empty; NGX_AGAIN:
 * bytes remain (the caller waits for the write event); NGX_ERROR.
 */

ngx_int_t
ngx_voice_outq_send(ngx_voice_outq_t *q, ngx_connection_t *c)
{
    size_t        left;
    ngx_buf_t    *b;
    ngx_chain_t  *cl, *ln, *last;

    if (q->out == NULL) {
        if (!(c->buffered & NGX_LOWLEVEL_BUFFERED)) {
            return NGX_OK;
        }

        /* only TLS's own buffer holds bytes: flush it */
        if (c->send_chain(c, NULL, 0) == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }

        return (c->buffered & NGX_LOWLEVEL_BUFFERED) ? NGX_AGAIN : NGX_OK;
    }

    /* TLS with NGX_SSL_BUFFER holds small writes until a flush buffer */
    last = (ngx_chain_t *) ((u_char *) q->last
                            - offsetof(ngx_chain_t, next));
    last->buf->flush = 1;

    cl = c->send_chain(c, q->out, 0);

    if (cl == NGX_CHAIN_ERROR) {
        c->error = 1;
        return NGX_ERROR;
    }

    /* recycle the blocks wholly sent */

    while (q->out != cl) {
        ln = q->out;
        q->out = ln->next;

        b = ln->buf;
        b->pos = b->start;
        b->last = b->start;
        b->flush = 0;

        ln->next = q->free;
        q->free = ln;
    }

    if (q->out == NULL) {
        q->last = &q->out;
        q->pending = 0;

        return (c->buffered & NGX_LOWLEVEL_BUFFERED) ? NGX_AGAIN : NGX_OK;
    }

    left = 0;

    for (ln = q->out; ln; ln = ln->next) {
        left += ln->buf->last - ln->buf->pos;
    }

    q->pending = left;

    return NGX_AGAIN;
}


static ngx_chain_t *
ngx_voice_outq_block(ngx_voice_outq_t *q)
{
    ngx_chain_t  *cl;

    if (q->free) {
        cl = q->free;
        q->free = cl->next;
        cl->next = NULL;
        return cl;
    }

    cl = ngx_alloc_chain_link(q->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = ngx_create_temp_buf(q->pool, NGX_VOICE_OUT_BLOCK);
    if (cl->buf == NULL) {
        return NULL;
    }

    cl->next = NULL;
    q->blocks++;

    return cl;
}
