package VoiceSim::App;

# The operator's application, as the voice agent sees it (one port):
#   GET  .../persona?CallSid=...&<customParameters>  the call's persona
#   POST .../tools/{name}  (JSON arguments)          a tool call
#   POST .../events        (signed call record)      the end-of-call webhook
# Events are signed: X-Voice-Timestamp: <unix seconds> and
# X-Voice-Signature: sha256=<hex HMAC-SHA256(secret, timestamp "." body)>.

use strict;
use warnings;

use Mojo::Base -strict;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::IOLoop;
use Mojolicious;
use Digest::SHA qw(hmac_sha256_hex);
use File::Path qw(make_path);
use Time::HiRes qw(time);
use VoiceSim::Common qw(b);

our @EXPORT_OK = qw(sign);
use Exporter 'import';

my %DEFAULT_PERSONA = (default => { system_prompt => 'You are the test application\'s agent.',
                                    greeting => 'Hello from the test application.' });

# sign($secret, $timestamp, $body): the X-Voice-Signature value
sub sign {
    my ($secret, $ts, $body) = @_;
    return 'sha256=' . hmac_sha256_hex("$ts.$body", $secret);
}

sub _eq_ct {
    my ($x, $y) = @_;
    return 0 unless length $x == length $y;
    my $r = 0;
    $r |= ord(substr $x, $_, 1) ^ ord(substr $y, $_, 1) for 0 .. length($x) - 1;
    return $r == 0;
}

sub app {
    my ($class, $ctx) = @_;
    my $app = Mojolicious->new;
    $app->log->level('fatal');
    $app->max_request_size(16 * 1024 * 1024);
    $app->routes->any('/*any' => {any => ''})->to(cb => sub {
        my $c = shift;
        my $path = $c->req->url->path->to_string;
        return _persona($ctx, $c) if $path =~ m{/persona$};
        return _tool($ctx, $c, $1) if $path =~ m{/tools/([^/]+)$};
        return _events($ctx, $c) if $path =~ m{/events$};
        my $conn = VoiceSim::Common::conn_id($ctx, $c);
        $ctx->{log}->log(conn => $conn, ev => 'http_request', method => $c->req->method,
                         path => $path);
        _send($ctx, $c, $conn, 404, { error => 'not found' });
    });
    return $app;
}

# answer with a JSON value, or a raw body when $raw is set; logged
sub _send {
    my ($ctx, $c, $conn, $status, $json, $raw, %log) = @_;
    $ctx->{log}->log(conn => $conn, ev => 'http_response', status => $status,
                     defined $raw ? (body => $raw) : (json => $json), %log);
    $c->res->headers->content_type('application/json');
    return $c->render(status => $status, data => $raw) if defined $raw;
    $c->render(status => $status, data => encode_json($json));
}

# run $cb after $ms (at once for 0); a client that gives up first is
# logged as client_disconnected and gets nothing
sub _later {
    my ($ctx, $c, $ms, $cb, %log) = @_;
    return $cb->() unless $ms;
    $c->render_later;
    $c->inactivity_timeout(0);
    my $gone;
    $c->tx->on(finish => sub {
        $ctx->{log}->log(ev => 'client_disconnected', %log) unless $c->res->code;
        $gone = 1;
    });
    Mojo::IOLoop->timer($ms / 1000 => sub { $cb->() unless $gone });
}

sub _persona {
    my ($ctx, $c) = @_;
    my $cfg = $ctx->{cfg};
    my $conn = VoiceSim::Common::conn_id($ctx, $c);
    my $n = ++$ctx->{persona_requests};
    my $q = VoiceSim::Common::query_for_log($c);
    my $key = $cfg->get('app', 'persona_key', 'persona');
    my $personas = $cfg->get('app', 'personas', \%DEFAULT_PERSONA);
    my $want = $q->{$key};
    my $name = defined $want && !ref $want && $personas->{$want} ? $want
             : $personas->{default} ? 'default' : undef;
    my $status = $cfg->get('app', 'persona_status') // (defined $name ? 200 : 404);
    my $delay = $cfg->get('app', 'persona_delay_ms', 0);
    $ctx->{log}->log(conn => $conn, n => $n, ev => 'persona', method => $c->req->method,
                     path => $c->req->url->path->to_string, query => $q,
                     call_sid => $q->{CallSid}, requested => $want, selected => $name,
                     status => $status, delay_ms => $delay,
                     authorization => $c->req->headers->authorization,
                     headers => VoiceSim::Common::headers_for_log($c->req->headers));
    $ctx->{log}->violation(conn => $conn, n => $n, rule => 'app_persona_method',
                           detail => $c->req->method . ' is not GET')
        unless $c->req->method eq 'GET';
    $ctx->{log}->violation(conn => $conn, n => $n, rule => 'app_persona_call_sid',
                           detail => 'no CallSid query argument')
        unless defined $q->{CallSid};
    _later($ctx, $c, $delay, sub {
        my $raw = $cfg->get('app', 'persona_body');
        $raw = encode_json($raw) if ref $raw;
        return _send($ctx, $c, $conn, $status, undef, $raw, n => $n, endpoint => 'persona')
            if defined $raw;
        my $body = $status =~ /^2/ && defined $name ? $personas->{$name}
                 : { error => defined $name ? 'simulated failure' : "no persona '" . ($want // '') . "'" };
        _send($ctx, $c, $conn, $status, $body, undef, n => $n, endpoint => 'persona');
    }, conn => $conn, n => $n, endpoint => 'persona');
}

sub _tool {
    my ($ctx, $c, $name) = @_;
    my $cfg = $ctx->{cfg};
    my $log = $ctx->{log};
    my $t0 = time;
    my $conn = VoiceSim::Common::conn_id($ctx, $c);
    my $n = ++$ctx->{tool_calls};
    my $n_tool = ++$ctx->{tool_calls_by_name}{$name};
    my $raw = $c->req->body;
    my $args = eval { decode_json($raw) };
    my $ok = !$@;
    my $ct = $c->req->headers->content_type // '';
    my $tc = $cfg->get('app', 'tools', {})->{$name} || {};
    my $delay = $tc->{delay_ms} // 0;
    $log->log(conn => $conn, n => $n, n_tool => $n_tool, ev => 'tool_call', name => $name,
              method => $c->req->method, $ok ? (args => $args) : (body => $raw),
              content_type => $ct, call_sid => $c->req->headers->header('X-Voice-Call-Sid'),
              delay_ms => $delay, authorization => $c->req->headers->authorization,
              headers => VoiceSim::Common::headers_for_log($c->req->headers));
    my $v = sub { $log->violation(conn => $conn, n => $n, rule => $_[0], detail => $_[1]) };
    $v->('app_tool_method', $c->req->method . ' is not POST') unless $c->req->method eq 'POST';
    $v->('app_tool_content_type', "Content-Type '$ct' is not application/json")
        unless $ct =~ m{^application/json\b}i;
    $v->('app_tool_body', 'the body is not JSON: ' . substr($raw, 0, 80)) unless $ok;
    _later($ctx, $c, $delay, sub {
        my %x = (n => $n, endpoint => 'tool', name => $name);
        my $done = sub {
            my ($status, $json, $body) = @_;
            $log->log(conn => $conn, n => $n, ev => 'tool_result', name => $name, status => $status,
                      defined $body ? (body => $body) : (json => $json),
                      ms => 0 + sprintf('%.1f', (time - $t0) * 1000));
            _send($ctx, $c, $conn, $status, $json, $body, %x);
        };
        return $done->(400, { error => 'the body is not JSON' }) unless $ok;
        my $raw = $tc->{body};
        return $done->($tc->{status} // 200, undef, ref $raw ? encode_json($raw) : $raw)
            if defined $raw;
        $done->($tc->{status} // 200,
                exists $tc->{result} ? $tc->{result} : { ok => Mojo::JSON::true, echo => $args });
    }, conn => $conn, n => $n, endpoint => 'tool', name => $name);
}

sub _events {
    my ($ctx, $c) = @_;
    my $cfg = $ctx->{cfg};
    my $log = $ctx->{log};
    my $conn = VoiceSim::Common::conn_id($ctx, $c);
    my $n = ++$ctx->{event_posts};
    my $h = $c->req->headers;
    my $raw = $c->req->body;
    my $rec = eval { decode_json($raw) };
    my $sid = ref $rec eq 'HASH' && defined $rec->{call_sid} && !ref $rec->{call_sid}
            ? $rec->{call_sid} : undef;
    my $attempt = ++$ctx->{event_attempts}{ $sid // '' };
    my $ct = $h->content_type // '';
    my $v = sub { $log->violation(conn => $conn, n => $n, rule => $_[0], detail => $_[1]) };

    # the signature
    my $secret = $cfg->get('app', 'events_secret', $ctx->{key});
    my $ts = $h->header('X-Voice-Timestamp');
    my $sig = $h->header('X-Voice-Signature');
    my $why;
    if (!defined $ts || !defined $sig) {
        $why = 'missing';
        $v->('app_events_unsigned', 'no X-Voice-Timestamp or X-Voice-Signature header');
    } elsif ($ts !~ /^\d+$/ || $sig !~ /^sha256=[0-9a-fA-F]{64}$/) {
        $why = 'format';
        $v->('app_events_signature', "malformed headers: X-Voice-Timestamp '$ts', X-Voice-Signature '$sig'");
    } elsif (!_eq_ct(lc $sig, sign($secret, $ts, $raw))) {
        $why = 'mismatch';
        $v->('app_events_signature', 'X-Voice-Signature does not match HMAC-SHA256(secret, timestamp "." body)');
    } elsif (abs(time - $ts) > $cfg->get('app', 'events_tolerance_s', 300)) {
        $why = 'stale';
        $v->('app_events_signature', 'X-Voice-Timestamp ' . int(time - $ts) . ' s away from now');
    }
    $v->('app_events_method', $c->req->method . ' is not POST') unless $c->req->method eq 'POST';
    $v->('app_events_content_type', "Content-Type '$ct' is not application/json")
        unless $ct =~ m{^application/json\b}i;
    $v->('app_events_body', ref $rec eq 'HASH' ? 'the record has no call_sid string'
                                               : 'the body is not a JSON object')
        unless defined $sid;

    my ($status, $stored);
    if ($n <= $cfg->get('app', 'events_fail_first', 0)) {
        $status = 503;
    } elsif ($why) {
        $status = 401;
    } elsif (!defined $sid) {
        $status = 400;
    } else {
        $status = $cfg->get('app', 'events_status', 200);
    }
    if ($status =~ /^2/) {
        (my $file = $sid) =~ s/[^\w.-]/_/g;
        my $d = "$ctx->{dir}/events";
        make_path($d);
        $stored = "$d/$file.json";
        my $dup = -e $stored;
        open my $fh, '>:raw', "$stored.tmp" or die "$stored.tmp: $!";
        print $fh $raw;
        close $fh;
        rename "$stored.tmp", $stored;
        my $turns = ref $rec->{counts} eq 'HASH' && defined $rec->{counts}{turns}
                  ? $rec->{counts}{turns} : scalar @{ ref $rec->{turns} eq 'ARRAY' ? $rec->{turns} : [] };
        my $lines = scalar @{ ref $rec->{transcript} eq 'ARRAY' ? $rec->{transcript} : [] };
        local $| = 1;
        printf "app: call record %s end=%s turns=%s transcript=%d lines (attempt %d%s)\n",
            $sid, $rec->{end_reason} // '?', $turns, $lines, $attempt, $dup ? ', again' : '';
    }
    $log->log(conn => $conn, n => $n, ev => 'event_delivery', call_sid => $sid, attempt => $attempt,
              timestamp => defined $ts && $ts =~ /^\d+$/ ? 0 + $ts : $ts, signature => $sig, signature_ok => b(!$why), signature_error => $why,
              status => $status, stored => $stored, bytes => length $raw, content_type => $ct,
              headers => VoiceSim::Common::headers_for_log($h), defined $rec ? (json => $rec) : (body => $raw));
    my $body = $status =~ /^2/ ? { ok => Mojo::JSON::true }
             : { error => $status == 401 ? 'bad signature' : $status == 400 ? 'bad record' : 'unavailable' };
    _later($ctx, $c, $cfg->get('app', 'events_delay_ms', 0),
           sub { _send($ctx, $c, $conn, $status, $body, undef, n => $n, endpoint => 'events') },
           conn => $conn, n => $n, endpoint => 'events');
}

1;
