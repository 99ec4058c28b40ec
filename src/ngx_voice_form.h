/*
 * Copyright (C) ngx_voice authors
 *
 * application/x-www-form-urlencoded (Twilio's webhook bodies) and the
 * XML escaping of what is put back into TwiML.  nginx-free.
 */


#ifndef _NGX_VOICE_FORM_H_INCLUDED_
#define _NGX_VOICE_FORM_H_INCLUDED_


#include <stddef.h>


/* parse results */
#define NGX_VOICE_FORM_OK          0
#define NGX_VOICE_FORM_BAD         1     /* a '%' not followed by 2 hex */
#define NGX_VOICE_FORM_TOO_MANY    2     /* more fields than room */


typedef struct {
    unsigned char        *name;
    size_t                name_len;
    unsigned char        *value;
    size_t                value_len;
} ngx_voice_form_field_t;


/* an upper bound of the fields in buf: size the array for _parse() */
size_t ngx_voice_form_count(const unsigned char *buf, size_t len);

/*
 * Splits buf on '&' and each pair on its first '=', decoding '+' as a
 * space and %XX escapes, in place: the fields point into buf.  Empty
 * pairs ("a=1&&b=2") are skipped; a pair without '=' is a name with an
 * empty value.  Fields keep their order; repeated names stay repeated.
 */
int ngx_voice_form_parse(unsigned char *buf, size_t len,
    ngx_voice_form_field_t *fields, size_t max, size_t *n);

/*
 * Encodes a value for an x-www-form-urlencoded body (Twilio's REST
 * API), as HTML's serializer does: ALPHA, DIGIT and "*-._" kept, space
 * as '+', every other byte as %XX (upper-case hex).  With dst NULL only
 * the length is computed.
 */
size_t ngx_voice_form_encode(unsigned char *dst, const unsigned char *src,
    size_t len);

/*
 * XML attribute/text escaping: & < > " ' and tab, LF, CR as entities;
 * other C0 controls (not representable in XML 1.0) are dropped; bytes
 * that are not well-formed UTF-8 become U+FFFD.  With dst NULL only the
 * length is computed, so sizing and writing cannot disagree.
 */
size_t ngx_voice_xml_escape(unsigned char *dst, const unsigned char *src,
    size_t len);


#endif /* _NGX_VOICE_FORM_H_INCLUDED_ */
