/*
 * Copyright (C) ngx_voice authors
 *
 * Cross-worker call metrics in a shared memory zone (voice_zone): calls
 * active, started, ended by reason and refused (voice_max_calls), turns,
 * barge-ins, provider errors by provider and kind, and per-stage turn
 * latency histograms.  Every update is one or two atomic additions: no
 * lock, no allocation.  The zone is kept across reloads, so old workers
 * finishing their calls update the same counters as the new ones.
 * voice_status (ngx_voice_status.c) reads it.
 */


#ifndef _NGX_VOICE_ZONE_H_INCLUDED_
#define _NGX_VOICE_ZONE_H_INCLUDED_


#include "ngx_voice.h"
#include "ngx_voice_record.h"


/* why calls ended: the agent's end reasons, then a bucket for the rest */
typedef enum {
    NGX_VOICE_END_HUNG_UP = 0,
    NGX_VOICE_END_STREAM_CLOSED,
    NGX_VOICE_END_CONNECTION_LOST,
    NGX_VOICE_END_SHUTDOWN,
    NGX_VOICE_END_STT,
    NGX_VOICE_END_TTS,
    NGX_VOICE_END_SILENT,
    NGX_VOICE_END_MAX_DURATION,
    NGX_VOICE_END_AGENT,
    NGX_VOICE_END_TRANSFERRED,
    NGX_VOICE_END_TRANSFER_FAILED,
    NGX_VOICE_END_INTERNAL,
    NGX_VOICE_END_OTHER,
    NGX_VOICE_END_N
} ngx_voice_zone_end_e;


/* provider legs by role (not vendor) */
typedef enum {
    NGX_VOICE_PROV_STT = 0,
    NGX_VOICE_PROV_LLM,
    NGX_VOICE_PROV_TTS,
    NGX_VOICE_PROV_TOOLS,
    NGX_VOICE_PROV_PERSONA,
    NGX_VOICE_PROV_EVENTS,
    NGX_VOICE_PROV_TWILIO,                 /* Twilio's REST API */
    NGX_VOICE_PROV_OTHER,
    NGX_VOICE_PROV_N
} ngx_voice_zone_provider_e;


/* what went wrong: the leg's kinds, HTTP answers by class */
typedef enum {
    NGX_VOICE_PERR_DNS = 0,
    NGX_VOICE_PERR_CONNECT,
    NGX_VOICE_PERR_TLS,
    NGX_VOICE_PERR_VERIFY,
    NGX_VOICE_PERR_TIMEOUT,
    NGX_VOICE_PERR_CLOSED,
    NGX_VOICE_PERR_IO,
    NGX_VOICE_PERR_HANDSHAKE,
    NGX_VOICE_PERR_PROTOCOL,
    NGX_VOICE_PERR_REMOTE,
    NGX_VOICE_PERR_OVERFLOW,
    NGX_VOICE_PERR_HTTP_429,
    NGX_VOICE_PERR_HTTP_4XX,
    NGX_VOICE_PERR_HTTP_5XX,
    NGX_VOICE_PERR_OTHER,
    NGX_VOICE_PERR_N
} ngx_voice_zone_perr_e;


/* the stages of a turn's latency, as in the call record's latency_ms */
typedef enum {
    NGX_VOICE_STAGE_ENDPOINTING = 0,  /* speech end -> final transcript */
    NGX_VOICE_STAGE_LLM,              /* LLM request -> first token */
    NGX_VOICE_STAGE_TTS,              /* first text -> first audio */
    NGX_VOICE_STAGE_PLAYOUT,          /* first media -> first mark echo */
    NGX_VOICE_STAGE_TOTAL,            /* speech end -> heard */
    NGX_VOICE_STAGE_N
} ngx_voice_zone_stage_e;


/* upper bounds in ms; the last bucket is +Inf */
#define NGX_VOICE_ZONE_BOUNDS    12
#define NGX_VOICE_ZONE_BUCKETS   (NGX_VOICE_ZONE_BOUNDS + 1)


/* a bucket counts its own range only: made cumulative when printed */
typedef struct {
    ngx_atomic_t              sum;            /* ms */
    ngx_atomic_t              bucket[NGX_VOICE_ZONE_BUCKETS];
} ngx_voice_zone_hist_t;


/* in shared memory */
typedef struct {
    ngx_atomic_t              created;        /* time_t */
    ngx_atomic_t              generation;     /* configuration loads */
    ngx_atomic_t              active;
    ngx_atomic_t              total;
    ngx_atomic_t              refused;
    ngx_atomic_t              turns;
    ngx_atomic_t              barge_ins;
    ngx_atomic_t              ended[NGX_VOICE_END_N];
    ngx_atomic_t              errors[NGX_VOICE_PROV_N][NGX_VOICE_PERR_N];
    ngx_voice_zone_hist_t     latency[NGX_VOICE_STAGE_N];
} ngx_voice_zone_sh_t;


/* shm_zone->data: per configuration */
typedef struct {
    ngx_voice_zone_sh_t      *sh;
    ngx_slab_pool_t          *shpool;
} ngx_voice_zone_ctx_t;


extern ngx_str_t   ngx_voice_zone_end_names[NGX_VOICE_END_N];
extern ngx_str_t   ngx_voice_zone_provider_names[NGX_VOICE_PROV_N];
extern ngx_str_t   ngx_voice_zone_perr_names[NGX_VOICE_PERR_N];
extern ngx_str_t   ngx_voice_zone_stage_names[NGX_VOICE_STAGE_N];
extern ngx_str_t   ngx_voice_zone_bound_names[NGX_VOICE_ZONE_BUCKETS];


/* configuration */
char *ngx_voice_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_shm_zone_t *ngx_voice_zone_add(ngx_conf_t *cf, ngx_str_t *name,
    size_t size);
char *ngx_voice_zone_merge(ngx_conf_t *cf, ngx_voice_loc_conf_t *prev,
    ngx_voice_loc_conf_t *conf);
ngx_voice_zone_sh_t *ngx_voice_zone_shared(ngx_shm_zone_t *zone);

/* hooks: each does nothing for a location without voice_zone */
ngx_int_t ngx_voice_zone_call_open(ngx_voice_call_t *call);
void ngx_voice_zone_call_close(ngx_voice_call_t *call);
void ngx_voice_zone_turn(ngx_voice_call_t *call);
void ngx_voice_zone_barge_in(ngx_voice_call_t *call);
void ngx_voice_zone_timing(ngx_voice_call_t *call, ngx_voice_timing_t *t);
void ngx_voice_zone_provider_error(ngx_shm_zone_t *zone,
    ngx_str_t *provider, ngx_uint_t err, ngx_uint_t status);

/* ngx_voice_status.c */
char *ngx_voice_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* _NGX_VOICE_ZONE_H_INCLUDED_ */
