package VoiceTest::WS;

# WebSocket (RFC 6455) and Twilio Media Streams helpers for the ngx_voice
# test suites.  Core Perl only (Digest::SHA, MIME::Base64, JSON::PP,
# IO::Select, IO::Socket::INET).
#
#   use VoiceTest::WS;     # exports into the caller AND into main::, because
#                          # `--- xxx eval` sections run in the package
#                          # Test::Base::Filter and call helpers as main::foo
#
# Frame builders/decoders:  ws_accept ws_frame ws_close_frame ws_handshake ws_decode
# Twilio messages:          tw_connected tw_start tw_media tw_dtmf tw_mark tw_stop
#                           twilio_signature, $TW_STREAM_SID $TW_CALL_SID $TW_ACCOUNT_SID
# Interactive client:       VoiceTest::WS::Client (see below)

use strict;
use warnings;

use Exporter ();
use Digest::SHA qw(sha1 hmac_sha1);
use MIME::Base64 qw(encode_base64);
use JSON::PP ();

our @EXPORT = qw(
    ws_accept ws_frame ws_close_frame ws_handshake ws_decode ws_parse_frame
    tw_connected tw_start tw_media tw_dtmf tw_mark tw_stop twilio_signature
    $TW_STREAM_SID $TW_CALL_SID $TW_ACCOUNT_SID
);

# Fixed, well-formed SIDs ("MZ"/"CA"/"AC" + 32 hex digits) so that expected
# output in tests is reproducible.
our $TW_STREAM_SID  = 'MZ' . '0123456789abcdef' x 2;
our $TW_CALL_SID    = 'CA' . 'fedcba9876543210' x 2;
our $TW_ACCOUNT_SID = 'AC' . '00112233445566778899aabbccddeeff';

use constant WS_GUID => '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

sub import {
    my $class = shift;
    my @what = @_ ? @_ : @EXPORT;
    my $caller = caller;
    no strict 'refs';
    for my $pkg (grep { defined } $caller, ($caller eq 'main' ? () : 'main')) {
        for my $sym (@what) {
            if ($sym =~ s/^\$//) {
                *{"${pkg}::$sym"} = \${"${class}::$sym"};
            } else {
                *{"${pkg}::$sym"} = \&{"${class}::$sym"};
            }
        }
    }
}

# Sec-WebSocket-Accept for a Sec-WebSocket-Key.
sub ws_accept {
    my ($key) = @_;
    return encode_base64(sha1($key . WS_GUID), '');
}

# Payloads are bytes; a string with characters above 0xFF is sent as UTF-8.
sub _bytes {
    my ($s) = @_;
    $s = '' unless defined $s;
    if ($s =~ /[^\x00-\xff]/) { utf8::encode($s) } else { utf8::downgrade($s) }
    return $s;
}

# ws_frame($opcode, $payload, $masked, fin => 1, rsv => 0..7 (4 = RSV1,
# 2 = RSV2, 1 = RSV3), mask => 4 bytes, len_form => 16|64)
# The default mask is fixed so that the bytes are reproducible.
sub ws_frame {
    my ($opcode, $payload, $masked, %opt) = @_;
    $payload = _bytes($payload);
    my $fin = exists $opt{fin} ? ($opt{fin} ? 1 : 0) : 1;
    my $rsv = ($opt{rsv} // 0) & 7;
    my $len = length $payload;
    my $out = chr(($fin << 7) | ($rsv << 4) | ($opcode & 0x0f));
    my $mbit = $masked ? 0x80 : 0;
    my $form = $opt{len_form} // ($len < 126 ? 7 : $len <= 0xffff ? 16 : 64);
    if ($form == 7) {
        $out .= chr($mbit | $len);
    } elsif ($form == 16) {
        $out .= chr($mbit | 126) . pack('n', $len);
    } else {
        $out .= chr($mbit | 127) . pack('Q>', $len);
    }
    if ($masked) {
        my $mask = $opt{mask} // "\x11\x22\x33\x44";
        die "ws_frame: mask must be 4 bytes\n" unless length $mask == 4;
        $out .= $mask . _xor_mask($payload, $mask);
    } else {
        $out .= $payload;
    }
    return $out;
}

sub _xor_mask {
    my ($data, $mask) = @_;
    return '' unless length $data;
    my $m = substr($mask x (int(length($data) / 4) + 1), 0, length $data);
    return "$data" ^ "$m";
}

# ws_close_frame($code, $reason, $masked): no code -> empty close payload.
sub ws_close_frame {
    my ($code, $reason, $masked, %opt) = @_;
    my $payload = defined $code ? pack('n', $code) . _bytes($reason) : '';
    return ws_frame(8, $payload, $masked, %opt);
}

# The client's upgrade request.  Extra headers are appended in the given
# order; one named like a default header replaces it, and an undef value
# removes it (for negative tests: no Upgrade, wrong version, ...).
sub ws_handshake {
    my ($path, @extra) = @_;
    my @h = (Host => 'localhost', Upgrade => 'websocket', Connection => 'Upgrade',
             'Sec-WebSocket-Key' => 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version' => '13');
    while (my ($k, $v) = splice(@extra, 0, 2)) {
        my $replaced = 0;
        for (my $i = 0; $i < @h; $i += 2) {
            next unless lc $h[$i] eq lc $k;
            $h[$i + 1] = $v;
            $replaced = 1;
        }
        push @h, $k, $v unless $replaced;
    }
    my $req = "GET " . ($path // '/') . " HTTP/1.1\r\n";
    for (my $i = 0; $i < @h; $i += 2) {
        $req .= "$h[$i]: $h[$i + 1]\r\n" if defined $h[$i + 1];
    }
    return "$req\r\n";
}

# Parse one frame from the front of $$bufref.  Returns undef when more bytes
# are needed, else a hash { opcode, payload, fin, rsv, masked, length } and
# removes the frame from the buffer.  Masked payloads are unmasked.
sub ws_parse_frame {
    my ($bufref) = @_;
    my $buf = $$bufref;
    return undef if length $buf < 2;
    my ($b0, $b1) = unpack('CC', $buf);
    my $len = $b1 & 0x7f;
    my $pos = 2;
    if ($len == 126) {
        return undef if length $buf < 4;
        $len = unpack('n', substr($buf, 2, 2));
        $pos = 4;
    } elsif ($len == 127) {
        return undef if length $buf < 10;
        $len = unpack('Q>', substr($buf, 2, 8));
        $pos = 10;
    }
    my $masked = $b1 & 0x80 ? 1 : 0;
    my $mask = '';
    if ($masked) {
        return undef if length $buf < $pos + 4;
        $mask = substr($buf, $pos, 4);
        $pos += 4;
    }
    return undef if length $buf < $pos + $len;
    my $payload = substr($buf, $pos, $len);
    $payload = _xor_mask($payload, $mask) if $masked;
    substr($$bufref, 0, $pos + $len, '');
    return { fin => $b0 >> 7, rsv => ($b0 >> 4) & 7, opcode => $b0 & 0x0f,
             masked => $masked, payload => $payload, length => $len };
}

# Render server frames as text, one line per frame:
#   text: <payload> | binary: <n> bytes | ping: <payload> | pong: <payload>
#   close: <code> <reason> | close: (no payload) | cont: <payload>
# Non-final frames get " (fin=0)", set RSV bits " (rsv=N)" after the kind.
# A masked frame (servers must not mask), a truncated frame or a malformed
# control frame gives an "error: ..." line and ends the rendering.
sub ws_decode {
    my ($bytes) = @_;
    my $buf = $bytes // '';
    my @out;
    my %names = (0 => 'cont', 1 => 'text', 2 => 'binary', 8 => 'close', 9 => 'ping', 10 => 'pong');
    while (length $buf) {
        my $f = ws_parse_frame(\$buf);
        unless ($f) {
            push @out, "error: truncated frame (" . length($buf) . " bytes left)";
            last;
        }
        my $kind = $names{ $f->{opcode} } // "opcode $f->{opcode}";
        $kind .= " (fin=0)" unless $f->{fin};
        $kind .= " (rsv=$f->{rsv})" if $f->{rsv};
        if ($f->{masked}) {
            push @out, "error: masked $kind frame from server";
            last;
        }
        if ($f->{opcode} >= 8 && ($f->{length} > 125 || !$f->{fin})) {
            push @out, "error: bad control frame ($kind, $f->{length} bytes)";
            last;
        }
        if ($f->{opcode} == 2 || !exists $names{ $f->{opcode} }) {
            push @out, "$kind: $f->{length} bytes";
        } elsif ($f->{opcode} == 8) {
            my $p = $f->{payload};
            if (length $p == 0) {
                push @out, "$kind:";
            } elsif (length $p == 1) {
                push @out, "error: close frame with a 1-byte payload";
                last;
            } else {
                my $line = "$kind: " . unpack('n', $p);
                $line .= " " . substr($p, 2) if length $p > 2;
                push @out, $line;
            }
        } else {
            push @out, "$kind: $f->{payload}";
        }
    }
    return join '', map { "$_\n" } @out;
}

# ------------------------------------------------------------------ Twilio

# JSON with keys in the order Twilio sends them: build from [key, value]
# pairs; a value that is an ARRAY of pairs is a nested object, a SCALAR ref
# is emitted raw (numbers, arrays).
my $JSON = JSON::PP->new->allow_nonref->ascii(0);
sub _obj {
    my @pairs = @_;
    my @parts;
    while (my ($k, $v) = splice(@pairs, 0, 2)) {
        my $val = ref $v eq 'ARRAY' ? _obj(@$v) : ref $v eq 'SCALAR' ? $$v : $JSON->encode("$v");
        push @parts, $JSON->encode($k) . ':' . $val;
    }
    return '{' . join(',', @parts) . '}';
}

sub tw_connected {
    return _obj(event => 'connected', protocol => 'Call', version => '1.0.0');
}

# tw_start(stream_sid, call_sid, account_sid, seq => 1, tracks => [...],
#          params => {k => v}, media_format => {encoding, sampleRate, channels})
sub tw_start {
    my %o = @_;
    my $mf = { encoding => 'audio/x-mulaw', sampleRate => 8000, channels => 1,
               %{ $o{media_format} || {} } };
    my $params = $o{params} || {};
    my $tracks = $o{tracks} || ['inbound'];
    my $sid = $o{stream_sid} // $TW_STREAM_SID;
    return _obj(
        event          => 'start',
        sequenceNumber => $o{seq} // 1,
        start          => [
            accountSid => $o{account_sid} // $TW_ACCOUNT_SID,
            streamSid  => $sid,
            callSid    => $o{call_sid} // $TW_CALL_SID,
            tracks     => \ ('[' . join(',', map { $JSON->encode("$_") } @$tracks) . ']'),
            mediaFormat => [
                encoding   => $mf->{encoding},
                sampleRate => \ (0 + $mf->{sampleRate}),
                channels   => \ (0 + $mf->{channels}),
            ],
            customParameters => [ map { ($_ => $params->{$_}) } sort keys %$params ],
        ],
        streamSid      => $sid,
    );
}

# tw_media($seq, $chunk, $timestamp_ms, $mulaw_bytes, stream_sid => ..., track => 'inbound')
sub tw_media {
    my ($seq, $chunk, $ts, $audio, %o) = @_;
    return _obj(
        event          => 'media',
        sequenceNumber => $seq,
        media          => [
            track     => $o{track} // 'inbound',
            chunk     => $chunk,
            timestamp => $ts,
            payload   => encode_base64($audio // '', ''),
        ],
        streamSid      => $o{stream_sid} // $TW_STREAM_SID,
    );
}

sub tw_dtmf {
    my ($seq, $digit, %o) = @_;
    return _obj(event => 'dtmf', streamSid => $o{stream_sid} // $TW_STREAM_SID,
                sequenceNumber => $seq, dtmf => [ track => 'inbound_track', digit => $digit ]);
}

sub tw_mark {
    my ($seq, $name, %o) = @_;
    return _obj(event => 'mark', sequenceNumber => $seq,
                streamSid => $o{stream_sid} // $TW_STREAM_SID, mark => [ name => $name ]);
}

sub tw_stop {
    my ($seq, %o) = @_;
    return _obj(event => 'stop', sequenceNumber => $seq,
                stop => [ accountSid => $o{account_sid} // $TW_ACCOUNT_SID,
                          callSid    => $o{call_sid} // $TW_CALL_SID ],
                streamSid => $o{stream_sid} // $TW_STREAM_SID);
}

# X-Twilio-Signature: base64(HMAC-SHA1(auth_token, url . sorted name.value
# of the POST params)); an ARRAY value = repeated name (values de-duplicated
# and sorted).
sub twilio_signature {
    my ($token, $url, $params) = @_;
    my $data = $url;
    for my $name (sort keys %{ $params || {} }) {
        my $v = $params->{$name};
        if (ref $v eq 'ARRAY') {
            my %seen;
            $data .= $name . $_ for sort grep { !$seen{$_}++ } @$v;
        } else {
            $data .= $name . $v;
        }
    }
    utf8::encode($data) if utf8::is_utf8($data);
    utf8::encode($token) if utf8::is_utf8($token);
    return encode_base64(hmac_sha1($data, $token), '');
}

# ================================================================== client

package VoiceTest::WS::Client;

# An interactive WebSocket client for dialogues (wait for a frame, react):
#
#   my $c = VoiceTest::WS::Client->connect(port => server_port(), path => '/ws',
#               headers => { 'X-Twilio-Signature' => $sig }, timeout => 5);
#   is $c->status, 101;
#   $c->send_text(tw_connected());
#   my $f = $c->recv_frame(2);            # { opcode, payload, fin, rsv, masked } or undef
#   my $m = $c->recv_until(sub { $_[0]{payload} =~ /"mark"/ }, 5);
#   is $c->close(1000), 1000;             # the server's close code
#
# connect() returns undef (and sets $VoiceTest::WS::Client::Error) only when
# the TCP connection fails; a refused upgrade is an object with ->status,
# ->headers and ->body (read until EOF).

use strict;
use warnings;

use Errno qw(EINTR EAGAIN);
use IO::Select ();
use IO::Socket::INET ();
use MIME::Base64 qw(encode_base64);
use Socket qw(IPPROTO_TCP TCP_NODELAY SOL_SOCKET SO_RCVBUF SHUT_WR);
use Time::HiRes qw(time);

our $Error;

# connect(port => N (default: the runner's server port or 1984),
#         host => '127.0.0.1', path => '/', headers => {..} or [k => v, ..],
#         key => base64 (default random), timeout => 5, rcvbuf => bytes)
sub connect {
    my ($class, %a) = @_;
    my $port = $a{port} // $ENV{TEST_NGINX_SERVER_PORT}
               // (defined $Test::Nginx::Util::ServerPort ? $Test::Nginx::Util::ServerPort : 1984);
    my $timeout = $a{timeout} // 5;
    my $sock = IO::Socket::INET->new(Proto => 'tcp') or do { $Error = "socket: $!"; return undef };
    # A small receive buffer (set before connect) makes backpressure tests quick.
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, $a{rcvbuf}) if $a{rcvbuf};
    my $addr = Socket::pack_sockaddr_in($port, Socket::inet_aton($a{host} // '127.0.0.1'));
    unless (CORE::connect($sock, $addr)) { $Error = "connect to port $port: $!"; return undef }
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    binmode $sock;

    my $self = bless { sock => $sock, sel => IO::Select->new($sock), buf => '',
                       timeout => $timeout, eof => 0, skipped => [] }, $class;
    my $key = $a{key} // encode_base64(join('', map { chr int rand 256 } 1 .. 16), '');
    my $h = $a{headers} || {};
    my @extra = ref $h eq 'ARRAY' ? @$h : map { ($_ => $h->{$_}) } sort keys %$h;
    $self->send_raw(VoiceTest::WS::ws_handshake($a{path} // '/', 'Sec-WebSocket-Key' => $key,
                                                 @extra));

    # Read the response header; keep whatever follows it (early frames).
    my $deadline = time + $timeout;
    while (index($self->{buf}, "\r\n\r\n") < 0) {
        last unless $self->_fill($deadline - time);
    }
    my $end = index($self->{buf}, "\r\n\r\n");
    if ($end < 0) {
        $self->{status} = 0;
        $self->{headers} = {};
        return $self;
    }
    my $head = substr($self->{buf}, 0, $end);
    substr($self->{buf}, 0, $end + 4, '');
    my ($status_line, @lines) = split /\r\n/, $head;
    $self->{status_line} = $status_line;
    ($self->{status}) = $status_line =~ m{^HTTP/\d\.\d\s+(\d+)};
    $self->{status} //= 0;
    my %hdr;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $k = lc $k;
        $hdr{$k} = exists $hdr{$k} ? "$hdr{$k}, $v" : $v;
    }
    $self->{headers} = \%hdr;
    $self->{accept_ok} = ($hdr{'sec-websocket-accept'} // '') eq VoiceTest::WS::ws_accept($key) ? 1 : 0;
    return $self;
}

sub status      { $_[0]{status} }
sub status_line { $_[0]{status_line} }
sub headers     { $_[0]{headers} }
sub header      { $_[0]{headers}{ lc $_[1] } }
sub accept_ok   { $_[0]{accept_ok} }     # Sec-WebSocket-Accept matched our key
sub sock        { $_[0]{sock} }
sub buffer      { $_[0]{buf} }           # received, not yet parsed bytes
sub skipped     { $_[0]{skipped} }       # frames recv_until()/close() passed over

# Read once (waiting up to $wait seconds) into the buffer; 0 on timeout/EOF.
sub _fill {
    my ($self, $wait) = @_;
    return 0 if $self->{eof};
    $wait = 0 if $wait < 0;
    return 0 unless $self->{sel}->can_read($wait);
    my $n = sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf});
    return $self->_fill($wait) if !defined $n && ($! == EINTR || $! == EAGAIN);
    unless ($n) { $self->{eof} = 1; return 0 }
    return 1;
}

# The body of a refused upgrade: read until EOF (or timeout).
sub body {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // $self->{timeout});
    1 while $self->_fill($deadline - time);
    return $self->{buf};
}

sub send_raw {
    my ($self, $data) = @_;
    while (length $data) {
        my $n = syswrite($self->{sock}, $data);
        if (!defined $n) { next if $! == EINTR || $! == EAGAIN; return 0 }
        substr($data, 0, $n, '');
    }
    return 1;
}

# Client frames are masked with a random mask unless masked => 0 or mask => given.
sub send_frame {
    my ($self, $opcode, $payload, %opt) = @_;
    my $masked = exists $opt{masked} ? delete $opt{masked} : 1;
    $opt{mask} //= pack('N', int rand 2**32) if $masked;
    return $self->send_raw(VoiceTest::WS::ws_frame($opcode, $payload, $masked, %opt));
}
sub send_text   { my $s = shift; $s->send_frame(1, @_) }
sub send_binary { my $s = shift; $s->send_frame(2, @_) }
sub send_ping   { my $s = shift; $s->send_frame(9, @_) }

# The next frame, or undef after $timeout seconds (or at EOF).
sub recv_frame {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // $self->{timeout});
    while (1) {
        my $f = VoiceTest::WS::ws_parse_frame(\$self->{buf});
        return $f if $f;
        return undef unless $self->_fill($deadline - time);
    }
}

# Frames until $match->($frame) is true: returns that frame (undef on
# timeout); the frames before it are in ->skipped.
sub recv_until {
    my ($self, $match, $timeout) = @_;
    my $deadline = time + ($timeout // $self->{timeout});
    $self->{skipped} = [];
    while (my $f = $self->recv_frame($deadline - time)) {
        return $f if $match->($f);
        push @{ $self->{skipped} }, $f;
    }
    return undef;
}

# Send a close frame, wait for the server's close frame and return its code
# (1005 for a close without payload, undef if none came), then wait for the
# server to close the TCP connection.
sub close {
    my ($self, $code, $reason, $timeout) = @_;
    $timeout //= $self->{timeout};
    $self->send_raw(VoiceTest::WS::ws_close_frame($code // 1000, $reason // '', 1,
                                                  mask => pack('N', int rand 2**32)));
    my $f = $self->recv_until(sub { $_[0]{opcode} == 8 }, $timeout);
    $self->eof($timeout) if $f;
    CORE::close($self->{sock});
    return undef unless $f;
    return length $f->{payload} >= 2 ? unpack('n', $f->{payload}) : 1005;
}

# For backpressure tests: stop reading (the kernel buffers fill up and the
# server's writes block).  Nothing to do but not call recv; kept for clarity.
sub stop_reading { $_[0]{stopped} = 1; return $_[0] }

# 1 when the server has closed the TCP connection.  Waits up to $timeout
# (default 0) for it; data that arrives meanwhile stays in the buffer.
sub eof {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 0);
    while (!$self->{eof}) {
        last unless $self->_fill($deadline - time);
    }
    return $self->{eof};
}

sub shutdown_write { shutdown($_[0]{sock}, SHUT_WR) }

1;
