# The scripted Twilio caller's pieces, without nginx: the play-out buffer
# with a fake clock (marks, clear), mu-law, the WAV writer, the signature.

use strict;
use warnings;
use lib 'tools/lib';
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);

use VoiceSim::Playout;
use VoiceSim::Speech;
use VoiceSim::Wav;
use VoiceSim::Caller;

# ---- play-out: marks echo when play-out reaches them ----
{
    my (@audio, @marks);
    my $p = VoiceSim::Playout->new(
        on_audio => sub { push @audio, [$_[0], length $_[1], $_[2]{id}] },
        on_mark  => sub { push @marks, [@_] },
    );

    $p->mark(0, 'idle');
    is_deeply \@marks, [['idle', 0, 'immediate']], 'mark on an empty buffer echoes at once';

    $p->advance(100);
    is $p->pos, 800, 'an idle cursor follows the clock';

    $p->media(100, "\x01" x 1600, { id => 'a' });       # 200 ms
    $p->mark(100, 'm1');
    $p->media(100, "\x02" x 800, { id => 'b' });        # 100 ms
    $p->mark(100, 'm2');
    is $p->queued, 2400, '300 ms queued';
    is $p->pending_marks, 2, 'two marks pending';
    is scalar @marks, 1, 'nothing echoed before play-out';

    $p->advance(250);
    is scalar @marks, 1, 'm1 not reached at 150 ms of 200';
    is $p->queued, 1200, 'real-time: 8000 bytes/s';

    $p->advance(300);
    is_deeply $marks[1], ['m1', 300, 'played'], 'm1 echoed when its audio has played';
    $p->advance(399);
    is scalar @marks, 2, 'm2 not yet';
    $p->advance(400);
    is_deeply $marks[2], ['m2', 400, 'played'], 'm2 echoed at 400 ms';
    is $p->played, 2400, 'all played';
    is_deeply [map { $_->[2] } @audio], [qw(a a b b)], 'audio played in arrival order';
    is $audio[0][0], 800, 'play-out started when the audio arrived';

    # gap, then more audio starts at its arrival time
    $p->media(1000, "\x03" x 160, { id => 'c' });
    $p->advance(1020);
    is $audio[-1][0], 8000, 'after a gap play-out resumes at arrival time';
    $p->mark(1020, 'after');
    is $marks[-1][2], 'immediate', 'buffer drained: next mark immediate';
}

# ---- clear: drop the buffer, echo every pending mark at once ----
{
    my (@marks, $heard);
    $heard = 0;
    my $p = VoiceSim::Playout->new(on_audio => sub { $heard += length $_[1] },
                                   on_mark => sub { push @marks, [@_] });
    $p->media(0, "\x10" x 8000, {});                    # 1 s
    $p->mark(0, 'x1');
    $p->media(0, "\x10" x 8000, {});
    $p->mark(0, 'x2');
    $p->mark(0, 'x3');
    my $dropped = $p->clear(300);
    is $dropped, 16000 - 2400, 'clear drops what has not played';
    is $heard, 2400, '300 ms heard';
    is_deeply \@marks, [['x1', 300, 'cleared'], ['x2', 300, 'cleared'], ['x3', 300, 'cleared']],
        'pending marks echoed at once, in order, flagged cleared';
    ok !$p->busy, 'buffer empty after clear';
    $p->advance(2000);
    is $heard, 2400, 'cleared audio is never played';
    $p->mark(2000, 'y');
    is $marks[-1][2], 'immediate', 'mark after clear is immediate';
}

# ---- mu-law ----
{
    is VoiceSim::Speech::linear_to_ulaw(0), "\xFF", 'zero is 0xFF';
    my @back = VoiceSim::Speech::ulaw_to_linear(VoiceSim::Speech::linear_to_ulaw(1000, -1000, 30000));
    ok abs($back[0] - 1000) < 40 && abs($back[1] + 1000) < 40 && abs($back[2] - 30000) < 1100,
        'mu-law round trip within quantisation';
    ok !VoiceSim::Speech::voiced("\xFF" x 160), 'silence is not voiced';
    ok VoiceSim::Speech::voiced(VoiceSim::Speech->tone(20)), 'a tone is voiced';
}

# ---- WAV ----
{
    my $dir = tempdir(CLEANUP => 1);
    my $tone = VoiceSim::Speech->tone(100);
    VoiceSim::Wav->write_stereo("$dir/a.wav", $tone, "\xFF" x 400);
    my ($rate, $l, $r) = VoiceSim::Wav->read_stereo("$dir/a.wav");
    is $rate, 8000, '8 kHz';
    is scalar @$l, 800, 'left: 100 ms';
    is scalar @$r, 800, 'right padded to the same length';
    ok !(grep { $_ } @$r), 'right is silent';
    is -s "$dir/a.wav", 44 + 800 * 4, 'header + 16-bit stereo';
}

# ---- signature, URL rules ----
{
    is(VoiceSim::Caller->signature('12345', 'wss://example.com/media'),
        '7PR3qMkpDyEJtMrVOY/LDyNq8J8=', 'signature test vector (protocols.md 1.6)');
    my $c = VoiceSim::Caller->new(url => 'ws://127.0.0.1:1/stream', script => "hangup\n",
                                  out => tempdir(CLEANUP => 1));
    is $c->{signed_url}, 'wss://127.0.0.1:1/stream', 'a ws:// URL is signed as wss://';
    like $c->call_sid, qr/^CA[0-9a-f]{32}$/, 'CallSid format';
    like $c->stream_sid, qr/^MZ[0-9a-f]{32}$/, 'StreamSid format';
    like $c->{account_sid}, qr/^AC[0-9a-f]{32}$/, 'AccountSid format';
    isnt $c->call_sid, VoiceSim::Caller->new(url => 'ws://127.0.0.1:1/s')->call_sid, 'SIDs differ per call';
    ok !eval { VoiceSim::Caller->new(url => 'ws://127.0.0.1:1/s?a=1') }, 'a query string is refused';
    like $@, qr/query string/, '... saying why';
    ok !eval { VoiceSim::Caller->new(url => 'http://127.0.0.1:1/s') }, 'only ws:// and wss://';
}

done_testing;
