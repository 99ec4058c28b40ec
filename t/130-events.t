# Requests that outlive the call: the call record POSTed, signed, to the
# application (voice_events_url) when the call ends.  Same harness as
# t/100-agent.t (VoiceTest::Agent): one simulator set, nginx and
# scripted caller per scenario, all calls side by side; then what the
# application received (the app simulator's log and stored records), the
# call record file and nginx's logs.  Checks are on order and content,
# never on latencies.  Twilio's REST API (ngx_voice_twilio_update) is
# exercised through the agent in t/105-agent-app.t.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use Digest::SHA qw(hmac_sha256_hex);
use Mojo::JSON qw(decode_json);
use Time::HiRes qw(sleep time);
use lib 't/lib', 'tools/lib';
use VoiceTest::Nginx;
use VoiceTest::Agent;

my $dir = tempdir(CLEANUP => !$ENV{TEST_VOICE_KEEP});

my $SECRET = 'events-secret-7c2a91';
my $GREETING = 'Hello, this is Bella\'s.';
my $ASK = 'I would like a table for two.';
my $ANSWER = 'Sure, for what time?';
my $SCRIPT = "wait: bot\nsay: $ASK\nreply: $ANSWER\nwait: bot\nhangup\n";

# the access log line carries its time: ordered against the deliveries
my $HTTP = 'log_format voice_t "$voice_call_sid $msec"; '
         . 'access_log logs/voice_t.log voice_t; ';

sub app_base {
    my ($sim) = @_;
    return $sim->tls ? 'https://localhost:' . $sim->port('app')
                     : 'http://127.0.0.1:' . $sim->port('app');
}

sub events {
    my ($sim, %o) = @_;
    return 'voice_events_url ' . ($o{first} ? "$o{first} " : '')
         . app_base($sim) . '/events; '
         . "voice_events_secret $SECRET; " . ($o{more} // '');
}

# the app's deliveries of one call, waiting until $n came (or $timeout)
sub deliveries {
    my ($s, $n, $timeout) = @_;
    my $sid = $s->{summary}{call_sid};
    my $deadline = time + $timeout;
    my @d;
    while (1) {
        @d = grep { ($_->{call_sid} // '') eq $sid }
             $s->{sim}->records('app', ev => 'event_delivery');
        last if @d >= $n || time > $deadline;
        sleep 0.1;
    }
    return @d;
}

# the lines of error.log, in order
sub log_lines { split /\n/, $_[0]{srv}->error_log }

sub first_index {
    my ($re, @lines) = @_;
    for my $i (0 .. $#lines) { return $i if $lines[$i] =~ $re }
    return -1;
}

# the stored record is the file record, signed as the simulator checked
sub check_record {
    my ($s, $d) = @_;
    my ($sum, $rec, $sim) = @$s{qw(summary record sim)};
    my $sid = $sum->{call_sid};
    my $raw = slurp($sim->events_dir . "/$sid.json");
    ok(defined $raw, 'the application stored the record') or return;
    my $file = slurp("$s->{records}/$sid.json");
    is($raw . "\n", $file, 'the same text as voice_call_record wrote');
    my $ev = decode_json($raw);
    is($ev->{call_sid}, $sid, 'the call SID');
    is($ev->{stream_sid}, $sum->{stream_sid}, 'the stream SID');
    is($ev->{account_sid}, $sum->{account_sid}, 'the account SID');
    is($ev->{params}{caller}, 'Dana', 'the custom parameters');
    is($ev->{end_reason}, 'caller hung up', 'the end reason');
    ok(defined $ev->{started_at} && defined $ev->{ended_at}, 'start and end');
    is_deeply(transcript($ev),
              [ [ assistant => 'greeting', $GREETING ],
                [ user => '', $ASK ],
                [ assistant => 'reply', $ANSWER ] ], 'the transcript');
    is($ev->{counts}{turns}, 1, 'the counts');
    is($ev->{usage}{llm_requests}, 1, 'the usage');
    ok(ref $ev->{turns} eq 'ARRAY' && ref $ev->{degradations} eq 'ARRAY',
       'timings and degradations');

    # the signature, checked here too
    my $h = $d->{headers};
    like($d->{timestamp}, qr/^\d+$/, 'X-Voice-Timestamp: unix seconds');
    cmp_ok(abs(time - $d->{timestamp}), '<', 120, 'a current timestamp');
    is($d->{signature}, 'sha256=' . hmac_sha256_hex("$d->{timestamp}.$raw", $SECRET),
       'X-Voice-Signature: sha256=hex(HMAC-SHA256(secret, timestamp.body))');
    ok($d->{signature_ok}, 'the application verified it');
    like($h->{'content-type'}, qr{^application/json$}, 'Content-Type');
    is($h->{'user-agent'}, 'ngx_voice', 'User-Agent');
    is($h->{'x-voice-call-sid'}, $sid, 'X-Voice-Call-Sid');
}


my @S;

# 1. over TLS: exactly one delivery, the whole record, signed
push @S, {
    name => 'record delivered', tls => 1,
    greeting => $GREETING, secrets => [ $SECRET ],
    sim_config => { app => { events_secret => $SECRET } },
    extra => sub { events($_[0]) },
    script => $SCRIPT,
    check => sub {
        my ($s) = @_;
        my @d = deliveries($s, 1, 15);
        is(scalar @d, 1, 'one delivery') or return;
        is($d[0]{status}, 200, 'accepted');
        check_record($s, $d[0]);
        sleep 1.5;
        is(scalar(deliveries($s, 2, 0)), 1, 'exactly once');
    },
};

# 2. the application fails twice (503): the record arrives with the third
#    attempt, after the call was over and logged
push @S, {
    name => 'record retried', tls => 0,
    greeting => $GREETING, secrets => [ $SECRET ], http => $HTTP,
    sim_config => { app => { events_secret => $SECRET, events_fail_first => 2 } },
    extra => sub { events($_[0]) },
    script => $SCRIPT,
    check => sub {
        my ($s) = @_;
        my $sid = $s->{summary}{call_sid};
        my @d = deliveries($s, 3, 20);
        is_deeply([ map { $_->{status} } @d ], [ 503, 503, 200 ],
                  'two 503s, then accepted');
        is_deeply([ map { $_->{attempt} } @d ], [ 1, 2, 3 ], 'three attempts');
        ok(!grep({ !$_->{signature_ok} } @d), 'each attempt signed');
        check_record($s, $d[-1]);

        # the call did not wait: its access log line came first
        my ($line) = grep { /^\Q$sid\E / } split /\n/,
                     slurp($s->{srv}->dir . '/logs/voice_t.log') // '';
        my ($logged) = ($line // '') =~ / (\d+\.\d+)$/;
        ok($logged, 'the access log has the call') or return;
        cmp_ok($logged * 1000, '<', $d[1]{t}, 'the call was logged before the retries');

        my @lines = log_lines($s);
        my $ended = first_index(qr/voice: call ended/, @lines);
        my $a1 = first_index(qr/voice \Q$sid\E: events attempt 1 failed \(HTTP 503/, @lines);
        my $a2 = first_index(qr/voice \Q$sid\E: events attempt 2 failed \(HTTP 503/, @lines);
        ok($ended >= 0 && $a1 > $ended && $a2 > $a1,
           'error.log: the call ended, then each failed attempt, naming the call')
            or diag join "\n", grep { /events|call ended/ } @lines;
        like($lines[$a1], qr/\[warn\].*retrying in \d+ ms/, 'a warning with the wait');
    },
};

# 3. the application always fails: three attempts (voice_events_retries
#    2), then an error naming the call; nothing stored
push @S, {
    name => 'record given up', tls => 0,
    greeting => $GREETING, secrets => [ $SECRET ],
    sim_config => { app => { events_secret => $SECRET, events_status => 503 } },
    extra => sub { events($_[0], more => 'voice_events_retries 2; voice_events_timeout 5s; ') },
    expected_errors => qr/events not delivered: gave up after 3 attempt/,
    script => $SCRIPT,
    check => sub {
        my ($s) = @_;
        my $sid = $s->{summary}{call_sid};
        ok($s->{srv}->wait_log(qr/events not delivered/, 20), 'the job gave up');
        my @d = deliveries($s, 3, 0);
        is_deeply([ map { $_->{status} } @d ], [ 503, 503, 503 ], 'three attempts');
        my ($err) = grep { /events not delivered/ } log_lines($s);
        like($err, qr/\[error\].* voice \Q$sid\E: events not delivered: gave up after 3 attempt\(s\), last: HTTP 503/,
             'an error naming the call, the attempts and the last status');
        ok(!defined slurp($s->{sim}->events_dir . "/$sid.json"), 'nothing stored');
        sleep 1.5;
        is(scalar(deliveries($s, 4, 0)), 3, 'no more attempts');
    },
};

# 4. failover: the first URL refuses connections, the next one takes it
my $DEAD = VoiceTest::Nginx::Server::dead_port();
push @S, {
    name => 'record failover', tls => 0,
    greeting => $GREETING, secrets => [ $SECRET ],
    sim_config => { app => { events_secret => $SECRET } },
    extra => sub { events($_[0], first => "http://127.0.0.1:$DEAD/events") },
    # connect() refused, then no address left: the leg's two lines
    expected_errors => qr/provider: events, endpoint: http:\/\/127\.0\.0\.1:$DEAD\//,
    script => $SCRIPT,
    check => sub {
        my ($s) = @_;
        my $sid = $s->{summary}{call_sid};
        my @d = deliveries($s, 1, 15);
        is(scalar @d, 1, 'one delivery, to the second URL') or return;
        check_record($s, $d[0]);
        my @lines = log_lines($s);
        my ($refused) = grep { /connect\(\) failed/ } @lines;
        like($refused, qr/provider: events, endpoint: http:\/\/127\.0\.0\.1:$DEAD\/events.*, call: \Q$sid\E/,
             'the refused connection is logged with the endpoint and the call');
        ok(grep({ /voice \Q$sid\E: events attempt 1 failed \(connection failed\)/ } @lines),
           'the first attempt failed, the second went to the next URL');
    },
};

# 5. nginx stops while a retry waits: the job is dropped, and says so;
#    the stop does not wait for the retries
push @S, {
    name => 'record dropped at exit', tls => 0,
    greeting => $GREETING, secrets => [ $SECRET ],
    sim_config => { app => { events_secret => $SECRET, events_status => 503 } },
    extra => sub { events($_[0]) },
    expected_errors => qr/events dropped after \d+ attempt\(s\): the worker is exiting/,
    script => $SCRIPT,
    check => sub {
        my ($s) = @_;
        my $sid = $s->{summary}{call_sid};
        ok($s->{srv}->wait_log(qr/events attempt 1 failed/, 15), 'the first attempt failed');
        $s->{srv}->stop;
        # (a slow nginx, e.g. under valgrind, may have made one more)
        my ($n) = $s->{srv}->error_log
            =~ /\[error\].* voice \Q$sid\E: events dropped after (\d+) attempt\(s\): the worker is exiting/;
        ok($n, 'the waiting retry was dropped with an error naming the call');
        is(scalar(deliveries($s, 99, 0)), $n, 'no attempt after that');
    },
};

# 6. Twilio's REST API answers after the call ended (the caller hung up
#    while the agent's update was under way): the request still runs to
#    its end, and the call, gone, is not told
my $TOKEN = 'twilio-token-93be';
push @S, {
    name => 'REST answer after the call', tls => 0,
    auth_token => $TOKEN, secrets => [ $TOKEN ],
    extra => sub { 'voice_end_call on; voice_twilio_complete on; '
                   . "voice_twilio_auth_token $TOKEN; "
                   . 'voice_twilio_api_url http://127.0.0.1:' . $_[0]->port('twilio') . '; ' },
    sim_config => {
        twilio => { auth_token => $TOKEN, delay_ms => 2500, status => 400 },
        llm => { faults => [ { kind => 'tool_call', name => 'end_call', arguments => {},
                               on_request => 1, preamble => 'Goodbye then!' } ] },
    },
    expected_errors => qr/twilio refused with HTTP 400/,
    script => "say: That is all, thank you.\nwait: bot\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($sum, $sim) = @$s{qw(summary sim)};
        my $sid = $sum->{call_sid};
        ok($s->{srv}->wait_log(qr/twilio refused/, 15), 'the update was answered');
        my @up = $sim->records('twilio', ev => 'update');
        is(scalar @up, 1, 'one REST update');
        is($up[0]{form}{Status}, 'completed', 'Status=completed');
        ok($up[0]{auth_ok}, 'Basic auth: the call\'s account SID and the token');
        is($up[0]{account_sid}, $sum->{account_sid}, 'the account SID from "start"');
        my @lines = log_lines($s);
        my $ended = first_index(qr/voice: call ended/, @lines);
        my $refused = first_index(qr/voice \Q$sid\E: twilio refused with HTTP 400: .*not retried/,
                                  @lines);
        ok($ended >= 0 && $refused > $ended, 'the answer came after the call ended')
            or diag join "\n", @lines;
        ok(!grep({ /did not complete/ } @lines), 'the ended call was not told');
    },
};

run_scenarios($dir, @S);

# ---- nginx -t ------------------------------------------------------------

{
    my $nginx_t = sub { agent_nginx_t($dir, @_) };

    my ($rc, $out) = $nginx_t->('voice_events_url http://127.0.0.1:9/events;');
    isnt($rc, 0, 'nginx -t: voice_events_url without voice_events_secret fails');
    like($out, qr/\[emerg\].*"voice_events_url" needs "voice_events_secret"/, 'and says so');

    ($rc, $out) = $nginx_t->('voice_events_secret s3cr3t-value;',
                             'voice_events_url http://127.0.0.1:9/events;');
    is($rc, 0, 'nginx -t: the URL inherited, the secret in the location') or diag $out;

    write_file("$dir/events.key", "file-secret-4d1\nignored\n");
    ($rc, $out) = $nginx_t->('voice_events_url https://127.0.0.1:9/events http://127.0.0.1:10/e; '
                             . "voice_events_secret file:$dir/events.key; "
                             . 'voice_events_retries 0; voice_events_timeout 30s;');
    is($rc, 0, 'nginx -t: failover URLs, a file: secret, retries and timeout') or diag $out;
    unlike($out, qr/file-secret-4d1/, 'the secret is not printed');

    ($rc, $out) = $nginx_t->('voice_events_url http://127.0.0.1:9/events; '
                             . 'voice_events_secret env:VOICE_TEST_NO_SUCH_VAR;');
    like($out, qr/\[emerg\].*environment variable "VOICE_TEST_NO_SUCH_VAR" is not set/,
         'nginx -t: an env: secret must be set');

    ($rc, $out) = $nginx_t->('voice_events_url ftp://127.0.0.1:9/events; voice_events_secret s;');
    isnt($rc, 0, 'nginx -t: the events URL is http or https');

    ($rc, $out) = $nginx_t->('voice_events_url http://127.0.0.1:9/e; voice_events_secret s; '
                             . 'voice_events_retries 11;');
    isnt($rc, 0, 'nginx -t: at most 10 retries');

    ($rc, $out) = $nginx_t->('voice_twilio_complete on;');
    like($out, qr/\[emerg\].*needs "voice_twilio_auth_token"/,
         'nginx -t: voice_twilio_complete needs the auth token');

    ($rc, $out) = $nginx_t->('voice_twilio_complete on; voice_twilio_auth_token t0k3n-value; '
                             . 'voice_twilio_api_url http://127.0.0.1:9; '
                             . 'voice_twilio_account_sid AC0123456789abcdef0123456789abcdef;');
    is($rc, 0, 'nginx -t: the REST API with its URL, account SID and token') or diag $out;
    unlike($out, qr/t0k3n-value/, 'the token is not printed');

    ($rc, $out) = $nginx_t->('voice_twilio_account_sid ACnothex;');
    like($out, qr/\[emerg\].*"voice_twilio_account_sid" is not an account SID/,
         'nginx -t: the account SID is checked');

    ($rc, $out) = $nginx_t->('voice_twilio_api_url http://127.0.0.1:9;');
    is($rc, 0, 'nginx -t: an API URL alone is accepted') or diag $out;
}

done_testing();
