/*
 * Copyright (C) ngx_voice authors
 *
 * What the caller has heard of a bot turn (ngx_voice_heard.c): the
 * ledger built from the TTS alignment, the even-pace estimate without
 * one, and where to resume a turn whose audio was cut.
 */


#include "tap.h"
#include "ngx_voice_heard.h"


#define S(s)  (const unsigned char *) s, sizeof(s) - 1

/* bytes of μ-law per ms */
#define MS    8


static void test_heard_split(void);
static void test_heard_blanks(void);
static void test_heard_clamp(void);
static void test_heard_words_full(void);
static void test_heard_text_full(void);
static void test_heard_lossy(void);
static void test_heard_estimate(void);
static void test_heard_resume(void);
static void test_heard_cut(void);

static void chunk(ngx_voice_el_align_t *a, const char *chars,
    uint32_t ms_per_char);
static size_t heard(ngx_voice_heard_t *h, uint64_t pos,
    const unsigned char **text);


/* one alignment (about 8 KiB: not on the stack) and its characters */
static ngx_voice_el_align_t  test_align;
static char                  test_chars[NGX_VOICE_EL_MAX_CHARS][2];


void
test_heard(void)
{
    tap_diag("heard");

    test_heard_split();
    test_heard_blanks();
    test_heard_clamp();
    test_heard_words_full();
    test_heard_text_full();
    test_heard_lossy();
    test_heard_estimate();
    test_heard_resume();
    test_heard_cut();
}


/* one chunk's alignment: every byte of chars a character of ms each */

static void
chunk(ngx_voice_el_align_t *a, const char *chars, uint32_t ms_per_char)
{
    unsigned  i;

    memset(a, 0, sizeof(ngx_voice_el_align_t));

    a->present = 1;

    for (i = 0; chars[i]; i++) {
        test_chars[i][0] = chars[i];
        test_chars[i][1] = '\0';

        a->c[i].chr = test_chars[i];
        a->c[i].start_ms = i * ms_per_char;
        a->c[i].dur_ms = ms_per_char;
    }

    a->n = i;
    a->total = i;
    a->end_ms = i * ms_per_char;
    a->text_len = i;
}


static size_t
heard(ngx_voice_heard_t *h, uint64_t pos, const unsigned char **text)
{
    *text = NULL;

    return ngx_voice_heard_text(h, pos, text);
}


/*
 * "Hello world" in three chunks of 10 ms a character (80 bytes):
 * "Hel" | "lo wo" | "rld".  "Hello" ends at byte 400 (its "o" in the
 * second chunk), "world" at 880, closed only by heard_end.
 */

static void
test_heard_split(void)
{
    size_t                   n;
    unsigned char            text[64];
    const unsigned char     *t;
    ngx_voice_heard_t        h;
    ngx_voice_heard_word_t   words[8];
    ngx_voice_el_align_t    *a;

    a = &test_align;

    ngx_voice_heard_init(&h, text, sizeof(text), words, 8);

    is(heard(&h, 1000, &t), 0, "nothing voiced: nothing heard");
    ok(!h.aligned, "no alignment yet");

    chunk(a, "Hel", 10);
    ngx_voice_heard_audio(&h, 3 * 10 * MS, a);

    is(h.nwords, 0, "a word cut by the chunk end stays open");
    ok(h.in_word, "in a word");
    is(heard(&h, 240, &t), 0, "half a word is not heard");

    chunk(a, "lo wo", 10);
    ngx_voice_heard_audio(&h, 5 * 10 * MS, a);

    is(h.nwords, 1, "the blank closes the first word");
    is(h.words[0].audio, 400, "its audio ends with its last character");
    is(h.words[0].text, 5, "its text");

    chunk(a, "rld", 10);
    ngx_voice_heard_audio(&h, 3 * 10 * MS, a);

    ok(h.aligned && !h.lossy, "aligned, not lossy");
    is(h.audio, 880, "the turn's audio counted over the chunks");
    is(h.voiced, 10, "ten characters voiced");
    is_mem(h.text, h.text_len, "Hello world", 11, "the voiced text joined");
    is(h.nwords, 1, "the last word is open until the end");
    n = heard(&h, 5000, &t);
    is_mem(t, n, "Hello", 5, "an open last word does not count");

    ngx_voice_heard_end(&h);

    is(h.nwords, 2, "heard_end closes the last word");
    is(h.words[1].audio, 880, "its audio end");
    ngx_voice_heard_end(&h);
    is(h.nwords, 2, "heard_end twice: no empty word");

    is(heard(&h, 0, &t), 0, "position 0: nothing");
    ok(t == text, "*text is the ledger's buffer");
    is(heard(&h, 399, &t), 0, "one byte before the first word's end: nothing");
    n = heard(&h, 400, &t);
    is_mem(t, n, "Hello", 5, "at the first word's end: it counts");
    n = heard(&h, 600, &t);
    is_mem(t, n, "Hello", 5, "inside the second word: the first only");
    n = heard(&h, 879, &t);
    is_mem(t, n, "Hello", 5, "one byte before the end: the first only");
    n = heard(&h, 880, &t);
    is_mem(t, n, "Hello world", 11, "at the end: both");
    n = heard(&h, (uint64_t) 1 << 40, &t);
    is_mem(t, n, "Hello world", 11, "far past the end: both");

    ngx_voice_heard_reset(&h);

    ok(h.text == text && h.words == words && h.text_size == sizeof(text)
       && h.words_size == 8, "reset keeps the buffers");
    ok(h.text_len == 0 && h.nwords == 0 && h.audio == 0 && h.voiced == 0
       && !h.in_word && !h.aligned, "reset clears the turn");
    is(heard(&h, 880, &t), 0, "nothing heard after reset");
}


/* blanks of every kind, several in a row, leading and trailing */

static void
test_heard_blanks(void)
{
    size_t                   n;
    unsigned char            text[64];
    const unsigned char     *t;
    ngx_voice_heard_t        h;
    ngx_voice_heard_word_t   words[8];
    ngx_voice_el_align_t    *a;

    a = &test_align;

    ngx_voice_heard_init(&h, text, sizeof(text), words, 8);

    /* 5 ms (40 bytes) a character */
    chunk(a, "  one \n\n two\t\r three ", 5);
    ngx_voice_heard_audio(&h, 21 * 5 * MS, a);

    is_mem(h.text, h.text_len, "one two three", 13,
           "one space between words, none before or after");
    is(h.nwords, 3, "three words, the last closed by its trailing blank");
    is(h.voiced, 11, "blanks are not voiced characters");
    is(h.words[0].audio, 5 * 5 * MS, "\"one\" ends with its \"e\"");
    is(h.words[2].audio, 20 * 5 * MS, "\"three\" ends with its \"e\"");

    ngx_voice_heard_end(&h);
    is(h.nwords, 3, "heard_end after a trailing blank adds nothing");

    n = heard(&h, 20 * 5 * MS - 1, &t);
    is_mem(t, n, "one two", 7, "before the last word's end");
    n = heard(&h, 20 * 5 * MS, &t);
    is_mem(t, n, "one two three", 13, "at its end");

    /* a second chunk starting with blanks: still one space */
    chunk(a, "\n  four", 5);
    ngx_voice_heard_audio(&h, 7 * 5 * MS, a);
    ngx_voice_heard_end(&h);

    is_mem(h.text, h.text_len, "one two three four", 18,
           "blanks at a chunk's start join the words with one space");
    is(h.words[3].audio, 21 * 5 * MS + 7 * 5 * MS,
       "the word's end counts from the turn's start");

    /* empty characters are skipped (neither blank nor voiced) */
    ngx_voice_heard_reset(&h);
    chunk(a, "ab", 10);
    test_chars[1][0] = '\0';
    ngx_voice_heard_audio(&h, 160, a);
    ngx_voice_heard_end(&h);
    is_mem(h.text, h.text_len, "a", 1, "an empty character is skipped");
    is(h.voiced, 1, "and not voiced");
}


/* alignment past the chunk's audio, multi-byte characters */

static void
test_heard_clamp(void)
{
    size_t                   n;
    unsigned char            text[64];
    const unsigned char     *t;
    ngx_voice_heard_t        h;
    ngx_voice_heard_word_t   words[8];
    ngx_voice_el_align_t    *a;

    a = &test_align;

    ngx_voice_heard_init(&h, text, sizeof(text), words, 8);

    /* "café" claims 400 ms but the chunk has 100 ms of audio */
    chunk(a, "caf", 100);
    a->c[3].chr = "\xc3\xa9";
    a->c[3].start_ms = 300;
    a->c[3].dur_ms = 100;
    a->n = 4;
    ngx_voice_heard_audio(&h, 100 * MS, a);
    ngx_voice_heard_end(&h);

    is(h.words[0].audio, 100 * MS, "a word's end is clamped to its chunk");
    is_mem(h.text, h.text_len, "caf\xc3\xa9", 5,
           "a multi-byte character is copied whole");
    is(h.voiced, 4, "counted as one voiced character");
    n = heard(&h, 100 * MS, &t);
    is_mem(t, n, "caf\xc3\xa9", 5, "heard at the chunk's end");

    /* audio without alignment moves the turn on */
    ngx_voice_heard_audio(&h, 800, NULL);
    is(h.audio, 1600, "audio without an alignment still counts");
}


/*
 * Room for 3 words, 5 spoken ("a b c d e", 10 ms a character): the last
 * slot follows the newest word, so the answer stays a prefix of what
 * was voiced, just coarser.
 */

static void
test_heard_words_full(void)
{
    size_t                   n;
    unsigned char            text[64];
    const unsigned char     *t;
    ngx_voice_heard_t        h;
    ngx_voice_heard_word_t   words[4];
    ngx_voice_el_align_t    *a;

    a = &test_align;

    /* words[3] is a canary */
    words[3].audio = 0xdeadbeef;
    words[3].text = 0xdeadbeef;
    ngx_voice_heard_init(&h, text, sizeof(text), words, 3);

    chunk(a, "a b c d e", 10);
    ngx_voice_heard_audio(&h, 9 * 10 * MS, a);
    ngx_voice_heard_end(&h);

    is(h.nwords, 3, "never more words than the room");
    ok(words[3].audio == 0xdeadbeef && words[3].text == 0xdeadbeef,
       "nothing written past the words buffer");
    is_mem(h.text, h.text_len, "a b c d e", 9, "the text is whole");

    n = heard(&h, 80, &t);
    is_mem(t, n, "a", 1, "first word");
    n = heard(&h, 240, &t);
    is_mem(t, n, "a b", 3, "second word");
    n = heard(&h, 400, &t);
    is_mem(t, n, "a b", 3, "third word's slot was reused: an earlier prefix");
    n = heard(&h, 719, &t);
    is_mem(t, n, "a b", 3, "before the last word's end: still that prefix");
    n = heard(&h, 720, &t);
    is_mem(t, n, "a b c d e", 9, "at the last word's end: everything");
}


/*
 * Room for 8 bytes of text, "alpha beta gamma" voiced: what is heard is
 * whole words of the voiced text, never a word cut by the buffer's end.
 */

static void
test_heard_text_full(void)
{
    size_t                   n, i;
    unsigned char            text[16];
    const unsigned char     *t;
    ngx_voice_heard_t        h;
    ngx_voice_heard_word_t   words[8];
    ngx_voice_el_align_t    *a;

    a = &test_align;

    memset(text, '#', sizeof(text));
    ngx_voice_heard_init(&h, text, 8, words, 8);

    chunk(a, "alpha beta gamma", 10);
    ngx_voice_heard_audio(&h, 16 * 10 * MS, a);
    ngx_voice_heard_end(&h);

    ok(h.text_len <= 8, "the text stays within its buffer");

    for (i = 8; i < sizeof(text) && text[i] == '#'; i++) {
        /* void */
    }

    is(i, sizeof(text), "nothing written past the text buffer");
    is(h.voiced, 14, "every character is still counted as voiced");

    n = heard(&h, 50 * MS, &t);
    is_mem(t, n, "alpha", 5, "the first word, whole");

    n = heard(&h, 16 * 10 * MS, &t);
    ok(n <= h.text_len, "never more than the stored text");
    is_mem(t, n, "alpha", 5,
           "all played: only the words that fit, no partial \"be\"");
}


/* a truncated alignment (more characters than the parser keeps) */

static void
test_heard_lossy(void)
{
    size_t                   n;
    unsigned char            text[64];
    const unsigned char     *t;
    ngx_voice_heard_t        h;
    ngx_voice_heard_word_t   words[8];
    ngx_voice_el_align_t    *a;

    a = &test_align;

    ngx_voice_heard_init(&h, text, sizeof(text), words, 8);

    chunk(a, "one two", 10);
    a->total = 600;
    a->truncated = 1;
    ngx_voice_heard_audio(&h, 600 * 10 * MS, a);

    ok(h.aligned, "aligned");
    ok(h.lossy, "a truncated alignment makes the ledger lossy");
    is(h.audio, 600 * 10 * MS, "the whole chunk's audio counts");
    ngx_voice_heard_end(&h);
    n = heard(&h, 600 * 10 * MS, &t);
    is_mem(t, n, "one two", 7, "the stored characters are still heard");

    /* the next chunk is complete: lossy stays */
    chunk(a, " three", 10);
    ngx_voice_heard_audio(&h, 6 * 10 * MS, a);
    ok(h.lossy, "lossy for the rest of the turn");

    ngx_voice_heard_reset(&h);
    ok(!h.lossy, "reset clears lossy");

    /* an alignment that is not present is no alignment */
    chunk(a, "x", 10);
    a->present = 0;
    ngx_voice_heard_audio(&h, 80, a);
    ok(!h.aligned && h.text_len == 0 && h.audio == 80,
       "alignment not present: audio only");
}


static void
test_heard_estimate(void)
{
    /* "hello world again": 17 bytes over 1700 bytes of audio */
    static const unsigned char  text[] = "hello world again";
    static const unsigned char  blanks[] = "hello world  \n";

    is(ngx_voice_heard_estimate(S("hello world again"), 0, 1700), 0,
       "position 0: nothing");
    is(ngx_voice_heard_estimate(S("hello world again"), 900, 0), 0,
       "no audio: nothing");
    is(ngx_voice_heard_estimate(text, 0, 100, 1700), 0, "no text: nothing");

    is(ngx_voice_heard_estimate(S("hello world again"), 400, 1700), 0,
       "inside the first word: nothing");
    is(ngx_voice_heard_estimate(S("hello world again"), 500, 1700), 5,
       "at the first word's end: \"hello\"");
    is(ngx_voice_heard_estimate(S("hello world again"), 600, 1700), 5,
       "at the second word's start: \"hello\"");
    is(ngx_voice_heard_estimate(S("hello world again"), 800, 1700), 5,
       "mid-word snaps back to the previous word's end");
    is(ngx_voice_heard_estimate(S("hello world again"), 1100, 1700), 11,
       "at the second word's end: \"hello world\"");
    is(ngx_voice_heard_estimate(S("hello world again"), 1699, 1700), 11,
       "one byte short of the end: the last word is not heard");
    is(ngx_voice_heard_estimate(S("hello world again"), 1700, 1700), 17,
       "pos == total: all");
    is(ngx_voice_heard_estimate(S("hello world again"), 99999, 1700), 17,
       "pos > total: all");

    is(ngx_voice_heard_estimate(S("hello world  \n"), 1400, 1400), 11,
       "all heard: trailing blanks dropped");
    is(ngx_voice_heard_estimate(blanks, sizeof(blanks) - 1, 1200, 1400), 11,
       "in the trailing blanks: the words, without the blanks");
    is(ngx_voice_heard_estimate(S("hello   world"), 700, 1300), 5,
       "in the blanks between words: the words before, no blank");
    is(ngx_voice_heard_estimate(S("  \n "), 400, 400), 0,
       "only blanks: nothing");
    is(ngx_voice_heard_estimate(S("supercalifragilistic"), 1900, 2000), 0,
       "one long word not finished: nothing");
}


static void
test_heard_resume(void)
{
    is(ngx_voice_heard_resume(S("hello world again"), 0), 0,
       "nothing voiced: from the start");
    is(ngx_voice_heard_resume(S("  hello world"), 0), 2,
       "nothing voiced: from the first word, leading blanks skipped");
    is(ngx_voice_heard_resume(S("hello world again"), 3), 0,
       "inside the first word: from its start");
    is(ngx_voice_heard_resume(S("hello world again"), 5), 6,
       "first word voiced exactly: the second word's start");
    is(ngx_voice_heard_resume(S("hello world again"), 7), 6,
       "mid-word: that word's start");
    is(ngx_voice_heard_resume(S("hello world again"), 10), 12,
       "two words voiced exactly: the third word's start");
    is(ngx_voice_heard_resume(S("hello  \n world"), 5), 9,
       "several blanks: the next word's start");
    is(ngx_voice_heard_resume(S("hello world again"), 15), 17,
       "all voiced: len");
    is(ngx_voice_heard_resume(S("hello world again"), 1000), 17,
       "more than voiced: len");
    is(ngx_voice_heard_resume(S("hello world "), 10), 12,
       "all voiced, trailing blank: len");
    is(ngx_voice_heard_resume(S("hello world"), 9), 6,
       "last word not finished: its start");
    is(ngx_voice_heard_resume((const unsigned char *) "", 0, 0), 0,
       "no text: 0");
}


/* a drop inside a word: the word is voiced again from its start */

static void
test_heard_cut(void)
{
    size_t                   n;
    unsigned char            text[64];
    const unsigned char     *t;
    ngx_voice_heard_t        h;
    ngx_voice_heard_word_t   words[8];
    ngx_voice_el_align_t    *a;

    a = &test_align;

    ngx_voice_heard_init(&h, text, sizeof(text), words, 8);

    chunk(a, "Yes, the", 10);
    ngx_voice_heard_audio(&h, 8 * 10 * MS, a);

    ok(h.in_word, "cut inside \"there\"");
    is(h.voiced, 7, "seven characters voiced");

    ngx_voice_heard_cut(&h);

    ok(!h.in_word, "the open word is forgotten");
    is(h.voiced, 7 - 3, "its characters are no longer voiced");
    is_mem(h.text, h.text_len, "Yes,", 4, "the text ends with the last whole word");
    is(ngx_voice_heard_resume(S("Yes, there is"), h.voiced), 5,
       "the resend starts at the cut word");
    is(ngx_voice_heard_nonblank(S(" Yes,\tthere\n is ")), 11,
       "nonblank counts what voiced counts");

    ngx_voice_heard_cut(&h);
    is(h.voiced, 4, "a second cut with no open word changes nothing");

    chunk(a, "there is", 10);
    ngx_voice_heard_audio(&h, 8 * 10 * MS, a);
    ngx_voice_heard_end(&h);

    is_mem(h.text, h.text_len, "Yes, there is", 13,
           "the resent words follow, no \"thethere\"");
    n = heard(&h, h.audio, &t);
    is_mem(t, n, "Yes, there is", 13, "all heard at the end");
}
