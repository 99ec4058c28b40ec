package VoiceSim::Sim;

# Launcher for the provider simulators (docs/simulators.md).
#
#   my $sim = VoiceSim::Sim->start(dir => $dir, tls => 1, script => $path,
#                                  config => \%cfg, key => 'test-key');
#   $sim->port('stt'); $sim->url('llm'); $sim->ca_file;
#   $sim->records('llm'); $sim->violations; $sim->stop;
#
# One child process (fork + exec of tools/voice-sim serve) runs all the
# simulators, each on its own 127.0.0.1 port: stt (Deepgram listen), llm
# (Cerebras chat completions), tts (ElevenLabs), aura (Deepgram speak),
# twilio (Twilio REST call updates) and app (the operator's application:
# persona, tools, signed call-record events).

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use Mojo::JSON qw(encode_json decode_json);
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

our @NAMES = qw(stt llm tts aura twilio app);
my %PATHS = (stt => '/v1/listen', llm => '/v1/chat/completions',
             tts => '/v1/text-to-speech', aura => '/v1/speak',
             twilio => '/2010-04-01/Accounts', app => '');
my %HTTP = map { $_ => 1 } qw(llm twilio app);
my $TOOLS = abs_path(dirname(__FILE__) . '/../..');

sub start {
    my ($class, %a) = @_;
    my $dir = $a{dir} // tempdir('voice-sim-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    make_path($dir);
    $dir = abs_path($dir);
    unlink "$dir/sim.json";
    my $cfg = $a{config} // {};
    open my $fh, '>', "$dir/config.json" or croak "$dir/config.json: $!";
    print $fh encode_json($cfg);
    close $fh;
    my @args = ('--dir', $dir, '--config', "$dir/config.json", '--key', $a{key} // 'test-key');
    push @args, '--tls' if $a{tls};
    push @args, '--script', abs_path($a{script}) if $a{script};
    push @args, '--seed', $a{seed} if defined $a{seed};
    for my $n (@NAMES) {
        push @args, "--$n-port", $a{ports}{$n} if $a{ports} && $a{ports}{$n};
    }
    push @args, '--parent', $$ unless $a{detach};

    my $pid = fork // croak "fork: $!";
    if (!$pid) {
        no warnings 'once';
        $Test::Nginx::Util::InSubprocess = 1 if defined $Test::Nginx::Util::InSubprocess;
        open STDOUT, '>>', "$dir/sim.out";
        open STDERR, '>&', \*STDOUT;
        { exec $^X, "-I$TOOLS/lib", "$TOOLS/voice-sim", "serve", @args };
        POSIX::_exit(127);
    }
    my $self = bless { pid => $pid, dir => $dir, owner => $$, key => $a{key} // 'test-key' }, $class;
    my $deadline = time + ($a{timeout} // 20);
    while (!-s "$dir/sim.json") {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            croak "voice-sim exited (status $?): " . _slurp("$dir/sim.out");
        }
        croak "voice-sim did not start within the timeout" if time > $deadline;
        sleep 0.05;
    }
    $self->{info} = decode_json(_slurp("$dir/sim.json"));
    for my $n (@NAMES) {
        my $ok;
        while (time < $deadline) {
            $ok = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->port($n));
            last if $ok;
            sleep 0.05;
        }
        croak "simulator $n does not accept connections" unless $ok;
    }
    return $self;
}

# an object for a simulator started elsewhere (tools/voice-sim start)
sub attach {
    my ($class, $dir) = @_;
    my $self = bless { dir => abs_path($dir) }, $class;
    $self->{info} = decode_json(_slurp("$dir/sim.json"));
    return $self;
}

sub _slurp {
    my $f = shift;
    open my $fh, '<:raw', $f or return '';
    local $/;
    return scalar <$fh>;
}

sub dir  { $_[0]{dir} }
sub pid  { $_[0]{pid} // $_[0]{info}{pid} }
sub key  { $_[0]{info}{key} }
sub tls  { $_[0]{info}{tls} }
sub port { $_[0]{info}{ports}{$_[1]} // croak "unknown simulator $_[1]" }
sub names { @NAMES }

# base URL: ws(s)://127.0.0.1:PORT for stt/tts/aura, http(s):// for
# llm/twilio/app
sub url {
    my ($self, $n) = @_;
    my $s = $HTTP{$n} ? 'http' : 'ws';
    $s .= 's' if $self->tls;
    return "$s://127.0.0.1:" . $self->port($n);
}

# the provider path under the URL (tts: the prefix before /{voice_id}/...,
# twilio: the prefix before /{AccountSid}/Calls/{CallSid}.json, app: '')
sub path { $PATHS{$_[1]} }

# app endpoints: app_url('persona'), app_url('tools', 'lookup'), app_url('events')
sub app_url { join '/', $_[0]->url('app'), @_[1 .. $#_] }

# twilio_call_url($account_sid, $call_sid): the call resource to POST to
sub twilio_call_url { $_[0]->url('twilio') . "$PATHS{twilio}/$_[1]/Calls/$_[2].json" }

# call records the app accepted: DIR/events/<CallSid>.json
sub events_dir { "$_[0]{dir}/events" }

sub event {
    my ($self, $sid) = @_;
    my $raw = _slurp($self->events_dir . "/$sid.json");
    return length $raw ? decode_json($raw) : undef;
}

sub ca_file { $_[0]{info}{ca_file} }
sub cert_file { $_[0]{info}{cert_file} }
sub log_file { "$_[0]{dir}/$_[1].jsonl" }

sub records {
    my ($self, $n, %f) = @_;
    my @r;
    open my $fh, '<:raw', $self->log_file($n) or return;
    while (my $l = <$fh>) {
        next unless $l =~ /\n\z/;    # a line still being written
        my $r = eval { decode_json($l) } or next;
        next if $f{ev} && ($r->{ev} // '') ne $f{ev};
        push @r, $r;
    }
    return @r;
}

# violation records of one simulator, or of all of them
sub violations {
    my ($self, $n) = @_;
    return map { $self->records($_, ev => 'violation') } $n ? ($n) : @NAMES;
}

# wait_for(name, sub { $_[0]{ev} eq ... }, timeout_s): the first record
# matching, polling the log; undef on timeout
sub wait_for {
    my ($self, $n, $match, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (1) {
        for my $r ($self->records($n)) { return $r if $match->($r) }
        return if time > $deadline;
        sleep 0.02;
    }
}

sub stop {
    my $self = shift;
    my $pid = delete $self->{pid} or return;
    return unless $self->{owner} && $self->{owner} == $$;
    kill 'TERM', $pid;
    my $deadline = time + 5;
    while (waitpid($pid, WNOHANG) != $pid) {
        if (time > $deadline) { kill 'KILL', $pid; waitpid($pid, 0); last }
        sleep 0.02;
    }
    return 1;
}

sub DESTROY { local ($?, $@); $_[0]->stop if $_[0]{pid} }

# ---- the child: serve all the simulators -------------------------------------

sub serve {
    my ($class, %o) = @_;
    require Mojo::IOLoop;
    require Mojo::Server::Daemon;
    require VoiceSim::Common;
    require VoiceSim::Deepgram;
    require VoiceSim::LLM;
    require VoiceSim::ElevenLabs;
    require VoiceSim::Aura;
    require VoiceSim::Twilio;
    require VoiceSim::App;
    require VoiceSim::Script;

    my $dir = $o{dir} or croak 'serve needs dir';
    make_path($dir);
    my $data = {};
    if ($o{config}) {
        $data = decode_json(_slurp($o{config}) || '{}');
    }
    for my $ov (@{ $o{set} || [] }) {    # --set llm.ttft_ms=50, app.tools.x.delay_ms=9
        my ($sec, $k, $v) = $ov =~ /^(\w+)\.([\w.-]+)=(.*)$/ or croak "bad --set $ov";
        $v = eval { decode_json($v) } // $v if $v =~ /^[\[{\d"tfn-]/;
        my @k = split /\./, $k;
        my $h = $data->{$sec} //= {};
        $h = $h->{ shift @k } //= {} while @k > 1;
        $h->{ $k[0] } = $v;
    }
    my $cfg = VoiceSim::Common::Config->new($data);
    my (@utt, @rep);
    if ($o{script}) {
        my $s = VoiceSim::Script->parse_file($o{script});
        @utt = $s->utterances;
        @rep = $s->replies;
    }
    my $tls = $o{tls} ? VoiceSim::Common::gen_certs($dir, @{ $cfg->get('tls', 'names', []) }) : undef;
    my $seed = $o{seed} // $cfg->get('llm', 'seed', 1);
    my $x = $seed || 1;
    my $rand = sub { $x = ($x * 1103515245 + 12345) % 2147483648; $x / 2147483648 };

    my (%ports, @daemons);
    my %mods = (stt => 'VoiceSim::Deepgram', llm => 'VoiceSim::LLM',
                tts => 'VoiceSim::ElevenLabs', aura => 'VoiceSim::Aura',
                twilio => 'VoiceSim::Twilio', app => 'VoiceSim::App');
    for my $n (@NAMES) {
        my $ctx = { name => $n, cfg => $cfg, key => $o{key} // 'test-key', dir => $dir,
                    utterances => \@utt, replies => \@rep, rand => $rand,
                    log => VoiceSim::Common::Log->new(file => "$dir/$n.jsonl", sim => $n) };
        my $app = $mods{$n}->app($ctx);
        my $port = $o{ports}{$n} // 0;
        my $listen = $tls ? "https://127.0.0.1:$port?cert=$tls->{cert}&key=$tls->{key}"
                          : "http://127.0.0.1:$port";
        my $d = Mojo::Server::Daemon->new(app => $app, listen => [$listen], silent => 1,
                                          inactivity_timeout => 0,
                                          keep_alive_timeout => $cfg->get('llm', 'keepalive_s', 60),
                                          max_requests => 1000);
        $d->start;
        $ports{$n} = $d->ports->[0];
        $ctx->{log}->log(ev => 'listening', port => $ports{$n}, tls => VoiceSim::Common::b($tls));
        push @daemons, $d;
    }
    my $info = { pid => $$, tls => $tls ? Mojo::JSON::true : Mojo::JSON::false, ports => \%ports,
                 key => $o{key} // 'test-key',
                 ca_file => $tls ? $tls->{ca} : undef, cert_file => $tls ? $tls->{cert} : undef,
                 logs => { map { $_ => "$dir/$_.jsonl" } @NAMES },
                 urls => { map { my $s = $HTTP{$_} ? 'http' : 'ws'; $s .= 's' if $tls;
                                 $_ => "$s://127.0.0.1:$ports{$_}$PATHS{$_}" } @NAMES } };
    open my $fh, '>', "$dir/sim.json.tmp" or die $!;
    print $fh encode_json($info);
    close $fh;
    rename "$dir/sim.json.tmp", "$dir/sim.json";
    $o{on_ready}->($info) if $o{on_ready};

    my $parent = $o{parent};
    Mojo::IOLoop->recurring(1 => sub { Mojo::IOLoop->stop unless kill 0, $parent }) if $parent;
    local $SIG{TERM} = local $SIG{INT} = sub { Mojo::IOLoop->stop };
    # Perl runs signal handlers between ops: with the EV reactor an idle
    # simulator sits in epoll_wait and a TERM would wait for the next
    # event, forever (a detached one had no parent check to wake it)
    Mojo::IOLoop->recurring(0.25 => sub { });
    Mojo::IOLoop->start;
    unlink "$dir/sim.json" if $o{remove_info};
    return 0;
}

1;
