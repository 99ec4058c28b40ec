package VoiceSim::Caller;

# A scripted Twilio caller: Twilio's side of a bidirectional Media Streams
# call (<Connect><Stream>), over Mojolicious' own WebSocket client.  See
# docs/caller.md.
#
#   my $summary = VoiceSim::Caller->new(
#       url => 'ws://127.0.0.1:8080/stream', auth_token => '...',
#       script => 't/sim/booking.script',   # path, text or VoiceSim::Script
#       out => '/tmp/calls', params => { tenant => 'acme' },
#   )->run;
#
# run() blocks (it drives Mojo::IOLoop) and returns the summary hashref
# that is also written to call-<CallSid>.summary.json.  start($cb) is the
# non-blocking form (several calls in one loop).

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA qw(hmac_sha1_base64);
use File::Path qw(make_path);
use File::Spec;
use Mojo::IOLoop;
use JSON::PP ();
use Mojo::JSON ();

# Twilio does not escape "/" (Mojo::JSON does, and base64 is full of it)
my $JSON = eval { require Cpanel::JSON::XS; Cpanel::JSON::XS->new->utf8->canonical->allow_nonref }
           || JSON::PP->new->utf8->canonical->allow_nonref;
sub encode_json { $JSON->encode($_[0]) }
sub decode_json { $JSON->decode($_[0]) }
use Mojo::URL;
use Mojo::UserAgent;
use MIME::Base64 qw(encode_base64 decode_base64);
use Scalar::Util qw(blessed weaken);
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

use VoiceSim::Playout;
use VoiceSim::Script;
use VoiceSim::Speech;
use VoiceSim::Wav;

my $FRAME = 160;
my $FRAME_MS = 20;

my %KNOWN = map { $_ => 1 } qw(media mark clear);

sub new {
    my ($class, %o) = @_;
    croak 'url is required' unless $o{url};
    my $self = bless {
        max_wait_ms     => 20000,
        quiet_ms        => 700,
        max_duration_ms => 600000,
        on_violation    => 'continue',
        voice           => 'en-us+f3',
        out             => 'voice-calls',
        params          => {},
        %o,
    }, $class;

    my $url = Mojo::URL->new($self->{url});
    my $scheme = lc($url->scheme // '');
    croak "url must be ws:// or wss://, not \"$self->{url}\"" unless $scheme eq 'ws' || $scheme eq 'wss';
    croak "url must not carry a query string (Twilio strips it; use params)" if $self->{url} =~ /\?/;
    croak "url must not carry a fragment" if $self->{url} =~ /#/;
    croak "on_violation must be continue or close"
        unless $self->{on_violation} =~ /^(?:continue|close)$/;

    # what Twilio signs: the wss:// URL it connected to (see docs/caller.md)
    ($self->{signed_url} = $self->{url}) =~ s{^wss?://}{wss://}i;

    my $s = $self->{script};
    $s = VoiceSim::Script->parse(join('', map { "say: $_\nwait: bot\n" } @{ $self->{say} }) . "hangup\n", 'say')
        if !$s && $self->{say};
    $s = VoiceSim::Script->parse("wait: 1000\nhangup\n", 'default') unless $s;
    $s = ($s !~ /\n/ && -f $s ? VoiceSim::Script->parse_file($s) : VoiceSim::Script->parse($s)) unless blessed $s;
    $self->{script} = $s;
    $self->{actions} = [grep { $_->{op} ne 'reply' } $s->actions];

    $self->{account_sid} //= _sid('AC');
    $self->{call_sid}    //= _sid('CA');
    $self->{stream_sid}  //= _sid('MZ');
    return $self;
}

sub _sid { $_[0] . join '', map { sprintf '%04x', int rand 65536 } 1 .. 8 }

sub signature {
    my ($class, $token, $url) = @_;
    my $sig = hmac_sha1_base64($url, $token);
    return $sig . '=' x ((4 - length($sig) % 4) % 4);
}

sub call_sid   { $_[0]{call_sid} }
sub stream_sid { $_[0]{stream_sid} }
sub summary    { $_[0]{summary} }

sub _clock { clock_gettime(CLOCK_MONOTONIC) * 1000 }
sub _now   { my $s = shift; _clock() - $s->{t0} }      # ms since start

# ---- running ----

sub run {
    my $self = shift;
    my $done;
    $self->start(sub { $done = 1 });
    Mojo::IOLoop->one_tick until $done;
    return $self->{summary};
}

sub start {
    my ($self, $cb) = @_;
    $self->{done_cb} = $cb;

    # synthesise every line before dialling: the call runs in real time
    my $speech = VoiceSim::Speech->new(voice => $self->{voice}, cache => $self->{cache});
    for my $a (@{ $self->{actions} }) {
        $a->{audio} = $speech->ulaw($a->{text}) if $a->{op} eq 'say' || $a->{op} eq 'barge';
    }

    make_path($self->{out});
    my $base = File::Spec->catfile($self->{out}, "call-$self->{call_sid}");
    $self->{files} = { wav => "$base.wav", jsonl => "$base.jsonl", summary => "$base.summary.json" };
    open $self->{log}, '>:raw', $self->{files}{jsonl} or croak "$self->{files}{jsonl}: $!";

    $self->{t0} = _clock();                     # reset when start is sent
    $self->{seq} = 0;
    $self->{chunk} = 0;
    $self->{k} = 0;
    $self->{left} = '';
    $self->{right} = '';
    $self->{sent} = {};
    $self->{recv} = {};
    $self->{violations} = [];
    $self->{timeouts} = [];
    $self->{marks} = [];
    $self->{clears} = [];
    $self->{bot_turns} = [];
    $self->{caller_turns} = [];
    $self->{dtmfs} = [];
    $self->{last_voiced_end} = -1e9;
    $self->{media_recv_bytes} = 0;
    $self->{ai} = 0;

    weaken(my $w = $self);
    $self->{playout} = VoiceSim::Playout->new(
        on_audio => sub { $w->_played(@_) },
        on_mark  => sub { $w->_mark_reached(@_) },
    );

    my $ua = $self->{ua} = Mojo::UserAgent->new(connect_timeout => 10,
                                               inactivity_timeout => 60,
                                               request_timeout => 0);
    $ua->ca($self->{ca}) if $self->{ca};
    my %h;
    $h{'X-Twilio-Signature'} = __PACKAGE__->signature($self->{auth_token}, $self->{signed_url})
        if defined $self->{auth_token};
    $self->_log(-1, 'handshake', { url => $self->{url}, signed_url => $self->{signed_url},
                                   signature => $h{'X-Twilio-Signature'} });
    $ua->websocket($self->{url} => \%h => sub {
        my ($ua, $tx) = @_;
        return unless $w;
        if (!$tx->is_websocket) {
            my $code = $tx->res->code;
            my $err = $tx->error ? $tx->error->{message} : 'no upgrade';
            $w->{handshake} = { status => $code, error => $err };
            $w->_log($w->_now, 'handshake', { status => $code, error => $err });
            $w->{close} = { by => 'server', code => undef,
                            reason => defined $code ? "handshake answered $code" : $err };
            return $w->_finish;
        }
        $w->{tx} = $tx;
        $w->{handshake} = { status => $tx->res->code };
        $tx->max_websocket_size(16 * 1024 * 1024);
        $tx->on(text   => sub { $w->_text($_[1]) if $w });
        $tx->on(binary => sub { $w->_binary($_[1]) if $w });
        $tx->on(finish => sub { $w->_closed($_[1], $_[2]) if $w });
        $w->_begin;
    });
    return $self;
}

sub _begin {
    my $self = shift;
    $self->{connect_ms} = _clock() - $self->{t0};
    $self->{t0} = _clock();
    $self->{started_at} = time;
    $self->_send({ event => 'connected', protocol => 'Call', version => '1.0.0' });
    $self->_send({
        event => 'start',
        sequenceNumber => $self->_seq,
        start => {
            accountSid => $self->{account_sid},
            streamSid => $self->{stream_sid},
            callSid => $self->{call_sid},
            tracks => ['inbound'],
            mediaFormat => { encoding => 'audio/x-mulaw', sampleRate => 8000, channels => 1 },
            customParameters => { %{ $self->{params} } },
        },
        streamSid => $self->{stream_sid},
    });
    $self->{started} = 1;
    weaken(my $w = $self);
    $self->{limit_timer} = Mojo::IOLoop->timer($self->{max_duration_ms} / 1000 => sub {
        return unless $w;
        push @{ $w->{timeouts} }, { t_ms => _r($w->_now), what => 'max call duration reached' };
        $w->_hangup;
    });
    $self->_tick;
}

sub _seq { '' . ++$_[0]{seq} }

sub _send {
    my ($self, $msg) = @_;
    return unless $self->{tx};
    my $json = encode_json($msg);
    $self->{sent}{ $msg->{event} }++;
    $self->_log($self->_now, 'sent', $msg);
    $self->{tx}->send({ text => $json });
}

sub _log {
    my ($self, $t, $dir, $msg, $raw) = @_;
    my $fh = $self->{log} or return;
    my %e = (t_ms => _r($t), dir => $dir);
    if (defined $raw) { $e{raw} = $raw } else { $e{msg} = $msg }
    print $fh encode_json(\%e), "\n";
}

sub _r { defined $_[0] ? 0 + sprintf('%.1f', $_[0]) : undef }

# the drift-free 20 ms clock: frame k is due at t0 + 20k
sub _tick {
    my $self = shift;
    delete $self->{tick_timer};
    return if $self->{hung_up} || $self->{finished};
    my $now = $self->_now;
    $self->{playout}->advance($now);
    $self->_step($now);
    return if $self->{hung_up} || $self->{finished};
    while ($self->{k} * $FRAME_MS <= $now + 0.5) {
        $self->_send_frame;
    }
    my $delay = ($self->{k} * $FRAME_MS - $self->_now) / 1000;
    weaken(my $w = $self);
    $self->{tick_timer} = Mojo::IOLoop->timer($delay > 0 ? $delay : 0 => sub { $w->_tick if $w });
}

sub _send_frame {
    my $self = shift;
    my $k = $self->{k}++;
    my $frame;
    my $t = $self->{turn};
    if ($t && !defined $t->{end_ms}) {
        $t->{start_ms} //= $k * $FRAME_MS;
        $frame = substr($t->{audio}, $t->{off}, $FRAME);
        $t->{off} += $FRAME;
        $t->{end_ms} = ($k + 1) * $FRAME_MS if $t->{off} >= length $t->{audio};
    }
    $frame = $VoiceSim::Speech::SILENCE x $FRAME unless defined $frame && length $frame;
    $frame .= $VoiceSim::Speech::SILENCE x ($FRAME - length $frame);
    $self->{left} .= $frame;
    $self->_send({
        event => 'media',
        sequenceNumber => $self->_seq,
        media => { track => 'inbound', chunk => '' . ++$self->{chunk},
                   timestamp => '' . ($k * $FRAME_MS), payload => encode_base64($frame, '') },
        streamSid => $self->{stream_sid},
    });
}

# ---- the script ----

sub _speak {
    my ($self, $a, $kind) = @_;
    my $turn = { n => scalar(@{ $self->{caller_turns} }) + 1, kind => $kind, text => $a->{text},
                 line => $a->{line}, audio => $a->{audio}, off => 0 };
    push @{ $self->{caller_turns} }, $turn;
    $self->{turn} = $turn;
    return $turn;
}

sub _step {
    my ($self, $now) = @_;
    while (!$self->{hung_up}) {
        my $a = $self->{actions}[ $self->{ai} ];
        if (!$a) { $self->_hangup; return }
        my $st = $self->{as} //= { begin => $now };
        my $op = $a->{op};
        my $done = 0;

        if ($op eq 'say') {
            if (!$st->{turn}) { $st->{turn} = $self->_speak($a, 'say') }
            $done = defined $st->{turn}{end_ms} && $now >= $st->{turn}{end_ms} - 0.5;
        } elsif ($op eq 'wait' && defined $a->{ms}) {
            $done = $now >= $st->{begin} + $a->{ms};
        } elsif ($op eq 'wait') {
            $done = $self->_bot_done($now);
            if (!$done && $now >= $st->{begin} + $self->{max_wait_ms}) {
                push @{ $self->{timeouts} }, { t_ms => _r($now), line => $a->{line},
                                               what => 'wait: bot gave up after '
                                                       . $self->{max_wait_ms} . ' ms' };
                $done = 1;
            }
        } elsif ($op eq 'barge') {
            my $kind = $a->{backchannel} ? 'backchannel' : 'barge';
            if (!$st->{turn}) {
                my $bt = $self->_bot_turn_playing($now);
                $bt //= $self->{bot_turns}[-1]
                    if @{ $self->{bot_turns} } && $self->{bot_turns}[-1]{heard_start_ms} >= $st->{begin};
                my $fire = $bt ? $bt->{heard_start_ms} + $a->{after_ms} : undef;
                my $late = $now >= $st->{begin} + $self->{max_wait_ms};
                if ($late && !$bt) {
                    push @{ $self->{timeouts} }, { t_ms => _r($now), line => $a->{line},
                                                   what => "$kind: the bot never started talking; spoke anyway" };
                }
                if ($late || (defined $fire && $now >= $fire)) {
                    $st->{turn} = $self->_speak($a, $kind);
                    $st->{turn}{bot_turn} = $bt->{n} if $bt;
                }
            }
            $done = $st->{turn} && defined $st->{turn}{end_ms} && $now >= $st->{turn}{end_ms} - 0.5;
        } elsif ($op eq 'dtmf') {
            my @d = split //, $a->{digits};
            $st->{i} //= 0;
            while ($st->{i} < @d && $now >= $st->{begin} + 100 * $st->{i}) {
                my $digit = $d[ $st->{i}++ ];
                push @{ $self->{dtmfs} }, { t_ms => _r($now), digit => $digit };
                $self->_send({ event => 'dtmf', streamSid => $self->{stream_sid},
                               sequenceNumber => $self->_seq,
                               dtmf => { track => 'inbound_track', digit => $digit } });
            }
            $done = $st->{i} >= @d;
        } elsif ($op eq 'hangup') {
            $self->{ai}++;
            delete $self->{as};
            $self->_hangup;
            return;
        } else {
            $done = 1;                          # not the caller's business
        }
        return unless $done;
        $self->{ai}++;
        delete $self->{as};
    }
}

# the bot turn being heard now (voiced audio within the quiet window)
sub _bot_turn_playing {
    my ($self, $now) = @_;
    my $bt = $self->{cur_bot} or return undef;
    return $now - $self->{last_voiced_end} < $self->{quiet_ms} ? $bt : undef;
}

# "wait: bot": the bot was heard since the caller last started speaking
# (after a barge-in: since it ended, the interrupted audio is no answer),
# its queued audio has played out, every mark came back, and it has been
# quiet for quiet_ms
sub _bot_done {
    my ($self, $now) = @_;
    my $ct = $self->{caller_turns}[-1];
    my $since = !$ct ? -1
              : $ct->{kind} eq 'barge' ? $ct->{end_ms} // $now
              : $ct->{start_ms} // $now;
    return 0 unless $self->{last_voiced_end} > $since;
    my $p = $self->{playout};
    return 0 if $p->pending_marks;
    return 0 if grep { $_->{voiced} } $p->queued_meta;
    return $now - $self->{last_voiced_end} >= $self->{quiet_ms};
}

# ---- receiving ----

sub _violation {
    my ($self, $code, $detail, $raw) = @_;
    my $now = $self->_now;
    my $v = { t_ms => _r($now), code => $code, detail => $detail };
    $v->{message} = length $raw > 300 ? substr($raw, 0, 300) . '...' : $raw if defined $raw;
    push @{ $self->{violations} }, $v;
    if ($self->{on_violation} eq 'close' && !$self->{hung_up} && $self->{tx}) {
        $self->{hung_up} = 1;
        $self->{close_sent} = { code => 1008, reason => "31924 protocol error: $code" };
        $self->_log($now, 'close', $self->{close_sent});
        $self->{tx}->finish(1008, "31924 protocol error: $code");
        $self->_failsafe;
    }
}

sub _binary {
    my ($self, $bytes) = @_;
    $self->{recv}{'(binary)'}++;
    $self->_log($self->_now, 'recv-binary', undef, encode_base64($bytes, ''));
    if ($self->{hung_up}) { $self->{after_stop}++; return }
    $self->_violation('binary_frame', 'binary frame of ' . length($bytes) . ' bytes (Twilio takes text frames only)');
}

sub _text {
    my ($self, $bytes) = @_;
    my $now = $self->_now;
    if ($self->{hung_up}) {                 # in flight when we hung up
        $self->{after_stop}++;
        $self->_log($now, 'recv', undef, $bytes);
        return;
    }
    my $copy = $bytes;
    if (!utf8::decode($copy)) {
        $self->{recv}{'(invalid)'}++;
        $self->_log($now, 'recv', undef, $bytes);
        return $self->_violation('invalid_utf8', 'text frame is not UTF-8');
    }
    my $msg = eval { decode_json($bytes) };
    if (!defined $msg || ref $msg ne 'HASH') {
        $self->{recv}{'(invalid)'}++;
        $self->_log($now, 'recv', undef, $bytes);
        return $self->_violation(defined $msg ? 'not_an_object' : 'bad_json',
                                 defined $msg ? 'message is not a JSON object'
                                              : 'JSON does not parse', $bytes);
    }
    my $ev = $msg->{event};
    $self->{recv}{ defined $ev && !ref $ev ? $ev : '(none)' }++;
    $self->_log($now, 'recv', $msg);

    return $self->_violation('no_event', 'message without an "event"', $bytes)
        if !defined $ev || ref $ev;
    return $self->_violation('before_start', "\"$ev\" before our start", $bytes)
        unless $self->{started};
    return $self->_violation('unknown_event', "unknown event \"$ev\"", $bytes)
        unless $KNOWN{$ev};
    my $sid = $msg->{streamSid};
    return $self->_violation('wrong_stream_sid',
                             defined $sid ? "streamSid \"$sid\" is not ours" : 'no streamSid', $bytes)
        if !defined $sid || ref $sid || $sid ne $self->{stream_sid};

    my $p = $self->{playout};
    if ($ev eq 'media') {
        my $b64 = ref $msg->{media} eq 'HASH' ? $msg->{media}{payload} : undef;
        return $self->_violation('media_without_payload', 'media without media.payload', $bytes)
            if !defined $b64 || ref $b64;
        return $self->_violation('bad_base64', 'media.payload is not valid base64', $bytes)
            unless length($b64) % 4 == 0 && $b64 =~ m{^[A-Za-z0-9+/]*={0,2}$};
        my $audio = decode_base64($b64);
        $self->_violation('riff_header', 'media.payload starts with a RIFF/WAV header (played as noise)')
            if substr($audio, 0, 4) eq 'RIFF';
        $self->{media_recv_bytes} += length $audio;
        my $voiced = VoiceSim::Speech::voiced($audio);
        for my $ct (@{ $self->{caller_turns} }) {
            next unless defined $ct->{end_ms} && $now >= $ct->{end_ms};
            $ct->{bot_media_ms} //= $now;
            $ct->{bot_speech_received_ms} //= $now if $voiced;
        }
        $p->media($now, $audio, { recv_ms => $now, voiced => $voiced });
    } elsif ($ev eq 'mark') {
        my $name = ref $msg->{mark} eq 'HASH' ? $msg->{mark}{name} : undef;
        return $self->_violation('mark_without_name', 'mark without mark.name', $bytes)
            if !defined $name || ref $name || !length $name;
        push @{ $self->{marks} }, { name => $name, received_ms => _r($now),
                                    queued_bytes => $p->queued };
        $p->mark($now, $name);
    } elsif ($ev eq 'clear') {
        my $pending = $p->pending_marks;
        my $dropped = $p->clear($now);
        my $c = { t_ms => _r($now), dropped_bytes => $dropped, dropped_ms => $dropped / 8,
                  marks_flushed => $pending };
        push @{ $self->{clears} }, $c;
        if (my $bt = $self->{cur_bot}) {
            if ($dropped || $self->_bot_turn_playing($now)) {
                $bt->{cleared} = 1;
                $bt->{cleared_ms} = _r($now);
                $c->{bot_turn} = $bt->{n};
            }
            delete $self->{cur_bot};
        }
        for my $ct (@{ $self->{caller_turns} }) {
            next unless defined $ct->{start_ms} && $ct->{start_ms} <= $now && !defined $ct->{clear_ms};
            next unless $ct->{kind} ne 'say';
            $ct->{clear_ms} = _r($now);
            $ct->{clear_after_onset_ms} = _r($now - $ct->{start_ms});
        }
        for my $d (@{ $self->{dtmfs} }) {
            next if defined $d->{clear_ms};
            $d->{clear_ms} = _r($now);
            $d->{clear_after_ms} = _r($now - $d->{t_ms});
        }
    }
}

# play-out callbacks
sub _played {
    my ($self, $pos, $bytes, $meta) = @_;
    my $len = length $bytes;
    my $have = length $self->{right};
    $self->{right} .= $VoiceSim::Speech::SILENCE x ($pos - $have) if $pos > $have;
    substr($self->{right}, $pos, $len) = $bytes;
    for (my $o = 0; $o < $len; $o += $FRAME) {
        my $slice = substr($bytes, $o, $FRAME);
        next unless VoiceSim::Speech::voiced($slice);
        my $t = ($pos + $o) / 8;
        my $end = $t + length($slice) / 8;
        my $bt = $self->{cur_bot};
        if (!$bt || $t - $self->{last_voiced_end} > $self->{quiet_ms}) {
            $bt = $self->{cur_bot} = { n => scalar(@{ $self->{bot_turns} }) + 1,
                                       heard_start_ms => _r($t), received_ms => _r($meta->{recv_ms}),
                                       voiced_ms => 0, marks => [], cleared => 0 };
            push @{ $self->{bot_turns} }, $bt;
        }
        $bt->{heard_end_ms} = _r($end);
        $bt->{voiced_ms} += length($slice) / 8;
        $self->{last_voiced_end} = $end;
        for my $ct (@{ $self->{caller_turns} }) {
            $ct->{bot_speech_heard_ms} //= $t if defined $ct->{end_ms} && $t >= $ct->{end_ms};
        }
    }
}

sub _mark_reached {
    my ($self, $name, $t, $outcome) = @_;
    my ($m) = grep { $_->{name} eq $name && !defined $_->{echoed_ms} } @{ $self->{marks} };
    if ($m) {
        $m->{echoed_ms} = _r($t);
        $m->{latency_ms} = _r($t - $m->{received_ms});
        $m->{outcome} = $outcome;
    }
    my $bt = $self->{cur_bot} || $self->{bot_turns}[-1];
    push @{ $bt->{marks} }, $name if $bt && $outcome ne 'cleared';
    return if $self->{hung_up};
    $self->_send({ event => 'mark', sequenceNumber => $self->_seq,
                   streamSid => $self->{stream_sid}, mark => { name => $name } });
}

# ---- ending ----

sub _hangup {
    my $self = shift;
    return if $self->{hung_up} || $self->{finished};
    my $now = $self->_now;
    $self->{playout}->advance($now);
    $self->_send({ event => 'stop', sequenceNumber => $self->_seq,
                   stop => { accountSid => $self->{account_sid}, callSid => $self->{call_sid} },
                   streamSid => $self->{stream_sid} });
    $self->{hung_up} = 1;
    $self->{close_sent} = { code => 1000, reason => '' };
    $self->_log($now, 'close', $self->{close_sent});
    $self->{tx}->finish(1000) if $self->{tx};
    $self->_failsafe;
}

sub _failsafe {
    my $self = shift;
    weaken(my $w = $self);
    $self->{failsafe} = Mojo::IOLoop->timer(3 => sub {
        return unless $w && !$w->{finished};
        $w->{close} //= { by => 'caller', code => undef, reason => 'no close from the server within 3 s' };
        $w->_finish;
    });
}

sub _closed {
    my ($self, $code, $reason) = @_;
    my $now = $self->_now;
    $self->_log($now, 'closed', { code => $code, reason => $reason });
    $self->{playout}->advance($now) unless $self->{hung_up};
    $self->{close} //= {
        by => $self->{hung_up} ? 'caller' : 'server',
        code => $code, reason => $reason // '',
        ($self->{hung_up} ? () : (t_ms => _r($now))),
    };
    $self->_finish;
}

sub _finish {
    my $self = shift;
    return if $self->{finished}++;
    Mojo::IOLoop->remove($_) for grep { defined } delete @$self{qw(tick_timer limit_timer failsafe)};
    my $now = $self->{started} ? $self->_now : 0;
    $self->{duration_ms} = $now;
    if ($self->{tx} && !$self->{tx}->is_finished) { $self->{tx}->finish(1000) }
    delete $self->{tx};

    $_->{outcome} //= 'pending' for @{ $self->{marks} };
    VoiceSim::Wav->write_stereo($self->{files}{wav}, $self->{left}, $self->{right});
    close $self->{log} if $self->{log};
    delete $self->{log};

    my $s = $self->{summary} = $self->_summary;
    open my $fh, '>:raw', $self->{files}{summary} or croak "$self->{files}{summary}: $!";
    print $fh JSON::PP->new->canonical->pretty->encode($s);
    close $fh;
    delete $self->{ua};
    my $cb = delete $self->{done_cb};
    $cb->($s) if $cb;
}

sub _summary {
    my $self = shift;
    my @unrun = map { { line => $_->{line}, op => $_->{op} } }
                @{ $self->{actions} }[ $self->{ai} .. $#{ $self->{actions} } ];
    my @turns = map {
        my $ct = $_;
        my %t = map { $_ => $ct->{$_} } grep { defined $ct->{$_} }
            qw(n kind text line start_ms end_ms bot_turn clear_ms clear_after_onset_ms);
        $t{end_ms} //= undef;
        for my $k (qw(bot_media bot_speech_received bot_speech_heard)) {
            next unless defined $ct->{"${k}_ms"} && defined $ct->{end_ms};
            $t{"${k}_after_ms"} = _r($ct->{"${k}_ms"} - $ct->{end_ms});
        }
        my ($resp) = grep { defined $ct->{start_ms} && $_->{heard_start_ms} >= $ct->{start_ms} }
                     @{ $self->{bot_turns} };
        if ($resp) {
            $t{response_bot_turn} = $resp->{n};
            $t{response_heard_after_start_ms} = _r($resp->{heard_start_ms} - $ct->{start_ms});
        }
        \%t;
    } @{ $self->{caller_turns} };
    for my $bt (@{ $self->{bot_turns} }) {
        $bt->{duration_ms} = _r($bt->{heard_end_ms} - $bt->{heard_start_ms});
        $bt->{voiced_ms} = _r($bt->{voiced_ms});
        $bt->{heard_after_received_ms} = _r($bt->{heard_start_ms} - $bt->{received_ms});
    }
    my %mo;
    $mo{ $_->{outcome} }++ for @{ $self->{marks} };
    my $p = $self->{playout};
    my $hs = $self->{handshake} || {};
    my $close = $self->{close} || {};
    my $ok = ($hs->{status} // 0) == 101 && !@{ $self->{violations} } && !@{ $self->{timeouts} }
             && !@unrun && ($close->{by} // '') eq 'caller' && ($close->{code} // 1000) == 1000;
    return {
        ok => $ok ? Mojo::JSON::true : Mojo::JSON::false,
        url => $self->{url}, signed_url => $self->{signed_url},
        account_sid => $self->{account_sid}, call_sid => $self->{call_sid},
        stream_sid => $self->{stream_sid}, started_at => $self->{started_at},
        params => $self->{params},
        handshake => { %$hs, ms => _r($self->{connect_ms}) },
        duration_ms => _r($self->{duration_ms}),
        close => $close, close_sent => $self->{close_sent},
        counts => {
            sent => $self->{sent}, received => $self->{recv},
            media_bytes_sent => length $self->{left},
            media_bytes_received => $self->{media_recv_bytes},
            media_bytes_played => $p->played, media_bytes_cleared => $p->dropped,
            media_bytes_unplayed => $p->queued,
            marks => scalar @{ $self->{marks} }, marks_by_outcome => \%mo,
            clears => scalar @{ $self->{clears} }, violations => scalar @{ $self->{violations} },
            after_stop => $self->{after_stop} // 0,
        },
        violations => $self->{violations},
        timeouts => $self->{timeouts},
        unrun_actions => \@unrun,
        marks => $self->{marks},
        clears => $self->{clears},
        dtmf => $self->{dtmfs},
        caller_turns => \@turns,
        bot_turns => $self->{bot_turns},
        files => $self->{files},
    };
}

# ---- a few lines for people ----

sub format_summary {
    my ($class, $s) = @_;
    my $f = sub { defined $_[0] ? sprintf('%.0f ms', $_[0]) : '-' };
    my $c = $s->{counts};
    my $cl = $s->{close} || {};
    my @o = sprintf('call %s (stream %s): %s, %.1f s, handshake %s, closed by %s %s%s',
        $s->{call_sid}, $s->{stream_sid}, $s->{ok} ? 'OK' : 'NOT OK', ($s->{duration_ms} // 0) / 1000,
        $s->{handshake}{status} // 'failed', $cl->{by} // '?', $cl->{code} // '-',
        length($cl->{reason} // '') ? " \"$cl->{reason}\"" : '');
    my $mo = $c->{marks_by_outcome};
    push @o, sprintf('  sent %d media, %d dtmf; received %d media (%.1f s of audio, %.1f s played, %.1f s cleared), '
                     . '%d marks (%s), %d clears',
        $c->{sent}{media} // 0, $c->{sent}{dtmf} // 0, $c->{received}{media} // 0,
        $c->{media_bytes_received} / 8000, $c->{media_bytes_played} / 8000,
        $c->{media_bytes_cleared} / 8000, $c->{marks},
        join(', ', map { "$mo->{$_} $_" } sort keys %$mo) || 'none', $c->{clears});
    my @lat = sort { $a <=> $b } map { $_->{latency_ms} } grep { defined $_->{latency_ms} } @{ $s->{marks} };
    push @o, sprintf('  mark echo latency: min %s, median %s, max %s',
                     $f->($lat[0]), $f->($lat[$#lat / 2]), $f->($lat[-1])) if @lat;
    for my $t (@{ $s->{caller_turns} }) {
        push @o, sprintf('  caller %d (%s) "%s" %s-%s: bot speech received %s / heard %s after end of speech%s%s',
            $t->{n}, $t->{kind}, $t->{text}, $f->($t->{start_ms}), $f->($t->{end_ms}),
            $f->($t->{bot_speech_received_after_ms}), $f->($t->{bot_speech_heard_after_ms}),
            defined $t->{response_bot_turn}
                ? ", bot turn $t->{response_bot_turn} heard " . $f->($t->{response_heard_after_start_ms}) . ' after onset' : '',
            defined $t->{clear_after_onset_ms} ? ', clear ' . $f->($t->{clear_after_onset_ms}) . ' after onset' : '');
    }
    for my $b (@{ $s->{bot_turns} }) {
        push @o, sprintf('  bot %d: heard %s-%s (%.1f s speech)%s%s', $b->{n}, $f->($b->{heard_start_ms}),
            $f->($b->{heard_end_ms}), $b->{voiced_ms} / 1000, $b->{cleared} ? ', CLEARED' : '',
            @{ $b->{marks} } ? ", marks $b->{marks}[0]..$b->{marks}[-1]" : '');
    }
    push @o, sprintf('  dtmf %s at %s%s', $_->{digit}, $f->($_->{t_ms}),
                     defined $_->{clear_after_ms} ? ', clear after ' . $f->($_->{clear_after_ms}) : '')
        for @{ $s->{dtmf} };
    push @o, "  VIOLATION at $_->{t_ms} ms: $_->{code}: $_->{detail}" for @{ $s->{violations} };
    push @o, "  TIMEOUT at $_->{t_ms} ms: $_->{what}" for @{ $s->{timeouts} };
    push @o, '  not run: ' . join(', ', map { "line $_->{line} $_->{op}" } @{ $s->{unrun_actions} })
        if @{ $s->{unrun_actions} };
    push @o, "  files: $s->{files}{wav}", "         $s->{files}{jsonl}", "         $s->{files}{summary}";
    return join("\n", @o) . "\n";
}

1;
