package VoiceTest::Sent;

# The exact JSON the module sends to Twilio (protocols.md 1.4), built
# independently of the module's C builders, for expected outputs.

use strict;
use warnings;

use MIME::Base64 qw(encode_base64);
use VoiceTest::WS ();

our @EXPORT = qw(tw_out_media tw_out_mark tw_out_clear);

sub import {
    my $caller = caller;
    no strict 'refs';
    for my $pkg (grep { defined } $caller, ($caller eq 'main' ? () : 'main')) {
        *{"${pkg}::$_"} = \&{"VoiceTest::Sent::$_"} for @EXPORT;
    }
}

sub _sid { $_[0] // $VoiceTest::WS::TW_STREAM_SID }

sub tw_out_media {
    my ($audio, $sid) = @_;
    return '{"event":"media","streamSid":"' . _sid($sid)
        . '","media":{"payload":"' . encode_base64($audio, '') . '"}}';
}

sub tw_out_mark {
    my ($name, $sid) = @_;
    return '{"event":"mark","streamSid":"' . _sid($sid)
        . '","mark":{"name":"' . $name . '"}}';
}

sub tw_out_clear {
    my ($sid) = @_;
    return '{"event":"clear","streamSid":"' . _sid($sid) . '"}';
}

1;
