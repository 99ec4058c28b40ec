package VoiceSim::Script;

# The call script shared by the scripted Twilio caller and the provider
# simulators: what the caller says (the STT simulator transcribes the
# Nth speech segment as the Nth spoken line), what the LLM simulator
# answers (the Nth reply line for the Nth request), and how the caller
# behaves.  One action per line; a line starting with '#' is a comment
# ('#' elsewhere is text or a DTMF digit).
#
#   say: Hi, I'd like a table for two.     speak (espeak-ng, caller voice)
#   wait: bot                              until the bot's audio has been
#                                          played out and 700 ms of quiet
#   wait: 1500                             milliseconds of silence
#   barge: 800 | No, make it eight.        speak 800 ms after the bot's
#                                          audio starts (barge-in)
#   backchannel: 600 | uh-huh              like barge, but a backchannel
#                                          that must not interrupt
#   dtmf: 12#                              DTMF digits, 100 ms apart
#   reply: Sure, for what time?            the LLM simulator's Nth answer
#   hangup                                 stop, then close
#
# Lines are returned as hashes: { op => 'say', text => ..., line => N },
# { op => 'wait', bot => 1 } or { op => 'wait', ms => 1500 },
# { op => 'barge', after_ms => 800, text => ..., backchannel => 0|1 },
# { op => 'dtmf', digits => '12#' }, { op => 'reply', text => ... },
# { op => 'hangup' }.

use strict;
use warnings;

use Carp qw(croak);

sub parse_file {
    my ($class, $path) = @_;
    open my $fh, '<:encoding(UTF-8)', $path or croak "cannot open $path: $!";
    local $/;
    return $class->parse(scalar <$fh>, $path);
}

sub parse {
    my ($class, $text, $name) = @_;
    $name //= 'script';
    my @actions;
    my $n = 0;
    for my $raw (split /\n/, $text) {
        $n++;
        (my $l = $raw) =~ s/^\s*#.*$//;
        $l =~ s/^\s+|\s+$//g;
        next unless length $l;
        my ($op, $arg) = $l =~ /^([a-z]+)\s*(?::\s*(.*))?$/
            or croak "$name:$n: cannot parse \"$raw\"";
        $arg //= '';
        my %a = (op => $op, line => $n);
        if ($op eq 'say' || $op eq 'reply') {
            croak "$name:$n: $op needs text" unless length $arg;
            $a{text} = $arg;
        } elsif ($op eq 'wait') {
            if ($arg eq 'bot') { $a{bot} = 1 }
            elsif ($arg =~ /^(\d+)$/) { $a{ms} = $1 }
            else { croak "$name:$n: wait takes \"bot\" or milliseconds" }
        } elsif ($op eq 'barge' || $op eq 'backchannel') {
            my ($ms, $t) = $arg =~ /^(\d+)\s*\|\s*(.+)$/
                or croak "$name:$n: $op takes \"MS | text\"";
            @a{qw(op after_ms text backchannel)} = ('barge', $ms, $t,
                                                     $op eq 'backchannel' ? 1 : 0);
        } elsif ($op eq 'dtmf') {
            croak "$name:$n: dtmf takes digits 0-9 * # A-D"
                unless $arg =~ /^[0-9*#A-D]+$/;
            $a{digits} = $arg;
        } elsif ($op eq 'hangup') {
            croak "$name:$n: hangup takes nothing" if length $arg;
        } else {
            croak "$name:$n: unknown action \"$op\"";
        }
        push @actions, \%a;
    }
    return bless { actions => \@actions, name => $name }, $class;
}

sub actions { @{ $_[0]{actions} } }

# what the caller speaks, in order: the STT simulator's transcripts
sub utterances {
    map { $_->{text} } grep { $_->{op} eq 'say' || $_->{op} eq 'barge' }
        $_[0]->actions;
}

# the LLM simulator's answers, in order
sub replies { map { $_->{text} } grep { $_->{op} eq 'reply' } $_[0]->actions }

1;
