package Test::Nginx::Util;

# Shared state and small helpers of this project's clean-room runner for the
# Test::Nginx::Socket block format (see Test/Nginx/Socket.pm).  This is NOT
# openresty's Test::Nginx::Util; it only keeps the package name so that .t
# files written for the real runner (which refer to
# $Test::Nginx::Util::InSubprocess and Test::Nginx::Util::is_str) run
# unchanged.

use strict;
use warnings;

use Exporter 'import';
use File::Spec ();
use IO::Socket::INET ();
use Socket qw(SOMAXCONN);
use Test::More ();
use Test::LongString ();

our @EXPORT_OK = qw(is_str parse_time free_port);

# A process forked from a .t file (a mock server, a helper) sets this to 1 so
# that the runner's END block does not stop nginx from inside the child.
our $InSubprocess = 0;

# ---- settings, changed by the exported functions of Test::Nginx::Socket ----

our $RepeatEach        = 1;
our $NoShuffle         = $ENV{TEST_NGINX_NO_SHUFFLE} ? 1 : 0;
our $NoLongString      = 0;
our $LogLevel          = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcess     = ($ENV{TEST_NGINX_MASTER_PROCESS} // 'off') eq 'on' ? 1 : 0;
our $Workers           = 1;
our $WorkerConnections = 64;
our $NoRootLocation    = 0;
our $CheckAccumErrLog  = 0;
our @EnvToNginx;
our $Timeout           = $ENV{TEST_NGINX_TIMEOUT} // 3;
our @BlockPreprocessors;
our @CleanupHandlers;
our @ResponseBodyChecks;
our $UseValgrind       = $ENV{TEST_NGINX_USE_VALGRIND} ? 1 : 0;
our $Verbose           = $ENV{TEST_NGINX_VERBOSE} ? 1 : 0;
our $Randomize         = $ENV{TEST_NGINX_RANDOMIZE} ? 1 : 0;

# Read once, when the runner is loaded (the documented behaviour): set it in
# the shell or in a BEGIN block before `use Test::Nginx::Socket`.
our $LoadModules       = $ENV{TEST_NGINX_LOAD_MODULES} // '';

# The port nginx listens on and the one the client connects to.
our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
$ServerPort = free_port() if $Randomize;
our $ClientPort = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;
our $ServerAddr = $ENV{TEST_NGINX_SERVER_ADDR} || '127.0.0.1';

# servroot: nginx's -p prefix, with conf/, logs/ and html/.
our $ServRoot = $ENV{TEST_NGINX_SERVROOT}
    || File::Spec->catdir(File::Spec->rel2abs('t'), $Randomize ? "servroot_$ServerPort" : 'servroot');
$ServRoot = File::Spec->rel2abs($ServRoot);
our $ConfDir    = "$ServRoot/conf";
our $LogDir     = "$ServRoot/logs";
our $HtmlDir    = "$ServRoot/html";
our $ConfFile   = "$ConfDir/nginx.conf";
our $ErrLogFile = "$LogDir/error.log";
our $StderrFile = "$LogDir/stderr.log";
our $PidFile    = "$LogDir/nginx.pid";

# nginx binary: TEST_NGINX_BINARY, else `nginx` on PATH, else Debian's.
our $NginxBinary = $ENV{TEST_NGINX_BINARY} || do {
    my ($found) = grep { -x "$_/nginx" } File::Spec->path;
    $found ? "$found/nginx" : '/usr/sbin/nginx';
};

# Compare a string with an expected string (exact) or a qr// (match).
# Exact comparisons use Test::LongString (shows where the strings differ)
# unless no_long_string() was called; then Test::Base's is() with a diff.
sub is_str {
    my ($got, $expected, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    if (ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $name);
    }
    if ($NoLongString) {
        return defined &Test::Base::is ? Test::Base::is($got, $expected, $name)
                                        : Test::More::is($got, $expected, $name);
    }
    return Test::LongString::is_string($got, $expected, $name);
}

# "1.5", "1.5s", "200ms" -> seconds (a number); undef stays undef.
sub parse_time {
    my ($v) = @_;
    return undef unless defined $v;
    $v =~ s/^\s+|\s+$//g;
    return undef if $v eq '';
    return $1 / 1000 if $v =~ /^(\d+(?:\.\d+)?)ms$/;
    return $1        if $v =~ /^(\d+(?:\.\d+)?)s?$/;
    die "bad time value '$v' (want e.g. 1.5, 2s or 300ms)\n";
}

# A TCP port that is free right now on 127.0.0.1 (the kernel picks it).
sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => SOMAXCONN, ReuseAddr => 1)
        or die "cannot find a free port: $!\n";
    my $port = $s->sockport;
    close $s;
    return $port;
}

1;
