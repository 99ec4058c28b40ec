# The scripted Twilio caller over wss://, trusting a CA given to it, with
# the signature over the wss:// URL; without that CA the TLS handshake fails.

use strict;
use warnings;
use lib 'tools/lib';
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);

BEGIN {
    plan skip_all => 'openssl not installed' unless grep { -x "$_/openssl" } split /:/, $ENV{PATH};
    plan skip_all => 'IO::Socket::SSL missing' unless eval { require IO::Socket::SSL; 1 };
}

use VoiceTest::Nginx;
use VoiceSim::Caller;

my $dir = tempdir(CLEANUP => 1);
system("openssl req -x509 -newkey rsa:2048 -nodes -keyout $dir/key.pem -out $dir/cert.pem -days 1 "
       . "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null") == 0
    or plan skip_all => 'openssl cannot make a certificate';

my $ng = VoiceTest::Nginx::Server->start(
    listen => 'ssl',
    http => "ssl_certificate $dir/cert.pem; ssl_certificate_key $dir/key.pem;",
    server => 'location = /stream { voice_pipeline echo; voice_echo_delay 200ms; voice_twilio_auth_token tok; }');
my $url = 'wss://127.0.0.1:' . $ng->port . '/stream';

my $s = VoiceSim::Caller->new(url => $url, ca => "$dir/cert.pem", auth_token => 'tok',
                              out => "$dir/out", script => "wait: 300\nhangup\n")->run;
is $s->{handshake}{status}, 101, 'wss with the CA and the signature: upgraded';
ok $s->{ok}, 'clean call' or diag explain $s;
is $s->{signed_url}, $url, 'signed the wss URL as given';

my $n = VoiceSim::Caller->new(url => $url, auth_token => 'tok', out => "$dir/out", script => "hangup\n")->run;
ok !defined $n->{handshake}{status}, 'without the CA: no HTTP answer';
like $n->{close}{reason}, qr/certificate verify failed/i, 'certificate verify failed';

is $ng->stop, '', 'nginx stopped cleanly';
done_testing;
