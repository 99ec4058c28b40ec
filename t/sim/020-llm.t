use strict;
use warnings;
use lib 'tools/lib';

use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::UserAgent;
use Time::HiRes qw(time sleep);
use VoiceSim::Sim;

my $dir = $ENV{SIM_KEEP} || tempdir(CLEANUP => 1);
open my $fh, '>', "$dir/call.txt" or die;
print $fh "say: hello\nreply: Sure, for what time?\nsay: seven\nreply: Done. See you at seven.\n";
close $fh;
my $sim = VoiceSim::Sim->start(dir => "$dir/run", script => "$dir/call.txt", key => 'k2', config => {
    llm => { ttft_ms => 30, token_ms => 5, faults => [
        { status => 429, on_request => 7, retry_after => 2 },
        { status => 500, on_request => 8 },
        { kind => 'error_event', on_request => 9, after_tokens => 2, status_code => 503, code => 'queue_exceeded' },
        { kind => 'disconnect', on_request => 10, after_tokens => 1 },
        { kind => 'tool_call', on_request => 11, name => 'check_price',
          arguments => { model => 'airpods pro' }, arg_piece => 5 },
        { kind => 'hang_headers', on_request => 12 },
        { kind => 'hang', on_request => 13 },
        { kind => 'status', status => 401, on_request => 14, once => 1 },
    ] } });
my $url = $sim->url('llm') . '/v1/chat/completions';
my $ua = Mojo::UserAgent->new(inactivity_timeout => 5);
my %auth = (Authorization => 'Bearer k2');
my $body = { model => 'gpt-oss-120b', stream => Mojo::JSON::true,
             messages => [ { role => 'system', content => 'Be brief.' }, { role => 'user', content => 'hello' } ] };

# parse an SSE body into events
sub sse {
    my $raw = shift;
    my @ev;
    for my $e (split /\n\n/, $raw) {
        my ($d) = $e =~ /^data: (.*)$/s or next;
        push @ev, $d eq '[DONE]' ? '[DONE]' : decode_json($d);
    }
    return @ev;
}

# 1: auth
my $tx = $ua->post($url => { Authorization => 'Bearer nope' } => json => $body);
is($tx->res->code, 401, 'wrong key: 401');
is_deeply($tx->res->json, { message => 'Wrong API Key', type => 'invalid_request_error',
                            param => 'api_key', code => 'wrong_api_key' }, 'flat Cerebras 401 body');
# 2
$tx = $ua->post($url => json => $body);
is($tx->res->code, 403, 'no Authorization: 403');
is($tx->res->json->{detail}, 'Not authenticated', '... {"detail":"Not authenticated"}');

# 3: the happy path, reply 1 of the script
$tx = $ua->post($url => \%auth => json => $body);
is($tx->res->code, 200, 'stream: 200');
like($tx->res->headers->content_type, qr{^text/event-stream}, 'text/event-stream');
is($tx->res->headers->header('x-ratelimit-limit-tokens-minute'), 60000, 'x-ratelimit headers');
my @ev = sse($tx->res->body);
is($ev[-1], '[DONE]', 'ends with [DONE]');
is_deeply($ev[0]{choices}[0]{delta}, { role => 'assistant' }, 'first chunk: role delta');
my $text = join '', map { $_->{choices}[0]{delta}{content} // '' } @ev[0 .. $#ev - 1];
is($text, 'Sure, for what time?', 'content = script reply 1');
is(scalar(grep { defined $_->{choices}[0]{delta}{content} } @ev[0 .. $#ev - 1]), 4, 'word by word');
my $last = $ev[-2];
is($last->{choices}[0]{finish_reason}, 'stop', 'finish_reason stop');
ok($last->{usage}{total_tokens} && defined $last->{usage}{prompt_tokens_details}{cached_tokens}, 'usage');
ok(defined $last->{time_info}{queue_time} && $last->{time_info}{total_time} > 0, 'time_info');
is($last->{object}, 'chat.completion.chunk', 'chunk object');
my ($req) = grep { $_->{ev} eq 'http_request' && $_->{n} == 3 } $sim->records('llm');
is_deeply($req->{json}{messages}, $body->{messages}, 'request body recorded');

# 4: reply 2, then 5: default rule when the script runs out
$tx = $ua->post($url => \%auth => json => $body);
is(join('', map { ref $_ ? $_->{choices}[0]{delta}{content} // '' : '' } sse($tx->res->body)),
   'Done. See you at seven.', 'script reply 2');
$tx = $ua->post($url => \%auth => json => { %$body, messages => [ { role => 'user', content => [ { type => 'text', text => 'blue sky' } ] } ] });
is(join('', map { ref $_ ? $_->{choices}[0]{delta}{content} // '' : '' } sse($tx->res->body)),
   'You said: blue sky.', 'fallback reply');

# 6: non-streaming is answered but flagged
$tx = $ua->post($url => \%auth => json => { %$body, stream => Mojo::JSON::false });
is($tx->res->json->{object}, 'chat.completion', 'non-stream: chat.completion JSON');
ok((grep { $_->{rule} eq 'llm_not_streaming' } $sim->violations('llm')), '... and a violation');

# 7: 429
$tx = $ua->post($url => \%auth => json => $body);
is($tx->res->code, 429, 'fault: 429');
is($tx->res->headers->header('retry-after'), 2, 'retry-after');
is($tx->res->headers->header('x-ratelimit-remaining-tokens-minute'), 0, 'remaining tokens 0');
is($tx->res->json->{code}, 'request_quota_exceeded', 'flat 429 body');
# 8: 500
$tx = $ua->post($url => \%auth => json => $body);
is($tx->res->code, 500, 'fault: 500');
ok($tx->res->json->{message}, '500 error JSON');
# 9: mid-stream error event
$tx = $ua->post($url => \%auth => json => $body);
@ev = sse($tx->res->body);
is($ev[-1]{error}{code}, 'queue_exceeded', 'mid-stream error object');
is($ev[-1]{status_code}, 503, '... with status_code');
is(scalar(grep { ref $_ && defined $_->{choices}[0]{delta}{content} } @ev), 2, '... after 2 tokens');
# 10: server disconnect mid-stream
$tx = $ua->post($url => \%auth => json => $body);
@ev = sse($tx->res->body);
ok(!grep({ !ref } @ev), 'fault: disconnect mid-stream, no [DONE]');
is(scalar(grep { defined $_->{choices}[0]{delta}{content} } @ev), 1, '... after 1 token');
ok((grep { $_->{ev} eq 'server_disconnect' } $sim->records('llm')), 'server_disconnect logged');
# 11: streamed tool call
$tx = $ua->post($url => \%auth => json => { %$body, tools => [ { type => 'function',
    function => { name => 'check_price', parameters => { type => 'object' } } } ] });
@ev = grep { ref } sse($tx->res->body);
my @tc = map { @{ $_->{choices}[0]{delta}{tool_calls} || [] } } @ev;
is($tc[0]{id}, 'call_sim000', 'first fragment has the id');
is($tc[0]{function}{name}, 'check_price', '... and the name');
cmp_ok(scalar @tc, '>', 3, 'arguments split over several chunks');
is_deeply(decode_json(join '', map { $_->{function}{arguments} } @tc), { model => 'airpods pro' }, 'arguments reassemble');
is($ev[-1]{choices}[0]{finish_reason}, 'tool_calls', 'finish_reason tool_calls');

# 12: hang after headers; 13: hang before headers (client gives up)
for my $n (12, 13) {
    my $hua = Mojo::UserAgent->new(request_timeout => 0.5);
    $tx = $hua->post($url => \%auth => json => $body);
    like($tx->error->{message}, qr/timeout/i, "hang fault $n: client times out");
}
ok((grep { $_->{ev} eq 'hang' && $_->{stage} eq 'after_headers' } $sim->records('llm')), 'hang after headers logged');
# 14: 401 once, 15: back to normal
is($ua->post($url => \%auth => json => $body)->res->code, 401, 'fault 401 once');
is($ua->post($url => \%auth => json => $body)->res->code, 200, '... then 200');

# body validation
for my $bad ([ { %$body, model => undef }, 'model' ], [ { %$body, messages => [] }, 'messages' ],
             [ { %$body, messages => [ { role => 'robot', content => 'x' } ] }, 'role' ],
             [ { %$body, messages => [ { role => 'assistant', content => undef } ] }, 'NoneType' ],
             [ { %$body, messages => [ { role => 'tool', content => 'x' } ] }, 'tool_call_id' ]) {
    $tx = $ua->post($url => \%auth => json => $bad->[0]);
    is($tx->res->code, 400, "invalid body ($bad->[1]): 400");
    is($tx->res->json->{code}, 'wrong_api_format', '... wrong_api_format');
}
$tx = $ua->post($url => { %auth, 'Content-Type' => 'application/json' } => '{"model":');
is($tx->res->code, 400, 'malformed JSON: 400');
is(scalar(grep { $_->{rule} eq 'llm_body' } $sim->violations('llm')), 6, 'six body violations');

# keep-alive: the requests above reuse one connection
my @reqs = grep { $_->{ev} eq 'http_request' && $_->{n} >= 3 && $_->{n} <= 9 } $sim->records('llm');
my %c = map { $_->{conn} => 1 } @reqs;
is(scalar keys %c, 1, 'requests 3..9 share one connection');

# raw socket: SSE split across writes; client disconnect logged
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $sim->port('llm')) or die;
my $payload = encode_json({ %$body, messages => [ { role => 'user', content => 'one two three four five six seven eight nine ten eleven twelve' } ] });
print $s "POST /v1/chat/completions HTTP/1.1\r\nHost: api.cerebras.ai\r\nAuthorization: Bearer k2\r\n"
    . "Content-Type: application/json\r\nContent-Length: " . length($payload) . "\r\n\r\n$payload";
my ($buf, $reads) = ('', 0);
while ($buf !~ /"content":"three /) { sysread($s, $buf, 65536, length $buf) or last; $reads++ }
like($buf, qr/Transfer-Encoding: chunked/i, 'chunked transfer encoding');
cmp_ok($reads, '>', 3, "SSE arrives in pieces ($reads reads)");
close $s;
sleep 0.3;
my ($dis) = grep { $_->{ev} eq 'client_disconnected' && ($_->{tokens_total} // 0) == 14 } $sim->records('llm');
ok($dis, 'client_disconnected logged');
cmp_ok($dis->{tokens_sent}, '<', 14, "... with tokens_sent ($dis->{tokens_sent})");

$sim->stop;
done_testing;
