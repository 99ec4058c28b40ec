# Configuration: bad directive values stop nginx with a message naming
# the file and line; an unauthenticated pipeline gets a warning.

use Test::Nginx::Socket 'no_plan';
use VoiceTest::Nginx;

voice_setup();
no_shuffle();
delete $ENV{TEST_VOICE_UNSET_VAR};

run_tests();

__DATA__

=== TEST 1: an unknown pipeline mode
--- config
    location = /stream { voice_pipeline talk; }
--- must_die
--- error_log eval
qr/\[emerg\].*unknown voice_pipeline mode "talk" in \S+nginx\.conf:\d+/



=== TEST 2: voice_pipeline outside a location
--- config
    voice_pipeline echo;
--- must_die
--- error_log eval
qr/"voice_pipeline" directive is not allowed here in \S+nginx\.conf:\d+/



=== TEST 3: voice_pipeline twice
--- config
    location = /stream { voice_pipeline echo; voice_pipeline echo; }
--- must_die
--- error_log eval
qr/"voice_pipeline" directive is duplicate in \S+nginx\.conf:\d+/



=== TEST 4: a message size below the minimum
--- config
    location = /stream { voice_pipeline echo; voice_max_message_size 100; }
--- must_die
--- error_log eval
qr/value must be between 1024 and 16777216 in \S+nginx\.conf:\d+/



=== TEST 5: a size that is not a size
--- config
    location = /stream { voice_pipeline echo; voice_send_buffer lots; }
--- must_die
--- error_log eval
qr/"voice_send_buffer" directive invalid value in \S+nginx\.conf:\d+/



=== TEST 6: a send buffer smaller than two blocks
--- config
    location = /stream { voice_pipeline echo; voice_send_buffer 4k; }
--- must_die
--- error_log eval
qr/value must be between 8192 and \d+ in \S+nginx\.conf:\d+/



=== TEST 7: an echo delay over 10 s
--- config
    location = /stream { voice_pipeline echo; voice_echo_delay 11s; }
--- must_die
--- error_log eval
qr/value must be between 0ms and 10000ms in \S+nginx\.conf:\d+/



=== TEST 8: a zero idle timeout
--- config
    location = /stream { voice_pipeline echo; voice_idle_timeout 0; }
--- must_die
--- error_log eval
qr/value must be between 1ms and \d+ms in \S+nginx\.conf:\d+/



=== TEST 9: a mark interval of zero
--- config
    location = /stream { voice_pipeline echo; voice_echo_mark_every 0; }
--- must_die
--- error_log eval
qr/value must be between 1 and 100000 in \S+nginx\.conf:\d+/



=== TEST 10: a public URL that is not wss://
--- config
    location = /stream {
        voice_pipeline echo;
        voice_public_url https://voice.example.com;
    }
--- must_die
--- error_log eval
qr/"voice_public_url" must be "wss:\/\/host\[:port\]".* in \S+nginx\.conf:\d+/



=== TEST 11: a public URL with a path
--- config
    location = /stream {
        voice_pipeline echo;
        voice_public_url wss://voice.example.com/stream;
    }
--- must_die
--- error_log eval
qr/"voice_public_url" takes no path or query.* in \S+nginx\.conf:\d+/



=== TEST 12: a token from an environment variable that is not set
--- config
    location = /stream {
        voice_pipeline echo;
        voice_twilio_auth_token env:TEST_VOICE_UNSET_VAR;
    }
--- must_die
--- error_log eval
qr/"voice_twilio_auth_token": environment variable "TEST_VOICE_UNSET_VAR" is not set or empty in \S+nginx\.conf:\d+/



=== TEST 13: a token file that does not exist
--- config
    location = /stream {
        voice_pipeline echo;
        voice_twilio_auth_token file:/nonexistent/twilio.token;
    }
--- must_die
--- error_log eval
qr/"voice_twilio_auth_token": cannot open "\/nonexistent\/twilio.token".* in \S+nginx\.conf:\d+/



=== TEST 14: every directive at every level it is allowed
--- http_config
    voice_max_message_size 32k;
    voice_send_buffer 128k;
    voice_idle_timeout 20s;
    voice_send_timeout 5s;
    voice_echo_delay 250ms;
    voice_echo_mark_every 25;
    voice_public_url wss://voice.example.com:8443;
--- config
    voice_max_message_size 16k;
    location = /stream {
        voice_pipeline echo;
        voice_twilio_auth_token 12345;
        voice_idle_timeout 30s;
    }
--- request
GET /stream
--- error_code: 403
