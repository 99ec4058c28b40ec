use strict;
use warnings;
use lib 'tools/lib';

use Test::More;
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64);
use Mojo::JSON qw(decode_json encode_json);
use Mojo::UserAgent;
use Time::HiRes qw(time);
use VoiceSim::Sim;
use VoiceSim::App qw(sign);

my $dir = $ENV{SIM_KEEP} || tempdir(CLEANUP => 1);
my $sim = VoiceSim::Sim->start(dir => "$dir/run", key => 'k6', config => {
    twilio => { fail_first => 1, unknown_calls => ['CA' . 'f' x 32] },
    app => { personas => { default => { system_prompt => 'Default agent.', greeting => 'Hi.' },
                           sales => { system_prompt => 'You sell.', greeting => 'Buy now!',
                                      voice => 'v1', model => 'm1', language => 'en',
                                      tools => ['lookup'] } },
             tools => { lookup => { result => { price => 42 }, delay_ms => 300 },
                        broken => { status => 502, result => { error => 'down' } } },
             events_fail_first => 2 } });
my $ua = Mojo::UserAgent->new(inactivity_timeout => 5);

ok(grep({ $_ eq 'twilio' } $sim->names) && grep({ $_ eq 'app' } $sim->names), 'names include twilio and app');
like($sim->url('twilio'), qr{^http://127\.0\.0\.1:\d+$}, 'twilio URL');
like($sim->url('app'), qr{^http://127\.0\.0\.1:\d+$}, 'app URL');
is($sim->path('twilio'), '/2010-04-01/Accounts', 'twilio path');

# ---- twilio ----------------------------------------------------------------
my $acct = 'AC' . '1' x 32;
my $sid = 'CA' . 'a' x 32;
my $call = $sim->twilio_call_url($acct, $sid);
my %good = (Authorization => 'Basic ' . encode_base64("$acct:k6", ''));

my $tx = $ua->post($call => \%good => form => { Status => 'completed' });
is($tx->res->code, 500, 'fail_first: the first request gets 500');
is($tx->res->json->{code}, 20500, '... with a Twilio error body');
$tx = $ua->post($call => { Authorization => 'Basic ' . encode_base64("$acct:nope", '') }
                      => form => { Status => 'completed' });
is($tx->res->code, 401, 'wrong token: 401');
is_deeply($tx->res->json, { code => 20003, message => 'Authenticate', status => 401,
                            more_info => 'https://www.twilio.com/docs/errors/20003' }, '... Twilio error JSON');
like($tx->res->headers->www_authenticate, qr/^Basic/, '... WWW-Authenticate');
$tx = $ua->post($call => form => { Status => 'completed' });
is($tx->res->code, 401, 'no auth: 401');
ok((grep { $_->{rule} eq 'twilio_no_auth' } $sim->violations('twilio')), '... violation twilio_no_auth');

my $twiml = '<Response><Say>Transferring you now.</Say><Dial>+15005550006</Dial></Response>';
$tx = $ua->post($call => \%good => form => { Twiml => $twiml });
is($tx->res->code, 200, 'Twiml update: 200');
is($tx->res->json->{sid}, $sid, '... call resource sid');
is($tx->res->json->{account_sid}, $acct, '... account_sid');
is($tx->res->json->{status}, 'in-progress', '... still in-progress');
is($tx->res->json->{uri}, "/2010-04-01/Accounts/$acct/Calls/$sid.json", '... uri');
$tx = $ua->post($call => \%good => form => { Status => 'completed' });
is($tx->res->code, 200, 'Status=completed: 200');
is($tx->res->json->{status}, 'completed', '... completed');
ok(defined $tx->res->json->{end_time} && defined $tx->res->json->{duration}, '... end_time, duration');
is($ua->post($call => \%good => form => { Twiml => $twiml })->res->json->{code}, 21220,
   'Twiml after completed: 21220');

my @up = $sim->records('twilio', ev => 'update');
is(scalar @up, 6, 'six update records');
is($up[0]{call_sid}, $sid, 'update: call_sid');
is($up[0]{account_sid}, $acct, 'update: account_sid');
is($up[0]{Status}, 'completed', 'update: Status');
ok($up[0]{auth_ok} && !$up[1]{auth_ok} && !$up[2]{auth_ok}, 'update: auth_ok');
is($up[3]{Twiml}, $twiml, 'update: Twiml decoded');
is_deeply($up[3]{form}, { Twiml => $twiml }, 'update: form');

# 404 / 400 and the validation violations
is($ua->post($sim->twilio_call_url($acct, 'CA123') => \%good => form => { Status => 'completed' })->res->code,
   404, 'malformed call SID: 404');
$tx = $ua->post($sim->twilio_call_url($acct, 'CA' . 'f' x 32) => \%good => form => { Status => 'completed' });
is($tx->res->code, 404, 'unknown call: 404');
is($tx->res->json->{code}, 20404, '... code 20404');
my $call2 = $sim->twilio_call_url($acct, 'CA' . 'b' x 32);
is($ua->post($call2 => \%good => form => { Foo => 'x' })->res->code, 400, 'neither Status nor Twiml: 400');
is($ua->post($call2 => \%good => form => { Status => 'busy' })->res->code, 400, 'Status=busy: 400');
is($ua->post($call2 => \%good => form => { Twiml => '<Response><Say>x</Response>' })->res->code, 400,
   'malformed Twiml: 400');
is($ua->post($call2 => { %good, 'Content-Type' => 'application/json' } => 'Status=completed')->res->code,
   200, 'wrong content type still answered');
my %rules = map { $_->{rule} => 1 } $sim->violations('twilio');
ok($rules{$_}, "violation $_") for qw(twilio_sid_format twilio_no_update twilio_status twilio_twiml
                                       twilio_content_type);

# ---- persona -----------------------------------------------------------------
$tx = $ua->get($sim->app_url('persona') => { Authorization => 'Bearer app-key' }
               => form => { CallSid => $sid, persona => 'sales', caller => 'Dana' });
is($tx->res->code, 200, 'persona: 200');
is_deeply($tx->res->json, { system_prompt => 'You sell.', greeting => 'Buy now!', voice => 'v1',
                            model => 'm1', language => 'en', tools => ['lookup'] }, '... the sales persona');
$tx = $ua->get($sim->url('app') . '/v2/voice/persona?CallSid=' . $sid . '&persona=nobody');
is($tx->res->json->{system_prompt}, 'Default agent.', 'unknown persona (prefixed path): default');
my @p = $sim->records('app', ev => 'persona');
is($p[0]{selected}, 'sales', 'persona record: selected');
is($p[0]{call_sid}, $sid, '... call_sid');
is($p[0]{query}{caller}, 'Dana', '... query');
is($p[0]{authorization}, 'Bearer app-key', '... authorization');
is($p[1]{selected}, 'default', '... default selected');
$sim->stop;

# persona status, body and delay; tool timing; events (a second run)
$sim = VoiceSim::Sim->start(dir => "$dir/run2", key => 'k6', config => {
    app => { persona_status => 503, tools => { lookup => { result => { price => 42 }, delay_ms => 300 },
                                               broken => { status => 502, result => { error => 'down' } } },
             events_fail_first => 2 } });
$tx = $ua->get($sim->app_url('persona') . "?CallSid=$sid");
is($tx->res->code, 503, 'persona_status: 503');
$sim->stop;
$sim = VoiceSim::Sim->start(dir => "$dir/run3", key => 'k6', config => {
    app => { persona_delay_ms => 600, persona_body => '{"system_prompt":' } });
my $t0 = time;
$tx = $ua->get($sim->app_url('persona') . "?CallSid=$sid");
cmp_ok(time - $t0, '>=', 0.55, 'persona_delay_ms');
is($tx->res->body, '{"system_prompt":', 'persona_body: raw body');
my $short = Mojo::UserAgent->new(request_timeout => 0.2);
ok($short->get($sim->app_url('persona') . "?CallSid=$sid")->error, 'a client giving up early times out');
ok($sim->wait_for('app', sub { $_[0]{ev} eq 'client_disconnected' }, 3), '... client_disconnected logged');
$sim->stop;

$sim = VoiceSim::Sim->start(dir => "$dir/run4", key => 'k6', config => {
    app => { tools => { lookup => { result => { price => 42 }, delay_ms => 300 },
                        broken => { status => 502, result => { error => 'down' } } },
             events_fail_first => 2 } });
$t0 = time;
$tx = $ua->post($sim->app_url('tools', 'lookup') => json => { sku => 'A1' });
cmp_ok(time - $t0, '>=', 0.28, 'tool delay_ms');
is_deeply($tx->res->json, { price => 42 }, 'tool result from config');
$tx = $ua->post($sim->app_url('tools', 'echo') => json => { q => 'x' });
is_deeply($tx->res->json, { ok => Mojo::JSON::true, echo => { q => 'x' } }, 'default result echoes args');
is($ua->post($sim->app_url('tools', 'broken') => json => {})->res->code, 502, 'tool status');
$tx = $ua->post($sim->app_url('tools', 'echo') => { 'Content-Type' => 'text/plain' } => 'not json');
is($tx->res->code, 400, 'non-JSON tool body: 400');
my @tc = $sim->records('app', ev => 'tool_call');
is_deeply([ map { $_->{n} } @tc ], [1, 2, 3, 4], 'tool_call: counter n');
is_deeply($tc[0]{args}, { sku => 'A1' }, 'tool_call: args');
is($tc[0]{name}, 'lookup', 'tool_call: name');
my ($tr) = $sim->records('app', ev => 'tool_result');
cmp_ok($tr->{ms}, '>=', 290, 'tool_result: ms');
%rules = map { $_->{rule} => 1 } $sim->violations('app');
ok($rules{app_tool_body} && $rules{app_tool_content_type}, 'tool body / content type violations');

# events: fail_first 2, then the third attempt is stored
my $rec = encode_json({ call_sid => $sid, end_reason => 'caller_hangup', counts => { turns => 2 },
                        transcript => [ { role => 'user', text => 'hi' }, { role => 'assistant', text => 'hello' } ] });
my $post = sub {
    my ($body, %h) = @_;
    my $ts = $h{ts} // time;
    return $ua->post($sim->app_url('events') => { 'Content-Type' => 'application/json',
        'X-Voice-Timestamp' => int $ts, 'X-Voice-Signature' => $h{sig} // sign($h{secret} // 'k6', int $ts, $body) }
        => $body)->res->code;
};
is($post->($rec), 503, 'events attempt 1: 503 (fail_first)');
is($post->($rec), 503, 'events attempt 2: 503');
is($post->($rec), 200, 'events attempt 3: 200');
is($sim->event($sid)->{end_reason}, 'caller_hangup', 'record stored under events/<CallSid>.json');
is($post->($rec, secret => 'wrong'), 401, 'bad signature: 401');
is($post->($rec, sig => 'sha256=' . 'a' x 64), 401, 'bad signature (hex): 401');
is($post->($rec, ts => time - 3600), 401, 'stale timestamp: 401');
is($ua->post($sim->app_url('events') => json => { call_sid => $sid })->res->code, 401, 'unsigned: 401');
my @ev = $sim->records('app', ev => 'event_delivery');
is_deeply([ map { $_->{attempt} } @ev[0 .. 2] ], [1, 2, 3], 'event_delivery: attempt per call sid');
is_deeply([ map { $_->{status} } @ev[0 .. 2] ], [503, 503, 200], '... status');
ok($ev[2]{signature_ok} && !$ev[3]{signature_ok}, '... signature_ok');
is($ev[3]{signature_error}, 'mismatch', '... signature_error');
%rules = map { $_->{rule} => 1 } $sim->violations('app');
ok($rules{app_events_signature} && $rules{app_events_unsigned}, 'signature violations');
like(VoiceSim::Sim::_slurp("$dir/run4/sim.out"),
     qr/app: call record \Q$sid\E end=caller_hangup turns=2 transcript=2 lines \(attempt 3\)/,
     'summary line on sim.out');
$sim->stop;

# --set with nested keys reaches the app config
my $cli = "$dir/cli";
`$^X tools/voice-sim start --background --dir $cli --key k7 --set app.tools.t1.status=418 --set app.persona_key=who 2>&1`;
my $s2 = VoiceSim::Sim->attach($cli);
is($ua->post($s2->app_url('tools', 't1') => json => {})->res->code, 418, '--set app.tools.t1.status');
like(`$^X tools/voice-sim stop --dir $cli 2>&1`, qr/stopped/, 'CLI stop');
done_testing;
