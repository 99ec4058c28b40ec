# The C unit tests of the nginx-free codecs (WebSocket framing, base64,
# Twilio messages and signatures).  The binary prints TAP; `make test`
# builds it first.

use strict;
use warnings;

my $bin = $ENV{TEST_NGINX_UNIT} || 'objs/unit/ngx_voice_unit';

unless (-x $bin) {
    # make test always builds it: missing there is a failure
    if ($ENV{TEST_NGINX_UNIT}) {
        print "1..1\nnot ok 1 - $bin was not built\n";
        exit 1;
    }
    print "1..0 # SKIP $bin not built (run make test)\n";
    exit 0;
}

exec $bin or die "cannot run $bin: $!";
