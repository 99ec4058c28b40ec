# Run-time DNS of the provider legs through nginx's `resolver`, against a
# local test DNS server (VoiceTest::DNS on 127.0.0.1): the name looked up
# at call time, not at start; every address tried; NXDOMAIN and a silent
# server (resolver_timeout) failing the leg with the call's context;
# nginx's resolver cache answering the next call synchronously; and a
# call that ends while its name is still being resolved.
#
# Only loopback traffic: every host name below is resolved by the local
# test server, and the resolver-less `nginx -t` check uses localhost.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use Time::HiRes qw(sleep time);
use POSIX ();
use lib 't/lib', 'tools/lib';
use VoiceTest::Nginx;
use VoiceTest::DNS;
use VoiceTest::WS;
use VoiceSim::Sim;
use VoiceSim::Caller;
use Mojo::IOLoop;

my $dir = tempdir(CLEANUP => 1);
my $KEY = 'dg-key-7f3a9c';
my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $vg = $ENV{TEST_NGINX_USE_VALGRIND};
my $slow = $vg ? 3 : 1;    # valgrind: longer waits

sub script {
    my ($name, $text) = @_;
    open my $fh, '>', "$dir/$name" or die $!;
    print $fh $text;
    close $fh;
    return "$dir/$name";
}

my $talk = script('talk.txt', "say: Hello there, I would like a table for two.\n"
                              . "wait: 1200\nhangup\n");
my $hold = script('hold.txt', "wait: 20000\nhangup\n");
my $brief = script('brief.txt', "wait: 300\nhangup\n");

sub call {
    my ($srv, $path, $script) = @_;
    return VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . $path,
        script => $script, out => "$dir/out", quiet => 1)->run;
}

sub location {
    my ($path, $url, $ca) = @_;
    return "location = $path { voice_pipeline transcribe; "
         . "voice_stt_url $url; voice_stt_key $KEY; "
         . "voice_ssl_trusted_certificate $ca; }\n";
}

sub finish {
    my ($srv, $what) = @_;
    my $vgr = $srv->stop;
    is($vgr, '', "$what: valgrind clean") if $vg;
    # a connection left open at exit is an [alert] ("open socket ... left")
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|\[emerg\]|exited on signal/,
           "$what: no alert, crash or leaked connection");
}

# nginx (master_process off: the worker itself) still running
sub alive { my $srv = shift; waitpid($srv->pid, POSIX::WNOHANG()) == 0 }

# log lines of one call (a call's lines carry its CallSid)
sub call_log {
    my ($srv, $sum) = @_;
    my $sid = $sum->{call_sid} // '-';
    return join '', grep { /$sid/ } split /^/m, $srv->error_log;
}

# waits until nginx logs the end of this call
sub ended {
    my ($srv, $sum, $timeout) = @_;
    my $deadline = time + ($timeout || 5) * $slow;
    while (time < $deadline) {
        return 1 if call_log($srv, $sum) =~ /voice: call ended/;
        sleep 0.05;
    }
    return 0;
}

# --- nginx -t: config-time resolution only without a resolver

sub nginx_t {
    my ($conf) = @_;
    my $d = tempdir(CLEANUP => 1);
    mkdir "$d/$_" for qw(conf logs);
    open my $fh, '>', "$d/conf/nginx.conf" or die $!;
    print $fh "load_module " . voice_module() . ";\nerror_log logs/error.log;\n"
        . "pid logs/nginx.pid;\nevents {}\nhttp {\n"
        . "access_log off;\nserver {\nlisten 127.0.0.1:1;\n$conf\n}\n}\n";
    close $fh;
    my $out = `$nginx -t -p $d -c conf/nginx.conf 2>&1`;
    return ($? >> 8, $out);
}

my $loc = 'location = /stream { voice_pipeline transcribe; '
        . 'voice_stt_url wss://localhost:4431/v1/listen; voice_stt_key k; '
        . 'voice_twilio_auth_token t; }';

my ($rc, $out) = nginx_t($loc);
is($rc, 0, 'nginx -t without a resolver passes');
like($out, qr/\[notice\].*no "resolver": deepgram host "localhost" resolved now to \d+ address\(es\), kept until the next reload/,
     'without a resolver the host is resolved at configuration time, and nginx -t says so');

($rc, $out) = nginx_t("resolver 127.0.0.1:1 ipv6=off;\n$loc");
is($rc, 0, 'nginx -t with a resolver passes');
unlike($out, qr/resolved now/, 'with a resolver nothing is resolved at configuration time');

# the rest relies on that: *.test must never reach the system's resolver
BAIL_OUT('host names resolved at configuration time despite a resolver')
    if $out =~ /resolved now/;

# --- the test DNS server itself

{
    my $d = VoiceTest::DNS->start(log => "$dir/dns0.log",
        zone => { 'multi.test' => ['127.0.0.2', '127.0.0.1'],
                  'dead.test' => { drop => 1 } });
    my $p = $d->port;
    is_deeply([ VoiceTest::DNS::lookup($p, 'multi.test', 'A') ],
              [ 0, '127.0.0.2', '127.0.0.1' ], 'DNS: A answers in order');
    is_deeply([ VoiceTest::DNS::lookup($p, 'MULTI.test', 'AAAA') ], [ 0 ],
              'DNS: AAAA is an empty NOERROR answer');
    is_deeply([ VoiceTest::DNS::lookup($p, 'nx.test', 'A') ], [ 3 ],
              'DNS: an unknown name is NXDOMAIN');
    is_deeply([ VoiceTest::DNS::lookup($p, 'dead.test', 'A', 0.3) ], [],
              'DNS: a dropped name gets no answer');
    is_deeply([ map { "$_->{name} $_->{type}" } $d->queries ],
              [ 'multi.test A', 'multi.test AAAA', 'nx.test A', 'dead.test A' ],
              'DNS: every query is logged');
    $d->stop;
}

# --- the local DNS server and the STT simulator (its certificate covers
# the test names)

my $dns = VoiceTest::DNS->start(
    log => "$dir/dns.log", ttl => 30,
    zone => { 'stt.test'   => ['127.0.0.1'],
              'multi.test' => ['127.0.0.2', '127.0.0.1'],
              'slow.test'  => { addrs => ['127.0.0.1'], delay => 2000 },
              'slow2.test' => { addrs => ['127.0.0.1'], delay => 2000 },
              'slow3.test' => { addrs => ['127.0.0.1'], delay => 800 },
              'dead.test'  => { drop => 1 } });

my $sim = VoiceSim::Sim->start(dir => "$dir/sim", tls => 1, script => $talk,
                               key => $KEY,
                               config => { tls => { names => [qw(stt.test multi.test slow.test slow3.test)] } });
my $sp = $sim->port('stt');
my $ca = $sim->ca_file;

my $srv = VoiceTest::Nginx::Server->start(
    server => "resolver 127.0.0.1:" . $dns->port . " ipv6=off valid=1s;\n"
            . "resolver_timeout 1s;\n"
            . location('/stt', "wss://stt.test:$sp/v1/listen", $ca)
            . location('/multi', "wss://multi.test:$sp/v1/listen", $ca)
            . location('/nx', "wss://nx.test:$sp/v1/listen", $ca)
            . location('/dead', "wss://dead.test:$sp/v1/listen", $ca)
            . location('/slow', "wss://slow.test:$sp/v1/listen", $ca)
            . location('/slow2', "wss://slow2.test:$sp/v1/listen", $ca)
            . location('/slow3', "wss://slow3.test:$sp/v1/listen", $ca));

# --- (a) resolved at call time

{
    sleep 0.3;
    is(scalar($dns->queries), 0, '(a) no DNS query at nginx start');
    unlike($srv->error_log, qr/resolved now/, '(a) no config-time resolution at start');

    my $t0 = int(time * 1000);
    my $sum = call($srv, '/stt', $talk);
    ok(ended($srv, $sum), '(a) call ended');
    my $log = call_log($srv, $sum);

    my @q = $dns->queries;
    is_deeply([ map { "$_->{name} $_->{type}" } @q ], ['stt.test A'],
              '(a) one A query for stt.test (no AAAA with ipv6=off)');
    cmp_ok($q[0]{ms} // 0, '>=', $t0, '(a) queried when the call came');
    like($log, qr/speech-to-text connected in \d+ ms.*provider: deepgram, endpoint: wss:\/\/stt\.test:$sp\/v1\/listen \(127\.0\.0\.1:$sp\)/,
         '(a) connected to the resolved address');
    like($log, qr/caller turn 1 \(speech_final\): "Hello there, I would like a table for two\."/,
         '(a) the call is transcribed');
    unlike($log, qr/\[error\]/, '(a) no error');
    my ($conn) = $sim->records('stt', ev => 'connect');
    is($conn->{headers}{host}, "stt.test:$sp", '(a) Host: is the name, not the address');
}

# --- (b) two addresses, the first refuses: the second is used

{
    my $sum = call($srv, '/multi', $talk);
    ok(ended($srv, $sum), '(b) call ended');
    my $log = call_log($srv, $sum);
    is(scalar($dns->queries('multi.test')), 1, '(b) one query');
    like($log, qr/connect\(\) failed \(111: Connection refused\) while connecting, provider: deepgram, endpoint: wss:\/\/multi\.test:$sp\/v1\/listen \(127\.0\.0\.2:$sp\)(?s:.*)speech-to-text connected in \d+ ms.*\(127\.0\.0\.1:$sp\)/,
         '(b) 127.0.0.2 refused, then connected to 127.0.0.1, same port');
    like($log, qr/caller turn 1 \(speech_final\): "Hello there/, '(b) the call is transcribed');
    like($log, qr/over 1 connection/, '(b) one STT connection: the failed address is not a retry');
    unlike($log, qr/lost|reconnecting/, '(b) the leg itself never failed');
}

# --- (c) NXDOMAIN, (d) a server that never answers (resolver_timeout):
# both calls at once, each waits for the STT retries to run out

{
    my @calls = map {
        VoiceSim::Caller->new(url => 'ws://127.0.0.1:' . $srv->port . "/$_",
                              script => $hold, out => "$dir/out", quiet => 1)
    } qw(nx dead);
    my $left = @calls;
    $_->start(sub { $left-- }) for @calls;
    Mojo::IOLoop->one_tick while $left;
    my %sum = (nx => $calls[0]->summary, dead => $calls[1]->summary);

    for my $c (['c', 'nx', qr/\(3: Host not found\)/],
               ['d', 'dead', qr/\(110: Operation timed out\)/])
    {
        my ($tag, $name, $why) = @$c;
        my $sum = $sum{$name};
        ok(ended($srv, $sum), "($tag) call ended");
        my $log = call_log($srv, $sum);
        my @fail = $log =~ /^.*could not be resolved.*$/mg;
        ok(@fail, "($tag) the DNS failure is logged");
        like($fail[0] // '', qr/\[error\].*$name\.test could not be resolved $why while resolving, provider: deepgram, endpoint: wss:\/\/$name\.test:$sp\/v1\/listen, .*call: CA[0-9a-f]{32}/,
             "($tag) with the reason, provider, endpoint and call");
        my ($n) = $log =~ /speech-to-text lost \(DNS lookup failed\), giving up after (\d+) attempts/;
        ok($n, "($tag) retried, then given up: " . ($n // 'no'));
        # the first attempt and each retry: one error line apiece
        is(scalar(@fail), ($n // 0) + 1, "($tag) the DNS failure logged once per attempt");
        unlike($log, qr/connect\(\)|connected/, "($tag) nothing connected");
        like($log, qr/close sent 1011/, "($tag) the call is closed with 1011");
        is(($sum->{close} || {})->{code}, 1011, "($tag) the caller saw 1011");
        note("($tag) DNS queries: " . scalar($dns->queries("$name.test")));
    }
}

# --- (f) the call ends while its name is still being resolved (the
# DNS server answers after 2 s, resolver_timeout is 1 s)

# (f1) the caller hangs up: the call waits for the last words, so for
# the lookup, bounded by resolver_timeout
{
    my $t0 = time;
    my $sum = call($srv, '/slow', $brief);
    ok(ended($srv, $sum), '(f1) call ended');
    my $took = time - $t0;
    cmp_ok($took, '<', 3 * $slow, sprintf('(f1) within resolver_timeout (%.1f s)', $took));
    is(scalar($dns->queries('slow.test')), 1, '(f1) the name was being looked up');
    my $log = call_log($srv, $sum);
    like($log, qr/slow\.test could not be resolved \(110: Operation timed out\)/,
         '(f1) the lookup timed out');
    unlike($log, qr/speech-to-text connected|reconnecting/,
           '(f1) no connect and no retry after the hang-up');
}

# (f2) the client drops the connection: the call is torn down with the
# lookup pending, and the late answer finds nobody waiting
{
    my $sid = 'CA' . 'abcdef0123456789' x 2;
    my $c = VoiceTest::WS::Client->connect(port => $srv->port, path => '/slow2');
    is($c && $c->status, 101, '(f2) upgraded');
    $c->send_text(tw_connected());
    $c->send_text(tw_start(call_sid => $sid));
    $c->send_text(tw_media($_ + 2, $_, $_ * 20, "\xff" x 160)) for 1 .. 5;
    my $deadline = time + 2;
    sleep 0.02 while !$dns->queries('slow2.test') && time < $deadline;
    is(scalar($dns->queries('slow2.test')), 1, '(f2) the name is being looked up');
    sleep 0.3;
    close $c->sock;
    my $t_close = int(time * 1000);

    my $sum = { call_sid => $sid };
    ok(ended($srv, $sum, 1), '(f2) call ended at once');
    ok(!$dns->replies('slow2.test'), '(f2) before the answer came');

    $deadline = time + 5;
    sleep 0.05 while !$dns->replies('slow2.test') && time < $deadline;
    ok(scalar($dns->replies('slow2.test')), '(f2) the answer came later');
    sleep 0.5;
    ok(alive($srv), '(f2) nginx survives the late answer');

    my $log = call_log($srv, $sum);
    unlike($log, qr/could not be resolved|speech-to-text connected/,
           '(f2) the lookup was cancelled, not timed out or answered');
    unlike($log, qr/\[error\]/, '(f2) no error');

    # and the worker still works
    my $s2 = call($srv, '/stt', $talk);
    ended($srv, $s2);
    like(call_log($srv, $s2), qr/caller turn 1 \(speech_final\)/, '(f) the next call works');
}

# --- (g) two calls wait for the same lookup, one of them goes away: the
# other gets the answer (nginx's resolver keeps one query per name)

{
    my $y = VoiceSim::Caller->new(url => 'ws://127.0.0.1:' . $srv->port . '/slow3',
                                  script => $talk, out => "$dir/out", quiet => 1);
    my $y_done;
    $y->start(sub { $y_done = 1 });
    my $deadline = time + 5 * $slow;
    Mojo::IOLoop->one_tick while !$dns->queries('slow3.test') && time < $deadline;
    is(scalar($dns->queries('slow3.test')), 1, '(g) the first call asks for the name');

    my $sid = 'CA' . '0123456789abcdef' x 2;
    my $x = VoiceTest::WS::Client->connect(port => $srv->port, path => '/slow3')
        or BAIL_OUT("(g) nginx is gone: $VoiceTest::WS::Client::Error");
    $x->send_text(tw_connected());
    $x->send_text(tw_start(call_sid => $sid));
    $deadline = time + 0.3;
    Mojo::IOLoop->one_tick while time < $deadline;
    close $x->sock;
    $deadline = time + 2 * $slow;
    Mojo::IOLoop->one_tick until ended($srv, { call_sid => $sid }, 0.01) || time > $deadline;
    ok(ended($srv, { call_sid => $sid }, 0.01), '(g) the second call ended');
    ok(!$dns->replies('slow3.test'), '(g) while the lookup was pending');

    Mojo::IOLoop->one_tick until $y_done;
    ok(ended($srv, $y->summary), '(g) the first call ended');
    is(scalar($dns->queries('slow3.test')), 1, '(g) one query for both calls');
    my $log = call_log($srv, $y->summary);
    like($log, qr/speech-to-text connected in \d+ ms.*\(127\.0\.0\.1:$sp\)/,
         '(g) the first call got the answer and connected');
    like($log, qr/caller turn 1 \(speech_final\): "Hello there/, '(g) and is transcribed');
    unlike($srv->error_log, qr/slow3\.test could not be resolved/, '(g) no lookup failed');
}

finish($srv, 'resolver');

# --- (e) nginx's resolver cache: the next call within the TTL asks nobody

{
    my $srv = VoiceTest::Nginx::Server->start(
        server => "resolver 127.0.0.1:" . $dns->port . " ipv6=off;\n"
                . "resolver_timeout 1s;\n"
                . location('/stt', "wss://stt.test:$sp/v1/listen", $ca));
    my $before = scalar $dns->queries('stt.test');

    my $s1 = call($srv, '/stt', $talk);
    ended($srv, $s1);
    is(scalar($dns->queries('stt.test')) - $before, 1, '(e) the first call asks the DNS server');
    my $s2 = call($srv, '/stt', $talk);
    ended($srv, $s2);
    is(scalar($dns->queries('stt.test')) - $before, 1,
       '(e) the second call within the TTL (30 s) is answered from the cache');
    for my $s ($s1, $s2) {
        my $log = call_log($srv, $s);
        like($log, qr/speech-to-text connected in \d+ ms.*\(127\.0\.0\.1:$sp\)/,
             "(e) call $s->{call_sid}: connected");
        like($log, qr/caller turn 1 \(speech_final\): "Hello there/,
             "(e) call $s->{call_sid}: transcribed");
        unlike($log, qr/\[error\]/, "(e) call $s->{call_sid}: no error");
    }
    finish($srv, 'cache');
}

$sim->stop;
$dns->stop;

done_testing();
