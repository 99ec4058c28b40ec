/*
 * Copyright (C) ngx_voice authors
 *
 * RFC 6455 framing: a resumable frame reader that assembles whole
 * messages, and frame header/mask builders.  Free of nginx so that it can
 * be unit-tested and fuzzed on its own; only libc is used (the reader's
 * message buffer is malloc()ed and grows on demand up to a limit).
 */


#ifndef _NGX_VOICE_WS_CODEC_H_INCLUDED_
#define _NGX_VOICE_WS_CODEC_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define NGX_VOICE_WS_OP_CONT       0x0
#define NGX_VOICE_WS_OP_TEXT       0x1
#define NGX_VOICE_WS_OP_BINARY     0x2
#define NGX_VOICE_WS_OP_CLOSE      0x8
#define NGX_VOICE_WS_OP_PING       0x9
#define NGX_VOICE_WS_OP_PONG       0xa

/* close status codes used by the module */
#define NGX_VOICE_WS_CLOSE_NORMAL          1000
#define NGX_VOICE_WS_CLOSE_GOING_AWAY      1001
#define NGX_VOICE_WS_CLOSE_PROTOCOL        1002
#define NGX_VOICE_WS_CLOSE_NO_STATUS       1005
#define NGX_VOICE_WS_CLOSE_INVALID_DATA    1007
#define NGX_VOICE_WS_CLOSE_POLICY          1008
#define NGX_VOICE_WS_CLOSE_TOO_BIG         1009
#define NGX_VOICE_WS_CLOSE_INTERNAL        1011

/* return codes of ngx_voice_ws_read() */
#define NGX_VOICE_WS_MSG           0     /* *msg holds a whole message */
#define NGX_VOICE_WS_AGAIN         1     /* all input consumed */
#define NGX_VOICE_WS_FAIL          2     /* protocol error, see r->error */

/* who reads: a server requires masked frames, a client unmasked ones */
#define NGX_VOICE_WS_SERVER        0
#define NGX_VOICE_WS_CLIENT        1

#define NGX_VOICE_WS_MAX_HEADER    14
#define NGX_VOICE_WS_CONTROL_MAX   125


typedef struct {
    unsigned              opcode;     /* TEXT, BINARY, CLOSE, PING, PONG */
    const unsigned char  *data;       /* valid until the next read call */
    size_t                len;
    unsigned              close_code; /* CLOSE: peer's code, or 1005 */
    const unsigned char  *reason;     /* CLOSE: reason text (UTF-8) */
    size_t                reason_len;
} ngx_voice_ws_msg_t;


typedef struct {
    /* configuration */
    unsigned              role;       /* NGX_VOICE_WS_SERVER or _CLIENT */
    size_t                max_msg;    /* reassembled message limit */
    size_t                min_cap;    /* buffer kept between messages */

    /* current frame */
    unsigned              state;
    unsigned char         hdr[NGX_VOICE_WS_MAX_HEADER];
    size_t                hdr_len;
    size_t                hdr_need;
    unsigned              fin;
    unsigned              opcode;
    unsigned              masked;
    unsigned char         mask[4];
    uint64_t              frame_len;
    uint64_t              frame_got;

    /* data message being reassembled */
    unsigned              msg_opcode; /* 0 when no message is open */
    unsigned char        *buf;
    size_t                len;
    size_t                cap;
    uint32_t              utf8;       /* incremental validator state */

    /* control frame payload */
    unsigned char         ctl[NGX_VOICE_WS_CONTROL_MAX];
    size_t                ctl_len;

    /* set on NGX_VOICE_WS_FAIL */
    unsigned              error;      /* close code to send: 1002/7/9 */
    const char           *error_text; /* static, for the log */
} ngx_voice_ws_reader_t;


void ngx_voice_ws_reader_init(ngx_voice_ws_reader_t *r, unsigned role,
    size_t max_msg, size_t min_cap);
void ngx_voice_ws_reader_free(ngx_voice_ws_reader_t *r);

/*
 * Feeds len bytes at in.  Sets *consumed to the bytes used.  Returns
 * NGX_VOICE_WS_MSG with *msg filled when a whole message (data or
 * control) is complete; the caller handles it and calls again with the
 * rest of the input.  Payload is unmasked in place in the input, and an
 * unfragmented message wholly present in the input is returned in place
 * without copying, so the input bytes must stay untouched until the
 * message has been handled.
 */
int ngx_voice_ws_read(ngx_voice_ws_reader_t *r, unsigned char *in,
    size_t len, size_t *consumed, ngx_voice_ws_msg_t *msg);

/* frame header for a payload of len bytes; mask == NULL: unmasked */
size_t ngx_voice_ws_header(unsigned char *dst, unsigned opcode,
    unsigned fin, uint64_t len, const unsigned char *mask);
size_t ngx_voice_ws_header_len(uint64_t len, unsigned masked);

/* XOR data with mask; offset is the position of data in the payload */
void ngx_voice_ws_mask(unsigned char *data, size_t len,
    const unsigned char *mask, uint64_t offset);

/* whole-buffer UTF-8 check: 1 valid, 0 invalid */
int ngx_voice_utf8_valid(const unsigned char *p, size_t len);

/* RFC 6455 7.4: may this code appear in a Close frame on the wire */
int ngx_voice_ws_close_code_valid(unsigned code);

/* Sec-WebSocket-Accept: base64(SHA-1(key + GUID)), 28 chars, no NUL */
void ngx_voice_ws_accept(unsigned char *dst, const unsigned char *key,
    size_t key_len);

#define NGX_VOICE_WS_ACCEPT_LEN    28


#endif /* _NGX_VOICE_WS_CODEC_H_INCLUDED_ */
