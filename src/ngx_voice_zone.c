/*
 * Copyright (C) ngx_voice authors
 *
 * voice_zone: call metrics shared by all workers (see ngx_voice_zone.h).
 * The counters are machine words updated with ngx_atomic_fetch_add, so
 * workers never wait on each other; a reader may see one update done
 * and the next one not yet, which is fine for monitoring.
 */


#include "ngx_voice_zone.h"
#include "ngx_voice_leg.h"


typedef struct {
    ngx_str_t                 name;
    ngx_uint_t                role;
} ngx_voice_zone_vendor_t;


static ngx_int_t ngx_voice_zone_init(ngx_shm_zone_t *shm_zone, void *data);
static ngx_voice_zone_sh_t *ngx_voice_zone_of(ngx_voice_call_t *call);
static ngx_uint_t ngx_voice_zone_reason(const char *reason);
static ngx_uint_t ngx_voice_zone_role(ngx_str_t *provider);
static ngx_uint_t ngx_voice_zone_kind(ngx_uint_t err, ngx_uint_t status);
static void ngx_voice_zone_observe(ngx_voice_zone_sh_t *sh,
    ngx_uint_t stage, ngx_msec_t from, ngx_msec_t to);


/* the agent's end reasons ($voice_end_reason), in ngx_voice_zone_end_e */
ngx_str_t  ngx_voice_zone_end_names[NGX_VOICE_END_N] = {
    ngx_string("caller hung up"),
    ngx_string("stream closed by Twilio"),
    ngx_string("connection lost"),
    ngx_string("nginx shutting down"),
    ngx_string("speech-to-text unavailable"),
    ngx_string("text-to-speech unavailable"),
    ngx_string("caller silent"),
    ngx_string("max duration"),
    ngx_string("agent ended the call"),
    ngx_string("transferred"),
    ngx_string("transfer failed"),
    ngx_string("internal error"),
    ngx_string("other")
};


ngx_str_t  ngx_voice_zone_provider_names[NGX_VOICE_PROV_N] = {
    ngx_string("stt"),
    ngx_string("llm"),
    ngx_string("tts"),
    ngx_string("tools"),
    ngx_string("persona"),
    ngx_string("events"),
    ngx_string("twilio"),
    ngx_string("other")
};


ngx_str_t  ngx_voice_zone_perr_names[NGX_VOICE_PERR_N] = {
    ngx_string("dns"),
    ngx_string("connect"),
    ngx_string("tls"),
    ngx_string("verify"),
    ngx_string("timeout"),
    ngx_string("closed"),
    ngx_string("io"),
    ngx_string("handshake"),
    ngx_string("protocol"),
    ngx_string("remote"),
    ngx_string("overflow"),
    ngx_string("http_429"),
    ngx_string("http_4xx"),
    ngx_string("http_5xx"),
    ngx_string("other")
};


/* the names the call record gives the same gaps (latency_ms) */
ngx_str_t  ngx_voice_zone_stage_names[NGX_VOICE_STAGE_N] = {
    ngx_string("endpointing"),
    ngx_string("llm_first_token"),
    ngx_string("tts_first_audio"),
    ngx_string("playout"),
    ngx_string("total")
};


static ngx_msec_t  ngx_voice_zone_bounds[NGX_VOICE_ZONE_BOUNDS] = {
    25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000
};

ngx_str_t  ngx_voice_zone_bound_names[NGX_VOICE_ZONE_BUCKETS] = {
    ngx_string("25"),
    ngx_string("50"),
    ngx_string("100"),
    ngx_string("200"),
    ngx_string("300"),
    ngx_string("500"),
    ngx_string("750"),
    ngx_string("1000"),
    ngx_string("1500"),
    ngx_string("2000"),
    ngx_string("3000"),
    ngx_string("5000"),
    ngx_string("+Inf")
};


/* the endpoints' provider names (ngx_voice_endpoint_t) by role */
static ngx_voice_zone_vendor_t  ngx_voice_zone_vendors[] = {
    { ngx_string("deepgram"), NGX_VOICE_PROV_STT },
    { ngx_string("llm"), NGX_VOICE_PROV_LLM },
    { ngx_string("elevenlabs"), NGX_VOICE_PROV_TTS },
    { ngx_string("aura"), NGX_VOICE_PROV_TTS },
    { ngx_string("tool"), NGX_VOICE_PROV_TOOLS },
    { ngx_string("persona"), NGX_VOICE_PROV_PERSONA },
    { ngx_string("events"), NGX_VOICE_PROV_EVENTS },
    { ngx_string("twilio"), NGX_VOICE_PROV_TWILIO },
    { ngx_null_string, NGX_VOICE_PROV_OTHER }
};


/* voice_zone name size | off */

char *
ngx_voice_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t *vlcf = conf;

    ssize_t     size;
    ngx_str_t  *value;

    if (vlcf->zone != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "off") == 0) {
            vlcf->zone = NULL;
            return NGX_CONF_OK;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" takes a zone name and a size, or \"off\"",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    /* the slab allocator's own minimum, as for nginx's other zones */
    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small: at least %uzk",
                           &value[1], 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    vlcf->zone = ngx_voice_zone_add(cf, &value[1], size);
    if (vlcf->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* declares (size) or refers to (0) a zone; several locations may share */

ngx_shm_zone_t *
ngx_voice_zone_add(ngx_conf_t *cf, ngx_str_t *name, size_t size)
{
    ngx_shm_zone_t        *zone;
    ngx_voice_zone_ctx_t  *ctx;

    if (name->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty zone name");
        return NULL;
    }

    zone = ngx_shared_memory_add(cf, name, size, &ngx_http_voice_module);
    if (zone == NULL) {
        return NULL;
    }

    if (zone->data == NULL) {
        ctx = ngx_pcalloc(cf->pool, sizeof(ngx_voice_zone_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        zone->init = ngx_voice_zone_init;
        zone->data = ctx;
    }

    return zone;
}


char *
ngx_voice_zone_merge(ngx_conf_t *cf, ngx_voice_loc_conf_t *prev,
    ngx_voice_loc_conf_t *conf)
{
    ngx_shm_zone_t            *zone;
    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_ptr_value(conf->zone, prev->zone, NULL);
    ngx_conf_merge_uint_value(conf->max_calls, prev->max_calls, 0);

    if (conf->mode == NULL && conf->status == NGX_VOICE_STATUS_OFF) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->mode && conf->status != NGX_VOICE_STATUS_OFF) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"voice_status\" and \"voice_pipeline\" cannot "
                      "share location \"%V\"", &clcf->name);
        return NGX_CONF_ERROR;
    }

    zone = conf->status_zone ? conf->status_zone : conf->zone;

    if (conf->status != NGX_VOICE_STATUS_OFF && zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"voice_status\" in location \"%V\" needs a zone: "
                      "name one, or set \"voice_zone\"", &clcf->name);
        return NGX_CONF_ERROR;
    }

    /* the limit is checked where calls come in (and health is told) */
    if (conf->max_calls && zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"voice_max_calls\" in location \"%V\" needs a "
                      "\"voice_zone\" to count the calls in", &clcf->name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A reload keeps a zone of the same name and size: the counters go on
 * from where they were, and the old workers still finishing their calls
 * update the very same memory, so "active" stays right.
 */

static ngx_int_t
ngx_voice_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_voice_zone_ctx_t  *octx = data;

    size_t                 len;
    ngx_slab_pool_t       *shpool;
    ngx_voice_zone_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;

        (void) ngx_atomic_fetch_add(&ctx->sh->generation, 1);

        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;
    ctx->shpool = shpool;

    if (shm_zone->shm.exists) {
        ctx->sh = shpool->data;
        return NGX_OK;
    }

    ctx->sh = ngx_slab_calloc(shpool, sizeof(ngx_voice_zone_sh_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = ctx->sh;

    ctx->sh->created = ngx_time();
    ctx->sh->generation = 1;

    len = sizeof(" in voice_zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in voice_zone \"%V\"%Z",
                &shm_zone->shm.name);

    return NGX_OK;
}


ngx_voice_zone_sh_t *
ngx_voice_zone_shared(ngx_shm_zone_t *zone)
{
    ngx_voice_zone_ctx_t  *ctx;

    ctx = zone->data;

    return ctx->sh;
}


static ngx_voice_zone_sh_t *
ngx_voice_zone_of(ngx_voice_call_t *call)
{
    if (call == NULL || call->conf->zone == NULL) {
        return NULL;
    }

    return ngx_voice_zone_shared(call->conf->zone);
}


/*
 * A new call takes a slot: NGX_DECLINED when voice_max_calls are
 * active.  The check and the increment are one compare-and-swap, so two
 * workers cannot both take the last slot.
 */

ngx_int_t
ngx_voice_zone_call_open(ngx_voice_call_t *call)
{
    ngx_uint_t            max;
    ngx_atomic_uint_t     n;
    ngx_voice_zone_sh_t  *sh;

    sh = ngx_voice_zone_of(call);

    if (sh == NULL) {
        return NGX_OK;
    }

    max = call->conf->max_calls;

    for ( ;; ) {
        n = sh->active;

        if (max && n >= max) {
            (void) ngx_atomic_fetch_add(&sh->refused, 1);

            ngx_log_error(NGX_LOG_WARN, call->connection->log, 0,
                          "voice %V: call refused with 503: %uA calls "
                          "active in voice_zone \"%V\", voice_max_calls %ui",
                          &call->id, n, &call->conf->zone->shm.name, max);

            return NGX_DECLINED;
        }

        if (ngx_atomic_cmp_set(&sh->active, n, n + 1)) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->total, 1);

    call->counted = 1;

    return NGX_OK;
}


/* the call is over: call->end_reason is final (the mode's cleanup ran) */

void
ngx_voice_zone_call_close(ngx_voice_call_t *call)
{
    ngx_uint_t            reason;
    ngx_voice_zone_sh_t  *sh;

    if (!call->counted) {
        return;
    }

    call->counted = 0;

    sh = ngx_voice_zone_of(call);
    reason = ngx_voice_zone_reason(call->end_reason);

    (void) ngx_atomic_fetch_add(&sh->ended[reason], 1);
    (void) ngx_atomic_fetch_add(&sh->active, (ngx_atomic_int_t) -1);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, call->connection->log, 0,
                   "voice %V: counted as ended, \"%V\"", &call->id,
                   &ngx_voice_zone_end_names[reason]);
}


void
ngx_voice_zone_turn(ngx_voice_call_t *call)
{
    ngx_voice_zone_sh_t  *sh;

    sh = ngx_voice_zone_of(call);

    if (sh) {
        (void) ngx_atomic_fetch_add(&sh->turns, 1);
    }
}


void
ngx_voice_zone_barge_in(ngx_voice_call_t *call)
{
    ngx_voice_zone_sh_t  *sh;

    sh = ngx_voice_zone_of(call);

    if (sh) {
        (void) ngx_atomic_fetch_add(&sh->barge_ins, 1);
    }
}


/*
 * A bot turn's stage timings, one sample per stage that happened.  Only
 * answers to the caller count (a greeting or a reprompt answers no
 * speech), so each histogram's count is at most the turns answered.
 */

void
ngx_voice_zone_timing(ngx_voice_call_t *call, ngx_voice_timing_t *t)
{
    ngx_msec_t            heard;
    ngx_voice_zone_sh_t  *sh;

    sh = ngx_voice_zone_of(call);

    if (sh == NULL || t->transcript == 0) {
        return;
    }

    /* as the call record's "total": without an echo, the first media */
    heard = t->first_heard ? t->first_heard : t->first_media;

    ngx_voice_zone_observe(sh, NGX_VOICE_STAGE_ENDPOINTING, t->speech_end,
                           t->transcript);
    ngx_voice_zone_observe(sh, NGX_VOICE_STAGE_LLM, t->llm_request,
                           t->first_token);
    ngx_voice_zone_observe(sh, NGX_VOICE_STAGE_TTS, t->first_text,
                           t->first_audio);
    ngx_voice_zone_observe(sh, NGX_VOICE_STAGE_PLAYOUT, t->first_media,
                           t->first_heard);
    ngx_voice_zone_observe(sh, NGX_VOICE_STAGE_TOTAL, t->speech_end, heard);
}


static void
ngx_voice_zone_observe(ngx_voice_zone_sh_t *sh, ngx_uint_t stage,
    ngx_msec_t from, ngx_msec_t to)
{
    ngx_uint_t              i;
    ngx_msec_int_t          ms;
    ngx_voice_zone_hist_t  *h;

    if (from == 0 || to == 0) {
        return;
    }

    /* a speech end estimated from audio may come out a little late */
    ms = (ngx_msec_int_t) (to - from);

    if (ms < 0) {
        ms = 0;
    }

    for (i = 0; i < NGX_VOICE_ZONE_BOUNDS; i++) {
        if ((ngx_msec_t) ms <= ngx_voice_zone_bounds[i]) {
            break;
        }
    }

    h = &sh->latency[stage];

    (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&h->sum, (ngx_atomic_int_t) ms);
}


/*
 * A provider leg failed (err: ngx_voice_leg_error_e), counted once at
 * the protocol layer that knows it is a failure: an EOF after our Close
 * or a stale pooled connection retried is none.
 */

void
ngx_voice_zone_provider_error(ngx_shm_zone_t *zone, ngx_str_t *provider,
    ngx_uint_t err, ngx_uint_t status)
{
    ngx_uint_t            kind, role;
    ngx_voice_zone_sh_t  *sh;

    /* the leg's zone: requests that outlive the call count too */
    if (zone == NULL) {
        return;
    }

    sh = ngx_voice_zone_shared(zone);

    kind = ngx_voice_zone_kind(err, status);

    if (kind == NGX_VOICE_PERR_N) {
        return;
    }

    role = ngx_voice_zone_role(provider);

    (void) ngx_atomic_fetch_add(&sh->errors[role][kind], 1);
}


/* the one place that maps end reason strings to the fixed table */

static ngx_uint_t
ngx_voice_zone_reason(const char *reason)
{
    size_t      len;
    ngx_uint_t  i;

    if (reason == NULL) {
        return NGX_VOICE_END_OTHER;
    }

    len = ngx_strlen(reason);

    for (i = 0; i < NGX_VOICE_END_OTHER; i++) {
        if (len == ngx_voice_zone_end_names[i].len
            && ngx_strncmp(reason, ngx_voice_zone_end_names[i].data, len)
               == 0)
        {
            return i;
        }
    }

    return NGX_VOICE_END_OTHER;
}


static ngx_uint_t
ngx_voice_zone_role(ngx_str_t *provider)
{
    ngx_voice_zone_vendor_t  *v;

    for (v = ngx_voice_zone_vendors; v->name.len; v++) {
        if (provider->len == v->name.len
            && ngx_strncmp(provider->data, v->name.data, v->name.len) == 0)
        {
            break;
        }
    }

    return v->role;
}


/* NGX_VOICE_PERR_N: not a provider's failure */

static ngx_uint_t
ngx_voice_zone_kind(ngx_uint_t err, ngx_uint_t status)
{
    /* an HTTP answer (or a refused upgrade) says more by its class */
    if (status == 429) {
        return NGX_VOICE_PERR_HTTP_429;
    }

    if (status >= 400 && status < 500) {
        return NGX_VOICE_PERR_HTTP_4XX;
    }

    if (status >= 500 && status < 600) {
        return NGX_VOICE_PERR_HTTP_5XX;
    }

    switch (err) {

    case NGX_VOICE_LEG_OK:
    case NGX_VOICE_LEG_ERR_SHUTDOWN:
        return NGX_VOICE_PERR_N;

    case NGX_VOICE_LEG_ERR_DNS:
        return NGX_VOICE_PERR_DNS;

    case NGX_VOICE_LEG_ERR_CONNECT:
        return NGX_VOICE_PERR_CONNECT;

    case NGX_VOICE_LEG_ERR_TLS:
        return NGX_VOICE_PERR_TLS;

    case NGX_VOICE_LEG_ERR_VERIFY:
        return NGX_VOICE_PERR_VERIFY;

    case NGX_VOICE_LEG_ERR_TIMEOUT:
        return NGX_VOICE_PERR_TIMEOUT;

    case NGX_VOICE_LEG_ERR_CLOSED:
        return NGX_VOICE_PERR_CLOSED;

    case NGX_VOICE_LEG_ERR_IO:
        return NGX_VOICE_PERR_IO;

    case NGX_VOICE_LEG_ERR_HANDSHAKE:
        return NGX_VOICE_PERR_HANDSHAKE;

    case NGX_VOICE_LEG_ERR_PROTOCOL:
        return NGX_VOICE_PERR_PROTOCOL;

    case NGX_VOICE_LEG_ERR_REMOTE:
        return NGX_VOICE_PERR_REMOTE;

    case NGX_VOICE_LEG_ERR_OVERFLOW:
        return NGX_VOICE_PERR_OVERFLOW;

    default:
        return NGX_VOICE_PERR_OTHER;
    }
}
