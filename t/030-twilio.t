# Twilio Media Streams over the socket, in the echo diagnostic mode: a
# whole session, marks, DTMF and clear, and each protocol violation.

use Test::Nginx::Socket 'no_plan';
use VoiceTest::Nginx;
use VoiceTest::WS;
use VoiceTest::Sent;

voice_setup();
no_shuffle();
log_level('info');

# 500 frames of distinct audio, so order and content are both checked
sub main::audio { my $i = shift; join '', map { chr(($i * 7 + $_) % 256) } 0 .. 159 }

# what a session looks like from Twilio's side: media payloads in order
# are summarised as a count, everything else is kept line by line
sub main::summary {
    my $lines = main::ws_decode(shift);
    my ($out, $n, $bad, $k) = ('', 0, 0, 0);
    for my $l (split /\n/, $lines) {
        next if $l =~ /^pong:/;
        if ($l =~ /^text: (\{"event":"media".*)$/) {
            $n++;
            $k++;
            $bad++ unless $1 eq main::tw_out_media(main::audio($k));
            next;
        }
        $out .= "media x$n" . ($bad ? " ($bad wrong)" : '') . "\n" if $n;
        ($n, $bad) = (0, 0);
        $out .= "$l\n";
    }
    $out .= "media x$n" . ($bad ? " ($bad wrong)" : '') . "\n" if $n;
    return $out;
}

run_tests();

__DATA__

=== TEST 1: a whole session: connected, start, 500 media, marks, dtmf, stop
--- config
    location = /stream {
        voice_pipeline echo;
        voice_echo_delay 0;
        voice_echo_mark_every 50;
    }
--- raw_request eval
my $s = main::ws_handshake('/stream')
. main::ws_frame(1, main::tw_connected(), 1)
. main::ws_frame(1, main::tw_start(params => { tenant => 'acme', from => '+15550001111' }), 1);
my $seq = 2;
for my $i (1 .. 500) {
    $s .= main::ws_frame(1, main::tw_media($seq++, $i, ($i - 1) * 20, main::audio($i)), 1);
}
$s .= main::ws_frame(1, main::tw_mark($seq++, 'echo-1'), 1);
[$s, main::ws_frame(1, main::tw_dtmf($seq++, '5'), 1)
   . main::ws_frame(1, main::tw_stop($seq++), 1)
   . main::ws_close_frame(1000, '', 1)]
--- raw_request_middle_delay: 0.2
--- error_code: 101
--- response_body_filters eval
\&main::summary
--- response_body eval
my $out = '';
$out .= "media x50\ntext: " . main::tw_out_mark("echo-$_") . "\n" for 1 .. 10;
$out . "text: " . main::tw_out_clear() . "\nclose: 1000 stream stopped\n"
--- error_log
voice: call started, stream MZ
2 custom parameters
voice: echo: mark "echo-1" played
voice: DTMF "5"
voice: echo: DTMF "5", clearing 0 pending segments
voice: Twilio stopped the stream after 500 media messages
media in 500 (80000 bytes), out 500 (80000 bytes), marks 10 sent 1 echoed, dtmf 1, clears 1
call: CA
--- no_error_log
[error]
[warn]



=== TEST 2: audio is echoed after the delay, with real-time pacing
--- config
    location = /stream {
        voice_pipeline echo;
        voice_echo_delay 100ms;
        voice_echo_mark_every 10;
    }
--- raw_request eval
[main::ws_handshake('/stream') . main::ws_frame(1, main::tw_connected(), 1)
 . main::ws_frame(1, main::tw_start(), 1),
 (map { main::ws_frame(1, main::tw_media($_ + 1, $_, ($_ - 1) * 20, main::audio($_)), 1) } 1 .. 20),
 (map { main::ws_frame(9, "wait $_", 1) } 1 .. 25),
 main::ws_frame(1, main::tw_stop(22), 1) . main::ws_close_frame(1000, '', 1)]
--- raw_request_middle_delay: 0.02
--- error_code: 101
--- response_body_filters eval
\&main::summary
--- response_body eval
"media x10\ntext: " . main::tw_out_mark('echo-1') . "\n"
. "media x10\ntext: " . main::tw_out_mark('echo-2') . "\n"
. "close: 1000 stream stopped\n"
--- timeout: 5



=== TEST 3: DTMF sends clear and drops the audio not yet echoed
--- config
    location = /stream {
        voice_pipeline echo;
        voice_echo_delay 5s;
    }
--- raw_request eval
my $s = main::ws_handshake('/stream') . main::ws_frame(1, main::tw_start(), 1);
$s .= main::ws_frame(1, main::tw_media($_ + 1, $_, ($_ - 1) * 20, main::audio($_)), 1) for 1 .. 20;
$s . main::ws_frame(1, main::tw_dtmf(22, '#'), 1) . main::ws_frame(1, main::tw_stop(23), 1)
. main::ws_close_frame(1000, '', 1)
--- error_code: 101
--- response_body_filters eval
\&main::summary
--- response_body eval
"text: " . main::tw_out_clear() . "\nclose: 1000 stream stopped\n"
--- error_log
voice: echo: DTMF "#", clearing 20 pending segments



=== TEST 4: malformed JSON closes with 1007 and names the call
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_start(), 1)
. main::ws_frame(1, '{"event":"media",', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1007 malformed JSON
--- error_log eval
[qr/\[error\].*voice: malformed JSON from Twilio.*closing with 1007.*call: CA[0-9a-f]{32}/]
--- timeout: 4



=== TEST 5: JSON that is not an object closes with 1007
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, '[1,2]', 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body_like
^close: 1007
--- error_log eval
[qr/malformed JSON.*call: conn#\d+/]
--- timeout: 4



=== TEST 6: a mediaFormat other than mu-law 8 kHz mono is refused with 1008
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream')
. main::ws_frame(1, main::tw_start(media_format => { encoding => 'audio/x-l16', sampleRate => 16000, channels => 1 }), 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1008 protocol violation
--- error_log eval
[qr/\[error\].*voice: Twilio protocol violation in "start" message: .*mediaFormat.*closing with 1008/]
--- timeout: 4



=== TEST 7: a sample rate other than 8000 is refused
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream')
. main::ws_frame(1, main::tw_start(media_format => { encoding => 'audio/x-mulaw', sampleRate => 16000, channels => 1 }), 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1008 protocol violation
--- timeout: 4



=== TEST 8: two channels are refused
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream')
. main::ws_frame(1, main::tw_start(media_format => { encoding => 'audio/x-mulaw', sampleRate => 8000, channels => 2 }), 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1008 protocol violation
--- timeout: 4



=== TEST 9: media before start is a protocol violation
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_media(2, 1, 0, main::audio(1)), 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1008 protocol violation
--- error_log
message before "start"
--- timeout: 4



=== TEST 10: media for another stream is a protocol violation
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_start(), 1)
. main::ws_frame(1, main::tw_media(2, 1, 0, main::audio(1), stream_sid => 'MZ' . 'f' x 32), 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1008 protocol violation
--- error_log
streamSid of another stream
--- timeout: 4



=== TEST 11: a second start is a protocol violation
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_start(), 1)
. main::ws_frame(1, main::tw_start(), 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1008 protocol violation
--- error_log
second "start"
--- timeout: 4



=== TEST 12: a malformed CallSid is refused
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_start(call_sid => 'CA123'), 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1008 protocol violation
--- timeout: 4



=== TEST 13: a payload that is not base64 is refused
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
my $m = main::tw_media(2, 1, 0, main::audio(1));
$m =~ s/"payload":"[^"]*"/"payload":"not base64!"/;
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_start(), 1) . main::ws_frame(1, $m, 1)
--- error_code: 101
--- response_body_filters eval
\&main::ws_decode
--- response_body
close: 1008 protocol violation
--- error_log
invalid base64
--- timeout: 4



=== TEST 14: unknown events are ignored
--- config
    location = /stream { voice_pipeline echo; voice_echo_delay 0; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_start(), 1)
. main::ws_frame(1, '{"event":"futureThing","streamSid":"x"}', 1)
. main::ws_frame(1, main::tw_media(3, 1, 0, main::audio(1)), 1)
. main::ws_close_frame(1000, '', 1)
--- error_code: 101
--- response_body_filters eval
\&main::summary
--- response_body
media x1
close: 1000
--- no_error_log
[error]



=== TEST 15: the client vanishing mid-call is logged with the call's id
--- config
    location = /stream { voice_pipeline echo; }
--- raw_request eval
main::ws_handshake('/stream') . main::ws_frame(1, main::tw_start(), 1)
--- error_code: 101
--- shutdown: 1
--- wait: 0.3
--- error_log eval
[qr/voice: client closed the connection without a Close frame.*call: CA[0-9a-f]{32}/,
 qr/voice: call ended after \d+ ms.*close sent 0 received 1006/]
--- no_error_log
[error]
