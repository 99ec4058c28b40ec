package VoiceSim::Common;

# Shared pieces of the provider simulators (see docs/simulators.md):
# the per-simulator JSONL log, config/fault lookup, TLS certificate
# generation, speech synthesis (espeak-ng + sox) and G.711 mu-law
# helpers, and an ordered delayed sender.

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA qw(sha1_hex);
use File::Path qw(make_path);
use Mojo::IOLoop;
use Mojo::JSON qw(encode_json decode_json);
use Time::HiRes qw(time);

our @EXPORT_OK = qw(now_ms ulaw_decode rms_ulaw request_id b);
use Exporter 'import';

sub now_ms { int(time() * 1000) }

sub b { $_[0] ? Mojo::JSON::true : Mojo::JSON::false }

sub request_id {
    my $h = join '', map { sprintf '%04x', int rand 65536 } 1 .. 8;
    substr($h, 12, 1) = '4';
    return join '-', substr($h, 0, 8), substr($h, 8, 4), substr($h, 12, 4),
        substr($h, 16, 4), substr($h, 20, 12);
}

# ---- G.711 mu-law --------------------------------------------------------

my @ULAW;
for my $u (0 .. 255) {
    my $x = ~$u & 0xff;
    my $t = (($x & 0x0f) << 3) + 0x84;
    $t <<= ($x & 0x70) >> 4;
    $ULAW[$u] = ($x & 0x80) ? (0x84 - $t) : ($t - 0x84);
}

sub ulaw_decode { [ map { $ULAW[$_] } unpack 'C*', $_[0] ] }

# root mean square of a mu-law block, in 16-bit linear units
sub rms_ulaw {
    my ($bytes) = @_;
    my $n = length $bytes or return 0;
    my $s = 0;
    $s += $ULAW[$_] ** 2 for unpack 'C*', $bytes;
    return sqrt($s / $n);
}

# ---- JSONL log -----------------------------------------------------------

package VoiceSim::Common::Log;

use Mojo::JSON qw(encode_json);
use Time::HiRes qw(time);

sub new {
    my ($class, %a) = @_;
    open my $fh, '>>', $a{file} or die "cannot open $a{file}: $!";
    binmode $fh;
    my $old = select $fh; $| = 1; select $old;
    return bless { %a, fh => $fh, t0 => time() }, $class;
}

# log(conn => N, ev => 'recv'|'send'|'violation'|..., more fields)
sub log {
    my ($self, %r) = @_;
    my $t = time();
    my $line = encode_json({ t => 0 + sprintf('%.3f', $t * 1000),
                             rel_ms => 0 + sprintf('%.1f', ($t - $self->{t0}) * 1000),
                             sim => $self->{sim}, %r });
    print { $self->{fh} } $line, "\n";
    return \%r;
}

sub violation {
    my ($self, %r) = @_;
    $self->log(ev => 'violation', %r);
}

package VoiceSim::Common::Config;

# $cfg->get('llm', 'ttft_ms', 150): the simulator's section of the JSON
# config (or CLI overrides merged into it), else the default.

sub new {
    my ($class, $data) = @_;
    return bless { data => $data || {} }, $class;
}

sub section { $_[0]{data}{$_[1]} || {} }

sub get {
    my ($self, $sim, $key, $def) = @_;
    my $s = $self->{data}{$sim};
    return $s && exists $s->{$key} && defined $s->{$key} ? $s->{$key} : $def;
}

# The fault (if any) that applies to the Nth request / connection of a
# simulator.  Faults come from $cfg->{SIM}{fault} (one hash) or
# {faults} (a list).  Keys: on_request => N (only the Nth; a list of Ns
# is allowed), from_request => N, once => 1 (fire once per run), plus
# whatever the simulator interprets (status, kind, ...).
sub fault {
    my ($self, $sim, $n, $filter) = @_;
    my $s = $self->{data}{$sim} or return;
    my @f = ($s->{fault} ? ($s->{fault}) : (), @{ $s->{faults} || [] });
    for my $f (@f) {
        next if $f->{_fired} && $f->{once};
        if (defined $f->{on_request}) {
            my @ns = ref $f->{on_request} ? @{ $f->{on_request} } : ($f->{on_request});
            next unless grep { $_ == $n } @ns;
        }
        next if defined $f->{from_request} && $n < $f->{from_request};
        next if $filter && !$filter->($f);
        $f->{_fired}++;
        return $f;
    }
    return;
}

# ---- ordered delayed sender ------------------------------------------------

package VoiceSim::Common::Queue;

# Sends callbacks in FIFO order, each no earlier than its due time
# (Mojo's timers do not keep the order of equal deadlines).

use Time::HiRes qw(time);

sub new { bless { q => [], timer => undef }, shift }

# push(DELAY_MS, CB, TAG): due DELAY_MS from now (but never before
# earlier entries)
sub push {
    my ($self, $delay_ms, $cb, $tag, $rel) = @_;
    my $q = $self->{q};
    my $base = time();
    $base = $self->{last_due} if $rel && $self->{last_due} && $self->{last_due} > $base;
    my $due = $base + ($delay_ms || 0) / 1000;
    $self->{last_due} = $due;
    $due = $q->[-1][0] if @$q && $q->[-1][0] > $due;
    push @$q, [$due, $cb, $tag];
    $self->{last_due} = $due;
    $self->_arm;
}

# then(DELAY_MS, CB, TAG): due DELAY_MS after the previous entry
sub then { $_[0]->push($_[1], $_[2], $_[3], 1) }

sub _arm {
    my $self = shift;
    return if $self->{timer} || !@{ $self->{q} };
    my $wait = $self->{q}[0][0] - time();
    $wait = 0 if $wait < 0;
    $self->{timer} = Mojo::IOLoop->timer($wait => sub {
        $self->{timer} = undef;
        my $now = time() + 0.0005;
        while (@{ $self->{q} } && $self->{q}[0][0] <= $now) {
            my $e = shift @{ $self->{q} };
            $e->[1]->();
            last if $self->{stopped};
        }
        $self->_arm unless $self->{stopped};
    });
}

# drop queued entries (all, or those whose tag matches)
sub drop {
    my ($self, $match) = @_;
    my $before = @{ $self->{q} };
    $self->{q} = $match ? [ grep { !$match->($_->[2]) } @{ $self->{q} } ] : [];
    return $before - @{ $self->{q} };
}

sub pending { scalar @{ $_[0]{q} } }

sub stop {
    my $self = shift;
    $self->{stopped} = 1;
    $self->{q} = [];
    Mojo::IOLoop->remove($self->{timer}) if $self->{timer};
    $self->{timer} = undef;
}

package VoiceSim::Common;

# ---- TLS -------------------------------------------------------------------

our @DEFAULT_NAMES = qw(localhost api.deepgram.com api.cerebras.ai
                        api.elevenlabs.io api.openai.com api.twilio.com);

sub _run {
    my @cmd = @_;
    my $out = qx{@{[ join ' ', map { "'$_'" } @cmd ]} 2>&1};
    croak "@cmd failed: $out" if $?;
    return $out;
}

# Creates DIR/tls/{ca.pem,ca.key,server.pem,server.key} (a fresh CA and a
# server certificate for localhost, 127.0.0.1 and the provider names).
sub gen_certs {
    my ($dir, @extra) = @_;
    my $t = "$dir/tls";
    make_path($t);
    my @names = (@DEFAULT_NAMES, @extra);
    my @ec = ('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes');
    _run('openssl', 'req', '-x509', @ec, '-keyout', "$t/ca.key", '-out', "$t/ca.pem",
         '-days', '3', '-subj', '/CN=VoiceSim Test CA',
         '-addext', 'basicConstraints=critical,CA:TRUE',
         '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    _run('openssl', 'req', '-new', @ec, '-keyout', "$t/server.key",
         '-out', "$t/server.csr", '-subj', '/CN=localhost');
    open my $fh, '>', "$t/ext.cnf" or die $!;
    print $fh "basicConstraints=CA:FALSE\n",
        "keyUsage=critical,digitalSignature,keyEncipherment\n",
        "extendedKeyUsage=serverAuth\n",
        "subjectAltName=", join(',', 'IP:127.0.0.1', map { "DNS:$_" } @names), "\n";
    close $fh;
    _run('openssl', 'x509', '-req', '-in', "$t/server.csr", '-CA', "$t/ca.pem",
         '-CAkey', "$t/ca.key", '-CAcreateserial', '-out', "$t/server.pem",
         '-days', '2', '-extfile', "$t/ext.cnf");
    chmod 0600, "$t/ca.key", "$t/server.key";
    return { ca => "$t/ca.pem", cert => "$t/server.pem", key => "$t/server.key",
             names => [ '127.0.0.1', @names ] };
}

# ---- speech --------------------------------------------------------------

# synth($dir, $text, voice => 'en-us+m3', encoding => 'mulaw'|'alaw'|
# 'linear16', rate => 8000, speed => 175): raw headerless audio bytes of
# real speech (espeak-ng, resampled by sox).  Cached under DIR/audio.
sub synth {
    my ($dir, $text, %o) = @_;
    my $voice = $o{voice} || 'en-us+m3';
    my $enc = $o{encoding} || 'mulaw';
    my $rate = $o{rate} || 8000;
    my $speed = $o{speed} || 175;
    my $cache = "$dir/audio";
    make_path($cache);
    my $key = sha1_hex(join "\0", $voice, $enc, $rate, $speed, $text);
    my $raw = "$cache/$key.raw";
    unless (-s $raw) {
        my $wav = "$cache/$key.wav";
        my $t = $text;
        $t =~ s/^\s+|\s+$//g;
        $t = '.' unless length $t;
        # text goes in a file, never through a shell
        open my $fh, '>:encoding(UTF-8)', "$cache/$key.txt" or die $!;
        print $fh $t;
        close $fh;
        system('espeak-ng', '-v', $voice, '-s', $speed, '-w', $wav, '-f', "$cache/$key.txt") == 0
            or die "espeak-ng failed\n";
        my @fmt = $enc eq 'mulaw' ? ('-e', 'u-law', '-b', 8)
                : $enc eq 'alaw'  ? ('-e', 'a-law', '-b', 8)
                :                   ('-e', 'signed-integer', '-b', 16, '-L');
        system('sox', '-V1', $wav, '-r', $rate, '-c', 1, @fmt, '-t', 'raw', "$raw.tmp") == 0
            or die "sox failed\n";
        rename "$raw.tmp", $raw;
        unlink $wav, "$cache/$key.txt";
    }
    open my $fh, '<:raw', $raw or die "$raw: $!";
    local $/;
    return scalar <$fh>;
}


# ---- per-connection bookkeeping ---------------------------------------------

# conn_id($ctx, $c): a small sequential number for the TCP connection
# under a Mojolicious controller.  The first time a connection is seen a
# `connection` record is logged (peer, and for TLS the SNI name, protocol
# version and cipher), and its end is logged as `connection_closed` with
# the number of requests it carried.
sub conn_id {
    my ($ctx, $c) = @_;
    my $mid = $c->tx->connection // return 0;
    my $seen = $ctx->{conns} ||= {};
    if (my $e = $seen->{$mid}) { $e->{requests}++; return $e->{id} }
    my $id = ++$ctx->{conn_seq};
    my $e = $seen->{$mid} = { id => $id, requests => 1 };
    my %r = (conn => $id, ev => 'connection', peer => $c->tx->remote_address
             . ':' . $c->tx->remote_port, tls => b(0));
    my $stream = Mojo::IOLoop->stream($mid);
    if ($stream && (my $h = $stream->handle)) {
        if ($h->isa('IO::Socket::SSL')) {
            $r{tls} = b(1);
            $r{sni} = $h->get_servername;
            $r{tls_version} = $h->get_sslversion;
            $r{cipher} = $h->get_cipher;
        }
    }
    $ctx->{log}->log(%r);
    if ($stream) {
        $stream->on(close => sub {
            $ctx->{log}->log(conn => $id, ev => 'connection_closed',
                             requests => $e->{requests});
            delete $seen->{$mid};
        });
    }
    return $id;
}

# headers as a hash, with credentials shortened
sub headers_for_log {
    my ($h) = @_;
    my %o;
    for my $n (@{ $h->names }) {
        my $v = $h->header($n);
        $v = _mask($v) if $n =~ /^(authorization|xi-api-key|sec-websocket-protocol)$/i;
        $o{lc $n} = $v;
    }
    return \%o;
}

sub _mask {
    my $v = shift;
    $v =~ s/(\b(?:Token|Bearer|Basic|token|bearer|basic)[ ,]+|^)(\S{0,4})\S*/$1$2***/;
    return $v;
}

sub query_for_log { $_[0]->req->url->query->to_hash }

1;
