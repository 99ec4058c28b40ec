# The Deepgram Aura leg through real module behaviour, mirroring
# t/080-announce.t: `voice_tts_provider deepgram` with `voice_pipeline
# announce` speaks voice_greeting with the Aura simulator over wss://
# (Speak, Flush, binary mulaw frames, Flushed), streams the audio to the
# scripted Twilio caller, and hands the call back (close 1000) once the
# caller has heard it all (mark echo).

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use lib 't/lib', 'tools/lib';
use VoiceTest::Nginx;
use VoiceSim::Sim;
use VoiceSim::Caller;

my $dir = tempdir(CLEANUP => 1);
my $KEY = 'dg-key-7c42';
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
         . "voice_greeting \"$TEXT\"; "
         . "voice_tts_provider deepgram; "
         . "voice_tts_url wss://localhost:" . $sim->port('aura') . "/v1/speak; "
         . "voice_tts_key " . ($o{key} || $KEY) . "; "
         . ($o{model} ? "voice_tts_model $o{model}; " : '')
         . "voice_ssl_trusted_certificate " . $sim->ca_file . "; }";
}

sub finish {
    my ($srv, $what) = @_;
    is($srv->stop, '', "$what: valgrind clean") if $ENV{TEST_NGINX_USE_VALGRIND};
    $srv->stop;
    unlike($srv->error_log, qr/\[alert\]|\[crit\]|exited on signal/,
           "$what: no alert or crash");
}

# the simulator's records of the connections a test made
my $seen = 0;
sub new_records {
    my ($sim) = @_;
    my @r = $sim->records('aura');
    my @new = @r[$seen .. $#r];
    $seen = @r;
    return @new;
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

    like($log, qr/voice: text-to-speech connected in \d+ ms, provider: aura/,
         'TTS leg connected');
    like($log, qr/voice: text-to-speech model "aura-2-thalia-en"/,
         'Metadata names the default model');
    like($log, qr/voice: announce: first audio \d+ ms after start/, 'first audio timed');
    like($log, qr/voice: announce: synthesised, [1-9]\d* bytes of audio/,
         'Flushed ends the turn');
    like($log, qr/voice: announce: heard in full after \d+ ms/, 'heard in full (mark echo)');
    like($log, qr/close sent 1000/, 'then the stream is closed with 1000');
    like($log, qr/bytes of speech in \d+ media messages, 0 bytes of late audio dropped/,
         'no audio dropped');
    unlike($log, qr/$KEY/, 'the key is not logged');
    unlike($log, qr/\[error\]/, 'no error');

    my ($heard) = VoiceSim::Caller->format_summary($sum) =~ /([\d.]+) s played/;
    cmp_ok($heard, '>', 3, "the caller heard $heard s of speech");

    my @r = new_records($sim);
    ok((grep { $_->{ev} eq 'auth' && $_->{ok} && $_->{scheme} eq 'Token' } @r),
       'Authorization: Token accepted');
    my ($conn) = grep { $_->{ev} eq 'connect' } @r;
    is($conn->{path}, '/v1/speak', '/v1/speak');
    is($conn->{query}{encoding}, 'mulaw', 'encoding=mulaw');
    is($conn->{query}{sample_rate}, '8000', 'sample_rate=8000: Twilio\'s own format');
    is($conn->{query}{model}, 'aura-2-thalia-en', 'the default model');
    ok(!exists $conn->{query}{container}, 'no container on the socket');

    my @msgs = map { $_->{json} } grep { $_->{ev} eq 'recv' && $_->{json} } @r;
    is_deeply([map { $_->{type} } @msgs], [qw(Speak Flush Close)],
              'Speak, Flush, then Close at the end');
    is($msgs[0]{text}, $TEXT, 'the whole text in one Speak');
    my @sent = map { $_->{json}{type} } grep { $_->{ev} eq 'send' && $_->{json} } @r;
    ok((grep { $_ eq 'Flushed' } @sent), 'the simulator answered with Flushed');
    ok((grep { $_->{ev} eq 'send' && ($_->{frame} // '') eq 'binary' } @r),
       'audio came as binary frames');
    is(scalar($sim->violations('aura')), 0, 'no violation seen by the simulator');
    finish($srv, 'announce');
}

# --- another model; a DTMF key skips it while audio still streams (the
# simulator paced near real time): Clear, late audio dropped, call closed

{
    my $slow = VoiceSim::Sim->start(dir => "$dir/slow", tls => 1, key => $KEY,
                                    config => { aura => { chunk_gap_ms => 80 } });
    my $srv = VoiceTest::Nginx::Server->start(
        server => location($slow, model => 'aura-2-helena-en'));
    my $sum = VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . '/stream',
        script => script('skip.txt', "wait: 1200\ndtmf: #\nwait: 1500\nhangup\n"),
        out => "$dir/out2", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/voice: announce: skipped by DTMF "#"/, 'skipped by DTMF');
    like($log, qr/clears 1, close sent 1000/, 'clear sent to the caller, stream closed');
    like(VoiceSim::Caller->format_summary($sum), qr/[1-9]\d* clears?/,
         'the caller received the clear');
    unlike($log, qr/voice: announce: synthesised/, 'the turn never completed');

    like($log, qr/voice: announce: \d+ bytes of speech in \d+ media messages, \d+ bytes of late audio dropped/,
         'the audio counted');

    my @r = $slow->records('aura');
    my ($conn) = grep { $_->{ev} eq 'connect' } @r;
    is($conn->{query}{model}, 'aura-2-helena-en', 'voice_tts_model sets the model');
    my @msgs = map { $_->{json}{type} } grep { $_->{ev} eq 'recv' && $_->{json} } @r;
    is_deeply(\@msgs, [qw(Speak Flush Clear Close)],
              'Clear on the skip, then Close');
    my ($cleared) = grep { $_->{ev} eq 'cleared' } @r;
    cmp_ok($cleared->{dropped_frames} // 0, '>', 0,
           'the Clear stopped audio still to come');
    is(scalar($slow->violations('aura')), 0, 'no violation seen by the simulator');
    finish($srv, 'skip');
    $slow->stop;
}

# --- a wrong key: Deepgram refuses the upgrade, the call is not left hanging

{
    my $srv = VoiceTest::Nginx::Server->start(server => location($sim, key => 'bad-key'));
    VoiceSim::Caller->new(
        url => 'ws://127.0.0.1:' . $srv->port . '/stream',
        script => script('wait2.txt', "wait: 3000\nhangup\n"),
        out => "$dir/out3", quiet => 1)->run;
    ok($srv->wait_log(qr/voice: call ended/, 10), 'call ended');
    my $log = $srv->error_log;
    like($log, qr/\[error\].*WebSocket upgrade refused: HTTP 401 "Invalid credentials\."/,
         'the refusal is logged');
    like($log, qr/text-to-speech refused \(handshake refused\), not retrying/,
         'not retried');
    like($log, qr/close sent 1011/, 'the call is closed with 1011');
    unlike($log, qr/bad-key/, 'the key is not logged');
    my @r = new_records($sim);
    is(scalar(grep { $_->{ev} eq 'connect' } @r), 1, 'one attempt');
    finish($srv, 'bad key');
}

# --- nginx -t: the key is required (and never printed), the voice is not

sub nginx_t {
    my ($conf) = @_;
    my $d = tempdir(CLEANUP => 1);
    mkdir "$d/$_" for qw(conf logs);
    open my $fh, '>', "$d/conf/nginx.conf" or die $!;
    print $fh "load_module " . voice_module() . ";\nerror_log logs/error.log;\n"
        . "pid logs/nginx.pid;\nevents {}\nhttp {\n"
        . "access_log off;\nserver {\nlisten 127.0.0.1:1;\n$conf\n}\n}\n";
    close $fh;
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $out = `$nginx -t -p $d -c conf/nginx.conf 2>&1`;
    return ($? >> 8, $out);
}

{
    my $loc = 'location = /stream { voice_pipeline announce; voice_greeting hi; '
            . 'voice_twilio_auth_token t0k; voice_tts_provider deepgram; '
            . 'voice_tts_url wss://127.0.0.1:1/v1/speak; ';
    my ($rc, $out) = nginx_t($loc . '}');
    isnt($rc, 0, 'nginx -t fails without voice_tts_key');
    like($out, qr/\[emerg\].*voice_pipeline "announce" needs "voice_tts_key"/,
         'and says which directive');

    ($rc, $out) = nginx_t($loc . 'voice_tts_key s3cret-dg-99; }');
    is($rc, 0, 'a key is enough: no voice needed') or diag $out;
    unlike($out, qr/s3cret-dg-99/, 'the key is not printed');

    ($rc, $out) = nginx_t('location = /stream { voice_pipeline announce; '
                          . 'voice_greeting hi; voice_tts_provider polly; }');
    isnt($rc, 0, 'nginx -t fails on an unknown provider');
    like($out, qr/\[emerg\].*invalid value "polly"/, 'and names the value');
}

$sim->stop;
done_testing();
