/*
 * Copyright (C) ngx_voice authors
 *
 * OpenAI-compatible chat completions (Cerebras by default): request body
 * builder, parser of the streamed chunks (the data of each SSE event),
 * with a bounded tool-call accumulator, and parser of error bodies.
 * nginx-free; uses cJSON.
 */


#ifndef _NGX_VOICE_OPENAI_H_INCLUDED_
#define _NGX_VOICE_OPENAI_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_voice_json.h"


/* results of the parsers */
#define NGX_VOICE_OA_OK            0   /* chunk / error body parsed */
#define NGX_VOICE_OA_DONE          1   /* "[DONE]": the stream is over */
#define NGX_VOICE_OA_STREAM_ERROR  2   /* mid-stream {"error":...} */
#define NGX_VOICE_OA_BAD           3   /* malformed, or a limit: ->error */

/* finish_reason */
#define NGX_VOICE_OA_FINISH_NONE            0
#define NGX_VOICE_OA_FINISH_STOP            1
#define NGX_VOICE_OA_FINISH_LENGTH          2
#define NGX_VOICE_OA_FINISH_TOOL_CALLS      3
#define NGX_VOICE_OA_FINISH_CONTENT_FILTER  4
#define NGX_VOICE_OA_FINISH_OTHER           5

#define NGX_VOICE_OA_MAX_CALLS     8     /* tool calls per response */
#define NGX_VOICE_OA_MAX_ID        128   /* tool call id, bytes */
#define NGX_VOICE_OA_MAX_NAME      128   /* function name, bytes */


/* ---- request ---------------------------------------------------------- */

typedef struct {
    ngx_voice_text_t      id;
    ngx_voice_text_t      name;
    ngx_voice_text_t      arguments;  /* JSON text, "" is sent as is */
} ngx_voice_oa_call_t;


typedef struct {
    const char           *role;       /* "user", "assistant", "tool", ... */
    ngx_voice_text_t      content;    /* data NULL: "" */
    const ngx_voice_oa_call_t *calls; /* assistant tool calls */
    size_t                ncalls;
    ngx_voice_text_t      tool_call_id;   /* role "tool" */
} ngx_voice_oa_message_t;


typedef struct {
    ngx_voice_text_t      model;
    ngx_voice_text_t      system;     /* data NULL: no system message */
    const ngx_voice_oa_message_t *messages;
    size_t                nmessages;
    unsigned              max_completion_tokens;  /* 0: omitted */
    double                temperature;            /* < 0: omitted */
    unsigned              include_usage;  /* stream_options.include_usage */
    ngx_voice_text_t      tools;      /* JSON array text; NULL: none */
    ngx_voice_text_t      tool_choice;    /* "auto"/"none"/"required" or
                                             a JSON object text */
    ngx_voice_text_t      extra;      /* JSON object text whose members
                                         are added at the top level, e.g.
                                         {"reasoning_effort":"low"} */
} ngx_voice_oa_request_t;


/*
 * Builds the JSON body ("stream": true always).  Returns a NUL-terminated
 * string allocated by cJSON's allocator, to be released with
 * ngx_voice_oa_request_free(), and its length in *len; or NULL with
 * *error set to a static text (bad tools/tool_choice/extra JSON, no
 * memory).  An assistant message with tool calls and no content sends
 * "content":"" (Cerebras rejected null).
 */
char *ngx_voice_oa_request(const ngx_voice_oa_request_t *rq, size_t *len,
    const char **error);
void ngx_voice_oa_request_free(char *body);

/*
 * The same into dst of size bytes (the result is NUL-terminated; the
 * returned length excludes the NUL).  Returns 0 and sets *error when the
 * body does not fit or cannot be built.  Allocates and frees the cJSON
 * tree internally.
 */
size_t ngx_voice_oa_request_into(const ngx_voice_oa_request_t *rq,
    char *dst, size_t size, const char **error);


/* ---- streamed response ------------------------------------------------ */

typedef struct {
    char                  id[NGX_VOICE_OA_MAX_ID + 1];
    size_t                id_len;
    char                  name[NGX_VOICE_OA_MAX_NAME + 1];
    size_t                name_len;
    char                 *args;       /* in the stream's arena, NUL after */
    size_t                args_len;
} ngx_voice_oa_acc_call_t;


typedef struct {
    /* configuration */
    size_t                max_args;   /* per tool call */

    /* accumulated over the response */
    ngx_voice_oa_acc_call_t  calls[NGX_VOICE_OA_MAX_CALLS];
    unsigned              ncalls;     /* highest index seen + 1 */
    unsigned              finish;     /* NGX_VOICE_OA_FINISH_* */
    unsigned              role_seen;
    unsigned              done;       /* "[DONE]" seen */
    size_t                content_len;    /* bytes of content so far */

    unsigned              have_usage;
    uint64_t              prompt_tokens;
    uint64_t              completion_tokens;
    uint64_t              total_tokens;
    uint64_t              cached_tokens;

    unsigned              have_time_info;     /* Cerebras extension */
    double                queue_time;
    double                prompt_time;
    double                completion_time;
    double                total_time;
    double                created;

    char                 *arena;      /* MAX_CALLS * (max_args + 1) */
} ngx_voice_oa_stream_t;


typedef struct {
    /* this chunk; strings point into the cJSON tree until _chunk_done() */
    ngx_voice_text_t      content;    /* delta.content; len 0 if none */
    ngx_voice_text_t      role;       /* delta.role */
    ngx_voice_text_t      id;         /* chunk id */
    ngx_voice_text_t      model;
    unsigned              finish;     /* set on this chunk, or NONE */
    unsigned              tool_calls; /* fragments merged from this chunk */
    unsigned              usage;      /* this chunk carried usage */

    /* NGX_VOICE_OA_STREAM_ERROR */
    ngx_voice_text_t      err_message;
    ngx_voice_text_t      err_type;
    ngx_voice_text_t      err_code;   /* numbers are printed to code_buf */
    ngx_voice_text_t      err_param;
    unsigned              status_code;    /* from the body, 0 if absent */
    char                  code_buf[24];

    const char           *error;      /* NGX_VOICE_OA_BAD: static text */
    void                 *root;
} ngx_voice_oa_chunk_t;


/*
 * max_args bounds the arguments text of each tool call (e.g. 8192); the
 * arena for all calls is allocated once here.  Returns 0 or -1 (no
 * memory).
 */
int ngx_voice_oa_stream_init(ngx_voice_oa_stream_t *s, size_t max_args);

/* forget the previous response; keeps the arena */
void ngx_voice_oa_stream_reset(ngx_voice_oa_stream_t *s);
void ngx_voice_oa_stream_free(ngx_voice_oa_stream_t *s);

/*
 * Parses the data of one SSE event.  "[DONE]" gives NGX_VOICE_OA_DONE.
 * Otherwise a chat.completion.chunk: choices[0] (the entry with index 0,
 * or the first) delta.content is exposed in c->content (delta.reasoning
 * and reasoning_content are ignored: never speak them), delta.tool_calls
 * fragments are merged into s per index (id and name replaced when
 * present and non-empty, arguments appended), finish_reason, usage and
 * time_info update s (sticky; usage may come on a chunk with empty
 * choices).  A top-level "error" gives NGX_VOICE_OA_STREAM_ERROR with
 * c->err_*.  Limits (tool call index >= MAX_CALLS, id/name/arguments too
 * long) and malformed JSON give NGX_VOICE_OA_BAD with c->error; s is
 * then unusable for this response.  Call ngx_voice_oa_chunk_done(c)
 * whatever the result.  An SSE event named "error" should be handed to
 * ngx_voice_oa_error_parse() instead.
 */
int ngx_voice_oa_stream_parse(ngx_voice_oa_stream_t *s,
    ngx_voice_oa_chunk_t *c, const unsigned char *data, size_t len);
void ngx_voice_oa_chunk_done(ngx_voice_oa_chunk_t *c);


/* ---- error bodies ----------------------------------------------------- */

typedef struct {
    ngx_voice_text_t      message;    /* "" when absent */
    ngx_voice_text_t      type;
    ngx_voice_text_t      code;
    ngx_voice_text_t      param;
    unsigned              status_code;    /* "status_code" in the body */
    char                  code_buf[24];
    const char           *error;      /* NGX_VOICE_OA_BAD: static text */
    void                 *root;
} ngx_voice_oa_error_t;


/*
 * Parses a non-200 response body (or the data of an SSE "error" event):
 * the flat Cerebras {"message","type","param","code"}, the wrapped OpenAI
 * {"error":{...}} and {"detail":"..."} (as message).  A numeric code is
 * printed into code_buf.  Returns NGX_VOICE_OA_OK or NGX_VOICE_OA_BAD
 * (not a JSON object).  Strings live until ngx_voice_oa_error_done(),
 * which must be called whatever the result.
 */
int ngx_voice_oa_error_parse(ngx_voice_oa_error_t *e,
    const unsigned char *body, size_t len);
void ngx_voice_oa_error_done(ngx_voice_oa_error_t *e);


#endif /* _NGX_VOICE_OPENAI_H_INCLUDED_ */
