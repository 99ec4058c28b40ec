package VoiceTest::DNS;

# A tiny authoritative DNS server for tests: UDP on 127.0.0.1, a port of
# its own, packets built by hand (no Net::DNS needed).
#
#   my $dns = VoiceTest::DNS->start(
#       zone => { 'stt.test'   => ['127.0.0.1'],
#                 'multi.test' => ['127.0.0.2', '127.0.0.1'],
#                 'slow.test'  => { addrs => ['127.0.0.1'], delay => 2000 },
#                 'dead.test'  => { drop => 1 } },
#       ttl => 30, log => "$dir/dns.log");
#   $dns->port; $dns->queries; $dns->queries('stt.test'); $dns->stop;
#
# A queries for a name in the zone get its addresses (after `delay` ms,
# or never with `drop`); other types for a known name (AAAA...) get an
# empty NOERROR answer; unknown names get NXDOMAIN.  Every query is
# logged as "ms<TAB>name<TAB>type" (ms since the epoch, the name in lower
# case), and every reply
# sent as "ms<TAB>name<TAB>type<TAB>reply<TAB>rcode/count".

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my %TYPES = (1 => 'A', 28 => 'AAAA', 5 => 'CNAME', 6 => 'SOA', 33 => 'SRV',
             12 => 'PTR', 16 => 'TXT', 15 => 'MX', 2 => 'NS', 255 => 'ANY');

sub start {
    my ($class, %o) = @_;
    my $self = bless { zone => {}, ttl => 30, %o }, $class;
    die "VoiceTest::DNS needs log => file\n" unless $self->{log};

    # lower-cased names, every entry as { addrs, delay, drop }
    my %zone;
    while (my ($name, $v) = each %{ $self->{zone} }) {
        $zone{lc $name} = ref $v eq 'ARRAY' ? { addrs => $v } : { %$v };
        $zone{lc $name}{addrs} ||= [];
    }
    $self->{zone} = \%zone;

    # bound before the fork: the port is known, and nothing races
    my $sock = IO::Socket::INET->new(Proto => 'udp', LocalAddr => '127.0.0.1',
                                     LocalPort => 0)
        or die "DNS socket: $!";
    $self->{port} = $sock->sockport;

    open my $fh, '>', $self->{log} or die "$self->{log}: $!";
    close $fh;

    my $parent = $$;
    my $pid = fork;
    die "fork: $!" unless defined $pid;

    if ($pid == 0) {
        no warnings 'once';
        $Test::Nginx::Util::InSubprocess = 1;
        my $rc = eval { $self->_serve($sock, $parent); 0 } // do {
            warn "VoiceTest::DNS: $@";
            1;
        };
        POSIX::_exit($rc);
    }

    close $sock;
    $self->{pid} = $pid;
    $self->{owner} = $$;
    return $self;
}

sub port { $_[0]{port} }
sub log_file { $_[0]{log} }

# queries seen so far: ({ ms, name, type }, ...), optionally of one name
sub queries {
    my ($self, $name) = @_;
    return grep { !defined $name || $_->{name} eq lc $name }
           grep { !$_->{reply} } $self->_records;
}

# replies sent so far: ({ ms, name, type, reply => 'NOERROR/2' }, ...)
sub replies {
    my ($self, $name) = @_;
    return grep { !defined $name || $_->{name} eq lc $name }
           grep { $_->{reply} } $self->_records;
}

sub _records {
    my $self = shift;
    open my $fh, '<', $self->{log} or return;
    my @r;
    while (my $l = <$fh>) {
        next unless $l =~ /\n\z/;
        chomp $l;
        my ($ms, $name, $type, $what, $reply) = split /\t/, $l;
        push @r, { ms => $ms, name => $name, type => $type,
                   ($what ? (reply => $reply) : ()) };
    }
    return @r;
}

# a client for checks: lookup(port, name, 'A'|'AAAA', timeout) returns
# (rcode, address...) or () on timeout
sub lookup {
    my ($port, $name, $type, $timeout) = @_;
    my %num = reverse %TYPES;
    my $s = IO::Socket::INET->new(Proto => 'udp', PeerAddr => '127.0.0.1',
                                  PeerPort => $port) or die "lookup: $!";
    my $id = int rand 65536;
    $s->send(pack('n n n n n n', $id, 0x0100, 1, 0, 0, 0)
             . join('', map { chr(length) . $_ } split /\./, $name)
             . "\0" . pack('n n', $num{ $type || 'A' }, 1));
    return unless IO::Select->new($s)->can_read($timeout || 1);
    $s->recv(my $buf, 4096);
    my ($rid, $flags, $qd, $an) = unpack 'n n n n', $buf;
    return if $rid != $id;
    my $q = _parse(pack('n n', 0, 0) . substr($buf, 4)) or return;
    my $pos = 12 + length $q->{question};
    my @addrs;
    for (1 .. $an) {
        my ($ptr, $t, $c, $ttl, $len) = unpack 'n n n N n', substr $buf, $pos, 12;
        push @addrs, join '.', unpack 'C4', substr $buf, $pos + 12, 4 if $t == 1;
        $pos += 12 + $len;
    }
    return ($flags & 0xf, @addrs);
}

sub stop {
    my $self = shift;
    my $pid = delete $self->{pid} or return;
    return unless $self->{owner} == $$;
    kill 'TERM', $pid;
    my $deadline = time + 5;
    while (waitpid($pid, WNOHANG) != $pid) {
        if (time > $deadline) { kill 'KILL', $pid; waitpid($pid, 0); last }
        sleep 0.02;
    }
    return 1;
}

sub DESTROY {
    local ($?, $@);
    $_[0]->stop if $_[0]{pid} && !$Test::Nginx::Util::InSubprocess;
}

# ---- the child ------------------------------------------------------------

sub _serve {
    my ($self, $sock, $parent) = @_;
    my $stop = 0;
    local $SIG{TERM} = local $SIG{INT} = sub { $stop = 1 };

    open my $log, '>>', $self->{log} or die "$self->{log}: $!";
    $log->autoflush(1);

    my $sel = IO::Select->new($sock);
    my @pending;    # [ due, peer, packet, name, type ]

    while (!$stop) {
        my $now = time;
        my $wait = 0.2;
        for my $p (@pending) {
            my $d = $p->[0] - $now;
            $wait = $d if $d < $wait;
        }
        $wait = 0 if $wait < 0;

        if ($sel->can_read($wait)) {
            my $peer = $sock->recv(my $buf, 4096);
            if (defined $peer) {
                my $q = _parse($buf);
                if ($q) {
                    printf $log "%d\t%s\t%s\n", time * 1000, lc $q->{name},
                        $TYPES{ $q->{type} } // $q->{type};
                    my $e = $self->{zone}{ lc $q->{name} };
                    unless ($e && $e->{drop}) {
                        my ($pkt, $what) = $self->_answer($q, $e);
                        push @pending, [ time + ($e && $e->{delay} || 0) / 1000,
                                         $peer, $pkt, $q, $what ];
                    }
                }
            }
        }

        $now = time;
        my @later;
        for my $p (@pending) {
            if ($p->[0] > $now) { push @later, $p; next }
            $sock->send($p->[2], 0, $p->[1]);
            printf $log "%d\t%s\t%s\treply\t%s\n", time * 1000,
                lc $p->[3]{name}, $TYPES{ $p->[3]{type} } // $p->[3]{type}, $p->[4];
        }
        @pending = @later;

        last unless kill 0, $parent;
    }

    close $log;
}

# header + first question, or undef for anything that is not a query
sub _parse {
    my $buf = shift;
    return if length $buf < 12;
    my ($id, $flags, $qd) = unpack 'n n n', $buf;
    return if $flags & 0x8000 or $qd < 1;

    my ($pos, @labels) = (12);
    while (1) {
        return if $pos >= length $buf;
        my $len = ord substr $buf, $pos, 1;
        $pos++;
        last if $len == 0;
        return if $len > 63 or $pos + $len > length $buf;
        push @labels, substr $buf, $pos, $len;
        $pos += $len;
    }
    return if $pos + 4 > length $buf;
    my ($type, $class) = unpack 'n n', substr $buf, $pos, 4;

    return { id => $id, rd => $flags & 0x0100, name => join('.', @labels),
             type => $type, class => $class,
             question => substr($buf, 12, $pos + 4 - 12) };
}

sub _answer {
    my ($self, $q, $e) = @_;
    my $rcode = $e ? 0 : 3;                        # NOERROR : NXDOMAIN
    my @an = ($e && $q->{type} == 1 && $q->{class} == 1)
           ? @{ $e->{addrs} } : ();

    my $pkt = pack('n n n n n n', $q->{id}, 0x8400 | $q->{rd} | $rcode,
                   1, scalar @an, 0, 0) . $q->{question};

    for my $a (@an) {
        # the name as a pointer to the question, A, IN, TTL, 4 bytes
        $pkt .= pack('n n n N n', 0xc00c, 1, 1, $self->{ttl}, 4)
              . pack('C4', split /\./, $a);
    }

    return ($pkt, ($rcode ? 'NXDOMAIN' : 'NOERROR') . '/' . scalar @an);
}

1;
