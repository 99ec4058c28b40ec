# X-Twilio-Signature on the upgrade (protocols.md 1.6 test vectors),
# behind a proxy with voice_public_url, and tokens from env and files.

use Test::Nginx::Socket 'no_plan';
use VoiceTest::Nginx;
use VoiceTest::WS;

$ENV{TEST_VOICE_TWILIO_TOKEN} = 'tok-from-env-5d41402abc4b2a76';

voice_setup();
no_shuffle();
log_level('debug');

sub main::upgrade {
    my ($host, $sig) = @_;
    "GET /media HTTP/1.1\r\nHost: $host\r\nUpgrade: websocket\r\n"
    . "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    . "Sec-WebSocket-Version: 13\r\n"
    . (defined $sig ? "X-Twilio-Signature: $sig\r\n" : '') . "\r\n"
    . main::ws_close_frame(1000, '', 1);
}

run_tests();

__DATA__

=== TEST 1: the protocol's test vector is accepted
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::upgrade('example.com', '7PR3qMkpDyEJtMrVOY/LDyNq8J8=')
--- error_code: 101
--- no_error_log
[error]



=== TEST 2: no signature is 403 before anything else
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::upgrade('example.com', undef)
--- error_code: 403
--- error_log
voice: no X-Twilio-Signature, refusing the call
--- no_error_log
upgraded



=== TEST 3: a plain GET without a signature is 403, not 426
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
    }
--- request
GET /media
--- error_code: 403



=== TEST 4: a wrong signature is 403; the token is not logged, even at debug
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token sekrit-9f86d081884c7d65;
    }
--- raw_request eval
main::upgrade('example.com', '7PR3qMkpDyEJtMrVOY/LDyNq8J8=')
--- error_code: 403
--- error_log
voice: X-Twilio-Signature does not match "wss://example.com/media", refusing the call
--- no_error_log
sekrit-9f86d081884c7d65



=== TEST 5: a signature for another path is refused
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::upgrade('example.com', main::twilio_signature('12345', 'wss://example.com/other', {}))
--- error_code: 403



=== TEST 6: a signature over the https URL is refused (Twilio signs wss)
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::upgrade('example.com', main::twilio_signature('12345', 'https://example.com/media', {}))
--- error_code: 403



=== TEST 7: Host with :443 matches the URL Twilio signed without a port
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::upgrade('example.com:443', '7PR3qMkpDyEJtMrVOY/LDyNq8J8=')
--- error_code: 101



=== TEST 8: a URL signed with :443 matches a Host without a port
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::upgrade('example.com', main::twilio_signature('12345', 'wss://example.com:443/media', {}))
--- error_code: 101



=== TEST 9: behind a proxy, voice_public_url gives the signed URL's base
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
        voice_public_url wss://voice.example.org;
    }
--- raw_request eval
main::upgrade('10.0.0.7:8080', main::twilio_signature('12345', 'wss://voice.example.org/media', {}))
--- error_code: 101



=== TEST 10: with voice_public_url, a signature over the local host fails
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
        voice_public_url wss://voice.example.org;
    }
--- raw_request eval
main::upgrade('example.com', '7PR3qMkpDyEJtMrVOY/LDyNq8J8=')
--- error_code: 403
--- error_log
does not match "wss://voice.example.org/media"



=== TEST 11: the token can come from the environment
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token env:TEST_VOICE_TWILIO_TOKEN;
    }
--- raw_request eval
main::upgrade('example.com', main::twilio_signature($ENV{TEST_VOICE_TWILIO_TOKEN}, 'wss://example.com/media', {}))
--- error_code: 101
--- no_error_log
tok-from-env



=== TEST 12: the token can come from a file
--- config
    location = /media {
        voice_pipeline echo;
        voice_twilio_auth_token file:../html/twilio.token;
    }
--- user_files
>>> twilio.token
tok-from-file-1234
--- raw_request eval
main::upgrade('example.com', main::twilio_signature('tok-from-file-1234', 'wss://example.com/media', {}))
--- error_code: 101



=== TEST 13: the token is inherited from the server level
--- config
    voice_twilio_auth_token 12345;
    location = /media { voice_pipeline echo; }
--- raw_request eval
main::upgrade('example.com', 'AAAAqMkpDyEJtMrVOY/LDyNq8J8=')
--- error_code: 403
