/*
 * Copyright (C) ngx_voice authors
 */


#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>

#include "ngx_voice_ws_codec.h"
#include "ngx_voice_base64.h"


/* reader states */
#define NGX_VOICE_WS_ST_HEADER     0
#define NGX_VOICE_WS_ST_PAYLOAD    1
#define NGX_VOICE_WS_ST_FAILED     2

/* smallest message buffer ever allocated */
#define NGX_VOICE_WS_MIN_ALLOC     256

#define NGX_VOICE_WS_GUID          "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define NGX_VOICE_WS_GUID_LEN      (sizeof(NGX_VOICE_WS_GUID) - 1)


static int ngx_voice_ws_fail(ngx_voice_ws_reader_t *r, unsigned code,
    const char *text);
static int ngx_voice_ws_parse_first(ngx_voice_ws_reader_t *r);
static int ngx_voice_ws_parse_length(ngx_voice_ws_reader_t *r);
static void ngx_voice_ws_next_frame(ngx_voice_ws_reader_t *r);
static int ngx_voice_ws_control(ngx_voice_ws_reader_t *r, unsigned opcode,
    ngx_voice_ws_msg_t *msg);
static int ngx_voice_ws_grow(ngx_voice_ws_reader_t *r, size_t need);
static void ngx_voice_ws_shrink(ngx_voice_ws_reader_t *r);
static int ngx_voice_utf8_feed(uint32_t *state, const unsigned char *p,
    size_t len);


void
ngx_voice_ws_reader_init(ngx_voice_ws_reader_t *r, unsigned role,
    size_t max_msg, size_t min_cap)
{
    memset(r, 0, sizeof(ngx_voice_ws_reader_t));

    r->role = role;
    r->max_msg = max_msg;

    /* the buffer never grows beyond max_msg, so neither may min_cap */
    r->min_cap = (min_cap > max_msg) ? max_msg : min_cap;

    r->state = NGX_VOICE_WS_ST_HEADER;
    r->hdr_need = 2;
}


void
ngx_voice_ws_reader_free(ngx_voice_ws_reader_t *r)
{
    free(r->buf);

    r->buf = NULL;
    r->cap = 0;
    r->len = 0;
    r->msg_opcode = 0;
}


int
ngx_voice_ws_read(ngx_voice_ws_reader_t *r, unsigned char *in, size_t len,
    size_t *consumed, ngx_voice_ws_msg_t *msg)
{
    int             rc;
    size_t          pos, n;
    uint64_t        left;
    unsigned        opcode, fin;
    unsigned char  *p;

    *consumed = 0;

    if (r->state == NGX_VOICE_WS_ST_FAILED) {
        return NGX_VOICE_WS_FAIL;
    }

    if (r->msg_opcode == 0) {

        /*
         * No message is being assembled: the one returned last, if any,
         * has been handled, so a buffer enlarged for it can go.
         */

        r->len = 0;

        if (r->cap > 4 * r->min_cap) {
            ngx_voice_ws_shrink(r);
        }
    }

    pos = 0;

    for ( ;; ) {

        if (r->state == NGX_VOICE_WS_ST_HEADER) {

            while (r->hdr_len < r->hdr_need) {

                if (pos == len) {
                    *consumed = pos;
                    return NGX_VOICE_WS_AGAIN;
                }

                r->hdr[r->hdr_len++] = in[pos++];

                if (r->hdr_len < 2) {
                    continue;
                }

                if (r->hdr_len == 2 && ngx_voice_ws_parse_first(r) != 0) {
                    goto failed;
                }

                /* check the length as soon as it is known, before the mask */

                if (r->hdr_len == r->hdr_need - (r->masked ? 4 : 0)
                    && ngx_voice_ws_parse_length(r) != 0)
                {
                    goto failed;
                }
            }

            if (r->masked) {
                memcpy(r->mask, &r->hdr[r->hdr_need - 4], 4);
            }

            if (r->opcode == NGX_VOICE_WS_OP_TEXT
                || r->opcode == NGX_VOICE_WS_OP_BINARY)
            {
                r->msg_opcode = r->opcode;
                r->len = 0;
                r->utf8 = 0;
            }

            r->ctl_len = 0;
            r->state = NGX_VOICE_WS_ST_PAYLOAD;
        }

        left = r->frame_len - r->frame_got;
        n = len - pos;

        if (r->fin
            && r->frame_got == 0
            && (r->opcode == NGX_VOICE_WS_OP_TEXT
                || r->opcode == NGX_VOICE_WS_OP_BINARY)
            && (uint64_t) n >= left)
        {
            /* a whole unfragmented message in the input: no copy */

            p = in + pos;
            n = (size_t) left;

            if (r->masked) {
                ngx_voice_ws_mask(p, n, r->mask, 0);
            }

            if (r->opcode == NGX_VOICE_WS_OP_TEXT
                && !ngx_voice_utf8_valid(p, n))
            {
                ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_INVALID_DATA,
                                  "invalid UTF-8 in text");
                goto failed;
            }

            pos += n;

            memset(msg, 0, sizeof(ngx_voice_ws_msg_t));
            msg->opcode = r->opcode;
            msg->data = p;
            msg->len = n;

            r->msg_opcode = 0;
            ngx_voice_ws_next_frame(r);

            *consumed = pos;
            return NGX_VOICE_WS_MSG;
        }

        if ((uint64_t) n > left) {
            n = (size_t) left;
        }

        if (n) {
            p = in + pos;

            if (r->masked) {
                ngx_voice_ws_mask(p, n, r->mask, r->frame_got);
            }

            if (r->opcode & 0x8) {
                memcpy(r->ctl + r->ctl_len, p, n);
                r->ctl_len += n;

            } else {
                if (r->msg_opcode == NGX_VOICE_WS_OP_TEXT
                    && ngx_voice_utf8_feed(&r->utf8, p, n) != 0)
                {
                    ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_INVALID_DATA,
                                      "invalid UTF-8 in text");
                    goto failed;
                }

                if (r->len + n > r->cap
                    && ngx_voice_ws_grow(r, r->len + n) != 0)
                {
                    ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_INTERNAL,
                                      "out of memory");
                    goto failed;
                }

                memcpy(r->buf + r->len, p, n);
                r->len += n;
            }

            pos += n;
            r->frame_got += n;
        }

        if (r->frame_got < r->frame_len) {
            *consumed = pos;
            return NGX_VOICE_WS_AGAIN;
        }

        /* the frame is complete */

        opcode = r->opcode;
        fin = r->fin;

        ngx_voice_ws_next_frame(r);

        if (opcode & 0x8) {
            rc = ngx_voice_ws_control(r, opcode, msg);

            if (rc != 0) {
                goto failed;
            }

            *consumed = pos;
            return NGX_VOICE_WS_MSG;
        }

        if (!fin) {
            continue;
        }

        if (r->msg_opcode == NGX_VOICE_WS_OP_TEXT && r->utf8 != 0) {
            ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_INVALID_DATA,
                              "invalid UTF-8 in text");
            goto failed;
        }

        memset(msg, 0, sizeof(ngx_voice_ws_msg_t));
        msg->opcode = r->msg_opcode;
        msg->data = r->buf ? r->buf : (const unsigned char *) "";
        msg->len = r->len;

        /* the data stay in buf until the next call */

        r->msg_opcode = 0;
        r->len = 0;
        r->utf8 = 0;

        *consumed = pos;
        return NGX_VOICE_WS_MSG;
    }

failed:

    r->state = NGX_VOICE_WS_ST_FAILED;
    *consumed = pos;

    return NGX_VOICE_WS_FAIL;
}


static int
ngx_voice_ws_fail(ngx_voice_ws_reader_t *r, unsigned code, const char *text)
{
    r->error = code;
    r->error_text = text;

    return -1;
}


static int
ngx_voice_ws_parse_first(ngx_voice_ws_reader_t *r)
{
    unsigned  b0, b1, len7;

    b0 = r->hdr[0];
    b1 = r->hdr[1];

    r->fin = b0 >> 7;
    r->opcode = b0 & 0x0f;
    r->masked = b1 >> 7;
    len7 = b1 & 0x7f;

    if (b0 & 0x70) {
        return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                 "reserved bits set");
    }

    switch (r->opcode) {

    case NGX_VOICE_WS_OP_CONT:
        if (r->msg_opcode == 0) {
            return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                     "continuation without message");
        }
        break;

    case NGX_VOICE_WS_OP_TEXT:
    case NGX_VOICE_WS_OP_BINARY:
        if (r->msg_opcode != 0) {
            return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                     "new message inside fragmented one");
        }
        break;

    case NGX_VOICE_WS_OP_CLOSE:
    case NGX_VOICE_WS_OP_PING:
    case NGX_VOICE_WS_OP_PONG:
        if (!r->fin) {
            return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                     "fragmented control frame");
        }

        if (len7 > NGX_VOICE_WS_CONTROL_MAX) {
            return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                     "control frame too long");
        }
        break;

    default:
        return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                 "unknown opcode");
    }

    if (r->role == NGX_VOICE_WS_SERVER && !r->masked) {
        return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                 "client frame not masked");
    }

    if (r->role == NGX_VOICE_WS_CLIENT && r->masked) {
        return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                 "server frame masked");
    }

    r->hdr_need = 2 + (r->masked ? 4 : 0);

    if (len7 == 126) {
        r->hdr_need += 2;

    } else if (len7 == 127) {
        r->hdr_need += 8;
    }

    return 0;
}


static int
ngx_voice_ws_parse_length(ngx_voice_ws_reader_t *r)
{
    unsigned  i, len7;
    uint64_t  flen;

    len7 = r->hdr[1] & 0x7f;

    /*
     * RFC 6455 5.2 asks for the minimal length encoding but gives no
     * reason to fail a connection over a longer one, so it is accepted
     * like most servers do.
     */

    if (len7 == 126) {
        flen = ((uint64_t) r->hdr[2] << 8) | r->hdr[3];

    } else if (len7 == 127) {
        if (r->hdr[2] & 0x80) {
            return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                     "invalid frame length");
        }

        flen = 0;

        for (i = 2; i < 10; i++) {
            flen = (flen << 8) | r->hdr[i];
        }

    } else {
        flen = len7;
    }

    r->frame_len = flen;
    r->frame_got = 0;

    /* r->len is 0 unless a fragmented message is open */

    if (!(r->opcode & 0x8) && flen > (uint64_t) (r->max_msg - r->len)) {
        return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_TOO_BIG,
                                 "message too big");
    }

    return 0;
}


static void
ngx_voice_ws_next_frame(ngx_voice_ws_reader_t *r)
{
    r->state = NGX_VOICE_WS_ST_HEADER;
    r->hdr_len = 0;
    r->hdr_need = 2;
    r->masked = 0;
    r->frame_len = 0;
    r->frame_got = 0;
}


static int
ngx_voice_ws_control(ngx_voice_ws_reader_t *r, unsigned opcode,
    ngx_voice_ws_msg_t *msg)
{
    unsigned  code;

    memset(msg, 0, sizeof(ngx_voice_ws_msg_t));

    msg->opcode = opcode;
    msg->data = r->ctl;
    msg->len = r->ctl_len;

    if (opcode != NGX_VOICE_WS_OP_CLOSE) {
        return 0;
    }

    msg->reason = r->ctl;

    if (r->ctl_len == 0) {
        msg->close_code = NGX_VOICE_WS_CLOSE_NO_STATUS;
        return 0;
    }

    if (r->ctl_len == 1) {
        return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                 "close payload of 1 byte");
    }

    code = ((unsigned) r->ctl[0] << 8) | r->ctl[1];

    if (!ngx_voice_ws_close_code_valid(code)) {
        return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_PROTOCOL,
                                 "invalid close code");
    }

    if (!ngx_voice_utf8_valid(r->ctl + 2, r->ctl_len - 2)) {
        return ngx_voice_ws_fail(r, NGX_VOICE_WS_CLOSE_INVALID_DATA,
                                 "invalid UTF-8 in close reason");
    }

    msg->close_code = code;
    msg->reason = r->ctl + 2;
    msg->reason_len = r->ctl_len - 2;

    return 0;
}


static int
ngx_voice_ws_grow(ngx_voice_ws_reader_t *r, size_t need)
{
    size_t          cap;
    unsigned char  *p;

    /* need <= max_msg: the frame header was checked against it */

    cap = r->cap;

    if (cap < r->min_cap) {
        cap = r->min_cap;
    }

    if (cap < NGX_VOICE_WS_MIN_ALLOC) {
        cap = NGX_VOICE_WS_MIN_ALLOC;
    }

    while (cap < need) {
        cap = (cap > r->max_msg / 2) ? r->max_msg : cap * 2;
    }

    if (cap > r->max_msg) {
        cap = r->max_msg;
    }

    p = realloc(r->buf, cap);
    if (p == NULL) {
        return -1;
    }

    r->buf = p;
    r->cap = cap;

    return 0;
}


static void
ngx_voice_ws_shrink(ngx_voice_ws_reader_t *r)
{
    /* free + malloc: realloc() to a smaller size may keep the big block */

    free(r->buf);

    r->buf = NULL;
    r->cap = 0;

    if (r->min_cap == 0) {
        return;
    }

    /* on failure stay empty: ngx_voice_ws_grow() will try again */

    r->buf = malloc(r->min_cap);

    if (r->buf) {
        r->cap = r->min_cap;
    }
}


size_t
ngx_voice_ws_header(unsigned char *dst, unsigned opcode, unsigned fin,
    uint64_t len, const unsigned char *mask)
{
    int             i;
    unsigned        m;
    unsigned char  *p;

    p = dst;
    m = mask ? 0x80 : 0;

    *p++ = (unsigned char) ((fin ? 0x80 : 0) | (opcode & 0x0f));

    if (len < 126) {
        *p++ = (unsigned char) (m | len);

    } else if (len <= 0xffff) {
        *p++ = (unsigned char) (m | 126);
        *p++ = (unsigned char) (len >> 8);
        *p++ = (unsigned char) len;

    } else {
        *p++ = (unsigned char) (m | 127);

        for (i = 56; i >= 0; i -= 8) {
            *p++ = (unsigned char) (len >> i);
        }
    }

    if (mask) {
        memcpy(p, mask, 4);
        p += 4;
    }

    return p - dst;
}


size_t
ngx_voice_ws_header_len(uint64_t len, unsigned masked)
{
    size_t  n;

    if (len < 126) {
        n = 2;

    } else if (len <= 0xffff) {
        n = 4;

    } else {
        n = 10;
    }

    return masked ? n + 4 : n;
}


void
ngx_voice_ws_mask(unsigned char *data, size_t len, const unsigned char *mask,
    uint64_t offset)
{
    size_t         i;
    uint64_t       w, mw;
    unsigned char  m[8];

    /* the mask rotated to offset and repeated, to XOR 8 bytes at a time */

    for (i = 0; i < 8; i++) {
        m[i] = mask[(offset + i) & 3];
    }

    memcpy(&mw, m, 8);

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, data + i, 8);
        w ^= mw;
        memcpy(data + i, &w, 8);
    }

    for ( /* void */ ; i < len; i++) {
        data[i] ^= m[i & 7];
    }
}


/*
 * The UTF-8 validator state: 0 between characters, otherwise the number
 * of continuation bytes still needed (bits 0-7) and the range allowed
 * for the next one (bits 8-15 and 16-23).  The narrowed ranges after
 * E0, ED, F0 and F4 reject overlongs, surrogates and code points above
 * U+10FFFF at the first byte that makes them certain.
 */

static int
ngx_voice_utf8_feed(uint32_t *state, const unsigned char *p, size_t len)
{
    uint64_t              w;
    unsigned              c, need, lo, hi;
    const unsigned char  *end;

    end = p + len;

    need = *state & 0xff;
    lo = (*state >> 8) & 0xff;
    hi = (*state >> 16) & 0xff;

    while (p < end) {
        c = *p++;

        if (need) {
            if (c < lo || c > hi) {
                return -1;
            }

            need--;
            lo = 0x80;
            hi = 0xbf;
            continue;
        }

        if (c < 0x80) {

            /* ASCII runs are the common case */

            while (end - p >= 8) {
                memcpy(&w, p, 8);

                if (w & 0x8080808080808080ULL) {
                    break;
                }

                p += 8;
            }

            continue;
        }

        lo = 0x80;
        hi = 0xbf;

        if (c < 0xc2) {
            /* a stray continuation byte or an overlong 2-byte form */
            return -1;

        } else if (c < 0xe0) {
            need = 1;

        } else if (c < 0xf0) {
            need = 2;

            if (c == 0xe0) {
                lo = 0xa0;

            } else if (c == 0xed) {
                hi = 0x9f;
            }

        } else if (c < 0xf5) {
            need = 3;

            if (c == 0xf0) {
                lo = 0x90;

            } else if (c == 0xf4) {
                hi = 0x8f;
            }

        } else {
            return -1;
        }
    }

    *state = need ? (need | (lo << 8) | (hi << 16)) : 0;

    return 0;
}


int
ngx_voice_utf8_valid(const unsigned char *p, size_t len)
{
    uint32_t  state;

    state = 0;

    return ngx_voice_utf8_feed(&state, p, len) == 0 && state == 0;
}


int
ngx_voice_ws_close_code_valid(unsigned code)
{
    if (code >= 1000 && code <= 1003) {
        return 1;
    }

    if (code >= 1007 && code <= 1014) {
        return 1;
    }

    return code >= 3000 && code <= 4999;
}


void
ngx_voice_ws_accept(unsigned char *dst, const unsigned char *key,
    size_t key_len)
{
    unsigned char   md[SHA_DIGEST_LENGTH];
    unsigned char   buf[128 + NGX_VOICE_WS_GUID_LEN];
    unsigned char  *p;

    /* a valid key is 24 characters; longer ones need the heap */

    if (key_len <= 128) {
        p = buf;

    } else {
        p = malloc(key_len + NGX_VOICE_WS_GUID_LEN);

        if (p == NULL) {
            /* cannot be a valid accept value: the peer fails the handshake */
            memset(dst, '-', NGX_VOICE_WS_ACCEPT_LEN);
            return;
        }
    }

    memcpy(p, key, key_len);
    memcpy(p + key_len, NGX_VOICE_WS_GUID, NGX_VOICE_WS_GUID_LEN);

    SHA1(p, key_len + NGX_VOICE_WS_GUID_LEN, md);

    if (p != buf) {
        free(p);
    }

    ngx_voice_base64_encode(dst, md, SHA_DIGEST_LENGTH);
}
