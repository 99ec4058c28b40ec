# Self-test of t/lib/VoiceTest/WS.pm (no nginx): frame encoding against
# Protocol::WebSocket, ws_decode, Twilio messages and signatures (the test
# vectors of shared/protocols.md 1.6), and the interactive client against a
# small forked WebSocket server.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(sleep);
use JSON::PP;
use POSIX ();
use Protocol::WebSocket::Frame;
use VoiceTest::WS;

# ---- handshake / frames
is(ws_accept('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', 'ws_accept: RFC 6455 example');
is(ws_frame(1, 'Hello', 0), "\x81\x05Hello", 'unmasked text frame (RFC 6455 5.7)');
is(ws_frame(1, 'Hello', 1, mask => "\x37\xfa\x21\x3d"), "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
   'masked text frame (RFC 6455 5.7)');
is(ws_frame(9, 'Hello', 0), "\x89\x05Hello", 'ping frame');
is(substr(ws_frame(2, 'x' x 256, 0), 0, 4), "\x82\x7e\x01\x00", '16-bit length');
is(substr(ws_frame(2, 'x' x 65536, 0), 0, 10), "\x82\x7f" . pack('Q>', 65536), '64-bit length');
is(substr(ws_frame(1, 'a', 0, len_form => 16), 0, 4), "\x81\x7e\x00\x01", 'forced 16-bit length');
is(substr(ws_frame(1, 'a', 0, len_form => 64), 0, 10), "\x81\x7f" . pack('Q>', 1), 'forced 64-bit length');
is(ws_frame(1, 'a', 0, fin => 0, rsv => 4), "\x41\x01a", 'fin=0, RSV1');
is(ws_close_frame(1000, 'bye', 0), "\x88\x05\x03\xe8bye", 'close frame');
is(ws_close_frame(undef, undef, 0), "\x88\x00", 'close frame without code');
is(ws_frame(1, "\x{e9}t\x{e9}", 0), "\x81\x03\xe9t\xe9",
   'a latin-1 string is sent as its bytes');
is(ws_frame(1, "\x{263a}", 0), "\x81\x03\xe2\x98\xba", 'wide characters are sent as UTF-8');

for my $len (0, 1, 125, 126, 65535, 65536, 70000) {
    my $payload = join '', map { chr(($_ * 7) & 0xff) } 1 .. $len;
    my $f = Protocol::WebSocket::Frame->new(max_payload_size => 1 << 20);
    $f->append(ws_frame(2, $payload, 1, mask => 'abcd'));
    is($f->next_bytes, $payload, "Protocol::WebSocket reads our masked $len-byte frame");
}

is(ws_handshake('/ws'), "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
   . "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 'ws_handshake');
is(ws_handshake('/x', Upgrade => undef, 'X-A' => 1, 'sec-websocket-version' => 8),
   "GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
   . "Sec-WebSocket-Version: 8\r\nX-A: 1\r\n\r\n", 'ws_handshake: remove, replace and add headers');

is(ws_decode(ws_frame(1, 'hello', 0) . ws_frame(2, "\0" x 300, 0) . ws_frame(9, 'p', 0)
             . ws_frame(10, '', 0) . ws_frame(1, 'a', 0, fin => 0) . ws_frame(0, 'b', 0)
             . ws_close_frame(1000, 'bye', 0) . ws_close_frame(1011, '', 0) . ws_close_frame(undef, '', 0)),
   "text: hello\nbinary: 300 bytes\nping: p\npong: \ntext (fin=0): a\ncont: b\nclose: 1000 bye\nclose: 1011\nclose:\n",
   'ws_decode');
is(ws_decode(ws_frame(1, 'm', 1)), "error: masked text frame from server\n", 'ws_decode: masked server frame');
is(ws_decode("\x81\x05he"), "error: truncated frame (4 bytes left)\n", 'ws_decode: truncated');
is(ws_decode(ws_frame(9, 'x' x 126, 0)), "error: bad control frame (ping, 126 bytes)\n", 'ws_decode: long control frame');
is(ws_decode(''), '', 'ws_decode: nothing');

# ---- Twilio
my $json = JSON::PP->new;
is(tw_connected(), '{"event":"connected","protocol":"Call","version":"1.0.0"}', 'tw_connected');
my $start = $json->decode(tw_start(params => { tenant => 'acme' }));
is($start->{sequenceNumber}, '1', 'start: sequenceNumber is the string "1"');
like($start->{start}{streamSid}, qr/^MZ[0-9a-f]{32}$/, 'start: stream SID');
like($start->{start}{callSid}, qr/^CA[0-9a-f]{32}$/, 'start: call SID');
like($start->{start}{accountSid}, qr/^AC[0-9a-f]{32}$/, 'start: account SID');
is_deeply($start->{start}{mediaFormat}, { encoding => 'audio/x-mulaw', sampleRate => 8000, channels => 1 },
          'start: mediaFormat');
like(tw_start(), qr/"sampleRate":8000,"channels":1/, 'start: sampleRate/channels are JSON numbers');
is_deeply($start->{start}{customParameters}, { tenant => 'acme' }, 'start: customParameters');
is(tw_media(4, 2, 5, "\xff" x 160),
   '{"event":"media","sequenceNumber":"4","media":{"track":"inbound","chunk":"2","timestamp":"5","payload":"'
   . ('/' x 212) . '/w=="},"streamSid":"' . $TW_STREAM_SID . '"}', 'tw_media (160 bytes -> 216 base64 chars)');
is(tw_dtmf(5, '1'), qq({"event":"dtmf","streamSid":"$TW_STREAM_SID","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}),
   'tw_dtmf');
is(tw_mark(4, 'my label'), qq({"event":"mark","sequenceNumber":"4","streamSid":"$TW_STREAM_SID","mark":{"name":"my label"}}),
   'tw_mark');
is(tw_stop(5), qq({"event":"stop","sequenceNumber":"5","stop":{"accountSid":"$TW_ACCOUNT_SID","callSid":"$TW_CALL_SID"},"streamSid":"$TW_STREAM_SID"}),
   'tw_stop');

is(twilio_signature('12345', 'https://mycompany.com/myapp.php?foo=1&bar=2',
                    { CallSid => 'CA1234567890ABCDE', Caller => '+12349013030', Digits => '1234',
                      From => '+12349013030', To => '+18005551212' }),
   '0/KCTR6DLpKmkAf8muzZqo1nDgQ=', 'twilio_signature: form POST vector');
is(twilio_signature('12345', 'wss://example.com/media'), '7PR3qMkpDyEJtMrVOY/LDyNq8J8=',
   'twilio_signature: WebSocket URL vector');
is(twilio_signature('12345', 'https://mycompany.com/myapp.php?bodySHA256='
                    . '0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620'),
   'y77kIzt2vzLz71DgmJGsen2scGs=', 'twilio_signature: bodySHA256 vector');

# ---- the client, against a forked WebSocket server
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5, ReuseAddr => 1)
    or die "listen: $!";
my $port = $srv->sockport;
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    serve($srv);
    POSIX::_exit(0);
}
close $srv;

my $c = VoiceTest::WS::Client->connect(port => $port, path => '/echo', timeout => 3,
                                       headers => { 'X-Twilio-Signature' => 'sig' });
ok($c, 'client connected');
is($c->status, 101, 'upgrade: 101');
ok($c->accept_ok, 'upgrade: Sec-WebSocket-Accept matches our key');
is($c->headers->{'x-seen-signature'}, 'sig', 'extra request header reached the server');
is($c->recv_frame(2)->{payload}, 'welcome', 'frame sent right after the 101 header is kept');
$c->send_text('hi');
my $f = $c->recv_frame(2);
is_deeply([ @{$f}{qw(opcode payload fin masked)} ], [ 1, 'echo: hi', 1, 0 ], 'echo frame');
$c->send_text('split');
is($c->recv_frame(2)->{payload}, 'x' x 300, 'frame that arrives byte by byte');
$c->send_text('burst');
my $m = $c->recv_until(sub { $_[0]{payload} eq 'three' }, 2);
ok($m, 'recv_until found its frame');
is(join(',', map { $_->{payload} } @{ $c->skipped }), 'one,two', 'recv_until: frames before it');
$c->send_frame(9, 'pp');
$f = $c->recv_frame(2);
is_deeply([ @{$f}{qw(opcode payload)} ], [ 10, 'pp' ], 'ping -> pong');
is($c->recv_frame(0.2), undef, 'recv_frame times out');
ok(!$c->eof, 'connection still open');
is($c->close(4001, 'done'), 4001, 'close: server echoes our close code');

my $d = VoiceTest::WS::Client->connect(port => $port, path => '/deny', timeout => 3);
is($d->status, 403, 'refused upgrade: status');
is($d->body, "no\n", 'refused upgrade: body');
ok($d->eof, 'refused upgrade: server closed');

my $e = VoiceTest::WS::Client->connect(port => $port, path => '/echo', timeout => 3);
$e->send_text('bye');
ok($e->eof(2), 'eof(): server closed the TCP connection');

waitpid($pid, 0);
done_testing();

# A tiny WebSocket server for the client tests (three connections).
sub serve {
    my ($srv) = @_;
    for (1 .. 3) {
        my $s = $srv->accept or return;
        binmode $s;
        my $buf = '';
        sysread($s, $buf, 65536, length $buf) while index($buf, "\r\n\r\n") < 0;
        my $end = index($buf, "\r\n\r\n");
        my $head = substr($buf, 0, $end);
        substr($buf, 0, $end + 4, '');
        my ($path) = $head =~ m{^GET (\S+)};
        if ($path eq '/deny') {
            syswrite $s, "HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n";
            close $s;
            next;
        }
        my ($key) = $head =~ /Sec-WebSocket-Key: (\S+)/i;
        my ($sig) = $head =~ /X-Twilio-Signature: (\S+)/i;
        syswrite $s, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            . "Sec-WebSocket-Accept: " . ws_accept($key) . "\r\nX-Seen-Signature: " . ($sig // '') . "\r\n\r\n"
            . ws_frame(1, 'welcome', 0);
        while (1) {
            my $fr;
            until ($fr = VoiceTest::WS::ws_parse_frame(\$buf)) {
                sysread($s, $buf, 65536, length $buf) or last;
            }
            last unless $fr && $fr->{masked};
            if ($fr->{opcode} == 8) {
                syswrite $s, ws_frame(8, $fr->{payload}, 0);
                last;
            } elsif ($fr->{opcode} == 9) {
                syswrite $s, ws_frame(10, $fr->{payload}, 0);
            } elsif ($fr->{payload} eq 'split') {
                for my $byte (split //, ws_frame(1, 'x' x 300, 0)) { syswrite $s, $byte; sleep 0.001 }
            } elsif ($fr->{payload} eq 'burst') {
                syswrite $s, join '', map { ws_frame(1, $_, 0) } qw(one two three);
            } elsif ($fr->{payload} eq 'bye') {
                last;
            } else {
                syswrite $s, ws_frame(1, "echo: $fr->{payload}", 0);
            }
        }
        close $s;
    }
}
