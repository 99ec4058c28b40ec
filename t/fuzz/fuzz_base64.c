/*
 * Copyright (C) ngx_voice authors
 *
 * libFuzzer target for base64: what decodes must re-encode to the same
 * text (the decoder accepts canonical base64 only), in place decoding
 * must equal out of place, and any bytes must survive encode + decode.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ngx_voice_base64.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t          n;
    ssize_t         d, d2;
    unsigned char  *in, *dec, *enc;

    /* dec also takes the round trip of size arbitrary bytes */

    in = malloc(size ? size : 1);
    dec = malloc(ngx_voice_base64_decoded_max(size) + size + 1);
    enc = malloc(ngx_voice_base64_encoded_len(size) + 1);

    if (in == NULL || dec == NULL || enc == NULL) {
        abort();
    }

    memcpy(in, data, size);

    d = ngx_voice_base64_decode(dec, in, size);

    if (d >= 0) {
        if ((size_t) d > ngx_voice_base64_decoded_max(size)) {
            abort();
        }

        n = ngx_voice_base64_encode(enc, dec, (size_t) d);

        if (n != size || memcmp(enc, data, size) != 0) {
            abort();
        }

        d2 = ngx_voice_base64_decode(in, in, size);

        if (d2 != d || memcmp(in, dec, (size_t) d) != 0) {
            abort();
        }

    } else {
        d2 = ngx_voice_base64_decode(in, in, size);

        if (d2 != -1) {
            abort();
        }
    }

    /* arbitrary bytes round trip */

    n = ngx_voice_base64_encode(enc, data, size);

    if (n != ngx_voice_base64_encoded_len(size)) {
        abort();
    }

    d = ngx_voice_base64_decode(dec, enc, n);

    if (d != (ssize_t) size || memcmp(dec, data, size) != 0) {
        abort();
    }

    free(in);
    free(dec);
    free(enc);

    return 0;
}
