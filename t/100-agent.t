# voice_pipeline agent: the whole conversation through real module
# behaviour.  Each scenario has its own provider simulators (the LLM
# simulator's reply counter is per run), its own nginx and its own
# scripted Twilio caller; the calls run side by side in one event loop
# (they are real time: espeak speech, played out at 8000 bytes/s), then
# each is checked from three sides: the caller's summary (what Twilio
# saw: clears, marks, what was heard), the simulators' logs (what the
# providers were sent) and the module's call record (voice_call_record).
#
# Assertions are on order and content, never on latencies: every
# timing-dependent scenario has seconds of margin on a loaded machine.
# TEST_VOICE_KEEP=1 keeps the files (logs, records, recordings).

use strict;
use warnings;

use Test::More;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json);
use Time::HiRes qw(sleep time);
use lib 't/lib', 'tools/lib';
use VoiceTest::Nginx;
use VoiceTest::Agent;
use VoiceSim::Sim;
use VoiceSim::Caller;
use VoiceSim::Script;
use VoiceSim::Speech;

my $dir = tempdir(CLEANUP => !$ENV{TEST_VOICE_KEEP});

# a long greeting: the caller speaks over it
my $LONG_GREETING = 'Hello, thank you for calling Bella\'s restaurant, the '
                  . 'home of fresh pasta by the river. How can I help you today?';

# a long reply, streamed slowly (llm.token_ms 150: about 6 s of tokens)
my $LONG_REPLY = 'Our menu changes with the seasons, and tonight we have fresh '
               . 'pasta with wild mushrooms, a slow roasted lamb shoulder with '
               . 'rosemary potatoes, grilled sea bass with lemon butter, and for '
               . 'dessert a dark chocolate tart with vanilla cream and berries.';

# about 6 s of speech, streamed at the default pace
my $WINE_REPLY = 'We have a lovely house red from Tuscany, a crisp white from '
               . 'the Loire valley, and a sparkling rose that goes well with fish.';

# ---- helpers for the checks ------------------------------------------------

# the system prompt as the module evaluates it for a caller
sub prompt_for {
    (my $p = $PROMPT) =~ s/\$voice_param_caller/$_[0]/;
    return $p;
}

# ElevenLabs: the text sent in each context, in the order contexts opened
sub tts_texts {
    my ($sim) = @_;
    my (@order, %text, %msgs);
    for my $r ($sim->records('tts', ev => 'recv')) {
        my $j = $r->{json} or next;
        my $id = $j->{context_id} // next;
        push @order, $id unless exists $msgs{$id};
        push @{ $msgs{$id} }, $j;
        $text{$id} .= $j->{text} if defined $j->{text} && $j->{text} ne ' ';
    }
    return (\@order, \%text, \%msgs);
}


# ---- the scenarios ---------------------------------------------------------

my @S;

# 1. the greeting is interruptible (the default): the caller barges in,
#    the LLM's history holds only the words of it that were heard
push @S, {
    name => 'greeting barge-in', tls => 1,
    greeting => $LONG_GREETING,
    script => <<'END',
barge: 1500 | Can I book a table please?
reply: Certainly, for how many people?
wait: bot
hangup
END
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 1, 'the caller received one clear');
        ok($sum->{bot_turns}[0]{cleared}, 'the greeting as heard was cleared');
        my ($g) = entries($rec, role => 'assistant', kind => 'greeting');
        ok($g && $g->{interrupted}, 'record: the greeting was interrupted');
        is(squash($g->{spoken}), $LONG_GREETING, 'record: the whole greeting was spoken');
        ok(strict_word_prefix($g->{text}, $LONG_GREETING),
           'record: what was heard is a strict word prefix of the greeting')
            or diag "heard: \"$g->{text}\"";
        my @rq = llm_requests($sim);
        is(scalar @rq, 1, 'one LLM request');
        is_deeply(messages($rq[0]),
                  [ [ system => prompt_for('Dana') ],
                    [ assistant => $g->{text} ],
                    [ user => 'Can I book a table please?' ] ],
                  'the LLM got the heard part of the greeting, not all of it');
        is_deeply(transcript($rec),
                  [ [ assistant => 'greeting', squash($g->{text}) ],
                    [ user => '', 'Can I book a table please?' ],
                    [ assistant => 'reply', 'Certainly, for how many people?' ] ],
                  'record: the transcript');
        is($rec->{counts}{barge_ins}, 1, 'record: one barge-in');
        ok($sum->{bot_turns}[1] && !$sum->{bot_turns}[1]{cleared},
           'the answer was heard, not cleared');
    },
};

# 2. voice_greeting_interruptible off: the caller's words during the
#    greeting are answered after it, nothing is cleared
push @S, {
    name => 'greeting not interruptible', tls => 0,
    greeting => $LONG_GREETING,
    extra => 'voice_greeting_interruptible off;',
    # "wait: bot" would end with the greeting; a fixed wait lets the
    # answer come (it starts some 0.5 s after the greeting's end)
    script => <<'END',
barge: 800 | A table for two please.
reply: Sure, a table for two it is.
wait: 8000
hangup
END
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 0, 'no clear');
        ok(!grep({ $_->{cleared} } @{ $sum->{bot_turns} }), 'no bot turn cleared');
        my ($g) = entries($rec, role => 'assistant', kind => 'greeting');
        ok($g && !$g->{interrupted}, 'record: the greeting was not interrupted');
        is(squash($g->{text}), $LONG_GREETING, 'record: heard in full');
        my ($u) = entries($rec, role => 'user', turn => 1);
        ok($u && $u->{t_ms} < $g->{t_ms},
           'the caller\'s turn ended while the greeting played');
        my $t = turn_timing($rec, 1);
        ok($t && defined $t->{timings_ms}{llm_request}
           && $t->{timings_ms}{llm_request} >= $g->{t_ms},
           'the LLM was asked only once the greeting had been heard')
            or diag explain [ $g, $t ];
        my @rq = llm_requests($sim);
        is(scalar @rq, 1, 'one LLM request');
        is_deeply(messages($rq[0]),
                  [ [ system => prompt_for('Dana') ],
                    [ assistant => $LONG_GREETING ],
                    [ user => 'A table for two please.' ] ],
                  'the history holds the whole greeting');
        ok(scalar(grep { ($_->{text} // '') eq 'Sure, a table for two it is.' }
                  $sim->records('tts', ev => 'generate')),
           'the answer was spoken');
        cmp_ok(scalar @{ $sum->{bot_turns} }, '>=', 2,
               'the caller heard the answer after the greeting');
        is($rec->{counts}{barge_ins}, 0, 'record: no barge-in');
    },
};

# 3. three turns: the history turn by turn, every reply spoken, the
#    record's transcript and timings
my @CONV = (
    [ 'I would like a table for two.' => 'Sure, for what time?' ],
    [ 'Tomorrow at seven please.' => 'Done. See you tomorrow at seven.' ],
    [ 'Thank you, goodbye.' => 'Goodbye, Alex!' ],
);
my $SHORT_GREETING = 'Hi $voice_param_caller, this is Bella\'s. How can I help?';
(my $SHORT_GREETING_ALEX = $SHORT_GREETING) =~ s/\$voice_param_caller/Alex/;
push @S, {
    name => 'three turns', tls => 1,
    params => { caller => 'Alex' },
    greeting => $SHORT_GREETING,
    sim_config => { llm => { ttft_ms => 60, token_ms => 15 } },
    script => "wait: bot\n"
            . join('', map { "say: $_->[0]\nreply: $_->[1]\nwait: bot\n" } @CONV)
            . "hangup\n",
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 0, 'no clear');
        my @rq = llm_requests($sim);
        is(scalar @rq, 3, 'three LLM requests');
        my @want = ([ system => prompt_for('Alex') ],
                    [ assistant => $SHORT_GREETING_ALEX ]);
        for my $i (0 .. 2) {
            push @want, [ user => $CONV[$i][0] ];
            is_deeply(messages($rq[$i]), \@want,
                      'request ' . ($i + 1) . ': system prompt ($voice_param_caller), '
                      . 'greeting, then the conversation so far');
            push @want, [ assistant => $CONV[$i][1] ];
        }
        my ($order, $text) = tts_texts($sim);
        is_deeply([ map { squash($text->{$_}) } @$order ],
                  [ $SHORT_GREETING_ALEX, map { $_->[1] } @CONV ],
                  'TTS: one context per bot turn with its whole text');
        is_deeply($order, [ map { "turn-$_" } 1 .. 4 ], 'TTS contexts turn-1..turn-4');
        is_deeply(transcript($rec),
                  [ [ assistant => 'greeting', $SHORT_GREETING_ALEX ],
                    map { ([ user => '', $_->[0] ], [ assistant => 'reply', $_->[1] ]) } @CONV ],
                  'record: the transcript in order');
        ok(!grep({ $_->{interrupted} } @{ $rec->{transcript} }), 'record: nothing interrupted');
        is($rec->{call_sid}, $sum->{call_sid}, 'record: the CallSid');
        is($rec->{stream_sid}, $sum->{stream_sid}, 'record: the StreamSid');
        is($rec->{account_sid}, $sum->{account_sid}, 'record: the AccountSid');
        is_deeply($rec->{params}, { caller => 'Alex' }, 'record: the custom parameters');
        is($rec->{end_reason}, 'caller hung up', 'record: end reason');
        is_deeply([ map { $_->{turn} } @{ $rec->{turns} } ], [ 0, 1, 2, 3 ],
                  'record: timings for the greeting and the three turns');
        timings_in_order(turn_timing($rec, $_), "turn $_") for 1 .. 3;
        my %c = %{ $rec->{counts} || {} };
        is_deeply({ map { $_ => $c{$_} } qw(turns barge_ins backchannels llm_errors apologies clears) },
                  { turns => 3, barge_ins => 0, backchannels => 0, llm_errors => 0,
                    apologies => 0, clears => 0 },
                  'record: counts');
        is($rec->{usage}{llm_requests}, 3, 'record: three LLM requests');
        cmp_ok($rec->{usage}{completion_tokens}, '>', 0, 'record: completion tokens counted');
        cmp_ok($c{marks_sent}, '>', 0, 'record: marks sent');
        is($c{marks_echoed}, $c{marks_sent}, 'record: every mark echoed');
        my @bad = grep { $_->{name} !~ /^b\d+-\d+$/ } @{ $sum->{marks} };
        ok(!@bad, 'marks are named b<seq>-<bytes>') or diag explain \@bad;
        my %seqs = map { /^b(\d+)-/ ? ($1 => 1) : () } map { $_->{name} } @{ $sum->{marks} };
        is_deeply([ sort { $a <=> $b } keys %seqs ], [ 1 .. 4 ], 'one mark sequence per bot turn');
        ok($sum->{ok}, 'the call went through its whole script');
    },
};

# 4. barge-in on a long reply still streaming: clear, the LLM request
#    abandoned, the TTS context closed, the heard words kept
push @S, {
    name => 'barge-in', tls => 1,
    sim_config => { llm => { ttft_ms => 100, token_ms => 150 } },
    script => <<"END",
wait: 600
say: Tell me about your menu.
reply: $LONG_REPLY
barge: 1000 | Sorry, do you have vegan dishes?
reply: Yes, we have several vegan dishes.
wait: bot
hangup
END
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 1, 'Twilio received a clear');
        my ($dis) = grep { $_->{n} == 1 } $sim->records('llm', ev => 'client_disconnected');
        ok($dis, 'the LLM simulator saw the interrupted request abandoned');
        ok($dis && $dis->{tokens_sent} < $dis->{tokens_total},
           'while its reply was still streaming')
            or diag explain $dis;
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'two LLM requests');
        ok((grep { $_->{n} == 2 } $sim->records('llm', ev => 'stream_done')),
           'the next request was answered in full');
        my ($order, $text, $msgs) = tts_texts($sim);
        my $cx = $order->[0];
        ok($cx && (grep { $_->{close_context} } @{ $msgs->{$cx} }),
           "TTS: the interrupted turn's context ($cx) was closed");
        ok($cx && !(grep { $_->{flush} } @{ $msgs->{$cx} }),
           'TTS: before its text was complete (no flush)');
        ok((grep { ($_->{context_id} // '') eq ($cx // '') } $sim->records('tts', ev => 'context_closed')),
           'TTS: the simulator closed the context');
        my $m = messages($rq[1]);
        is(scalar @$m, 4, 'request 2: system, user, assistant, user');
        is_deeply([ map { $_->[0] } @$m ], [ qw(system user assistant user) ], 'request 2: roles');
        my $heard = $m->[2][1];
        ok(strict_word_prefix($heard, $LONG_REPLY),
           'request 2: the assistant message is a non-empty word prefix of the '
           . 'interrupted reply, shorter than it') or diag "heard: \"$heard\"";
        is($m->[3][1], 'Sorry, do you have vegan dishes?', 'request 2: the new turn');
        my ($r) = entries($rec, role => 'assistant', turn => 1);
        ok($r && $r->{interrupted}, 'record: the reply was interrupted');
        is($r->{text}, $heard, 'record: the heard text is the history\'s message');
        is($rec->{counts}{barge_ins}, 1, 'record: one barge-in');
        my $t = turn_timing($rec, 1);
        ok($t && $t->{interrupted}, 'record: turn 1 timing marked interrupted');
        my ($r2) = entries($rec, role => 'assistant', turn => 2);
        ok($r2 && !$r2->{interrupted}
           && squash($r2->{text}) eq 'Yes, we have several vegan dishes.',
           'record: the answer to the barge-in was heard in full');
    },
};

# 5. a backchannel during a long reply does not interrupt it...
my $BACKCHANNEL = <<"END";
wait: 600
say: What wines do you have?
reply: $WINE_REPLY
backchannel: 900 | uh-huh
reply: Sorry, did you want to say something?
wait: bot
wait: 1500
hangup
END
push @S, {
    name => 'backchannel', tls => 0,
    script => $BACKCHANNEL,
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 0, 'no clear');
        ok(!defined $sum->{caller_turns}[1]{clear_ms}, 'the backchannel caused no clear');
        is(scalar(llm_requests($sim)), 1, 'no LLM request for the backchannel');
        is($rec->{counts}{backchannels}, 1, 'record: one backchannel');
        is($rec->{counts}{barge_ins}, 0, 'record: no barge-in');
        my @b = entries($rec, role => 'user', kind => 'backchannel');
        is(scalar @b, 1, 'record: a backchannel entry');
        is(squash($b[0]{text}), 'uh-huh', 'record: its text');
        my ($r) = entries($rec, role => 'assistant', turn => 1);
        ok($r && !$r->{interrupted} && squash($r->{text}) eq $WINE_REPLY,
           'record: the reply was heard in full');
        is($rec->{counts}{turns}, 1, 'record: one caller turn');
    },
};

# ... and with voice_backchannel off the same words do
push @S, {
    name => 'backchannel off', tls => 0,
    script => $BACKCHANNEL,
    extra => 'voice_backchannel off;',
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 1, 'the "uh-huh" cleared the reply');
        ok(defined $sum->{caller_turns}[1]{clear_ms}, 'the clear followed the "uh-huh"');
        is($rec->{counts}{backchannels}, 0, 'record: no backchannel');
        is($rec->{counts}{barge_ins}, 1, 'record: one barge-in');
        my ($r) = entries($rec, role => 'assistant', turn => 1);
        ok($r && $r->{interrupted}, 'record: the reply was interrupted');
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'the "uh-huh" was a turn of its own');
        is($rq[1]{json}{messages}[-1]{content}, 'uh-huh', 'sent to the LLM');
    },
};

# 6. voice_barge_in off: the caller's words wait for the bot's turn
push @S, {
    name => 'barge-in off', tls => 0,
    extra => 'voice_barge_in off;',
    script => <<"END",
wait: 600
say: What wines do you have?
reply: $WINE_REPLY
barge: 1000 | And beers?
reply: We have three local beers.
wait: 9000
hangup
END
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 0, 'no clear');
        my ($r) = entries($rec, role => 'assistant', turn => 1);
        ok($r && !$r->{interrupted}, 'record: the reply was not interrupted');
        is(squash($r->{text}), $WINE_REPLY, 'record: heard in full');
        my ($u) = entries($rec, role => 'user', turn => 2);
        ok($u && $u->{t_ms} < $r->{t_ms}, 'the caller spoke while the bot did');
        my $t = turn_timing($rec, 2);
        ok($t && defined $t->{timings_ms}{llm_request}
           && $t->{timings_ms}{llm_request} >= $r->{t_ms},
           'the caller\'s turn went to the LLM after the bot\'s turn was heard')
            or diag explain [ $r, $t ];
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'two LLM requests');
        is(scalar($sim->records('llm', ev => 'client_disconnected')), 0,
           'no LLM request abandoned');
        is_deeply(messages($rq[1]),
                  [ [ system => prompt_for('Dana') ],
                    [ user => 'What wines do you have?' ],
                    [ assistant => $WINE_REPLY ],
                    [ user => 'And beers?' ] ],
                  'request 2: the whole reply in the history');
        ok(scalar(grep { ($_->{text} // '') eq 'We have three local beers.' }
                  $sim->records('tts', ev => 'generate')),
           'the answer was spoken');
        is($rec->{counts}{barge_ins}, 0, 'record: no barge-in');
    },
};

# voice_barge_in_min_words 3: one word over the bot does not cut it
push @S, {
    name => 'min words 3', tls => 0,
    extra => 'voice_barge_in_min_words 3;',
    script => <<"END",
wait: 600
say: What wines do you have?
reply: $WINE_REPLY
barge: 1000 | Stop.
reply: Of course.
wait: 9000
hangup
END
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 0, 'a one-word turn does not clear');
        my ($r) = entries($rec, role => 'assistant', turn => 1);
        ok($r && !$r->{interrupted}, 'record: the reply was not interrupted');
        is($rec->{counts}{barge_ins}, 0, 'record: no barge-in');
        is(scalar(llm_requests($sim)), 2, 'the one word was answered after the reply');
    },
};

# voice_barge_in_min_words 0: SpeechStarted alone interrupts, even "uh-huh"
push @S, {
    name => 'min words 0', tls => 0,
    extra => 'voice_barge_in_min_words 0;',
    script => $BACKCHANNEL,
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 1, 'the voice alone cleared the reply');
        like($s->{srv}->error_log, qr/voice: barge-in \(speech started\): agent turn 1 interrupted/,
             'on SpeechStarted');
        is($rec->{counts}{barge_ins}, 1, 'record: one barge-in');
        my ($r) = entries($rec, role => 'assistant', turn => 1);
        ok($r && $r->{interrupted}, 'record: the reply was interrupted');
    },
};

# 7. voice_tts_chunking sentence: text goes to TTS a sentence at a time
my $SENTENCES = 'Our wines are lovely. We have reds and whites! '
              . 'Would you like the list? Just ask the waiter.';
push @S, {
    name => 'sentence chunking', tls => 0,
    extra => 'voice_tts_chunking sentence;',
    sim_config => { llm => { ttft_ms => 60, token_ms => 40 } },
    script => <<"END",
wait: 600
say: What wines do you have?
reply: $SENTENCES
wait: bot
hangup
END
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        my ($order, $text, $msgs) = tts_texts($sim);
        is(squash($text->{ $order->[0] }), $SENTENCES, 'TTS: the whole reply');
        my @chunks = grep { $_ ne ' ' } map { $_->{text} // () } @{ $msgs->{ $order->[0] } };
        cmp_ok(scalar @chunks, '>=', 2, 'TTS: sent in several messages') or diag explain \@chunks;
        my @bad = grep { !/[.!?]\s*\z/ } @chunks;
        ok(!@bad, 'TTS: each text message ends at a sentence boundary')
            or diag explain \@chunks;
        my ($r) = entries($rec, role => 'assistant', turn => 1);
        ok($r && !$r->{interrupted} && squash($r->{text}) eq $SENTENCES,
           'record: the reply was heard in full');
        ok($sum->{ok}, 'the call went through its whole script');
    },
};

# 8. Deepgram Aura speaks: a greeting and two turns
my @AURA = (
    [ 'Do you open on Sundays?' => 'Yes, from noon until ten.' ],
    [ 'Great, thank you.' => 'You are welcome, goodbye.' ],
);
push @S, {
    name => 'aura', tls => 1, aura => 1,
    greeting => 'Hello, Bella\'s restaurant.',
    sim_config => { llm => { ttft_ms => 60, token_ms => 15 } },
    script => "wait: bot\n"
            . join('', map { "say: $_->[0]\nreply: $_->[1]\nwait: bot\n" } @AURA)
            . "hangup\n",
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is($sum->{counts}{clears}, 0, 'no clear');
        ok(scalar(grep { $_->{ev} eq 'connect' } $sim->records('aura')),
           'the Aura simulator was used');
        is(scalar(grep { $_->{ev} eq 'connect' } $sim->records('tts')), 0,
           'ElevenLabs was not');
        my @gen = map { squash($_->{text}) } $sim->records('aura', ev => 'generate');
        is_deeply(\@gen, [ 'Hello, Bella\'s restaurant.', map { $_->[1] } @AURA ],
                  'Aura: the greeting and each reply synthesised, in order');
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'two LLM requests');
        is_deeply(messages($rq[1]),
                  [ [ system => prompt_for('Dana') ],
                    [ assistant => 'Hello, Bella\'s restaurant.' ],
                    [ user => $AURA[0][0] ], [ assistant => $AURA[0][1] ],
                    [ user => $AURA[1][0] ] ],
                  'request 2: the history');
        is_deeply(transcript($rec),
                  [ [ assistant => 'greeting', 'Hello, Bella\'s restaurant.' ],
                    map { ([ user => '', $_->[0] ], [ assistant => 'reply', $_->[1] ]) } @AURA ],
                  'record: the transcript');
        timings_in_order(turn_timing($rec, $_), "aura turn $_") for 1 .. 2;
        ok($sum->{ok}, 'the call went through its whole script');
        cmp_ok(scalar @{ $sum->{bot_turns} }, '==', 3, 'the caller heard three bot turns');
    },
};

# DTMF: digits until "#", then digits until a pause, each a turn of
# its own for the LLM
push @S, {
    name => 'dtmf', tls => 0,
    greeting => 'Hi, this is Bella\'s.',
    extra => 'voice_dtmf_timeout 1s;',
    # "wait: bot" counts from the caller's last speech: fixed waits here
    script => <<'END',
wait: bot
dtmf: 12#
reply: You pressed one and two.
wait: 4000
dtmf: 7
reply: You pressed seven.
wait: 5000
hangup
END
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'two LLM requests');
        is_deeply(messages($rq[0])->[-1], [ user => 'Keypad: 12' ],
                  'digits up to "#" reach the LLM as the caller\'s turn');
        is_deeply(messages($rq[1])->[-1], [ user => 'Keypad: 7' ],
                  'a digit then a pause: a turn too');
        is_deeply([ map { $_->{end} } entries($rec, role => 'user') ], [ 'DTMF', 'DTMF' ],
                  'record: both turns ended by DTMF');
        is($rec->{counts}{dtmf}, 4, 'record: four DTMF messages');
    },
};

# silence after the agent's turn: a reprompt, then the goodbye, then the
# agent ends the call once the goodbye was heard
push @S, {
    name => 'idle reprompt', tls => 0, closed_by => 'server',
    greeting => 'Hi, this is Bella\'s.',
    extra => 'voice_idle_reprompt 1500ms; voice_idle_reprompts 1; '
           . 'voice_reprompt "Are you still there?"; voice_goodbye "Goodbye for now.";',
    script => "wait: bot\nwait: 15000\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        is_deeply(transcript($rec),
                  [ [ assistant => 'greeting', 'Hi, this is Bella\'s.' ],
                    [ assistant => 'reprompt', 'Are you still there?' ],
                    [ assistant => 'goodbye', 'Goodbye for now.' ] ],
                  'record: greeting, one reprompt, goodbye');
        ok(!grep({ $_->{interrupted} } @{ $rec->{transcript} }), 'each heard in full');
        is($rec->{end_reason}, 'caller silent', 'record: end reason');
        is_deeply([ @{ $sum->{close} }{qw(code reason)} ], [ 1000, 'call ended' ],
                  'the stream closed with 1000 after the goodbye');
        is(scalar(llm_requests($sim)), 0, 'no LLM request');
        cmp_ok(scalar @{ $sum->{bot_turns} }, '>=', 3, 'the caller heard all three');
    },
};

# voice_max_duration: what the agent says is cut, the goodbye follows
push @S, {
    name => 'max duration', tls => 0, closed_by => 'server',
    extra => 'voice_max_duration 5s; voice_goodbye "Sorry, our time is up. Goodbye.";',
    sim_config => { llm => { token_ms => 150 } },
    script => "say: What is on the menu tonight?\nreply: $LONG_REPLY\nwait: bot\nwait: 15000\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        my @a = entries($rec, role => 'assistant');
        is(scalar @a, 2, 'record: the reply and the goodbye');
        ok($a[0]{interrupted}, 'the reply was cut by the time limit');
        is($a[1]{kind}, 'goodbye', 'then the goodbye');
        ok(!$a[1]{interrupted}, 'heard in full');
        is($rec->{end_reason}, 'max duration', 'record: end reason');
        is($sum->{counts}{clears}, 1, 'the reply\'s audio was cleared');
        is_deeply([ @{ $sum->{close} }{qw(code reason)} ], [ 1000, 'call ended' ],
                  'the stream closed with 1000 after the goodbye');
    },
};

# the LLM ends the call with the built-in end_call tool: its words are
# the goodbye, heard in full, then the stream closes
push @S, {
    name => 'end_call tool', tls => 0, closed_by => 'server',
    extra => 'voice_end_call on;',
    sim_config => { llm => { faults => [ { kind => 'tool_call', name => 'end_call',
                                           arguments => {}, on_request => 2,
                                           preamble => 'Thank you for calling, goodbye!' } ] } },
    script => "say: I would like a table.\nreply: For how many people?\nwait: bot\n"
            . "say: Actually, never mind.\nwait: bot\nwait: 6000\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'two LLM requests');
        is_deeply([ map { $_->{function}{name} } @{ $rq[0]{json}{tools} || [] } ], [ 'end_call' ],
                  'the requests offer the end_call tool');
        my @a = entries($rec, role => 'assistant');
        is(squash($a[-1]{text}), 'Thank you for calling, goodbye!', 'the goodbye was the LLM\'s words');
        ok(!$a[-1]{interrupted}, 'heard in full');
        is($rec->{end_reason}, 'agent ended the call', 'record: end reason');
        is_deeply([ @{ $sum->{close} }{qw(code reason)} ], [ 1000, 'call ended' ],
                  'the stream closed with 1000 once it was heard');
        is($sum->{counts}{clears}, 0, 'nothing cleared');
    },
};

# voice_hangup_phrase: a reply that says goodbye ends the call
push @S, {
    name => 'hangup phrase', tls => 0, closed_by => 'server',
    extra => 'voice_hangup_phrase "\\bgoodbye\\b";',
    script => "say: That is all, thanks.\nreply: You are welcome. Goodbye!\nwait: bot\nwait: 6000\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
        my @a = entries($rec, role => 'assistant');
        is(squash($a[-1]{text}), 'You are welcome. Goodbye!', 'the reply was heard');
        ok(!$a[-1]{interrupted}, 'in full');
        is($rec->{end_reason}, 'agent ended the call', 'record: end reason');
        is_deeply([ @{ $sum->{close} }{qw(code reason)} ], [ 1000, 'call ended' ],
                  'the stream closed with 1000 after it');
        ok(!defined((llm_requests($sim))[0]{json}{tools}), 'no tools offered without voice_end_call');
    },
};

# ---- run them: simulators, nginx, then all calls at once --------------------

run_scenarios($dir, @S);

# ---- nginx -t: what the agent needs ----------------------------------------

{
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $so = voice_module();
    my %base = (
        stt => 'voice_stt_url ws://127.0.0.1:9/v1/listen; voice_stt_key k1;',
        llm => 'voice_llm_url http://127.0.0.1:9/v1/chat/completions; voice_llm_key k2;',
        tts => 'voice_tts_url ws://127.0.0.1:9; voice_tts_key k3; voice_tts_voice v;',
    );
    my $n = 0;
    my $nginx_t = sub {
        my (%o) = @_;
        my $mode = delete $o{mode} // 'voice_pipeline agent;';
        my %p = (%base, %o);
        my $d = "$dir/nginx-t-" . ++$n;
        make_path("$d/conf", "$d/logs");
        write_file("$d/conf/nginx.conf",
                   "load_module $so;\nerror_log logs/error.log;\npid logs/nginx.pid;\n"
                   . "events {}\nhttp {\naccess_log off;\nserver {\nlisten 127.0.0.1:1;\n"
                   . "location = /stream { $mode voice_ssl_verify off; "
                   . join(' ', map { $p{$_} } sort keys %p) . " }\n}\n}\n");
        my $out = `$nginx -t -p $d -c conf/nginx.conf 2>&1`;
        return ($? >> 8, $out);
    };

    my ($rc, $out) = $nginx_t->();
    is($rc, 0, 'nginx -t: an agent with its three legs passes') or diag $out;

    ($rc, $out) = $nginx_t->(llm => 'voice_llm_url http://127.0.0.1:9/v1/chat/completions;');
    isnt($rc, 0, 'nginx -t: an agent without voice_llm_key fails');
    like($out, qr/\[emerg\].*voice_pipeline "agent" needs "voice_llm_key"/, 'and says so');

    ($rc, $out) = $nginx_t->(stt => 'voice_stt_url ws://127.0.0.1:9/v1/listen;');
    isnt($rc, 0, 'nginx -t: an agent without voice_stt_key fails');
    like($out, qr/\[emerg\].*voice_pipeline "agent" needs "voice_stt_key"/, 'and says so');

    ($rc, $out) = $nginx_t->(tts => 'voice_tts_url ws://127.0.0.1:9; voice_tts_voice v;');
    isnt($rc, 0, 'nginx -t: an agent without voice_tts_key fails');
    like($out, qr/\[emerg\].*voice_pipeline "agent" needs "voice_tts_key"/, 'and says so');

    ($rc, $out) = $nginx_t->(bc => 'voice_backchannel "^(uh-huh$";');
    isnt($rc, 0, 'nginx -t: a bad voice_backchannel regex fails');
    like($out, qr/\[emerg\].*pcre2?_compile\(\) failed: .* in "\^\(uh-huh\$".* in \S+nginx\.conf:\d+/,
         'with PCRE\'s message, file and line');

    ($rc, $out) = $nginx_t->(sched => 'voice_tts_chunk_schedule 20;');
    isnt($rc, 0, 'nginx -t: voice_tts_chunk_schedule 20 fails');
    like($out, qr/\[emerg\].*invalid value "20": each must be 50 to 500 characters in \S+nginx\.conf:\d+/,
         'and says why');

    ($rc, $out) = $nginx_t->(mode => 'voice_pipeline;',
                             llm => 'voice_llm_url http://127.0.0.1:9/v1/chat/completions;');
    like($out, qr/voice_pipeline "agent" needs "voice_llm_key"/,
         'nginx -t: "voice_pipeline;" alone is the agent');

    ($rc, $out) = $nginx_t->(bc => 'voice_backchannel off; voice_barge_in_min_words 0; '
                             . 'voice_tts_chunking sentence; voice_tts_chunk_schedule 50 500; '
                             . 'voice_greeting_interruptible off; voice_barge_in off; '
                             . 'voice_stt_finalize 400ms; voice_llm_apology "One moment."; '
                             . "voice_call_record $dir;");
    is($rc, 0, 'nginx -t: every agent directive accepted') or diag $out;
}

done_testing();
