use strict;
use warnings;
use lib 'tools/lib';

use Test::More;
use File::Temp qw(tempdir);
use IO::Socket::SSL;
use Mojo::UserAgent;
use VoiceSim::Sim;
use VoiceSim::TestClient;

my $dir = tempdir(CLEANUP => 1);
my $sim = VoiceSim::Sim->start(dir => "$dir/run", tls => 1, key => 'k4',
                               config => { llm => { ttft_ms => 10, token_ms => 2 } });
ok(-s $sim->ca_file, 'CA file generated');
like($sim->url('llm'), qr{^https://127\.0\.0\.1:\d+$}, 'https URL');
like($sim->url('stt'), qr{^wss://}, 'wss URL');

for my $host (qw(api.cerebras.ai api.deepgram.com api.elevenlabs.io localhost 127.0.0.1)) {
    my $s = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $sim->port('llm'),
                                 SSL_ca_file => $sim->ca_file, SSL_verify_mode => SSL_VERIFY_PEER,
                                 SSL_hostname => $host, SSL_verifycn_name => $host,
                                 SSL_verifycn_scheme => 'http');
    ok($s, "TLS verifies as $host") or diag $SSL_ERROR;
}
my $bad = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $sim->port('llm'),
                               SSL_ca_file => $sim->ca_file, SSL_verify_mode => SSL_VERIFY_PEER,
                               SSL_hostname => 'api.example.com', SSL_verifycn_name => 'api.example.com',
                               SSL_verifycn_scheme => 'http');
ok(!$bad, 'wrong host name fails verification');
my $noca = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $sim->port('llm'),
                                SSL_verify_mode => SSL_VERIFY_PEER, SSL_ca_file => '/etc/ssl/certs/ca-certificates.crt',
                                SSL_hostname => 'localhost', SSL_verifycn_name => 'localhost', SSL_verifycn_scheme => 'http');
ok(!$noca, 'system CAs do not trust it');

# HTTPS keep-alive: three requests, one TLS connection
my $ua = Mojo::UserAgent->new(ca => $sim->ca_file);
my $body = { model => 'gpt-oss-120b', stream => Mojo::JSON::true, messages => [ { role => 'user', content => 'hi' } ] };
for (1 .. 3) {
    my $tx = $ua->post($sim->url('llm') . '/v1/chat/completions' => { Authorization => 'Bearer k4' } => json => $body);
    like($tx->res->body, qr/data: \[DONE\]\n\n$/, "https request $_ streamed");
}
my @tls = grep { $_->{ev} eq 'connection' && $_->{tls} } $sim->records('llm');
my @req = grep { $_->{ev} eq 'http_request' } $sim->records('llm');
is(scalar(grep { $_->{conn} == $req[-1]{conn} } @req), 3, 'three requests on one connection');
ok((grep { $_->{conn} == $req[-1]{conn} && $_->{tls_version} } @tls), 'TLS handshake logged for it');

# wss
my $ws = VoiceSim::TestClient->connect($sim->url('stt') . '/v1/listen?encoding=mulaw&sample_rate=8000',
                                       headers => { Authorization => 'Token k4' }, ca => $sim->ca_file);
ok($ws->ok, 'wss STT connects with the CA');
$ws->send_json({ type => 'CloseStream' });
ok($ws->wait_closed(3) && $ws->close_code == 1000, 'wss CloseStream');
is(scalar $sim->violations, 0, 'no violations in this run');
$sim->stop;

# CLI
my $cli = "$dir/cli";
my $out = `$^X tools/voice-sim start --background --dir $cli --key k5 2>&1`;
like($out, qr{llm\s+http://127\.0\.0\.1:\d+/v1/chat/completions}, 'CLI prints URLs');
like($out, qr{logs:}, 'CLI prints the log location');
ok(-s "$cli/voice-sim.pid", 'pid file');
my $s2 = VoiceSim::Sim->attach($cli);
my $tx = Mojo::UserAgent->new->post($s2->url('llm') . '/v1/chat/completions' => { Authorization => 'Bearer k5' } => json => $body);
is($tx->res->code, 200, 'CLI-started simulator answers');
my $cli_pid = do { open my $f, '<', "$cli/voice-sim.pid" or die $!; local $/; <$f> };
chomp $cli_pid;
like(`$^X tools/voice-sim stop --dir $cli 2>&1`, qr/stopped/, 'CLI stop');
ok(!kill(0, $cli_pid), 'the detached simulator is gone after stop')
    or kill 'KILL', $cli_pid;
done_testing;
