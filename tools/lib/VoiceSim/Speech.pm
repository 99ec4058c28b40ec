package VoiceSim::Speech;

# Caller speech for the scripted Twilio caller: espeak-ng synthesis,
# converted by sox to what Twilio sends (G.711 mu-law, 8000 Hz, mono,
# no header), cached on disk under a hash of (text, voice, rate), plus
# the mu-law helpers the caller and its tests share.
#
#   my $sp = VoiceSim::Speech->new(voice => 'en-us+f3', cache => $dir);
#   my $ulaw = $sp->ulaw("Hello there.");   # raw bytes, trimmed,
#                                           # padded to 20 ms frames

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA qw(sha1_hex);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempfile);

our $FRAME = 160;                 # 20 ms of 8 kHz mu-law
our $SILENCE = "\xFF";            # mu-law zero

# ---- mu-law <-> 16-bit linear (G.711) ----

my @DECODE = map {
    my $u = ~$_ & 0xFF;
    my $t = ((($u & 0x0F) << 3) + 0x84) << (($u & 0x70) >> 4);
    ($u & 0x80) ? 0x84 - $t : $t - 0x84;
} 0 .. 255;

sub ulaw_to_linear { @DECODE[unpack 'C*', $_[0]] }

sub ulaw_to_pcm16le { pack 's<*', @DECODE[unpack 'C*', $_[0]] }

sub linear_to_ulaw {
    my $out = '';
    for my $s (@_) {
        my $sign = 0;
        my $v = int $s;
        if ($v < 0) { $v = -$v; $sign = 0x80 }
        $v = 32635 if $v > 32635;
        $v += 0x84;
        my $exp = 7;
        for (my $m = 0x4000; ($v & $m) == 0 && $exp > 0; $m >>= 1) { $exp-- }
        my $mant = ($v >> ($exp + 3)) & 0x0F;
        $out .= chr(~($sign | ($exp << 4) | $mant) & 0xFF);
    }
    return $out;
}

# mean absolute amplitude (16-bit scale) of mu-law bytes
sub level {
    my $n = length $_[0] or return 0;
    my $sum = 0;
    $sum += abs $_ for @DECODE[unpack 'C*', $_[0]];
    return $sum / $n;
}

# a 20 ms frame counts as speech above this mean level (about -50 dBFS)
our $VOICED = 100;

sub voiced { level($_[0]) >= $VOICED }

# a test tone: $ms of $hz at $amp (linear), as mu-law
sub tone {
    my (undef, $ms, $hz, $amp) = @_;
    $hz //= 440;
    $amp //= 8000;
    my $n = int($ms * 8);
    return linear_to_ulaw(map { $amp * sin(2 * 3.14159265358979 * $hz * $_ / 8000) } 0 .. $n - 1);
}

# ---- synthesis ----

sub new {
    my ($class, %o) = @_;
    my $cache = $o{cache} || $ENV{VOICE_SIM_CACHE}
        || File::Spec->catdir($ENV{XDG_CACHE_HOME} || (($ENV{HOME} || '/tmp') . '/.cache'),
                              'voice-sim', 'speech');
    return bless {
        voice => $o{voice} || 'en-us+f3',
        rate  => $o{rate} || 160,       # espeak-ng words per minute
        cache => $cache,
    }, $class;
}

sub cache_path {
    my ($self, $text) = @_;
    my $key = sha1_hex(join "\0", 'v1', $self->{voice}, $self->{rate}, $text);
    return File::Spec->catfile($self->{cache}, "$key.ulaw");
}

# the line as mu-law: leading/trailing quiet trimmed, padded with mu-law
# silence to whole 20 ms frames
sub ulaw {
    my ($self, $text) = @_;
    my $path = $self->cache_path($text);
    if (open my $fh, '<:raw', $path) {
        local $/;
        my $data = <$fh>;
        return $data if length $data;
    }
    make_path($self->{cache});
    my (undef, $wav) = tempfile('voice-sim-XXXXXX', SUFFIX => '.wav', TMPDIR => 1, UNLINK => 1);
    my (undef, $raw) = tempfile('voice-sim-XXXXXX', SUFFIX => '.ul', TMPDIR => 1, UNLINK => 1);
    system('espeak-ng', '-v', $self->{voice}, '-s', $self->{rate}, '-w', $wav, '--', $text) == 0
        or croak "espeak-ng failed ($?) for \"$text\"";
    system('sox', '-D', '-q', $wav, '-t', 'raw', '-r', '8000', '-c', '1',
           '-e', 'mu-law', '-b', '8', $raw) == 0
        or croak "sox failed ($?)";
    open my $in, '<:raw', $raw or croak "$raw: $!";
    my $data = do { local $/; <$in> };
    close $in;
    unlink $wav, $raw;

    $data .= $SILENCE x (($FRAME - length($data) % $FRAME) % $FRAME);
    my @f = unpack "(a$FRAME)*", $data;
    shift @f while @f && !voiced($f[0]);
    pop @f while @f && !voiced($f[-1]);
    croak "speech for \"$text\" is silent" unless @f;
    $data = join '', @f;

    my $tmp = "$path.$$";
    open my $out, '>:raw', $tmp or croak "$tmp: $!";
    print $out $data;
    close $out or croak "$tmp: $!";
    rename $tmp, $path or croak "rename $tmp: $!";
    return $data;
}

1;
