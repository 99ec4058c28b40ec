# Peers that misbehave over time: a client that stops reading, a silent
# client, a worker shutting down mid-call, and an hour of audio that must
# not grow the worker's memory.  Interactive, so nginx-tests style.

use strict;
use warnings;

use Test::More;
use IO::Select;
use MIME::Base64 ();
use POSIX ();
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(sleep time);
use lib 't/lib';
use VoiceTest::Nginx;
use VoiceTest::WS;
use VoiceTest::Sent;

my $SID = $VoiceTest::WS::TW_STREAM_SID;

$SIG{PIPE} = 'IGNORE';

# masked with a zero key: valid on the wire and cheap to build by the
# hundred thousand
sub frame {
    my ($op, $data) = @_;
    my $n = length $data;
    my $h = chr(0x80 | $op);
    $h .= $n < 126 ? chr(0x80 | $n)
        : $n < 65536 ? chr(0x80 | 126) . pack('n', $n)
        : chr(0x80 | 127) . pack('Q>', $n);
    return $h . "\0\0\0\0" . $data;
}

sub media {
    my ($i) = @_;
    # 160 bytes of μ-law as base64
    my $payload = MIME::Base64::encode_base64("\x7f" x 160, '');
    return frame(1, sprintf('{"event":"media","sequenceNumber":"%d",'
        . '"media":{"track":"inbound","chunk":"%d","timestamp":"%d",'
        . '"payload":"%s"},"streamSid":"%s"}', $i + 1, $i, ($i - 1) * 20,
        $payload, $SID));
}

# user + system CPU of a process, in clock ticks
sub cpu_ticks {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my @f = split ' ', (<$fh> =~ s/^.*\) //r);
    return $f[11] + $f[12];
}

sub connect_call {
    my ($srv, %o) = @_;
    my $s = IO::Socket::INET->new(Proto => 'tcp') or die $!;
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, $o{rcvbuf}) if $o{rcvbuf};
    $s->connect(Socket::pack_sockaddr_in($srv->port,
                                         Socket::inet_aton('127.0.0.1')))
        or die "connect: $!";
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    $s->autoflush(1);
    print $s ws_handshake('/stream');
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        sysread($s, $head, 1, length $head) or die "no 101";
    }
    die "not 101: $head" unless $head =~ m{^HTTP/1\.1 101 };
    print $s frame(1, tw_connected()) . frame(1, tw_start());
    return $s;
}

# --- a client that sends but stops reading: nginx stops reading it too,
#     its queue stays within voice_send_buffer, and send_timeout drops it

{
    my $srv = VoiceTest::Nginx::Server->start(
        listen => 'sndbuf=8k',
        server => 'location = /stream { voice_pipeline echo; '
                . 'voice_echo_delay 0; voice_send_buffer 16k; '
                . 'voice_send_timeout 1s; }');
    my $s = connect_call($srv, rcvbuf => 4096);
    $s->blocking(0);

    my ($sent, $i) = (0, 1);
    my $t0 = time;
    while (time - $t0 < 5) {
        my $buf = join '', map { media($i++) } 1 .. 20;
        my $n = syswrite($s, $buf);
        last if !defined $n && !$!{EAGAIN};
        $sent += $n || 0;
        last if $srv->error_log =~ /call ended/;
        sleep 0.005;
    }

    ok($srv->wait_log(qr/\[error\].*voice: client took no data for 1000 ms \(voice_send_timeout\), (\d+) bytes queued; dropping the call.*call: CA/),
       'a client that stops reading is dropped after voice_send_timeout');
    my ($queued) = $srv->error_log =~ /took no data for 1000 ms \(voice_send_timeout\), (\d+) bytes queued/;
    cmp_ok($queued // 1e9, '<=', 16384, "its queue stayed within voice_send_buffer ($queued bytes)");
    my ($in) = $srv->error_log =~ /call ended after \d+ ms: media in (\d+)/;
    cmp_ok($in // 1e9, '<', $i - 1, "nginx stopped reading it ($in of " . ($i - 1) . " messages read)");
    ok($srv->wait_log(qr/voice: call ended after/), 'and the call is cleaned up');
    is($srv->stop, '', 'valgrind: clean') if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|exited on signal/, 'no alerts');
}

# --- a client that takes nothing for voice_send_timeout is dropped

{
    my $srv = VoiceTest::Nginx::Server->start(
        listen => 'sndbuf=8k',
        server => 'location = /stream { voice_pipeline echo; '
                . 'voice_echo_delay 0; voice_send_buffer 4m; '
                . 'voice_send_timeout 500ms; }');
    my $s = connect_call($srv, rcvbuf => 4096);
    print $s join '', map { media($_) } 1 .. 400;

    ok($srv->wait_log(qr/voice: client took no data for 500 ms \(voice_send_timeout\), \d+ bytes queued; dropping the call/, 5),
       'a client that takes no data is dropped after voice_send_timeout');
    ok($srv->wait_log(qr/voice: call ended after/), 'and the call is cleaned up');
    is($srv->stop, '', 'valgrind: clean') if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|exited on signal/, 'no alerts');
}

# --- a silent client is closed with 1001 after voice_idle_timeout

{
    my $srv = VoiceTest::Nginx::Server->start(
        server => 'location = /stream { voice_pipeline echo; '
                . 'voice_idle_timeout 300ms; }');
    my $s = connect_call($srv);
    my $t0 = time;
    my $sel = IO::Select->new($s);
    my $got = '';
    while ($sel->can_read(5)) {
        last unless sysread($s, $got, 4096, length $got);
        last if $got =~ /\x88/;
    }
    my $took = time - $t0;
    is(ws_decode($got), "close: 1001 idle timeout\n",
       'a silent client gets Close 1001 "idle timeout"');
    cmp_ok($took, '>=', 0.25, 'not before the idle timeout');
    print $s ws_close_frame(1001, '', 1);
    ok($srv->wait_log(qr/voice: client silent for \d+ ms, closing/),
       'the idle close is logged');
    ok($srv->wait_log(qr/voice: call ended after .*close sent 1001 received 1001/),
       'the close handshake completes');
    is($srv->stop, '', 'valgrind: clean') if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
}

# --- a call in a worker that is shutting down ends cleanly

{
    my $srv = VoiceTest::Nginx::Server->start(
        master => 1,
        main => 'worker_shutdown_timeout 500ms;',
        server => 'location = /stream { voice_pipeline echo; '
                . 'voice_echo_delay 0; }');
    my $s = connect_call($srv);
    print $s media(1);
    ok($srv->wait_log(qr/voice: call started/), 'call started');

    $srv->signal('HUP');
    sleep 0.3;
    print $s media(2);
    ok($srv->wait_log(qr/gracefully shutting down/, 5), 'reload began');
    ok($srv->wait_log(qr/voice: call ended after \d+ ms: media in 2 /, 5),
       'the call went on in the old worker until worker_shutdown_timeout');
    is($srv->stop, '', 'valgrind: clean') if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|open socket #\d+ left/,
           'no alert and no socket left behind');
}

# --- an hour of 20 ms frames (180,000) does not grow the worker

{
    my $frames = $ENV{TEST_VOICE_LONG_FRAMES}
                 || ($ENV{TEST_NGINX_USE_VALGRIND} ? 20_000 : 180_000);
    my $srv = VoiceTest::Nginx::Server->start(
        server => 'location = /stream { voice_pipeline echo; '
                . 'voice_echo_delay 0; voice_echo_mark_every 50; '
                . 'voice_idle_timeout 60s; }');
    my $s = connect_call($srv);
    $s->blocking(0);
    my $sel = IO::Select->new($s);
    my ($i, $rss_early, $out, $pending) = (1, undef, 0, '');
    my $cpu0 = cpu_ticks($srv->worker_pid);
    my $sink = '';
    while ($i <= $frames || length $pending) {
        if (!length $pending && $i <= $frames) {
            $pending = join '', map { media($i++) } 1 .. 50;
        }
        my ($r, $w) = IO::Select->select($sel, length $pending ? $sel : undef,
                                         undef, 5);
        last unless $r || $w;
        if ($w && @$w) {
            my $n = syswrite($s, $pending);
            last if !defined $n && !$!{EAGAIN};
            substr($pending, 0, $n, '') if $n;
        }
        if ($r && @$r) {
            my $n = sysread($s, $sink, 262144);
            last if defined $n && $n == 0;
            $out += $n if $n;
        }
        $rss_early = $srv->rss if !defined $rss_early && $i > 10_000;
    }
    # drain what is still on its way
    while ($sel->can_read(0.5)) {
        my $n = sysread($s, $sink, 262144);
        last unless $n;
        $out += $n;
    }
    my $rss_late = $srv->rss;
    my $cpu = (cpu_ticks($srv->worker_pid) - $cpu0) / POSIX::sysconf(POSIX::_SC_CLK_TCK());
    diag(sprintf("worker CPU for %d media messages in and out: %.2f s, "
                 . "%.1f us per message, %.0f us per call-second (50/s)",
                 $frames, $cpu, $cpu * 1e6 / $frames, $cpu * 1e6 * 50 / $frames));
    my $expect = $frames * (length(tw_out_media("\x7f" x 160)) + 4)
               + int($frames / 50) * (length(tw_out_mark('echo-1')) + 2);
    cmp_ok($out, '>=', $expect - 64, "all $frames frames echoed ($out bytes)");
    my $growth = $rss_late - $rss_early;
    diag("worker RSS after 10,000 frames: $rss_early KiB; after $frames: "
         . "$rss_late KiB; growth $growth KiB");
    SKIP: {
        # valgrind keeps freed blocks in quarantine: RSS says nothing there
        skip 'RSS is not meaningful under valgrind', 1
            if $ENV{TEST_NGINX_USE_VALGRIND};
        cmp_ok($growth, '<=', 64, 'worker memory does not grow over the call');
    }
    print $s frame(8, pack('n', 1000));
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    is($srv->stop, '', 'valgrind: clean') if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
}

done_testing();
