# The ElevenLabs leg through real module behaviour: `voice_pipeline
# announce` speaks voice_greeting with the TTS simulator over wss://,
# streams the audio to the scripted Twilio caller, and hands the call
# back (close 1000) once the caller has heard it all (mark echo).

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use lib 't/lib', 'tools/lib';
use VoiceTest::Nginx;
use VoiceSim::Sim;
use VoiceSim::Caller;

my $dir = tempdir(CLEANUP => 1);
my $KEY = 'el-key-2b91';
my $TEXT = 'Thank you for calling. Our office is closed today, '
         . 'please call again tomorrow.';

sub script {
    my ($name, $text) = @_;
    open my $fh, '>', "$dir/$name" or die $!;
    print $fh $text;
    close $fh;
    return "$dir/$name";
}

sub location {
    my ($sim, %o) = @_;
    return "location = /stream { voice_pipeline announce; "
         . ($o{extra} || '')
         . "voice_greeting \"$TEXT\"; "
         . "voice_tts_url wss://localhost:" . $sim->port('tts') . "; "
         . "voice_tts_key " . ($o{key} || $KEY) . "; "
         . "voice_tts_voice Xb7hH8MSUJpSbSDYk0k2; "
         . "voice_ssl_trusted_certificate " . $sim->ca_file . "; }";
}

sub finish {
    my ($srv, $what) = @_;
    is($srv->stop, '', "$what: valgrind clean") if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|exited on signal/,
           "$what: no alert or crash");
}

my $sim = VoiceSim::Sim->start(dir => "$dir/sim", tls => 1, key => $KEY);

# --- the announcement is heard in full, then the stream is handed back

{
    my $srv = VoiceTest::Nginx::Server->start(server => location($sim));
    my $sum = VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . '/stream',
        script => script('wait.txt', "wait: bot\nhangup\n"),
        out => "$dir/out1", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;

    like($log, qr/voice: text-to-speech connected in \d+ ms, provider: elevenlabs/,
             'TTS leg connected');
    like($log, qr/voice: announce: first audio \d+ ms after start/, 'first audio timed');
    like($log, qr/voice: announce: heard in full after \d+ ms/, 'heard in full (mark echo)');
    like($log, qr/close sent 1000/, 'then the stream is closed with 1000');
    unlike($log, qr/$KEY/, 'the key is not logged');
    unlike($log, qr/\[error\]/, 'no error');

    my $played = $sum->{played_ms} // $sum->{audio}{played_ms};
    my ($heard) = VoiceSim::Caller->format_summary($sum) =~ /([\d.]+) s played/;
    cmp_ok($heard, '>', 3, "the caller heard $heard s of speech");
    is($sum->{close}{code} // $sum->{close_code}, 1000, 'closed by the server with 1000')
        if defined($sum->{close}{code} // $sum->{close_code});

    my @r = grep { $_->{ev} =~ /^(recv|auth|context_open|context_closed)$/ }
            $sim->records('tts');
    ok((grep { $_->{ev} eq 'auth' && $_->{ok} && $_->{scheme} eq 'xi-api-key' } @r),
       'xi-api-key accepted');
    my @msgs = map { $_->{json} } grep { $_->{ev} eq 'recv' && $_->{json} } @r;
    is_deeply($msgs[0], { text => ' ', context_id => 'turn-1',
                          generation_config => { chunk_length_schedule => [50, 120, 160, 250] } },
              'the context opens with text " " and the chunk schedule');
    is($msgs[1]{text}, "$TEXT ", 'the text ends with a space');
    ok($msgs[1]{flush}, 'and is flushed at the end of the turn');
    is_deeply($msgs[2], { close_context => JSON::PP::true(), context_id => 'turn-1' },
              'the context is closed so isFinal follows the last audio');
    ok($msgs[-1]{close_socket}, 'close_socket at the end');
    my ($conn) = grep { $_->{ev} eq 'connect' } $sim->records('tts');
    like($conn->{path} // '', qr{^/v1/text-to-speech/Xb7hH8MSUJpSbSDYk0k2/multi-stream-input},
         'multi-stream-input for the voice');
    like(join('&', map { "$_=$conn->{query}{$_}" } sort keys %{ $conn->{query} || {} }),
         qr/output_format=ulaw_8000/, 'output_format=ulaw_8000: Twilio\'s own format');
    is(scalar($sim->violations('tts')), 0, 'no violation seen by the simulator');
    finish($srv, 'announce');
}

# --- a DTMF key skips it: clear, the context closed, nothing more played

{
    my $srv = VoiceTest::Nginx::Server->start(server => location($sim));
    my $sum = VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . '/stream',
        script => script('skip.txt', "wait: 1200\ndtmf: #\nwait: 1500\nhangup\n"),
        out => "$dir/out2", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/voice: announce: skipped by DTMF "#"/, 'skipped by DTMF');
    like($log, qr/clears 1, close sent 1000/, 'clear sent, stream closed');
    like(VoiceSim::Caller->format_summary($sum), qr/[1-9]\d* clears?/,
         'the caller received the clear');
    finish($srv, 'skip');
}

# --- a wrong key: the provider refuses, the call is not left hanging

{
    my $srv = VoiceTest::Nginx::Server->start(server => location($sim, key => 'bad-key'));
    VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . '/stream',
        script => script('wait2.txt', "wait: 3000\nhangup\n"),
        out => "$dir/out3", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/\[error\].*voice: text-to-speech error "[^"]+"/, 'the provider\'s error is logged');
    like($log, qr/close sent 1011/, 'the call is closed with 1011');
    unlike($log, qr/bad-key/, 'the key is not logged');
    finish($srv, 'bad key');
}

# --- single-context stream-input: end of input, isFinal, socket closed

{
    my $srv = VoiceTest::Nginx::Server->start(
        server => location($sim, extra => 'voice_tts_multi_context off; '));
    my $sum = VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . '/stream',
        script => script('wait3.txt', "wait: bot\nhangup\n"),
        out => "$dir/out4", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/voice: announce: heard in full/, 'single context: heard in full');
    my @conns = grep { $_->{ev} eq 'connect' } $sim->records('tts');
    like($conns[-1]{path} // '', qr{/stream-input$}, 'the stream-input endpoint');
    my $c = $conns[-1]{conn};
    my @msgs = map { $_->{json} }
               grep { $_->{ev} eq 'recv' && $_->{json} && $_->{conn} eq $c }
               $sim->records('tts');
    is_deeply($msgs[0], { text => ' ',
                          generation_config => { chunk_length_schedule => [50, 120, 160, 250] } },
              'the first message is text " " with the schedule, no context');
    ok($msgs[1]{flush} && !exists $msgs[1]{context_id}, 'the text is flushed, no context');
    is_deeply($msgs[2], { text => '' }, 'then the end of input');
    is(scalar(grep { ($_->{conn} // '') eq $c } $sim->violations('tts')), 0,
       'no violation on that socket');
    finish($srv, 'single context');
}

$sim->stop;
done_testing();
