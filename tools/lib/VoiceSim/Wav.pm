package VoiceSim::Wav;

# Writes a stereo 8 kHz 16-bit PCM WAV from two mu-law tracks (left,
# right); the shorter one is padded with silence.  read() returns the
# two channels as arrays of samples, for tests.

use strict;
use warnings;

use Carp qw(croak);
use VoiceSim::Speech;

sub write_stereo {
    my ($class, $path, $left, $right, $rate) = @_;
    $rate ||= 8000;
    my $n = length $left > length $right ? length $left : length $right;
    $left  .= "\xFF" x ($n - length $left);
    $right .= "\xFF" x ($n - length $right);
    my @l = VoiceSim::Speech::ulaw_to_linear($left);
    my @r = VoiceSim::Speech::ulaw_to_linear($right);
    my $data = pack 's<*', map { ($l[$_], $r[$_]) } 0 .. $n - 1;
    open my $fh, '>:raw', $path or croak "$path: $!";
    print $fh 'RIFF', pack('V', 36 + length $data), 'WAVE',
        'fmt ', pack('VvvVVvv', 16, 1, 2, $rate, $rate * 4, 4, 16),
        'data', pack('V', length $data), $data;
    close $fh or croak "$path: $!";
    return $path;
}

# ($rate, \@left, \@right)
sub read_stereo {
    my ($class, $path) = @_;
    open my $fh, '<:raw', $path or croak "$path: $!";
    my $buf = do { local $/; <$fh> };
    croak "$path: not a WAV" unless substr($buf, 0, 4) eq 'RIFF' && substr($buf, 8, 4) eq 'WAVE';
    my ($pos, $rate, $ch, $data) = (12);
    while ($pos + 8 <= length $buf) {
        my ($id, $len) = unpack 'a4 V', substr($buf, $pos, 8);
        my $body = substr($buf, $pos + 8, $len);
        if ($id eq 'fmt ') { (undef, $ch, $rate) = unpack 'vvV', $body }
        elsif ($id eq 'data') { $data = $body }
        $pos += 8 + $len + ($len & 1);
    }
    croak "$path: not stereo" unless ($ch // 0) == 2 && defined $data;
    my @s = unpack 's<*', $data;
    my (@l, @r);
    for (my $i = 0; $i < @s; $i += 2) { push @l, $s[$i]; push @r, $s[$i + 1] }
    return ($rate, \@l, \@r);
}

1;
