# What an operator sees from `nginx -t`: the module loads into the
# distro binary, an unauthenticated pipeline is warned about, secrets
# are never printed.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use lib 't/lib';
use VoiceTest::Nginx;

my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $so = voice_module();

sub nginx_t {
    my ($conf) = @_;
    my $dir = tempdir(CLEANUP => 1);
    mkdir "$dir/$_" for qw(conf logs);
    open my $fh, '>', "$dir/conf/nginx.conf" or die $!;
    print $fh "load_module $so;\nerror_log logs/error.log;\n"
        . "pid logs/nginx.pid;\nevents {}\nhttp {\n"
        . "access_log off;\nserver {\nlisten 127.0.0.1:1;\n$conf\n}\n}\n";
    close $fh;
    my $out = `$nginx -t -p $dir -c conf/nginx.conf 2>&1`;
    return ($? >> 8, $out);
}

my ($rc, $out) = nginx_t('location = /stream { voice_pipeline echo; }');
is($rc, 0, 'nginx -t passes with an echo pipeline');
like($out, qr/\[warn\].*voice_pipeline in location "\/stream" accepts unauthenticated calls/,
     'nginx -t warns that calls are unauthenticated');

($rc, $out) = nginx_t('location = /stream { voice_pipeline echo; '
                      . 'voice_twilio_auth_token sekrit-55aa; }');
is($rc, 0, 'nginx -t passes with a token');
unlike($out, qr/unauthenticated/, 'no warning with a token');
unlike($out, qr/sekrit-55aa/, 'the token is not printed');

($rc, $out) = nginx_t('location = /stream { voice_pipeline echo; '
                      . 'voice_twilio_auth_token env:TEST_VOICE_NOT_SET_EVER; }');
isnt($rc, 0, 'nginx -t fails when the token variable is unset');
like($out, qr/environment variable "TEST_VOICE_NOT_SET_EVER" is not set or empty in \S+nginx\.conf:\d+/,
     'and says which variable, with file and line');

($rc, $out) = nginx_t('location = /stream { voice_pipeline echo; voice_max_message_size 17m; }');
isnt($rc, 0, 'nginx -t fails on an out-of-range size');
like($out, qr/\[emerg\].*value must be between 1024 and 16777216 in \S+nginx\.conf:\d+/,
     'with the range, file and line');

# voice_llm_tools: the JSON is checked at nginx -t
{
    my $d = File::Temp::tempdir(CLEANUP => 1);
    open my $bad, '>', "$d/bad.json" or die $!;
    print $bad '[{"type":"function","function":{"description":"no name"}}]';
    close $bad;
    open my $nojson, '>', "$d/nojson.json" or die $!;
    print $nojson '{"not": "an array"';
    close $nojson;

    ($rc, $out) = nginx_t("location = /stream { voice_pipeline echo; voice_llm_tools $d/bad.json; }");
    isnt($rc, 0, 'a tool without a name fails nginx -t');
    like($out, qr/"voice_llm_tools": every tool in "\S+bad\.json" needs "function": \{"name": \.\.\.\} in \S+nginx\.conf:\d+/,
         'and says why, with file and line');

    ($rc, $out) = nginx_t("location = /stream { voice_pipeline echo; voice_llm_tools $d/nojson.json; }");
    isnt($rc, 0, 'a file that is not a JSON array fails nginx -t');
    like($out, qr/must hold a JSON array of tools/, 'and says so');
}

# voice_twiml: the webhook location is warned about like the stream
($rc, $out) = nginx_t('location = /voice { voice_twiml; }');
is($rc, 0, 'nginx -t passes with voice_twiml');
like($out, qr/\[warn\].*voice_twiml in location "\/voice" answers unauthenticated webhooks/,
     'nginx -t warns that webhooks are unauthenticated');

($rc, $out) = nginx_t('location = /voice { voice_twiml; '
                      . 'voice_twilio_auth_token sekrit-77bb; }');
is($rc, 0, 'nginx -t passes with voice_twiml and a token');
unlike($out, qr/unauthenticated|sekrit-77bb/, 'no warning, no token printed');

done_testing();
