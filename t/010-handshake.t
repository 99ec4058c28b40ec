# The WebSocket upgrade on a voice_pipeline location (RFC 6455 4.2):
# every rejection with its status, and the 101 itself.

use Test::Nginx::Socket 'no_plan';
use VoiceTest::Nginx;
use VoiceTest::WS;
use VoiceTest::Sent;

voice_setup();
no_shuffle();
log_level('info');
run_tests();

__DATA__

=== TEST 1: a valid upgrade gets 101 with the right Sec-WebSocket-Accept
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_close_frame(1000, '', 1)
--- error_code: 101
--- response_headers
Upgrade: websocket
Connection: upgrade
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
!Content-Type
!Content-Length
!Transfer-Encoding
--- raw_response_headers_like: ^HTTP/1\.1 101 Switching Protocols\r\n
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1000
--- error_log
voice: WebSocket upgraded, mode "echo"
voice: client sent Close 1000
close sent 1000 received 1000
--- no_error_log
[error]



=== TEST 2: a plain GET without Upgrade gets 426 naming websocket
--- config
    location = /stream { voice_pipeline echo; }
--- request
GET /stream
--- error_code: 426
--- response_headers
Upgrade: websocket
--- raw_response_headers_like: ^HTTP/1\.1 426 Upgrade Required\r\n
--- response_body
WebSocket upgrade required
--- error_log
voice: not a WebSocket upgrade request



=== TEST 3: Upgrade without "upgrade" in Connection gets 426
--- config
    location = /stream { voice_pipeline echo; }
--- request
GET /stream
--- more_headers
Upgrade: websocket
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Sec-WebSocket-Version: 13
--- error_code: 426



=== TEST 4: Connection with several tokens, mixed case, is accepted
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
"GET /stream HTTP/1.1\r\nHost: localhost\r\nUpgrade: WebSocket\r\n"
. "Connection: keep-alive, Upgrade\r\n"
. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
. "Sec-WebSocket-Version: 13\r\n\r\n" . main::ws_close_frame(1000, '', 1)
--- error_code: 101
--- response_headers
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=



=== TEST 5: a POST gets 405 with Allow: GET
--- config
    location = /stream { voice_pipeline echo; }
--- request
POST /stream
hello
--- error_code: 405
--- response_headers
Allow: GET



=== TEST 6: HEAD gets 405 too
--- config
    location = /stream { voice_pipeline echo; }
--- request
HEAD /stream
--- error_code: 405



=== TEST 7: a key that is not base64 of 16 bytes gets 400
--- config
    location = /stream { voice_pipeline echo; }
--- request
GET /stream
--- more_headers
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: c2hvcnQ=
Sec-WebSocket-Version: 13
--- error_code: 400
--- error_log
voice: missing or invalid Sec-WebSocket-Key



=== TEST 8: a 24-character key that is not valid base64 gets 400
--- config
    location = /stream { voice_pipeline echo; }
--- request
GET /stream
--- more_headers
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=!
Sec-WebSocket-Version: 13
--- error_code: 400



=== TEST 9: a missing key gets 400
--- config
    location = /stream { voice_pipeline echo; }
--- request
GET /stream
--- more_headers
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Version: 13
--- error_code: 400
--- error_log
voice: missing or invalid Sec-WebSocket-Key



=== TEST 10: two keys get 400
--- config
    location = /stream { voice_pipeline echo; }
--- request
GET /stream
--- more_headers
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Sec-WebSocket-Version: 13
--- error_code: 400



=== TEST 11: version 8 gets 400 and the version we speak
--- config
    location = /stream { voice_pipeline echo; }
--- request
GET /stream
--- more_headers
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
Sec-WebSocket-Version: 8
--- error_code: 400
--- response_headers
Sec-WebSocket-Version: 13
--- error_log
voice: missing or unsupported Sec-WebSocket-Version



=== TEST 12: a missing version gets 400 and the version we speak
--- config
    location = /stream { voice_pipeline echo; }
--- request
GET /stream
--- more_headers
Upgrade: websocket
Connection: Upgrade
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
--- error_code: 400
--- response_headers
Sec-WebSocket-Version: 13



=== TEST 13: HTTP/1.0 cannot upgrade
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
"GET /stream HTTP/1.0\r\nHost: localhost\r\nUpgrade: websocket\r\n"
. "Connection: Upgrade\r\n"
. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
. "Sec-WebSocket-Version: 13\r\n\r\n"
--- error_code: 426
--- error_log
voice: WebSocket upgrade needs HTTP/1.1



=== TEST 14: an upgrade request with a body gets 400
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
"GET /stream HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
. "Connection: Upgrade\r\n"
. "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
. "Sec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nhello"
--- error_code: 400
--- error_log
voice: WebSocket upgrade request with a body



=== TEST 15: frames sent with the handshake in one write are not lost
--- config
    location = /stream { voice_pipeline echo; voice_echo_delay 0; }
--- raw_request eval
main::ws_handshake('/stream')
. main::ws_frame(1, main::tw_connected(), 1)
. main::ws_frame(1, main::tw_start(), 1)
. main::ws_frame(1, main::tw_media(2, 1, 0, "\xff" x 160), 1)
. main::ws_frame(1, main::tw_stop(3), 1)
. main::ws_close_frame(1000, '', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body eval
"text: " . main::tw_out_media("\xff" x 160) . "\n"
. "close: 1000 stream stopped\n"



=== TEST 16: other locations are untouched by the module
--- config
    location = /stream { voice_pipeline echo; }
    location = /plain { return 200 "plain\n"; }
--- request
GET /plain
--- response_body
plain
