# The scripted Twilio caller against the module's "voice_pipeline echo":
# the recording's bot channel is the caller's speech 500 ms later, marks
# come back in order, a DTMF digit clears the echo still buffered, and the
# upgrade signature is accepted or refused.

use strict;
use warnings;
use lib 'tools/lib';
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use JSON::PP ();

BEGIN {
    for my $bin (qw(espeak-ng sox)) {
        plan skip_all => "$bin not installed" unless grep { -x "$_/$bin" } split /:/, $ENV{PATH};
    }
}

use VoiceTest::Nginx;
use VoiceSim::Caller;
use VoiceSim::Wav;

my $ng = VoiceTest::Nginx::Server->start(server => <<'CONF');
location = /stream { voice_pipeline echo; voice_echo_delay 500ms; voice_echo_mark_every 10; }
location = /auth { voice_pipeline echo; voice_echo_delay 500ms; voice_twilio_auth_token s3cret-token; }
CONF
my $url = 'ws://127.0.0.1:' . $ng->port;
my $out = tempdir(CLEANUP => 1);

my $s = VoiceSim::Caller->new(url => "$url/stream", out => $out, script => <<'SCRIPT')->run;
say: Hello there, this is a test call.
say: One two three.
wait: bot
say: Please stop talking now, right now.
dtmf: 1
wait: 800
hangup
SCRIPT

ok $s->{ok}, 'call OK' or diag explain $s;
is $s->{handshake}{status}, 101, 'upgraded';
is_deeply [@{ $s->{close} }{qw(by code)}], ['caller', 1000], 'caller hung up, 1000 back';
ok $ng->wait_log(qr/call ended after/, 3), 'nginx logged the end of the call';
like $ng->error_log, qr/call: \Q$s->{call_sid}\E/, 'nginx knew the CallSid';

my @ct = @{ $s->{caller_turns} };
is scalar @ct, 3, 'three caller turns';
my ($bt1) = @{ $s->{bot_turns} };
ok abs($bt1->{heard_start_ms} - $ct[0]{start_ms} - 500) < 60,
    "echo heard $bt1->{heard_start_ms} ms, 500 ms after the caller's $ct[0]{start_ms} ms";

# the recording: right = left, 500 ms later, until the clear
my ($rate, $l, $r) = VoiceSim::Wav->read_stereo($s->{files}{wav});
my $level = sub {
    my ($ch, $from, $to) = @_;
    $from = 0 if $from < 0;
    my $e = 0;
    $e += abs $ch->[$_] for int($from * 8) .. int($to * 8) - 1;
    return $e / (($to - $from) * 8);
};
my $first = sub { my $ch = shift; for (0 .. $#$ch) { return $_ / 8 if abs $ch->[$_] > 500 } undef };
my $lag = $first->($r) - $first->($l);
ok abs($lag - 500) < 40, "right channel starts ${lag} ms after the left";

my ($sa, $sb) = ($ct[0]{start_ms}, $ct[1]{end_ms});
my ($le, $re) = ($level->($l, $sa, $sb), $level->($r, $sa + 500, $sb + 500));
ok $le > 300, "left channel has speech (level $le)";
ok abs($re - $le) / $le < 0.15, "right channel has the same energy 500 ms later (level $re)";
ok abs($bt1->{voiced_ms} - ($sb - $sa)) < 150 || $bt1->{voiced_ms} < $sb - $sa,
    "bot turn 1: $bt1->{voiced_ms} ms of speech for the caller's " . ($sb - $sa) . ' ms';

# marks: echo-1.. in order, each back once play-out reached it
my @m = @{ $s->{marks} };
ok @m > 20, scalar(@m) . ' marks';
is_deeply [map { $_->{name} } @m], [map { "echo-$_" } 1 .. @m], 'marks arrive in order';
ok !(grep { !defined $_->{echoed_ms} } @m), 'every mark echoed';
ok !(grep { $_->{latency_ms} < 0 || $_->{latency_ms} > 100 } @m), 'mark latency 0-100 ms (play-out of one frame)';
ok !(grep { $_->{outcome} eq 'pending' } @m), 'nothing pending at the end';

# the DTMF in the middle of the echoed third line: clear, the rest of the echo gone
my ($d) = @{ $s->{dtmf} };
my ($c) = @{ $s->{clears} };
ok $c, 'a clear came';
ok $d && defined $d->{clear_after_ms} && $d->{clear_after_ms} < 200, "clear $d->{clear_after_ms} ms after the digit";
my $ce = $level->($l, $c->{t_ms} - 500, $c->{t_ms});
ok $ce > 300, "caller was speaking in the 500 ms before the clear (level $ce)";
my $after = $level->($r, $c->{t_ms} + 30, $c->{t_ms} + 480);
ok $after < 5, "right channel silent after the clear (level $after)";
my $before = $level->($r, $c->{t_ms} - 300, $c->{t_ms});
ok $before > 300, "... but not before it (level $before)";
my ($bt3) = grep { $_->{cleared} } @{ $s->{bot_turns} };
ok $bt3, 'the bot turn playing was cleared';
ok !(grep { $_->{outcome} eq 'cleared' && abs($_->{echoed_ms} - $c->{t_ms}) > 1 } @m),
    'marks pending at the clear were echoed at once';
is $c->{marks_flushed}, scalar(grep { $_->{outcome} eq 'cleared' } @m), 'and counted';

# ---- signature ----
my $good = VoiceSim::Caller->new(url => "$url/auth", out => $out, auth_token => 's3cret-token',
                                 script => "wait: 300\nhangup\n")->run;
is $good->{handshake}{status}, 101, 'right token: upgraded';
ok $good->{ok}, '... and a clean call';

my $bad = VoiceSim::Caller->new(url => "$url/auth", out => $out, auth_token => 'wrong',
                                script => "wait: 300\nhangup\n")->run;
is $bad->{handshake}{status}, 403, 'wrong token: 403 recorded';
ok !$bad->{ok}, '... not OK';
is $bad->{close}{by}, 'server', '... refused by the server';
my $json = JSON::PP->new->decode(do { local (@ARGV, $/) = $bad->{files}{summary}; <> });
is $json->{handshake}{status}, 403, '... in the summary file';

my $none = VoiceSim::Caller->new(url => "$url/auth", out => $out, script => "hangup\n")->run;
is $none->{handshake}{status}, 403, 'no token: 403';

# ---- the CLI, two concurrent calls ----
my $cli = `$^X tools/voice-call --url $url/stream --say "Yes." --calls 2 --out $out/cli 2>&1`;
is $?, 0, 'voice-call --calls 2 exits 0' or diag $cli;
like $cli, qr{all: 2/2 calls OK}, 'combined line';
my $comb = JSON::PP->new->decode(do { local (@ARGV, $/) = "$out/cli/summary.json"; <> });
is $comb->{ok}, 2, 'combined summary';
isnt $comb->{per_call}[0]{call_sid}, $comb->{per_call}[1]{call_sid}, 'own SIDs';

is $ng->stop, '', 'nginx stopped cleanly';
unlike $ng->error_log, qr/\[(?:alert|crit|emerg)\]/, 'no alerts';

done_testing;
