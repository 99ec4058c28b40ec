# voice_pipeline agent and the application: HTTP tools (with a filler,
# and interrupted by a barge-in: run once, the answer kept), transfer and
# REST completion through Twilio's REST API, the per-call persona and its
# fallback.  Same harness as t/100-agent.t (VoiceTest::Agent): one
# simulator set, nginx and scripted caller per scenario, all calls side
# by side; checks on order and content, never on latencies.

use strict;
use warnings;

use Test::More;
use File::Temp qw(tempdir);
use Mojo::JSON qw(decode_json encode_json);
use lib 't/lib', 'tools/lib';
use VoiceTest::Nginx;
use VoiceTest::Agent;

my $dir = tempdir(CLEANUP => !$ENV{TEST_VOICE_KEEP});

my $FILLER = 'One moment, let me check that for you.';
my $TABLE = { available => JSON::PP::true(), table => 'window' };
my $MANAGER = '+14155550100';
my $TOKEN = 'twilio-token-5e1c';


# Twilio's REST API on the simulator, with the account's auth token
sub twilio_api {
    my ($sim) = @_;
    return "voice_twilio_auth_token $TOKEN; "
         . 'voice_twilio_api_url http://127.0.0.1:' . $sim->port('twilio') . '; ';
}

# the tool's declaration: its schema in a file
my $SCHEMA = write_file("$dir/check_table.json", encode_json({
    type => 'object',
    properties => { party => { type => 'integer' }, time => { type => 'string' } },
    required => [ 'party', 'time' ] }));

sub app_url { my ($sim) = @_; 'http://127.0.0.1:' . $sim->port('app') }

sub tool_directive {
    my ($sim, %o) = @_;
    return 'voice_tool check_table ' . app_url($sim) . '/tools/check_table '
         . '"description=Checks whether a table is free" '
         . "parameters=$SCHEMA timeout=" . ($o{timeout} // '5s') . ' '
         . ($o{filler} ? "\"filler=$o{filler}\"; " : '; ');
}

# the app simulator's log of one kind of request
sub app_records {
    my ($sim, $ev) = @_;
    return $sim->records('app', ev => $ev);
}

sub tool_calls_seen {
    my ($sim, $name) = @_;
    return grep { ($_->{name} // '') eq $name } app_records($sim, 'tool_call');
}

my @S;

# 1. a tool call with a filler: the filler is heard while the tool runs,
#    the tool's answer goes back to the model, which answers with it
push @S, {
    name => 'tool call with filler', tls => 0,
    extra => sub { tool_directive($_[0], filler => $FILLER) },
    sim_config => {
        llm => { faults => [ { kind => 'tool_call', name => 'check_table', id => 'call_t1',
                               arguments => { party => 2, time => '19:00' }, on_request => 1 } ] },
        app => { tools => { check_table => { result => $TABLE, delay_ms => 1200 } } },
    },
    script => "say: Do you have a table for two at seven?\nwait: bot\nwait: 2500\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim) = @$s{qw(record sim)};
        my @calls = tool_calls_seen($sim, 'check_table');
        is(scalar @calls, 1, 'the tool was called once');
        is_deeply($calls[0]{args}, { party => 2, time => '19:00' }, 'with the model\'s arguments');
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'two LLM requests: the turn, then with the answer');
        my @tools = map { $_->{function}{name} } @{ $rq[0]{json}{tools} || [] };
        is_deeply(\@tools, [ 'check_table' ], 'the tool is offered');
        my $m = $rq[1]{json}{messages};
        is($m->[-2]{role}, 'assistant', 'the model\'s call is repeated');
        is($m->[-2]{tool_calls}[0]{id}, 'call_t1', 'with its id');
        is($m->[-2]{tool_calls}[0]{function}{name}, 'check_table', 'and name');
        is($m->[-1]{role}, 'tool', 'then the tool\'s answer');
        is($m->[-1]{tool_call_id}, 'call_t1', 'for that call');
        is_deeply(decode_json($m->[-1]{content}), decode_json(encode_json($TABLE)),
                  'the answer as the tool gave it');
        my @a = entries($rec, role => 'assistant');
        my ($filler) = grep { ($_->{kind} // '') eq 'filler' } @a;
        ok($filler, 'the filler was spoken');
        is(squash($filler->{text}), $FILLER, 'the configured filler') if $filler;
        like(squash($a[-1]{text}), qr/^The tool said: \{.*"available":true.*\}\.$/,
             'the reply uses the answer');
        my $tc = $rec->{tool_calls} || [];
        is(scalar @$tc, 1, 'record: one tool call');
        is($tc->[0]{name}, 'check_table', 'record: its name');
        is($tc->[0]{outcome}, 'ok', 'record: ok');
        is($tc->[0]{status}, 200, 'record: HTTP 200');
        is_deeply($tc->[0]{arguments}, { party => 2, time => '19:00' }, 'record: arguments');
        is($tc->[0]{result}{table}, 'window', 'record: the result');
        is($rec->{counts}{tool_calls}, 1, 'record: counted');
        is($calls[0]{headers}{'x-voice-tool-call-id'}, 'call_t1',
           'the tool got the call id as X-Voice-Tool-Call-Id');
    },
};

# 2. the caller barges in while the tool runs: the filler stops, the tool
#    is run once and its answer kept; the caller's words are answered
#    after it, never by calling the tool again
push @S, {
    name => 'tool call interrupted', tls => 0,
    extra => sub { tool_directive($_[0], filler => $FILLER) },
    sim_config => {
        llm => { faults => [ { kind => 'tool_call', name => 'check_table', id => 'call_t2',
                               arguments => { party => 2, time => '19:00' }, on_request => 1 } ] },
        app => { tools => { check_table => { result => $TABLE, delay_ms => 4000 } } },
    },
    script => "say: Do you have a table for two at seven?\n"
            . "barge: 600 | Actually, make it four people.\nwait: bot\nwait: 1500\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim, $sum) = @$s{qw(record sim summary)};
        is(scalar(tool_calls_seen($sim, 'check_table')), 1, 'the tool ran exactly once');
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'two LLM requests');
        my @roles = map { $_->{role} } @{ $rq[1]{json}{messages} };
        is_deeply([ @roles[-4 .. -1] ], [ qw(user assistant tool user) ],
                  'the answer sits between the call and the caller\'s new words');
        is(squash($rq[1]{json}{messages}[-1]{content}), 'Actually, make it four people.',
           'the caller\'s words come last');
        my ($filler) = grep { ($_->{kind} // '') eq 'filler' } entries($rec, role => 'assistant');
        ok($filler && $filler->{interrupted}, 'the filler was interrupted');
        my $tc = $rec->{tool_calls} || [];
        is(scalar @$tc, 1, 'record: one tool call');
        is($tc->[0]{outcome}, 'ok', 'record: its answer was kept');
        cmp_ok($sum->{counts}{clears}, '>=', 1, 'Twilio was told to clear');
    },
};

# 2b. the tool answers while the model's words before the call still
#     play, and the caller cuts them off: the caller is answered, with
#     the tool's answer before their words
push @S, {
    name => 'tool answered, preamble interrupted', tls => 0,
    extra => sub { tool_directive($_[0]) },
    sim_config => {
        llm => { faults => [ { kind => 'tool_call', name => 'check_table', id => 'call_t5',
                               arguments => { party => 2, time => '19:00' }, on_request => 1,
                               preamble => 'Let me look at the bookings for tomorrow evening, '
                                         . 'we are quite busy at seven but I will check the '
                                         . 'window tables and the terrace for you.' } ] },
        app => { tools => { check_table => { result => $TABLE, delay_ms => 100 } } },
    },
    script => "say: Do you have a table for two at seven?\n"
            . "barge: 1500 | Actually, make it four people.\nwait: bot\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim) = @$s{qw(record sim)};
        is(scalar(tool_calls_seen($sim, 'check_table')), 1, 'the tool ran once');
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'the caller\'s words were asked');
        my @roles = map { $_->{role} } @{ $rq[-1]{json}{messages} };
        is_deeply([ @roles[-3 .. -1] ], [ qw(assistant tool user) ],
                  'after the call and its answer');
        my @a = entries($rec, role => 'assistant');
        ok($a[0]{interrupted}, 'the words before the call were cut');
        like(squash($a[-1]{text}), qr/^You said: Actually, make it four people\.+$/,
             'the caller was answered');
    },
};

# 3. a tool that fails: the model hears an error and the call goes on
push @S, {
    name => 'tool call fails', tls => 0,
    expected_errors => qr/tool sent nothing for \d+ ms/,
    extra => sub { tool_directive($_[0], timeout => '1s') },
    sim_config => {
        llm => { faults => [ { kind => 'tool_call', name => 'check_table', id => 'call_t3',
                               arguments => { party => 2, time => '19:00' }, on_request => 1,
                               preamble => 'Let me look.' } ] },
        app => { tools => { check_table => { delay_ms => 3000 } } },
    },
    script => "say: Do you have a table for two at seven?\nwait: bot\nwait: 1000\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim) = @$s{qw(record sim)};
        my @rq = llm_requests($sim);
        is(scalar @rq, 2, 'the model was asked again');
        like($rq[1]{json}{messages}[-1]{content}, qr/"error":"the tool did not answer in time"/,
             'with the timeout as the answer');
        is($rec->{tool_calls}[0]{outcome}, 'timed out', 'record: timed out');
        my @a = entries($rec, role => 'assistant');
        is(squash($a[0]{text}), 'Let me look.', 'the model\'s words before the call were heard');
        ok(grep({ $_->{what} =~ /tool check_table timed out/ } @{ $rec->{degradations} || [] }),
           'record: a degradation');
    },
};

# 3b. the caller hangs up while the tool runs: it is not called again
#     and the record says its outcome is unknown ("abandoned")
push @S, {
    name => 'tool call abandoned', tls => 0,
    extra => sub { tool_directive($_[0], filler => $FILLER) },
    sim_config => {
        llm => { faults => [ { kind => 'tool_call', name => 'check_table', id => 'call_t4',
                               arguments => { party => 2, time => '19:00' }, on_request => 1 } ] },
        app => { tools => { check_table => { result => $TABLE, delay_ms => 8000 } } },
    },
    script => "say: Do you have a table for two at seven?\nwait: bot\nwait: 500\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim) = @$s{qw(record sim)};
        is(scalar(tool_calls_seen($sim, 'check_table')), 1, 'the tool was called once');
        is(scalar(llm_requests($sim)), 1, 'the model was not asked again');
        my $tc = $rec->{tool_calls} || [];
        is(scalar @$tc, 1, 'record: one tool call');
        is($tc->[0]{outcome}, 'abandoned', 'record: abandoned with the call');
    },
};

# 4. transfer to an allowed number: the announcement is heard, then the
#    live call gets <Dial> TwiML through the REST API
push @S, {
    name => 'transfer', tls => 0, closed_by => 'server',
    auth_token => $TOKEN, secrets => [ $TOKEN ],
    extra => sub { "voice_transfer_numbers $MANAGER +14155550199; " . twilio_api($_[0]) },
    sim_config => {
        twilio => { auth_token => $TOKEN },
        llm => { faults => [ { kind => 'tool_call', name => 'transfer_call', id => 'call_x1',
                               arguments => { number => $MANAGER }, on_request => 1,
                               preamble => 'Let me put you through to our manager.' } ] },
    },
    script => "say: Can I speak to the manager?\nwait: bot\nwait: 6000\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim, $sum) = @$s{qw(record sim summary)};
        my @up = $sim->records('twilio', ev => 'update');
        is(scalar @up, 1, 'one REST update of the live call');
        is($up[0]{call_sid}, $sum->{call_sid}, 'of this call');
        like($up[0]{form}{Twiml} // '', qr{^<Response><Dial>\Q$MANAGER\E</Dial></Response>$},
             'with <Dial> TwiML');
        ok($up[0]{auth_ok}, 'authenticated with the account SID and auth token');
        my @a = entries($rec, role => 'assistant');
        is(squash($a[-1]{text}), 'Let me put you through to our manager.', 'the announcement');
        ok(!$a[-1]{interrupted}, 'heard in full');
        is($rec->{end_reason}, 'transferred', 'record: transferred');
        is($sum->{close}{code}, 1000, 'the stream closed normally');
        my @tools = map { $_->{function}{name} } @{ (llm_requests($sim))[0]{json}{tools} || [] };
        is_deeply(\@tools, [ 'transfer_call' ], 'transfer_call is offered');
    },
};

# 5. a number that is not allowed: the model is told, nothing is dialled
push @S, {
    name => 'transfer refused', tls => 0,
    auth_token => $TOKEN, secrets => [ $TOKEN ],
    extra => sub { "voice_transfer_numbers $MANAGER; " . twilio_api($_[0]) },
    sim_config => {
        twilio => { auth_token => $TOKEN },
        llm => { faults => [ { kind => 'tool_call', name => 'transfer_call', id => 'call_x2',
                               arguments => { number => '+19005550123' }, on_request => 1 } ] },
    },
    script => "say: Put me through to this number please.\nwait: bot\nwait: 1000\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim) = @$s{qw(record sim)};
        is(scalar($sim->records('twilio', ev => 'update')), 0, 'no REST update');
        my @rq = llm_requests($sim);
        like($rq[1]{json}{messages}[-1]{content} // '', qr/cannot be transferred/,
             'the model is told');
        is($rec->{tool_calls}[0]{outcome}, 'refused', 'record: refused');
        is($rec->{end_reason}, 'caller hung up', 'the call went on');
    },
};

# 6. end_call with voice_twilio_complete: the goodbye is heard, then the
#    call is completed through the REST API
push @S, {
    name => 'end_call completes the call', tls => 0, closed_by => 'server',
    auth_token => $TOKEN, secrets => [ $TOKEN ],
    extra => sub { 'voice_end_call on; voice_twilio_complete on; ' . twilio_api($_[0]) },
    sim_config => { twilio => { auth_token => $TOKEN }, llm => { faults => [ { kind => 'tool_call', name => 'end_call',
                                           arguments => {}, on_request => 1,
                                           preamble => 'Goodbye, and thank you!' } ] } },
    script => "say: That is all, thank you.\nwait: bot\nwait: 6000\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim, $sum) = @$s{qw(record sim summary)};
        my @up = $sim->records('twilio', ev => 'update');
        is(scalar @up, 1, 'one REST update');
        is($up[0]{form}{Status}, 'completed', 'Status=completed');
        is($up[0]{call_sid}, $sum->{call_sid}, 'of this call');
        my @a = entries($rec, role => 'assistant');
        ok(!$a[-1]{interrupted}, 'the goodbye was heard in full first');
        is($rec->{end_reason}, 'agent ended the call', 'record: end reason');
    },
};

# 7. a persona from the application: its greeting, prompt, model, voice,
#    language and tools are the call's
push @S, {
    name => 'persona', tls => 0,
    params => { caller => 'Dana', persona => 'spanish' },
    extra => sub { tool_directive($_[0]) . 'voice_end_call on; '
                   . 'voice_persona_url ' . app_url($_[0]) . '/persona; ' },
    sim_config => { app => { personas => { spanish => {
        system_prompt => 'Eres el asistente de Bella.', greeting => 'Hola, soy Bella.',
        voice => 'PersonaVoice01', model => 'llama-3.3-70b', language => 'es',
        tools => [ 'check_table' ] } } } },
    script => "wait: bot\nsay: Hola.\nwait: bot\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim, $sum) = @$s{qw(record sim summary)};
        my @p = app_records($sim, 'persona');
        is(scalar @p, 1, 'the persona was fetched once');
        is($p[0]{query}{CallSid}, $sum->{call_sid}, 'with the call SID');
        is($p[0]{query}{persona}, 'spanish', 'and the customParameters');
        my @a = entries($rec, role => 'assistant');
        is(squash($a[0]{text}), 'Hola, soy Bella.', 'the persona\'s greeting');
        my @rq = llm_requests($sim);
        is($rq[0]{json}{model}, 'llama-3.3-70b', 'its model');
        is($rq[0]{json}{messages}[0]{content}, 'Eres el asistente de Bella.', 'its prompt');
        is_deeply([ map { $_->{function}{name} } @{ $rq[0]{json}{tools} || [] } ],
                  [ 'check_table' ], 'only its tools');
        my ($stt) = $sim->records('stt', ev => 'connect');
        is($stt->{query}{language}, 'es', 'STT in its language');
        my ($tts) = $sim->records('tts', ev => 'connect');
        like($tts->{path} // '', qr{/text-to-speech/PersonaVoice01/}, 'TTS with its voice');
        is($rec->{persona}{source}, 'application', 'record: from the application');
        is($rec->{persona}{language}, 'es', 'record: the language');
    },
};

# 7b. the persona offers fewer tools: one it does not offer is not run
push @S, {
    name => 'persona limits tools', tls => 0,
    params => { caller => 'Dana', persona => 'plain' },
    extra => sub { tool_directive($_[0]) . 'voice_end_call on; '
                   . 'voice_persona_url ' . app_url($_[0]) . '/persona; ' },
    sim_config => {
        app => { personas => { plain => { tools => [ 'end_call' ] } } },
        llm => { faults => [ { kind => 'tool_call', name => 'check_table', id => 'call_p1',
                               arguments => { party => 2, time => '19:00' }, on_request => 1 } ] },
    },
    script => "say: Do you have a table for two at seven?\nwait: bot\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim) = @$s{qw(record sim)};
        my @rq = llm_requests($sim);
        is_deeply([ map { $_->{function}{name} } @{ $rq[0]{json}{tools} || [] } ],
                  [ 'end_call' ], 'only end_call is offered');
        is(scalar(tool_calls_seen($sim, 'check_table')), 0, 'the tool it did not offer is not run');
        is($rec->{tool_calls}[0]{outcome}, 'unknown tool', 'record: unknown tool');
        is(scalar @rq, 2, 'the model was told and asked again');
    },
};

# 8. the application fails: the configured defaults, and the record says so
push @S, {
    name => 'persona fallback', tls => 0,
    greeting => 'Hello from the defaults.',
    extra => sub { 'voice_persona_timeout 500ms; '
                   . 'voice_persona_url ' . app_url($_[0]) . '/persona; ' },
    sim_config => { app => { persona_delay_ms => 3000 } },
    script => "wait: bot\nsay: Hello.\nwait: bot\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim) = @$s{qw(record sim)};
        my @a = entries($rec, role => 'assistant');
        is(squash($a[0]{text}), 'Hello from the defaults.', 'the configured greeting');
        is($rec->{persona}{source}, 'defaults', 'record: defaults');
        is($rec->{persona}{error}, 'timed out', 'record: why');
        my @rq = llm_requests($sim);
        like($rq[0]{json}{messages}[0]{content}, qr/booking assistant/, 'the configured prompt');
    },
};

# 9. the application answers an error
push @S, {
    name => 'persona error', tls => 0,
    greeting => 'Hello from the defaults.',
    extra => sub { 'voice_persona_url ' . app_url($_[0]) . '/persona; ' },
    sim_config => { app => { persona_status => 500 } },
    script => "wait: bot\nhangup\n",
    check => sub {
        my ($s) = @_;
        my $rec = $s->{record};
        is($rec->{persona}{source}, 'defaults', 'record: defaults');
        is($rec->{persona}{status}, 500, 'record: the status');
        is(squash((entries($rec, role => 'assistant'))[0]{text}), 'Hello from the defaults.',
           'the configured greeting');
    },
};

# 10. the caller hangs up while the persona is being fetched
push @S, {
    name => 'persona at hang-up', tls => 0,
    extra => sub { 'voice_persona_timeout 5s; '
                   . 'voice_persona_url ' . app_url($_[0]) . '/persona; ' },
    sim_config => { app => { persona_delay_ms => 4000 } },
    script => "wait: 1000\nhangup\n",
    check => sub {
        my ($s) = @_;
        my ($rec, $sim) = @$s{qw(record sim)};
        is(scalar(app_records($sim, 'persona')), 1, 'the persona was asked for');
        is(scalar(entries($rec, role => 'assistant')), 0, 'nothing was said');
        is($rec->{end_reason}, 'caller hung up', 'record: the caller hung up');
        is(scalar($sim->records('stt', ev => 'connect')), 0, 'no STT connection was opened');
    },
};

run_scenarios($dir, @S);

# ---- nginx -t ------------------------------------------------------------

{
    my $nginx_t = sub { agent_nginx_t($dir, @_) };
    my ($rc, $out) = $nginx_t->("voice_tool lookup http://127.0.0.1:9/x parameters=$SCHEMA "
                                . '"description=Looks up" timeout=2s "filler=One moment."; '
                                . 'voice_transfer_numbers +14155550100; '
                                . 'voice_twilio_auth_token t0k; voice_twilio_api_url http://127.0.0.1:9; '
                                . 'voice_persona_url http://127.0.0.1:9/persona;');
    is($rc, 0, 'nginx -t: tools, transfer numbers and a persona URL pass') or diag $out;
    ($rc, $out) = $nginx_t->('voice_transfer_numbers +14155550100;');
    like($out, qr/\[emerg\].*"voice_transfer_numbers" needs "voice_twilio_auth_token"/,
         'nginx -t: a transfer needs the REST API\'s credentials');
    ($rc, $out) = $nginx_t->('voice_tool end_call http://127.0.0.1:9/x;');
    like($out, qr/\[emerg\].*names a built-in tool/, 'nginx -t: a tool may not be called end_call');
    ($rc, $out) = $nginx_t->('voice_tool a http://127.0.0.1:9/x; voice_tool a http://127.0.0.1:9/y;');
    like($out, qr/\[emerg\].*declares a tool twice/, 'nginx -t: a name is declared once');
    ($rc, $out) = $nginx_t->('voice_tool "a b" http://127.0.0.1:9/x;');
    like($out, qr/\[emerg\].*invalid tool name/, 'nginx -t: tool names are checked');
    ($rc, $out) = $nginx_t->("voice_tool a http://127.0.0.1:9/x parameters=$dir/none.json;");
    like($out, qr/\[emerg\].*cannot open/, 'nginx -t: a missing schema file');
    write_file("$dir/array.json", '[1]');
    ($rc, $out) = $nginx_t->("voice_tool a http://127.0.0.1:9/x parameters=$dir/array.json;");
    like($out, qr/\[emerg\].*must hold a JSON schema object/, 'nginx -t: a schema is an object');
    ($rc, $out) = $nginx_t->('voice_tool a ftp://127.0.0.1:9/x;');
    isnt($rc, 0, 'nginx -t: a tool URL is http or https');
    ($rc, $out) = $nginx_t->('voice_transfer_numbers 4155550100;');
    like($out, qr/\[emerg\].*invalid number "4155550100"/, 'nginx -t: numbers are E.164');

    # conf/production.conf as shipped: only paths and keys replaced
    my $d = "$dir/production";
    mkdir $d; mkdir "$d/logs";
    system("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=voice.example.com "
           . "-keyout $d/key.pem -out $d/cert.pem -days 1 >/dev/null 2>&1") == 0
        or die "openssl: $?";
    open my $in, '<', 'conf/production.conf' or die $!;
    my $conf = do { local $/; <$in> };
    $conf =~ s{^load_module \S+;}{'load_module ' . voice_module() . ';'}me;
    $conf =~ s{^user \S+;\n}{}m;
    $conf =~ s{/var/log/nginx/|/run/}{$d/logs/}g;
    $conf =~ s{/etc/ssl/certs/voice\.example\.com\.fullchain\.pem|/etc/ssl/certs/ca-certificates\.crt}{$d/cert.pem}g;
    $conf =~ s{/etc/ssl/private/voice\.example\.com\.key}{$d/key.pem}g;
    $conf =~ s{/etc/nginx/voice/check_table\.json}{$SCHEMA}g;
    write_file("$d/nginx.conf", $conf);
    local @ENV{qw(DEEPGRAM_API_KEY CEREBRAS_API_KEY ELEVENLABS_API_KEY TWILIO_AUTH_TOKEN
                  VOICE_EVENTS_SECRET)} = qw(k1 k2 k3 k4 k5);
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    $out = `$nginx -t -p $d -c $d/nginx.conf 2>&1`;
    is($? >> 8, 0, 'nginx -t: conf/production.conf passes') or diag $out;
}

done_testing();
