package VoiceSim::Deepgram;

# Deepgram live speech-to-text simulator: GET /v1/listen (WebSocket).
# protocols.md section 2; behaviour and UNCONFIRMED choices are in
# docs/simulators.md.

use strict;
use warnings;

use Digest::SHA;
use Mojo::Base -strict;
use Mojo::JSON qw(decode_json);
use Mojolicious;
use POSIX qw(strftime);
use Time::HiRes qw(time);
use VoiceSim::Common qw(b rms_ulaw request_id);

my $FRAME = 160;    # 20 ms of 8 kHz mu-law

# Deepgram-style handshake auth, shared with the Aura simulator.
# Returns () when accepted (after selecting a subprotocol if one was
# used), else renders the 401 and returns the failure reason.
sub check_auth {
    my ($ctx, $c, $conn, $rid) = @_;
    my $key = $ctx->{key};
    my $h = $c->req->headers;
    my ($scheme, $got);
    if (my $a = $h->authorization) {
        ($scheme, $got) = $a =~ /^(Token|Bearer)\s+(\S+)\s*$/i;
        $scheme //= 'malformed';
    } elsif (my $p = $h->sec_websocket_protocol) {
        my @p = split /\s*,\s*/, $p;
        if (@p == 2 && $p[0] =~ /^(token|bearer)$/i) {
            ($scheme, $got) = ('subprotocol-' . lc $p[0], $p[1]);
            $c->res->headers->sec_websocket_protocol($p[0]);
        } else {
            $scheme = 'subprotocol-malformed';
        }
    }
    $ctx->{log}->log(conn => $conn, ev => 'auth', scheme => $scheme // 'none',
                     ok => b(defined $got && $got eq $key));
    return () if defined $got && $got eq $key;
    my $msg = defined $scheme ? 'Invalid credentials.' : 'Missing credentials.';
    reject($ctx, $c, $conn, $rid, 401, 'INVALID_AUTH', $msg);
    return $msg;
}

sub reject {
    my ($ctx, $c, $conn, $rid, $status, $code, $msg) = @_;
    $c->res->headers->sec_websocket_protocol(undef) if $c->res->headers->sec_websocket_protocol;
    $c->res->headers->remove('Sec-WebSocket-Protocol');
    $c->res->headers->header('dg-error' => $msg);
    $c->res->headers->header('dg-request-id' => $rid);
    my $body = { err_code => $code, err_msg => $msg, request_id => $rid };
    $ctx->{log}->log(conn => $conn, ev => 'http_response', status => $status,
                     headers => { 'dg-error' => $msg, 'dg-request-id' => $rid },
                     json => $body);
    $c->render(status => $status, json => $body);
}

sub app {
    my ($class, $ctx) = @_;
    my $app = Mojolicious->new;
    $app->log->level('fatal');
    $app->routes->websocket('/v1/listen')->to(cb => sub { _listen($ctx, shift) });
    $app->routes->any('/*any' => {any => ''})->to(cb => sub {
        my $c = shift;
        my $conn = VoiceSim::Common::conn_id($ctx, $c);
        $ctx->{log}->log(conn => $conn, ev => 'http_request', method => $c->req->method,
                         path => $c->req->url->path->to_string);
        $c->render(status => 404, json => { err_code => 'NOT_FOUND', err_msg => 'Not found' });
    });
    return $app;
}

sub _listen {
    my ($ctx, $c) = @_;
    my $log = $ctx->{log};
    my $cfg = $ctx->{cfg};
    my $conn = VoiceSim::Common::conn_id($ctx, $c);
    my $nconn = ++$ctx->{ws_seq};
    my $rid = request_id();
    my $q = VoiceSim::Common::query_for_log($c);
    $log->log(conn => $conn, ev => 'connect', n => $nconn, path => $c->req->url->path->to_string,
              query => $q, headers => VoiceSim::Common::headers_for_log($c->req->headers),
              request_id => $rid);

    return if check_auth($ctx, $c, $conn, $rid);

    if (my $f = $cfg->fault('stt', $nconn, sub { $_[0]{status} })) {
        return reject($ctx, $c, $conn, $rid, $f->{status}, $f->{err_code} || 'FAULT',
                      $f->{message} || 'Simulated failure.');
    }
    my $enc = $q->{encoding};
    if (!defined $enc || $enc ne 'mulaw') {
        $log->violation(conn => $conn, rule => 'stt_encoding',
                        detail => 'encoding must be mulaw, got ' . ($enc // 'none'));
        return reject($ctx, $c, $conn, $rid, 400, 'Bad Request',
                      defined $enc ? "Unsupported encoding for this stream: $enc"
                                   : 'Raw audio requires encoding and sample_rate.');
    }
    if (($q->{sample_rate} // '') ne '8000') {
        $log->violation(conn => $conn, rule => 'stt_sample_rate',
                        detail => 'sample_rate must be 8000, got ' . ($q->{sample_rate} // 'none'));
        return reject($ctx, $c, $conn, $rid, 400, 'Bad Request',
                      'encoding requires sample_rate=8000 for this stream.');
    }
    for my $k (qw(interim_results vad_events punctuate smart_format)) {
        next unless defined $q->{$k};
        $log->violation(conn => $conn, rule => 'stt_bool_param', detail => "$k=$q->{$k}")
            unless $q->{$k} =~ /^(true|false)$/;
    }
    my $ep = $q->{endpointing} // 10;
    if ($ep ne 'false' && $ep !~ /^\d+$/) {
        $log->violation(conn => $conn, rule => 'stt_endpointing', detail => "endpointing=$ep");
        return reject($ctx, $c, $conn, $rid, 400, 'Bad Request', "Invalid endpointing: $ep");
    }
    my $ue = $q->{utterance_end_ms};
    my $interim = ($q->{interim_results} // 'false') eq 'true';
    if (defined $ue && !$interim) {
        $log->violation(conn => $conn, rule => 'stt_utterance_end_needs_interim',
                        detail => 'utterance_end_ms given without interim_results=true');
        return reject($ctx, $c, $conn, $rid, 400, 'Bad Request',
                      'utterance_end_ms requires interim_results=true');
    }

    $c->res->headers->header('dg-request-id' => $rid);
    $c->inactivity_timeout(0);

    my $hang = $cfg->get('stt', 'hangover_ms', 300);
    my $st = {
        rid => $rid, conn => $conn, q => $q, interim => $interim,
        vad_events => ($q->{vad_events} // '') eq 'true',
        endpointing => $ep eq 'false' ? undef : $ep,
        end_ms => $ep eq 'false' ? $hang : ($ep > $hang ? $ep : $hang),
        utterance_end_ms => $ue,
        interim_ms => $cfg->get('stt', 'interim_ms', 300),
        on => $cfg->get('stt', 'vad_on', 500),
        off => $cfg->get('stt', 'vad_off', 200),
        onset_frames => $cfg->get('stt', 'onset_frames', 2),
        latency => $cfg->get('stt', 'latency_ms', 80),
        model => $q->{model} // 'base',
        numbering => $cfg->get('stt', 'segment_numbering', 'connection'),
        bytes => 0, pending => '', sha => Digest::SHA->new(256),
        final_end => 0,  # stream byte offset covered by results so far
        queue => VoiceSim::Common::Queue->new,
    };
    $ctx->{stt_streams}{$conn} = $st;

    my $send = sub {
        my ($msg) = @_;
        $st->{queue}->push($st->{latency}, sub {
            return if $st->{closed};
            $log->log(conn => $conn, ev => 'send', frame => 'text', json => $msg);
            $c->send({json => $msg});
        });
    };
    $st->{send} = $send;
    my $close = sub {
        my ($code, $reason, $now) = @_;
        my $do = sub {
            return if $st->{closed}++;
            $log->log(conn => $conn, ev => 'server_close', code => $code, reason => $reason // '');
            $c->finish($code, $reason);
        };
        $now ? $do->() : $st->{queue}->push($st->{latency}, $do);
    };
    $st->{close} = $close;

    my $idle_ms = $cfg->get('stt', 'idle_timeout_ms', 10000);
    my $touch = sub {
        Mojo::IOLoop->remove($st->{idle}) if $st->{idle};
        $st->{idle} = Mojo::IOLoop->timer($idle_ms / 1000 => sub {
            $log->log(conn => $conn, ev => 'idle_timeout', ms => $idle_ms);
            $close->(1011, 'NET-0001', 1);
        });
    };
    $touch->();
    # drop_on_connection: only that connection (1 = the first) drops
    my $only = $cfg->get('stt', 'drop_on_connection');
    if ((my $d = $cfg->get('stt', 'drop_after_ms'))
        && (!defined $only || $only == $nconn))
    {
        $st->{drop} = Mojo::IOLoop->timer($d / 1000 => sub {
            return if $st->{closed};
            my $code = $cfg->get('stt', 'drop_close_code');
            $log->log(conn => $conn, ev => 'fault', kind => 'drop', after_ms => $d,
                      code => $code);
            if ($code) {
                $close->($code, $cfg->get('stt', 'drop_close_reason', 'NET-0000'), 1);
            } else {
                $st->{closed}++;
                my $s = Mojo::IOLoop->stream($c->tx->connection);
                $s->close if $s;
            }
        });
    }

    $c->on(binary => sub {
        my (undef, $bytes) = @_;
        return if $st->{closed};
        $touch->();
        $log->log(conn => $conn, ev => 'recv', frame => 'binary', bytes => length $bytes);
        if (!length $bytes) {
            $log->violation(conn => $conn, rule => 'stt_empty_binary_frame',
                            detail => 'zero-length binary frame (end of stream)');
            return _close_stream($ctx, $st, 'empty_binary_frame');
        }
        if ($bytes =~ /^\s*\{"?type/) {
            $log->violation(conn => $conn, rule => 'stt_control_as_binary',
                            detail => 'JSON control message sent as a binary frame');
        }
        $st->{sha}->add($bytes);
        _audio($ctx, $st, $bytes);
    });
    $c->on(text => sub {
        my (undef, $text) = @_;
        return if $st->{closed};
        $touch->();
        my $j = eval { decode_json($text) };
        $log->log(conn => $conn, ev => 'recv', frame => 'text',
                  ref $j eq 'HASH' ? (json => $j) : (text => $text));
        my $type = ref $j eq 'HASH' ? $j->{type} // '' : '';
        if ($type eq 'KeepAlive') {
            return;
        } elsif ($type eq 'Finalize') {
            _finalize($ctx, $st, 1);
        } elsif ($type eq 'CloseStream') {
            _close_stream($ctx, $st, 'CloseStream');
        } else {
            $log->violation(conn => $conn, rule => 'stt_bad_text_message',
                            detail => ref $j eq 'HASH' ? "unknown type '$type'" : 'not a JSON object');
            $close->(1008, 'DATA-0000');
        }
    });
    $c->on(finish => sub {
        my (undef, $code, $reason) = @_;
        $log->log(conn => $conn, ev => 'closed', code => $code, reason => $reason // '',
                  by => $st->{closed} ? 'server' : 'client', audio_bytes => $st->{bytes},
                  segments => $st->{seg} // 0);
        $st->{closed}++;
        $st->{queue}->stop;
        Mojo::IOLoop->remove($_) for grep {$_} @$st{qw(idle drop)};
        delete $ctx->{stt_streams}{$conn};
    });
}

sub _sec { 0 + sprintf '%.3f', $_[0] / 8000 }

sub _transcript {
    my ($ctx, $n) = @_;
    my @u = @{ $ctx->{utterances} || [] };
    return $u[$n - 1] // "segment $n";
}

sub _results {
    my ($ctx, $st, %a) = @_;
    my $text = $a{text} // '';
    my @w = split ' ', $text;
    my ($ws, $we) = @{ $a{span} || [0, 0] };
    my $per = @w ? ($we - $ws) / @w : 0;
    my $i = 0;
    my @words = map {
        my $s = $ws + $per * $i++;
        (my $bare = lc $_) =~ s/[^\w'-]//g;
        { word => $bare, start => _sec($s), end => _sec($s + $per),
          confidence => 0.98, punctuated_word => $_ }
    } @w;
    return {
        type => 'Results', channel_index => [0, 1],
        start => _sec($a{from}), duration => _sec($a{to} - $a{from}),
        is_final => b($a{is_final}), speech_final => b($a{speech_final}),
        from_finalize => b($a{from_finalize}),
        channel => { alternatives => [ { transcript => join(' ', @w),
                                         confidence => @w ? 0.98 : 0, words => \@words } ] },
        metadata => { request_id => $st->{rid}, model_uuid => '00000000-sim0-0000-0000-000000000000',
                      model_info => { name => $st->{model}, version => 'sim', arch => 'sim' } },
    };
}

# VAD over 20 ms frames, driven by stream time (bytes received)
sub _audio {
    my ($ctx, $st, $bytes) = @_;
    $st->{pending} .= $bytes;
    while (length $st->{pending} >= $FRAME) {
        my $f = substr($st->{pending}, 0, $FRAME, '');
        my $rms = rms_ulaw($f);
        my $start = $st->{bytes};
        $st->{bytes} += $FRAME;
        _frame($ctx, $st, $start, $rms);
        last if $st->{closed};
    }
}

sub _frame {
    my ($ctx, $st, $pos, $rms) = @_;
    my $now = $st->{bytes};
    my $loud = $rms >= ($st->{speaking} ? $st->{off} : $st->{on});
    if (!$st->{speaking}) {
        if ($loud) {
            $st->{onset} //= $pos;
            if (($now - $st->{onset}) / $FRAME >= $st->{onset_frames}) {
                # a new segment
                $st->{speaking} = 1;
                # segment_numbering "run": the Nth segment of the whole run,
                # so a client that reconnects mid-call keeps its place in
                # the script (one call at a time); default: per connection
                if (($st->{numbering} // '') eq 'run') {
                    # the first segment not yet finalised on any connection
                    $st->{seg} = ($ctx->{stt_run_final} // 0) + 1;
                } else {
                    $st->{seg}++;
                }
                $st->{seg_start} = $st->{onset};
                $st->{voice_end} = $now;
                $st->{last_interim} = $st->{onset};
                $st->{interims} = 0;
                $st->{in_segment} = 1;
                delete $st->{ue_due};
                $st->{send}->({ type => 'SpeechStarted', channel => [0],
                                timestamp => _sec($st->{onset}) })
                    if $st->{vad_events};
            }
        } else {
            delete $st->{onset};
        }
    } elsif ($loud) {
        $st->{voice_end} = $now;
    }
    if ($st->{speaking}) {
        my $sil_ms = ($now - $st->{voice_end}) / 8;
        if ($sil_ms >= $st->{end_ms}) {
            $st->{speaking} = 0;
            delete $st->{onset};
            _final($ctx, $st, speech_final => defined $st->{endpointing});
            $st->{ue_due} = $st->{voice_end} + $st->{utterance_end_ms} * 8
                if defined $st->{utterance_end_ms};
        } elsif ($st->{interim} && ($now - $st->{last_interim}) / 8 >= $st->{interim_ms}) {
            $st->{last_interim} = $now;
            my @w = split ' ', _transcript($ctx, $st->{seg});
            my $k = ++$st->{interims};
            $k = @w if $k > @w;
            my $span_end = $st->{voice_end};
            $st->{send}->(_results($ctx, $st, from => $st->{final_end}, to => $now,
                                   text => join(' ', @w[0 .. $k - 1]),
                                   span => [$st->{seg_start}, $span_end]));
        }
    } elsif (defined $st->{ue_due} && $now >= $st->{ue_due}) {
        $st->{send}->({ type => 'UtteranceEnd', channel => [0, 1],
                        last_word_end => _sec($st->{voice_end}) });
        delete $st->{ue_due};
    }
}

sub _final {
    my ($ctx, $st, %a) = @_;
    my $now = $st->{bytes};
    $st->{send}->(_results($ctx, $st, from => $st->{final_end}, to => $now, is_final => 1,
                           speech_final => $a{speech_final}, from_finalize => $a{from_finalize},
                           text => _transcript($ctx, $st->{seg}),
                           span => [$st->{seg_start}, $st->{voice_end}]));
    $st->{final_end} = $now;
    $st->{in_segment} = 0;
    $ctx->{stt_run_final} = $st->{seg}
        if ($st->{numbering} // '') eq 'run'
           && $st->{seg} > ($ctx->{stt_run_final} // 0);
}

sub _finalize {
    my ($ctx, $st, $from_finalize) = @_;
    if ($st->{speaking}) {
        $st->{speaking} = 0;
        delete $st->{onset};
        _final($ctx, $st, from_finalize => $from_finalize);
    } elsif ($from_finalize) {
        my $now = $st->{bytes};
        $st->{send}->(_results($ctx, $st, from => $st->{final_end}, to => $now,
                               is_final => 1, from_finalize => 1, text => ''));
        $st->{final_end} = $now;
    }
}

sub _close_stream {
    my ($ctx, $st, $why) = @_;
    _finalize($ctx, $st, 0);
    $st->{send}->({ type => 'Metadata', transaction_key => 'deprecated',
                    request_id => $st->{rid}, sha256 => $st->{sha}->hexdigest,
                    created => strftime('%Y-%m-%dT%H:%M:%S.000Z', gmtime),
                    duration => _sec($st->{bytes}), channels => 1 });
    $st->{close}->(1000, '');
}

1;
