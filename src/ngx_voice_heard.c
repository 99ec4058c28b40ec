/*
 * Copyright (C) ngx_voice authors
 *
 * What the caller has heard of one bot turn: see ngx_voice_heard.h.
 */


#include <string.h>

#include "ngx_voice_heard.h"


#define ngx_voice_heard_blank(c)                                             \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')


static void ngx_voice_heard_close(ngx_voice_heard_t *h);


void
ngx_voice_heard_init(ngx_voice_heard_t *h, unsigned char *text,
    size_t text_size, ngx_voice_heard_word_t *words, size_t words_size)
{
    memset(h, 0, sizeof(ngx_voice_heard_t));

    h->text = text;
    h->text_size = text_size;
    h->words = words;
    h->words_size = words_size;
}


void
ngx_voice_heard_reset(ngx_voice_heard_t *h)
{
    ngx_voice_heard_init(h, h->text, h->text_size, h->words, h->words_size);
}


void
ngx_voice_heard_audio(ngx_voice_heard_t *h, size_t len,
    const ngx_voice_el_align_t *a)
{
    size_t          n;
    uint64_t        end;
    unsigned        i;
    const char     *c;

    if (a == NULL || !a->present) {
        h->audio += len;
        return;
    }

    h->aligned = 1;

    if (a->truncated) {
        h->lossy = 1;
    }

    for (i = 0; i < a->n; i++) {
        c = a->c[i].chr;

        if (c[0] == '\0') {
            continue;
        }

        if (ngx_voice_heard_blank((unsigned char) c[0])) {
            ngx_voice_heard_close(h);
            continue;
        }

        /* one space between words, whatever the provider sent */
        if (!h->in_word && !h->full && h->text_len) {
            if (h->text_len == h->text_size) {
                h->full = 1;

            } else {
                h->text[h->text_len++] = ' ';
            }
        }

        n = strlen(c);

        if (h->full || n > h->text_size - h->text_len) {
            /* the heard text stays whole words: drop the cut one */
            if (!h->full) {
                h->full = 1;
                h->in_word = 0;
                h->text_len = h->nwords ? h->words[h->nwords - 1].text : 0;
            }

            h->voiced++;
            continue;
        }

        memcpy(h->text + h->text_len, c, n);
        h->text_len += n;

        end = (uint64_t) a->c[i].start_ms + a->c[i].dur_ms;
        end = h->audio + (end * 8 < len ? end * 8 : len);

        if (!h->in_word) {
            h->word_chars = 0;
        }

        h->word_audio = end;
        h->in_word = 1;
        h->voiced++;
        h->word_chars++;
    }

    h->audio += len;
}


void
ngx_voice_heard_end(ngx_voice_heard_t *h)
{
    ngx_voice_heard_close(h);
}


void
ngx_voice_heard_cut(ngx_voice_heard_t *h)
{
    if (!h->in_word) {
        return;
    }

    h->in_word = 0;
    h->voiced -= h->word_chars;
    h->word_chars = 0;
    h->text_len = h->nwords ? h->words[h->nwords - 1].text : 0;
}


static void
ngx_voice_heard_close(ngx_voice_heard_t *h)
{
    ngx_voice_heard_word_t  *w;

    if (!h->in_word) {
        return;
    }

    h->in_word = 0;

    if (h->nwords == h->words_size) {
        /* the last slot follows the turn: the heard text stays a prefix */
        h->nwords--;
    }

    w = &h->words[h->nwords++];
    w->audio = (uint32_t) h->word_audio;
    w->text = (uint32_t) h->text_len;
}


size_t
ngx_voice_heard_text(const ngx_voice_heard_t *h, uint64_t pos,
    const unsigned char **text)
{
    size_t  lo, hi, mid;

    *text = h->text;

    /* words end in order: the last one whose audio was played in full */
    lo = 0;
    hi = h->nwords;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (h->words[mid].audio <= pos) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return lo ? h->words[lo - 1].text : 0;
}


size_t
ngx_voice_heard_estimate(const unsigned char *text, size_t len,
    uint64_t pos, uint64_t total)
{
    size_t  n;

    if (total == 0 || pos == 0) {
        return 0;
    }

    if (pos >= total) {
        n = len;

    } else {
        n = (size_t) ((uint64_t) len * pos / total);

        /* a word counts once its end was reached */
        if (n < len && !ngx_voice_heard_blank(text[n])) {
            while (n && !ngx_voice_heard_blank(text[n - 1])) {
                n--;
            }
        }
    }

    while (n && ngx_voice_heard_blank(text[n - 1])) {
        n--;
    }

    return n;
}


size_t
ngx_voice_heard_resume(const unsigned char *text, size_t len, size_t voiced)
{
    size_t  i, word;

    word = 0;

    for (i = 0; i < len; i++) {
        if (ngx_voice_heard_blank(text[i])) {
            continue;
        }

        if (i == 0 || ngx_voice_heard_blank(text[i - 1])) {
            word = i;
        }

        if (voiced == 0) {
            return word;
        }

        voiced--;
    }

    return len;
}


size_t
ngx_voice_heard_nonblank(const unsigned char *text, size_t len)
{
    size_t  i, n;

    for (i = 0, n = 0; i < len; i++) {
        if (!ngx_voice_heard_blank(text[i])) {
            n++;
        }
    }

    return n;
}
