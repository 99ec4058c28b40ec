# The Deepgram leg through real module behaviour: `voice_pipeline
# transcribe` streams a scripted Twilio call to the STT simulator over
# wss:// (nginx's resolver-less config path, TLS with verification) and
# logs the caller's turns.  Checked on both sides: the module's log and
# what the simulator received.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use POSIX ();
use lib 't/lib', 'tools/lib';
use VoiceTest::Nginx;
use VoiceSim::Sim;
use VoiceSim::Caller;

my $dir = tempdir(CLEANUP => 1);
my $KEY = 'dg-key-7f3a9c';

my $script = "$dir/script.txt";
open my $fh, '>', $script or die $!;
print $fh <<'END';
say: Hello there, I would like a table for two.
wait: 1200
say: Tomorrow at seven please.
wait: 1500
hangup
END
close $fh;

sub location {
    my ($sim, %o) = @_;
    my $port = $sim->port('stt');
    my $host = $o{host} || 'localhost';
    return "location = /stream { voice_pipeline transcribe; "
         . "voice_stt_url wss://$host:$port/v1/listen; "
         . "voice_stt_key " . ($o{key} || $KEY) . "; "
         . ($o{no_ca} ? '' : "voice_ssl_trusted_certificate " . $sim->ca_file . "; ")
         . ($o{extra} || '') . " }";
}

sub call {
    my ($srv) = @_;
    return VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . '/stream',
        script => $script, out => "$dir/out", quiet => 1)->run;
}

sub finish {
    my ($srv, $what) = @_;
    is($srv->stop, '', "$what: valgrind clean") if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|exited on signal/,
           "$what: no alert or crash");
}

# --- the happy path over TLS

{
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim1", tls => 1,
                                   script => $script, key => $KEY);
    my $srv = VoiceTest::Nginx::Server->start(
        server => location($sim, extra => 'voice_stt_keyterm "table for two";'));
    my $sum = call($srv);
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;

    like($log, qr/voice: speech-to-text connected in \d+ ms.*provider: deepgram, endpoint: wss:\/\/localhost:\d+\/v1\/listen.*call: CA[0-9a-f]{32}/,
         'STT leg connected, logged with provider, endpoint and call');
    like($log, qr/caller turn 1 \(speech_final\): "Hello there, I would like a table for two\."/,
         'first turn transcribed');
    like($log, qr/caller turn 2 \(speech_final\): "Tomorrow at seven please\."/,
         'second turn transcribed');
    like($log, qr/transcribed 2 turns, \d+ bytes of audio sent to speech-to-text over 1 connection/,
         'one connection for the whole call');
    unlike($log, qr/$KEY/, 'the key never reaches the log');
    unlike($log, qr/\[error\]/, 'no error');

    my @r = $sim->records('stt');
    my ($conn) = grep { $_->{ev} eq 'connect' } @r;
    like($conn->{headers}{authorization}, qr/^Token dg-k\*\*\*$/,
         'Authorization: Token <key> (as the simulator logs it, masked)');
    ok((grep { $_->{ev} eq 'auth' && $_->{ok} && $_->{scheme} =~ /token/i } @r),
       'the simulator accepted the key');
    my $q = $conn->{query};
    is_deeply({ map { $_ => $q->{$_} } qw(encoding sample_rate channels model language interim_results vad_events endpointing utterance_end_ms smart_format keyterm) },
              { encoding => 'mulaw', sample_rate => '8000', channels => '1',
                model => 'nova-3', language => 'en-US', interim_results => 'true',
                vad_events => 'true', endpointing => '300',
                utterance_end_ms => '1000', smart_format => 'true',
                keyterm => 'table for two' },
              'query: μ-law 8 kHz, model, language, endpointing, keyterm');
    my @audio = grep { $_->{ev} eq 'recv' && ($_->{frame} // '') eq 'binary' } @r;
    cmp_ok(scalar @audio, '>', 300, scalar(@audio) . ' binary audio frames');
    is(scalar(grep { !$_->{bytes} } @audio), 0, 'no empty binary frame');
    my @text = map { $_->{json}{type} // '' }
               grep { $_->{ev} eq 'recv' && ($_->{frame} // '') eq 'text' } @r;
    is($text[-1], 'CloseStream', 'CloseStream at the end of the call');
    ok((grep { $_->{ev} eq 'server_close' && $_->{code} == 1000 } @r),
       'the simulator closed normally after CloseStream');
    is(scalar($sim->violations), 0, 'no protocol violation seen by the simulator');
    finish($srv, 'happy path');
    $sim->stop;
}

# --- the provider drops the socket mid-call: reconnect, nothing lost

{
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim2", tls => 1,
                                   script => $script, key => $KEY,
                                   config => { stt => { drop_after_ms => 2600,
                                                               drop_on_connection => 1,
                                                               segment_numbering => 'run' } });
    my $srv = VoiceTest::Nginx::Server->start(server => location($sim));
    call($srv);
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/\[warn\].*speech-to-text lost \(connection closed by the provider\), reconnecting in 250 ms.*call: CA/,
         'the drop is logged with the call and a reconnect follows');
    like($log, qr/speech-to-text connected in \d+ ms, replaying [1-9]\d* ms of audio/,
         'the audio not yet transcribed is replayed');
    like($log, qr/caller turn 2 \(speech_final\): "Tomorrow at seven please\."/,
         'the turn after the drop is transcribed');
    like($log, qr/over [2-9] connection\(s\)/, 'on a new connection');
    finish($srv, 'drop');
    $sim->stop;
}

# --- a wrong key: 401 with Deepgram's dg-error, no retry, call ended

{
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim3", tls => 1,
                                   script => $script, key => $KEY);
    my $srv = VoiceTest::Nginx::Server->start(
        server => location($sim, key => 'wrong-key-123'));
    my $sum = call($srv);
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/\[error\].*WebSocket upgrade refused: HTTP 401 ".+".*provider: deepgram/,
         '401 logged with the provider\'s reason');
    like($log, qr/speech-to-text refused \(handshake refused\), not retrying/,
         'not retried');
    like($log, qr/close sent 1011/, 'the call is closed with 1011');
    unlike($log, qr/wrong-key-123/, 'the key is not logged');
    finish($srv, '401');
    $sim->stop;
}

# --- TLS: an untrusted certificate, and a name the certificate lacks

{
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim4", tls => 1,
                                   script => $script, key => $KEY);
    my $srv = VoiceTest::Nginx::Server->start(server => location($sim, no_ca => 1));
    call($srv);
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    like($srv->error_log, qr/\[error\].*certificate of localhost does not verify.*provider: deepgram/,
         'an untrusted certificate fails verification (system CAs by default)');
    finish($srv, 'untrusted');

    $srv = VoiceTest::Nginx::Server->start(
        server => location($sim, extra => 'voice_stt_ssl_name wrong.example;'));
    call($srv);
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    like($srv->error_log, qr/\[error\].*certificate does not match "wrong\.example"/,
         'a certificate for another name fails');
    finish($srv, 'wrong name');
    $sim->stop;
}

# --- a reload during a call: the old worker keeps the call and its STT
#     leg until worker_shutdown_timeout, then closes both cleanly

{
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim5", tls => 1,
                                   script => $script, key => $KEY);
    my $srv = VoiceTest::Nginx::Server->start(
        master => 1, main => 'worker_shutdown_timeout 5s;',
        server => location($sim));
    my $pid = fork;
    if (!$pid) {
        $Test::Nginx::Util::InSubprocess = 1;
        call($srv);
        POSIX::_exit(0);
    }
    ok($srv->wait_log(qr/speech-to-text connected/, 10), 'STT leg up');
    $srv->signal('HUP');
    ok($srv->wait_log(qr/caller turn 1 \(speech_final\)/, 10),
       'the call goes on in the old worker after the reload');
    ok($srv->wait_log(qr/voice: call ended/, 12),
       'worker_shutdown_timeout ends the call');
    waitpid($pid, 0);
    like($srv->error_log, qr/gracefully shutting down/, 'the old worker was shutting down');
    finish($srv, 'reload');
    unlike($srv->error_log, qr/open socket #\d+ left/, 'no socket left behind');
    $sim->stop;
}

# --- nobody listening: connection refused, retried, given up

{
    open my $w, '>', "$dir/wait.txt" or die $!;
    print $w "wait: 9000\nhangup\n";
    close $w;

    my $port = VoiceTest::Nginx::Server::dead_port();
    my $srv = VoiceTest::Nginx::Server->start(
        server => "location = /stream { voice_pipeline transcribe; "
                . "voice_stt_url ws://127.0.0.1:$port/v1/listen; "
                . "voice_stt_key $KEY; }");
    my $s = VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . '/stream',
        script => "$dir/wait.txt", out => "$dir/out", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 12), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/connect\(\) failed \(111: Connection refused\) while connecting.*provider: deepgram/,
         'the refused connect is logged');
    like($log, qr/speech-to-text lost \(connection failed\), giving up after 5 attempts/,
         'retried with backoff, then given up');
    like($log, qr/close sent 1011/, 'the call is closed with 1011');
    finish($srv, 'refused');
}

done_testing();
