package VoiceSim::LLM;

# OpenAI-compatible chat completions simulator, Cerebras flavour:
# POST /v1/chat/completions (protocols.md sections 3 and 6).

use strict;
use warnings;

use Mojo::Base -strict;
use Mojo::JSON qw(decode_json encode_json);
use Mojolicious;
use Time::HiRes qw(time);
use VoiceSim::Common qw(b);

my %ROLES = map { $_ => 1 } qw(system user assistant tool developer);

sub app {
    my ($class, $ctx) = @_;
    my $app = Mojolicious->new;
    $app->log->level('fatal');
    $app->max_request_size(16 * 1024 * 1024);
    my $r = $app->routes;
    $r->post('/v1/chat/completions')->to(cb => sub { _chat($ctx, shift) });
    $r->get('/v1/models')->to(cb => sub {
        my $c = shift;
        my $conn = VoiceSim::Common::conn_id($ctx, $c);
        $ctx->{log}->log(conn => $conn, ev => 'http_request', method => 'GET', path => '/v1/models');
        return unless _auth($ctx, $c, $conn);
        $c->render(json => { object => 'list', data => [ map {
            { id => $_, object => 'model', created => 0, owned_by => 'Cerebras' } }
            @{ $ctx->{cfg}->get('llm', 'models', ['gpt-oss-120b', 'llama3.1-8b']) } ] });
    });
    $r->get('/v1/tcp_warming')->to(cb => sub {
        my $c = shift;
        my $conn = VoiceSim::Common::conn_id($ctx, $c);
        $ctx->{log}->log(conn => $conn, ev => 'http_request', method => 'GET', path => '/v1/tcp_warming');
        $c->render(json => {});
    });
    $r->any('/*any' => {any => ''})->to(cb => sub {
        my $c = shift;
        my $conn = VoiceSim::Common::conn_id($ctx, $c);
        $ctx->{log}->log(conn => $conn, ev => 'http_request', method => $c->req->method,
                         path => $c->req->url->path->to_string);
        _error($ctx, $c, $conn, 404, 'Not found', 'not_found_error', undef, 'not_found');
    });
    return $app;
}

sub _rl_headers {
    my ($ctx, $c, $limited) = @_;
    my $cfg = $ctx->{cfg};
    my $h = $c->res->headers;
    my $n = $ctx->{llm_requests} // 0;
    $h->header('x-ratelimit-limit-requests-day' => 14400);
    $h->header('x-ratelimit-limit-tokens-minute' => 60000);
    $h->header('x-ratelimit-remaining-requests-day' => $limited ? 0 : 14400 - $n);
    $h->header('x-ratelimit-remaining-tokens-minute' => $limited ? 0 : 59000);
    $h->header('x-ratelimit-reset-requests-day' => '33011.38');
    $h->header('x-ratelimit-reset-tokens-minute' => $limited ? ($cfg->get('llm', 'retry_after', 1) . '.0') : '11.38');
    $h->header('cf-ray' => sprintf('%016x-SIM', int rand 2**48));
}

# flat Cerebras error body
sub _error {
    my ($ctx, $c, $conn, $status, $msg, $type, $param, $code, %extra) = @_;
    my $body = { message => $msg, type => $type, param => $param, code => $code };
    $ctx->{log}->log(conn => $conn, ev => 'http_response', status => $status, json => $body, %extra);
    $c->render(status => $status, json => $body);
    return;
}

sub _auth {
    my ($ctx, $c, $conn) = @_;
    my $a = $c->req->headers->authorization;
    if (!defined $a) {
        $ctx->{log}->log(conn => $conn, ev => 'auth', scheme => 'none', ok => b(0));
        my $body = { detail => 'Not authenticated' };
        $ctx->{log}->log(conn => $conn, ev => 'http_response', status => 403, json => $body);
        $c->render(status => 403, json => $body);
        return;
    }
    my ($scheme, $got) = $a =~ /^(Bearer)\s+(\S+)\s*$/i;
    my $ok = defined $got && $got eq $ctx->{key} && $scheme eq 'Bearer';
    $ctx->{log}->log(conn => $conn, ev => 'auth', scheme => $scheme // 'malformed', ok => b($ok));
    return 1 if $ok;
    _error($ctx, $c, $conn, 401, 'Wrong API Key', 'invalid_request_error', 'api_key', 'wrong_api_key');
    return;
}

sub _validate {
    my ($body) = @_;
    return 'body must be a JSON object' unless ref $body eq 'HASH';
    return 'model: field required' unless defined $body->{model};
    return 'model: must be a string' if ref $body->{model} || $body->{model} !~ /\S/;
    my $m = $body->{messages};
    return 'messages: field required' unless defined $m;
    return 'messages: must be a non-empty array' unless ref $m eq 'ARRAY' && @$m;
    my $i = 0;
    for my $msg (@$m) {
        return "messages[$i]: must be an object" unless ref $msg eq 'HASH';
        my $role = $msg->{role} // '';
        return "messages[$i].role: invalid role '$role'" unless $ROLES{$role};
        if (!exists $msg->{content}) {
            return "messages[$i].content: field required"
                unless $role eq 'assistant' && $msg->{tool_calls};
        } elsif (!defined $msg->{content}) {
            return "'NoneType' object is not iterable";
        } elsif (ref $msg->{content} eq 'ARRAY') {
            for my $p (@{ $msg->{content} }) {
                return "messages[$i].content: parts must be {type:text,text}"
                    unless ref $p eq 'HASH' && ($p->{type} // '') eq 'text' && defined $p->{text};
            }
        } elsif (ref $msg->{content}) {
            return "messages[$i].content: must be a string or an array of parts";
        }
        if ($role eq 'tool') {
            return "messages[$i].tool_call_id: field required for role tool"
                unless defined $msg->{tool_call_id} && !ref $msg->{tool_call_id};
        }
        if ($msg->{tool_calls}) {
            return "messages[$i].tool_calls: must be an array" unless ref $msg->{tool_calls} eq 'ARRAY';
            for my $tc (@{ $msg->{tool_calls} }) {
                return "messages[$i].tool_calls: need id, type function, function.name/arguments"
                    unless ref $tc eq 'HASH' && defined $tc->{id}
                        && ($tc->{type} // '') eq 'function'
                        && ref $tc->{function} eq 'HASH' && defined $tc->{function}{name}
                        && defined $tc->{function}{arguments} && !ref $tc->{function}{arguments};
            }
        }
        $i++;
    }
    return 'stream: must be a boolean'
        if exists $body->{stream} && defined $body->{stream}
        && ref $body->{stream} ne 'JSON::PP::Boolean';
    return;
}

sub _text_of {
    my $c = shift;
    return '' unless defined $c;
    return join '', map { $_->{text} } @$c if ref $c eq 'ARRAY';
    return $c;
}

sub _reply_for {
    my ($ctx, $body) = @_;
    my $m = $body->{messages};
    my @replies = @{ $ctx->{replies} || [] };
    my $i = $ctx->{llm_replies}++;
    return $replies[$i] if defined $replies[$i];
    my $last = $m->[-1];
    if (($last->{role} // '') eq 'tool') {
        return 'The tool said: ' . _text_of($last->{content}) . '.';
    }
    my ($u) = grep { $_->{role} eq 'user' } reverse @$m;
    my $t = $u ? _text_of($u->{content}) : '';
    $t =~ s/\s+/ /g; $t =~ s/^ | $//g;
    return "You said: $t.";
}

sub _words {
    my $s = shift;
    return $s =~ /(\s*\S+\s*)/g;
}

sub _count_tokens {
    my $body = shift;
    my $n = 0;
    for my $m (@{ $body->{messages} }) {
        my @w = split ' ', _text_of($m->{content});
        $n += 4 + int(@w * 1.3);
    }
    return $n;
}

sub _chat {
    my ($ctx, $c) = @_;
    my $log = $ctx->{log};
    my $cfg = $ctx->{cfg};
    my $t0 = time();
    my $conn = VoiceSim::Common::conn_id($ctx, $c);
    my $n = ++$ctx->{llm_requests};
    my $raw = $c->req->body;
    my $body = eval { decode_json($raw) };
    $log->log(conn => $conn, ev => 'http_request', n => $n, method => 'POST',
              path => '/v1/chat/completions', http_version => $c->req->version,
              headers => VoiceSim::Common::headers_for_log($c->req->headers),
              defined $body ? (json => $body) : (body => $raw));
    return unless _auth($ctx, $c, $conn);

    my $ct = $c->req->headers->content_type // '';
    $log->violation(conn => $conn, n => $n, rule => 'llm_content_type',
                    detail => "Content-Type '$ct' is not application/json")
        unless $ct =~ m{^application/json\b}i;

    # faults that replace the whole response
    my $f = $cfg->fault('llm', $n);
    $log->log(conn => $conn, n => $n, ev => 'fault', %$f{grep { !/^_/ } keys %$f}) if $f;
    my $kind = $f ? ($f->{kind} // ($f->{status} ? 'status' : '')) : '';
    if ($kind eq 'status') {
        my $s = $f->{status};
        if ($s == 429) {
            _rl_headers($ctx, $c, 1);
            $c->res->headers->header('retry-after' => $f->{retry_after} // $cfg->get('llm', 'retry_after', 1));
            return _error($ctx, $c, $conn, 429, $f->{message} // 'Requests per minute limit exceeded - too many requests sent.',
                          'too_many_requests_error', 'quota', $f->{code} // 'request_quota_exceeded');
        }
        _rl_headers($ctx, $c);
        return _error($ctx, $c, $conn, 401, 'Wrong API Key', 'invalid_request_error', 'api_key', 'wrong_api_key')
            if $s == 401;
        return _error($ctx, $c, $conn, $s, $f->{message} // 'Internal server error',
                      $s >= 500 ? 'server_error' : 'invalid_request_error', undef,
                      $f->{code} // ($s >= 500 ? 'internal_server_error' : 'bad_request'));
    }
    if ($kind eq 'hang') {
        $log->log(conn => $conn, n => $n, ev => 'hang', stage => 'before_headers');
        $c->render_later;
        $c->inactivity_timeout(0);
        $c->tx->on(finish => sub { $log->log(conn => $conn, n => $n, ev => 'client_disconnected', tokens_sent => 0) });
        return;
    }

    _rl_headers($ctx, $c);
    my $err = defined $body ? _validate($body) : 'Request body is not valid JSON';
    if ($err) {
        $log->violation(conn => $conn, n => $n, rule => 'llm_body', detail => $err);
        return _error($ctx, $c, $conn, 400, $err, 'invalid_request_error', 'body', 'wrong_api_format');
    }
    if (my $models = $cfg->get('llm', 'models')) {
        unless (grep { $_ eq $body->{model} } @$models) {
            $log->violation(conn => $conn, n => $n, rule => 'llm_model', detail => "unknown model $body->{model}");
            return _error($ctx, $c, $conn, 404, "Model $body->{model} does not exist or you do not have access to it.",
                          'not_found_error', 'model', 'model_not_found');
        }
    }

    my $model = $body->{model};
    my $id = 'chatcmpl-' . VoiceSim::Common::request_id();
    my $created = int time;
    my $ptok = _count_tokens($body);

    # tool call response (config-driven)
    my $tool = $kind eq 'tool_call' ? $f : undef;
    my $reply = $tool ? ($tool->{preamble} // '') : _reply_for($ctx, $body);
    my @tokens = _words($reply);

    my $stream = $body->{stream};
    if (!$stream) {
        $log->violation(conn => $conn, n => $n, rule => 'llm_not_streaming',
                        detail => 'stream is not true');
        my $msg = { role => 'assistant', content => $reply };
        $msg->{tool_calls} = [ _tool_calls($tool) ] if $tool;
        my $res = { id => $id, object => 'chat.completion', created => $created, model => $model,
                    system_fingerprint => 'fp_sim', choices => [ { index => 0, message => $msg,
                    finish_reason => $tool ? 'tool_calls' : 'stop' } ],
                    usage => _usage($ptok, scalar @tokens), time_info => _time_info($t0, $created) };
        $log->log(conn => $conn, n => $n, ev => 'http_response', status => 200, json => $res);
        return $c->render(json => $res);
    }
    $log->violation(conn => $conn, n => $n, rule => 'llm_tools_missing',
                    detail => 'tool call configured but the request has no tools')
        if $tool && !$body->{tools};

    # the streamed response
    $c->render_later;
    $c->inactivity_timeout(0);
    $c->res->headers->content_type('text/event-stream; charset=utf-8');
    $c->res->headers->cache_control('no-cache');
    my $ttft = $f && defined $f->{ttft_ms} ? $f->{ttft_ms} : $cfg->get('llm', 'ttft_ms', 150);
    my $tok_ms = $cfg->get('llm', 'token_ms', 20);
    my $split = $cfg->get('llm', 'split_writes', 1);
    my %st = (sent => 0, done => 0, events => 0);
    my $q = VoiceSim::Common::Queue->new;
    $c->tx->on(finish => sub {
        return if $st{done};
        $st{done} = 1;
        $q->stop;
        $log->log(conn => $conn, n => $n, ev => 'client_disconnected', tokens_sent => $st{sent},
                  tokens_total => scalar @tokens, events_sent => $st{events});
    });
    # writes go out one per event-loop tick, so each lands in its own
    # TCP segment; an SSE event is split at a random point (seeded)
    my @out;
    my ($pump, $busy);
    $pump = sub {
        $busy = 0;
        return if $st{done} || !@out;
        my $piece = shift @out;
        if (!length $piece) {
            $st{done} = 1;
            $c->write_chunk('');
            return;
        }
        # the next piece goes out once this one has been written
        $busy = 1;
        $c->write_chunk($piece => sub { Mojo::IOLoop->next_tick($pump) });
    };
    my $write = sub {
        my ($data) = @_;
        return if $st{done};
        my $idle = !@out && !$busy;
        if ($split && length $data > 2) {
            my $a = 1 + int($ctx->{rand}->() * (length($data) - 1));
            push @out, substr($data, 0, $a), substr($data, $a);
        } else {
            push @out, $data;
        }
        $pump->() if $idle;
    };
    my $event = sub {
        my ($obj, $note) = @_;
        return if $st{done};
        $st{events}++;
        $log->log(conn => $conn, n => $n, ev => 'sse', ref $obj ? (json => $obj) : (data => $obj),
                  $note ? (note => $note) : ());
        $write->('data: ' . (ref $obj ? encode_json($obj) : $obj) . "\n\n");
    };
    my $chunk = sub {
        my ($delta, $finish, %x) = @_;
        return { id => $id, object => 'chat.completion.chunk', created => $created, model => $model,
                 system_fingerprint => 'fp_sim',
                 choices => [ { index => 0, delta => $delta,
                                defined $finish ? (finish_reason => $finish) : () } ], %x };
    };
    my $finish = sub {
        my ($reason) = @_;
        my $usage = _usage($ptok, $st{sent});
        my $ti = _time_info($t0, $created);
        if ($cfg->get('llm', 'usage_chunk', 'finish') eq 'separate') {
            $event->($chunk->({}, $reason));
            $event->({ id => $id, object => 'chat.completion.chunk', created => $created, model => $model,
                       system_fingerprint => 'fp_sim', choices => [], usage => $usage, time_info => $ti });
        } else {
            $event->($chunk->({}, $reason, usage => $usage, time_info => $ti));
        }
        $event->('[DONE]');
        $log->log(conn => $conn, n => $n, ev => 'stream_done', tokens_sent => $st{sent},
                  finish_reason => $reason, reply => $reply);
        $write->('');
    };

    $log->log(conn => $conn, n => $n, ev => 'stream_start', reply => $reply,
              tool => $tool ? $tool->{name} : undef);
    # the response head goes out with the first event (after TTFT);
    # hang_headers sends it alone at once
    if ($kind eq 'hang_headers') {
        $c->write_chunk(undef);
        $log->log(conn => $conn, n => $n, ev => 'hang', stage => 'after_headers');
        return;
    }
    $q->push($ttft, sub { $event->($chunk->({ role => 'assistant' })) });
    my $after = $f && defined $f->{after_tokens} ? $f->{after_tokens} : 2;
    for my $i (0 .. $#tokens) {
        if (($kind eq 'disconnect' || $kind eq 'error_event' || $kind eq 'hang_mid') && $i == $after) {
            last;
        }
        $q->then($i ? $tok_ms : 0, sub {
            return if $st{done};
            $st{sent}++;
            $event->($chunk->({ content => $tokens[$i] }));
        });
    }
    if ($kind eq 'disconnect') {
        $q->then($tok_ms, sub {
            $log->log(conn => $conn, n => $n, ev => 'server_disconnect', tokens_sent => $st{sent});
            $st{done} = 1;
            my $s = Mojo::IOLoop->stream($c->tx->connection);
            $s->close if $s;
        });
        return;
    }
    if ($kind eq 'error_event') {
        $q->then($tok_ms, sub {
            my $status = $f->{status_code} // 500;
            $event->({ error => { id => $id, code => $f->{code} // 'internal_server_error',
                                  message => $f->{message} // 'Internal server error: the model failed mid-stream.',
                                  param => undef, type => $f->{type} // 'server_error' },
                       status_code => $status }, 'fault');
            return if $st{done};
            $log->log(conn => $conn, n => $n, ev => 'stream_done', tokens_sent => $st{sent},
                      finish_reason => 'error');
            $write->('');
        });
        return;
    }
    if ($kind eq 'hang_mid') {
        $q->then($tok_ms, sub { $log->log(conn => $conn, n => $n, ev => 'hang', stage => 'mid_stream',
                                          tokens_sent => $st{sent}) });
        return;
    }
    if ($tool) {
        for my $frag (_tool_fragments($tool, $ctx)) {
            $q->then($tok_ms, sub { $event->($chunk->($frag)) });
        }
        $q->then($tok_ms, sub { $finish->('tool_calls') });
    } else {
        $q->then($tok_ms, sub { $finish->('stop') });
    }
    $st{q} = $q;
}

sub _tool_calls {
    my ($t) = @_;
    my @calls = $t->{calls} ? @{ $t->{calls} } : ($t);
    my $i = 0;
    return map {
        my $args = ref $_->{arguments} ? encode_json($_->{arguments}) : ($_->{arguments} // '{}');
        { id => $_->{id} // sprintf('call_sim%03d', $i++), type => 'function',
          function => { name => $_->{name}, arguments => $args } }
    } @calls;
}

# streamed fragments: the first carries id/type/name and "" arguments,
# then the arguments string in pieces of 'arg_piece' characters
sub _tool_fragments {
    my ($t, $ctx) = @_;
    my @calls = _tool_calls($t);
    my @frags;
    my $piece = $t->{arg_piece} // 7;
    for my $i (0 .. $#calls) {
        my $call = $calls[$i];
        push @frags, { ($i == 0 && !length($t->{preamble} // '') ? (role => 'assistant', content => undef) : ()),
                       tool_calls => [ { index => $i, id => $call->{id}, type => 'function',
                                         function => { name => $call->{function}{name}, arguments => '' } } ] };
        my $a = $call->{function}{arguments};
        while (length $a) {
            push @frags, { tool_calls => [ { index => $i, function => { arguments => substr($a, 0, $piece, '') } } ] };
        }
    }
    return @frags;
}

sub _usage {
    my ($p, $c) = @_;
    return { prompt_tokens => $p, completion_tokens => $c, total_tokens => $p + $c,
             prompt_tokens_details => { cached_tokens => 0 } };
}

sub _time_info {
    my ($t0, $created) = @_;
    my $tot = time() - $t0;
    return { queue_time => 0.000213, prompt_time => 0.0021,
             completion_time => 0 + sprintf('%.6f', $tot > 0.0023 ? $tot - 0.0023 : 0),
             total_time => 0 + sprintf('%.6f', $tot), created => $created };
}

1;
