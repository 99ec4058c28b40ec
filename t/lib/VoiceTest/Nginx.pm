package VoiceTest::Nginx;

# Shared set-up for the ngx_voice Test::Nginx suites: loads the module
# into every block and fails any block whose error log shows an alert,
# a crash or a worker that died.  Works with the project's runner and
# with openresty's Test::Nginx::Socket alike.

use strict;
use warnings;

use Cwd qw(abs_path);
use Test::Nginx::Socket ();

our @EXPORT = qw(voice_setup voice_module);
use Exporter 'import';

sub voice_module {
    my $so = $ENV{TEST_NGINX_VOICE_SO} || 'objs/ngx_http_voice_module.so';
    die "ngx_voice module not built: $so (run make)\n" unless -f $so;
    return abs_path($so);
}

sub voice_setup {
    my $so = voice_module();

    Test::Nginx::Socket::add_block_preprocessor(sub {
        my $block = shift;
        my $main = $block->main_config;
        $main = '' unless defined $main;
        $block->set_value(main_config => "load_module $so;\n$main");

        my $no = $block->no_error_log;
        my @no = ref $no eq 'ARRAY' ? @$no
               : defined $no ? (split /\n/, $no) : ();
        push @no, '[alert]', '[crit]', '[emerg]', 'signal 11'
            unless defined scalar $block->must_die;
        $block->set_value(no_error_log => \@no);
    });
}

1;


package VoiceTest::Nginx::Server;

# An nginx of its own for interactive tests (nginx-tests style): a
# temporary prefix, a free port, nginx as a direct child so stopping it
# is quick, and access to its error log and memory.

use strict;
use warnings;

use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# a port where connect() is refused for the rest of the run: bound but
# not listening, so no server started later (a simulator, nginx) gets it
my @dead;
sub dead_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp')
        or die "no port: $!";
    push @dead, $s;
    return $s->sockport;
}

# start(server => "location ... {}", http => "...", main => "...",
#       master => 0|1, listen => "sndbuf=8k", log_level => 'info')
sub start {
    my ($class, %o) = @_;
    my $self = bless { %o }, $class;
    my $so = VoiceTest::Nginx::voice_module();
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';

    $self->{dir} = tempdir('voice-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    $self->{port} = free_port();
    mkdir "$self->{dir}/$_" for qw(conf logs html);

    my $master = $o{master} ? 'on' : 'off';
    my $level = $o{log_level} || 'info';
    my $user = $> == 0 ? "user root;\n" : '';
    my $conf = "load_module $so;\n${user}daemon off;\n"
        . "master_process $master;\nworker_processes 1;\n"
        . "error_log logs/error.log $level;\npid logs/nginx.pid;\n"
        . ($o{main} || '') . "\nevents { worker_connections 1024; }\n"
        . "http {\naccess_log logs/access.log;\n" . ($o{http} || '')
        . "\nserver {\nlisten 127.0.0.1:$self->{port} "
        . ($o{listen} || '') . ";\n" . ($o{server} || '') . "\n}\n}\n";

    open my $fh, '>', "$self->{dir}/conf/nginx.conf" or die $!;
    print $fh $conf;
    close $fh;

    my @cmd = ($nginx, '-p', "$self->{dir}/", '-c', 'conf/nginx.conf');
    if ($ENV{TEST_NGINX_USE_VALGRIND}) {
        unshift @cmd, 'valgrind', '--tool=memcheck', '--leak-check=full',
            '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
            '--num-callers=30', "--log-file=$self->{dir}/logs/valgrind.%p.log",
            (-f 'valgrind.suppress' ? ('--suppressions=valgrind.suppress') : ());
        $self->{valgrind} = 1;
    }

    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        $Test::Nginx::Util::InSubprocess = 1;
        open STDOUT, '>>', "$self->{dir}/logs/stderr.log";
        open STDERR, '>>', "$self->{dir}/logs/stderr.log";
        exec @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;

    my $deadline = time + ($self->{valgrind} ? 30 : 5);
    while (time < $deadline) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->{port});
        if ($s) { close $s; return $self; }
        die "nginx exited: " . $self->error_log
            if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    die "nginx did not start: " . $self->error_log;
}

sub port { $_[0]{port} }
sub dir  { $_[0]{dir} }
sub pid  { $_[0]{pid} }

sub error_log {
    my $self = shift;
    my $log = '';
    for my $f ("$self->{dir}/logs/error.log", "$self->{dir}/logs/stderr.log") {
        next unless -f $f;
        open my $fh, '<', $f or next;
        local $/;
        $log .= <$fh>;
    }
    return $log;
}

# wait until the error log matches, or the timeout passes
sub wait_log {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + ($timeout || 5);
    while (time < $deadline) {
        return 1 if $self->error_log =~ $re;
        sleep 0.05;
    }
    return 0;
}

# resident memory of the process serving the calls, in KiB
sub rss {
    my ($self, $pid) = @_;
    $pid ||= $self->worker_pid;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)\s+kB/ }
    return undef;
}

sub worker_pid {
    my $self = shift;
    return $self->{pid} unless $self->{master};
    my $master = $self->{pid};
    for my $d (glob '/proc/[0-9]*') {
        open my $fh, '<', "$d/stat" or next;
        my $stat = <$fh>;
        my ($pid, $ppid) = $stat =~ /^(\d+) \(.*\) \S+ (\d+)/ or next;
        return $pid if $ppid == $master;
    }
    return undef;
}

sub signal {
    my ($self, $sig) = @_;
    kill $sig, $self->{pid};
}

# stops nginx; returns valgrind findings (empty when clean or not used)
sub stop {
    my $self = shift;
    return '' unless $self->{pid};
    kill 'QUIT', $self->{pid};
    my $deadline = time + ($self->{valgrind} ? 30 : 10);
    while (time < $deadline) {
        last if waitpid($self->{pid}, WNOHANG) == $self->{pid};
        sleep 0.05;
    }
    if (kill 0, $self->{pid}) {
        kill 'KILL', $self->{pid};
        waitpid($self->{pid}, 0);
    }
    delete $self->{pid};
    return $self->valgrind_report;
}

sub valgrind_report {
    my $self = shift;
    my $report = '';
    for my $f (glob "$self->{dir}/logs/valgrind.*.log") {
        open my $fh, '<', $f or next;
        local $/;
        my $text = <$fh>;
        for my $rec (split /\n(?===\d+== \n)/, $text) {
            $report .= $rec if $rec =~ /Invalid (?:read|write|free)|uninitialised|definitely lost in/;
        }
    }
    return $report;
}

sub DESTROY {
    my $self = shift;
    $self->stop if $self->{pid} && !$Test::Nginx::Util::InSubprocess;
}

1;
