/*
 * Copyright (C) ngx_voice authors
 *
 * "voice_pipeline agent": the conversation.  The call's state machine
 * over the three provider legs:
 *
 *   caller audio -> speech-to-text: final segments make the user's turn,
 *   ended by speech_final (UtteranceEnd as fallback, Finalize on demand);
 *
 *   the turn -> the LLM with the system prompt and the history; content
 *   deltas -> text-to-speech as they arrive (word- or sentence-bounded);
 *
 *   audio -> Twilio as it arrives, a mark before the first chunk and
 *   after each one, so that mark echoes say how far the caller has heard;
 *   with the TTS alignment that gives the words heard.
 *
 * Caller speech while the bot's turn is live (LLM thinking, audio not
 * yet all heard) interrupts it (barge-in): Twilio "clear", the LLM
 * request closed, the TTS context closed and its late audio dropped; the
 * history keeps exactly the words heard.  Backchannels do not interrupt.
 * One bot turn is live at a time; its buffers are the call's, reused.
 */


#include "ngx_voice_stt.h"
#include "ngx_voice_llm.h"
#include "ngx_voice_tts.h"
#include "ngx_voice_heard.h"
#include "ngx_voice_record.h"
#include "ngx_voice_tools.h"
#include "ngx_voice_persona.h"
#include "ngx_voice_request.h"
#include "ngx_voice_form.h"
#include "ngx_voice_zone.h"

#include <cjson/cJSON.h>


#define NGX_VOICE_AGENT_TEXT       4096    /* one turn's text */
#define NGX_VOICE_AGENT_WORDS      512     /* words of one bot turn */
#define NGX_VOICE_AGENT_HISTORY    16      /* messages sent, newest kept */

/* speech pace assumed where no alignment says it: chars a second */
#define NGX_VOICE_AGENT_PACE       15

/* TTS drops in a row that voiced nothing new: the turn is given up */
#define NGX_VOICE_AGENT_STUCK      3

/*
 * Rounds of tool calls one caller turn may take; with at most
 * NGX_VOICE_TOOL_RUNS calls a round, one exchange fits the history.
 */
#define NGX_VOICE_AGENT_TOOL_ROUNDS  3


typedef enum {
    NGX_VOICE_BOT_GREETING = 0,
    NGX_VOICE_BOT_REPLY,
    NGX_VOICE_BOT_APOLOGY,
    NGX_VOICE_BOT_REPROMPT,
    NGX_VOICE_BOT_GOODBYE,
    NGX_VOICE_BOT_FILLER
} ngx_voice_bot_kind_e;


static const char  *ngx_voice_bot_kinds[] = {
    "greeting", "reply", "apology", "reprompt", "goodbye", "filler"
};


#define NGX_VOICE_AGENT_DTMF       32      /* digits of one entry */


/* the bot's turn in progress: its text, its audio, what was heard */
typedef struct {
    ngx_uint_t                seq;            /* per call: mark names */
    ngx_uint_t                turn;           /* the user turn answered */
    ngx_uint_t                kind;           /* ngx_voice_bot_kind_e */
    ngx_uint_t                tts_turn;       /* TTS turn id (resends) */

    u_char                   *text;           /* given for speech */
    size_t                    text_len;
    size_t                    said;           /* passed to TTS */
    ngx_voice_heard_t         heard;

    uint64_t                  sent;           /* audio bytes to Twilio */
    uint64_t                  played;         /* by the last mark echo */
    ngx_msec_t                played_at;
    ngx_uint_t                marks;          /* not yet echoed */
    ngx_uint_t                dropped;        /* text over the buffer */
    ngx_uint_t                resends;        /* after TTS drops */
    size_t                    resent_voiced;
    ngx_uint_t                stuck;

    ngx_voice_timing_t        t;

    unsigned                  active:1;
    unsigned                  interruptible:1;
    unsigned                  text_done:1;    /* all text given */
    unsigned                  tts_done:1;     /* all audio came */
    unsigned                  cleared:1;
    unsigned                  in_history:1;   /* with its tool calls */
} ngx_voice_bot_t;


typedef struct {
    ngx_voice_call_t         *call;
    ngx_voice_loc_conf_t     *conf;
    ngx_voice_stt_t           stt;
    ngx_voice_llm_t           llm;
    ngx_voice_tts_t           tts;
    ngx_voice_bot_t           bot;
    ngx_voice_record_t       *rec;
    ngx_voice_persona_t      *persona;        /* voice_persona_url */

    /* the caller's turn being spoken: its final segments */
    u_char                   *user;
    size_t                    user_len;
    ngx_uint_t                user_words;
    ngx_uint_t                turns;
    ngx_voice_timing_t        user_t;         /* of the turn that ended */
    uint64_t                  speech_end;     /* caller audio position */
    ngx_event_t               finalize;       /* voice_stt_finalize */
    ngx_event_t               watchdog;       /* a bot turn that stalls */
    ngx_event_t               idle;           /* voice_idle_reprompt */
    ngx_event_t               limit;          /* voice_max_duration */
    ngx_event_t               dtmf_timer;     /* a pause ends the digits */
    u_char                    digits[NGX_VOICE_AGENT_DTMF];
    size_t                    ndigits;
    ngx_uint_t                reprompts;      /* since the caller spoke */

    /* the conversation sent to the LLM; texts are ngx_alloc()'d */
    ngx_voice_oa_message_t    history[NGX_VOICE_AGENT_HISTORY];
    ngx_uint_t                nhistory;

    /* tool calls of the last reply: run once, whatever the caller does */
    ngx_voice_tool_run_t     *runs;           /* NGX_VOICE_TOOL_RUNS */
    ngx_uint_t                tools_pending;
    ngx_uint_t                tool_rounds;    /* this caller turn's */
    u_char                    transfer_to[NGX_VOICE_OA_MAX_NAME + 1];
    size_t                    transfer_len;

    ngx_uint_t                bot_seq;
    ngx_uint_t                tts_turns;
    ngx_voice_record_counts_t n;
    const char               *end_reason;

    unsigned                  llm_on:1;
    unsigned                  tts_on:1;
    unsigned                  stt_on:1;
    unsigned                  interim:1;      /* words not yet final */
    unsigned                  user_waiting:1; /* turn ended, bot busy */
    const char               *waiting_why;
    ngx_msec_t                waiting_at;
    unsigned                  stopping:1;
    unsigned                  over:1;
    unsigned                  hanging_up:1;   /* the goodbye is on */
    unsigned                  tool_wait:1;    /* answer after the tools */
    unsigned                  tools_starting:1;
    unsigned                  transferring:1;
    unsigned                  persona_wait:1;
    unsigned                  hung_up:1;      /* the REST update is on */
} ngx_voice_agent_t;


static ngx_int_t ngx_voice_agent_start(ngx_voice_call_t *call);
static void ngx_voice_agent_persona(ngx_voice_persona_t *p);
static void ngx_voice_agent_begin(ngx_voice_agent_t *a);
static ngx_int_t ngx_voice_agent_media(ngx_voice_call_t *call,
    u_char *audio, size_t len);
static ngx_int_t ngx_voice_agent_dtmf(ngx_voice_call_t *call, u_char digit);
static ngx_int_t ngx_voice_agent_mark(ngx_voice_call_t *call,
    ngx_str_t *name);
static ngx_int_t ngx_voice_agent_stop(ngx_voice_call_t *call);
static ngx_int_t ngx_voice_agent_closing(ngx_voice_call_t *call);
static void ngx_voice_agent_cleanup(ngx_voice_call_t *call);

static void ngx_voice_agent_speech(ngx_voice_stt_t *stt);
static void ngx_voice_agent_result(ngx_voice_stt_t *stt,
    ngx_voice_stt_result_t *res);
static void ngx_voice_agent_utterance_end(ngx_voice_stt_t *stt);
static void ngx_voice_agent_stt_closed(ngx_voice_stt_t *stt,
    ngx_voice_leg_error_e err);
static void ngx_voice_agent_finalize(ngx_event_t *ev);
static void ngx_voice_agent_watchdog(ngx_event_t *ev);
static void ngx_voice_agent_idle(ngx_event_t *ev);
static void ngx_voice_agent_limit(ngx_event_t *ev);
static void ngx_voice_agent_dtmf_timer(ngx_event_t *ev);
static void ngx_voice_agent_digits(ngx_voice_agent_t *a);
static void ngx_voice_agent_heard_from(ngx_voice_agent_t *a);
static void ngx_voice_agent_goodbye(ngx_voice_agent_t *a,
    const char *reason);
static void ngx_voice_agent_timer_init(ngx_voice_agent_t *a,
    ngx_event_t *ev, ngx_event_handler_pt handler);
static void ngx_voice_agent_progress(ngx_voice_agent_t *a);

static void ngx_voice_agent_delta(ngx_voice_llm_t *llm, ngx_str_t *text);
static void ngx_voice_agent_reply(ngx_voice_llm_t *llm, ngx_uint_t finish);
static void ngx_voice_agent_llm_error(ngx_voice_llm_t *llm,
    ngx_voice_llm_error_t *err);

static void ngx_voice_agent_audio(ngx_voice_tts_t *tts, ngx_uint_t turn,
    u_char *audio, size_t len, ngx_voice_el_align_t *align);
static void ngx_voice_agent_tts_done(ngx_voice_tts_t *tts, ngx_uint_t turn,
    ngx_uint_t complete);
static void ngx_voice_agent_tts_closed(ngx_voice_tts_t *tts,
    ngx_voice_leg_error_e err);

static void ngx_voice_agent_user_turn(ngx_voice_agent_t *a,
    const char *why);
static void ngx_voice_agent_ask(ngx_voice_agent_t *a);
static void ngx_voice_agent_bot_begin(ngx_voice_agent_t *a,
    ngx_uint_t kind, ngx_uint_t turn, ngx_uint_t interruptible);
static void ngx_voice_agent_say(ngx_voice_agent_t *a, u_char *text,
    size_t len, ngx_uint_t last);
static void ngx_voice_agent_say_text(ngx_voice_agent_t *a, u_char *text,
    size_t len, ngx_uint_t last);
static void ngx_voice_agent_check_done(ngx_voice_agent_t *a);
static void ngx_voice_agent_next(ngx_voice_agent_t *a);
static void ngx_voice_agent_barge_in(ngx_voice_agent_t *a,
    const char *why);
static void ngx_voice_agent_commit(ngx_voice_agent_t *a,
    ngx_uint_t interrupted);
static uint64_t ngx_voice_agent_position(ngx_voice_bot_t *bot);
static ngx_uint_t ngx_voice_agent_backchannel(ngx_voice_agent_t *a,
    ngx_str_t *text);
static ngx_uint_t ngx_voice_agent_words(ngx_str_t *text);
static ngx_uint_t ngx_voice_agent_match(ngx_voice_agent_t *a,
    ngx_regex_t *re, ngx_str_t *text);
static void ngx_voice_agent_remember(ngx_voice_agent_t *a,
    const char *role, u_char *text, size_t len);
static ngx_voice_oa_message_t *ngx_voice_agent_push(ngx_voice_agent_t *a);
static void ngx_voice_agent_forget(ngx_voice_oa_message_t *m);
static void ngx_voice_agent_remember_tool(ngx_voice_agent_t *a, u_char *id,
    size_t id_len, u_char *result, size_t len);
static ngx_int_t ngx_voice_agent_mark_send(ngx_voice_agent_t *a);
static ngx_uint_t ngx_voice_agent_builtins(ngx_voice_agent_t *a,
    ngx_voice_oa_stream_t *s);
static ngx_int_t ngx_voice_agent_tools(ngx_voice_agent_t *a,
    ngx_voice_oa_stream_t *s);
static ngx_int_t ngx_voice_agent_remember_calls(ngx_voice_agent_t *a,
    ngx_voice_oa_stream_t *s);
static void ngx_voice_agent_tool_done(ngx_voice_tool_run_t *run);
static ngx_uint_t ngx_voice_agent_offered(ngx_voice_agent_t *a,
    ngx_voice_oa_acc_call_t *c);
static void ngx_voice_agent_continue(ngx_voice_agent_t *a);
static void ngx_voice_agent_hangup(ngx_voice_agent_t *a);
static void ngx_voice_agent_updated(ngx_voice_call_t *call,
    ngx_uint_t status, void *data);
static void ngx_voice_agent_end(ngx_voice_agent_t *a, ngx_uint_t code,
    const char *reason);


ngx_voice_mode_t  ngx_voice_agent_mode = {
    ngx_string("agent"),
    NGX_VOICE_NEEDS_STT|NGX_VOICE_NEEDS_TTS|NGX_VOICE_NEEDS_LLM,
    ngx_voice_agent_start,
    ngx_voice_agent_media,
    ngx_voice_agent_dtmf,
    ngx_voice_agent_mark,
    ngx_voice_agent_stop,
    ngx_voice_agent_closing,
    ngx_voice_agent_cleanup
};


static ngx_voice_stt_events_t  ngx_voice_agent_stt_events = {
    ngx_voice_agent_speech,
    ngx_voice_agent_result,
    ngx_voice_agent_utterance_end,
    ngx_voice_agent_stt_closed
};


static ngx_voice_llm_events_t  ngx_voice_agent_llm_events = {
    ngx_voice_agent_delta,
    ngx_voice_agent_reply,
    ngx_voice_agent_llm_error
};


static ngx_voice_tts_events_t  ngx_voice_agent_tts_events = {
    ngx_voice_agent_audio,
    ngx_voice_agent_tts_done,
    ngx_voice_agent_tts_closed
};


/*
 * "start": all three legs open at once (no turn waits for a handshake),
 * the greeting goes to TTS and plays as soon as its socket is up.
 */

static ngx_int_t
ngx_voice_agent_start(ngx_voice_call_t *call)
{
    u_char                  *words;
    ngx_pool_t              *pool;
    ngx_voice_agent_t       *a;

    pool = call->request->pool;

    a = ngx_pcalloc(pool, sizeof(ngx_voice_agent_t));
    if (a == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    /* everything a turn needs, once: nothing is taken per frame */
    a->user = ngx_pnalloc(pool, NGX_VOICE_AGENT_TEXT);
    a->bot.text = ngx_pnalloc(pool, NGX_VOICE_AGENT_TEXT);
    words = ngx_pnalloc(pool, NGX_VOICE_AGENT_TEXT
                              + NGX_VOICE_AGENT_WORDS
                                * sizeof(ngx_voice_heard_word_t));

    if (a->user == NULL || a->bot.text == NULL || words == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    ngx_voice_heard_init(&a->bot.heard, words, NGX_VOICE_AGENT_TEXT,
                         (ngx_voice_heard_word_t *)
                             (words + NGX_VOICE_AGENT_TEXT),
                         NGX_VOICE_AGENT_WORDS);

    a->call = call;
    a->conf = call->conf;
    call->mode_ctx = a;

    ngx_voice_agent_timer_init(a, &a->finalize, ngx_voice_agent_finalize);
    ngx_voice_agent_timer_init(a, &a->watchdog, ngx_voice_agent_watchdog);
    ngx_voice_agent_timer_init(a, &a->idle, ngx_voice_agent_idle);
    ngx_voice_agent_timer_init(a, &a->limit, ngx_voice_agent_limit);
    ngx_voice_agent_timer_init(a, &a->dtmf_timer,
                               ngx_voice_agent_dtmf_timer);

    if (a->conf->max_duration) {
        ngx_add_timer(&a->limit, a->conf->max_duration);
    }

    a->rec = ngx_voice_record_create(call);

    if (ngx_voice_llm_init(&a->llm, call, &ngx_voice_agent_llm_events, a)
        != NGX_OK)
    {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    a->llm_on = 1;

    if (a->conf->persona == NULL) {
        ngx_voice_agent_begin(a);
        return NGX_OK;
    }

    /*
     * The persona names the language and the voice to connect with: the
     * legs wait for it (voice_persona_timeout at most); the LLM's
     * connection is warmed meanwhile.
     */
    (void) ngx_voice_llm_warm(&a->llm);

    a->persona = ngx_pcalloc(pool, sizeof(ngx_voice_persona_t));
    if (a->persona == NULL) {
        ngx_voice_ws_finish(call, NGX_ERROR);
        return NGX_ERROR;
    }

    a->persona_wait = 1;

    if (ngx_voice_persona_fetch(a->persona, call, ngx_voice_agent_persona,
                                a)
        != NGX_OK)
    {
        a->persona->error = "it could not be requested";
        ngx_voice_agent_persona(a->persona);
    }

    return NGX_OK;
}


/* the persona came, or the defaults apply: the call begins */

static void
ngx_voice_agent_persona(ngx_voice_persona_t *p)
{
    ngx_voice_agent_t  *a;

    a = p->data;
    a->persona_wait = 0;

    if (p->error == NULL) {
        if (p->system.len) {
            a->llm.system = p->system;
        }

        if (p->model.len) {
            a->llm.model = p->model;
        }

        if (p->have_tools) {
            a->llm.tools = p->tools;
        }
    }

    ngx_voice_record_persona(a->rec, p->error, p->status, p->elapsed,
                             p->system.len != 0, p->greeting.len != 0,
                             &p->voice, &p->model, &p->language,
                             p->have_tools ? &p->tools : NULL);

    if (a->over || a->stopping) {
        return;
    }

    ngx_voice_agent_begin(a);
}


static void
ngx_voice_agent_begin(ngx_voice_agent_t *a)
{
    ngx_str_t             greeting;
    ngx_voice_call_t     *call;
    ngx_voice_persona_t  *p;

    call = a->call;
    p = a->persona;

    if (ngx_voice_tts_start(&a->tts, call, a->conf->tts,
                            &ngx_voice_agent_tts_events, a,
                            p && p->voice.len ? &p->voice : NULL)
        == NGX_ERROR)
    {
        ngx_voice_agent_end(a, NGX_VOICE_WS_CLOSE_INTERNAL,
                            "text-to-speech unavailable");
        return;
    }

    a->tts_on = 1;

    /* failures are reported through the closed event */
    a->stt_on = 1;
    (void) ngx_voice_stt_start(&a->stt, call, &ngx_voice_agent_stt_events,
                               a, p && p->language.len ? &p->language
                                                       : NULL);

    if (call->state == NGX_VOICE_CALL_DONE || a->over) {
        return;
    }

    (void) ngx_voice_llm_warm(&a->llm);

    if (p && p->greeting.len) {
        greeting = p->greeting;

    } else if (ngx_voice_conf_text(call, a->conf->greeting, &greeting)
               != NGX_OK)
    {
        ngx_voice_agent_end(a, NGX_VOICE_WS_CLOSE_INTERNAL, "internal error");
        return;
    }

    if (greeting.len) {
        ngx_voice_agent_bot_begin(a, NGX_VOICE_BOT_GREETING, 0,
                                  a->conf->greeting_interruptible);
        a->bot.text_done = 1;
        ngx_voice_agent_say(a, greeting.data, greeting.len, 1);
    }

}


static ngx_int_t
ngx_voice_agent_media(ngx_voice_call_t *call, u_char *audio, size_t len)
{
    ngx_voice_agent_t  *a;

    a = call->mode_ctx;

    /* before the persona: the caller hears nothing yet either */
    if (!a->stt_on) {
        return NGX_OK;
    }

    return ngx_voice_stt_audio(&a->stt, audio, len);
}


/*
 * Keypad digits are caller input too: collected until "#" or a pause of
 * voice_dtmf_timeout, then they make a turn of their own.  A key
 * pressed over the agent interrupts it, as speech does.
 */

static ngx_int_t
ngx_voice_agent_dtmf(ngx_voice_call_t *call, u_char digit)
{
    ngx_voice_agent_t  *a;

    a = call->mode_ctx;

    /* before the persona, nothing may be asked: no prompt, no voice */
    if (!a->conf->dtmf || a->over || a->stopping || a->hanging_up
        || a->persona_wait)
    {
        return NGX_OK;
    }

    ngx_voice_agent_heard_from(a);
    ngx_voice_agent_barge_in(a, "DTMF");

    if (digit == '#') {
        ngx_voice_agent_digits(a);
        return NGX_OK;
    }

    if (a->ndigits < NGX_VOICE_AGENT_DTMF) {
        a->digits[a->ndigits++] = digit;
    }

    ngx_add_timer(&a->dtmf_timer, a->conf->dtmf_timeout);

    return NGX_OK;
}


static void
ngx_voice_agent_dtmf_timer(ngx_event_t *ev)
{
    ngx_voice_agent_digits(ev->data);
}


/* the digits become the caller's words: "Keypad: 1234" */

static void
ngx_voice_agent_digits(ngx_voice_agent_t *a)
{
    u_char  *p, *last;

    if (a->dtmf_timer.timer_set) {
        ngx_del_timer(&a->dtmf_timer);
    }

    if (a->ndigits == 0 || a->over) {
        return;
    }

    p = a->user + a->user_len;
    last = a->user + NGX_VOICE_AGENT_TEXT - 1;

    if (a->user_len && p < last) {
        *p++ = ' ';
    }

    p = ngx_slprintf(p, last, "Keypad: %*s", a->ndigits, a->digits);

    a->user_len = p - a->user;
    a->ndigits = 0;
    a->speech_end = 0;

    ngx_voice_agent_user_turn(a, "DTMF");
}


/* the caller spoke or pressed a key: no reprompt is due */

static void
ngx_voice_agent_heard_from(ngx_voice_agent_t *a)
{
    a->reprompts = 0;

    if (a->idle.timer_set) {
        ngx_del_timer(&a->idle);
    }
}


/* voice_idle_reprompt: silence after the agent's turn */

static void
ngx_voice_agent_idle(ngx_event_t *ev)
{
    ngx_voice_agent_t  *a;

    a = ev->data;

    if (a->over || a->stopping || a->hanging_up || a->bot.active
        || a->user_len || a->interim)
    {
        return;
    }

    if (a->reprompts++ >= a->conf->idle_reprompts) {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "voice: the caller is silent after %ui reprompt(s): "
                      "saying goodbye", a->conf->idle_reprompts);

        ngx_voice_agent_goodbye(a, "caller silent");
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                  "voice: the caller is silent: reprompt %ui of %ui",
                  a->reprompts, a->conf->idle_reprompts);

    ngx_voice_agent_bot_begin(a, NGX_VOICE_BOT_REPROMPT, a->turns, 1);
    a->bot.text_done = 1;
    ngx_voice_agent_say(a, a->conf->reprompt.data, a->conf->reprompt.len, 1);
}


/* voice_max_duration: the call ends politely */

static void
ngx_voice_agent_limit(ngx_event_t *ev)
{
    ngx_voice_agent_t  *a;

    a = ev->data;

    if (a->over || a->stopping || a->hanging_up) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                  "voice: the call reached voice_max_duration: saying "
                  "goodbye");

    ngx_voice_agent_goodbye(a, "max duration");
}


/*
 * The agent ends the call: what it was saying stops (kept as heard),
 * the goodbye cannot be interrupted, and once its last word has been
 * heard the stream is closed (Twilio then runs the TwiML after it).
 */

static void
ngx_voice_agent_goodbye(ngx_voice_agent_t *a, const char *reason)
{
    ngx_voice_bot_t  *bot;

    bot = &a->bot;

    a->hanging_up = 1;
    a->end_reason = reason;

    if (a->idle.timer_set) {
        ngx_del_timer(&a->idle);
    }

    if (bot->active) {
        bot->cleared = 1;

        if (bot->sent) {
            (void) ngx_voice_call_send_clear(a->call);
        }

        if (a->llm.state != NGX_VOICE_LLM_IDLE) {
            ngx_voice_llm_cancel(&a->llm);
        }

        if (a->tts_on) {
            (void) ngx_voice_tts_cancel(&a->tts);
        }

        ngx_voice_agent_commit(a, 1);
    }

    ngx_voice_agent_bot_begin(a, NGX_VOICE_BOT_GOODBYE, a->turns, 0);
    a->bot.text_done = 1;

    if (a->transferring) {
        ngx_voice_agent_say(a, a->conf->transfer_announcement.data,
                            a->conf->transfer_announcement.len, 1);
        return;
    }

    ngx_voice_agent_say(a, a->conf->goodbye.data, a->conf->goodbye.len, 1);
}


static void
ngx_voice_agent_timer_init(ngx_voice_agent_t *a, ngx_event_t *ev,
    ngx_event_handler_pt handler)
{
    ev->handler = handler;
    ev->data = a;
    ev->log = a->call->connection->log;

    /* the call's own connection keeps the worker; timers need not */
    ev->cancelable = 1;
}


/*
 * "b<seq>-<bytes>": the caller has heard the bot turn seq up to that
 * byte of its audio.  Echoes that follow a "clear" say nothing heard.
 */

static ngx_int_t
ngx_voice_agent_mark(ngx_voice_call_t *call, ngx_str_t *name)
{
    u_char             *p, *last, *dash;
    ngx_int_t           seq, pos;
    ngx_voice_bot_t    *bot;
    ngx_voice_agent_t  *a;

    a = call->mode_ctx;
    bot = &a->bot;

    p = name->data;
    last = p + name->len;

    if (name->len < 4 || p[0] != 'b') {
        return NGX_OK;
    }

    dash = ngx_strlchr(p, last, '-');

    if (dash == NULL) {
        return NGX_OK;
    }

    seq = ngx_atoi(p + 1, dash - p - 1);
    pos = ngx_atoi(dash + 1, last - dash - 1);

    if (seq == NGX_ERROR || pos == NGX_ERROR || !bot->active
        || bot->cleared || (ngx_uint_t) seq != bot->seq)
    {
        return NGX_OK;
    }

    if (bot->marks) {
        bot->marks--;
    }

    if (bot->t.first_heard == 0) {
        bot->t.first_heard = ngx_current_msec;
    }

    bot->played = ngx_max(bot->played, (uint64_t) pos);
    bot->played_at = ngx_current_msec;

    ngx_voice_agent_progress(a);
    ngx_voice_agent_check_done(a);

    return NGX_OK;
}


/* the caller hung up: the last words still come, then the stream ends */

static ngx_int_t
ngx_voice_agent_stop(ngx_voice_call_t *call)
{
    ngx_voice_agent_t  *a;

    a = call->mode_ctx;
    a->stopping = 1;

    if (a->end_reason == NULL) {
        a->end_reason = "caller hung up";
    }

    if (a->bot.active) {
        ngx_voice_agent_commit(a, 1);
    }

    if (a->llm_on) {
        ngx_voice_llm_cancel(&a->llm);
    }

    if (a->tts_on) {
        (void) ngx_voice_tts_finish(&a->tts);
    }

    if (!a->stt_on || ngx_voice_stt_finish(&a->stt) == NGX_ERROR) {
        return ngx_voice_ws_close(call, NGX_VOICE_WS_CLOSE_NORMAL,
                                  "stream stopped");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_voice_agent_closing(ngx_voice_call_t *call)
{
    ngx_voice_agent_t  *a;

    a = call->mode_ctx;

    if (a && a->stopping && a->stt_on && !a->stt.done) {
        return NGX_AGAIN;
    }

    return NGX_OK;
}


static void
ngx_voice_agent_cleanup(ngx_voice_call_t *call)
{
    ngx_uint_t             i;
    ngx_voice_agent_t     *a;
    ngx_voice_tool_run_t  *run;

    a = call->mode_ctx;

    if (a == NULL) {
        return;
    }

    if (a->finalize.timer_set) {
        ngx_del_timer(&a->finalize);
    }

    if (a->watchdog.timer_set) {
        ngx_del_timer(&a->watchdog);
    }

    if (a->idle.timer_set) {
        ngx_del_timer(&a->idle);
    }

    if (a->limit.timer_set) {
        ngx_del_timer(&a->limit);
    }

    if (a->dtmf_timer.timer_set) {
        ngx_del_timer(&a->dtmf_timer);
    }

    if (a->persona) {
        ngx_voice_persona_cancel(a->persona);
    }

    a->over = 1;

    if (a->end_reason == NULL) {
        a->end_reason = (call->peer_close_code
                         && call->peer_close_code
                            != NGX_VOICE_WS_CLOSE_ABNORMAL)
                        ? "stream closed by Twilio"
                        : (ngx_exiting || ngx_terminate)
                          ? "nginx shutting down" : "connection lost";
    }

    /* what was said and heard so far is kept, whatever ended the call */
    if (a->bot.active) {
        ngx_voice_agent_commit(a, 1);
    }

    if (a->user_len) {
        a->turns++;

        ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                      "voice: caller turn %ui (call ended): \"%*s\"",
                      a->turns, a->user_len, a->user);

        ngx_voice_record_user(a->rec, a->turns, a->user, a->user_len,
                              "call ended", 0, ngx_current_msec);
        a->user_len = 0;
    }

    if (a->llm_on) {
        ngx_voice_llm_free(&a->llm);
        a->llm_on = 0;

        a->n.llm_requests = a->llm.requests;
        a->n.llm_failovers = a->llm.failovers_total;
    }

    if (a->tts_on) {
        ngx_voice_tts_abort(&a->tts);
        a->tts_on = 0;
    }

    if (a->stt_on) {
        ngx_voice_stt_abort(&a->stt);
        a->stt_on = 0;
    }

    for (i = 0; a->runs && i < NGX_VOICE_TOOL_RUNS; i++) {
        run = &a->runs[i];

        if (run->busy && !run->over) {
            ngx_voice_tool_abandon(run);
            ngx_voice_record_tool(a->rec, a->turns, run->name, run->name_len,
                                  run->id, run->id_len, run->args,
                                  run->args_len, run->outcome, run->status,
                                  run->result, run->result_len,
                                  run->elapsed);
        }

        ngx_voice_tool_free(run);
    }

    a->n.turns = a->turns;
    a->n.stt_reconnects = a->stt.connects ? a->stt.connects - 1 : 0;
    a->n.tts_reconnects = a->tts.ws.leg.connects
                          ? a->tts.ws.leg.connects - 1 : 0;

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: conversation ended (%s): %ui turns, %ui barge-ins, "
                  "%ui backchannels, %ui LLM errors, STT %ui connection(s), "
                  "TTS %ui connection(s), LLM %ui request(s) on %ui "
                  "connection(s)", a->end_reason, a->turns, a->n.barge_ins,
                  a->n.backchannels, a->n.llm_errors, a->stt.connects,
                  a->tts.ws.leg.connects, a->llm.requests,
                  a->llm.hc.leg.connects);

    call->end_reason = a->end_reason;

    ngx_voice_record_finish(a->rec, a->end_reason, &a->n);
    a->rec = NULL;

    while (a->nhistory) {
        ngx_voice_agent_forget(&a->history[--a->nhistory]);
    }
}


/* ---- speech-to-text ------------------------------------------------- */


static void
ngx_voice_agent_speech(ngx_voice_stt_t *stt)
{
    ngx_voice_agent_t  *a;

    a = stt->owner;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, stt->call->connection->log, 0,
                   "voice %V: caller started speaking", &stt->call->id);

    ngx_voice_agent_heard_from(a);

    /* voice_barge_in_min_words 0: the voice alone interrupts */
    if (a->conf->barge_in_min_words == 0) {
        ngx_voice_agent_barge_in(a, "speech started");
    }
}


static void
ngx_voice_agent_result(ngx_voice_stt_t *stt, ngx_voice_stt_result_t *res)
{
    size_t              n;
    ngx_log_t          *log;
    ngx_voice_agent_t  *a;

    a = stt->owner;
    log = stt->call->connection->log;

    if (!res->is_final) {
        if (res->text.len == 0) {
            return;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                       "voice %V: interim \"%V\"", &stt->call->id,
                       &res->text);

        a->interim = 1;
        ngx_voice_agent_heard_from(a);

        if (a->conf->stt_finalize) {
            ngx_add_timer(&a->finalize, a->conf->stt_finalize);
        }

        if (a->bot.active
            && ngx_voice_agent_words(&res->text)
               >= ngx_max(a->conf->barge_in_min_words, 1)
            && !ngx_voice_agent_backchannel(a, &res->text))
        {
            ngx_voice_agent_barge_in(a, "caller speech");
        }

        return;
    }

    a->interim = 0;

    if (a->finalize.timer_set) {
        ngx_del_timer(&a->finalize);
    }

    if (res->text.len) {
        ngx_log_error(NGX_LOG_INFO, log, 0, "voice: final segment \"%V\"",
                      &res->text);

        if (a->bot.active && a->bot.sent && a->user_len == 0
            && ngx_voice_agent_backchannel(a, &res->text))
        {
            /* "uh-huh" while the bot talks: heard, kept, not a turn */
            a->n.backchannels++;

            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "voice: backchannel \"%V\" does not interrupt",
                          &res->text);

            ngx_voice_record_user(a->rec, a->turns + 1, res->text.data,
                                  res->text.len, NULL, 1, ngx_current_msec);
            return;
        }

        if (ngx_voice_agent_words(&res->text) + a->user_words
            >= ngx_max(a->conf->barge_in_min_words, 1))
        {
            ngx_voice_agent_barge_in(a, "caller speech");
        }

        a->user_words += ngx_voice_agent_words(&res->text);

        n = ngx_min(res->text.len, NGX_VOICE_AGENT_TEXT - 1 - a->user_len);

        if (a->user_len && n) {
            a->user[a->user_len++] = ' ';
            n = ngx_min(n, NGX_VOICE_AGENT_TEXT - 1 - a->user_len);
        }

        ngx_memcpy(a->user + a->user_len, res->text.data, n);
        a->user_len += n;

        if (res->speech_end) {
            a->speech_end = res->speech_end;
        }
    }

    if ((res->speech_final || res->from_finalize) && a->user_len) {
        ngx_voice_agent_user_turn(a, res->speech_final ? "speech_final"
                                                       : "Finalize");
    }
}


/* no speech_final came (noise kept the VAD open): end the turn here */

static void
ngx_voice_agent_utterance_end(ngx_voice_stt_t *stt)
{
    ngx_voice_agent_t  *a;

    a = stt->owner;

    if (a->user_len) {
        ngx_voice_agent_user_turn(a, "UtteranceEnd");
        return;
    }

    /* words heard but never settled: ask for them now */
    if (a->interim) {
        (void) ngx_voice_stt_finalize(&a->stt);
    }
}


/* voice_stt_finalize: the caller paused with words not yet final */

static void
ngx_voice_agent_finalize(ngx_event_t *ev)
{
    ngx_voice_agent_t  *a;

    a = ev->data;

    if (a->interim && !a->over) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "voice %V: Finalize after a pause", &a->call->id);

        (void) ngx_voice_stt_finalize(&a->stt);
    }
}


static void
ngx_voice_agent_stt_closed(ngx_voice_stt_t *stt, ngx_voice_leg_error_e err)
{
    ngx_voice_agent_t  *a;

    a = stt->owner;

    if (a->stopping) {
        (void) ngx_voice_ws_close(stt->call, NGX_VOICE_WS_CLOSE_NORMAL,
                                  "stream stopped");
        return;
    }

    /* a conversation cannot go on deaf: end it rather than pretend */
    ngx_voice_record_degraded(a->rec, "speech-to-text lost (%s)",
                              ngx_voice_leg_strerror(err));
    ngx_voice_agent_end(a, NGX_VOICE_WS_CLOSE_INTERNAL,
                        "speech-to-text unavailable");
}


/* ---- turns ---------------------------------------------------------- */


static void
ngx_voice_agent_user_turn(ngx_voice_agent_t *a, const char *why)
{
    ngx_msec_t   lag, ended;
    ngx_log_t   *log;

    log = a->call->connection->log;

    if (a->tool_wait && !a->tools_pending && !a->tools_starting
        && !a->bot.active)
    {
        /* the answers are in (the filler was cut): this turn follows */
        a->tool_wait = 0;
    }

    if ((a->bot.active || a->tool_wait) && !a->stopping && !a->over) {
        /*
         * A greeting that must be heard, or barge-in off: the turn (and
         * what the caller adds meanwhile) follows the bot's in the
         * history, and is answered when that one is over.  Tool calls
         * in flight: their results must follow the call in the history
         * before the caller's next words.
         */
        if (!a->user_waiting) {
            a->user_waiting = 1;
            a->waiting_why = why;
            a->waiting_at = ngx_current_msec;
        }

        return;
    }

    ended = ngx_current_msec;

    ngx_voice_agent_heard_from(a);

    if (a->user_waiting) {
        a->user_waiting = 0;
        why = a->waiting_why;
        ended = a->waiting_at;
    }

    a->turns++;
    a->call->turns = a->turns;
    ngx_voice_zone_turn(a->call);

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "voice: caller turn %ui (%s): \"%*s\"", a->turns, why,
                  a->user_len, a->user);

    ngx_voice_record_user(a->rec, a->turns, a->user, a->user_len, why, 0,
                          ended);

    a->user_words = 0;

    /*
     * Twilio streams in real time: the caller's last word was spoken as
     * long ago as the audio received since it lasts.
     */
    ngx_memzero(&a->user_t, sizeof(ngx_voice_timing_t));
    a->user_t.transcript = ended;

    if (a->speech_end && a->speech_end <= a->stt.ring_total) {
        lag = (ngx_msec_t) ((a->stt.ring_total - a->speech_end) / 8);
        a->user_t.speech_end = ngx_current_msec - ngx_min(lag, 60000);
    }

    a->speech_end = 0;

    /*
     * The answer follows what the caller said last; one that was not
     * heard at all (cancelled while thinking) leaves the user message
     * open, and the new words join it.
     */
    if (a->nhistory
        && ngx_strcmp(a->history[a->nhistory - 1].role, "user") == 0)
    {
        ngx_voice_agent_remember(a, NULL, a->user, a->user_len);

    } else {
        ngx_voice_agent_remember(a, "user", a->user, a->user_len);
    }

    a->user_len = 0;
    a->tool_rounds = 0;

    /* the caller hung up, or we are ending the call: nothing to answer */
    if (a->stopping || a->over || a->hanging_up) {
        return;
    }

    ngx_voice_agent_ask(a);
}


static void
ngx_voice_agent_ask(ngx_voice_agent_t *a)
{
    ngx_voice_llm_conversation_t  conv;

    ngx_voice_agent_bot_begin(a, NGX_VOICE_BOT_REPLY, a->turns, 1);

    a->bot.t = a->user_t;

    conv.messages = a->history;
    conv.nmessages = a->nhistory;

    a->bot.t.llm_request = ngx_current_msec;

    if (ngx_voice_llm_request(&a->llm, &conv) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, a->call->connection->log, 0,
                      "voice: turn %ui could not be sent to the LLM",
                      a->turns);

        ngx_voice_agent_llm_error(&a->llm, &a->llm.err);
    }
}


static void
ngx_voice_agent_bot_begin(ngx_voice_agent_t *a, ngx_uint_t kind,
    ngx_uint_t turn, ngx_uint_t interruptible)
{
    ngx_voice_bot_t  *bot;

    bot = &a->bot;

    if (bot->active) {
        ngx_voice_agent_commit(a, 1);
    }

    bot->seq = ++a->bot_seq;
    bot->turn = turn;
    bot->kind = kind;
    bot->tts_turn = ++a->tts_turns;
    bot->text_len = 0;
    bot->said = 0;
    bot->sent = 0;
    bot->played = 0;
    bot->played_at = 0;
    bot->marks = 0;
    bot->dropped = 0;
    bot->resends = 0;
    bot->resent_voiced = 0;
    bot->stuck = 0;

    ngx_memzero(&bot->t, sizeof(ngx_voice_timing_t));
    ngx_voice_heard_reset(&bot->heard);

    bot->active = 1;
    bot->interruptible = interruptible;
    bot->text_done = 0;
    bot->tts_done = 0;
    bot->cleared = 0;
    bot->in_history = 0;
}


/*
 * Text of the bot's turn, as it comes.  By words: all of it goes to TTS
 * (which cuts at word ends); by sentences: up to the last sentence end.
 */

static void
ngx_voice_agent_say(ngx_voice_agent_t *a, u_char *text, size_t len,
    ngx_uint_t last)
{
    if (last) {
        ngx_voice_agent_progress(a);
    }

    ngx_voice_agent_say_text(a, text, len, last);
}


static void
ngx_voice_agent_say_text(ngx_voice_agent_t *a, u_char *text, size_t len,
    ngx_uint_t last)
{
    size_t            n, room;
    u_char           *p, *start;
    ngx_voice_bot_t  *bot;

    bot = &a->bot;

    room = NGX_VOICE_AGENT_TEXT - bot->text_len;

    if (len > room) {
        bot->dropped += len - room;
        len = room;
    }

    if (len) {
        ngx_memcpy(bot->text + bot->text_len, text, len);
        bot->text_len += len;
    }

    start = bot->text + bot->said;
    n = bot->text_len - bot->said;

    if (!last && a->conf->tts_chunking == NGX_VOICE_CHUNK_SENTENCE) {
        for (p = start + n; p > start; p--) {
            if ((p[-1] == '.' || p[-1] == '!' || p[-1] == '?')
                && p < bot->text + bot->text_len && p[0] == ' ')
            {
                /* with its space: TTS sends up to word ends */
                p++;
                break;
            }
        }

        n = p - start;
    }

    if (n == 0 && !last) {
        return;
    }

    if (n && bot->t.first_text == 0) {
        bot->t.first_text = ngx_current_msec;
    }

    bot->said += n;

    if (a->tts_on) {
        (void) ngx_voice_tts_say(&a->tts, bot->tts_turn, start, n, last);
    }
}


/*
 * Once all of a bot turn's text is given, TTS and Twilio must keep
 * making progress (audio, mark echoes): a provider that never ends the
 * turn (an ignored Flush, a lost isFinal) or marks that never come back
 * must not hold the conversation.
 */

static void
ngx_voice_agent_progress(ngx_voice_agent_t *a)
{
    if (a->bot.active && a->bot.text_done) {
        ngx_add_timer(&a->watchdog, a->conf->provider_timeout);
    }
}


static void
ngx_voice_agent_watchdog(ngx_event_t *ev)
{
    uint64_t            pos;
    ngx_voice_bot_t    *bot;
    ngx_voice_agent_t  *a;

    a = ev->data;
    bot = &a->bot;

    if (!bot->active || a->over) {
        return;
    }

    pos = ngx_voice_agent_position(bot);

    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "voice: agent turn %ui stalled (%s) after %uL ms of audio: "
                  "ending it", bot->turn,
                  bot->tts_done ? "marks not echoed"
                                : "text-to-speech did not finish",
                  bot->sent / 8);

    ngx_voice_record_degraded(a->rec, "agent turn %ui stalled: %s",
                              bot->turn,
                              bot->tts_done ? "marks not echoed"
                                            : "text-to-speech did not "
                                              "finish");

    if (!bot->tts_done && a->tts_on) {
        (void) ngx_voice_tts_cancel(&a->tts);
    }

    ngx_voice_agent_commit(a, pos < bot->sent || !bot->tts_done);

    if (a->user_waiting && a->user_len && !a->stopping) {
        ngx_voice_agent_user_turn(a, a->waiting_why);
    }

    ngx_voice_agent_next(a);
}


/*
 * After a bot turn: the goodbye has been heard (hang up), or the
 * caller's turn is due (the idle reprompt starts counting).
 */

static void
ngx_voice_agent_next(ngx_voice_agent_t *a)
{
    if (a->over || a->stopping || a->bot.active) {
        return;
    }

    if (a->hanging_up) {
        ngx_log_error(NGX_LOG_INFO, a->call->connection->log, 0,
                      "voice: goodbye heard, ending the call (%s)",
                      a->end_reason);

        ngx_voice_agent_hangup(a);
        return;
    }

    if (a->tool_wait) {
        ngx_voice_agent_continue(a);
        return;
    }

    if (a->conf->idle_reprompt && a->user_len == 0 && !a->interim) {
        ngx_add_timer(&a->idle, a->conf->idle_reprompt);
    }
}


/*
 * The goodbye (or the transfer's announcement) was heard.  A transfer
 * updates the live call with <Dial> TwiML, and voice_twilio_complete
 * completes it, through Twilio's REST API: the stream is closed once
 * Twilio has the update (closing first would run the TwiML after
 * <Connect> meanwhile).  Otherwise the stream is closed now.
 */

static void
ngx_voice_agent_hangup(ngx_voice_agent_t *a)
{
    u_char      twiml[NGX_VOICE_OA_MAX_NAME + 64], *p;
    size_t      len;
    ngx_str_t   form;

    if (a->hung_up) {
        return;
    }

    a->hung_up = 1;

    if (a->transferring) {
        /* an allowed number: E.164, nothing to escape in XML */
        p = ngx_sprintf(twiml, "<Response><Dial>%*s</Dial></Response>",
                        a->transfer_len, a->transfer_to);
        len = p - twiml;

        form.len = sizeof("Twiml=") - 1
                   + ngx_voice_form_encode(NULL, twiml, len);
        form.data = ngx_pnalloc(a->call->request->pool, form.len);

        if (form.data == NULL) {
            ngx_voice_agent_updated(a->call, 0, a);
            return;
        }

        p = ngx_cpymem(form.data, "Twiml=", sizeof("Twiml=") - 1);
        (void) ngx_voice_form_encode(p, twiml, len);

        ngx_log_error(NGX_LOG_INFO, a->call->connection->log, 0,
                      "voice: transferring the call to %*s",
                      a->transfer_len, a->transfer_to);

    } else if (a->conf->twilio_complete) {
        ngx_str_set(&form, "Status=completed");

    } else {
        ngx_voice_agent_end(a, NGX_VOICE_WS_CLOSE_NORMAL, "call ended");
        return;
    }

    if (ngx_voice_twilio_update(a->call, &form, ngx_voice_agent_updated, a)
        != NGX_OK)
    {
        ngx_voice_agent_updated(a->call, 0, a);
    }
}


static void
ngx_voice_agent_updated(ngx_voice_call_t *call, ngx_uint_t status,
    void *data)
{
    ngx_voice_agent_t  *a;

    a = data;

    if (a->over) {
        return;
    }

    /* 404: the call is over already, which a completion wanted */
    if ((status >= 200 && status < 300)
        || (status == NGX_HTTP_NOT_FOUND && !a->transferring))
    {
        ngx_voice_agent_end(a, NGX_VOICE_WS_CLOSE_NORMAL,
                            a->transferring ? "call transferred"
                                            : "call ended");
        return;
    }

    ngx_log_error(NGX_LOG_ERR, call->connection->log, 0,
                  "voice: Twilio's REST API did not %s the call "
                  "(status %ui): closing the stream",
                  a->transferring ? "transfer" : "complete", status);

    ngx_voice_record_degraded(a->rec, "Twilio's REST API did not %s the "
                              "call (status %ui)",
                              a->transferring ? "transfer" : "complete",
                              status);

    if (a->transferring) {
        a->end_reason = "transfer failed";
    }

    ngx_voice_agent_end(a, NGX_VOICE_WS_CLOSE_NORMAL, "call ended");
}


/* the bot's turn is over once all of its audio has been heard */

static void
ngx_voice_agent_check_done(ngx_voice_agent_t *a)
{
    ngx_voice_bot_t  *bot;

    bot = &a->bot;

    if (!bot->active || bot->cleared || !bot->text_done || !bot->tts_done
        || bot->played < bot->sent || bot->marks)
    {
        return;
    }

    ngx_voice_agent_commit(a, 0);

    if (a->user_waiting && a->user_len && !a->over && !a->stopping) {
        ngx_voice_agent_user_turn(a, a->waiting_why);
    }

    ngx_voice_agent_next(a);
}


/*
 * Barge-in: the caller speaks over a live bot turn.  Stop the audio the
 * caller would still hear, stop making more, keep what was heard.
 */

static void
ngx_voice_agent_barge_in(ngx_voice_agent_t *a, const char *why)
{
    ngx_voice_bot_t  *bot;

    bot = &a->bot;

    if (!bot->active || bot->cleared || !bot->interruptible
        || !a->conf->barge_in || a->over)
    {
        return;
    }

    bot->cleared = 1;

    if (bot->sent) {
        (void) ngx_voice_call_send_clear(a->call);
    }

    if (a->llm.state != NGX_VOICE_LLM_IDLE) {
        ngx_voice_llm_cancel(&a->llm);

        /* the next turn must find a warm connection again */
        (void) ngx_voice_llm_warm(&a->llm);
    }

    if (a->tts_on) {
        (void) ngx_voice_tts_cancel(&a->tts);
    }

    a->n.barge_ins++;
    a->call->interruptions++;
    ngx_voice_zone_barge_in(a->call);

    ngx_log_error(NGX_LOG_INFO, a->call->connection->log, 0,
                  "voice: barge-in (%s): agent turn %ui interrupted after "
                  "%uL of %uL ms of audio", why, bot->turn,
                  ngx_voice_agent_position(bot) / 8, bot->sent / 8);

    ngx_voice_agent_commit(a, 1);
}


/*
 * The bot's turn ends: the words heard go into the history and the
 * record; an interrupted turn keeps only those.
 */

static void
ngx_voice_agent_commit(ngx_voice_agent_t *a, ngx_uint_t interrupted)
{
    size_t                  len, n;
    ngx_msec_t              lat;
    uint64_t                pos, total;
    ngx_log_t              *log;
    const u_char           *heard;
    ngx_voice_bot_t        *bot;

    bot = &a->bot;
    log = a->call->connection->log;

    bot->active = 0;

    if (a->watchdog.timer_set) {
        ngx_del_timer(&a->watchdog);
    }

    /* the model's trailing blanks would only cost history tokens */
    len = bot->text_len;

    while (len && (bot->text[len - 1] == ' ' || bot->text[len - 1] == '\n'))
    {
        len--;
    }

    if (!interrupted) {
        heard = bot->text;
        n = len;

    } else {
        pos = ngx_voice_agent_position(bot);

        if (pos >= bot->sent && bot->tts_done && bot->text_done) {
            /* cut after the last word was played: all of it was heard */
            heard = bot->text;
            n = len;

        } else if (bot->heard.aligned) {
            /* the words the alignment says were heard, as the LLM wrote
             * them (its spacing and punctuation) */
            n = ngx_voice_heard_text(&bot->heard, pos, &heard);
            n = ngx_voice_heard_resume(bot->text, len,
                                       ngx_voice_heard_nonblank(heard, n));
            heard = bot->text;

            while (n && (heard[n - 1] == ' ' || heard[n - 1] == '\n')) {
                n--;
            }

        } else {
            /* no alignment: at an even pace over the audio made */
            total = bot->tts_done
                    ? bot->sent
                    : ngx_max(bot->sent, (uint64_t) bot->said * 8000
                                         / NGX_VOICE_AGENT_PACE);
            heard = bot->text;
            n = ngx_voice_heard_estimate(bot->text, len, pos, total);
        }
    }

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "voice: agent turn %ui (%s%s): \"%*s\"", bot->turn,
                  ngx_voice_bot_kinds[bot->kind],
                  interrupted ? ", interrupted" : "", n, heard);

    if (interrupted && n < len) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "voice: agent turn %ui not heard: \"%*s\"", bot->turn,
                      len - n, bot->text + n);
    }

    if (bot->dropped) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "voice: agent turn %ui: %ui bytes of text over %d "
                      "not spoken", bot->turn, bot->dropped,
                      NGX_VOICE_AGENT_TEXT);
    }

    ngx_voice_record_bot(a->rec, bot->turn, ngx_voice_bot_kinds[bot->kind],
                         (u_char *) heard, n, bot->text, len, interrupted);

    if (bot->kind != NGX_VOICE_BOT_GREETING || bot->t.first_media) {
        ngx_voice_record_timing(a->rec, bot->turn, &bot->t, interrupted);
    }

    if (bot->t.speech_end && bot->t.first_heard) {
        lat = bot->t.first_heard - bot->t.speech_end;

        a->call->latency_n++;
        a->call->latency_sum += lat;
        a->call->latency_max = ngx_max(a->call->latency_max, lat);
    }

    /* a reply with tool calls is in the history with them; a filler
     * is not the model's */
    if (n && !bot->in_history) {
        ngx_voice_agent_remember(a, "assistant", (u_char *) heard, n);
    }
}


/* how far the caller has heard the bot's turn, in bytes of its audio */

static uint64_t
ngx_voice_agent_position(ngx_voice_bot_t *bot)
{
    uint64_t  pos;

    if (bot->played_at == 0) {
        return 0;
    }

    /* Twilio plays 8000 bytes a second on from the last echo */
    pos = bot->played + (uint64_t) (ngx_current_msec - bot->played_at) * 8;

    return ngx_min(pos, bot->sent);
}


static ngx_uint_t
ngx_voice_agent_backchannel(ngx_voice_agent_t *a, ngx_str_t *text)
{
    if (a->conf->backchannel == NULL) {
        return 0;
    }

    return ngx_voice_agent_match(a, a->conf->backchannel, text);
}


static ngx_uint_t
ngx_voice_agent_match(ngx_voice_agent_t *a, ngx_regex_t *re, ngx_str_t *text)
{
    ngx_int_t  rc;

    rc = ngx_regex_exec(re, text, NULL, 0);

    if (rc < NGX_REGEX_NO_MATCHED) {
        ngx_log_error(NGX_LOG_ALERT, a->call->connection->log, 0,
                      ngx_regex_exec_n " failed: %i on \"%V\"", rc, text);
        return 0;
    }

    return rc >= 0;
}


static ngx_uint_t
ngx_voice_agent_words(ngx_str_t *text)
{
    u_char      *p, *last;
    ngx_uint_t   n, in;

    n = 0;
    in = 0;
    last = text->data + text->len;

    for (p = text->data; p < last; p++) {
        if (*p == ' ' || *p == '\t') {
            in = 0;

        } else if (!in) {
            in = 1;
            n++;
        }
    }

    return n;
}


/*
 * Adds a message to the history (role NULL: appends to the last one);
 * the oldest exchange goes first when it is full.
 */

static void
ngx_voice_agent_remember(ngx_voice_agent_t *a, const char *role,
    u_char *text, size_t len)
{
    u_char                  *p;
    ngx_voice_oa_message_t  *m;

    if (role == NULL) {
        m = &a->history[a->nhistory - 1];

        p = ngx_alloc(m->content.len + 1 + len, a->call->connection->log);
        if (p == NULL) {
            return;
        }

        ngx_memcpy(p, m->content.data, m->content.len);
        p[m->content.len] = ' ';
        ngx_memcpy(p + m->content.len + 1, text, len);

        ngx_free((void *) m->content.data);

        m->content.data = (char *) p;
        m->content.len += 1 + len;

        return;
    }

    p = ngx_alloc(len ? len : 1, a->call->connection->log);
    if (p == NULL) {
        return;
    }

    m = ngx_voice_agent_push(a);
    if (m == NULL) {
        ngx_free(p);
        return;
    }

    m->role = role;
    m->content.data = (char *) p;
    m->content.len = len;

    ngx_memcpy(p, text, len);
}


/*
 * A new message at the end.  When the history is full the oldest
 * exchange goes, so that it starts with the caller again; never the only
 * one (tool answers without their call would be refused): NULL then.
 */

static ngx_voice_oa_message_t *
ngx_voice_agent_push(ngx_voice_agent_t *a)
{
    ngx_uint_t               i, j;
    ngx_voice_oa_message_t  *m;

    if (a->nhistory == NGX_VOICE_AGENT_HISTORY) {
        for (j = 1; j < a->nhistory; j++) {
            if (ngx_strcmp(a->history[j].role, "user") == 0) {
                break;
            }
        }

        if (j == a->nhistory) {
            ngx_log_error(NGX_LOG_WARN, a->call->connection->log, 0,
                          "voice: the history is full with one exchange: "
                          "a message is not kept");
            return NULL;
        }

        for (i = 0; i < j; i++) {
            ngx_voice_agent_forget(&a->history[i]);
        }

        ngx_memmove(&a->history[0], &a->history[j],
                    (a->nhistory - j) * sizeof(ngx_voice_oa_message_t));
        a->nhistory -= j;
    }

    m = &a->history[a->nhistory++];
    ngx_memzero(m, sizeof(ngx_voice_oa_message_t));

    return m;
}


/* a message's memory: one block, the calls' when it has tool calls */

static void
ngx_voice_agent_forget(ngx_voice_oa_message_t *m)
{
    if (m->calls) {
        ngx_free((void *) m->calls);

    } else {
        ngx_free((void *) m->content.data);
    }
}


/*
 * The model's reply with its tool calls, as the next request must
 * repeat it: its text (all of it: the calls were made after it) and
 * each call's id, name and arguments.
 */

static ngx_int_t
ngx_voice_agent_remember_calls(ngx_voice_agent_t *a,
    ngx_voice_oa_stream_t *s)
{
    u_char                   *p;
    size_t                    size;
    ngx_uint_t                i, n;
    ngx_voice_oa_call_t      *calls;
    ngx_voice_oa_message_t   *m;
    ngx_voice_oa_acc_call_t  *c;

    /* the calls beyond those run are not kept: as if never made */
    n = ngx_min(s->ncalls, NGX_VOICE_TOOL_RUNS);
    size = n * sizeof(ngx_voice_oa_call_t) + a->bot.text_len;

    for (i = 0; i < n; i++) {
        size += s->calls[i].id_len + s->calls[i].name_len
                + s->calls[i].args_len;
    }

    calls = ngx_alloc(size, a->call->connection->log);
    if (calls == NULL) {
        return NGX_ERROR;
    }

    p = (u_char *) &calls[n];

    m = ngx_voice_agent_push(a);
    if (m == NULL) {
        ngx_free(calls);
        return NGX_ERROR;
    }

    m->role = "assistant";
    m->calls = calls;
    m->ncalls = n;
    m->content.data = (char *) p;
    m->content.len = a->bot.text_len;

    p = ngx_cpymem(p, a->bot.text, a->bot.text_len);

    for (i = 0; i < n; i++) {
        c = &s->calls[i];

        calls[i].id.data = (char *) p;
        calls[i].id.len = c->id_len;
        p = ngx_cpymem(p, c->id, c->id_len);

        calls[i].name.data = (char *) p;
        calls[i].name.len = c->name_len;
        p = ngx_cpymem(p, c->name, c->name_len);

        calls[i].arguments.data = (char *) p;
        calls[i].arguments.len = c->args_len;
        p = ngx_cpymem(p, c->args, c->args_len);
    }

    return NGX_OK;
}


/* a tool's answer: the content of a "tool" message */

static void
ngx_voice_agent_remember_tool(ngx_voice_agent_t *a, u_char *id, size_t id_len,
    u_char *result, size_t len)
{
    u_char                  *p;
    ngx_voice_oa_message_t  *m;

    p = ngx_alloc(len + id_len + 1, a->call->connection->log);
    if (p == NULL) {
        return;
    }

    m = ngx_voice_agent_push(a);
    if (m == NULL) {
        ngx_free(p);
        return;
    }

    m->role = "tool";
    m->content.data = (char *) p;
    m->content.len = len;
    m->tool_call_id.data = (char *) p + len;
    m->tool_call_id.len = id_len;

    ngx_memcpy(p, result, len);
    ngx_memcpy(p + len, id, id_len);
}


/* ---- the language model --------------------------------------------- */


static void
ngx_voice_agent_delta(ngx_voice_llm_t *llm, ngx_str_t *text)
{
    ngx_voice_agent_t  *a;

    a = llm->owner;

    if (!a->bot.active || a->bot.cleared) {
        return;
    }

    if (a->bot.t.first_token == 0) {
        a->bot.t.first_token = ngx_current_msec;
    }

    ngx_voice_agent_say(a, text->data, text->len, 0);
}


static void
ngx_voice_agent_reply(ngx_voice_llm_t *llm, ngx_uint_t finish)
{
    ngx_int_t               rc;
    ngx_str_t               text;
    ngx_log_t              *log;
    ngx_voice_bot_t        *bot;
    ngx_voice_agent_t      *a;
    ngx_voice_oa_stream_t  *s;

    a = llm->owner;
    bot = &a->bot;
    s = &llm->stream;
    log = a->call->connection->log;

    a->n.prompt_tokens += s->prompt_tokens;
    a->n.completion_tokens += s->completion_tokens;

    if (!bot->active || bot->cleared) {
        return;
    }

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "voice: LLM reply to turn %ui complete: first token %M ms, "
                  "total %M ms, tokens %uL+%uL", bot->turn,
                  llm->first_token ? llm->first_token - llm->sent : 0,
                  ngx_current_msec - llm->sent, s->prompt_tokens,
                  s->completion_tokens);

    if (finish == NGX_VOICE_OA_FINISH_TOOL_CALLS && s->ncalls
        && !ngx_voice_agent_builtins(a, s))
    {
        rc = ngx_voice_agent_tools(a, s);

        if (rc == NGX_OK) {
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_voice_agent_llm_error(llm, &llm->err);
            return;
        }
    }

    bot->text_done = 1;

    if (!a->hanging_up && bot->text_len && a->conf->hangup_phrase) {
        text.data = bot->text;
        text.len = bot->text_len;

        if (ngx_voice_agent_match(a, a->conf->hangup_phrase, &text)) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "voice: the reply ends the call "
                          "(voice_hangup_phrase)");
            a->hanging_up = 1;
            a->end_reason = "agent ended the call";
        }
    }

    if (a->hanging_up) {
        if (bot->text_len == 0) {
            /* no words of its own: the configured goodbye */
            ngx_voice_agent_goodbye(a, a->end_reason);
            return;
        }

        /* this reply is the goodbye: heard in full, then the hang-up */
        bot->interruptible = 0;
    }

    if (bot->text_len == 0) {
        /* nothing to say: the turn is over at once */
        bot->tts_done = 1;
        ngx_voice_agent_check_done(a);
        return;
    }

    ngx_voice_agent_say(a, NULL, 0, 1);
}


/*
 * The built-in tools that end the call: end_call, and transfer_call to an
 * allowed number.  The reply is then the goodbye (or the announcement),
 * and the other tool calls of the reply are not run.
 */

static ngx_uint_t
ngx_voice_agent_builtins(ngx_voice_agent_t *a, ngx_voice_oa_stream_t *s)
{
    size_t                    len;
    cJSON                    *args, *number;
    ngx_uint_t                i;
    ngx_log_t                *log;
    ngx_voice_oa_acc_call_t  *c;

    log = a->call->connection->log;

    for (i = 0; i < s->ncalls && !a->hanging_up; i++) {
        c = &s->calls[i];

        if (!ngx_voice_agent_offered(a, c)) {
            continue;
        }

        if (a->conf->end_call && c->name_len == sizeof("end_call") - 1
            && ngx_strncmp(c->name, "end_call", c->name_len) == 0)
        {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "voice: the LLM ends the call (end_call)");
            a->hanging_up = 1;
            a->end_reason = "agent ended the call";
            break;
        }

        if (a->conf->transfer_numbers == NULL
            || c->name_len != sizeof("transfer_call") - 1
            || ngx_strncmp(c->name, "transfer_call", c->name_len) != 0)
        {
            continue;
        }

        args = cJSON_ParseWithLength(c->args, c->args_len);
        number = cJSON_GetObjectItemCaseSensitive(args, "number");

        len = cJSON_IsString(number) ? ngx_strlen(number->valuestring) : 0;

        if (len && len <= NGX_VOICE_OA_MAX_NAME
            && ngx_voice_transfer_allowed(a->conf,
                                          (u_char *) number->valuestring,
                                          len))
        {
            a->transfer_len = len;
            ngx_memcpy(a->transfer_to, number->valuestring, len);

            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "voice: the LLM transfers the call to %*s "
                          "(transfer_call)", a->transfer_len,
                          a->transfer_to);

            a->transferring = 1;
            a->hanging_up = 1;
            a->end_reason = "transferred";
        }

        cJSON_Delete(args);
    }

    if (a->hanging_up && s->ncalls > 1) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "voice: %ui other tool call(s) of the reply not run: "
                      "the call is ending", (ngx_uint_t) s->ncalls - 1);
    }

    return a->hanging_up;
}


/*
 * A reply that calls tools: the calls go into the history with the
 * reply's words, each runs once, and the model is asked again when all
 * have answered (and what the caller hears meanwhile, the model's words
 * or a filler, is over).  NGX_DECLINED: too many rounds, the reply ends
 * as it is.
 */

static ngx_int_t
ngx_voice_agent_tools(ngx_voice_agent_t *a, ngx_voice_oa_stream_t *s)
{
    u_char                   *err;
    ngx_int_t                 rc;
    ngx_str_t                 filler;
    ngx_uint_t                i;
    ngx_voice_bot_t          *bot;
    ngx_voice_tool_t         *tool;
    ngx_voice_tool_run_t     *run;
    ngx_voice_oa_acc_call_t  *c;

    bot = &a->bot;

    if (++a->tool_rounds > NGX_VOICE_AGENT_TOOL_ROUNDS) {
        ngx_log_error(NGX_LOG_WARN, a->call->connection->log, 0,
                      "voice: turn %ui: tool calls not run after %d rounds",
                      bot->turn, NGX_VOICE_AGENT_TOOL_ROUNDS);
        ngx_voice_record_degraded(a->rec, "turn %ui: tool calls not run "
                                  "after %d rounds", bot->turn,
                                  NGX_VOICE_AGENT_TOOL_ROUNDS);
        return NGX_DECLINED;
    }

    if (a->runs == NULL) {
        /* only calls that use tools pay for their runs */
        a->runs = ngx_pcalloc(a->call->request->pool,
                              NGX_VOICE_TOOL_RUNS
                              * sizeof(ngx_voice_tool_run_t));
        if (a->runs == NULL) {
            return NGX_ERROR;
        }
    }

    /* the last round's runs are all over: the model was asked after */
    for (i = 0; i < NGX_VOICE_TOOL_RUNS; i++) {
        ngx_voice_tool_free(&a->runs[i]);
    }

    if (ngx_voice_agent_remember_calls(a, s) != NGX_OK) {
        return NGX_ERROR;
    }

    bot->in_history = 1;
    a->tool_wait = 1;
    a->tools_starting = 1;
    ngx_str_null(&filler);

    if (s->ncalls > NGX_VOICE_TOOL_RUNS) {
        ngx_log_error(NGX_LOG_WARN, a->call->connection->log, 0,
                      "voice: turn %ui: %ui tool calls in one reply, the "
                      "first %d run", bot->turn, (ngx_uint_t) s->ncalls,
                      NGX_VOICE_TOOL_RUNS);
    }

    for (i = 0; i < s->ncalls && i < NGX_VOICE_TOOL_RUNS; i++) {
        c = &s->calls[i];
        a->n.tool_calls++;

        run = &a->runs[i];

        /* only what the call offers (a persona may offer fewer) */
        tool = ngx_voice_agent_offered(a, c)
               ? ngx_voice_tool_find(a->conf, (u_char *) c->name,
                                     c->name_len)
               : NULL;

        a->tools_pending++;

        rc = ngx_voice_tool_start(run, a->call, tool, c,
                                  ngx_voice_agent_tool_done, a);

        if (rc == NGX_ERROR) {
            a->tools_pending--;
            err = (u_char *) "{\"error\":\"the tool could not be run\"}";
            ngx_voice_agent_remember_tool(a, (u_char *) c->id, c->id_len,
                                          err, ngx_strlen(err));
            continue;
        }

        if (tool == NULL) {
            /* a transfer refused above, or a tool nobody declared */
            if (c->name_len == sizeof("transfer_call") - 1
                && ngx_strncmp(c->name, "transfer_call", c->name_len) == 0)
            {
                ngx_voice_tool_answer(run, "refused", "{\"error\":\"the "
                                      "call cannot be transferred to that "
                                      "number\"}");

            } else {
                ngx_voice_tool_answer(run, "unknown tool", "{\"error\":"
                                      "\"there is no such tool\"}");
            }

            continue;
        }

        if (rc == NGX_AGAIN && filler.len == 0) {
            filler = tool->filler;
        }
    }

    a->tools_starting = 0;
    bot->text_done = 1;

    if (bot->text_len == 0 && filler.len && a->tools_pending) {
        /* the caller is not left in silence while the tool runs */
        bot->kind = NGX_VOICE_BOT_FILLER;
        ngx_voice_agent_say(a, filler.data, filler.len, 1);
        return NGX_OK;
    }

    if (bot->text_len == 0) {
        bot->tts_done = 1;
        ngx_voice_agent_check_done(a);
        return NGX_OK;
    }

    ngx_voice_agent_say(a, NULL, 0, 1);

    return NGX_OK;
}


/*
 * Whether the call's LLM was offered this tool: the tools text is
 * cJSON's unformatted print, where each name is "name":"<name>".
 */

static ngx_uint_t
ngx_voice_agent_offered(ngx_voice_agent_t *a, ngx_voice_oa_acc_call_t *c)
{
    u_char      needle[NGX_VOICE_OA_MAX_NAME + 16];
    ngx_str_t  *tools;

    tools = &a->llm.tools;

    (void) ngx_sprintf(needle, "\"name\":\"%*s\"%Z", c->name_len, c->name);

    return tools->len
           && ngx_strnstr(tools->data, (char *) needle, tools->len) != NULL;
}


/* a tool call is over: its answer joins the history, exactly once */

static void
ngx_voice_agent_tool_done(ngx_voice_tool_run_t *run)
{
    ngx_voice_agent_t  *a;

    a = run->data;

    ngx_voice_agent_remember_tool(a, run->id, run->id_len, run->result,
                                  run->result_len);

    ngx_voice_record_tool(a->rec, a->turns, run->name, run->name_len,
                          run->id, run->id_len, run->args, run->args_len,
                          run->outcome, run->status, run->result,
                          run->result_len, run->elapsed);

    if (ngx_strcmp(run->outcome, "ok") != 0) {
        ngx_voice_record_degraded(a->rec, "tool %*s %s on turn %ui",
                                  run->name_len, run->name, run->outcome,
                                  a->turns);
    }

    if (a->tools_pending) {
        a->tools_pending--;
    }

    ngx_voice_agent_continue(a);
}


/*
 * All tool calls answered and the caller's side quiet: the model is asked
 * again with the answers; if the caller spoke meanwhile, their turn is
 * asked instead (it follows the answers in the history).
 */

static void
ngx_voice_agent_continue(ngx_voice_agent_t *a)
{
    if (!a->tool_wait || a->tools_pending || a->tools_starting
        || a->bot.active || a->over || a->stopping)
    {
        return;
    }

    a->tool_wait = 0;

    if (a->user_waiting && a->user_len) {
        ngx_voice_agent_user_turn(a, a->waiting_why);
        return;
    }

    if (a->user_len || a->interim || a->hanging_up) {
        /* the caller is speaking: their turn will ask */
        return;
    }

    /* the same caller turn, no new speech: its timing was recorded */
    ngx_memzero(&a->user_t, sizeof(ngx_voice_timing_t));

    ngx_voice_agent_ask(a);
}


/* the conversation goes on: a short apology, or what was said so far */

static void
ngx_voice_agent_llm_error(ngx_voice_llm_t *llm, ngx_voice_llm_error_t *err)
{
    ngx_voice_bot_t    *bot;
    ngx_voice_agent_t  *a;

    a = llm->owner;
    bot = &a->bot;

    a->n.llm_errors++;

    ngx_voice_record_degraded(a->rec, "LLM failed on turn %ui: %s%s%ui",
                              bot->turn, ngx_voice_leg_strerror(err->leg),
                              err->status ? ", HTTP " : "",
                              err->status);

    ngx_log_error(NGX_LOG_WARN, a->call->connection->log, 0,
                  "voice: no LLM reply to turn %ui (%s, status %ui)%s",
                  bot->turn, ngx_voice_leg_strerror(err->leg), err->status,
                  bot->text_len ? ": the reply ends here" : ": apologising");

    if (!bot->active || bot->cleared) {
        return;
    }

    bot->text_done = 1;

    if (bot->text_len) {
        ngx_voice_agent_say(a, NULL, 0, 1);
        return;
    }

    a->n.apologies++;
    bot->kind = NGX_VOICE_BOT_APOLOGY;

    ngx_voice_agent_say(a, a->conf->llm_apology.data,
                        a->conf->llm_apology.len, 1);
}


/* ---- text-to-speech ------------------------------------------------- */


static void
ngx_voice_agent_audio(ngx_voice_tts_t *tts, ngx_uint_t turn, u_char *audio,
    size_t len, ngx_voice_el_align_t *align)
{
    ngx_voice_bot_t    *bot;
    ngx_voice_agent_t  *a;

    a = tts->owner;
    bot = &a->bot;

    if (!bot->active || bot->cleared || turn != bot->tts_turn || a->over) {
        return;
    }

    if (bot->t.first_audio == 0) {
        bot->t.first_audio = ngx_current_msec;
    }

    /* the echo of a mark before any audio: the caller starts hearing */
    if (bot->sent == 0 && ngx_voice_agent_mark_send(a) != NGX_OK) {
        return;
    }

    /* μ-law from the TTS is what Twilio plays: straight through */
    if (ngx_voice_call_send_media(a->call, audio, len) != NGX_OK) {
        return;
    }

    if (bot->t.first_media == 0) {
        bot->t.first_media = ngx_current_msec;
    }

    ngx_voice_heard_audio(&bot->heard, len, align);
    bot->sent += len;

    ngx_voice_agent_progress(a);

    (void) ngx_voice_agent_mark_send(a);
}


static ngx_int_t
ngx_voice_agent_mark_send(ngx_voice_agent_t *a)
{
    u_char  name[NGX_INT_T_LEN * 2 + 2], *p;

    p = ngx_sprintf(name, "b%ui-%uL", a->bot.seq, a->bot.sent);

    if (ngx_voice_call_send_mark(a->call, name, p - name) != NGX_OK) {
        return NGX_ERROR;
    }

    a->bot.marks++;

    return NGX_OK;
}


static void
ngx_voice_agent_tts_done(ngx_voice_tts_t *tts, ngx_uint_t turn,
    ngx_uint_t complete)
{
    size_t              off, voiced;
    ngx_voice_bot_t    *bot;
    ngx_voice_agent_t  *a;

    a = tts->owner;
    bot = &a->bot;

    if (!bot->active || bot->cleared || turn != bot->tts_turn || a->over) {
        return;
    }

    if (complete) {
        if (!bot->text_done) {
            /* a context the provider ended early: more text will come */
            return;
        }

        bot->tts_done = 1;
        ngx_voice_heard_end(&bot->heard);
        ngx_voice_agent_check_done(a);
        return;
    }

    /*
     * The socket dropped mid-turn (it is reconnecting): the part of the
     * text not yet voiced goes again, in a new context, from the start
     * of the word it cut.
     */
    if (bot->heard.in_word) {
        /* the text says whether the audio stopped inside the last word */
        off = ngx_voice_heard_resume(bot->text, bot->said,
                                     bot->heard.voiced);

        if (ngx_voice_heard_nonblank(bot->text, off) < bot->heard.voiced) {
            ngx_voice_heard_cut(&bot->heard);

        } else {
            ngx_voice_heard_end(&bot->heard);
        }
    }

    voiced = bot->heard.aligned
             ? bot->heard.voiced
             : (size_t) (bot->sent * NGX_VOICE_AGENT_PACE / 8000);

    off = ngx_voice_heard_resume(bot->text, bot->said, voiced);

    /* a provider that drops before each turn's end must not loop */
    if (bot->resends && voiced <= bot->resent_voiced
        && ++bot->stuck >= NGX_VOICE_AGENT_STUCK)
    {
        ngx_log_error(NGX_LOG_ERR, a->call->connection->log, 0,
                      "voice: text-to-speech keeps dropping agent turn %ui "
                      "without progress: ending it", bot->turn);

        ngx_voice_record_degraded(a->rec, "text-to-speech gave up on turn "
                                  "%ui", bot->turn);

        bot->tts_done = 1;
        bot->text_done = 1;
        ngx_voice_agent_check_done(a);
        return;
    }

    bot->resends++;
    bot->resent_voiced = voiced;

    if (off == bot->said && bot->text_done) {
        /* all of it was voiced: only the end of the turn was lost */
        bot->tts_done = 1;
        ngx_voice_heard_end(&bot->heard);
        ngx_voice_agent_check_done(a);
        return;
    }

    a->n.tts_resends++;

    ngx_log_error(NGX_LOG_WARN, a->call->connection->log, 0,
                  "voice: text-to-speech lost agent turn %ui after %uL ms "
                  "of audio: sending the rest again (%uz bytes of text)",
                  bot->turn, bot->sent / 8, bot->said - off);

    ngx_voice_record_degraded(a->rec, "text-to-speech dropped on turn %ui: "
                              "%uz bytes of text sent again", bot->turn,
                              bot->said - off);

    bot->tts_turn = ++a->tts_turns;

    (void) ngx_voice_tts_say(&a->tts, bot->tts_turn, bot->text + off,
                             bot->said - off,
                             bot->text_done && bot->said == bot->text_len);
}


static void
ngx_voice_agent_tts_closed(ngx_voice_tts_t *tts, ngx_voice_leg_error_e err)
{
    ngx_voice_agent_t  *a;

    a = tts->owner;

    if (a->stopping || a->over) {
        return;
    }

    ngx_voice_record_degraded(a->rec, "text-to-speech lost (%s)",
                              ngx_voice_leg_strerror(err));

    /* a voice agent without a voice: hand the call back to TwiML */
    ngx_voice_agent_end(a, NGX_VOICE_WS_CLOSE_INTERNAL,
                        "text-to-speech unavailable");
}


/* ends the call from our side (Twilio then runs the TwiML after it) */

static void
ngx_voice_agent_end(ngx_voice_agent_t *a, ngx_uint_t code,
    const char *reason)
{
    if (a->over) {
        return;
    }

    a->over = 1;

    if (a->end_reason == NULL) {
        a->end_reason = reason;
    }

    (void) ngx_voice_ws_close(a->call, code, reason);
}
