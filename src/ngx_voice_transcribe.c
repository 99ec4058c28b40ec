/*
 * Copyright (C) ngx_voice authors
 *
 * "voice_pipeline transcribe": streams the caller to speech-to-text and
 * logs what was said, turn by turn.  A genuine operator feature (call
 * transcription, checking an STT account and its latency from nginx) and
 * the way the STT leg is exercised on its own.
 *
 * With a voice_llm_key, each turn is also answered by the LLM, with the
 * system prompt and the conversation so far, and the reply is logged:
 * the LLM leg exercised through real calls, before any speech output.
 */


#include "ngx_voice_stt.h"
#include "ngx_voice_llm.h"


#define NGX_VOICE_TURN_MAX         4096
#define NGX_VOICE_HISTORY_MAX      16      /* messages sent, newest kept */


typedef struct {
    ngx_voice_stt_t           stt;
    u_char                   *turn;           /* final segments so far */
    size_t                    turn_len;
    ngx_uint_t                turns;
    ngx_msec_t                speech_start;

    ngx_voice_llm_t           llm;
    ngx_voice_oa_message_t    history[NGX_VOICE_HISTORY_MAX];
    ngx_uint_t                nhistory;       /* texts are ngx_alloc()'d */
    u_char                   *reply;
    size_t                    reply_len;
    ngx_uint_t                reply_turn;     /* the turn answered */

    unsigned                  llm_on:1;
    unsigned                  stopping:1;
} ngx_voice_transcribe_t;


static ngx_int_t ngx_voice_transcribe_start(ngx_voice_call_t *call);
static ngx_int_t ngx_voice_transcribe_media(ngx_voice_call_t *call,
    u_char *audio, size_t len);
static ngx_int_t ngx_voice_transcribe_dtmf(ngx_voice_call_t *call,
    u_char digit);
static ngx_int_t ngx_voice_transcribe_mark(ngx_voice_call_t *call,
    ngx_str_t *name);
static ngx_int_t ngx_voice_transcribe_stop(ngx_voice_call_t *call);
static ngx_int_t ngx_voice_transcribe_closing(ngx_voice_call_t *call);
static void ngx_voice_transcribe_cleanup(ngx_voice_call_t *call);
static void ngx_voice_transcribe_speech(ngx_voice_stt_t *stt);
static void ngx_voice_transcribe_result(ngx_voice_stt_t *stt,
    ngx_voice_stt_result_t *res);
static void ngx_voice_transcribe_utterance_end(ngx_voice_stt_t *stt);
static void ngx_voice_transcribe_closed(ngx_voice_stt_t *stt,
    ngx_voice_leg_error_e err);
static void ngx_voice_transcribe_turn(ngx_voice_transcribe_t *t,
    const char *why);
static void ngx_voice_transcribe_ask(ngx_voice_transcribe_t *t);
static void ngx_voice_transcribe_remember(ngx_voice_transcribe_t *t,
    const char *role, u_char *text, size_t len);
static void ngx_voice_transcribe_delta(ngx_voice_llm_t *llm,
    ngx_str_t *text);
static void ngx_voice_transcribe_reply(ngx_voice_llm_t *llm,
    ngx_uint_t finish);
static void ngx_voice_transcribe_llm_error(ngx_voice_llm_t *llm,
    ngx_voice_llm_error_t *err);


ngx_voice_mode_t  ngx_voice_transcribe_mode = {
    ngx_string("transcribe"),
    NGX_VOICE_NEEDS_STT,
    ngx_voice_transcribe_start,
    ngx_voice_transcribe_media,
    ngx_voice_transcribe_dtmf,
    ngx_voice_transcribe_mark,
    ngx_voice_transcribe_stop,
    ngx_voice_transcribe_closing,
    ngx_voice_transcribe_cleanup
};


static ngx_voice_stt_events_t  ngx_voice_transcribe_events = {
    ngx_voice_transcribe_speech,
    ngx_voice_transcribe_result,
    ngx_voice_transcribe_utterance_end,
    ngx_voice_transcribe_closed
};


static ngx_voice_llm_events_t  ngx_voice_transcribe_llm_events = {
    ngx_voice_transcribe_delta,
    ngx_voice_transcribe_reply,
    ngx_voice_transcribe_llm_error
};


static const char  *ngx_voice_finish_reasons[] = {
    "none", "stop", "length", "tool_calls", "content_filter", "other"
};


static ngx_int_t
ngx_voice_transcribe_start(ngx_voice_call_t *call)
{
    ngx_voice_transcribe_t  *t;

    t = ngx_pcalloc(call->request->pool, sizeof(ngx_voice_transcribe_t));
    if (t == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    t->turn = ngx_pnalloc(call->request->pool, NGX_VOICE_TURN_MAX);
    if (t->turn == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    call->mode_ctx = t;

    /* failures are reported through the closed event */
    (void) ngx_voice_stt_start(&t->stt, call, &ngx_voice_transcribe_events,
                               t, NULL);

    if (call->conf->llm && call->state != NGX_VOICE_CALL_DONE) {
        t->reply = ngx_pnalloc(call->request->pool, NGX_VOICE_TURN_MAX);
        if (t->reply == NULL) {
            return NGX_ERROR;
        }

        if (ngx_voice_llm_init(&t->llm, call,
                               &ngx_voice_transcribe_llm_events, t)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        t->llm_on = 1;

        /* no turn should pay for TCP and TLS: connect while STT does */
        (void) ngx_voice_llm_warm(&t->llm);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_voice_transcribe_media(ngx_voice_call_t *call, u_char *audio, size_t len)
{
    ngx_voice_transcribe_t  *t;

    t = call->mode_ctx;

    return ngx_voice_stt_audio(&t->stt, audio, len);
}


static ngx_int_t
ngx_voice_transcribe_dtmf(ngx_voice_call_t *call, u_char digit)
{
    return NGX_OK;
}


static ngx_int_t
ngx_voice_transcribe_mark(ngx_voice_call_t *call, ngx_str_t *name)
{
    return NGX_OK;
}


/* the caller hung up: wait for the last words, then close */

static ngx_int_t
ngx_voice_transcribe_stop(ngx_voice_call_t *call)
{
    ngx_voice_transcribe_t  *t;

    t = call->mode_ctx;
    t->stopping = 1;

    if (ngx_voice_stt_finish(&t->stt) == NGX_ERROR) {
        return ngx_voice_ws_close(call, NGX_VOICE_WS_CLOSE_NORMAL,
                                  "stream stopped");
    }

    return NGX_OK;
}


/* Twilio closes right after "stop": the last words are still coming */

static ngx_int_t
ngx_voice_transcribe_closing(ngx_voice_call_t *call)
{
    ngx_voice_transcribe_t  *t;

    t = call->mode_ctx;

    if (t && t->stopping && !t->stt.done) {
        return NGX_AGAIN;
    }

    return NGX_OK;
}


static void
ngx_voice_transcribe_cleanup(ngx_voice_call_t *call)
{
    ngx_voice_transcribe_t  *t;

    t = call->mode_ctx;

    if (t == NULL) {
        return;
    }

    if (t->llm_on) {
        /* whatever the LLM leg is doing: resolving ... streaming */
        if (t->llm.state != NGX_VOICE_LLM_IDLE) {
            ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                          "voice: reply to turn %ui abandoned: the call "
                          "ended", t->reply_turn);
        }

        ngx_voice_llm_free(&t->llm);
        t->llm_on = 0;

        ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                      "voice: LLM %ui request(s), %ui on pooled "
                      "connections, %ui connection(s), %ui TLS "
                      "handshake(s), %ui resumed, %ui cancelled",
                      t->llm.requests, t->llm.hc.reused,
                      t->llm.hc.leg.connects, t->llm.hc.leg.tls_handshakes,
                      t->llm.hc.leg.tls_resumed, t->llm.cancelled);
    }

    while (t->nhistory) {
        ngx_free((void *) t->history[--t->nhistory].content.data);
    }

    if (t->turn_len) {
        ngx_voice_transcribe_turn(t, "call ended");
    }

    ngx_voice_stt_abort(&t->stt);

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: transcribed %ui turns, %ui bytes of audio sent to "
                  "speech-to-text over %ui connection(s)", t->turns,
                  t->stt.audio_sent, t->stt.connects);
}


static void
ngx_voice_transcribe_speech(ngx_voice_stt_t *stt)
{
    ngx_voice_transcribe_t  *t;

    t = stt->owner;
    t->speech_start = ngx_current_msec;

    ngx_log_error(NGX_LOG_INFO, stt->call->connection->log, 0,
                  "voice: caller started speaking");
}


static void
ngx_voice_transcribe_result(ngx_voice_stt_t *stt, ngx_voice_stt_result_t *res)
{
    size_t                   n;
    ngx_str_t               *text;
    ngx_voice_transcribe_t  *t;

    t = stt->owner;
    text = &res->text;

    if (!res->is_final) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, stt->call->connection->log, 0,
                       "voice %V: interim \"%V\"", &stt->call->id, text);
        return;
    }

    if (text->len) {
        ngx_log_error(NGX_LOG_INFO, stt->call->connection->log, 0,
                      "voice: final segment \"%V\"", text);

        n = ngx_min(text->len, NGX_VOICE_TURN_MAX - 1 - t->turn_len);

        if (t->turn_len && n) {
            t->turn[t->turn_len++] = ' ';
            n = ngx_min(n, NGX_VOICE_TURN_MAX - 1 - t->turn_len);
        }

        t->turn_len += ngx_cpymem(t->turn + t->turn_len, text->data, n)
                       - (t->turn + t->turn_len);
    }

    if (res->speech_final && t->turn_len) {
        ngx_voice_transcribe_turn(t, "speech_final");
    }
}


/* no speech_final came (noise kept the VAD open): end the turn here */

static void
ngx_voice_transcribe_utterance_end(ngx_voice_stt_t *stt)
{
    ngx_voice_transcribe_t  *t;

    t = stt->owner;

    if (t->turn_len) {
        ngx_voice_transcribe_turn(t, "UtteranceEnd");
    }
}


static void
ngx_voice_transcribe_turn(ngx_voice_transcribe_t *t, const char *why)
{
    t->turns++;

    ngx_log_error(NGX_LOG_INFO, t->stt.call->connection->log, 0,
                  "voice: caller turn %ui (%s): \"%*s\"", t->turns, why,
                  t->turn_len, t->turn);

    if (t->llm_on) {
        ngx_voice_transcribe_ask(t);
    }

    t->turn_len = 0;
}


/* the turn joins the conversation, which goes to the LLM */

static void
ngx_voice_transcribe_ask(ngx_voice_transcribe_t *t)
{
    ngx_log_t                     *log;
    ngx_voice_llm_conversation_t   conv;

    log = t->stt.call->connection->log;

    if (t->llm.state != NGX_VOICE_LLM_IDLE) {
        /* the caller spoke again: the old reply is moot */
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "voice: reply to turn %ui cancelled by turn %ui",
                      t->reply_turn, t->turns);
        ngx_voice_llm_cancel(&t->llm);
    }

    ngx_voice_transcribe_remember(t, "user", t->turn, t->turn_len);

    t->reply_len = 0;
    t->reply_turn = t->turns;

    conv.messages = t->history;
    conv.nmessages = t->nhistory;

    if (ngx_voice_llm_request(&t->llm, &conv) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "voice: turn %ui could not be sent to the LLM",
                      t->turns);
    }
}


static void
ngx_voice_transcribe_remember(ngx_voice_transcribe_t *t, const char *role,
    u_char *text, size_t len)
{
    u_char                  *p;
    ngx_voice_oa_message_t  *m;

    p = ngx_alloc(len ? len : 1, t->stt.call->connection->log);
    if (p == NULL) {
        return;
    }

    if (t->nhistory == NGX_VOICE_HISTORY_MAX) {
        /* the oldest exchange goes first */
        ngx_free((void *) t->history[0].content.data);
        ngx_memmove(&t->history[0], &t->history[1],
                    (NGX_VOICE_HISTORY_MAX - 1)
                    * sizeof(ngx_voice_oa_message_t));
        t->nhistory--;
    }

    m = &t->history[t->nhistory++];
    ngx_memzero(m, sizeof(ngx_voice_oa_message_t));

    m->role = role;
    m->content.data = (char *) p;
    m->content.len = len;

    ngx_memcpy(p, text, len);
}


static void
ngx_voice_transcribe_delta(ngx_voice_llm_t *llm, ngx_str_t *text)
{
    size_t                   n;
    ngx_voice_transcribe_t  *t;

    t = llm->owner;

    n = ngx_min(text->len, NGX_VOICE_TURN_MAX - t->reply_len);
    ngx_memcpy(t->reply + t->reply_len, text->data, n);
    t->reply_len += n;
}


static void
ngx_voice_transcribe_reply(ngx_voice_llm_t *llm, ngx_uint_t finish)
{
    ngx_uint_t                i;
    ngx_log_t                *log;
    ngx_voice_transcribe_t   *t;
    ngx_voice_oa_stream_t    *s;

    t = llm->owner;
    s = &llm->stream;
    log = t->stt.call->connection->log;

    /* the model's trailing blanks would only cost history tokens */
    while (t->reply_len && (t->reply[t->reply_len - 1] == ' '
                            || t->reply[t->reply_len - 1] == '\n'))
    {
        t->reply_len--;
    }

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "voice: assistant reply %ui: \"%*s\" (first token %M ms, "
                  "total %M ms, finish %s, tokens %uL+%uL)", t->reply_turn,
                  t->reply_len, t->reply,
                  llm->first_token ? llm->first_token - llm->sent : 0,
                  ngx_current_msec - llm->sent,
                  ngx_voice_finish_reasons[ngx_min(finish, 5)],
                  s->prompt_tokens, s->completion_tokens);

    if (finish == NGX_VOICE_OA_FINISH_TOOL_CALLS) {
        for (i = 0; i < s->ncalls; i++) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "voice: assistant tool call %ui: %*s %*s (id %*s)",
                          i, s->calls[i].name_len, s->calls[i].name,
                          s->calls[i].args_len, s->calls[i].args,
                          s->calls[i].id_len, s->calls[i].id);
        }
    }

    if (t->reply_len) {
        ngx_voice_transcribe_remember(t, "assistant", t->reply,
                                      t->reply_len);
    }
}


/* the call goes on: the next turn asks again */

static void
ngx_voice_transcribe_llm_error(ngx_voice_llm_t *llm,
    ngx_voice_llm_error_t *err)
{
    ngx_voice_transcribe_t  *t;

    t = llm->owner;

    if (err->status) {
        ngx_log_error(NGX_LOG_WARN, t->stt.call->connection->log, 0,
                      "voice: no assistant reply to turn %ui (%s, HTTP %ui)",
                      t->reply_turn, ngx_voice_leg_strerror(err->leg),
                      err->status);
        return;
    }

    ngx_log_error(NGX_LOG_WARN, t->stt.call->connection->log, 0,
                  "voice: no assistant reply to turn %ui (%s)",
                  t->reply_turn, ngx_voice_leg_strerror(err->leg));
}


static void
ngx_voice_transcribe_closed(ngx_voice_stt_t *stt, ngx_voice_leg_error_e err)
{
    ngx_voice_transcribe_t  *t;

    t = stt->owner;

    if (t->turn_len) {
        ngx_voice_transcribe_turn(t, "end of stream");
    }

    if (t->stopping) {
        (void) ngx_voice_ws_close(stt->call, NGX_VOICE_WS_CLOSE_NORMAL,
                                  "stream stopped");
        return;
    }

    /* nothing to transcribe with: end the call rather than pretend */
    (void) ngx_voice_ws_close(stt->call, NGX_VOICE_WS_CLOSE_INTERNAL,
                              "speech-to-text unavailable");
}
