use strict;
use warnings;
use lib 'tools/lib';

use Test::More;
use File::Temp qw(tempdir);
use VoiceSim::Sim;
use VoiceSim::TestClient;

my $dir = $ENV{SIM_KEEP} || tempdir(CLEANUP => 1);
open my $fh, '>', "$dir/call.txt" or die;
print $fh "say: Hi, I'd like a table for two.\nreply: Sure.\nsay: At seven please.\n";
close $fh;
my $sim = VoiceSim::Sim->start(dir => "$dir/run", script => "$dir/call.txt", key => 'k1',
                               config => { stt => { latency_ms => 10, idle_timeout_ms => 700 } });
my $base = $sim->url('stt') . '/v1/listen';
my $good = 'encoding=mulaw&sample_rate=8000&channels=1&model=nova-2-phonecall';

# tone burst (real speech energy) and mu-law silence
my $tone = `sox -n -r 8000 -c 1 -e u-law -t raw - synth 1 sine 440 vol 0.5`;
is(length $tone, 8000, 'sox tone burst: 1 s of mu-law');
my $sil = "\xff" x 9600;    # 1.2 s

# --- auth ---
my $ws = VoiceSim::TestClient->connect("$base?$good");
is($ws->status, 401, 'no credentials: 401');
ok($ws->res->headers->header('dg-error'), 'dg-error header');
ok($ws->res->headers->header('dg-request-id'), 'dg-request-id header');
is($ws->res->json->{err_code}, 'INVALID_AUTH', 'JSON error body');

$ws = VoiceSim::TestClient->connect("$base?$good", headers => { Authorization => 'Token wrong' });
is($ws->status, 401, 'wrong key: 401');

$ws = VoiceSim::TestClient->connect("$base?$good", subprotocols => ['token', 'k1']);
ok($ws->ok, 'subprotocol auth accepted');
is($ws->protocol, 'token', 'server echoes the "token" subprotocol');
$ws->finish;

$ws = VoiceSim::TestClient->connect("$base?$good", headers => { Authorization => 'Bearer k1' });
ok($ws->ok, 'Bearer accepted');
$ws->finish;

# --- query validation ---
$ws = VoiceSim::TestClient->connect("$base?sample_rate=8000", headers => { Authorization => 'Token k1' });
is($ws->status, 400, 'missing encoding: 400');
ok($ws->res->headers->header('dg-error'), '400 carries dg-error');
$ws = VoiceSim::TestClient->connect("$base?encoding=linear16&sample_rate=8000", headers => { Authorization => 'Token k1' });
is($ws->status, 400, 'wrong encoding: 400');
$ws = VoiceSim::TestClient->connect("$base?encoding=mulaw&sample_rate=16000", headers => { Authorization => 'Token k1' });
is($ws->status, 400, 'wrong sample_rate: 400');
ok(scalar(grep { $_->{rule} eq 'stt_encoding' } $sim->violations('stt')), 'violation recorded for encoding');

# --- the full event sequence ---
my $q = "$good&interim_results=true&vad_events=true&endpointing=300&utterance_end_ms=1000&punctuate=true";
$ws = VoiceSim::TestClient->connect("$base?$q", headers => { Authorization => 'Token k1' });
ok($ws->ok, 'connected with full options');
$ws->send_audio($tone . $sil);
ok($ws->wait(sub { grep { ($_->{json}{type} // '') eq 'UtteranceEnd' } @_ }, 5), 'UtteranceEnd arrives');
my @types = map { $_->{type} eq 'Results' ? ($_->{is_final} ? 'final' : 'interim') : $_->{type} } $ws->texts;
is($types[0], 'SpeechStarted', 'SpeechStarted first');
is($types[-1], 'UtteranceEnd', 'UtteranceEnd last');
my @interim = grep { $_->{type} eq 'Results' && !$_->{is_final} } $ws->texts;
cmp_ok(scalar @interim, '>=', 2, 'several interim results');
my @lens = map { scalar split ' ', $_->{channel}{alternatives}[0]{transcript} } @interim;
is_deeply(\@lens, [ sort { $a <=> $b } @lens ], 'interim transcripts grow');
my ($final) = grep { $_->{type} eq 'Results' && $_->{is_final} } $ws->texts;
is($final->{channel}{alternatives}[0]{transcript}, "Hi, I'd like a table for two.", 'final = script line 1');
ok($final->{speech_final} && !$final->{from_finalize}, 'speech_final, not from_finalize');
cmp_ok(abs($final->{start} + $final->{duration} - 1.3), '<', 0.05, 'final ends 300 ms after the speech');
is($final->{metadata}{request_id}, $ws->res->headers->header('dg-request-id'), 'request_id matches header');
my $w = $final->{channel}{alternatives}[0]{words};
is(scalar @$w, 7, 'seven words');
is($w->[0]{punctuated_word}, 'Hi,', 'punctuated_word');
cmp_ok($w->[-1]{end}, '<=', 1.0 + 0.05, 'words within the speech');
my ($ss) = $ws->of_type('SpeechStarted');
cmp_ok($ss->{timestamp}, '<', 0.05, 'SpeechStarted timestamp ~0');
my ($ue) = $ws->of_type('UtteranceEnd');
cmp_ok(abs($ue->{last_word_end} - 1.0), '<', 0.05, 'last_word_end ~1.0');

# KeepAlive: no reply; second segment; Finalize mid-speech
my $n = () = $ws->msgs;
$ws->send_json({ type => 'KeepAlive' });
$ws->sleep(0.2);
is(scalar(() = $ws->msgs), $n, 'KeepAlive gets no reply');
$ws->send_audio(substr($tone, 0, 4000));
$ws->wait(sub { grep { ($_->{json}{type} // '') eq 'SpeechStarted' } @_[$n .. $#_] }, 3);
$ws->send_json({ type => 'Finalize' });
ok($ws->wait(sub { grep { $_->{json}{from_finalize} } @_ }, 3), 'Finalize answered');
my ($ff) = grep { $_->{type} eq 'Results' && $_->{from_finalize} } $ws->texts;
ok($ff->{is_final}, 'from_finalize result is final');
is($ff->{channel}{alternatives}[0]{transcript}, 'At seven please.', 'segment 2 = script line 2');
# Finalize with nothing buffered: empty transcript
$ws->send_json({ type => 'Finalize' });
ok($ws->wait(sub { (grep { $_->{json}{from_finalize} } @_) == 2 }, 3), 'second Finalize answered');
my @ff = grep { $_->{type} eq 'Results' && $_->{from_finalize} } $ws->texts;
is($ff[1]{channel}{alternatives}[0]{transcript}, '', 'empty transcript when nothing buffered');
# CloseStream: Metadata then 1000
$ws->send_json({ type => 'CloseStream' });
ok($ws->wait_closed(3), 'closed after CloseStream');
is($ws->close_code, 1000, 'close 1000');
my @t = $ws->texts;
is($t[-1]{type}, 'Metadata', 'Metadata last');
is($t[-1]{transaction_key}, 'deprecated', 'Metadata shape');
cmp_ok(abs($t[-1]{duration} - 2.7), '<', 0.01, 'Metadata duration = audio seconds');

# idle: NET-0001 (idle_timeout_ms 700 in this run)
$ws = VoiceSim::TestClient->connect("$base?$good", headers => { Authorization => 'Token k1' });
ok($ws->wait_closed(3), 'idle connection closed');
is($ws->close_code, 1011, 'idle: 1011');
is($ws->close_reason, 'NET-0001', 'idle: NET-0001');

# empty binary frame: end of stream
$ws = VoiceSim::TestClient->connect("$base?$good", headers => { Authorization => 'Token k1' });
$ws->send_audio($sil);
$ws->send_binary('');
ok($ws->wait_closed(3), 'empty binary frame closes');
is($ws->close_code, 1000, '... with 1000 after Metadata');
ok((grep { $_->{rule} eq 'stt_empty_binary_frame' } $sim->violations('stt')), '... and a violation');

# malformed text
$ws = VoiceSim::TestClient->connect("$base?$good", headers => { Authorization => 'Token k1' });
$ws->send_text('{"type":"Bogus"}');
ok($ws->wait_closed(3), 'unknown message type closes');
is($ws->close_code, 1008, 'close code 1008');
is($ws->close_reason, 'DATA-0000', 'DATA-0000');
ok((grep { $_->{rule} eq 'stt_bad_text_message' } $sim->violations('stt')), 'violation logged');

# log shape
my @r = $sim->records('stt');
my ($conn) = grep { $_->{ev} eq 'connect' && $_->{query}{utterance_end_ms} } @r;
is($conn->{query}{endpointing}, 300, 'query params recorded');
ok((grep { $_->{ev} eq 'recv' && ($_->{frame} // '') eq 'binary' && $_->{bytes} == 160 } @r), 'audio frames logged by size');
ok((grep { $_->{ev} eq 'send' && $_->{json}{type} eq 'Results' } @r), 'results logged as JSON');
ok(!grep({ !defined $_->{t} } @r), 'every record has a timestamp');

# drop_after_ms fault in a second run
$sim->stop;
$sim = VoiceSim::Sim->start(dir => "$dir/run2", key => 'k1', config => { stt => { drop_after_ms => 300 } });
$ws = VoiceSim::TestClient->connect($sim->url('stt') . "/v1/listen?$good", headers => { Authorization => 'Token k1' });
ok($ws->wait_closed(3), 'drop_after_ms drops the socket');
is($ws->close_code, 1006, '... abruptly (1006)');
$sim->stop;

done_testing;
