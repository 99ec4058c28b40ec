/*
 * Copyright (C) ngx_voice authors
 *
 * The text-to-speech interface: the fields every vendor shares are set
 * here, and each call goes to the configured vendor's implementation.
 */


#include "ngx_voice_tts.h"


static ngx_voice_tts_ops_t  *ngx_voice_tts_vendors[] = {
    &ngx_voice_tts_elevenlabs_ops,      /* NGX_VOICE_TTS_ELEVENLABS */
    &ngx_voice_tts_aura_ops             /* NGX_VOICE_TTS_AURA */
};


ngx_int_t
ngx_voice_tts_start(ngx_voice_tts_t *tts, ngx_voice_call_t *call,
    ngx_voice_tts_conf_t *conf, ngx_voice_tts_events_t *events, void *owner)
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
