package VoiceSim::TestClient;

# A small synchronous WebSocket client for the simulator tests (runs the
# Mojo::IOLoop until a condition holds).
#
#   my $ws = VoiceSim::TestClient->connect($url, headers => {...},
#                                          subprotocols => [...], ca => $file);
#   $ws->ok or $ws->status (HTTP status of a refused upgrade), $ws->res
#   $ws->send_json({...}); $ws->send_text($s); $ws->send_binary($b)
#   $ws->wait(sub { my @msgs = @_; ... }, $timeout)  # true if cond held
#   $ws->wait_closed($timeout); $ws->close_code; $ws->close_reason
#   $ws->texts (decoded JSON of text frames), $ws->binaries

use strict;
use warnings;

use Mojo::IOLoop;
use Mojo::JSON qw(from_json);
use Mojo::UserAgent;
use Time::HiRes qw(time);

sub connect {
    my ($class, $url, %o) = @_;
    my $ua = Mojo::UserAgent->new(inactivity_timeout => 0, connect_timeout => 5);
    $ua->ca($o{ca}) if $o{ca};
    $ua->insecure(1) if $o{insecure};
    my $self = bless { ua => $ua, msgs => [] }, $class;
    my $done;
    my %hdr = ('Sec-WebSocket-Extensions' => 'x-none', %{ $o{headers} || {} });
    $ua->websocket($url => \%hdr => $o{subprotocols} || [] => sub {
        my (undef, $tx) = @_;
        $done = 1;
        $self->{res} = $tx->res;
        if (!$tx->is_websocket) {
            $self->{status} = $tx->res->code;
            $self->{error} = $tx->error;
            return;
        }
        $tx->max_websocket_size(16 * 1024 * 1024);
        $self->{tx} = $tx;
        $tx->on(text => sub {
            my ($t, $m) = @_;
            push @{ $self->{msgs} }, { type => 'text', data => $m, json => eval { Mojo::JSON::decode_json($m) },
                                       t => time };
        });
        $tx->on(binary => sub {
            my ($t, $m) = @_;
            push @{ $self->{msgs} }, { type => 'binary', data => $m, t => time };
        });
        $tx->on(finish => sub {
            my ($t, $code, $reason) = @_;
            $self->{closed} = [$code, $reason];
        });
    });
    my $deadline = time + 10;
    _run(sub { $done }, $deadline);
    return $self;
}

sub ok { !!$_[0]{tx} }
sub status { $_[0]{status} }
sub res { $_[0]{res} }
sub protocol { $_[0]{tx} && $_[0]{tx}->protocol }

sub send_text {
    my ($self, $s) = @_;
    return unless $self->{tx} && !$self->{closed};
    $self->{tx}->send($s);
    $self->pump;
}
sub send_json {
    my ($self, $j) = @_;
    return unless $self->{tx} && !$self->{closed};
    $self->{tx}->send({json => $j});
    $self->pump;
}
sub send_binary {
    my ($self, $b) = @_;
    return unless $self->{tx} && !$self->{closed};
    $self->{tx}->send({binary => $b});
    $self->pump;
}

# send audio in 20 ms frames
sub send_audio {
    my ($self, $audio, $frame) = @_;
    $frame ||= 160;
    for (my $o = 0; $o < length $audio; $o += $frame) {
        $self->{tx}->send({binary => substr($audio, $o, $frame)});
    }
    $self->pump;
}

# run the event loop until PRED holds or DEADLINE passes
sub _run {
    my ($pred, $deadline) = @_;
    my $id = Mojo::IOLoop->recurring(0.005 => sub { Mojo::IOLoop->stop if $pred->() || time > $deadline });
    Mojo::IOLoop->start while !$pred->() && time <= $deadline;
    Mojo::IOLoop->remove($id);
}

# let queued frames go out (runs the loop for 20 ms)
sub pump {
    my $until = time + 0.02;
    _run(sub { time >= $until }, $until + 1);
    return $_[0];
}

sub msgs  { @{ $_[0]{msgs} } }
sub texts { map { $_->{json} } grep { $_->{type} eq 'text' } @{ $_[0]{msgs} } }
sub binaries { map { $_->{data} } grep { $_->{type} eq 'binary' } @{ $_[0]{msgs} } }
sub of_type { my ($s, $t) = @_; grep { ref $_ eq 'HASH' && ($_->{type} // '') eq $t } $s->texts }

sub wait {
    my ($self, $cond, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    _run(sub { $cond->($self->msgs) || $self->{closed} }, $deadline);
    return $cond->($self->msgs);
}

sub sleep {
    my ($self, $s) = @_;
    my $until = time + $s;
    $self->wait(sub { time >= $until }, $s + 1);
}

sub wait_closed {
    my ($self, $timeout) = @_;
    return $self->wait(sub { $self->{closed} }, $timeout);
}

sub close_code { $_[0]{closed} && $_[0]{closed}[0] }
sub close_reason { $_[0]{closed} && $_[0]{closed}[1] }

sub finish {
    my ($self, @a) = @_;
    return unless $self->{tx} && !$self->{closed};
    $self->{tx}->finish(@a);
    $self->wait_closed(3);
}

1;
