# voice_zone, voice_max_calls and voice_status: call metrics shared by
# the workers, read as JSON or Prometheus text, a health check, a limit
# on concurrent calls, and counters that live through a reload while a
# call goes on in the old worker.  Real agent calls: a scripted Twilio
# caller against the provider simulators (as t/100-agent.t).
#
# Nothing here depends on how fast anything is: values are compared with
# the call records of the same calls, and every wait has seconds of
# margin.  TEST_VOICE_KEEP=1 keeps the files.

use strict;
use warnings;

use Test::More;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use List::Util qw(sum0);
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
note("files: $dir") if $ENV{TEST_VOICE_KEEP};
my $slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 4 : 1;

my @STAGES = qw(endpointing llm_first_token tts_first_audio playout total);
my @BOUNDS = (25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000);
my @REASONS = ('caller hung up', 'stream closed by Twilio', 'connection lost',
               'nginx shutting down', 'speech-to-text unavailable',
               'text-to-speech unavailable', 'caller silent', 'max duration',
               'agent ended the call', 'transferred', 'transfer failed',
               'internal error', 'other');

# ---- helpers -----------------------------------------------------------------

# one HTTP/1.0 request, answered and closed by nginx
sub http {
    my ($port, $method, $path, %h) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 5) or return {};
    print $s "$method $path HTTP/1.0\r\nHost: localhost\r\n"
        . join('', map { "$_: $h{$_}\r\n" } sort keys %h) . "\r\n";
    my $r = do { local $/; <$s> } // '';
    close $s;
    my ($head, $body) = split /\r\n\r\n/, $r, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    my %hdr;
    for (split /\r\n/, $head // '') {
        $hdr{ lc $1 } = $2 if /^([^:]+):\s*(.*)$/;
    }
    return { status => $status // 0, headers => \%hdr, body => $body // '' };
}

sub status_json {
    my ($port, $path) = @_;
    my $r = http($port, 'GET', $path // '/status');
    return $r->{status} == 200 ? eval { decode_json($r->{body}) } : undef;
}

# Prometheus text: value by "name{labels}", and the HELP/TYPE seen
sub prom {
    my ($body) = @_;
    my (%v, %help, %type, @bad);
    for (split /\n/, $body) {
        if (/^# HELP (\w+) \S/) { $help{$1} = 1; next }
        if (/^# TYPE (\w+) (counter|gauge|histogram)$/) { $type{$1} = $2; next }
        if (/^(\w+)(\{(?:\w+="(?:[^"\\]|\\.)*",?)*\})? (\d+)$/) {
            $v{ $1 . ($2 // '') } = $3;
            next;
        }
        push @bad, $_;
    }
    return (\%v, \%help, \%type, \@bad);
}

# runs the event loop (the callers) until $cond holds, checked every 0.1 s
sub drive {
    my ($cond, $timeout) = @_;
    my $deadline = time + $timeout * $slow;
    my $tick = Mojo::IOLoop->recurring(0.05 => sub {});
    my $ok;
    while (1) {
        last if $ok = $cond->();
        last if time > $deadline;
        my $next = time + 0.1;
        Mojo::IOLoop->one_tick while time < $next;
    }
    Mojo::IOLoop->remove($tick);
    return $ok;
}

my $speech = VoiceSim::Speech->new(voice => 'en-us+f3');
my $n_script = 0;

sub script_file {
    my ($text) = @_;
    my $f = write_file("$dir/script-" . ++$n_script . '.txt', $text);
    $speech->ulaw($_) for VoiceSim::Script->parse_file($f)->utterances;
    return $f;
}

# the callers are kept: they hold only weak references to themselves
my @CALLERS;

sub dial {
    my ($port, $script, $done) = @_;
    my $c = VoiceSim::Caller->new(
        url => "ws://127.0.0.1:$port/stream", script => $script,
        out => "$dir/calls", params => { caller => 'Dana' },
        max_wait_ms => 20000, max_duration_ms => 60000);
    push @CALLERS, $c;
    $c->start($done);
    return $c;
}

sub no_alerts {
    my ($srv, $what) = @_;
    my $log = $srv->error_log;
    unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]|exited on signal|open socket/,
           "$what: no alert, crash or leaked socket");
    unlike($log, qr/\[error\]/, "$what: no error logged");
}

# what the call records say each stage's histogram should hold: one
# sample per answer to the caller (a turn with a final transcript)
sub expected_latency {
    my (@records) = @_;
    my %e = map { $_ => [] } @STAGES;
    for my $rec (@records) {
        for my $t (@{ $rec->{turns} || [] }) {
            next unless defined $t->{timings_ms}{transcript};
            for my $s (@STAGES) {
                my $v = $t->{latency_ms}{$s};
                push @{ $e{$s} }, $v < 0 ? 0 : $v if defined $v;
            }
        }
    }
    return \%e;
}

sub cumulative {
    my ($samples) = @_;
    my %b;
    for my $i (0 .. $#BOUNDS) {
        $b{ $BOUNDS[$i] } = grep { $_ <= $BOUNDS[$i] } @$samples;
    }
    $b{'+Inf'} = @$samples;
    return \%b;
}

# ---- nginx -t ------------------------------------------------------------------

{
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $so = voice_module();
    my $n = 0;
    my $nginx_t = sub {
        my ($http, $server) = @_;
        my $d = "$dir/nginx-t-" . ++$n;
        make_path("$d/conf", "$d/logs");
        write_file("$d/conf/nginx.conf",
                   "load_module $so;\nerror_log logs/error.log;\npid logs/nginx.pid;\n"
                   . "events {}\nhttp {\naccess_log off;\n$http\nserver {\n"
                   . "listen 127.0.0.1:1;\n$server\n}\n}\n");
        my $out = `$nginx -t -p $d -c conf/nginx.conf 2>&1`;
        return ($? >> 8, $out);
    };
    my $echo = 'location = /stream { voice_pipeline echo; '
             . 'voice_twilio_auth_token t0k; }';

    my ($rc, $out) = $nginx_t->('voice_zone voice 64k; voice_max_calls 5;',
                                "$echo location = /status { voice_status; } "
                                . 'location = /health { voice_status health voice; }');
    is($rc, 0, 'nginx -t: zone, limit, status and health') or diag $out;

    ($rc, $out) = $nginx_t->('', 'location = /status { voice_status voice; } '
                             . 'location = /stream { voice_pipeline echo; '
                             . 'voice_twilio_auth_token t0k; voice_zone voice 64k; '
                             . 'voice_max_calls 2; }');
    is($rc, 0, 'nginx -t: voice_status may name a zone declared further on')
        or diag $out;

    ($rc, $out) = $nginx_t->('voice_zone voice 64k; voice_max_calls 5;',
                             'location = /stream { voice_pipeline echo; '
                             . 'voice_twilio_auth_token t0k; voice_zone off; '
                             . 'voice_max_calls 0; }');
    is($rc, 0, 'nginx -t: "voice_zone off" with no limit') or diag $out;

    ($rc, $out) = $nginx_t->('', "$echo location = /x { voice_pipeline echo; "
                             . 'voice_twilio_auth_token t0k; voice_max_calls 1; }');
    isnt($rc, 0, 'nginx -t fails: voice_max_calls without a zone');
    like($out, qr/\[emerg\].*"voice_max_calls" in location "\/x" needs a "voice_zone"/,
         'and says so');

    ($rc, $out) = $nginx_t->('voice_zone voice 64k;',
                             'location = /stream { voice_pipeline echo; '
                             . 'voice_twilio_auth_token t0k; voice_zone off; '
                             . 'voice_max_calls 1; }');
    isnt($rc, 0, 'nginx -t fails: voice_max_calls where the zone is off');

    ($rc, $out) = $nginx_t->('voice_zone voice 1k;', $echo);
    isnt($rc, 0, 'nginx -t fails: a zone too small');
    like($out, qr/\[emerg\].*zone "voice" is too small: at least \d+k in \S+nginx\.conf:\d+/,
         'with the minimum, file and line');

    ($rc, $out) = $nginx_t->('voice_zone voice lots;', $echo);
    isnt($rc, 0, 'nginx -t fails: a bad size');
    like($out, qr/\[emerg\].*invalid zone size "lots" in \S+nginx\.conf:\d+/, 'and says so');

    ($rc, $out) = $nginx_t->('voice_zone voice;', $echo);
    isnt($rc, 0, 'nginx -t fails: a zone without a size');
    like($out, qr/\[emerg\].*"voice_zone" takes a zone name and a size, or "off"/,
         'and says what it takes');

    ($rc, $out) = $nginx_t->('voice_zone voice 64k;',
                             "$echo location = /s { voice_zone voice 128k; }");
    isnt($rc, 0, 'nginx -t fails: one zone declared with two sizes');
    like($out, qr/\[emerg\].*conflicts with already declared size/, 'nginx says so');

    ($rc, $out) = $nginx_t->('', "$echo location = /status { voice_status; }");
    isnt($rc, 0, 'nginx -t fails: voice_status without a zone');
    like($out, qr/\[emerg\].*"voice_status" in location "\/status" needs a zone/,
         'and says so');

    ($rc, $out) = $nginx_t->('', "$echo location = /status { voice_status nowhere; }");
    isnt($rc, 0, 'nginx -t fails: voice_status names a zone never declared');
    like($out, qr/\[emerg\].*zero size shared memory zone "nowhere"/, 'nginx says so');

    ($rc, $out) = $nginx_t->('voice_zone voice 64k;',
                             "$echo location = /status { voice_status voice health; }");
    isnt($rc, 0, 'nginx -t fails: "health" after the zone');
    like($out, qr/\[emerg\].*invalid parameter "health": the syntax is "voice_status \[health\] \[zone\]"/,
         'and gives the syntax');

    ($rc, $out) = $nginx_t->('voice_zone voice 64k;',
                             'location = /stream { voice_pipeline echo; '
                             . 'voice_twilio_auth_token t0k; voice_status; }');
    isnt($rc, 0, 'nginx -t fails: voice_status in a voice_pipeline location');
    like($out, qr/\[emerg\].*"voice_status" and "voice_pipeline" cannot share location "\/stream"/,
         'and says so');

    ($rc, $out) = $nginx_t->('voice_zone voice 64k;', "$echo location = /s { voice_max_calls -1; }");
    isnt($rc, 0, 'nginx -t fails: a negative limit');
}

# ---- the provider simulators, shared by the nginx instances below -------------

# every call's caller says the first line, some the second too: the STT
# simulator numbers segments per connection, so each call hears the same
my @SAY = ('What time do you open tonight?', 'And do you take bookings?');
my $sim_script = script_file(join('', map { "say: $_\nwait: bot\n" } @SAY) . "hangup\n");
my $one_turn = script_file("say: $SAY[0]\nwait: bot\nhangup\n");
my $sim = VoiceSim::Sim->start(dir => "$dir/sim", tls => 0, script => $sim_script,
                               key => $KEY, config => {});

sub server {
    my (%o) = @_;
    my $records = "$dir/records-" . ++$n_script;
    make_path($records);
    my $srv = VoiceTest::Nginx::Server->start(
        master => $o{master},
        http => 'voice_zone voice 64k; ' . ($o{http} // ''),
        server => location($sim, records => $records, extra => $o{extra})
                . ' location = /status { voice_status; }'
                . ' location = /health { voice_status health; }');
    return ($srv, $records);
}

# ---- scripted calls: the counters agree with the call records -----------------

{
    my ($srv, $records) = server();
    my $port = $srv->port;

    my $s = status_json($port);
    ok($s, 'status: JSON before any call') or diag explain http($port, 'GET', '/status');
    is($s->{zone}, 'voice', 'status: the zone');
    like($s->{version}, qr/^\d+\.\d+\.\d+$/, 'status: the module version');
    is($s->{generation}, 1, 'status: generation 1 before any reload');
    is_deeply([ @{ $s->{calls} }{qw(active total refused)} ], [ 0, 0, 0 ],
              'status: no call yet');
    is_deeply([ sort keys %{ $s->{calls}{ended} } ], [ sort @REASONS ],
              'status: every end reason is listed');
    is_deeply([ sort keys %{ $s->{latency_ms} } ], [ sort @STAGES ],
              'status: every latency stage is listed');
    is_deeply($s->{provider_errors}, {}, 'status: no provider error');

    my @sum;
    my $running = 2;
    for my $i (0, 1) {
        Mojo::IOLoop->timer(0.2 * $i => sub {
            dial($port, $sim_script, sub { $sum[$i] = shift; $running-- });
        });
    }
    my $live;
    ok(drive(sub {
        my $j = status_json($port);
        $live = $j->{calls}{active} if $j && $j->{calls}{active} > ($live // 0);
        !$running
    }, 90), 'two calls ran to their end');
    is($live, 2, 'status: two calls active at once while they ran');

    for my $i (0, 1) {
        ok($sum[$i] && $sum[$i]{ok}, "call $i: answered and completed")
            or diag explain $sum[$i];
    }

    my @rec = map { wait_record("$records/$_->{call_sid}.json", 10 * $slow) }
              grep { $_ } @sum;
    is(scalar(grep { $_ } @rec), 2, 'both call records were written');

    ok(drive(sub { my $j = status_json($port); $j && $j->{calls}{active} == 0 }, 15),
       'status: no call active once both ended');
    $s = status_json($port);

    is($s->{calls}{total}, 2, 'status: two calls');
    is($s->{calls}{refused}, 0, 'status: none refused');
    is($s->{calls}{ended}{'caller hung up'}, 2, 'status: both ended as "caller hung up"');
    is(sum0(values %{ $s->{calls}{ended} }), 2, 'status: no other end counted');
    my $turns = sum0(map { $_->{counts}{turns} } @rec);
    is($turns, 4, 'the records: two caller turns each');
    is($s->{turns}, $turns, 'status: the turns of the records');
    is($s->{barge_ins}, sum0(map { $_->{counts}{barge_ins} } @rec),
       'status: the barge-ins of the records');
    is_deeply($s->{provider_errors}, {}, 'status: no provider error');

    my $exp = expected_latency(@rec);
    for my $st (@STAGES) {
        my $h = $s->{latency_ms}{$st};
        is($h->{count}, $turns, "status: $st: one sample per turn");
        is($h->{count}, scalar @{ $exp->{$st} }, "status: $st: as many as the records");
        is($h->{sum}, sum0(@{ $exp->{$st} }), "status: $st: the records' sum");
        is_deeply($h->{buckets}, cumulative($exp->{$st}),
                  "status: $st: cumulative buckets of the records' values");
    }
    cmp_ok($s->{latency_ms}{total}{sum}, '>=', $s->{latency_ms}{$_}{sum},
           "status: total latency covers $_") for qw(endpointing llm_first_token);

    # the same in Prometheus text, by query or by Accept
    my $r = http($port, 'GET', '/status?format=prometheus');
    is($r->{status}, 200, 'prometheus: 200');
    is($r->{headers}{'content-type'}, 'text/plain; version=0.0.4; charset=utf-8',
       'prometheus: text format 0.0.4');
    my ($v, $help, $type, $bad) = prom($r->{body});
    is_deeply($bad, [], 'prometheus: every line is a comment or a sample');
    my %families = (ngx_voice_calls_active => 'gauge', ngx_voice_calls_total => 'counter',
                    ngx_voice_calls_ended_total => 'counter',
                    ngx_voice_upgrades_refused_total => 'counter',
                    ngx_voice_turns_total => 'counter', ngx_voice_barge_ins_total => 'counter',
                    ngx_voice_provider_errors_total => 'counter',
                    ngx_voice_latency_ms => 'histogram');
    for my $f (sort keys %families) {
        is($type->{$f}, $families{$f}, "prometheus: TYPE $f $families{$f}");
        ok($help->{$f}, "prometheus: HELP $f");
    }
    is($v->{ngx_voice_calls_active}, 0, 'prometheus: calls active');
    is($v->{ngx_voice_calls_total}, 2, 'prometheus: calls total');
    is($v->{'ngx_voice_calls_ended_total{reason="caller hung up"}'}, 2,
       'prometheus: ended by reason');
    is($v->{ngx_voice_upgrades_refused_total}, 0, 'prometheus: refused');
    is($v->{ngx_voice_turns_total}, $turns, 'prometheus: turns');
    like($r->{body}, qr/^ngx_voice_info\{version="[\d.]+",nginx_version="[\d.]+",zone="voice"\} 1$/m,
         'prometheus: the info series');
    for my $st (@STAGES) {
        is($v->{"ngx_voice_latency_ms_count{stage=\"$st\"}"}, $turns, "prometheus: $st count");
        is($v->{"ngx_voice_latency_ms_bucket{stage=\"$st\",le=\"+Inf\"}"}, $turns,
           "prometheus: $st +Inf bucket");
        is($v->{"ngx_voice_latency_ms_sum{stage=\"$st\"}"}, $s->{latency_ms}{$st}{sum},
           "prometheus: $st sum as in JSON");
    }

    $r = http($port, 'GET', '/status', Accept => 'application/openmetrics-text;'
              . 'version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1');
    like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
         'Prometheus\'s own Accept header gets the text format');
    $r = http($port, 'GET', '/status', Accept => 'text/plain');
    like($r->{headers}{'content-type'}, qr{^text/plain}, 'Accept: text/plain too');
    $r = http($port, 'GET', '/status', Accept => 'application/json, text/plain;q=0.9');
    is($r->{headers}{'content-type'}, 'application/json', 'JSON when it is preferred');
    $r = http($port, 'GET', '/status', Accept => 'text/html,*/*;q=0.8');
    is($r->{headers}{'content-type'}, 'application/json', 'JSON for a browser');
    $r = http($port, 'GET', '/status?format=json', Accept => 'text/plain');
    is($r->{headers}{'content-type'}, 'application/json', '?format=json wins over Accept');
    ok(eval { decode_json($r->{body}) }, 'and is valid JSON');

    $r = http($port, 'HEAD', '/status');
    is($r->{status}, 200, 'HEAD: 200');
    is($r->{body}, '', 'HEAD: no body');
    cmp_ok($r->{headers}{'content-length'}, '>', 0, 'HEAD: the length of the body');
    $r = http($port, 'POST', '/status');
    is($r->{status}, 405, 'POST: 405');
    is($r->{headers}{allow}, 'GET, HEAD', 'POST: Allow: GET, HEAD');
    is(http($port, 'GET', '/status')->{headers}{'cache-control'}, 'no-store',
       'not to be cached');

    $r = http($port, 'GET', '/health');
    is($r->{status}, 200, 'health: 200 without a limit');
    is_deeply(eval { decode_json($r->{body}) }, { status => 'ok', calls_active => 0 },
              'health: ok, no call active');

    $srv->stop;
    no_alerts($srv, 'status');
}

# ---- provider errors: by provider and type, once each ----------------------------

{
    # HTTP 500 on the first request, an error event (no status) in the
    # second one's stream: the turns get the apology, the call goes on
    my $faulty = VoiceSim::Sim->start(
        dir => "$dir/sim-faults", tls => 0, script => $sim_script, key => $KEY,
        config => { llm => { faults => [
            { status => 500, on_request => 1, message => 'The model crashed' },
            { kind => 'error_event', on_request => 2, after_tokens => 2,
              status_code => 0, message => 'Lost the thread' } ] } });
    my $records = "$dir/records-faults";
    make_path($records);
    my $srv = VoiceTest::Nginx::Server->start(
        http => 'voice_zone voice 64k;',
        server => location($faulty, records => $records)
                . ' location = /status { voice_status; }');
    my $port = $srv->port;

    my $sum;
    dial($port, $sim_script, sub { $sum = shift });
    ok(drive(sub { $sum }, 60), 'errors: the call ran');
    ok($sum && $sum->{ok}, 'errors: and completed') or diag explain $sum;
    my $rec = $sum && wait_record("$records/$sum->{call_sid}.json", 10 * $slow);
    is($rec && $rec->{counts}{llm_errors}, 2, 'errors: the record has two LLM errors');

    ok(drive(sub { my $j = status_json($port); $j && $j->{calls}{active} == 0 }, 15),
       'errors: the call ended');
    my $s = status_json($port);
    is_deeply($s->{provider_errors}, { llm => { http_5xx => 1, remote => 1 } },
              'status: the LLM\'s 500 and its error event, each counted once')
        or diag explain $s->{provider_errors};
    my ($v) = prom(http($port, 'GET', '/status?format=prometheus')->{body});
    is($v->{'ngx_voice_provider_errors_total{provider="llm",type="http_5xx"}'}, 1,
       'prometheus: provider="llm",type="http_5xx"');
    is($v->{'ngx_voice_provider_errors_total{provider="llm",type="remote"}'}, 1,
       'prometheus: provider="llm",type="remote"');
    is(scalar(grep { /^ngx_voice_provider_errors_total\{/ } keys %$v), 2,
       'prometheus: no other provider error series');
    is($s->{calls}{ended}{'caller hung up'}, 1, 'errors: the call ended as "caller hung up"');

    $srv->stop;
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|\[emerg\]|exited on signal|open socket/,
           'errors: no alert, crash or leaked socket');
    $faulty->stop;
}

# ---- voice_max_calls: the second call is refused while the first is live -------

{
    my ($srv, $records) = server(http => 'voice_max_calls 1;');
    my $port = $srv->port;

    # the first call stays up: a turn, then seconds of silence
    my $long = script_file("say: $SAY[0]\nwait: bot\nwait: 3000\nsay: $SAY[1]\n"
                           . "wait: bot\nhangup\n");
    my ($first, $second, $third);
    dial($port, $long, sub { $first = shift });
    ok(drive(sub { my $j = status_json($port); $j && $j->{calls}{active} == 1 }, 15),
       'max_calls: the first call is active');

    my $r = http($port, 'GET', '/health');
    is($r->{status}, 503, 'health: 503 at the limit');
    is_deeply(eval { decode_json($r->{body}) },
              { status => 'full', calls_active => 1, max_calls => 1 },
              'health: full, with the count and the limit');

    dial($port, script_file("wait: 500\nhangup\n"), sub { $second = shift });
    ok(drive(sub { $second }, 15), 'max_calls: the second caller got an answer');
    is($second->{handshake}{status}, 503, 'max_calls: the second upgrade got 503');
    ok(!$first, 'max_calls: while the first call was still live');

    my $s = status_json($port);
    is($s->{calls}{refused}, 1, 'status: one refused');
    is($s->{calls}{total}, 1, 'status: a refused call is not counted as a call');
    is($s->{calls}{active}, 1, 'status: the first call still active');
    ok($srv->wait_log(qr/\[warn\].*voice conn#\d+: call refused with 503: 1 calls active in voice_zone "voice", voice_max_calls 1/, 5),
       'the refusal is logged with the count and the limit');

    ok(drive(sub { $first }, 60), 'the first call ended');
    ok($first && $first->{ok}, 'the first call completed') or diag explain $first;
    ok(drive(sub { my $j = status_json($port); $j && $j->{calls}{active} == 0 }, 15),
       'status: no call active');
    is(http($port, 'GET', '/health')->{status}, 200, 'health: 200 again');

    dial($port, $one_turn, sub { $third = shift });
    ok(drive(sub { $third }, 60), 'a third call ran');
    is($third->{handshake}{status}, 101, 'a new call is accepted once the first ended');
    ok($third->{ok}, 'and completes') or diag explain $third;

    ok(drive(sub { my $j = status_json($port); $j && $j->{calls}{active} == 0 }, 15),
       'status: no call active at the end');
    $s = status_json($port);
    is($s->{calls}{total}, 2, 'status: two calls taken');
    is($s->{calls}{refused}, 1, 'status: one refused');
    is($s->{calls}{ended}{'caller hung up'}, 2, 'status: both ended by the caller');
    my ($v) = prom(http($port, 'GET', '/status?format=prometheus')->{body});
    is($v->{ngx_voice_upgrades_refused_total}, 1, 'prometheus: one upgrade refused');

    $srv->stop;
    no_alerts($srv, 'max_calls');
}

# ---- a reload while a call goes on: the counters live on --------------------

{
    my ($srv, $records) = server(master => 1);
    my $port = $srv->port;

    my ($before, $live);
    dial($port, $one_turn, sub { $before = shift });
    ok(drive(sub { $before }, 60), 'reload: a call before the reload');
    ok($before && $before->{ok}, 'reload: it completed') or diag explain $before;

    # the live call: a turn, a pause (the reload happens in it), a turn
    my $long = script_file("say: $SAY[0]\nwait: bot\nwait: 4000\nsay: $SAY[1]\n"
                           . "wait: bot\nhangup\n");
    dial($port, $long, sub { $live = shift });
    ok(drive(sub { my $j = status_json($port); $j && $j->{turns} >= 2 }, 30),
       'reload: the live call had its first turn');
    my $old = $srv->worker_pid;

    $srv->signal('HUP');
    ok($srv->wait_log(qr/gracefully shutting down/, 10 * $slow),
       'reload: the old worker is shutting down');
    ok(drive(sub { my $j = status_json($port); $j && $j->{generation} == 2 }, 10),
       'reload: the zone was kept (generation 2)');

    my $s = status_json($port);
    is($s->{calls}{total}, 2, 'reload: calls from before the reload are counted');
    is($s->{calls}{active}, 1, 'reload: the live call in the old worker is active');
    is($s->{calls}{ended}{'caller hung up'}, 1, 'reload: the first call\'s end is kept');
    ok(!$live, 'reload: the call is still live');

    ok(drive(sub { $live }, 60), 'reload: the live call ended');
    ok($live && $live->{ok}, 'reload: it went on to its end, every action run')
        or diag explain $live;
    is(scalar @{ $live->{bot_turns} || [] }, 2, 'reload: it heard both answers');
    ok(drive(sub { !kill 0, $old }, 15 * $slow), 'reload: the old worker exited');

    $s = status_json($port);
    is($s->{calls}{active}, 0, 'reload: no call active: the old worker\'s end counted');
    is($s->{calls}{total}, 2, 'reload: two calls');
    is($s->{calls}{ended}{'caller hung up'}, 2, 'reload: both ended by the caller');
    is($s->{turns}, 3, 'reload: three turns, one of them after the reload');
    is($s->{latency_ms}{total}{count}, 3, 'reload: three latency samples');
    is($s->{generation}, 2, 'reload: generation 2');

    $srv->stop;
    no_alerts($srv, 'reload');
}

$sim->stop;

done_testing();
