/*
 * Copyright (C) ngx_voice authors
 *
 * Strict RFC 4648 base64 (standard alphabet, padded).  nginx-free.
 */


#ifndef _NGX_VOICE_BASE64_H_INCLUDED_
#define _NGX_VOICE_BASE64_H_INCLUDED_


#include <stddef.h>
#include <sys/types.h>


#define ngx_voice_base64_encoded_len(n)  ((((n) + 2) / 3) * 4)
#define ngx_voice_base64_decoded_max(n)  ((((n) + 3) / 4) * 3)

size_t ngx_voice_base64_encode(unsigned char *dst, const unsigned char *src,
    size_t len);

/*
 * Returns the decoded length or -1 when src is not canonical padded
 * base64 (bad characters, bad length, bad padding, non-zero pad bits).
 * dst may equal src: decoding in place is safe.
 */
ssize_t ngx_voice_base64_decode(unsigned char *dst, const unsigned char *src,
    size_t len);


#endif /* _NGX_VOICE_BASE64_H_INCLUDED_ */
