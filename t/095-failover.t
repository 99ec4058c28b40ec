# Several endpoints per provider: every URL directive takes failover
# URLs after the first.  A provider whose first endpoint is down (or,
# for the LLM, answers 5xx) is served by the next, within the same call.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use lib 't/lib', 'tools/lib';
use VoiceTest::Nginx;
use VoiceSim::Sim;
use VoiceSim::Caller;

my $dir = tempdir(CLEANUP => 1);
my $KEY = 'fo-key-31c7';

sub script {
    my ($name, $text) = @_;
    open my $fh, '>', "$dir/$name" or die $!;
    print $fh $text;
    close $fh;
    return "$dir/$name";
}

sub finish {
    my ($srv, $what) = @_;
    is($srv->stop, '', "$what: valgrind clean") if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|exited on signal/,
           "$what: no alert or crash");
}

my $script = script('s.txt', "say: Hello there, I would like a table for two.\n"
                             . "wait: 2500\nhangup\n");
my $dead = VoiceTest::Nginx::Server::dead_port();

# --- first STT and LLM endpoints refuse connections: the second serve

{
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim1", tls => 1,
                                   script => $script, key => $KEY);
    my ($stt, $llm) = ($sim->port('stt'), $sim->port('llm'));
    my $srv = VoiceTest::Nginx::Server->start(server =>
        "location = /stream { voice_pipeline transcribe; "
        . "voice_stt_url wss://localhost:$dead/v1/listen wss://localhost:$stt/v1/listen; "
        . "voice_stt_key $KEY; "
        . "voice_llm_url https://localhost:$dead/v1/chat/completions "
        . "https://localhost:$llm/v1/chat/completions; "
        . "voice_llm_key $KEY; "
        . "voice_ssl_trusted_certificate " . $sim->ca_file . "; }");
    VoiceSim::Caller->new(url => 'ws://127.0.0.1:' . $srv->port . '/stream',
                          script => $script, out => "$dir/out1", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/\[warn\].*speech-to-text failed \(connection failed\), trying the next endpoint/,
         'STT: the first endpoint refused, the next is tried');
    like($log, qr/caller turn 1 \(speech_final\): "Hello there, I would like a table for two\."/,
         'STT: the turn is transcribed by the second endpoint');
    like($log, qr/\[warn\].*voice: LLM request goes to the next endpoint/,
         'LLM: the request goes to the next endpoint');
    like($log, qr/assistant reply 1: "You said: Hello there, I would like a table for two\.\."/,
         'LLM: the reply comes from the second endpoint');
    finish($srv, 'refused');
    $sim->stop;
}

# --- the first LLM endpoint answers 500: the same request, the next one

{
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim2", tls => 1,
                                   script => $script, key => $KEY,
                                   config => { llm => { faults => [
                                       { status => 500, on_request => 1,
                                         message => 'Overloaded' } ] } });
    my ($stt, $llm) = ($sim->port('stt'), $sim->port('llm'));
    my $srv = VoiceTest::Nginx::Server->start(server =>
        "location = /stream { voice_pipeline transcribe; "
        . "voice_stt_url wss://localhost:$stt/v1/listen; voice_stt_key $KEY; "
        . "voice_llm_url https://localhost:$llm/v1/chat/completions "
        . "https://127.0.0.1:$llm/v1/chat/completions; "
        . "voice_llm_key $KEY; "
        . "voice_ssl_trusted_certificate " . $sim->ca_file . "; }");
    VoiceSim::Caller->new(url => 'ws://127.0.0.1:' . $srv->port . '/stream',
                          script => $script, out => "$dir/out2", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/LLM error: HTTP 500.*"Overloaded".*endpoint: https:\/\/localhost:/,
         'the 500 of the first endpoint is logged');
    like($log, qr/LLM request goes to the next endpoint/, 'and the request fails over at once');
    like($log, qr/goes to the next endpoint, provider: llm, endpoint: https:\/\/127\.0\.0\.1:.*assistant reply 1: "You said: Hello there/s,
         'the second endpoint (an address: its certificate\'s IP checked) answers the same turn');
    is(scalar($sim->records('llm', ev => 'http_request')), 2,
       'two requests: the failed one and its failover');
    finish($srv, '500');
    $sim->stop;
}

# --- text-to-speech: the first endpoint refuses, the announcement plays

{
    my $sim = VoiceSim::Sim->start(dir => "$dir/sim3", tls => 1, key => $KEY);
    my $tts = $sim->port('tts');
    my $srv = VoiceTest::Nginx::Server->start(server =>
        "location = /stream { voice_pipeline announce; "
        . "voice_greeting \"Thank you for calling.\"; "
        . "voice_tts_url wss://localhost:$dead wss://localhost:$tts; "
        . "voice_tts_key $KEY; voice_tts_voice Xb7hH8MSUJpSbSDYk0k2; "
        . "voice_ssl_trusted_certificate " . $sim->ca_file . "; }");
    VoiceSim::Caller->new(url => 'ws://127.0.0.1:' . $srv->port . '/stream',
                          script => script('w.txt', "wait: bot\nhangup\n"),
                          out => "$dir/out3", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/text-to-speech failed \(connection failed\), trying the next endpoint/,
         'TTS: the next endpoint is tried');
    like($log, qr/voice: announce: heard in full/, 'the announcement is heard in full');
    finish($srv, 'tts');
    $sim->stop;
}

done_testing();
