# voice_twiml: nginx answers Twilio's voice webhook (a signed form POST)
# with <Connect><Stream> TwiML (protocols.md 1.6 signing over the https
# URL and the sorted form fields).

use Test::Nginx::Socket 'no_plan';
use VoiceTest::Nginx;
use VoiceTest::WS;

voice_setup();
no_shuffle();
log_level('debug');

# form-encode name/value pairs the way Twilio does (space as '+')
sub main::form {
    my @kv = @_;
    my @out;
    while (my ($k, $v) = splice @kv, 0, 2) {
        push @out, join '=', map {
            (my $s = $_) =~ s/([^A-Za-z0-9_.~ -])/sprintf('%%%02X', ord $1)/ge;
            $s =~ tr/ /+/;
            $s
        } $k, $v;
    }
    return join '&', @out;
}

# the signature Twilio would send for these (decoded) pairs
sub main::sign {
    my ($token, $url, @kv) = @_;
    my %p;
    while (my ($k, $v) = splice @kv, 0, 2) {
        push @{ $p{$k} }, $v;
    }
    return main::twilio_signature($token, $url, \%p);
}

sub main::webhook {
    my (%o) = @_;
    my $body = $o{body} // '';
    my $ct = $o{type} // 'application/x-www-form-urlencoded';
    return "POST " . ($o{path} // '/voice') . " HTTP/1.1\r\n"
        . "Host: " . ($o{host} // 'example.com') . "\r\n"
        . "Connection: close\r\nContent-Type: $ct\r\n"
        . "Content-Length: " . length($body) . "\r\n"
        . (defined $o{sig} ? "X-Twilio-Signature: $o{sig}\r\n" : '')
        . "\r\n$body";
}

our @call = (
    CallSid => 'CA0123456789abcdef0123456789abcdef',
    AccountSid => 'AC0123456789abcdef0123456789abcdef',
    From => '+15551230001',
    To => '+15559870002',
    CallStatus => 'ringing',
    Direction => 'inbound',
    CallerName => 'Tom & <Jerry> "TJ"',
);

our $head = '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>';

run_tests();

__DATA__

=== TEST 1: a signed webhook gets TwiML with configured and form parameters
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
        voice_twiml_parameter caller $voice_form_from;
        voice_twiml_parameter called $voice_form_to;
        voice_twiml_parameter name $voice_form_callername;
        voice_twiml_parameter venue "Bella's & Co";
        voice_twiml_parameter absent $voice_form_nosuchfield;
    }
--- raw_request eval
main::webhook(body => main::form(@main::call),
              sig => main::sign('12345', 'https://example.com/voice', @main::call))
--- error_code: 200
--- response_headers
Content-Type: text/xml; charset=utf-8
--- response_body eval
$main::head . '<Stream url="wss://example.com/stream">'
. '<Parameter name="caller" value="+15551230001"/>'
. '<Parameter name="called" value="+15559870002"/>'
. '<Parameter name="name" value="Tom &amp; &lt;Jerry&gt; &quot;TJ&quot;"/>'
. '<Parameter name="venue" value="Bella&apos;s &amp; Co"/>'
. '</Stream></Connect></Response>'
--- no_error_log
[error]
12345



=== TEST 2: a tampered body is 403
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
(my $b = main::form(@main::call)) =~ s/15551230001/15551230009/;
main::webhook(body => $b,
              sig => main::sign('12345', 'https://example.com/voice', @main::call))
--- error_code: 403
--- error_log
voice: X-Twilio-Signature does not match "https://example.com/voice", refusing the call



=== TEST 3: a wrong signature is 403; neither token nor signature is logged
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token sekrit-0c8e1b6f;
    }
--- raw_request eval
main::webhook(body => main::form(@main::call),
              sig => 'AAAAxTWILIOxSIGxAAAAAAAAAAA=')
--- error_code: 403
--- error_log
voice: X-Twilio-Signature does not match "https://example.com/voice"
--- no_error_log eval
# nginx's own debug log prints request headers; ours never the signature
[qr/sekrit-0c8e1b6f/, qr/voice.*AAAAxTWILIOxSIG/]



=== TEST 4: no X-Twilio-Signature is 403
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::webhook(body => main::form(@main::call))
--- error_code: 403
--- error_log
voice: no X-Twilio-Signature, refusing the call



=== TEST 5: a signature over the wss URL is refused (the webhook is https)
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::webhook(body => main::form(@main::call),
              sig => main::sign('12345', 'wss://example.com/voice', @main::call))
--- error_code: 403



=== TEST 6: GET is 405 with Allow: POST
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
    }
--- request
GET /voice
--- error_code: 405
--- response_headers
Allow: POST



=== TEST 7: without a token the webhook is answered (nginx -t warned)
--- config
    location = /voice {
        voice_twiml;
        voice_twiml_parameter caller $voice_form_from;
    }
--- raw_request eval
main::webhook(body => main::form(@main::call))
--- error_code: 200
--- response_body eval
$main::head . '<Stream url="wss://example.com/stream">'
. '<Parameter name="caller" value="+15551230001"/>'
. '</Stream></Connect></Response>'



=== TEST 8: voice_twiml_after is appended after </Connect>; a stream URL with variables
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
        voice_twiml_stream_url wss://$host:8443/media;
        voice_twiml_after "<Say>Goodbye.</Say><Hangup/>";
    }
--- raw_request eval
main::webhook(body => main::form(@main::call),
              sig => main::sign('12345', 'https://example.com/voice', @main::call))
--- error_code: 200
--- response_body eval
$main::head . '<Stream url="wss://example.com:8443/media">'
. '</Stream></Connect><Say>Goodbye.</Say><Hangup/></Response>'



=== TEST 9: percent-encoded and '+' values are decoded, signed and escaped
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
        voice_twiml_parameter note $voice_form_note;
        voice_twiml_parameter city $voice_form_FromCity;
    }
--- raw_request eval
my @f = (Note => "a+b c/d=e&f%g \x{e2}\x{82}\x{ac}", FromCity => 'SAN FRANCISCO');
main::webhook(body => 'Note=a%2Bb+c%2fd%3De%26f%25g+%E2%82%AC&FromCity=SAN+FRANCISCO',
              sig => main::sign('12345', 'https://example.com/voice', @f))
--- error_code: 200
--- response_body eval
$main::head . '<Stream url="wss://example.com/stream">'
. "<Parameter name=\"note\" value=\"a+b c/d=e&amp;f%g \x{e2}\x{82}\x{ac}\"/>"
. '<Parameter name="city" value="SAN FRANCISCO"/>'
. '</Stream></Connect></Response>'



=== TEST 10: repeated fields: all values signed, the first one in the variable
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
        voice_twiml_parameter digits $voice_form_digits;
    }
--- raw_request eval
my @f = (Digits => '9', CallSid => 'CA1', Digits => '1', Digits => '9');
main::webhook(body => main::form(@f),
              sig => main::sign('12345', 'https://example.com/voice', @f))
--- error_code: 200
--- response_body eval
$main::head . '<Stream url="wss://example.com/stream">'
. '<Parameter name="digits" value="9"/>'
. '</Stream></Connect></Response>'



=== TEST 11: an oversized body is 413 (client_max_body_size)
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
        client_max_body_size 1k;
    }
--- raw_request eval
main::webhook(body => main::form(@main::call, Pad => 'x' x 2000), sig => 'x')
--- error_code: 413



=== TEST 12: a body written to a temporary file is read back
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
        client_body_buffer_size 1k;
        voice_twiml_parameter caller $voice_form_from;
    }
--- raw_request eval
my @f = (@main::call, Pad => 'x' x 3000);
main::webhook(body => main::form(@f),
              sig => main::sign('12345', 'https://example.com/voice', @f))
--- error_code: 200
--- response_body eval
$main::head . '<Stream url="wss://example.com/stream">'
. '<Parameter name="caller" value="+15551230001"/>'
. '</Stream></Connect></Response>'
--- error_log
a client request body is buffered to a temporary file
reading 3



=== TEST 13: the query string is part of the signed URL
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
        voice_twiml_parameter tenant $arg_tenant;
    }
--- raw_request eval
main::webhook(path => '/voice?tenant=bella', body => main::form(@main::call),
              sig => main::sign('12345', 'https://example.com/voice?tenant=bella', @main::call))
--- error_code: 200
--- response_body eval
$main::head . '<Stream url="wss://example.com/stream">'
. '<Parameter name="tenant" value="bella"/>'
. '</Stream></Connect></Response>'



=== TEST 14: behind a proxy, voice_public_url gives the signed host and the default stream
--- config
    voice_public_url wss://voice.example.org;
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::webhook(host => '10.0.0.7:8080', body => main::form(@main::call),
              sig => main::sign('12345', 'https://voice.example.org:443/voice', @main::call))
--- error_code: 200
--- response_body eval
$main::head . '<Stream url="wss://voice.example.org/stream">'
. '</Stream></Connect></Response>'



=== TEST 15: a body that is not a form is 415
--- config
    location = /voice {
        voice_twiml;
        voice_twilio_auth_token 12345;
    }
--- raw_request eval
main::webhook(type => 'application/json', body => '{"CallSid":"CA1"}', sig => 'x')
--- error_code: 415



=== TEST 16: a broken escape is 400
--- config
    location = /voice {
        voice_twiml;
    }
--- raw_request eval
main::webhook(body => 'From=%2B1555&To=%G1')
--- error_code: 400
--- error_log
voice: malformed webhook form



=== TEST 17: the call variables are empty in a webhook location
--- config
    location = /voice {
        voice_twiml;
        voice_twiml_parameter sid "x$voice_call_sid$voice_stream_sid$voice_param_caller";
    }
--- raw_request eval
main::webhook(body => main::form(@main::call))
--- error_code: 200
--- response_body eval
$main::head . '<Stream url="wss://example.com/stream">'
. '<Parameter name="sid" value="x"/>'
. '</Stream></Connect></Response>'



=== TEST 18: a stream URL that is not wss:// fails nginx -t
--- config
    location = /voice {
        voice_twiml;
        voice_twiml_stream_url https://example.com/stream;
    }
--- must_die
--- error_log eval
qr/"voice_twiml_stream_url" must be a "wss:\/\/" URL in \S+nginx\.conf:\d+/



=== TEST 19: voice_twiml_after may not close the Response
--- config
    location = /voice {
        voice_twiml;
        voice_twiml_after "<Say>bye</Say></Response><Response>";
    }
--- must_die
--- error_log eval
qr/"voice_twiml_after" is TwiML for inside <Response>: it must not contain "<\/Response>" in \S+nginx\.conf:\d+/



=== TEST 20: voice_twiml and voice_pipeline in one location fail nginx -t
--- config
    location = /voice {
        voice_twiml;
        voice_pipeline echo;
    }
--- must_die
--- error_log eval
qr/voice_twiml and voice_pipeline cannot share location "\/voice"/



=== TEST 21: voice_twiml takes no arguments and is not allowed at server level
--- config
    voice_twiml;
--- must_die
--- error_log eval
qr/"voice_twiml" directive is not allowed here in \S+nginx\.conf:\d+/



=== TEST 22: voice_twiml_parameter needs a name and a value
--- config
    location = /voice {
        voice_twiml;
        voice_twiml_parameter caller;
    }
--- must_die
--- error_log eval
qr/invalid number of arguments in "voice_twiml_parameter" directive in \S+nginx\.conf:\d+/
