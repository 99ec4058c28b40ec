package VoiceSim::Twilio;

# Twilio REST API simulator, live call updates only (protocols.md 1.5):
# POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json with
# Status=completed|canceled, Twiml=<Response>... or Url=..., and GET of
# the same resource.  HTTP Basic auth AccountSid:AuthToken.

use strict;
use warnings;

use Mojo::Base -strict;
use Mojo::JSON qw(encode_json);
use Mojo::Parameters;
use Mojo::IOLoop;
use Mojolicious;
use MIME::Base64 qw(decode_base64);
use POSIX qw(strftime);
use VoiceSim::Common qw(b);

my $API = '/2010-04-01';
my %STATUS = map { $_ => 1 } qw(completed canceled);

sub app {
    my ($class, $ctx) = @_;
    my $app = Mojolicious->new;
    $app->log->level('fatal');
    $app->routes->any('/*any' => {any => ''})->to(cb => sub { _request($ctx, shift) });
    return $app;
}

# Twilio's error JSON
sub _error {
    my ($ctx, $c, $conn, $n, $status, $code, $msg) = @_;
    my $body = { code => $code, message => $msg, status => $status,
                 more_info => "https://www.twilio.com/docs/errors/$code" };
    $c->res->headers->header('WWW-Authenticate' => 'Basic realm="Twilio API"') if $status == 401;
    _respond($ctx, $c, $conn, $n, $status, $body);
}

sub _respond {
    my ($ctx, $c, $conn, $n, $status, $body) = @_;
    $c->res->headers->header('Twilio-Request-Id' => 'RQ' . _hex32());
    $ctx->{log}->log(conn => $conn, n => $n, ev => 'http_response', status => $status, json => $body);
    $c->render(status => $status, json => $body);
}

sub _hex32 { join '', map { sprintf '%04x', int rand 65536 } 1 .. 8 }

sub _date { strftime('%a, %d %b %Y %H:%M:%S +0000', gmtime $_[0]) }

# (scheme, user, password) from the Authorization header
sub _basic {
    my ($h) = @_;
    return ('none') unless defined $h;
    my ($b64) = $h =~ /^Basic\s+(\S+)\s*$/i or return ('malformed');
    my ($user, $pass) = decode_base64($b64) =~ /^([^:]*):(.*)$/s or return ('malformed');
    return ('Basic', $user, $pass);
}

# Well-formedness of a TwiML document: one root element <Response>, tags
# closed and nested, attribute values quoted, only the XML entities.
# Returns an error string, or undef when it is fine.
sub twiml_error {
    my ($x) = @_;
    my $ent = qr/&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)/;
    my $name = qr/[A-Za-z_][\w.:-]*/;
    my (@open, $root);
    $x =~ /\G\x{FEFF}?\s*/gc;
    $x =~ /\G<\?xml\s[^?]*\?>/gc;
    while ((pos($x) // 0) < length $x) {
        next if $x =~ /\G<!--.*?-->/gcs || $x =~ /\G<\?$name[^?]*\?>/gc;
        if ($x =~ /\G<!\[CDATA\[.*?\]\]>/gcs) {
            return 'CDATA outside the root element' unless @open;
            next;
        }
        if ($x =~ /\G<\/($name)\s*>/gc) {
            return "unexpected </$1>" unless @open && $open[-1] eq $1;
            pop @open;
            next;
        }
        if ($x =~ /\G<($name)((?:\s+$name\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/gc) {
            my ($tag, $attrs, $empty) = ($1, $2, $3);
            return "bad entity or bare '&' in an attribute of <$tag>" if $attrs =~ $ent;
            my %seen;
            for my $a ($attrs =~ /($name)\s*=/g) {
                return "attribute $a repeated in <$tag>" if $seen{$a}++;
            }
            if (!@open) {
                return 'more than one root element' if defined $root;
                $root = $tag;
            }
            push @open, $tag unless $empty;
            next;
        }
        if ($x =~ /\G([^<]+)/gc) {
            my $t = $1;
            return 'text outside the root element' if !@open && $t =~ /\S/;
            return "bad entity or bare '&' in text" if $t =~ $ent;
            next;
        }
        return 'malformed markup at "' . substr($x, pos($x) // 0, 20) . '"';
    }
    return "<$open[-1]> is not closed" if @open;
    return 'no root element' unless defined $root;
    return "the root element is <$root>, not <Response>" if $root ne 'Response';
    return;
}

sub _resource {
    my ($ctx, $acct, $sid, $call) = @_;
    my $now = time;
    my $done = $call->{status} eq 'completed';
    my $uri = "$API/Accounts/$acct/Calls/$sid";
    return { sid => $sid, account_sid => $acct, parent_call_sid => undef,
             date_created => _date($call->{created}), date_updated => _date($call->{updated} // $now),
             start_time => _date($call->{created}), end_time => $done ? _date($call->{ended}) : undef,
             duration => $done ? '' . int($call->{ended} - $call->{created}) : undef,
             status => $call->{status}, direction => 'inbound', api_version => '2010-04-01',
             from => '+15005550006', from_formatted => '(500) 555-0006',
             to => '+15005550001', to_formatted => '(500) 555-0001',
             phone_number_sid => 'PN' . ('0' x 32), answered_by => undef, annotation => undef,
             caller_name => undef, forwarded_from => undef, group_sid => undef, trunk_sid => undef,
             price => undef, price_unit => 'USD', queue_time => '0',
             uri => "$uri.json",
             subresource_uris => { map { lc($_) => "$uri/$_.json" }
                                   qw(Notifications Recordings Payments Events Siprec Streams) } };
}

sub _request {
    my ($ctx, $c) = @_;
    my $log = $ctx->{log};
    my $cfg = $ctx->{cfg};
    my $conn = VoiceSim::Common::conn_id($ctx, $c);
    my $n = ++$ctx->{twilio_requests};
    my $req = $c->req;
    my $method = $req->method;
    my $path = $req->url->path->to_string;
    my ($acct, $sid) = $path =~ m{^\Q$API\E/Accounts/([^/]+)/Calls/([^/]+)\.json$};

    my ($scheme, $user, $pass) = _basic($req->headers->authorization);
    my $token = $cfg->get('twilio', 'auth_token', $ctx->{key});
    my $want_acct = $cfg->get('twilio', 'account_sid', $acct);
    my $auth_ok = $scheme eq 'Basic' && defined $acct && $user eq $acct
        && $user eq ($want_acct // '') && $pass eq $token;
    my $ct = $req->headers->content_type // '';
    my $raw = $req->body;
    my $form = $method eq 'POST' ? Mojo::Parameters->new($raw)->to_hash : {};
    my %f = map { $_ => $form->{$_} } grep { exists $form->{$_} } qw(Status Twiml Url);
    $log->log(conn => $conn, n => $n, ev => $method eq 'POST' ? 'update' : 'http_request',
              method => $method, path => $path, account_sid => $acct, call_sid => $sid,
              auth_scheme => $scheme, auth_user => $user, auth_ok => b($auth_ok),
              content_type => $ct, form => $form, %f,
              headers => VoiceSim::Common::headers_for_log($req->headers));

    # violations (the answer is decided below, after the delay)
    my $v = sub { $log->violation(conn => $conn, n => $n, rule => $_[0], detail => $_[1]) };
    my ($problem, $twiml_err);
    if (!defined $acct) {
        $v->('twilio_path', "$method $path is not $API/Accounts/{AccountSid}/Calls/{CallSid}.json");
    } else {
        $v->('twilio_sid_format', "account SID '$acct' is not AC + 32 hex digits")
            unless $acct =~ /^AC[0-9a-f]{32}$/;
        $v->('twilio_sid_format', "call SID '$sid' is not CA + 32 hex digits")
            unless $sid =~ /^CA[0-9a-f]{32}$/;
        if ($scheme ne 'Basic') {
            $v->('twilio_no_auth', "no HTTP Basic credentials (Authorization: $scheme)");
        } elsif ($user ne $acct) {
            $v->('twilio_account_mismatch', "Basic user '$user' is not the path's account $acct");
        }
    }
    if ($method eq 'POST' && defined $acct) {
        $v->('twilio_content_type', "Content-Type '$ct' is not application/x-www-form-urlencoded")
            unless $ct =~ m{^application/x-www-form-urlencoded\b}i;
        my @bad = grep { ref $form->{$_} } keys %$form;
        $v->('twilio_repeated_param', "repeated form fields: @bad") if @bad;
        if (!defined $f{Status} && !defined $f{Twiml} && !defined $f{Url}) {
            $problem = [20001, 'Either Status, Twiml or Url is required to update a call'];
            $v->('twilio_no_update', 'the body has neither Status nor Twiml nor Url');
        } elsif (defined $f{Twiml} && defined $f{Url}) {
            $problem = [20001, 'Twiml and Url are mutually exclusive'];
            $v->('twilio_twiml_and_url', 'both Twiml and Url were sent');
        } elsif (defined $f{Status} && !$STATUS{ $f{Status} }) {
            $problem = [20001, "Status must be one of 'canceled' or 'completed'"];
            $v->('twilio_status', "Status '$f{Status}' is not completed or canceled");
        } elsif (defined $f{Twiml} && ($twiml_err = twiml_error($f{Twiml}))) {
            $problem = [12100, "Document parse failure: $twiml_err"];
            $v->('twilio_twiml', $twiml_err);
        }
    } elsif (defined $acct && $method ne 'GET') {
        $v->('twilio_method', "$method is not POST or GET");
    }

    my $answer = sub {
        return _error($ctx, $c, $conn, $n, 404, 20404, "The requested resource $path was not found")
            unless defined $acct;
        my $fail = $cfg->get('twilio', 'fail_first', 0);
        my $f = $cfg->fault('twilio', $n, sub { $_[0]{status} });
        $log->log(conn => $conn, n => $n, ev => 'fault', %$f{grep { !/^_/ } keys %$f}) if $f;
        my $forced = $f ? $f->{status}
                   : $n <= $fail ? 500
                   : $cfg->get('twilio', 'status');
        if ($forced && $forced !~ /^2/) {
            return _error($ctx, $c, $conn, $n, $forced, $forced >= 500 ? 20500 : 20001,
                          $forced >= 500 ? 'Internal Server Error' : 'Simulated failure');
        }
        return _error($ctx, $c, $conn, $n, 401, 20003, 'Authenticate') unless $auth_ok;
        return _error($ctx, $c, $conn, $n, 404, 20404, "The requested resource $path was not found")
            if $acct !~ /^AC[0-9a-f]{32}$/ || $sid !~ /^CA[0-9a-f]{32}$/
            || grep { $_ eq $sid } @{ $cfg->get('twilio', 'unknown_calls', []) };
        return _error($ctx, $c, $conn, $n, 405, 20004, 'Method not allowed')
            unless $method eq 'POST' || $method eq 'GET';
        return _error($ctx, $c, $conn, $n, 400, @$problem) if $problem;

        my $now = time;
        my $call = $ctx->{calls}{$sid} //= { status => 'in-progress', created => $now, updates => 0 };
        if ($method eq 'POST') {
            if ($call->{status} eq 'completed' && !defined $f{Status}) {
                return _error($ctx, $c, $conn, $n, 400, 21220,
                              'Call is not in-progress. Cannot redirect.');
            }
            $call->{updates}++;
            $call->{updated} = $now;
            # canceled only affects queued/ringing calls, so not this one
            if (($f{Status} // '') eq 'completed' && $call->{status} ne 'completed') {
                $call->{status} = 'completed';
                $call->{ended} = $now;
            }
            $call->{twiml} = $f{Twiml} if defined $f{Twiml};
            $call->{url} = $f{Url} if defined $f{Url};
            $log->log(conn => $conn, n => $n, ev => 'call_state', call_sid => $sid,
                      status => $call->{status}, updates => $call->{updates});
        }
        _respond($ctx, $c, $conn, $n, $forced || 200, _resource($ctx, $acct, $sid, $call));
    };

    my $delay = $cfg->get('twilio', 'delay_ms', 0);
    return $answer->() unless $delay;
    $c->render_later;
    $c->inactivity_timeout(0);
    my $gone;
    $c->tx->on(finish => sub {
        $log->log(conn => $conn, n => $n, ev => 'client_disconnected') unless $c->res->code;
        $gone = 1;
    });
    Mojo::IOLoop->timer($delay / 1000 => sub { $answer->() unless $gone });
}

1;
