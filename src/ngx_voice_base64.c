/*
 * Copyright (C) ngx_voice authors
 */


#include <stdint.h>
#include "ngx_voice_base64.h"


static const unsigned char  ngx_voice_b64_enc[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


/* value of each character; 0xff for everything else, '=' included */
static const unsigned char  ngx_voice_b64_dec[256] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff,   62, 0xff, 0xff, 0xff,   63,
      52,   53,   54,   55,   56,   57,   58,   59,
      60,   61, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff,    0,    1,    2,    3,    4,    5,    6,
       7,    8,    9,   10,   11,   12,   13,   14,
      15,   16,   17,   18,   19,   20,   21,   22,
      23,   24,   25, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff,   26,   27,   28,   29,   30,   31,   32,
      33,   34,   35,   36,   37,   38,   39,   40,
      41,   42,   43,   44,   45,   46,   47,   48,
      49,   50,   51, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
};


size_t
ngx_voice_base64_encode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    unsigned char  *d;
    uint32_t        v;

    d = dst;

    while (len >= 3) {
        v = ((uint32_t) src[0] << 16) | ((uint32_t) src[1] << 8) | src[2];

        *d++ = ngx_voice_b64_enc[v >> 18];
        *d++ = ngx_voice_b64_enc[(v >> 12) & 0x3f];
        *d++ = ngx_voice_b64_enc[(v >> 6) & 0x3f];
        *d++ = ngx_voice_b64_enc[v & 0x3f];

        src += 3;
        len -= 3;
    }

    if (len) {
        v = (uint32_t) src[0] << 16;

        if (len == 2) {
            v |= (uint32_t) src[1] << 8;
        }

        *d++ = ngx_voice_b64_enc[v >> 18];
        *d++ = ngx_voice_b64_enc[(v >> 12) & 0x3f];
        *d++ = (len == 2) ? ngx_voice_b64_enc[(v >> 6) & 0x3f] : '=';
        *d++ = '=';
    }

    return d - dst;
}


ssize_t
ngx_voice_base64_decode(unsigned char *dst, const unsigned char *src,
    size_t len)
{
    size_t          groups;
    uint32_t        a, b, c, d;
    unsigned char  *p;

    if (len % 4) {
        return -1;
    }

    if (len == 0) {
        return 0;
    }

    p = dst;

    /*
     * All groups but the last have no padding.  Each group is read whole
     * before its 3 bytes are written, and dst never passes src, so in
     * place decoding is safe.
     */

    for (groups = len / 4 - 1; groups; groups--) {
        a = ngx_voice_b64_dec[src[0]];
        b = ngx_voice_b64_dec[src[1]];
        c = ngx_voice_b64_dec[src[2]];
        d = ngx_voice_b64_dec[src[3]];

        /* one test for the four lookups: only 0xff has bit 7 set */
        if ((a | b | c | d) & 0x80) {
            return -1;
        }

        a = (a << 18) | (b << 12) | (c << 6) | d;

        *p++ = (unsigned char) (a >> 16);
        *p++ = (unsigned char) (a >> 8);
        *p++ = (unsigned char) a;

        src += 4;
    }

    /* the last group: "xxxx", "xxx=" or "xx==" */

    a = ngx_voice_b64_dec[src[0]];
    b = ngx_voice_b64_dec[src[1]];

    if ((a | b) & 0x80) {
        return -1;
    }

    if (src[3] != '=') {
        c = ngx_voice_b64_dec[src[2]];
        d = ngx_voice_b64_dec[src[3]];

        if ((c | d) & 0x80) {
            return -1;
        }

        a = (a << 18) | (b << 12) | (c << 6) | d;

        *p++ = (unsigned char) (a >> 16);
        *p++ = (unsigned char) (a >> 8);
        *p++ = (unsigned char) a;

        return p - dst;
    }

    if (src[2] == '=') {

        /* "xx==": one byte, the low 4 bits of b must be zero */

        if (b & 0x0f) {
            return -1;
        }

        *p++ = (unsigned char) ((a << 2) | (b >> 4));

        return p - dst;
    }

    /* "xxx=": two bytes, the low 2 bits of c must be zero */

    c = ngx_voice_b64_dec[src[2]];

    if ((c & 0x80) || (c & 0x03)) {
        return -1;
    }

    a = (a << 18) | (b << 12) | (c << 6);

    *p++ = (unsigned char) (a >> 16);
    *p++ = (unsigned char) (a >> 8);

    return p - dst;
}
