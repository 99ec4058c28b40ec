package VoiceSim::ElevenLabs;

# ElevenLabs text-to-speech WebSocket simulator (protocols.md section 4):
#   /v1/text-to-speech/{voice_id}/stream-input         single context
#   /v1/text-to-speech/{voice_id}/multi-stream-input   multi context

use strict;
use warnings;

use Mojo::Base -strict;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Util qw(b64_encode);
use Mojolicious;
use VoiceSim::Common qw(b);

my %FORMATS = (ulaw_8000 => ['mulaw', 8000, 1], alaw_8000 => ['alaw', 8000, 1],
               map { ("pcm_$_" => ['linear16', $_, 2]) } 8000, 16000, 22050, 24000, 44100, 48000);
my %KNOWN = map { $_ => 1 } keys %FORMATS,
    qw(mp3_22050_32 mp3_44100 mp3_44100_32 mp3_44100_64 mp3_44100_96 mp3_44100_128 mp3_44100_192
       opus_48000_32 opus_48000_64 opus_48000_96 opus_48000_128 opus_48000_192);
my $MAX_CONTEXTS = 5;

sub app {
    my ($class, $ctx) = @_;
    my $app = Mojolicious->new;
    $app->log->level('fatal');
    my $r = $app->routes;
    $r->websocket('/v1/text-to-speech/:voice_id/stream-input')
      ->to(cb => sub { _ws($ctx, shift, 0) });
    $r->websocket('/v1/text-to-speech/:voice_id/multi-stream-input')
      ->to(cb => sub { _ws($ctx, shift, 1) });
    $r->any('/*any' => {any => ''})->to(cb => sub {
        my $c = shift;
        my $conn = VoiceSim::Common::conn_id($ctx, $c);
        $ctx->{log}->log(conn => $conn, ev => 'http_request', method => $c->req->method,
                         path => $c->req->url->path->to_string);
        $c->render(status => 404, json => { detail => { status => 'not_found', message => 'Not found' } });
    });
    return $app;
}

sub _ws {
    my ($ctx, $c, $multi) = @_;
    my $log = $ctx->{log};
    my $cfg = $ctx->{cfg};
    my $conn = VoiceSim::Common::conn_id($ctx, $c);
    my $q = VoiceSim::Common::query_for_log($c);
    my $n = ++$ctx->{ws_seq};
    $log->log(conn => $conn, ev => 'connect', n => $n, multi => b($multi),
              path => $c->req->url->path->to_string, voice_id => $c->stash('voice_id'),
              query => $q, headers => VoiceSim::Common::headers_for_log($c->req->headers));

    if (my $f = $cfg->fault('tts', $n, sub { $_[0]{status} })) {
        $log->log(conn => $conn, ev => 'http_response', status => $f->{status});
        return $c->render(status => $f->{status},
                          json => { detail => { status => $f->{code} // 'system_busy',
                                                message => $f->{message} // 'Simulated failure.' } });
    }
    $c->inactivity_timeout(0);

    my $st = { conn => $conn, multi => $multi, ctxs => {}, q => VoiceSim::Common::Queue->new,
               voice => $cfg->get('tts', 'voice', 'en-us+m3'), audio_sent => 0 };
    # drop_after_audio: after the Nth audio message on this connection the
    # TCP connection is closed abruptly (no close frame); drop_on_connection:
    # only the Nth WebSocket connection of the run (default: every one)
    my $only = $cfg->get('tts', 'drop_on_connection');
    my $drop_after = $cfg->get('tts', 'drop_after_audio');
    $drop_after = undef unless $drop_after && (!defined $only || $only == $n);
    my $send = sub {
        my ($msg, $delay, $tag, $rel) = @_;
        $st->{q}->push($delay // 0, sub {
            return if $st->{closed};
            my %l = %$msg;
            if (defined $l{audio}) {
                $l{audio_bytes} = length(Mojo::Util::b64_decode($l{audio}));
                delete $l{audio};
            }
            $log->log(conn => $conn, ev => 'send', frame => 'text', json => \%l);
            if (defined $msg->{audio} && $drop_after && ++$st->{audio_sent} >= $drop_after) {
                _drop($ctx, $c, $st, $n, $msg->{contextId});
                $c->send({json => $msg} => sub {
                    my $s = $st->{stream_id} && Mojo::IOLoop->stream($st->{stream_id});
                    $s->close if $s;
                });
                return;
            }
            $c->send({json => $msg});
        }, $tag, $rel);
    };
    $st->{stream_id} = $c->tx->connection;
    my $close = sub {
        my ($code, $reason, $now) = @_;
        my $do = sub {
            return if $st->{closed}++;
            $log->log(conn => $conn, ev => 'server_close', code => $code, reason => $reason // '');
            $c->finish($code, $reason);
        };
        $now ? $do->() : $st->{q}->push(0, $do);
    };
    my $error = sub {
        my ($code, $msg, $rule) = @_;
        $log->violation(conn => $conn, rule => $rule, detail => $msg) if $rule;
        $send->({ message => $msg, error => $code, code => 1008 });
        $close->(1008, substr($msg, 0, 120));
    };
    @$st{qw(send close error)} = ($send, $close, $error);

    # query parameters
    my $fmt = $q->{output_format} // 'mp3_44100_128';
    if (!$KNOWN{$fmt}) {
        return $error->('invalid_output_format', "Invalid output_format: $fmt", 'tts_output_format');
    }
    $log->violation(conn => $conn, rule => 'tts_output_format',
                    detail => "output_format is $fmt, not ulaw_8000")
        unless $fmt eq 'ulaw_8000';
    if (!$FORMATS{$fmt}) {
        return $error->('unsupported_output_format',
                        "The simulator cannot produce $fmt (use ulaw_8000, alaw_8000 or pcm_*)");
    }
    $st->{fmt} = $FORMATS{$fmt};
    my $inact = $q->{inactivity_timeout} // 20;
    if ($inact !~ /^\d+$/ || $inact < 1 || $inact > 180) {
        return $error->('invalid_request', "inactivity_timeout must be 1..180, got $inact",
                        'tts_inactivity_timeout');
    }
    $st->{idle_ms} = $cfg->get('tts', 'inactivity_ms', $inact * 1000);
    $st->{idle_s_text} = $inact;
    $st->{auto_mode} = ($q->{auto_mode} // '') eq 'true';

    # auth: header, query "authorization", or the first message
    my $hkey = $c->req->headers->header('xi-api-key');
    my $qkey = $q->{authorization};
    $qkey =~ s/^Bearer\s+//i if defined $qkey;
    if (defined $hkey || defined $qkey) {
        my $ok = ($hkey // $qkey) eq $ctx->{key};
        $log->log(conn => $conn, ev => 'auth', scheme => defined $hkey ? 'xi-api-key' : 'query',
                  ok => b($ok));
        return $error->('invalid_api_key', 'Invalid API key', 'tts_auth') unless $ok;
        $st->{authed} = 1;
    }

    my $touch = sub {
        Mojo::IOLoop->remove($st->{idle}) if $st->{idle};
        $st->{idle} = Mojo::IOLoop->timer($st->{idle_ms} / 1000 => sub {
            $log->log(conn => $conn, ev => 'idle_timeout', ms => $st->{idle_ms});
            $error->('input_timeout_exceeded',
                     "Have not received a new text input within the timeout of $st->{idle_s_text}.0 seconds. "
                     . 'Streaming input terminated. Please make sure to either feed the input in the timely '
                     . 'manner, or to send the end of input text (empty string "") when done.');
        });
    };
    $touch->();

    $c->on(text => sub {
        my (undef, $text) = @_;
        return if $st->{closed};
        my $j = eval { decode_json($text) };
        my %l = ref $j eq 'HASH' ? (json => { %$j }) : (text => $text);
        for my $k (qw(xi-api-key xi_api_key)) {
            $l{json}{$k} = substr($l{json}{$k}, 0, 4) . '***' if $l{json} && defined $l{json}{$k};
        }
        $log->log(conn => $conn, ev => 'recv', frame => 'text', %l);
        $touch->();
        return $error->('invalid_message', 'Invalid message: expected a JSON object', 'tts_bad_message')
            unless ref $j eq 'HASH';
        _message($ctx, $st, $j);
    });
    $c->on(binary => sub {
        my (undef, $b) = @_;
        $log->log(conn => $conn, ev => 'recv', frame => 'binary', bytes => length $b);
        $error->('invalid_message', 'Binary frames are not supported', 'tts_binary_frame');
    });
    $c->on(finish => sub {
        my (undef, $code, $reason) = @_;
        $log->log(conn => $conn, ev => 'closed', code => $code, reason => $reason // '',
                  by => $st->{closed} ? 'server' : 'client');
        $st->{closed}++;
        $st->{q}->stop;
        Mojo::IOLoop->remove($st->{idle}) if $st->{idle};
    });
}

# the drop_after_audio fault: no further messages, no close frame; the
# caller closes the TCP connection once the last audio message is written
sub _drop {
    my ($ctx, $c, $st, $n, $context_id) = @_;
    $ctx->{log}->log(conn => $st->{conn}, ev => 'server_disconnect', n => $n,
                     audio_messages => $st->{audio_sent}, context_id => $context_id);
    $st->{closed}++;
    $st->{dropped} = 1;
    $st->{q}->stop;
    Mojo::IOLoop->remove($st->{idle}) if $st->{idle};
}

sub _message {
    my ($ctx, $st, $j) = @_;
    my $log = $ctx->{log};
    my $conn = $st->{conn};

    unless ($st->{authed}) {
        my $k = $j->{'xi-api-key'} // $j->{xi_api_key};
        my $a = $j->{authorization};
        $a =~ s/^Bearer\s+//i if defined $a;
        $k //= $a;
        my $ok = defined $k && $k eq $ctx->{key};
        $log->log(conn => $conn, ev => 'auth', scheme => defined $k ? 'first_message' : 'none',
                  ok => b($ok));
        return $st->{error}->('invalid_api_key',
                              defined $k ? 'Invalid API key' : 'You must be authenticated to use this endpoint.',
                              'tts_auth') unless $ok;
        $st->{authed} = 1;
    }

    if (defined $j->{voice_settings}) {
        my $vs = encode_json($j->{voice_settings});
        if (defined $st->{voice_settings} && $st->{voice_settings} ne $vs) {
            return $st->{error}->('invalid_request', 'voice_settings field must be provided in the first '
                                  . 'message and then either be not provided or not change.', 'tts_voice_settings');
        }
        if (!defined $st->{voice_settings} && $st->{got_messages}) {
            return $st->{error}->('invalid_request', 'voice_settings field must be provided in the first '
                                  . 'message and then either be not provided or not change.', 'tts_voice_settings');
        }
        $st->{voice_settings} //= $vs;
    }
    $st->{got_messages}++;

    return _multi($ctx, $st, $j) if $st->{multi};

    # ---- single context ----
    my $cx = $st->{ctxs}{''} ||= { id => undef, buf => '', gen => 0 };
    if (!$cx->{inited}) {
        if (!defined $j->{text} || $j->{text} ne ' ') {
            return $st->{error}->('invalid_request', 'The first message must be {"text": " "} '
                                  . '(a single space) with optional settings.', 'tts_first_message');
        }
        $cx->{inited} = 1;
        _settings($ctx, $st, $cx, $j) or return;
        return;
    }
    for my $k (qw(generation_config pronunciation_dictionary_locators)) {
        $log->violation(conn => $conn, rule => 'tts_settings_after_init', detail => "$k after the first message")
            if defined $j->{$k};
    }
    if (defined $j->{text} && $j->{text} eq '') {
        # end of input: generate what is left, isFinal, close 1000
        _generate($ctx, $st, $cx, $cx->{buf}) if $cx->{buf} =~ /\S/;
        $cx->{buf} = '';
        $st->{send}->({ isFinal => b(1) });
        $st->{close}->(1000, '');
        return;
    }
    _text($ctx, $st, $cx, $j);
}

sub _settings {
    my ($ctx, $st, $cx, $j) = @_;
    my $sched = $j->{generation_config} && $j->{generation_config}{chunk_length_schedule};
    if ($sched) {
        if (ref $sched ne 'ARRAY' || !@$sched || grep { !/^\d+$/ || $_ < 50 || $_ > 500 } @$sched) {
            $st->{error}->('invalid_request', 'chunk_length_schedule values must be between 50 and 500',
                           'tts_chunk_length_schedule');
            return;
        }
    }
    $cx->{schedule} = $sched || [120, 160, 250, 290];
    return 1;
}

sub _text {
    my ($ctx, $st, $cx, $j) = @_;
    my $t = $j->{text};
    if (defined $t) {
        if (ref $t) {
            return $st->{error}->('invalid_request', 'text must be a string', 'tts_bad_message');
        }
        $ctx->{log}->violation(conn => $st->{conn}, rule => 'tts_text_trailing_space',
                               detail => 'text should end with a space', text => $t)
            if length $t && $t !~ /\s$/ && !$j->{flush};
        $cx->{buf} .= $t;
    }
    my $buf = $cx->{buf};
    return unless $buf =~ /\S/;
    if ($j->{flush} || $st->{auto_mode}) {
        $cx->{buf} = '';
        return _generate($ctx, $st, $cx, $buf);
    }
    my $s = $cx->{schedule};
    my $need = $s->[$cx->{gen} < @$s ? $cx->{gen} : $#$s];
    $need = 50 if $j->{try_trigger_generation} && $need > 50;
    if (length $buf >= $need) {
        # cut at the last whitespace; the partial word stays buffered
        my $cut = $buf =~ /^(.*\s)/s ? length $1 : length $buf;
        $cx->{buf} = substr($buf, $cut);
        _generate($ctx, $st, $cx, substr($buf, 0, $cut));
    }
}

sub _multi {
    my ($ctx, $st, $j) = @_;
    my $log = $ctx->{log};
    my $conn = $st->{conn};
    if ($j->{close_socket}) {
        for my $id (sort keys %{ $st->{ctxs} }) {
            my $cx = $st->{ctxs}{$id};
            next if $cx->{closed};
            _generate($ctx, $st, $cx, $cx->{buf}) if $cx->{buf} =~ /\S/;
            $cx->{buf} = '';
            _close_ctx($ctx, $st, $cx);
        }
        $st->{close}->(1000, '');
        return;
    }
    my $id = $j->{context_id} // $j->{contextId};
    $log->violation(conn => $conn, rule => 'tts_context_id_camel',
                    detail => 'client sent contextId; the wire name is context_id')
        if !defined $j->{context_id} && defined $j->{contextId};
    my $key = $id // '';
    my $cx = $st->{ctxs}{$key};
    $cx = undef if $cx && $cx->{closed};    # reusing a closed id: a fresh context

    if ($j->{close_context}) {
        unless ($cx) {
            $log->violation(conn => $conn, rule => 'tts_close_unknown_context',
                            detail => 'close_context for ' . ($id // 'default') . ' which is not open');
            return;
        }
        my $dropped = length $cx->{buf};
        $cx->{buf} = '';
        $log->log(conn => $conn, ev => 'context_closed', context_id => $id,
                  dropped_chars => $dropped);
        _close_ctx($ctx, $st, $cx);
        return;
    }
    if (!$cx) {
        my $open = grep { !$_->{closed} } values %{ $st->{ctxs} };
        if ($open >= $MAX_CONTEXTS) {
            return $st->{error}->('max_active_conversations',
                                  "Maximum number of concurrent contexts ($MAX_CONTEXTS) exceeded. "
                                  . 'Close a context before opening a new one.', 'tts_context_cap');
        }
        $cx = $st->{ctxs}{$key} = { id => $id, buf => '', gen => 0, schedule => [120, 160, 250, 290] };
        $log->log(conn => $conn, ev => 'context_open', context_id => $id, open => $open + 1);
        if (defined $j->{text} && $j->{text} eq ' ') {
            $cx->{inited} = 1;
            _settings($ctx, $st, $cx, $j) or return;
            return;
        }
        $log->violation(conn => $conn, rule => 'tts_context_not_initialized',
                        detail => 'first message of context ' . ($id // 'default')
                        . ' is not {"text":" ", ...}');
        $cx->{implicit} = 1;
    } elsif (defined $j->{voice_settings} || defined $j->{generation_config}) {
        return $st->{error}->('invalid_request', 'voice_settings field must be provided in the first '
                              . 'message and then either be not provided or not change.', 'tts_voice_settings')
            if $cx->{implicit};
        $log->violation(conn => $conn, rule => 'tts_settings_after_init',
                        detail => 'settings after the context\'s first message');
    }
    if (defined $j->{text} && $j->{text} eq '' && !$j->{flush}) {
        $log->log(conn => $conn, ev => 'context_keepalive', context_id => $id);
        return;
    }
    _text($ctx, $st, $cx, $j);
}

sub _close_ctx {
    my ($ctx, $st, $cx) = @_;
    $cx->{closed} = 1;
    $st->{send}->({ isFinal => b(1), defined $cx->{id} ? (contextId => $cx->{id}) : () },
                  0, $cx->{id});
}

# synthesise TEXT and queue its audio messages (first after first_byte_ms)
sub _generate {
    my ($ctx, $st, $cx, $text) = @_;
    my $cfg = $ctx->{cfg};
    $cx->{gen}++;
    (my $t = $text) =~ s/^\s+|\s+$//g;
    return unless length $t;
    my ($enc, $rate, $bps) = @{ $st->{fmt} };
    my $audio = VoiceSim::Common::synth($ctx->{dir}, $t, voice => $st->{voice},
                                        encoding => $enc, rate => $rate);
    my $bpm = $rate * $bps / 1000;    # bytes per millisecond
    my $ms = int((length($audio) + $bpm - 1) / $bpm);
    my $pad = $enc eq 'mulaw' ? "\xff" : $enc eq 'alaw' ? "\xd5" : "\0";
    $audio .= $pad x ($ms * $bpm - length $audio) if $ms * $bpm > length $audio;
    $audio = substr($audio, 0, $ms * $bpm);

    my @ch = split //, $t;
    my $nc = @ch;
    my @start = map { int($_ * $ms / $nc) } 0 .. $nc;
    my @dur = map { $start[$_ + 1] - $start[$_] } 0 .. $nc - 1;

    my $chunk_ms = $cfg->get('tts', 'chunk_ms', 500);
    my ($i, $first) = (0, 1);
    $ctx->{log}->log(conn => $st->{conn}, ev => 'generate', context_id => $cx->{id},
                     text => $t, audio_ms => $ms, audio_bytes => length $audio);
    while ($i < $nc) {
        my $j = $i;
        $j++ while $j < $nc && ($start[$j + 1] - $start[$i] < $chunk_ms || $j == $i);
        # chars $i .. $j-1 form this chunk
        my $off = $start[$i];
        my $len = $start[$j] - $off;
        my $al = { chars => [ @ch[$i .. $j - 1] ],
                   charStartTimesMs => [ map { $start[$_] - $off } $i .. $j - 1 ],
                   charDurationsMs => [ @dur[$i .. $j - 1] ] };
        my $msg = { audio => b64_encode(substr($audio, $off * $bpm, $len * $bpm), ''),
                    isFinal => b(0), normalizedAlignment => $al, alignment => $al,
                    defined $cx->{id} ? (contextId => $cx->{id}) : () };
        $st->{send}->($msg, $first ? $cfg->get('tts', 'first_byte_ms', 120)
                                   : $cfg->get('tts', 'chunk_gap_ms', 20), $cx->{id}, !$first);
        $first = 0;
        $i = $j;
    }
}

1;
