/*
 * Copyright (C) ngx_voice authors
 *
 * The text-to-speech interface: the fields every vendor shares are set
 * here, and each call goes to the configured vendor's implementation.
 */


#include "ngx_voice_tts.h"
#include "ngx_voice_persona.h"


static ngx_int_t ngx_voice_tts_may_reconnect(ngx_voice_tts_t *tts,
    ngx_voice_leg_error_e err);


static ngx_voice_tts_ops_t  *ngx_voice_tts_vendors[] = {
    &ngx_voice_tts_elevenlabs_ops,      /* NGX_VOICE_TTS_ELEVENLABS */
    &ngx_voice_tts_aura_ops             /* NGX_VOICE_TTS_AURA */
};


ngx_int_t
ngx_voice_tts_start(ngx_voice_tts_t *tts, ngx_voice_call_t *call,
    ngx_voice_tts_conf_t *conf, ngx_voice_tts_events_t *events, void *owner,
    ngx_str_t *voice)
{
    ngx_memzero(tts, sizeof(ngx_voice_tts_t));

    if (conf->vendor >= sizeof(ngx_voice_tts_vendors)
                        / sizeof(ngx_voice_tts_vendors[0]))
    {
        return NGX_ERROR;
    }

    tts->conf = conf;
    tts->call = call;
    tts->events = events;
    tts->owner = owner;
    tts->ops = ngx_voice_tts_vendors[conf->vendor];

    if (voice) {
        tts->voice = *voice;
    }

    tts->text = ngx_pnalloc(call->request->pool, NGX_VOICE_TTS_TEXT_MAX);
    if (tts->text == NULL) {
        return NGX_ERROR;
    }

    return tts->ops->start(tts);
}


ngx_int_t
ngx_voice_tts_say(ngx_voice_tts_t *tts, ngx_uint_t turn, u_char *text,
    size_t len, ngx_uint_t last)
{
    return tts->ops->say(tts, turn, text, len, last);
}


ngx_int_t
ngx_voice_tts_cancel(ngx_voice_tts_t *tts)
{
    return tts->ops->cancel(tts);
}


ngx_int_t
ngx_voice_tts_finish(ngx_voice_tts_t *tts)
{
    return tts->ops->finish(tts);
}


void
ngx_voice_tts_abort(ngx_voice_tts_t *tts)
{
    /* start failed before a vendor was chosen: nothing to end */
    if (tts->ops == NULL) {
        tts->done = 1;
        return;
    }

    tts->ops->abort(tts);
}


/*
 * After the provider's socket closed unexpectedly: NGX_OK to connect
 * again (to the provider's next endpoint when there is one), NGX_DECLINED
 * to give up: a refusal that will not change (a certificate, a 4xx
 * upgrade answer) with no other endpoint, the worker exiting, or too
 * many attempts without audio in between.  Logged here, once.
 */

static ngx_int_t
ngx_voice_tts_may_reconnect(ngx_voice_tts_t *tts, ngx_voice_leg_error_e err)
{
    ngx_uint_t             level;
    ngx_voice_wsc_t       *ws;
    ngx_voice_endpoint_t  *next;

    ws = &tts->ws;
    next = ngx_voice_endpoint_next(ws->leg.ep);

    if (ngx_exiting || tts->refused
        || tts->retries++ >= NGX_VOICE_TTS_RETRIES)
    {
        goto give_up;
    }

    if (next && err != NGX_VOICE_LEG_OK) {
        ws->leg.ep = next;

        ngx_log_error(NGX_LOG_WARN, &ws->leg.log, 0,
                      "voice: text-to-speech failed (%s), trying the next "
                      "endpoint", ngx_voice_leg_strerror(err));
        return NGX_OK;
    }

    if (err == NGX_VOICE_LEG_ERR_VERIFY
        || (err == NGX_VOICE_LEG_ERR_HANDSHAKE && ws->status >= 400
            && ws->status < 500 && ws->status != 429))
    {
        goto give_up;
    }

    /* a single-context socket closes after every turn: not a fault */
    level = (err == NGX_VOICE_LEG_OK) ? NGX_LOG_INFO : NGX_LOG_WARN;

    ngx_log_error(level, &ws->leg.log, 0,
                  "voice: text-to-speech socket closed (%s), reconnecting",
                  ngx_voice_leg_strerror(err));
    return NGX_OK;

give_up:

    ngx_log_error(NGX_LOG_ERR, &ws->leg.log, 0,
                  "voice: text-to-speech refused (%s), not retrying",
                  ngx_voice_leg_strerror(err));
    return NGX_DECLINED;
}


/* a new turn: its text, its state; the vendor adds its own */

void
ngx_voice_tts_new_turn(ngx_voice_tts_t *tts, ngx_uint_t turn)
{
    tts->turn = turn;
    tts->ctx_open = 0;
    tts->flushed = 0;
    tts->text_len = 0;
    tts->text_last = 0;
    tts->first_audio = 0;
}


/*
 * Holds a turn's text until push() sends what is word-bounded (all of it
 * once last is set); a full buffer is pushed first to make room.
 */

ngx_int_t
ngx_voice_tts_hold(ngx_voice_tts_t *tts, u_char *text, size_t len,
    ngx_uint_t last, ngx_int_t (*push)(ngx_voice_tts_t *tts))
{
    if (len > NGX_VOICE_TTS_TEXT_MAX - tts->text_len) {
        (void) push(tts);
    }

    len = ngx_min(len, NGX_VOICE_TTS_TEXT_MAX - tts->text_len);
    ngx_memcpy(tts->text + tts->text_len, text, len);
    tts->text_len += len;

    if (last) {
        tts->text_last = 1;
    }

    return push(tts);
}


/*
 * The socket to the vendor is up: a call that ended meanwhile finishes,
 * a turn that began while connecting goes out now (push: the vendor's).
 */

void
ngx_voice_tts_opened(ngx_voice_tts_t *tts,
    ngx_int_t (*push)(ngx_voice_tts_t *tts))
{
    ngx_log_error(NGX_LOG_INFO, &tts->ws.leg.log, 0,
                  "voice: text-to-speech connected in %M ms",
                  ngx_current_msec - tts->ws.leg.opened);

    if (tts->finishing) {
        (void) tts->ops->finish(tts);
        return;
    }

    (void) push(tts);
}


/* (re)connects the vendor's socket with its authorization field */

ngx_int_t
ngx_voice_tts_connect(ngx_voice_tts_t *tts, const char *auth)
{
    ngx_str_t  target;

    tts->ws.nfields = 0;
    tts->ctx_open = 0;

    if (ngx_voice_wsc_add_field(&tts->ws, auth, &tts->conf->key) != NGX_OK) {
        return NGX_ERROR;
    }

    target = tts->ws.leg.ep->request;

    /* the call's own voice (a persona), once per endpoint: Aura names it
     * as the model */
    if (tts->voice.len) {
        if (tts->target_ep != tts->ws.leg.ep) {
            if (ngx_voice_persona_uri(tts->call, &target,
                                      tts->conf->vendor == NGX_VOICE_TTS_AURA
                                      ? "model=" : "/text-to-speech/",
                                      &tts->voice, &tts->target)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            tts->target_ep = tts->ws.leg.ep;
        }

        target = tts->target;
    }

    return ngx_voice_wsc_connect(&tts->ws, &target);
}


/*
 * The vendor's socket closed (connect: the vendor's reconnect): the end
 * of a finishing socket, or a loss — the turn in progress is reported
 * lost and the socket reopened at once, or given up.
 */

void
ngx_voice_tts_lost(ngx_voice_tts_t *tts, ngx_voice_leg_error_e err,
    ngx_int_t (*connect)(ngx_voice_tts_t *tts))
{
    ngx_uint_t  turn;

    if (tts->finishing || tts->done) {
        tts->done = 1;
        tts->events->closed(tts, err);
        return;
    }

    /* a turn in progress has lost its audio: let the pipeline move on */
    turn = tts->turn;

    if (turn && tts->ctx_open) {
        tts->turn = 0;
        tts->ctx_open = 0;
        tts->events->done(tts, turn, 0);
    }

    if (ngx_voice_tts_may_reconnect(tts, err) != NGX_OK) {
        tts->done = 1;
        tts->events->closed(tts, err);
        return;
    }

    /* reconnect now: the next turn must not wait for a handshake */
    if (connect(tts) == NGX_ERROR) {
        tts->done = 1;
        tts->events->closed(tts, NGX_VOICE_LEG_ERR_CONNECT);
    }
}
