/*
 * Copyright (C) ngx_voice authors
 *
 * What the caller has heard of one bot turn.  The text-to-speech
 * alignment says which characters each audio chunk voices and when; the
 * ledger keeps the voiced text and, for every word, the byte of the
 * turn's audio at which it has been spoken in full.  Given how far
 * Twilio has played the turn (mark echoes), it answers with the words
 * heard, never one that was cut off.  Without an alignment (Deepgram
 * Aura) the text is apportioned to the audio.  nginx-free; the caller
 * provides the buffers, nothing is allocated.
 */


#ifndef _NGX_VOICE_HEARD_H_INCLUDED_
#define _NGX_VOICE_HEARD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_voice_elevenlabs.h"


typedef struct {
    uint32_t              audio;      /* turn audio through the word */
    uint32_t              text;       /* voiced text through the word */
} ngx_voice_heard_word_t;


typedef struct {
    unsigned char        *text;       /* voiced text, words one space
                                         apart */
    size_t                text_len;
    size_t                text_size;
    ngx_voice_heard_word_t  *words;
    size_t                nwords;
    size_t                words_size;

    uint64_t              audio;      /* the turn's audio so far */
    uint64_t              word_audio; /* the open word's end */
    size_t                voiced;     /* non-blank characters voiced */
    size_t                word_chars; /* of them, the open word's */
    unsigned              in_word:1;  /* a word not yet closed */
    unsigned              aligned:1;  /* some alignment came */
    unsigned              lossy:1;    /* alignment was truncated */
    unsigned              full:1;     /* text buffer full: no more words */
} ngx_voice_heard_t;


void ngx_voice_heard_init(ngx_voice_heard_t *h, unsigned char *text,
    size_t text_size, ngx_voice_heard_word_t *words, size_t words_size);
void ngx_voice_heard_reset(ngx_voice_heard_t *h);

/* len bytes of the turn's audio, voicing the alignment's characters */
void ngx_voice_heard_audio(ngx_voice_heard_t *h, size_t len,
    const ngx_voice_el_align_t *a);

/* the turn's audio is complete: its last word is whole */
void ngx_voice_heard_end(ngx_voice_heard_t *h);

/*
 * The audio stopped inside a word that will be voiced again (the TTS
 * socket dropped): the open word is forgotten, text and voiced count.
 */
void ngx_voice_heard_cut(ngx_voice_heard_t *h);

/*
 * The voiced text of the words whose audio ends at or before byte pos
 * of the turn: *text and the length.  0 when no alignment came (use
 * ngx_voice_heard_estimate) or nothing was heard.
 */
size_t ngx_voice_heard_text(const ngx_voice_heard_t *h, uint64_t pos,
    const unsigned char **text);

/*
 * Without an alignment: the whole words of text (len bytes, spoken over
 * total bytes of audio at an even pace) heard by byte pos.
 */
size_t ngx_voice_heard_estimate(const unsigned char *text, size_t len,
    uint64_t pos, uint64_t total);

/*
 * Where to resume text (len bytes) once `voiced` of its non-blank
 * characters have been synthesised: the start of the first word not
 * voiced in full (len when all were).
 */
size_t ngx_voice_heard_resume(const unsigned char *text, size_t len,
    size_t voiced);

/* the non-blank characters of text: what "voiced" counts */
size_t ngx_voice_heard_nonblank(const unsigned char *text, size_t len);


#endif /* _NGX_VOICE_HEARD_H_INCLUDED_ */
