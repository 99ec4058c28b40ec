# The LLM leg through real module behaviour: `voice_pipeline transcribe`
# with a voice_llm_key answers every caller turn through the LLM
# simulator (OpenAI-compatible chat completions over https, SSE split at
# random points) and logs the replies.  Checked on both sides: the
# module's log and the requests the simulator received.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use lib 't/lib', 'tools/lib';
use VoiceTest::Nginx;
use VoiceSim::Sim;
use VoiceSim::Caller;

my $dir = tempdir(CLEANUP => 1);
my $KEY = 'sim-key-5c1e';
my $PROMPT = 'You are a booking agent. Be brief.';

sub script {
    my ($name, $text) = @_;
    open my $fh, '>', "$dir/$name" or die $!;
    print $fh $text;
    close $fh;
    return "$dir/$name";
}

sub location {
    my ($sim, %o) = @_;
    return "location = /stream { voice_pipeline transcribe; "
         . "voice_stt_url wss://localhost:" . $sim->port('stt') . "/v1/listen; "
         . "voice_stt_key $KEY; "
         . "voice_llm_url https://localhost:" . $sim->port('llm')
         . "/v1/chat/completions; "
         . "voice_llm_key " . ($o{key} || $KEY) . "; "
         . "voice_llm_model llama-3.3-70b; voice_llm_max_tokens 200; "
         . "voice_llm_temperature 0.4; "
         . "voice_system_prompt \"$PROMPT\"; "
         . "voice_ssl_trusted_certificate " . $sim->ca_file . "; "
         . ($o{extra} || '') . " }";
}

sub call {
    my ($srv, $script) = @_;
    return VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . '/stream',
        script => $script, out => "$dir/out", quiet => 1)->run;
}

sub finish {
    my ($srv, $what) = @_;
    is($srv->stop, '', "$what: valgrind clean") if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|exited on signal|open socket/,
           "$what: no alert, crash or leaked socket");
}

# --- three turns, replies streamed, one warm connection for all

{
    my $script = script('happy.txt', <<'END');
say: Hello there, I would like a table for two.
reply: Sure, for what time?
wait: 1200
say: Tomorrow at seven please.
reply: Done. See you tomorrow at seven.
wait: 1200
say: Thank you, goodbye.
reply: Goodbye!
wait: 1500
hangup
END
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim1", tls => 1,
                                   script => $script, key => $KEY,
                                   config => { llm => { ttft_ms => 60, token_ms => 10 } });
    my $srv = VoiceTest::Nginx::Server->start(server => location($sim));
    call($srv, $script);
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;

    like($log, qr/voice: llm connection warmed in \d+ ms \(TLS handshake\).*provider: llm, endpoint: https:\/\/localhost:\d+\/v1\/chat\/completions/,
         'the LLM connection is warmed at call start');
    like($log, qr/voice: assistant reply 1: "Sure, for what time\?" \(first token \d+ ms, total \d+ ms, finish stop, tokens \d+\+4\)/,
         'reply 1 logged with first-token latency and usage');
    like($log, qr/voice: assistant reply 2: "Done\. See you tomorrow at seven\."/, 'reply 2');
    like($log, qr/voice: assistant reply 3: "Goodbye!"/, 'reply 3');
    like($log, qr/voice: LLM 3 request\(s\), 3 on pooled connections, 1 connection\(s\), 1 TLS handshake\(s\), 0 resumed, 0 cancelled/,
         'three requests over one connection and one TLS handshake');
    unlike($log, qr/$KEY/, 'the key never reaches the log');
    unlike($log, qr/\[error\]|\[warn\].*\*\d+ /, 'no error, no warning about the call');

    my @rq = $sim->records('llm', ev => 'http_request');
    is(scalar @rq, 3, 'three requests');
    my %conns = map { $_->{conn} => 1 } @rq;
    is(scalar keys %conns, 1, 'all on one connection (keep-alive)');
    my @tls = $sim->records('llm', ev => 'connection');
    is(scalar @tls, 1, 'one TLS connection seen by the simulator');
    ok($tls[0]{tls} && $tls[0]{sni} eq 'localhost', 'TLS with SNI');
    is($rq[0]{headers}{authorization}, 'Bearer sim-***', 'Bearer auth (masked by the simulator)');
    ok((grep { $_->{ev} eq 'auth' && $_->{ok} } $sim->records('llm')) == 3, 'the key was accepted');
    like($rq[0]{headers}{'content-type'}, qr{^application/json}, 'Content-Type');
    is($rq[0]{headers}{accept}, 'text/event-stream', 'Accept: text/event-stream');
    my $b = $rq[0]{json};
    is($b->{model}, 'llama-3.3-70b', 'model');
    ok($b->{stream}, 'stream: true');
    is($b->{max_completion_tokens}, 200, 'max_completion_tokens');
    is($b->{temperature}, 0.4, 'temperature');
    ok($b->{stream_options}{include_usage}, 'usage asked for');
    is_deeply([ map { [$_->{role}, $_->{content}] } @{ $rq[2]{json}{messages} } ],
              [ [system => $PROMPT],
                [user => 'Hello there, I would like a table for two.'],
                [assistant => 'Sure, for what time?'],
                [user => 'Tomorrow at seven please.'],
                [assistant => 'Done. See you tomorrow at seven.'],
                [user => 'Thank you, goodbye.'] ],
              'the third request carries the system prompt and the history');
    is(scalar @{ $rq[0]{json}{messages} }, 2, 'the first: system prompt and turn 1');
    is(scalar($sim->violations), 0, 'no protocol violation seen by the simulator');
    finish($srv, 'happy path');
    $sim->stop;
}

# --- provider errors, broken streams and a tool call: the call goes on

{
    my $script = script('faults.txt', join('', map { "say: Turn number $_.\nwait: 900\n" }
                                                qw(one two three four five six seven))
                                           . "wait: 600\nhangup\n");
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim2", tls => 1,
                                   script => $script, key => $KEY,
                                   config => { llm => { ttft_ms => 40, token_ms => 10, faults => [
        { status => 401, on_request => 1 },
        { status => 429, on_request => 2, retry_after => 3 },
        { status => 500, on_request => 3, message => 'The model crashed' },
        { kind => 'error_event', on_request => 4, after_tokens => 2,
          status_code => 503, code => 'queue_exceeded', message => 'Too busy' },
        { kind => 'disconnect', on_request => 5, after_tokens => 1 },
        { kind => 'tool_call', on_request => 6, name => 'check_price',
          arguments => { model => 'airpods pro' }, arg_piece => 5 },
    ] } });
    my $tools = script('tools.json', '[{"type":"function","function":'
        . '{"name":"check_price","description":"Price of a product",'
        . '"parameters":{"type":"object","properties":{"model":'
        . '{"type":"string"}},"required":["model"]}}}]');
    my $srv = VoiceTest::Nginx::Server->start(
        server => location($sim, extra => "voice_llm_tools $tools;"));
    call($srv, $script);
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;

    like($log, qr/\[error\].*voice: LLM error: HTTP 401, type "invalid_request_error", code "wrong_api_key": "Wrong API Key".*provider: llm/,
         '401: the flat Cerebras body is logged');
    like($log, qr/no assistant reply to turn 1 \(provider error, HTTP 401\)/, 'turn 1 unanswered, call goes on');
    like($log, qr/\[warn\].*voice: LLM rate limited: retry-after 3, x-ratelimit-remaining-tokens-minute 0, x-ratelimit-reset-tokens-minute \d+\.0/,
         '429: retry-after and x-ratelimit-* logged');
    like($log, qr/LLM error: HTTP 429, type "too_many_requests_error", code "request_quota_exceeded": "Requests per minute.*", retry-after 3/,
         '429 body logged');
    like($log, qr/LLM error: HTTP 500, type "server_error", code "internal_server_error": "The model crashed"/,
         '500 logged');
    like($log, qr/LLM error mid-stream: HTTP 503, type "server_error", code "queue_exceeded": "Too busy"/,
         'mid-stream error event logged');
    like($log, qr/no assistant reply to turn 4 \(provider error, HTTP 503\)/, 'turn 4 unanswered');
    like($log, qr/no assistant reply to turn 5 \((connection closed by the provider|protocol error)\)/,
         'disconnect mid-stream: turn 5 unanswered');
    like($log, qr/assistant reply 6: "" .*finish tool_calls/, 'tool call stream finished');
    like($log, qr/assistant tool call 0: check_price \{"model":"airpods pro"\} \(id call_sim000\)/,
         'tool call name and accumulated arguments logged');
    like($log, qr/assistant reply 7: "You said: Turn number seven\.\."/, 'turn 7 answered');
    like($log, qr/caller turn 7/, 'all seven turns heard');

    my @rq = $sim->records('llm', ev => 'http_request');
    is(scalar @rq, 7, 'seven requests, none retried');
    my %conns = map { $_->{conn} => 1 } @rq;
    cmp_ok(scalar keys %conns, '<=', 3,
           'error answers keep the connection; only broken streams cost one');
    ok((grep { $_->{ev} eq 'client_disconnected' } $sim->records('llm')) <= 1,
       'no request abandoned but the broken one');
    my ($tool_rq) = grep { ($_->{n} // 0) == 6 } @rq;
    is($tool_rq->{body}{tools}[0]{function}{name}, 'check_price',
       'voice_llm_tools: the tools go with the request')
        if $tool_rq && $tool_rq->{body};
    is(scalar($sim->violations('llm')), 0,
       'no violation (tools were offered for the tool call)');
    finish($srv, 'faults');
    $sim->stop;
}

# --- a silent provider, a reply cut by the next turn, a call ending
#     mid-stream

{
    my $script = script('cut.txt', <<'END');
say: Are you there?
wait: 5600
say: What time do you open?
wait: 600
say: Tell me.
wait: 2500
hangup
END
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim3", tls => 1,
                                   script => $script, key => $KEY,
                                   config => { llm => { ttft_ms => 40, token_ms => 10, faults => [
        { kind => 'hang', on_request => 1 },
        { kind => 'hang_mid', on_request => 2, after_tokens => 1 },
        { kind => 'hang_mid', on_request => 3, after_tokens => 1 },
    ] } });
    my $srv = VoiceTest::Nginx::Server->start(
        server => location($sim, extra => 'voice_llm_timeout 5s;'));
    call($srv, $script);
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;

    like($log, qr/\[error\].*llm sent nothing for \d+ ms.*provider: llm/, 'voice_llm_timeout fires');
    like($log, qr/no assistant reply to turn 1 \(timed out\)/, 'turn 1 unanswered');
    like($log, qr/reply to turn 2 cancelled by turn 3/, 'a new turn cancels the reply in progress');
    like($log, qr/reply to turn 3 abandoned: the call ended/, 'the call ends mid-stream');
    like($log, qr/voice: LLM 3 request\(s\), .* 2 cancelled/,
         'two cancelled: by a turn, by the call\'s end');
    for my $n (2, 3) {
        ok($sim->wait_for('llm', sub { $_[0]{ev} eq 'client_disconnected' && $_[0]{n} == $n }, 3),
           "request $n: its connection was closed");
    }
    finish($srv, 'cut');
    $sim->stop;
}

done_testing();
