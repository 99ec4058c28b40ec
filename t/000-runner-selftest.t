# Self-test of the block-format runner in t/lib (and of the WebSocket
# helpers it is used with), against stock nginx: no ngx_voice module here.
# Every block must also pass under openresty's real Test::Nginx::Socket.

use Test::Nginx::Socket 'no_plan';
use VoiceTest::WS;

$ENV{TEST_NGINX_SELFTEST_WORD} = 'pong';

repeat_each(2);
no_shuffle();
env_to_nginx('SELFTEST_ENV=1');    # an `env` line: exercises valgrind.suppress

# Default for every block: no alerts.  A custom section checked by a hook.
add_block_preprocessor(sub {
    my $block = shift;
    $block->set_value(no_error_log => "[alert]\n[emerg]\n")
        unless defined $block->no_error_log || defined $block->must_die;
});
add_response_body_check(sub {
    my ($block, $body, $req_idx, $rep_idx, $dry_run) = @_;
    my $want = $block->body_length;
    return unless defined $want;
    is(length($body), $want, $block->name . " - body_length (req $req_idx, repeat $rep_idx)");
});

our ($Cleaned, $InitRan) = (0, 0);
add_cleanup_handler(sub { $Cleaned = 1 });

# A 101 answer for the upgrade request a mock provider received.
sub upgrade_reply {
    my ($req) = @_;
    my ($key) = $req =~ /Sec-WebSocket-Key:\s*(\S+)/i;
    return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
         . "Connection: Upgrade\r\nSec-WebSocket-Accept: " . ws_accept($key // '') . "\r\n\r\n";
}

run_tests();

ok($main::InitRan, 'the --- init section ran');

__DATA__

=== TEST 1: plain response, headers, error log
--- config
location = /t { return 200 "hi\n"; }
--- request
GET /t
--- response_headers
Content-Type: text/plain
Content-Length: 3
!X-Nope
--- response_headers_like
Server: nginx/[\d.]+
--- raw_response_headers_like: ^HTTP/1.1 200 OK\r\n
--- response_body
hi
--- body_length: 3
--- no_error_log
[error]
[warn]



=== TEST 2: 404 with the open() error in the log
--- config
location = /t { return 200 "hi\n"; }
--- request
GET /nope.html
--- error_code: 404
--- response_body_like: <title>404 Not Found</title>
--- error_log eval
["No such file or directory", qr{open\(\) "[^"]+/html/nope\.html" failed}]
--- grep_error_log eval: qr/\(2: No such file or directory\)/
--- grep_error_log_out
(2: No such file or directory)



=== TEST 3: configuration error: nginx must die, with file:line
--- config
location = /t { return; }
--- must_die
--- error_log eval
[qr{invalid number of arguments in "return" directive in \S+/conf/nginx\.conf:\d+}]



=== TEST 4: several requests, separate connections, per-request expectations
--- config
location = /a { return 200 "a\n"; }
location = /b { return 201 "b\n"; }
--- request eval
["GET /a", "GET /b", "GET /missing"]
--- error_code eval
[200, 201, 404]
--- response_body eval
["a\n", "b\n", qr/404 Not Found/]



=== TEST 5: raw request in several writes
--- config
location = /t { return 200 "raw $request_method $server_protocol\n"; }
--- raw_request eval
["GET /t HTTP/1.0\r\n", "Host: localhost\r\n", "\r\n"]
--- raw_request_middle_delay: 0.02
--- response_body
raw GET HTTP/1.0



=== TEST 6: more_headers and $TEST_NGINX_* variables
--- config
location = /t { return 200 "$TEST_NGINX_SELFTEST_WORD $http_x_foo $http_connection $server_port\n"; }
--- request
GET /t
--- more_headers
X-Foo: bar
Connection: close
--- response_body_like chomp
^pong bar close \d+$
--- response_body_unlike: keep-alive



=== TEST 7: request body in packets, checked by a tcp_listen mock
--- config
location = /up {
    proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1/got;
    proxy_request_buffering on;
}
--- request eval
[["POST /up\nhel", {value => "lo", delay_before => 0.1}]]
--- tcp_listen: $TEST_NGINX_RAND_PORT_1
--- tcp_query eval
qr{^POST /got HTTP/1\.0\r\n.*Content-Length: 5\r\n\r\nhello$}s
--- tcp_reply eval
"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
--- response_body
ok



=== TEST 8: chunked response (HTTP/1.0 upstream, no length) and body filters
--- config
location = /up {
    proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    proxy_set_header Host x;
}
--- request
GET /up
--- tcp_listen: $TEST_NGINX_RAND_PORT_1
--- tcp_query_len: 48
--- tcp_reply eval
["HTTP/1.0 200 OK\r\n\r\n", "abc", "def\n"]
--- response_headers
Transfer-Encoding: chunked
--- response_body_filters
uc
--- response_body
ABCDEF



=== TEST 9: WebSocket through nginx to a mock provider (101: raw body)
--- config
location /ws {
    proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection "upgrade";
}
--- raw_request eval
[main::ws_handshake('/ws'), main::ws_frame(1, main::tw_connected(), 1)]
--- tcp_listen: $TEST_NGINX_RAND_PORT_1
--- tcp_query eval
qr{^GET /ws HTTP/1\.1\r\n.*Upgrade: websocket\r\n}s
--- tcp_reply eval
sub { [ main::upgrade_reply($_[0]),
        main::ws_frame(1, 'hello', 0) . main::ws_frame(2, "\x00" x 200, 0),
        main::ws_close_frame(1000, 'bye', 0) ] }
--- error_code: 101
--- response_headers
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
Upgrade: websocket
!Content-Length
--- response_body_filters eval: \&main::ws_decode
--- response_body
text: hello
binary: 200 bytes
close: 1000 bye



=== TEST 10: timeout with --- abort: a stalled upstream, partial body checked
--- config
location = /slow {
    proxy_pass http://127.0.0.1:$TEST_NGINX_RAND_PORT_1;
    proxy_buffering off;
}
--- request
GET /slow
--- tcp_listen: $TEST_NGINX_RAND_PORT_1
--- tcp_reply eval
"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"
--- tcp_no_close
--- timeout: 300ms
--- abort
--- response_body: partial



=== TEST 11: user_files served by the default location, pipelined requests
--- user_files
>>> index.html
<h1>home</h1>
>>> sub/a.txt
aaa
--- pipelined_requests eval
["GET /", "GET /sub/a.txt"]
--- response_body eval
["<h1>home</h1>\n", "aaa\n"]



=== TEST 12: error_code_like, shutdown, init, wait
--- config
location = /t { return 204; }
--- init
$main::InitRan++;
--- request
GET /t
--- shutdown
--- error_code_like: ^20[04]$
--- wait: 0.05
--- response_body eval: ""



=== TEST 13: shutdown_error_log (nginx is stopped after this block)
--- config
location = /t { return 200 "ok\n"; }
--- request
GET /t
--- response_body
ok
--- shutdown_error_log eval
[qr/\[notice\] \d+#\d+: exit/]
