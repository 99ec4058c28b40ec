# RFC 6455 framing on the inbound socket: control frames, fragmentation,
# every close code the server sends, and frames split and coalesced.

use Test::Nginx::Socket 'no_plan';
use VoiceTest::Nginx;
use VoiceTest::WS;
use VoiceTest::Sent;

voice_setup();
no_shuffle();
log_level('info');
run_tests();

__DATA__

=== TEST 1: a ping is answered with a pong carrying its payload
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
[main::ws_handshake('/stream'),
 main::ws_frame(9, 'are you there?', 1),
 main::ws_close_frame(1000, 'bye', 1)]
--- raw_request_middle_delay: 0.05
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
pong: are you there?
close: 1000
--- no_error_log
[error]



=== TEST 2: a pong is ignored
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(10, 'x', 1)
. main::ws_close_frame(1000, '', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1000



=== TEST 3: a Close with no status is answered with an empty Close
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(8, '', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close:
--- error_log
voice: client sent Close 1005



=== TEST 4: the peer's close code is echoed
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_close_frame(4001, 'app says bye', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 4001
--- error_log
voice: client sent Close 4001 "app says bye"



=== TEST 5: an unmasked client frame closes with 1002
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_connected(), 0)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1002 client frame not masked
--- error_log
voice: WebSocket protocol error: client frame not masked, closing with 1002
--- timeout: 4



=== TEST 6: reserved bits close with 1002
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, '{}', 1, rsv => 4)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1002
--- error_log
closing with 1002
--- timeout: 4



=== TEST 7: an unknown opcode closes with 1002
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(3, 'x', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1002
--- error_log
closing with 1002
--- timeout: 4



=== TEST 8: a fragmented ping closes with 1002
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(9, 'x', 1, fin => 0)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1002
--- timeout: 4



=== TEST 9: a control frame over 125 bytes closes with 1002
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(9, 'x' x 126, 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1002
--- timeout: 4



=== TEST 10: a continuation frame with no message open closes with 1002
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(0, 'x', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1002
--- timeout: 4



=== TEST 11: a Close with an invalid code closes with 1002
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_close_frame(1005, '', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1002
--- timeout: 4



=== TEST 12: invalid UTF-8 in a text frame closes with 1007
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, "{\"a\":\"\xc0\xaf\"}", 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1007
--- error_log
closing with 1007
--- timeout: 4



=== TEST 13: a message over voice_max_message_size closes with 1009
--- config
    location = /stream {
        voice_pipeline echo;
        voice_max_message_size 1k;
    }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, 'x' x 1025, 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1009
--- error_log
closing with 1009
--- timeout: 4



=== TEST 14: fragments adding up to more than the limit close with 1009
--- config
    location = /stream {
        voice_pipeline echo;
        voice_max_message_size 1k;
    }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, 'x' x 600, 1, fin => 0)
. main::ws_frame(0, 'x' x 600, 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1009
--- timeout: 4



=== TEST 15: a message of exactly the limit is accepted
--- config
    location = /stream {
        voice_pipeline echo;
        voice_max_message_size 1k;
    }
--- raw_request eval
my $msg = main::tw_connected();
$msg .= ' ' x (1024 - length $msg);
main::ws_handshake('/stream') . main::ws_frame(1, $msg, 1)
. main::ws_close_frame(1000, '', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1000



=== TEST 16: a binary frame from Twilio closes with 1003
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(2, "\x00\x01", 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1003 binary frames not accepted
--- error_log
voice: binary frame from Twilio (2 bytes), closing with 1003
--- timeout: 4



=== TEST 17: a fragmented message with a ping in between is reassembled
--- config
    location = /stream { voice_pipeline echo; voice_echo_delay 0; }
--- raw_request eval
my $start = main::tw_start();
main::ws_handshake('/stream')
. main::ws_frame(1, substr($start, 0, 10), 1, fin => 0)
. main::ws_frame(9, 'mid', 1)
. main::ws_frame(0, substr($start, 10, 50), 1, fin => 0)
. main::ws_frame(0, substr($start, 60), 1)
. main::ws_frame(1, main::tw_media(2, 1, 0, "\x7f" x 160), 1)
. main::ws_close_frame(1000, '', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body eval
"pong: mid\n"
. "text: " . main::tw_out_media("\x7f" x 160) . "\n"
. "close: 1000\n"
--- error_log
voice: call started



=== TEST 18: frames split at every byte are parsed the same
--- config
    location = /stream { voice_pipeline echo; voice_echo_delay 0; }
--- raw_request eval
my $bytes = main::ws_frame(1, main::tw_start(), 1)
. main::ws_frame(1, main::tw_media(2, 1, 0, "\x55" x 160), 1)
. main::ws_frame(9, 'p', 1)
. main::ws_close_frame(1000, '', 1);
[main::ws_handshake('/stream'), split //, $bytes]
--- raw_request_middle_delay: 0.001
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body eval
"text: " . main::tw_out_media("\x55" x 160) . "\n"
. "pong: p\n"
. "close: 1000\n"
--- timeout: 10



=== TEST 19: a 64-bit length frame (a big start message) is accepted
--- config
    location = /stream {
        voice_pipeline echo;
        voice_max_message_size 128k;
    }
--- raw_request eval
my %p = map { ("p$_" => 'v' x 2200) } 1 .. 31;
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_start(params => \%p), 1)
. main::ws_close_frame(1000, '', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1000
--- error_log
31 custom parameters
