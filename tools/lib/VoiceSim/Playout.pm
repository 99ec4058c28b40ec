package VoiceSim::Playout;

# Twilio's outbound play-out buffer, clocked by whoever calls it (the
# caller's real-time ticks, or a fake clock in tests).  Times are ms
# since the stream started; positions are 8 kHz samples (= mu-law bytes).
#
#   media($now, $bytes, \%meta)  queue audio (played in arrival order)
#   mark($now, $name)            queue a mark; echoed when play-out
#                                reaches it, at once if nothing is queued
#   clear($now)                  drop the queued audio, echo every pending
#                                mark at once; returns the bytes dropped
#   advance($now)                play up to $now
#
# Callbacks: on_audio->($pos, $bytes, $meta) for every piece played,
# on_mark->($name, $t_ms, $outcome) with outcome 'played' (reached by
# play-out), 'immediate' (nothing was queued) or 'cleared'.

use strict;
use warnings;

sub new {
    my ($class, %o) = @_;
    return bless {
        rate     => $o{rate} || 8000,
        on_audio => $o{on_audio} || sub {},
        on_mark  => $o{on_mark} || sub {},
        queue    => [],          # [audio => $bytes, $off, $meta] | [mark => $name]
        pos      => 0,           # play-out cursor, samples since t0
        queued   => 0,           # audio bytes not yet played
        played   => 0,
        dropped  => 0,
    }, $class;
}

sub pos      { $_[0]{pos} }
sub queued   { $_[0]{queued} }           # bytes still to play
sub played   { $_[0]{played} }
sub dropped  { $_[0]{dropped} }
sub pending_marks { scalar grep { $_->[0] eq 'mark' } @{ $_[0]{queue} } }
sub busy     { $_[0]{queued} > 0 }       # audio still queued

# the metas of audio still queued (to ask e.g. "is speech still queued?")
sub queued_meta { map { $_->[3] } grep { $_->[0] eq 'audio' } @{ $_[0]{queue} } }

sub _target { int($_[1] * $_[0]{rate} / 1000 + 1e-6) }

sub advance {
    my ($self, $now) = @_;
    my $target = $self->_target($now);
    my $q = $self->{queue};
    while (@$q) {
        my $h = $q->[0];
        if ($h->[0] eq 'mark') {
            shift @$q;
            $self->{on_mark}->($h->[1], $self->{pos} * 1000 / $self->{rate}, 'played');
            next;
        }
        last if $self->{pos} >= $target;
        my $left = length($h->[1]) - $h->[2];
        my $n = $target - $self->{pos};
        $n = $left if $left < $n;
        $self->{on_audio}->($self->{pos}, substr($h->[1], $h->[2], $n), $h->[3]);
        $self->{pos} += $n;
        $self->{queued} -= $n;
        $self->{played} += $n;
        $h->[2] += $n;
        shift @$q if $h->[2] >= length $h->[1];
    }
    $self->{pos} = $target if !@$q && $self->{pos} < $target;
    return;
}

sub media {
    my ($self, $now, $bytes, $meta) = @_;
    $self->advance($now);
    return unless length $bytes;
    push @{ $self->{queue} }, ['audio', $bytes, 0, $meta || {}];
    $self->{queued} += length $bytes;
    return;
}

sub mark {
    my ($self, $now, $name) = @_;
    $self->advance($now);
    if (!@{ $self->{queue} }) {
        $self->{on_mark}->($name, $now, 'immediate');
        return;
    }
    push @{ $self->{queue} }, ['mark', $name];
    return;
}

sub clear {
    my ($self, $now) = @_;
    $self->advance($now);
    my $dropped = $self->{queued};
    my @marks = map { $_->[1] } grep { $_->[0] eq 'mark' } @{ $self->{queue} };
    $self->{queue} = [];
    $self->{queued} = 0;
    $self->{dropped} += $dropped;
    $self->{on_mark}->($_, $now, 'cleared') for @marks;
    return $dropped;
}

1;
