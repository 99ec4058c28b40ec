package VoiceSim::Aura;

# Deepgram Aura text-to-speech WebSocket simulator: /v1/speak
# (protocols.md section 5).

use strict;
use warnings;

use Mojo::Base -strict;
use Mojo::JSON qw(decode_json);
use Mojolicious;
use Time::HiRes qw(time);
use VoiceSim::Common qw(b request_id);
use VoiceSim::Deepgram;

my %ENC = (mulaw => 1, alaw => 1, linear16 => 2);
my %RATES = map { $_ => 1 } 8000, 16000, 24000, 32000, 44100, 48000;

sub app {
    my ($class, $ctx) = @_;
    my $app = Mojolicious->new;
    $app->log->level('fatal');
    $app->routes->websocket('/v1/speak')->to(cb => sub { _speak($ctx, shift) });
    $app->routes->any('/*any' => {any => ''})->to(cb => sub {
        my $c = shift;
        my $conn = VoiceSim::Common::conn_id($ctx, $c);
        $ctx->{log}->log(conn => $conn, ev => 'http_request', method => $c->req->method,
                         path => $c->req->url->path->to_string);
        $c->render(status => 404, json => { err_code => 'NOT_FOUND', err_msg => 'Not found' });
    });
    return $app;
}

sub _speak {
    my ($ctx, $c) = @_;
    my $log = $ctx->{log};
    my $cfg = $ctx->{cfg};
    my $conn = VoiceSim::Common::conn_id($ctx, $c);
    my $n = ++$ctx->{ws_seq};
    my $rid = request_id();
    my $q = VoiceSim::Common::query_for_log($c);
    $log->log(conn => $conn, ev => 'connect', n => $n, path => '/v1/speak', query => $q,
              headers => VoiceSim::Common::headers_for_log($c->req->headers), request_id => $rid);
    return if VoiceSim::Deepgram::check_auth($ctx, $c, $conn, $rid);
    if (my $f = $cfg->fault('aura', $n, sub { $_[0]{status} })) {
        return VoiceSim::Deepgram::reject($ctx, $c, $conn, $rid, $f->{status}, 'FAULT',
                                          $f->{message} || 'Simulated failure.');
    }
    my $enc = $q->{encoding} // 'linear16';
    my $rate = $q->{sample_rate} // 24000;
    if (!$ENC{$enc} || !$RATES{$rate}) {
        $log->violation(conn => $conn, rule => 'aura_encoding', detail => "encoding=$enc sample_rate=$rate");
        return VoiceSim::Deepgram::reject($ctx, $c, $conn, $rid, 400, 'UNSUPPORTED_AUDIO_FORMAT',
                                          "Unsupported audio format: encoding=$enc sample_rate=$rate");
    }
    $log->violation(conn => $conn, rule => 'aura_not_mulaw_8000',
                    detail => "encoding=$enc sample_rate=$rate (the pipeline needs mulaw/8000)")
        unless $enc eq 'mulaw' && $rate == 8000;
    $c->res->headers->header('dg-request-id' => $rid);
    $c->inactivity_timeout(0);

    my $model = $q->{model} // 'aura-asteria-en';
    my $st = { buf => '', seq => 0, flushes => [], q => VoiceSim::Common::Queue->new };
    my $sendj = sub {
        my ($msg, $delay, $tag) = @_;
        $st->{q}->push($delay // 0, sub {
            return if $st->{closed};
            $log->log(conn => $conn, ev => 'send', frame => 'text', json => $msg);
            $c->send({json => $msg});
        }, $tag);
    };
    my $close = sub {
        my ($code, $reason, $now) = @_;
        my $do = sub {
            return if $st->{closed}++;
            $log->log(conn => $conn, ev => 'server_close', code => $code, reason => $reason // '');
            $c->finish($code, $reason);
        };
        $now ? $do->() : $st->{q}->push(0, $do);
    };
    # Metadata right after the upgrade (a frame queued before the 101
    # has gone out can reach the client ahead of it)
    $sendj->({ type => 'Metadata', request_id => $rid, model_name => $model,
               model_version => '2025-01-01.0', model_uuid => '00000000-a0a0-4000-8000-000000000000',
               additional_model_uuids => [] }, $cfg->get('aura', 'metadata_ms', 20));

    if (my $idle = $cfg->get('aura', 'idle_timeout_ms')) {
        $st->{touch} = sub {
            Mojo::IOLoop->remove($st->{idle}) if $st->{idle};
            $st->{idle} = Mojo::IOLoop->timer($idle / 1000 => sub {
                $log->log(conn => $conn, ev => 'idle_timeout', ms => $idle);
                $close->(1011, 'NET-0001', 1);
            });
        };
        $st->{touch}->();
    }

    $c->on(text => sub {
        my (undef, $text) = @_;
        return if $st->{closed};
        $st->{touch}->() if $st->{touch};
        my $j = eval { decode_json($text) };
        $log->log(conn => $conn, ev => 'recv', frame => 'text',
                  ref $j eq 'HASH' ? (json => $j) : (text => $text));
        my $type = ref $j eq 'HASH' ? $j->{type} // '' : '';
        if ($type eq 'Speak') {
            my $t = $j->{text};
            if (!defined $t || ref $t) {
                $log->violation(conn => $conn, rule => 'aura_bad_speak', detail => 'Speak without text');
                return $close->(1008, 'DATA-0000');
            }
            if (length($st->{buf}) + length($t) > 2000) {
                $log->violation(conn => $conn, rule => 'aura_text_too_long',
                                detail => 'more than 2000 characters buffered');
                return $sendj->({ type => 'Warning', code => 'TEXT_TOO_LONG',
                                  description => 'Text input exceeds 2000 characters; ignored.' });
            }
            $st->{buf} .= $t;
        } elsif ($type eq 'Flush') {
            my $now = time;
            @{ $st->{flushes} } = grep { $_ > $now - 60 } @{ $st->{flushes} };
            if (@{ $st->{flushes} } >= $cfg->get('aura', 'flush_limit', 20)) {
                $log->violation(conn => $conn, rule => 'aura_flush_rate', detail => 'more than 20 Flushes in 60 s');
                return $sendj->({ type => 'Warning', code => 'FLUSH_LIMIT_EXCEEDED',
                                  description => 'Flush limit of 20 per 60 seconds exceeded; Flush ignored.' });
            }
            push @{ $st->{flushes} }, $now;
            my $seq = $st->{seq}++;
            my $buf = $st->{buf};
            $st->{buf} = '';
            my $first = 1;
            if ($buf =~ /\S/) {
                my $audio = VoiceSim::Common::synth($ctx->{dir}, $buf,
                                                    voice => $cfg->get('aura', 'voice', 'en-us+f3'),
                                                    encoding => $enc, rate => $rate);
                my $bpm = $rate * $ENC{$enc} / 1000;
                my $csz = int($cfg->get('aura', 'chunk_ms', 100) * $bpm);
                $log->log(conn => $conn, ev => 'generate', sequence_id => $seq, text => $buf,
                          audio_bytes => length $audio, audio_ms => int(length($audio) / $bpm));
                for (my $o = 0; $o < length $audio; $o += $csz) {
                    my $piece = substr($audio, $o, $csz);
                    $st->{q}->push($first ? $cfg->get('aura', 'first_byte_ms', 120)
                                          : $cfg->get('aura', 'chunk_gap_ms', 10), sub {
                        return if $st->{closed};
                        $log->log(conn => $conn, ev => 'send', frame => 'binary', bytes => length $piece,
                                  sequence_id => $seq);
                        $c->send({binary => $piece});
                    }, 'audio', !$first);
                    $first = 0;
                }
            }
            $sendj->({ type => 'Flushed', sequence_id => $seq }, $first ? $cfg->get('aura', 'first_byte_ms', 120) : 0,
                     'audio');
        } elsif ($type eq 'Clear') {
            my $dropped = $st->{q}->drop(sub { ($_[0] // '') eq 'audio' });
            $log->log(conn => $conn, ev => 'cleared', dropped_frames => $dropped,
                      dropped_chars => length $st->{buf});
            $st->{buf} = '';
            $sendj->({ type => 'Cleared', sequence_id => $st->{seq} ? $st->{seq} - 1 : 0 });
        } elsif ($type eq 'Close') {
            $close->(1000, '');
        } else {
            $log->violation(conn => $conn, rule => 'aura_bad_message',
                            detail => ref $j eq 'HASH' ? "unknown type '$type'" : 'not a JSON object');
            $close->(1008, 'DATA-0000');
        }
    });
    $c->on(binary => sub {
        my (undef, $b) = @_;
        $log->log(conn => $conn, ev => 'recv', frame => 'binary', bytes => length $b);
        $log->violation(conn => $conn, rule => 'aura_binary_frame', detail => 'binary frame sent to /v1/speak');
        $close->(1008, 'DATA-0000');
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

1;
