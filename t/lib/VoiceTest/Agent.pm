# The agent suites' harness: each scenario gets its own provider
# simulators, nginx and scripted Twilio caller; all calls run side by side
# in one event loop, then each is checked from the caller's summary, the
# simulators' logs and the module's call record.  Shared by
# t/100-agent.t, t/101-agent-faults.t and t/105-agent-app.t.

package VoiceTest::Agent;

use strict;
use warnings;

use Exporter 'import';
use Test::More;
use File::Path qw(make_path);
use Mojo::IOLoop;
use Mojo::JSON qw(decode_json);
use Time::HiRes qw(sleep time);
use VoiceTest::Nginx;
use VoiceSim::Sim;
use VoiceSim::Caller;
use VoiceSim::Script;
use VoiceSim::Speech;

our @EXPORT = qw(write_file location words strict_word_prefix llm_requests
                 messages squash wait_record transcript entries turn_timing
                 timings_in_order access_log_line clean_log run_scenarios
                 agent_nginx_t slurp
                 $KEY $PROMPT $VOICE);

our $KEY = 'agent-key-3f9d';
our $PROMPT = 'You are the booking assistant of Bella\'s, talking with '
            . '$voice_param_caller. Be brief.';
our $VOICE = '21m00Tcm4TlvDq8ikWAM';

# a file's bytes, or undef
sub slurp {
    my ($file) = @_;
    open my $fh, '<:raw', $file or return undef;
    local $/;
    return scalar <$fh>;
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
    return $path;
}

# the agent location: the three legs on the scenario's simulators;
# $o{extra} adds directives, $o{aura} uses Deepgram Aura for TTS
sub location {
    my ($sim, %o) = @_;
    my ($ws, $http, $host) = $sim->tls ? ('wss', 'https', 'localhost')
                                       : ('ws', 'http', '127.0.0.1');
    my $tts = $o{aura}
        ? "voice_tts_provider deepgram; "
          . "voice_tts_url $ws://$host:" . $sim->port('aura') . "/v1/speak; "
        : "voice_tts_url $ws://$host:" . $sim->port('tts') . "; "
          . "voice_tts_voice $VOICE; ";
    return "location = /stream { voice_pipeline agent; "
         . "voice_stt_url $ws://$host:" . $sim->port('stt') . "/v1/listen; "
         . "voice_stt_key $KEY; "
         . "voice_llm_url $http://$host:" . $sim->port('llm')
         . "/v1/chat/completions; "
         . "voice_llm_key $KEY; "
         . $tts . "voice_tts_key $KEY; "
         . (defined $o{greeting} ? "voice_greeting \"$o{greeting}\"; " : '')
         . "voice_system_prompt \"$PROMPT\"; "
         . "voice_call_record $o{records}; "
         . ($sim->tls ? "voice_ssl_trusted_certificate " . $sim->ca_file . "; " : '')
         . (ref $o{extra} eq 'CODE' ? $o{extra}->($sim) : $o{extra} // '')
         . " }";
}

sub words { split ' ', $_[0] // '' }

# the first argument is the second's first N words, N >= 1, fewer than all
sub strict_word_prefix {
    my ($short, $long) = @_;
    my @s = words($short);
    my @l = words($long);
    return 0 unless @s && @s < @l;
    for my $i (0 .. $#s) { return 0 unless $s[$i] eq $l[$i] }
    return 1;
}

sub llm_requests {
    my ($sim) = @_;
    return grep { ($_->{path} // '') eq '/v1/chat/completions' }
           $sim->records('llm', ev => 'http_request');
}

sub messages {
    my ($rq) = @_;
    return [ map { [ $_->{role}, $_->{content} ] } @{ $rq->{json}{messages} || [] } ];
}

sub squash { my $s = $_[0] // ''; $s =~ s/\s+/ /g; $s =~ s/^ | $//g; $s }

sub wait_record {
    my ($file, $timeout) = @_;
    my $deadline = time + $timeout;
    while (1) {
        if (-s $file && open my $fh, '<:raw', $file) {
            my $j = eval { decode_json(do { local $/; <$fh> }) };
            return $j if ref $j eq 'HASH';
        }
        return undef if time > $deadline;
        sleep 0.1;
    }
}

sub transcript {
    my ($rec) = @_;
    return [ map { [ $_->{role}, $_->{kind} // '', squash($_->{text}) ] }
             @{ $rec->{transcript} || [] } ];
}

sub entries {
    my ($rec, %f) = @_;
    return grep { my $e = $_; !grep { ($e->{$_} // '') ne $f{$_} } keys %f }
           @{ $rec->{transcript} || [] };
}

sub turn_timing {
    my ($rec, $n) = @_;
    my ($t) = grep { $_->{turn} == $n } @{ $rec->{turns} || [] };
    return $t;
}

my @STAGES = qw(speech_end transcript llm_request first_token
                first_text_to_tts first_audio first_media first_heard);
# speech_end < transcript <= llm_request < first_token <= first_text_to_tts
#   < first_audio <= first_media <= first_heard
my @STRICT = (1, 0, 1, 0, 1, 0, 0);

sub timings_in_order {
    my ($t, $what) = @_;
    my $ms = $t->{timings_ms} || {};
    my @missing = grep { !defined $ms->{$_} } @STAGES;
    ok(!@missing, "$what: every stage timed") or diag "null: @missing";
    return if @missing;
    for my $i (0 .. $#STAGES - 1) {
        my ($a, $b) = @STAGES[$i, $i + 1];
        if ($STRICT[$i]) {
            cmp_ok($ms->{$a}, '<', $ms->{$b}, "$what: $a < $b");
        } else {
            cmp_ok($ms->{$a}, '<=', $ms->{$b}, "$what: $a <= $b");
        }
    }
}

# the $voice_* variables in the access log agree with the call record
sub access_log_line {
    my ($s) = @_;
    my ($sum, $rec) = @$s{qw(summary record)};
    my $file = $s->{srv}->dir . '/logs/voice.log';
    my ($line) = grep { /^\Q$sum->{call_sid}\E / } do {
        open my $fh, '<', $file or return fail("no $file");
        <$fh>;
    };
    ok($line, "$s->{name}: the access log has the call")
        or return diag("$file: " . (-s $file // 'missing') . "\n" . `cat $file`
                       . `grep -c . $s->{srv}{dir}/logs/access.log`);
    my %f = $line =~ /(\w+)=("[^"]*"|\S+)/g;
    s/^"|"$//g for values %f;
    my $replies = grep { $_->{role} eq 'assistant' && $_->{kind} ne 'greeting' }
                  @{ $rec->{transcript} };
    is($f{turns}, $rec->{counts}{turns}, "$s->{name}: \$voice_turns");
    is($f{interruptions}, $rec->{counts}{barge_ins}, "$s->{name}: \$voice_interruptions");
    is($f{end}, $rec->{end_reason}, "$s->{name}: \$voice_end_reason");
    is($f{caller}, ($s->{params} // { caller => 'Dana' })->{caller},
       "$s->{name}: \$voice_param_caller");
    cmp_ok(abs($f{duration} - $rec->{duration_ms}), '<', 2000,
           "$s->{name}: \$voice_duration ($f{duration} ms) is the call's");
    my ($mean, $max) = split m{/}, $f{latency};
    my @lat = grep { defined } map { $_->{latency_ms}{total} }
              grep { defined $_->{timings_ms}{first_heard} } @{ $rec->{turns} };
    if (@lat) {
        cmp_ok($mean, '>', 0, "$s->{name}: \$voice_latency_mean");
        cmp_ok($max, '>=', $mean, "$s->{name}: \$voice_latency_max >= mean");
    } else {
        is($f{latency}, '0/0', "$s->{name}: no timed turn, latency 0/0");
    }
}

sub clean_log {
    my ($s) = @_;
    my $log = $s->{srv}->error_log;
    write_file("$s->{dir}/error.log", $log);
    unlike($log, qr/\[alert\]|\[crit\]|\[emerg\]|exited on signal|open socket/,
           "$s->{name}: no alert, crash or leaked socket");
    # expected_errors: a pattern of the [error] lines the scenario causes
    my @errors = grep { /\[error\]/ } split /\n/, $log;
    @errors = grep { !/$s->{expected_errors}/ } @errors if $s->{expected_errors};
    is_deeply(\@errors, [], "$s->{name}: no error logged");
    for my $secret ($KEY, @{ $s->{secrets} || [] }) {
        unlike($log, qr/\Q$secret\E/, "$s->{name}: no key or token in the log");
    }
    is(scalar($s->{sim}->violations), 0, "$s->{name}: no protocol violation seen by the simulators")
        or diag explain [ $s->{sim}->violations ];
}

# nginx -t of an agent location with its three legs (unreachable) plus
# $extra, and $http at the http level: (exit status, output)
my $nginx_t_n = 0;
sub agent_nginx_t {
    my ($dir, $extra, $http) = @_;
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    my $so = voice_module();
    my $d = "$dir/nginx-t-" . ++$nginx_t_n;
    make_path("$d/conf", "$d/logs");
    write_file("$d/conf/nginx.conf",
               "load_module $so;\nerror_log logs/error.log;\npid logs/nginx.pid;\n"
               . "events {}\nhttp {\naccess_log off;\n" . ($http // '')
               . "\nserver {\nlisten 127.0.0.1:1;\n"
               . "location = /stream { voice_pipeline agent; voice_ssl_verify off; "
               . 'voice_stt_url ws://127.0.0.1:9/v1/listen; voice_stt_key k1; '
               . 'voice_llm_url http://127.0.0.1:9/v1/chat/completions; voice_llm_key k2; '
               . 'voice_tts_url ws://127.0.0.1:9; voice_tts_key k3; voice_tts_voice v; '
               . "$extra }\n}\n}\n");
    my $out = `$nginx -t -p $d -c conf/nginx.conf 2>&1`;
    return ($? >> 8, $out);
}

# Runs the scenarios: simulators and nginx for each, the calls side by
# side (two at a time under valgrind), then each one's checks in a subtest.
# A scenario: name, script, check (sub), and optionally tls, sim_config,
# params, closed_by, greeting, extra (directives, or a sub of the
# simulators returning them), auth_token (the caller signs the upgrade),
# expected_errors (a pattern of [error] lines the scenario causes),
# secrets (more strings that must not be logged),
# server (a sub returning more server-level text), http (more http-level
# directives).
sub run_scenarios {
    my ($dir, @S) = @_;
    # TEST_VOICE_ONLY=regex: only the scenarios whose name matches
    @S = grep { $_->{name} =~ /$ENV{TEST_VOICE_ONLY}/ } @S if $ENV{TEST_VOICE_ONLY};
    my $speech = VoiceSim::Speech->new(voice => 'en-us+f3');
    my $t0 = time;

    for my $s (@S) {
        (my $tag = $s->{name}) =~ s/\W+/-/g;
        $s->{dir} = "$dir/$tag";
        $s->{records} = "$s->{dir}/records";
        make_path($s->{records});
        $s->{script_file} = write_file("$s->{dir}/script.txt", $s->{script});
        # the caller's speech is synthesised now, not while calls run
        $speech->ulaw($_) for VoiceSim::Script->parse_file($s->{script_file})->utterances;
        $s->{sim} = VoiceSim::Sim->start(dir => "$s->{dir}/sim", tls => $s->{tls},
                                         script => $s->{script_file}, key => $KEY,
                                         config => $s->{sim_config} // {});
        $s->{srv} = VoiceTest::Nginx::Server->start(
            server => location($s->{sim}, records => $s->{records}, %$s)
                      . ($s->{server} ? ' ' . $s->{server}->($s) : ''),
            http => 'log_format voice "$voice_call_sid turns=$voice_turns '
                  . 'interruptions=$voice_interruptions duration=$voice_duration '
                  . 'latency=$voice_latency_mean/$voice_latency_max '
                  . 'end=\\"$voice_end_reason\\" caller=$voice_param_caller"; '
                  . 'access_log logs/voice.log voice; ' . ($s->{http} // ''));
    }

    # all at once; under valgrind nginx is slow, so two at a time
    my $batch = $ENV{TEST_NGINX_USE_VALGRIND} ? 2 : scalar @S;
    for (my $b = 0; $b < @S; $b += $batch) {
        my $last = $b + $batch - 1 < $#S ? $b + $batch - 1 : $#S;
        my @group = @S[$b .. $last];
        my $running = @group;
        my $start = time;
        for my $i (0 .. $#group) {
            my $s = $group[$i];
            Mojo::IOLoop->timer(0.2 * $i => sub {
                $s->{caller} = VoiceSim::Caller->new(
                    url => 'ws://127.0.0.1:' . $s->{srv}->port . '/stream',
                    script => $s->{script_file}, out => "$s->{dir}/calls",
                    params => $s->{params} // { caller => 'Dana' },
                    $s->{auth_token} ? (auth_token => $s->{auth_token}) : (),
                    max_wait_ms => 20000, max_duration_ms => 60000);
                $s->{caller}->start(sub { $s->{summary} = shift; $running-- });
            });
        }
        # each caller gives up after max_duration_ms; this is only a backstop
        Mojo::IOLoop->one_tick while $running && time < $start + 120;
    }
    note(sprintf 'calls took %.1f s', time - $t0);

    for my $s (@S) {
        subtest $s->{name} => sub {
            my $sum = $s->{summary};
            ok($sum, 'the call ran to its end') or return;
            my $file = "$s->{records}/$sum->{call_sid}.json";
            $s->{record} = wait_record($file, 10);
            ok($s->{record}, "the call record was written: $file") or return;
            ok($s->{srv}->wait_log(qr/voice: call ended/, 10), 'nginx ended the call');
            is($sum->{handshake}{status}, 101, 'the call was answered');
            is_deeply($sum->{violations}, [], 'no Twilio protocol violation');
            is_deeply($sum->{timeouts}, [], 'the caller never waited in vain');
            is($sum->{close}{by}, $s->{closed_by} // 'caller',
               $s->{closed_by} ? 'the agent ended the call' : 'the caller hung up');
            $s->{check}->($s);
            is($s->{srv}->stop, '', 'valgrind clean') if $ENV{TEST_NGINX_USE_VALGRIND};
            $s->{srv}->stop;
            access_log_line($s);
            clean_log($s);
            note(VoiceSim::Caller->format_summary($sum)) unless Test::More->builder->is_passing;
        };
        $s->{sim}->stop;
    }
}

1;
