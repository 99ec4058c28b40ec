# The scripted Twilio caller against a tiny Mojo WebSocket server playing
# the bot: what the caller sends (order, numbering, pacing), play-out with
# marks and clear, protocol-violation detection, a server-side close.

use strict;
use warnings;
use lib 'tools/lib';
use lib 't/lib';

use Test::More;
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64);
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json encode_json);
use Mojo::Server::Daemon;
use Mojolicious::Lite;

use VoiceSim::Caller;
use VoiceSim::Speech;
use VoiceSim::Wav;

my $out = tempdir(CLEANUP => 1);
my %seen;        # path => [messages the server got], close code
my $tone = VoiceSim::Speech->tone(20, 440, 8000);

sub media { encode_json({ event => 'media', streamSid => $_[0], media => { payload => encode_base64($_[1], '') } }) }

websocket '/:kind' => sub {
    my $c = shift;
    my $kind = $c->param('kind');
    my $log = $seen{$kind} = { msgs => [] };
    $c->inactivity_timeout(30);
    $c->on(finish => sub { $log->{close} = $_[1] });
    $c->on(text => sub {
        my ($c, $bytes) = @_;
        my $m = decode_json($bytes);
        push @{ $log->{msgs} }, $m;
        return unless $m->{event} eq 'start';
        my $sid = $m->{streamSid};
        if ($kind eq 'bad') {
            $c->send({ binary => "\x00\x01" });
            $c->send(encode_json({ event => 'hello', streamSid => $sid }));
            $c->send('{"event": "media", nope');
            $c->send(media('MZ' . ('0' x 32), $tone));
            $c->send(encode_json({ event => 'media', streamSid => $sid, media => { payload => 'abc!' } }));
            $c->send(media($sid, 'RIFF' . pack('V', 36) . 'WAVEfmt ' . ("\xFF" x 148)));
            $c->send(encode_json({ event => 'mark', streamSid => $sid, mark => {} }));
            $c->send(encode_json({ event => 'mark', streamSid => $sid, mark => { name => 'fine' } }));
        } elsif ($kind eq 'play') {
            # 1 s of tone in one burst (Twilio buffers it), marks half-way and at the end
            $c->send(media($sid, $tone)) for 1 .. 25;
            $c->send(encode_json({ event => 'mark', streamSid => $sid, mark => { name => 'half' } }));
            $c->send(media($sid, $tone)) for 1 .. 25;
            $c->send(encode_json({ event => 'mark', streamSid => $sid, mark => { name => 'end' } }));
            Mojo::IOLoop->timer(0.3 => sub {
                $c->send(encode_json({ event => 'clear', streamSid => $sid }));
            });
            Mojo::IOLoop->timer(0.8 => sub {
                $c->send(media($sid, $tone)) for 1 .. 10;
                $c->send(encode_json({ event => 'mark', streamSid => $sid, mark => { name => 'tail' } }));
            });
        } elsif ($kind eq 'close') {
            Mojo::IOLoop->timer(0.2 => sub { $c->finish(1011, 'boom') });
        }
    });
};

app->log->level('fatal');

# the server's side of a close may come a moment after the caller's
sub server_close {
    my $kind = shift;
    my $deadline = time + 3;
    Mojo::IOLoop->one_tick until defined $seen{$kind}{close} || time > $deadline;
    return $seen{$kind}{close};
}

my $daemon = Mojo::Server::Daemon->new(app => app, listen => ['http://127.0.0.1'], silent => 1)->start;
my $port = $daemon->ports->[0];
my $url = "ws://127.0.0.1:$port";

# ---- violations ----
{
    my $s = VoiceSim::Caller->new(url => "$url/bad", out => $out, script => "wait: 400\nhangup\n")->run;
    my %v = map { $_->{code} => 1 } @{ $s->{violations} };
    ok $v{$_}, "violation $_ recorded"
        for qw(binary_frame unknown_event bad_json wrong_stream_sid bad_base64 riff_header mark_without_name);
    is $s->{counts}{violations}, 7, 'exactly seven';
    ok !$s->{ok}, 'the call is not OK';
    my ($fine) = grep { $_->{name} eq 'fine' } @{ $s->{marks} };
    ok $fine && defined $fine->{echoed_ms}, 'default: recorded and the call went on';
    is $s->{close}{by}, 'caller', 'caller hung up';
    is server_close('bad'), 1000, 'with 1000';

    $s = VoiceSim::Caller->new(url => "$url/bad", out => $out, script => "wait: 400\nhangup\n",
                               on_violation => 'close')->run;
    is $s->{counts}{violations}, 1, 'on_violation close: one violation';
    is $s->{close_sent}{code}, 1008, 'caller closed with 1008';
    is server_close('bad'), 1008, 'server saw 1008';
    ok !grep({ $_->{event} eq 'stop' } @{ $seen{bad}{msgs} }), 'no stop on a protocol error';
}

# ---- play-out, marks, clear, what the caller sends ----
{
    my $s = VoiceSim::Caller->new(url => "$url/play", out => $out, script => "wait: 1400\nhangup\n",
                                  params => { tenant => 'acme' })->run;
    ok $s->{ok}, 'clean call' or diag explain $s->{violations}, $s->{timeouts};
    my %m = map { $_->{name} => $_ } @{ $s->{marks} };
    is $m{half}{outcome}, 'cleared', 'mark half was pending at the clear';
    is $m{end}{outcome}, 'cleared', 'mark end too';
    my ($clear) = @{ $s->{clears} };
    ok abs($m{half}{echoed_ms} - $clear->{t_ms}) < 1 && abs($m{end}{echoed_ms} - $clear->{t_ms}) < 1,
        'both echoed at once when the clear came';
    ok $clear->{t_ms} > 250 && $clear->{t_ms} < 450, "clear at $clear->{t_ms} ms";
    ok abs($clear->{dropped_ms} - (1000 - $clear->{t_ms})) < 60, "dropped $clear->{dropped_ms} ms";
    is $clear->{marks_flushed}, 2, 'two pending marks flushed';
    is $m{tail}{outcome}, 'played', 'later mark played';
    ok $m{tail}{latency_ms} > 170 && $m{tail}{latency_ms} < 260, "... after its 200 ms of audio ($m{tail}{latency_ms} ms)";
    is $s->{bot_turns}[0]{cleared}, 1, 'first bot turn cleared';
    is scalar @{ $s->{bot_turns} }, 2, 'two bot turns';

    my ($rate, $l, $r) = VoiceSim::Wav->read_stereo($s->{files}{wav});
    my $energy = sub { my ($from, $to) = @_; my $e = 0; $e += abs $r->[$_] for int($from * 8) .. int($to * 8) - 1; $e / (($to - $from) * 8) };
    ok $energy->(20, $clear->{t_ms} - 20) > 2000, 'right channel: tone before the clear';
    ok $energy->($clear->{t_ms} + 20, 780) < 1, 'right channel: silent after the clear';
    ok $energy->(860, 980) > 2000, 'right channel: the tail';
    ok !(grep { $_ } @$l), 'left channel: the caller was silent';

    my @msgs = @{ $seen{play}{msgs} };
    is $msgs[0]{event}, 'connected', 'connected first';
    ok !exists $msgs[0]{sequenceNumber}, '... without sequenceNumber';
    is $msgs[1]{event}, 'start', 'then start';
    is $msgs[1]{sequenceNumber}, '1', 'start is sequence "1"';
    is_deeply $msgs[1]{start}{customParameters}, { tenant => 'acme' }, 'customParameters';
    is_deeply $msgs[1]{start}{mediaFormat}, { encoding => 'audio/x-mulaw', sampleRate => 8000, channels => 1 },
        'mediaFormat';
    is_deeply $msgs[1]{start}{tracks}, ['inbound'], 'tracks';
    my @seq = map { $_->{sequenceNumber} } @msgs[1 .. $#msgs];
    is_deeply \@seq, [map { "$_" } 1 .. @seq], 'sequenceNumber: strings, +1 per message';
    my @media = grep { $_->{event} eq 'media' } @msgs;
    is_deeply [map { $_->{media}{chunk} } @media], [map { "$_" } 1 .. @media], 'chunk from "1"';
    is_deeply [map { $_->{media}{timestamp} } @media], [map { '' . 20 * $_ } 0 .. $#media], 'timestamp += 20';
    ok !(grep { length $_->{media}{payload} != 216 || $_->{media}{track} ne 'inbound' } @media),
        '160-byte inbound frames';
    ok abs(@media - $s->{duration_ms} / 20) < 4, scalar(@media) . " media in $s->{duration_ms} ms: real time";
    my @echo = grep { $_->{event} eq 'mark' } @msgs;
    is_deeply [map { $_->{mark}{name} } @echo], [qw(half end tail)], 'mark echoes in order';
    ok !(grep { $_->{streamSid} ne $s->{stream_sid} } @msgs[1 .. $#msgs]), 'streamSid on every message';
    is $msgs[-1]{event}, 'stop', 'stop last';
    is $msgs[-1]{stop}{callSid}, $s->{call_sid}, 'stop names the call';
    is server_close('play'), 1000, 'close 1000';

    open my $fh, '<', $s->{files}{jsonl} or die;
    my @log = map { decode_json($_) } <$fh>;
    is scalar(grep { $_->{dir} eq 'sent' } @log), scalar @msgs, 'jsonl has every sent message';
    is scalar(grep { $_->{dir} eq 'recv' } @log), 50 + 3 + 1 + 10, 'and every received one';
}

# ---- the server hangs up ----
{
    my $s = VoiceSim::Caller->new(url => "$url/close", out => $out, script => "wait: 2000\nhangup\n")->run;
    is $s->{close}{by}, 'server', 'server closed first';
    is $s->{close}{code}, 1011, 'its code';
    is $s->{close}{reason}, 'boom', 'its reason';
    is_deeply [map { $_->{op} } @{ $s->{unrun_actions} }], ['wait', 'hangup'], 'script not finished';
    ok !$s->{ok}, 'not OK';
}

done_testing;
