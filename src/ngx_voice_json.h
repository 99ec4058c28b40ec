/*
 * Copyright (C) ngx_voice authors
 *
 * JSON string escaping into caller buffers for the provider message
 * builders (LLM text goes into TTS messages), and the string type shared
 * by the provider codecs, plus small cJSON helpers.  nginx-free.
 */


#ifndef _NGX_VOICE_JSON_H_INCLUDED_
#define _NGX_VOICE_JSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* a counted string; data is never NULL for a present value */
typedef struct {
    const char           *data;
    size_t                len;
} ngx_voice_text_t;


/*
 * Exact number of bytes ngx_voice_json_escape() writes for s (without
 * the surrounding quotes, which the caller adds).
 */
size_t ngx_voice_json_escape_len(const unsigned char *s, size_t len);

/*
 * Writes s as the inside of a JSON string at dst and returns the end.
 * '"' and '\\' are backslash-escaped; control characters become \b \f
 * \n \r \t or \u00XX (DEL too); valid UTF-8 passes through unchanged;
 * every byte of an invalid or truncated UTF-8 sequence (including
 * overlongs, surrogates and code points past U+10FFFF) becomes \ufffd,
 * so the output is always valid JSON and valid UTF-8.
 */
unsigned char *ngx_voice_json_escape(unsigned char *dst,
    const unsigned char *s, size_t len);

/*
 * Length of the longest prefix of s that does not end inside a UTF-8
 * sequence that could still be completed by following bytes: a streaming
 * caller sends that prefix and keeps the (at most 3) tail bytes for the
 * next piece, so that a character split between two pieces is not
 * replaced by \ufffd.
 */
size_t ngx_voice_utf8_complete_len(const unsigned char *s, size_t len);


/*
 * Output cursor shared by the message builders so that one function
 * serves as both the exact length function and the writer: with p ==
 * NULL only len is counted.  Every call adds its size to len.
 */
typedef struct {
    unsigned char        *p;
    size_t                len;
} ngx_voice_out_t;

void ngx_voice_out_raw(ngx_voice_out_t *o, const void *s, size_t n);
/* query parameters "&name=value" (percent-encoded; NULL data: left out),
 * "&name=true|false" (v 1 or 2; anything else left out), "&name=N" */
void ngx_voice_out_qparam(ngx_voice_out_t *o, const char *name,
    const ngx_voice_text_t *value);
void ngx_voice_out_qbool(ngx_voice_out_t *o, const char *name, int v);
void ngx_voice_out_quint(ngx_voice_out_t *o, const char *name, uint64_t v);
void ngx_voice_out_lit(ngx_voice_out_t *o, const char *s);
/* JSON-escaped (ngx_voice_json_escape), without quotes */
void ngx_voice_out_json(ngx_voice_out_t *o, const unsigned char *s,
    size_t n);
/* percent-encoded: all but RFC 3986 unreserved bytes become %XX */
void ngx_voice_out_url(ngx_voice_out_t *o, const unsigned char *s,
    size_t n);
void ngx_voice_out_uint(ngx_voice_out_t *o, uint64_t v);
/* a finite number as %.6g (C locale); non-finite values write 0 */
void ngx_voice_out_double(ngx_voice_out_t *o, double v);

/* 1 when s can be appended to a URL query verbatim: printable ASCII
 * without SP, '#' or '"' (what "extra" query options must be) */
int ngx_voice_query_safe(const unsigned char *s, size_t n);


/*
 * Helpers for the codecs' cJSON parsers; void * stands for cJSON * so
 * that this header does not need cJSON.
 *
 * ngx_voice_json_parse(): the cJSON tree of len bytes that must hold one
 * JSON object and nothing but whitespace after it, or NULL.  Free it
 * with cJSON_Delete().
 */
void *ngx_voice_json_parse(const unsigned char *json, size_t len);

/* obj.name as a string: 1 and *t set, or 0 and *t = "" */
int ngx_voice_json_text(void *obj, const char *name, ngx_voice_text_t *t);

/* obj.name as a number: 1 and *v set, or 0 and *v left alone */
int ngx_voice_json_number(void *obj, const char *name, double *v);

/* obj.name: 1 when true, 0 when false, null or absent */
int ngx_voice_json_true(void *obj, const char *name);

/* a JSON number as a non-negative integer, saturated; NaN/neg give 0 */
uint64_t ngx_voice_json_uint(double v);


/*
 * Length of the valid UTF-8 sequence of a non-ASCII lead byte at p, or
 * NGX_VOICE_UTF8_SHORT when the bytes present are a valid beginning cut
 * by the end, or NGX_VOICE_UTF8_BAD (RFC 3629: no overlongs, surrogates
 * or values past U+10FFFF).
 */
#define NGX_VOICE_UTF8_BAD         -1
#define NGX_VOICE_UTF8_SHORT       -2

int ngx_voice_utf8_seq(const unsigned char *p, size_t avail);

/* a hexadecimal digit's value, or -1 */
int ngx_voice_hex(unsigned char c);


#endif /* _NGX_VOICE_JSON_H_INCLUDED_ */
