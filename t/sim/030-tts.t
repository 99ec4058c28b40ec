use strict;
use warnings;
use lib 'tools/lib';

use Test::More;
use File::Temp qw(tempdir);
use Mojo::Util qw(b64_decode);
use VoiceSim::Sim;
use VoiceSim::TestClient;

my $dir = $ENV{SIM_KEEP} || tempdir(CLEANUP => 1);
my $sim = VoiceSim::Sim->start(dir => "$dir/run", key => 'k3', config => {
    tts => { first_byte_ms => 20, chunk_gap_ms => 2, inactivity_ms => 800 },
    aura => { first_byte_ms => 20, chunk_gap_ms => 2 } });
my $el = $sim->url('tts') . '/v1/text-to-speech/voice1';
my $q = 'output_format=ulaw_8000&model_id=eleven_flash_v2_5';
my %h = ('xi-api-key' => 'k3');

# auth
my $ws = VoiceSim::TestClient->connect("$el/stream-input?$q", headers => { 'xi-api-key' => 'bad' });
ok($ws->wait_closed(3), 'bad key: closed');
is($ws->close_code, 1008, '... 1008');
is(($ws->texts)[0]{error}, 'invalid_api_key', '... after an error message');
$ws = VoiceSim::TestClient->connect("$el/stream-input?$q");
$ws->send_json({ text => ' ', xi_api_key => 'k3' });
$ws->send_json({ text => 'Hi. ', flush => Mojo::JSON::true });
ok($ws->wait(sub { grep { $_->{json}{audio} } @_ }, 5), 'key in the first message accepted');
$ws->finish;

# first message rule
$ws = VoiceSim::TestClient->connect("$el/stream-input?$q", headers => \%h);
$ws->send_json({ text => 'Hello ' });
ok($ws->wait_closed(3), 'first message not " ": closed');
is($ws->close_code, 1008, '... 1008');

# single context: schedule buffering, flush, alignment, isFinal + 1000
$ws = VoiceSim::TestClient->connect("$el/stream-input?$q", headers => \%h);
$ws->send_json({ text => ' ', voice_settings => { stability => 0.5, similarity_boost => 0.8 },
                 generation_config => { chunk_length_schedule => [50] } });
$ws->send_json({ text => 'Hello there. ' });
$ws->sleep(0.3);
is(scalar(grep { $_->{audio} } $ws->texts), 0, 'below the schedule: nothing generated');
$ws->send_json({ text => 'This sentence is long enough to pass fifty characters. ' });
ok($ws->wait(sub { grep { $_->{json}{audio} } @_ }, 5), 'schedule reached: audio');
$ws->send_json({ text => 'Bye now. ', flush => Mojo::JSON::true });
$ws->sleep(0.5);
$ws->send_json({ text => '' });
ok($ws->wait_closed(5), 'closed after text ""');
is($ws->close_code, 1000, '... 1000');
my @m = $ws->texts;
ok($m[-1]{isFinal}, 'last message isFinal');
my @audio = grep { defined $_->{audio} } @m;
my $text = join '', map { join '', @{ $_->{alignment}{chars} } } @audio;
is($text, 'Hello there. This sentence is long enough to pass fifty characters.Bye now.',
   'alignment chars cover the text');
my ($bytes, $ok) = (0, 1);
for my $a (@audio) {
    my $b = b64_decode($a->{audio});
    $bytes += length $b;
    my $al = $a->{alignment};
    my $sum = 0; $sum += $_ for @{ $al->{charDurationsMs} };
    $ok = 0 unless $sum * 8 == length $b && $al->{charStartTimesMs}[0] == 0
        && @{ $al->{chars} } == @{ $al->{charStartTimesMs} };
    ok(!$a->{isFinal}, 'audio chunk isFinal false') if $a == $audio[0];
    is_deeply($a->{normalizedAlignment}, $al, 'normalizedAlignment') if $a == $audio[0];
}
ok($ok, 'per chunk: sum of durations == audio length, starts at 0');
my $secs = $bytes / 8000;
cmp_ok($secs, '>', 3, "plausible duration ($secs s)");
cmp_ok($secs, '<', 12, '... not too long');
my $raw = join '', map { b64_decode($_->{audio}) } @audio;
my $loud = grep { $_ != 0xff && $_ != 0x7f } unpack 'C*', $raw;
cmp_ok($loud / length($raw), '>', 0.5, 'mu-law audio carries signal');

# input timeout (800 ms in this run)
$ws = VoiceSim::TestClient->connect("$el/stream-input?$q", headers => \%h);
$ws->send_json({ text => ' ' });
ok($ws->wait_closed(3), 'idle: closed');
is($ws->close_code, 1008, '... 1008');
is(($ws->texts)[-1]{error}, 'input_timeout_exceeded', '... input_timeout_exceeded');

# output format recorded as a violation if not ulaw_8000
$ws = VoiceSim::TestClient->connect("$el/stream-input?output_format=pcm_16000", headers => \%h);
$ws->finish;
ok((grep { $_->{rule} eq 'tts_output_format' } $sim->violations('tts')), 'output_format violation');

# multi context
$ws = VoiceSim::TestClient->connect("$el/multi-stream-input?$q", headers => \%h);
$ws->send_json({ text => ' ', context_id => 'turn-1' });
$ws->send_json({ text => 'First turn here. ', context_id => 'turn-1', flush => Mojo::JSON::true });
ok($ws->wait(sub { grep { ($_->{json}{contextId} // '') eq 'turn-1' && $_->{json}{audio} } @_ }, 5), 'multi: audio tagged contextId');
$ws->send_json({ text => '', context_id => 'turn-1' });
$ws->send_json({ context_id => 'turn-1', close_context => Mojo::JSON::true });
ok($ws->wait(sub { grep { $_->{json}{isFinal} && $_->{json}{contextId} eq 'turn-1' } @_ }, 5), 'close_context: isFinal for it');
ok(!$ws->close_code, 'keep-alive "" did not close the socket');
$ws->send_json({ text => ' ', context_id => "c$_" }) for 1 .. 5;
$ws->send_json({ text => ' ', context_id => 'c6' });
ok($ws->wait_closed(3), '6th open context: closed');
is($ws->close_code, 1008, '... 1008');
ok((grep { $_->{rule} eq 'tts_context_cap' } $sim->violations('tts')), '... context cap violation');

$ws = VoiceSim::TestClient->connect("$el/multi-stream-input?$q", headers => \%h);
$ws->send_json({ text => ' ', context_id => 'a' });
$ws->send_json({ text => 'Some words. ', context_id => 'a' });
$ws->send_json({ close_socket => Mojo::JSON::true });
ok($ws->wait_closed(5), 'close_socket closes');
is($ws->close_code, 1000, '... 1000');
ok((grep { $_->{audio} } $ws->texts), '... after flushing buffered text');

# mid-stream drop: connection 1 drops after 2 audio messages (no close
# frame), connection 2 is not dropped
{
    my $sim2 = VoiceSim::Sim->start(dir => "$dir/drop", key => 'k3', config => {
        tts => { first_byte_ms => 20, chunk_gap_ms => 2, chunk_ms => 200,
                 drop_after_audio => 2, drop_on_connection => 1 } });
    my $url = $sim2->url('tts') . '/v1/text-to-speech/voice1';
    my $long = 'This reply is long enough to be cut into several audio messages by the simulator. ';
    my $ws = VoiceSim::TestClient->connect("$url/multi-stream-input?$q", headers => \%h);
    $ws->send_json({ text => ' ', context_id => 'turn-1' });
    $ws->send_json({ text => $long, context_id => 'turn-1', flush => Mojo::JSON::true });
    ok($ws->wait_closed(5), 'drop: connection 1 dropped');
    is($ws->close_code, 1006, '... abruptly (1006, no close frame)');
    is(scalar(grep { defined $_->{audio} } $ws->texts), 2, '... after exactly 2 audio messages');
    ok(!(grep { $_->{isFinal} } $ws->texts), '... and no isFinal');
    my ($d) = $sim2->records('tts', ev => 'server_disconnect');
    ok($d, 'drop: server_disconnect logged');
    is($d && $d->{audio_messages}, 2, '... with the count');
    is($d && $d->{context_id}, 'turn-1', '... and the context id');

    $ws = VoiceSim::TestClient->connect("$url/multi-stream-input?$q", headers => \%h);
    $ws->send_json({ text => ' ', context_id => 'turn-1' });
    $ws->send_json({ text => $long, context_id => 'turn-1', flush => Mojo::JSON::true });
    $ws->send_json({ context_id => 'turn-1', close_context => Mojo::JSON::true });
    ok($ws->wait(sub { grep { $_->{json}{isFinal} } @_ }, 10), 'drop: connection 2 not dropped');
    cmp_ok(scalar(grep { defined $_->{audio} } $ws->texts), '>', 2, '... all its audio messages');
    ok(!$ws->close_code, '... still open');
    $ws->finish;
    is(scalar($sim2->records('tts', ev => 'server_disconnect')), 1, 'drop: only one server_disconnect');
    is_deeply([ $sim2->violations('tts') ], [], 'drop: no violations');
    $sim2->stop;
}

# --- Aura ---
my $aura = $sim->url('aura') . '/v1/speak?encoding=mulaw&sample_rate=8000&model=aura-2-thalia-en';
$ws = VoiceSim::TestClient->connect($aura);
is($ws->status, 401, 'aura: no key 401');
ok($ws->res->headers->header('dg-error'), 'aura: dg-error');
$ws = VoiceSim::TestClient->connect($aura, headers => { Authorization => 'Token k3' });
ok($ws->wait(sub { grep { ($_->{json}{type} // '') eq 'Metadata' } @_ }, 3), 'aura: Metadata on open');
$ws->send_json({ type => 'Speak', text => 'Hello from Aura. ' });
$ws->send_json({ type => 'Flush' });
ok($ws->wait(sub { grep { ($_->{json}{type} // '') eq 'Flushed' } @_ }, 5), 'aura: Flushed') or diag explain [ map { $_->{type} . ':' . length($_->{data}) } $ws->msgs ], $ws->close_code;
my @bin = $ws->binaries;
my $ab = 0; $ab += length for @bin;
cmp_ok($ab / 8000, '>', 0.5, 'aura: binary mu-law audio before Flushed');
is(($ws->of_type('Flushed'))[0]{sequence_id}, 0, 'aura: sequence_id 0');
$ws->send_json({ type => 'Speak', text => 'A much longer sentence that will take a while to play out. ' });
$ws->send_json({ type => 'Flush' });
$ws->send_json({ type => 'Clear' });
ok($ws->wait(sub { grep { ($_->{json}{type} // '') eq 'Cleared' } @_ }, 5), 'aura: Cleared');
$ws->send_json({ type => 'Close' });
ok($ws->wait_closed(3), 'aura: Close closes');
is($ws->close_code, 1000, 'aura: 1000');
ok((grep { $_->{ev} eq 'cleared' && $_->{dropped_frames} > 0 } $sim->records('aura')), 'aura: Clear dropped queued audio');
$ws = VoiceSim::TestClient->connect($aura, headers => { Authorization => 'Token k3' });
$ws->send_json({ type => 'Nope' });
ok($ws->wait_closed(3), 'aura: unknown message closes');
is($ws->close_code, 1008, 'aura: 1008') or diag explain [$ws->close_code, $ws->close_reason, [$ws->texts]];
$ws = VoiceSim::TestClient->connect($sim->url('aura') . '/v1/speak?encoding=opus', headers => { Authorization => 'Token k3' });
is($ws->status, 400, 'aura: unsupported encoding 400');

$sim->stop;
done_testing;
