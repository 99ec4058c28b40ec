/*
 * Copyright (C) ngx_voice authors
 *
 * Tools the LLM may call.  Configuration: voice_tool declarations and
 * the built-ins become the "tools" array of every LLM request.  Runs: a
 * tool call's arguments are POSTed as JSON to the tool's URL, with the
 * call and the tool call ids as headers (the application may use the
 * latter to recognise a call it has seen); the answer (or an error the
 * LLM can talk about) is kept for the next request.
 */


#include "ngx_voice_tools.h"

#include <cjson/cJSON.h>


static void ngx_voice_tool_header(ngx_voice_hc_t *hc);
static void ngx_voice_tool_body(ngx_voice_hc_t *hc, u_char *p, size_t n);
static void ngx_voice_tool_done(ngx_voice_hc_t *hc);
static void ngx_voice_tool_failed(ngx_voice_hc_t *hc,
    ngx_voice_leg_error_e err);
static void ngx_voice_tool_over(ngx_voice_tool_run_t *run);
static cJSON *ngx_voice_tools_function(const char *name,
    const char *description, cJSON *parameters);


static ngx_voice_hc_handler_t  ngx_voice_tool_hc_handler = {
    ngx_voice_tool_header,
    ngx_voice_tool_body,
    ngx_voice_tool_done,
    ngx_voice_tool_failed
};


/* ---- configuration ---------------------------------------------------- */


/*
 * voice_tool NAME URL [description=TEXT] [parameters=FILE]
 *            [timeout=TIME] [filler=TEXT];
 */

char *
ngx_voice_tool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t  *vlcf = conf;

    u_char                *p;
    cJSON                 *schema;
    ngx_str_t             *value, path, v;
    ngx_uint_t             i;
    ngx_voice_tool_t      *tool, *t;
    ngx_voice_endpoint_t   ep;

    value = cf->args->elts;

    if (vlcf->tools == NGX_CONF_UNSET_PTR) {
        vlcf->tools = ngx_array_create(cf->pool, 4,
                                       sizeof(ngx_voice_tool_t));
        if (vlcf->tools == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    /* what OpenAI-compatible APIs accept as a function name */
    if (value[1].len == 0 || value[1].len > 64) {
        goto bad_name;
    }

    for (p = value[1].data; p < value[1].data + value[1].len; p++) {
        if (!(*p == '_' || *p == '-' || (*p >= '0' && *p <= '9')
              || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')))
        {
            goto bad_name;
        }
    }

    if ((value[1].len == 8
         && ngx_strncmp(value[1].data, "end_call", 8) == 0)
        || (value[1].len == 13
            && ngx_strncmp(value[1].data, "transfer_call", 13) == 0))
    {
        return "names a built-in tool";
    }

    t = vlcf->tools->elts;

    for (i = 0; i < vlcf->tools->nelts; i++) {
        if (t[i].name.len == value[1].len
            && ngx_strncmp(t[i].name.data, value[1].data, value[1].len)
               == 0)
        {
            return "declares a tool twice";
        }
    }

    ngx_memzero(&ep, sizeof(ngx_voice_endpoint_t));

    if (ngx_voice_endpoint_parse(cf, &ep, &value[2], "tool")
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    tool = ngx_array_push(vlcf->tools);
    if (tool == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(tool, sizeof(ngx_voice_tool_t));

    tool->name = value[1];
    tool->url = value[2];
    tool->timeout = 5000;
    ngx_str_set(&tool->parameters, "{\"type\":\"object\",\"properties\":{}}");

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "description=", 12) == 0) {
            tool->description.data = value[i].data + 12;
            tool->description.len = value[i].len - 12;
            continue;
        }

        if (ngx_strncmp(value[i].data, "filler=", 7) == 0) {
            tool->filler.data = value[i].data + 7;
            tool->filler.len = value[i].len - 7;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            v.data = value[i].data + 8;
            v.len = value[i].len - 8;

            tool->timeout = ngx_parse_time(&v, 0);

            if (tool->timeout == (ngx_msec_t) NGX_ERROR
                || tool->timeout == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid tool timeout \"%V\"", &v);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "parameters=", 11) == 0) {
            path.data = value[i].data + 11;
            path.len = value[i].len - 11;

            if (ngx_voice_conf_read(cf, &cmd->name, &path,
                                    &tool->parameters)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            schema = cJSON_ParseWithLength((char *) tool->parameters.data,
                                           tool->parameters.len);

            if (!cJSON_IsObject(schema)) {
                cJSON_Delete(schema);
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"%V\": \"%V\" must hold a JSON "
                                   "schema object", &cmd->name, &path);
                return NGX_CONF_ERROR;
            }

            cJSON_Delete(schema);
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

bad_name:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid tool name \"%V\": 1 to 64 of a-z, A-Z, "
                       "0-9, _ and -", &value[1]);
    return NGX_CONF_ERROR;
}


/* voice_transfer_numbers +E164 ...: where transfer_call may dial */

char *
ngx_voice_transfer_numbers(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_voice_loc_conf_t  *vlcf = conf;

    u_char      *p;
    ngx_str_t   *value, *n;
    ngx_uint_t   i;

    if (vlcf->transfer_numbers != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    vlcf->transfer_numbers = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                              sizeof(ngx_str_t));
    if (vlcf->transfer_numbers == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {

        /* E.164: "+", then up to 15 digits; they go into TwiML as is */
        if (value[i].len < 3 || value[i].len > 16 || value[i].data[0] != '+')
        {
            goto invalid;
        }

        for (p = value[i].data + 1; p < value[i].data + value[i].len; p++) {
            if (*p < '0' || *p > '9') {
                goto invalid;
            }
        }

        n = ngx_array_push(vlcf->transfer_numbers);
        if (n == NULL) {
            return NGX_CONF_ERROR;
        }

        *n = value[i];
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid number \"%V\": an E.164 number such as "
                       "+14155550100 is expected", &value[i]);
    return NGX_CONF_ERROR;
}


/*
 * Inherits the tools; where the agent runs, builds the JSON the LLM is
 * given: the tools file, then the declared tools, then the built-ins.
 */

ngx_int_t
ngx_voice_tools_merge(ngx_conf_t *cf, ngx_voice_loc_conf_t *prev,
    ngx_voice_loc_conf_t *conf)
{
    char              *json;
    cJSON             *tools, *fn, *params, *number, *list;
    size_t             len;
    ngx_str_t         *nums;
    ngx_uint_t         i;
    ngx_voice_tool_t  *tool;

    ngx_conf_merge_ptr_value(conf->tools, prev->tools, NULL);
    ngx_conf_merge_ptr_value(conf->transfer_numbers, prev->transfer_numbers,
                             NULL);
    ngx_conf_merge_str_value(conf->transfer_announcement,
                             prev->transfer_announcement,
                             "Please hold while I transfer your call.");

    if (conf->mode != &ngx_voice_agent_mode
        || (conf->tools == NULL && conf->transfer_numbers == NULL
            && conf->end_call != 1))
    {
        return NGX_OK;
    }

    /* a transfer is an update of the live call through the REST API */
    if (conf->transfer_numbers && conf->auth_token.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"voice_transfer_numbers\" needs "
                           "\"voice_twilio_auth_token\" (Twilio's REST API "
                           "credentials)");
        return NGX_ERROR;
    }

    if (conf->llm_tools.len) {
        tools = cJSON_ParseWithLength((char *) conf->llm_tools.data,
                                      conf->llm_tools.len);
    } else {
        tools = cJSON_CreateArray();
    }

    if (tools == NULL) {
        return NGX_ERROR;
    }

    tool = conf->tools ? conf->tools->elts : NULL;

    for (i = 0; conf->tools && i < conf->tools->nelts; i++) {
        params = cJSON_ParseWithLength((char *) tool[i].parameters.data,
                                       tool[i].parameters.len);

        fn = ngx_voice_tools_function((char *) tool[i].name.data,
                                      tool[i].description.len
                                      ? (char *) tool[i].description.data
                                      : "", params);

        if (fn == NULL || !cJSON_AddItemToArray(tools, fn)) {
            cJSON_Delete(fn);
            goto failed;
        }
    }

    if (conf->end_call == 1) {
        fn = ngx_voice_tools_function("end_call",
                                      "Ends the phone call. Say goodbye in "
                                      "the same reply, before calling it.",
                                      cJSON_CreateObject());

        if (fn == NULL || !cJSON_AddItemToArray(tools, fn)) {
            cJSON_Delete(fn);
            goto failed;
        }
    }

    if (conf->transfer_numbers) {
        params = cJSON_CreateObject();
        number = cJSON_AddObjectToObject(cJSON_AddObjectToObject(params,
                                                              "properties"),
                                         "number");
        list = cJSON_AddArrayToObject(number, "enum");

        if (list == NULL
            || cJSON_AddStringToObject(number, "type", "string") == NULL
            || cJSON_AddStringToObject(number, "description",
                                       "E.164 number to dial") == NULL)
        {
            cJSON_Delete(params);
            goto failed;
        }

        nums = conf->transfer_numbers->elts;

        for (i = 0; i < conf->transfer_numbers->nelts; i++) {
            if (!cJSON_AddItemToArray(list,
                                      cJSON_CreateString((char *)
                                                         nums[i].data)))
            {
                cJSON_Delete(params);
                goto failed;
            }
        }

        list = cJSON_AddArrayToObject(params, "required");

        if (list == NULL
            || !cJSON_AddItemToArray(list, cJSON_CreateString("number")))
        {
            cJSON_Delete(params);
            goto failed;
        }

        fn = ngx_voice_tools_function("transfer_call",
                                      "Transfers the caller to a person at "
                                      "one of the allowed numbers. Tell the "
                                      "caller in the same reply, before "
                                      "calling it.", params);

        if (fn == NULL || !cJSON_AddItemToArray(tools, fn)) {
            cJSON_Delete(fn);
            goto failed;
        }
    }

    json = cJSON_PrintUnformatted(tools);
    cJSON_Delete(tools);

    if (json == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(json);

    conf->llm_tools_all.data = ngx_pnalloc(cf->pool, len);
    if (conf->llm_tools_all.data == NULL) {
        cJSON_free(json);
        return NGX_ERROR;
    }

    ngx_memcpy(conf->llm_tools_all.data, json, len);
    conf->llm_tools_all.len = len;

    cJSON_free(json);

    return NGX_OK;

failed:

    cJSON_Delete(tools);
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "cannot build the LLM's tools");

    return NGX_ERROR;
}


/*
 * {"type":"function","function":{name, description, parameters}}: the
 * texts are NUL-terminated (configuration tokens are); parameters is
 * taken over, also on failure.
 */

static cJSON *
ngx_voice_tools_function(const char *name, const char *description,
    cJSON *parameters)
{
    cJSON  *item, *fn;

    item = cJSON_CreateObject();
    fn = cJSON_AddObjectToObject(item, "function");

    if (fn == NULL || !cJSON_IsObject(parameters)
        || cJSON_AddStringToObject(item, "type", "function") == NULL
        || cJSON_AddStringToObject(fn, "name", name) == NULL
        || (description[0]
            && cJSON_AddStringToObject(fn, "description", description)
               == NULL))
    {
        cJSON_Delete(item);
        cJSON_Delete(parameters);
        return NULL;
    }

    cJSON_AddItemToObject(fn, "parameters", parameters);

    return item;
}


/* the tools' endpoints and keep-alive pools, once TLS is configured */

ngx_int_t
ngx_voice_tools_connect(ngx_conf_t *cf, ngx_voice_loc_conf_t *conf)
{
    ngx_str_t              none;
    ngx_uint_t             i;
    ngx_voice_tool_t      *tool, *copy;
    ngx_array_t           *tools;
    ngx_voice_endpoint_t  *ep;

    if (conf->tools == NULL) {
        return NGX_OK;
    }

    /* the array may be inherited by other agent locations: our own */
    tools = ngx_array_create(cf->pool, conf->tools->nelts,
                             sizeof(ngx_voice_tool_t));
    if (tools == NULL) {
        return NGX_ERROR;
    }

    tool = conf->tools->elts;
    ngx_str_null(&none);

    for (i = 0; i < conf->tools->nelts; i++) {
        copy = ngx_array_push(tools);
        if (copy == NULL) {
            return NGX_ERROR;
        }

        *copy = tool[i];

        ep = ngx_voice_conf_endpoints(cf, conf, &copy->url, NULL, "tool",
                                      &none);
        if (ep == NULL) {
            return NGX_ERROR;
        }

        /* a tool call must not wait for TCP and TLS when it can reuse */
        copy->pool = ngx_voice_hc_pool_create(cf, ep, 2,
                                              conf->llm_keepalive_timeout);
        if (copy->pool == NULL) {
            return NGX_ERROR;
        }
    }

    conf->tools = tools;

    return NGX_OK;
}


ngx_voice_tool_t *
ngx_voice_tool_find(ngx_voice_loc_conf_t *conf, u_char *name, size_t len)
{
    ngx_uint_t         i;
    ngx_voice_tool_t  *tool;

    if (conf->tools == NULL) {
        return NULL;
    }

    tool = conf->tools->elts;

    for (i = 0; i < conf->tools->nelts; i++) {
        if (tool[i].name.len == len
            && ngx_strncmp(tool[i].name.data, name, len) == 0)
        {
            return &tool[i];
        }
    }

    return NULL;
}


ngx_uint_t
ngx_voice_transfer_allowed(ngx_voice_loc_conf_t *conf, u_char *number,
    size_t len)
{
    ngx_str_t   *n;
    ngx_uint_t   i;

    if (conf->transfer_numbers == NULL) {
        return 0;
    }

    n = conf->transfer_numbers->elts;

    for (i = 0; i < conf->transfer_numbers->nelts; i++) {
        if (n[i].len == len && ngx_strncmp(n[i].data, number, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* ---- runs --------------------------------------------------------------- */


/*
 * Starts a tool call: tool NULL is a built-in, answered by the caller
 * with ngx_voice_tool_answer().  The arguments are copied (the LLM's
 * stream is reused by the next request).
 */

ngx_int_t
ngx_voice_tool_start(ngx_voice_tool_run_t *run, ngx_voice_call_t *call,
    ngx_voice_tool_t *tool, ngx_voice_oa_acc_call_t *oc,
    ngx_voice_tool_done_pt done, void *data)
{
    cJSON                   *args;
    ngx_int_t                rc;
    ngx_voice_hc_request_t   rq;

    ngx_memzero(run, offsetof(ngx_voice_tool_run_t, fields));

    run->call = call;
    run->tool = tool;
    run->done = done;
    run->data = data;
    run->started = ngx_current_msec;
    run->busy = 1;

    run->id_len = ngx_min(oc->id_len, NGX_VOICE_OA_MAX_ID);
    ngx_memcpy(run->id, oc->id, run->id_len);
    run->name_len = ngx_min(oc->name_len, NGX_VOICE_OA_MAX_NAME);
    ngx_memcpy(run->name, oc->name, run->name_len);

    run->args_len = ngx_min(oc->args_len, NGX_VOICE_TOOL_ARGS);

    run->args = ngx_alloc(NGX_VOICE_TOOL_ARGS + NGX_VOICE_TOOL_RESULT,
                          call->connection->log);
    if (run->args == NULL) {
        run->busy = 0;
        return NGX_ERROR;
    }

    run->result = run->args + NGX_VOICE_TOOL_ARGS;

    if (run->args_len) {
        ngx_memcpy(run->args, oc->args, run->args_len);
    }

    if (tool == NULL) {
        return NGX_OK;
    }

    /* the model may write arguments that are not JSON: say so */
    args = cJSON_ParseWithLength((char *) run->args, run->args_len);

    if (run->args_len && !cJSON_IsObject(args)) {
        cJSON_Delete(args);
        ngx_voice_tool_answer(run, "invalid arguments",
                              "{\"error\":\"the arguments were not a JSON "
                              "object\"}");
        return NGX_DECLINED;
    }

    cJSON_Delete(args);

    if (run->args_len == 0) {
        run->args[0] = '{';
        run->args[1] = '}';
        run->args_len = 2;
    }

    ngx_voice_hc_init(&run->hc, call, tool->pool, &ngx_voice_tool_hc_handler,
                      run);

    /*
     * A pooled connection the tool's server closed just as it was reused
     * is not retried: the POST may have run.  Connections it closes while
     * idle leave the pool at once, so this is a narrow race.
     */
    run->hc.once = 1;

    run->fields[0].name = "Content-Type";
    run->fields[0].name_len = sizeof("Content-Type") - 1;
    run->fields[0].value = "application/json";
    run->fields[0].value_len = sizeof("application/json") - 1;
    run->fields[1].name = "Accept";
    run->fields[1].name_len = sizeof("Accept") - 1;
    run->fields[1].value = "application/json";
    run->fields[1].value_len = sizeof("application/json") - 1;
    run->fields[2].name = "X-Voice-Call-Sid";
    run->fields[2].name_len = sizeof("X-Voice-Call-Sid") - 1;
    run->fields[2].value = (char *) call->id.data;
    run->fields[2].value_len = call->id.len;
    run->fields[3].name = "X-Voice-Tool-Call-Id";
    run->fields[3].name_len = sizeof("X-Voice-Tool-Call-Id") - 1;
    run->fields[3].value = (char *) run->id;
    run->fields[3].value_len = run->id_len;

    ngx_str_set(&rq.method, "POST");
    rq.uri = tool->pool->ep->request;
    rq.fields = run->fields;
    rq.nfields = 4;
    rq.body = run->args;
    rq.body_len = run->args_len;
    rq.timeout = tool->timeout;

    ngx_log_error(NGX_LOG_INFO, call->connection->log, 0,
                  "voice: tool %V called (%*s): %*s", &tool->name,
                  run->id_len, run->id, run->args_len, run->args);

    rc = ngx_voice_hc_request(&run->hc, &rq);

    if (rc != NGX_OK && !run->over) {
        ngx_voice_tool_answer(run, "failed", "{\"error\":\"the tool could "
                              "not be called\"}");
        return NGX_DECLINED;
    }

    return run->over ? NGX_DECLINED : NGX_AGAIN;
}


/* the result the LLM gets, final (at most once per run) */

void
ngx_voice_tool_answer(ngx_voice_tool_run_t *run, const char *outcome,
    const char *fmt, ...)
{
    u_char   *p;
    va_list   args;

    if (run->over) {
        return;
    }

    va_start(args, fmt);
    p = ngx_vslprintf(run->result, run->result + NGX_VOICE_TOOL_RESULT,
                      fmt, args);
    va_end(args);

    run->result_len = p - run->result;
    run->outcome = outcome;

    ngx_voice_tool_over(run);
}


static void
ngx_voice_tool_over(ngx_voice_tool_run_t *run)
{
    run->over = 1;
    run->elapsed = ngx_current_msec - run->started;

    ngx_log_error(NGX_LOG_INFO, run->call->connection->log, 0,
                  "voice: tool %*s (%*s) %s after %M ms, status %ui: %*s",
                  run->name_len, run->name, run->id_len, run->id,
                  run->outcome, run->elapsed, run->status, run->result_len,
                  run->result);

    if (run->done) {
        run->done(run);
    }
}


static void
ngx_voice_tool_header(ngx_voice_hc_t *hc)
{
    ngx_voice_tool_run_t  *run;

    run = hc->data;
    run->status = hc->status;
}


static void
ngx_voice_tool_body(ngx_voice_hc_t *hc, u_char *p, size_t n)
{
    ngx_voice_tool_run_t  *run;

    run = hc->data;

    if (run->over) {
        return;
    }

    ngx_voice_hc_collect(run->result, &run->result_len,
                         NGX_VOICE_TOOL_RESULT, p, n);
}


static void
ngx_voice_tool_done(ngx_voice_hc_t *hc)
{
    ngx_voice_tool_run_t  *run;

    run = hc->data;

    if (run->over) {
        return;
    }

    if (run->result_len > NGX_VOICE_TOOL_RESULT) {
        run->result_len = 0;
        ngx_voice_tool_answer(run, "failed", "{\"error\":\"the tool's "
                              "answer was larger than %d bytes\"}",
                              NGX_VOICE_TOOL_RESULT);
        return;
    }

    if (run->result_len == 0) {
        ngx_voice_tool_answer(run, "ok", "{\"ok\":true}");
        return;
    }

    run->outcome = "ok";
    ngx_voice_tool_over(run);
}


static void
ngx_voice_tool_failed(ngx_voice_hc_t *hc, ngx_voice_leg_error_e err)
{
    ngx_voice_tool_run_t  *run;

    run = hc->data;

    if (run->over) {
        return;
    }

    run->result_len = 0;

    if (err == NGX_VOICE_LEG_ERR_REMOTE) {
        run->status = hc->status;
        ngx_voice_tool_answer(run, "failed", "{\"error\":\"the tool "
                              "answered HTTP %ui\"}", hc->status);
        return;
    }

    if (err == NGX_VOICE_LEG_ERR_TIMEOUT) {
        ngx_voice_tool_answer(run, "timed out", "{\"error\":\"the tool did "
                              "not answer in time\"}");
        return;
    }

    ngx_voice_tool_answer(run, "failed", "{\"error\":\"the tool could not "
                          "be reached (%s)\"}", ngx_voice_leg_strerror(err));
}


/*
 * The call ends with the tool call in flight: its outcome is unknown
 * (it may have run), which is what the record says.
 */

void
ngx_voice_tool_abandon(ngx_voice_tool_run_t *run)
{
    if (!run->busy || run->over) {
        return;
    }

    run->done = NULL;

    if (run->tool) {
        ngx_voice_hc_cancel(&run->hc);
    }

    ngx_voice_tool_answer(run, "abandoned", "{\"error\":\"the call "
                          "ended\"}");
}


void
ngx_voice_tool_free(ngx_voice_tool_run_t *run)
{
    if (run->tool && run->busy) {
        /* the connection went back to the pool: only the parser is ours */
        ngx_voice_hc_cancel(&run->hc);
    }

    if (run->args) {
        ngx_free(run->args);
        run->args = NULL;
        run->result = NULL;
    }

    run->busy = 0;
}
