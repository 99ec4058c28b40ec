/*
 * Copyright (C) ngx_voice authors
 *
 * voice_status: a location that shows a voice_zone's metrics, as JSON
 * (the default) or in the Prometheus text format (?format=prometheus, or
 * an Accept header that prefers text/plain or OpenMetrics), or answers a
 * health check ("voice_status health": 200, or 503 at voice_max_calls).
 * The body is built in one buffer from the request pool, sized from the
 * zone's fixed tables before anything is printed.
 */


#include "ngx_voice_zone.h"


/* a printed series: its longest name and labels, and the value */
#define NGX_VOICE_STATUS_LINE  (160 + NGX_ATOMIC_T_LEN)


static ngx_int_t ngx_voice_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_voice_status_health(ngx_http_request_t *r,
    ngx_voice_loc_conf_t *vlcf, ngx_voice_zone_sh_t *sh);
static ngx_uint_t ngx_voice_status_wants_prometheus(ngx_http_request_t *r);
static ngx_uint_t ngx_voice_status_quality(u_char *p, u_char *end);
static size_t ngx_voice_status_size(ngx_str_t *zone);
static u_char *ngx_voice_status_json(u_char *p, u_char *last,
    ngx_voice_zone_sh_t *sh, ngx_str_t *zone);
static u_char *ngx_voice_status_prometheus(u_char *p, u_char *last,
    ngx_voice_zone_sh_t *sh, ngx_str_t *zone);
static ngx_atomic_uint_t ngx_voice_status_cumulative(
    ngx_voice_zone_hist_t *h, ngx_atomic_uint_t *cum);
static u_char *ngx_voice_status_label(u_char *p, u_char *last,
    ngx_str_t *value);
static ngx_int_t ngx_voice_status_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *type, ngx_buf_t *b);


static ngx_str_t  ngx_voice_status_json_type =
    ngx_string("application/json");

static ngx_str_t  ngx_voice_status_prometheus_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");


/* voice_status [health] [zone] */

char *
ngx_voice_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t *vlcf = conf;

    ngx_str_t                 *value;
    ngx_uint_t                 i;
    ngx_http_core_loc_conf_t  *clcf;

    if (vlcf->status != NGX_VOICE_STATUS_OFF) {
        return "is duplicate";
    }

    value = cf->args->elts;
    vlcf->status = NGX_VOICE_STATUS_FULL;
    i = 1;

    if (cf->args->nelts > 1 && ngx_strcmp(value[1].data, "health") == 0) {
        vlcf->status = NGX_VOICE_STATUS_HEALTH;
        i = 2;
    }

    if (cf->args->nelts > i + 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\": the syntax is "
                           "\"%V [health] [zone]\"", &value[i + 1],
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts > i) {
        /* the zone may be declared further on: its size is checked then */
        vlcf->status_zone = ngx_voice_zone_add(cf, &value[i], 0);
        if (vlcf->status_zone == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_voice_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_voice_status_handler(ngx_http_request_t *r)
{
    u_char                *last;
    size_t                 size;
    ngx_int_t              rc;
    ngx_buf_t             *b;
    ngx_str_t             *type;
    ngx_uint_t             prometheus;
    ngx_shm_zone_t        *zone;
    ngx_voice_zone_sh_t   *sh;
    ngx_voice_loc_conf_t  *vlcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_voice_header_out(r, "Allow", "GET, HEAD") == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    vlcf = ngx_http_get_module_loc_conf(r, ngx_http_voice_module);

    zone = vlcf->status_zone ? vlcf->status_zone : vlcf->zone;
    sh = ngx_voice_zone_shared(zone);

    /* counters change under us: a monitor must not see a cached copy */
    if (ngx_voice_header_out(r, "Cache-Control", "no-store") == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (vlcf->status == NGX_VOICE_STATUS_HEALTH) {
        return ngx_voice_status_health(r, vlcf, sh);
    }

    prometheus = ngx_voice_status_wants_prometheus(r);

    size = ngx_voice_status_size(&zone->shm.name);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    last = b->start + size;

    if (prometheus) {
        b->last = ngx_voice_status_prometheus(b->last, last, sh,
                                              &zone->shm.name);
        type = &ngx_voice_status_prometheus_type;

    } else {
        b->last = ngx_voice_status_json(b->last, last, sh, &zone->shm.name);
        type = &ngx_voice_status_json_type;
    }

    if (b->last == last) {
        /* the size is computed from the same tables: never expected */
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "voice: voice_status output of \"%V\" truncated",
                      &zone->shm.name);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_voice_status_send(r, NGX_HTTP_OK, type, b);
}


/* for load balancers: can this nginx take one more call */

static ngx_int_t
ngx_voice_status_health(ngx_http_request_t *r, ngx_voice_loc_conf_t *vlcf,
    ngx_voice_zone_sh_t *sh)
{
    size_t              size;
    ngx_buf_t          *b;
    ngx_uint_t          full;
    ngx_atomic_uint_t   active;

    active = sh->active;
    full = (vlcf->max_calls && active >= vlcf->max_calls);

    size = sizeof("{\"status\":\"full\",\"calls_active\":,\"max_calls\":}\n")
           + 2 * NGX_ATOMIC_T_LEN;

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_sprintf(b->last, "{\"status\":\"%s\",\"calls_active\":%uA",
                          full ? "full" : "ok", active);

    if (vlcf->max_calls) {
        b->last = ngx_sprintf(b->last, ",\"max_calls\":%ui", vlcf->max_calls);
    }

    *b->last++ = '}';
    *b->last++ = '\n';

    return ngx_voice_status_send(r, full ? NGX_HTTP_SERVICE_UNAVAILABLE
                                         : NGX_HTTP_OK,
                                 &ngx_voice_status_json_type, b);
}


/*
 * ?format=prometheus or ?format=json decide; otherwise the Accept header:
 * Prometheus when text/plain or application/openmetrics-text is liked
 * more than application/json.  Wildcards prefer nothing: JSON.
 */

static ngx_uint_t
ngx_voice_status_wants_prometheus(ngx_http_request_t *r)
{
    u_char           *p, *end, *s, *e;
    ngx_str_t         format;
    ngx_uint_t        i, q, json, prom;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK) {
        return (format.len == 10
                && ngx_strncasecmp(format.data, (u_char *) "prometheus", 10)
                   == 0);
    }

    json = 0;
    prom = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != sizeof("accept") - 1
            || ngx_strncmp(h[i].lowcase_key, "accept", h[i].key.len) != 0)
        {
            continue;
        }

        p = h[i].value.data;
        end = p + h[i].value.len;

        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
                p++;
            }

            s = p;

            while (p < end && *p != ',' && *p != ';' && *p != ' ') {
                p++;
            }

            e = p;

            while (p < end && *p != ',') {
                p++;
            }

            q = ngx_voice_status_quality(e, p);

            if ((size_t) (e - s) == sizeof("application/json") - 1
                && ngx_strncasecmp(s, (u_char *) "application/json", e - s)
                   == 0)
            {
                json = ngx_max(json, q);

            } else if (((size_t) (e - s) == sizeof("text/plain") - 1
                        && ngx_strncasecmp(s, (u_char *) "text/plain", e - s)
                           == 0)
                       || ((size_t) (e - s)
                           == sizeof("application/openmetrics-text") - 1
                           && ngx_strncasecmp(s, (u_char *)
                                              "application/openmetrics-text",
                                              e - s)
                              == 0))
            {
                prom = ngx_max(prom, q);
            }
        }
    }

    return prom > json;
}


/* the "q" parameter in thousandths (RFC 9110 12.4.2); 1000 without one */

static ngx_uint_t
ngx_voice_status_quality(u_char *p, u_char *end)
{
    ngx_uint_t  q, scale;

    for ( ;; ) {
        while (p < end && *p != ';') {
            p++;
        }

        if (p == end) {
            return 1000;
        }

        p++;

        while (p < end && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
            break;
        }
    }

    p += 2;

    if (p == end || (*p != '0' && *p != '1')) {
        return 0;
    }

    q = (*p++ - '0') * 1000;

    if (p < end && *p == '.') {
        p++;

        for (scale = 100; scale && p < end && *p >= '0' && *p <= '9';
             scale /= 10)
        {
            q += (*p++ - '0') * scale;
        }
    }

    return ngx_min(q, 1000);
}


/* an upper bound of either format's length: every series, each in full */

static size_t
ngx_voice_status_size(ngx_str_t *zone)
{
    size_t  n;

    n = 8                                        /* calls, turns, info */
        + NGX_VOICE_END_N
        + NGX_VOICE_PROV_N * (NGX_VOICE_PERR_N + 1)
        + NGX_VOICE_STAGE_N * (NGX_VOICE_ZONE_BUCKETS + 3);

    /* HELP and TYPE lines; a zone name escaped for JSON or a label */
    return n * NGX_VOICE_STATUS_LINE + 4096 + 6 * zone->len;
}


static u_char *
ngx_voice_status_json(u_char *p, u_char *last, ngx_voice_zone_sh_t *sh,
    ngx_str_t *zone)
{
    ngx_uint_t              i, j, opened, any;
    ngx_atomic_uint_t       v, count, cum[NGX_VOICE_ZONE_BUCKETS];
    ngx_voice_zone_hist_t  *h;

    p = ngx_slprintf(p, last, "{\"version\":\"" NGX_VOICE_VERSION "\","
                     "\"nginx_version\":\"" NGINX_VERSION "\",\"zone\":\"");

    if ((size_t) (last - p) > zone->len * 6) {
        p = (u_char *) ngx_escape_json(p, zone->data, zone->len);
    }

    p = ngx_slprintf(p, last, "\",\"generation\":%uA,\"uptime\":%T,"
                     "\"calls\":{\"active\":%uA,\"total\":%uA,"
                     "\"refused\":%uA,\"ended\":{",
                     sh->generation, ngx_time() - (time_t) sh->created,
                     sh->active, sh->total, sh->refused);

    for (i = 0; i < NGX_VOICE_END_N; i++) {
        p = ngx_slprintf(p, last, "%s\"%V\":%uA", i ? "," : "",
                         &ngx_voice_zone_end_names[i], sh->ended[i]);
    }

    p = ngx_slprintf(p, last, "}},\"turns\":%uA,\"barge_ins\":%uA,"
                     "\"provider_errors\":{", sh->turns, sh->barge_ins);

    /* only what happened: most of the matrix stays zero */
    any = 0;

    for (i = 0; i < NGX_VOICE_PROV_N; i++) {
        opened = 0;

        for (j = 0; j < NGX_VOICE_PERR_N; j++) {
            v = sh->errors[i][j];

            if (v == 0) {
                continue;
            }

            if (!opened) {
                p = ngx_slprintf(p, last, "%s\"%V\":{", any ? "," : "",
                                 &ngx_voice_zone_provider_names[i]);
                opened = 1;
                any = 1;

            } else {
                p = ngx_slprintf(p, last, ",");
            }

            p = ngx_slprintf(p, last, "\"%V\":%uA",
                             &ngx_voice_zone_perr_names[j], v);
        }

        if (opened) {
            p = ngx_slprintf(p, last, "}");
        }
    }

    p = ngx_slprintf(p, last, "},\"latency_ms\":{");

    for (i = 0; i < NGX_VOICE_STAGE_N; i++) {
        h = &sh->latency[i];
        count = ngx_voice_status_cumulative(h, cum);

        p = ngx_slprintf(p, last, "%s\"%V\":{\"count\":%uA,\"sum\":%uA,"
                         "\"buckets\":{", i ? "," : "",
                         &ngx_voice_zone_stage_names[i], count, h->sum);

        for (j = 0; j < NGX_VOICE_ZONE_BUCKETS; j++) {
            p = ngx_slprintf(p, last, "%s\"%V\":%uA", j ? "," : "",
                             &ngx_voice_zone_bound_names[j], cum[j]);
        }

        p = ngx_slprintf(p, last, "}}");
    }

    return ngx_slprintf(p, last, "}}\n");
}


static u_char *
ngx_voice_status_prometheus(u_char *p, u_char *last, ngx_voice_zone_sh_t *sh,
    ngx_str_t *zone)
{
    ngx_uint_t              i, j;
    ngx_atomic_uint_t       count, cum[NGX_VOICE_ZONE_BUCKETS];
    ngx_voice_zone_hist_t  *h;

    p = ngx_slprintf(p, last,
            "# HELP ngx_voice_info The module and the voice_zone shown.\n"
            "# TYPE ngx_voice_info gauge\n"
            "ngx_voice_info{version=\"" NGX_VOICE_VERSION "\","
            "nginx_version=\"" NGINX_VERSION "\",zone=\"");

    p = ngx_voice_status_label(p, last, zone);

    p = ngx_slprintf(p, last, "\"} 1\n"
            "# HELP ngx_voice_zone_start_time_seconds When the zone was "
            "created (kept across reloads).\n"
            "# TYPE ngx_voice_zone_start_time_seconds gauge\n"
            "ngx_voice_zone_start_time_seconds %uA\n"
            "# HELP ngx_voice_zone_generation Configuration loads the zone "
            "has lived through.\n"
            "# TYPE ngx_voice_zone_generation gauge\n"
            "ngx_voice_zone_generation %uA\n"
            "# HELP ngx_voice_calls_active Calls in progress.\n"
            "# TYPE ngx_voice_calls_active gauge\n"
            "ngx_voice_calls_active %uA\n"
            "# HELP ngx_voice_calls_total Calls accepted (WebSocket "
            "upgraded).\n"
            "# TYPE ngx_voice_calls_total counter\n"
            "ngx_voice_calls_total %uA\n"
            "# HELP ngx_voice_upgrades_refused_total Calls refused with 503 "
            "at voice_max_calls.\n"
            "# TYPE ngx_voice_upgrades_refused_total counter\n"
            "ngx_voice_upgrades_refused_total %uA\n"
            "# HELP ngx_voice_calls_ended_total Calls ended, by reason.\n"
            "# TYPE ngx_voice_calls_ended_total counter\n",
            sh->created, sh->generation, sh->active, sh->total,
            sh->refused);

    for (i = 0; i < NGX_VOICE_END_N; i++) {
        p = ngx_slprintf(p, last,
                         "ngx_voice_calls_ended_total{reason=\"%V\"} %uA\n",
                         &ngx_voice_zone_end_names[i], sh->ended[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP ngx_voice_turns_total Caller turns.\n"
            "# TYPE ngx_voice_turns_total counter\n"
            "ngx_voice_turns_total %uA\n"
            "# HELP ngx_voice_barge_ins_total Agent turns interrupted by "
            "the caller.\n"
            "# TYPE ngx_voice_barge_ins_total counter\n"
            "ngx_voice_barge_ins_total %uA\n"
            "# HELP ngx_voice_provider_errors_total Provider leg failures, "
            "by provider and type.\n"
            "# TYPE ngx_voice_provider_errors_total counter\n",
            sh->turns, sh->barge_ins);

    for (i = 0; i < NGX_VOICE_PROV_N; i++) {
        for (j = 0; j < NGX_VOICE_PERR_N; j++) {
            if (sh->errors[i][j] == 0) {
                continue;
            }

            p = ngx_slprintf(p, last, "ngx_voice_provider_errors_total"
                             "{provider=\"%V\",type=\"%V\"} %uA\n",
                             &ngx_voice_zone_provider_names[i],
                             &ngx_voice_zone_perr_names[j], sh->errors[i][j]);
        }
    }

    p = ngx_slprintf(p, last,
            "# HELP ngx_voice_latency_ms Turn latency by stage, in "
            "milliseconds.\n"
            "# TYPE ngx_voice_latency_ms histogram\n");

    for (i = 0; i < NGX_VOICE_STAGE_N; i++) {
        h = &sh->latency[i];
        count = ngx_voice_status_cumulative(h, cum);

        for (j = 0; j < NGX_VOICE_ZONE_BUCKETS; j++) {
            p = ngx_slprintf(p, last, "ngx_voice_latency_ms_bucket"
                             "{stage=\"%V\",le=\"%V\"} %uA\n",
                             &ngx_voice_zone_stage_names[i],
                             &ngx_voice_zone_bound_names[j], cum[j]);
        }

        p = ngx_slprintf(p, last,
                         "ngx_voice_latency_ms_sum{stage=\"%V\"} %uA\n"
                         "ngx_voice_latency_ms_count{stage=\"%V\"} %uA\n",
                         &ngx_voice_zone_stage_names[i], h->sum,
                         &ngx_voice_zone_stage_names[i], count);
    }

    return p;
}


/*
 * A histogram's buckets, cumulative as Prometheus' "le": each bucket is
 * read once, so that the last one ("+Inf") and the count agree while
 * other workers add to them.  Returns the count.
 */

static ngx_atomic_uint_t
ngx_voice_status_cumulative(ngx_voice_zone_hist_t *h, ngx_atomic_uint_t *cum)
{
    ngx_uint_t         j;
    ngx_atomic_uint_t  n;

    n = 0;

    for (j = 0; j < NGX_VOICE_ZONE_BUCKETS; j++) {
        n += h->bucket[j];
        cum[j] = n;
    }

    return n;
}


/* a label value: backslash, double quote and newline escaped */

static u_char *
ngx_voice_status_label(u_char *p, u_char *last, ngx_str_t *value)
{
    u_char  *s, *end;

    end = value->data + value->len;

    for (s = value->data; s < end && last - p >= 2; s++) {
        switch (*s) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = *s;
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = *s;
        }
    }

    return p;
}


static ngx_int_t
ngx_voice_status_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_buf_t *b)
{
    r->headers_out.status = status;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    b->last_buf = (r == r->main);
    b->last_in_chain = 1;

    return ngx_voice_send_buf(r, b);
}
