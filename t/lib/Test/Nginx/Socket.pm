package Test::Nginx::Socket;

# Clean-room runner for the Test::Nginx::Socket block format.
#
# This is NOT openresty's Test::Nginx (which is not packaged in Debian and
# cannot be installed here).  It was written from the documented behaviour of
# that format (see shared/testing.md) on top of Debian's Test::Base, so that
# the project's .t files run unchanged under either runner with `prove -r t`
# (.proverc puts t/lib on @INC; whichever runner comes first on @INC wins).
#
# What it does for each `=== TEST` block:
#   * writes t/servroot/conf/nginx.conf from the block's config sections,
#   * (re)starts nginx as a direct child in the foreground (`daemon off`) and
#     waitpid()s it itself, which keeps restarts fast (no zombie-reap wait),
#     reusing the running nginx when the config text did not change,
#   * sends the request(s), parses the response(s) and checks the response,
#     error-log and mock-server sections,
#   * optionally runs nginx under valgrind and fails on memory errors.
#
# Sections: main_config http_config config post_main_config server_name
#   user_files init request (string or eval ARRAY; an element that is an
#   ARRAY = packets with delay_before/delay_after) raw_request (+
#   raw_request_middle_delay) pipelined_requests more_headers error_code
#   error_code_like response_headers (!Name = absent) response_headers_like
#   raw_response_headers_like response_body response_body_like
#   response_body_unlike response_body_filters error_log no_error_log
#   grep_error_log grep_error_log_out shutdown_error_log wait log_level
#   timeout abort shutdown ignore_response must_die tcp_listen tcp_query
#   tcp_query_len tcp_query_auto_timeout tcp_reply tcp_reply_delay
#   tcp_no_close tcp_shutdown skip_nginx skip_nginx2 skip_eval todo
#   ONLY SKIP LAST (Test::Base); no_check_leak and suppress_stderr are
#   accepted and ignored.
# Not supported: udp_*, http2/http3/curl, stap*, TEST_NGINX_USE_HUP,
#   TEST_NGINX_CHECK_LEAK, TEST_NGINX_BENCHMARK, TEST_NGINX_USE_STAP.
# Environment: TEST_NGINX_BINARY SERVROOT RANDOMIZE LOAD_MODULES (read at
#   `use` time) PORT/SERVER_PORT/CLIENT_PORT NO_SHUFFLE LOG_LEVEL
#   MASTER_PROCESS TIMEOUT SLEEP USE_VALGRIND FORCE_RESTART_ON_TEST NO_CLEAN
#   ERROR_LOG WORKER_USER VERBOSE (all prefixed TEST_NGINX_).
# Where this runner differs on purpose, it is said next to the code
# (e.g. a one-shot tcp mock with a qr// tcp_query reads until it matches).

use strict;
use warnings;

use Test::Base -base;    # -base (not -Base): no Spiffy source filter here

use Cwd ();
use Digest::MD5 ();
use Errno qw(EINTR EAGAIN);
use File::Path qw(make_path remove_tree);
use File::Spec ();
use HTTP::Response ();
use IO::Select ();
use IO::Socket::INET ();
use IO::Socket::UNIX ();
use List::Util qw(shuffle max);
use POSIX qw(WNOHANG);
use Socket qw(IPPROTO_TCP TCP_NODELAY SOCK_STREAM SHUT_WR SOMAXCONN);
use Time::HiRes qw(sleep time);

use Test::Nginx::Util qw(is_str parse_time free_port);

our @EXPORT = qw(
    run_tests run_test repeat_each no_shuffle no_long_string log_level
    master_on master_off master_process_enabled workers worker_connections
    no_root_location check_accum_error_log env_to_nginx timeout
    add_block_preprocessor add_cleanup_handler add_response_body_check
    server_port server_port_for_client server_addr server_root html_dir
    bail_out is_str
    $ServRoot $ServerPort
);

# Exported variables (aliases of the shared ones in Test::Nginx::Util).
our $ServRoot   = $Test::Nginx::Util::ServRoot;
our $ServerPort = $Test::Nginx::Util::ServerPort;

my $OrigPid = $$;         # END must act only in the process that ran the tests
my $Running;              # { pid, conf, block, log_start } of the nginx we started
my $Announced = 0;

# ------------------------------------------------------------------ settings

sub repeat_each {
    $Test::Nginx::Util::RepeatEach = shift if @_;
    return $Test::Nginx::Util::RepeatEach;
}
sub no_shuffle         { $Test::Nginx::Util::NoShuffle = 1 }
sub no_long_string     { $Test::Nginx::Util::NoLongString = 1 }
sub log_level          { $Test::Nginx::Util::LogLevel = shift if @_; $Test::Nginx::Util::LogLevel }
sub master_on          { $Test::Nginx::Util::MasterProcess = 1 }
sub master_off         { $Test::Nginx::Util::MasterProcess = 0 }
sub master_process_enabled { $Test::Nginx::Util::MasterProcess = shift if @_; $Test::Nginx::Util::MasterProcess }
sub workers            { $Test::Nginx::Util::Workers = shift if @_; $Test::Nginx::Util::Workers }
sub worker_connections { $Test::Nginx::Util::WorkerConnections = shift if @_; $Test::Nginx::Util::WorkerConnections }
sub no_root_location   { $Test::Nginx::Util::NoRootLocation = 1 }
sub check_accum_error_log { $Test::Nginx::Util::CheckAccumErrLog = 1 }
sub env_to_nginx       { push @Test::Nginx::Util::EnvToNginx, @_ }
sub timeout            { $Test::Nginx::Util::Timeout = shift if @_; $Test::Nginx::Util::Timeout }
sub add_block_preprocessor  { push @Test::Nginx::Util::BlockPreprocessors, @_ }
sub add_cleanup_handler     { push @Test::Nginx::Util::CleanupHandlers, @_ }
sub add_response_body_check { push @Test::Nginx::Util::ResponseBodyChecks, @_ }
sub server_port        { $Test::Nginx::Util::ServerPort }
sub server_port_for_client { $Test::Nginx::Util::ClientPort }
sub server_addr        { $Test::Nginx::Util::ServerAddr }
sub server_root        { $Test::Nginx::Util::ServRoot }
sub html_dir           { $Test::Nginx::Util::HtmlDir }
sub bail_out           { Test::More::BAIL_OUT(@_) }

sub verbose { Test::More::diag(@_) if $Test::Nginx::Util::Verbose }

# A section's value.  Test::Base accessors return an empty list for an absent
# section, so always call them in scalar context.
sub sec {
    my ($block, $name) = @_;
    return scalar $block->$name;
}

# An expectation that may be given per request as an ARRAY.
sub pick {
    my ($v, $i) = @_;
    return ref $v eq 'ARRAY' ? $v->[$i] : $v;
}

# ------------------------------------------------------------------ main loop

sub run_tests {
    unless ($Announced++) {
        Test::More::diag("clean-room Test::Nginx::Socket-format runner (t/lib), not openresty's Test::Nginx");
    }
    Test::More::plan('no_plan') unless Test::More->builder->has_plan;
    $SIG{PIPE} = 'IGNORE';    # writes to a socket nginx closed must not kill us

    setup_servroot();

    my @blocks = Test::Base::blocks();    # list context: runs the filters
    @blocks = shuffle(@blocks) unless $Test::Nginx::Util::NoShuffle;
    for my $block (@blocks) {
        $_->($block) for @Test::Nginx::Util::BlockPreprocessors;
        run_block($block);
    }
    stop_nginx() unless $ENV{TEST_NGINX_NO_CLEAN};
}

sub run_test { run_block(@_) }

sub setup_servroot {
    my $root = $Test::Nginx::Util::ServRoot;
    if (-d $root) {
        # what we create; other files there are left alone
        remove_tree(map { "$root/$_" } qw(conf logs html cache),
                    map { "${_}_temp" } qw(client_body proxy fastcgi uwsgi scgi));
    }
    make_path($Test::Nginx::Util::ConfDir, $Test::Nginx::Util::LogDir,
              $Test::Nginx::Util::HtmlDir);
}

sub run_block {
    my ($block) = @_;
    my $name = $block->name;

    return if skip_block($block, $name);

    my $todo = sec($block, 'todo');
    my $tb = Test::More->builder;
    if (defined $todo && $todo =~ /^\s*\d+\s*:\s*(.*)/s) {
        $tb->todo_start($1);
    }

    # The sections in which $TEST_NGINX_* variables are expanded (strings,
    # or the strings of an eval ARRAY).
    my %vars = block_vars($block);
    my %s;
    for my $sec (qw(main_config http_config config post_main_config user_files
                    tcp_listen request more_headers server_name)) {
        my $v = sec($block, $sec);
        my $x = sub { ref $_[0] ? $_[0] : expand_vars($_[0], \%vars, $name, $sec) };
        $s{$sec} = ref $v eq 'ARRAY' ? [ map { $x->($_) } @$v ] : $x->($v);
    }

    my $conf = build_conf($block, \%s);
    # before nginx starts: a config may read these files at start-up
    write_user_files($s{user_files});

    if (defined sec($block, 'must_die')) {
        run_must_die($block, $name, $conf);
    } elsif (ensure_nginx($block, $name, $conf)) {
        if (defined(my $init = sec($block, 'init'))) {
            package main;
            eval $init;
            Test::More::fail("$name - init section failed: $@") if $@;
        }
        # A block without a request checks the whole log of a fresh nginx
        # (start-up messages); otherwise only what its requests caused.
        my $no_req = !grep { defined sec($block, $_) } qw(request raw_request pipelined_requests);
        my $log_start = $no_req && $Running->{fresh} ? 0 : log_size();
        $Running->{fresh} = 0;
        for my $rep (0 .. $Test::Nginx::Util::RepeatEach - 1) {
            my $rep_start = $Test::Nginx::Util::CheckAccumErrLog || $no_req ? $log_start : log_size();
            run_requests($block, $name, \%s, $rep);
            if (defined(my $w = sec($block, 'wait'))) { sleep(parse_time($w)) }
            my $sfx = $Test::Nginx::Util::RepeatEach > 1 ? " (repeat $rep)" : '';
            check_error_logs($block, "$name$sfx", read_log($rep_start), $rep);
        }
        check_alive($name);
        if (sec($block, 'shutdown_error_log') || $Test::Nginx::Util::UseValgrind) {
            stop_nginx();    # its checks belong to this block
        }
    }

    $tb->todo_end if defined $todo && $tb->in_todo;
}

# --- skip_nginx: N: < 1.21.0  /  --- skip_eval: N: perl-expr
sub skip_block {
    my ($block, $name) = @_;
    my ($count, $reason);
    for my $sec (qw(skip_nginx skip_nginx2)) {
        my $v = sec($block, $sec) // next;
        for my $spec (split /\s+or\s+/, $v) {    # skip_nginx2 joins two conditions
            my ($n, $op, $ver) = $spec =~ /^\s*(?:(\d+)\s*:\s*)?([<>]=?|==|!=)\s*([\d.]+)/ or next;
            $count //= $n;
            if (eval_version_cmp(nginx_version(), $op, $ver)) {
                $reason = "nginx version " . nginx_version() . " $op $ver";
            }
        }
    }
    if (defined(my $v = sec($block, 'skip_eval'))) {
        my ($n, $expr) = $v =~ /^\s*(\d+)\s*:\s*(.*)$/s;
        $count //= $n;
        package main;
        my $r = eval $expr;
        $reason = "skip_eval: $expr" if $r;
    }
    return 0 unless defined $reason;
    SKIP: { Test::More::skip("$name - $reason", $count || 1) }
    return 1;
}

my $NginxVersion;
sub nginx_version {
    $NginxVersion //= do {
        my $out = `$Test::Nginx::Util::NginxBinary -v 2>&1`;
        $out =~ m{nginx/(\d+(?:\.\d+)*)} ? $1 : '0';
    };
}

sub eval_version_cmp {
    my ($have, $op, $want) = @_;
    my $num = sub { my @p = (split(/\./, shift), 0, 0, 0); sprintf "%03d%03d%03d", @p[0..2] };
    my ($a, $b) = ($num->($have), $num->($want));
    return $op eq '<' ? $a lt $b : $op eq '<=' ? $a le $b : $op eq '>' ? $a gt $b
         : $op eq '>=' ? $a ge $b : $op eq '==' ? $a eq $b : $a ne $b;
}

# ------------------------------------------------------------------ variables

# $TEST_NGINX_RAND_PORT_<N>: one free port per N, the same in the whole block.
sub block_vars {
    my ($block) = @_;
    my %vars = (
        TEST_NGINX_SERVER_PORT => $Test::Nginx::Util::ServerPort,
        TEST_NGINX_CLIENT_PORT => $Test::Nginx::Util::ClientPort,
        TEST_NGINX_SERVER_ROOT => $Test::Nginx::Util::ServRoot,
        TEST_NGINX_SERVROOT    => $Test::Nginx::Util::ServRoot,
        TEST_NGINX_HTML_DIR    => $Test::Nginx::Util::HtmlDir,
    );
    my %seen = ($Test::Nginx::Util::ServerPort => 1);
    # every section, including those a block preprocessor added
    for my $sec (grep { !/^_/ && ref $block->{$_} eq 'ARRAY' } keys %$block) {
        for my $v (flatten(@{ $block->{$sec} })) {
            while ($v =~ /\$TEST_NGINX_RAND_PORT_(\d+)/g) {
                next if $vars{"TEST_NGINX_RAND_PORT_$1"};
                my $p;
                do { $p = free_port() } while $seen{$p}++;
                $vars{"TEST_NGINX_RAND_PORT_$1"} = $p;
            }
        }
    }
    return %vars;
}

sub flatten {
    return map { ref $_ eq 'ARRAY' ? flatten(@$_) : ref $_ eq 'HASH' ? flatten(values %$_)
               : (defined $_ && !ref $_) ? $_ : () } @_;
}

sub expand_vars {
    my ($text, $vars, $name, $sec) = @_;
    return $text unless defined $text;
    $text =~ s{\$(TEST_NGINX_[A-Za-z0-9_]+)}{
        my $k = $1;
        my $v = $vars->{$k} // $ENV{$k};
        bail_out("$name: \$$k is used in --- $sec but is not defined (set it in the environment)")
            unless defined $v;
        $v;
    }ge;
    return $text;
}

# ------------------------------------------------------------------ nginx.conf

sub build_conf {
    my ($block, $s) = @_;
    my $level = sec($block, 'log_level') // $Test::Nginx::Util::LogLevel;
    my $main  = $s->{main_config} // '';
    my $http  = $s->{http_config} // '';
    my $cfg   = $s->{config} // '';
    my $conf  = '';

    for my $so (split ' ', $Test::Nginx::Util::LoadModules) {
        $conf .= "load_module " . File::Spec->rel2abs($so) . ";\n";
    }
    $conf .= "daemon off;\n";
    $conf .= "master_process " . ($Test::Nginx::Util::MasterProcess ? 'on' : 'off') . ";\n";
    $conf .= "worker_processes $Test::Nginx::Util::Workers;\n";
    $conf .= "error_log logs/error.log $level;\n";
    $conf .= "pid logs/nginx.pid;\n";
    if (my $wu = $ENV{TEST_NGINX_WORKER_USER}) {
        $conf .= "user $wu;\n";
    } elsif ($> == 0 && $main !~ /^\s*user\s/m) {
        $conf .= "user root;\n";
    }
    $conf .= "env $_;\n" for @Test::Nginx::Util::EnvToNginx;
    $conf .= "$main\n" if length $main;
    $conf .= "events {\n    worker_connections $Test::Nginx::Util::WorkerConnections;\n}\n";
    $conf .= "http {\n";
    $conf .= "    access_log logs/access.log;\n";
    $conf .= "    default_type text/plain;\n";
    $conf .= "    keepalive_timeout 68;\n";
    # Debian's nginx has absolute temp paths under /var/lib/nginx; keep them
    # in servroot unless the block sets them itself (a duplicate is an error).
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        $conf .= "    ${t}_temp_path ${t}_temp;\n" unless "$http\n$cfg" =~ /\b${t}_temp_path\b/;
    }
    $conf .= "$http\n" if length $http;
    $conf .= "    server {\n";
    $conf .= "        listen $Test::Nginx::Util::ServerPort;\n";
    $conf .= "        server_name " . ($s->{server_name} // 'localhost') =~ s/\s+$//r . ";\n";
    $conf .= "        client_max_body_size 30M;\n";
    $conf .= "$cfg\n" if length $cfg;
    unless ($Test::Nginx::Util::NoRootLocation) {
        $conf .= "        location / {\n            root html;\n            index index.html;\n        }\n";
    }
    $conf .= "    }\n}\n";
    $conf .= "$s->{post_main_config}\n" if defined $s->{post_main_config};
    return $conf;
}

sub write_file {
    my ($path, $content) = @_;
    open my $fh, '>:raw', $path or bail_out("cannot write $path: $!");
    print $fh $content;
    close $fh;
}

sub slurp {
    my ($path, $from) = @_;
    open my $fh, '<:raw', $path or return '';
    seek $fh, $from, 0 if $from;
    local $/;
    my $d = <$fh>;
    return $d // '';
}

# --- user_files: ">>> name" headers (or an eval ARRAY of [name, content])
sub write_user_files {
    my ($spec) = @_;
    my $html = $Test::Nginx::Util::HtmlDir;
    remove_tree($html);
    make_path($html);
    return unless defined $spec;
    my @files;
    if (ref $spec eq 'ARRAY') {
        @files = map { [ @$_[0, 1] ] } @$spec;
    } else {
        for my $chunk (split /^>>> /m, $spec) {
            next unless length $chunk;
            my ($fname, $content) = split /\n/, $chunk, 2;
            $fname =~ s/\s+\d+\s*$//;    # an optional mtime after the name is ignored
            push @files, [ $fname, $content // '' ];
        }
    }
    for my $f (@files) {
        my $path = "$html/$f->[0]";
        make_path((File::Spec->splitpath($path))[1]);
        write_file($path, $f->[1]);
    }
}

# ------------------------------------------------------------------ nginx process

sub log_size { -s $Test::Nginx::Util::ErrLogFile || 0 }
sub read_log { slurp($Test::Nginx::Util::ErrLogFile, $_[0]) }

sub nginx_cmd {
    my @cmd = ($Test::Nginx::Util::NginxBinary, '-p', "$Test::Nginx::Util::ServRoot/",
               '-c', 'conf/nginx.conf', '-e', 'logs/error.log');
    return @cmd unless $Test::Nginx::Util::UseValgrind;
    my @vg = ('valgrind', '--tool=memcheck', '--leak-check=full',
              '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
              '--num-callers=30', "--log-file=$Test::Nginx::Util::LogDir/valgrind.%p.log");
    push @vg, '--suppressions=' . Cwd::abs_path('valgrind.suppress') if -f 'valgrind.suppress';
    return (@vg, @cmd);
}

# Start nginx as our direct child; its stderr goes to logs/stderr.log.
# Returns the pid; the caller waits for readiness or death.
sub spawn_nginx {
    my ($conf) = @_;
    write_file($Test::Nginx::Util::ConfFile, $conf);
    unlink $Test::Nginx::Util::PidFile;
    write_file($Test::Nginx::Util::ErrLogFile, '');
    unlink glob("$Test::Nginx::Util::LogDir/valgrind.*.log");
    my @cmd = nginx_cmd();
    verbose("starting: @cmd");
    my $pid = fork // bail_out("fork failed: $!");
    if ($pid == 0) {
        $Test::Nginx::Util::InSubprocess = 1;
        open STDIN, '<', '/dev/null';
        open STDERR, '>', $Test::Nginx::Util::StderrFile;
        open STDOUT, '>&', \*STDERR;
        exec @cmd or POSIX::_exit(127);
    }
    return $pid;
}

# nginx writes its pid file after it has opened (and listens on) its sockets,
# so the pid file is a readiness signal that needs no probe connection (a
# probe would leave log lines in the first request's error-log window).
sub wait_ready {
    my ($pid) = @_;
    my $deadline = time + ($Test::Nginx::Util::UseValgrind ? 20 : 5);
    while (time < $deadline) {
        my $r = waitpid($pid, WNOHANG);
        return (0, $?) if $r == $pid;
        # our pid in it: not a stale file of another run in the same servroot
        return (1) if slurp($Test::Nginx::Util::PidFile) =~ /^$pid\b/;
        sleep 0.005;
    }
    return (0, undef);
}

sub ensure_nginx {
    my ($block, $name, $conf) = @_;
    if ($Running && $Running->{conf} eq $conf && !$Test::Nginx::Util::UseValgrind
        && !$ENV{TEST_NGINX_FORCE_RESTART_ON_TEST} && waitpid($Running->{pid}, WNOHANG) == 0) {
        $Running->{block} = $block;
        return 1;
    }
    stop_nginx();
    my $pid = spawn_nginx($conf);
    my ($ok, $status) = wait_ready($pid);
    if (!$ok) {
        kill KILL => $pid unless defined $status;
        waitpid($pid, 0) unless defined $status;
        Test::More::fail("$name - nginx started");
        Test::More::diag("nginx failed to start:\n" . slurp($Test::Nginx::Util::StderrFile)
                         . slurp($Test::Nginx::Util::ErrLogFile));
        check_valgrind($name);
        return 0;
    }
    $Running = { pid => $pid, conf => $conf, block => $block, fresh => 1 };
    verbose("nginx $pid running");
    return 1;
}

# Stop the running nginx (QUIT, then TERM, then KILL), reap it, and run the
# checks that need it gone: --- shutdown_error_log and valgrind.
sub stop_nginx {
    return unless $Running;
    my ($pid, $block) = @{$Running}{qw(pid block)};
    my $name = $block->name;
    $Running = undef;
    my $status;
    if (waitpid($pid, WNOHANG) == $pid) {
        $status = $?;
    } else {
        my $grace = $Test::Nginx::Util::UseValgrind ? 20 : 3;
        for my $sig (QUIT => TERM => 'KILL') {
            kill $sig => $pid;
            my $deadline = time + ($sig eq 'KILL' ? 5 : $grace);
            while (time < $deadline) {
                if (waitpid($pid, WNOHANG) == $pid) { $status = $?; last }
                sleep 0.005;
            }
            last if defined $status;
            Test::More::diag("WARNING: $name - nginx did not exit on $sig");
        }
    }
    if (defined $status && ($status & 127) && ($status & 127) != 9) {
        Test::More::fail("$name - nginx exited on signal " . ($status & 127));
    }
    if (my $pats = sec($block, 'shutdown_error_log')) {
        my $log = slurp($Test::Nginx::Util::StderrFile) . read_log(0);
        check_log_patterns($name, $log, $pats, 1, 'shutdown error_log');
    }
    check_valgrind($name);
}

sub check_alive {
    my ($name) = @_;
    return unless $Running;
    if (waitpid($Running->{pid}, WNOHANG) == $Running->{pid}) {
        my $st = $?;
        Test::More::fail("$name - nginx exited unexpectedly ("
            . (($st & 127) ? "signal " . ($st & 127) : "status " . ($st >> 8)) . ")");
        Test::More::diag(tail(slurp($Test::Nginx::Util::StderrFile) . read_log(0), 30));
        $Running = undef;
        check_valgrind($name);
    }
}

sub tail {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    return join "\n", @l[max(0, @l - $n) .. $#l];
}

# --- must_die [exit code]: nginx must fail to start; then the error_log
# patterns are looked for in nginx's stderr plus logs/error.log.
sub run_must_die {
    my ($block, $name, $conf) = @_;
    stop_nginx();
    my $pid = spawn_nginx($conf);
    my ($ok, $status) = wait_ready($pid);
    if ($ok || !defined $status) {
        kill KILL => $pid;
        waitpid($pid, 0);
        Test::More::fail("$name - nginx should have died but did not");
    } else {
        my $want = sec($block, 'must_die');
        my $code = $status >> 8;
        if (defined $want && $want =~ /^\d+$/) {
            Test::More::is($code, $want, "$name - nginx exit code");
        } elsif ($status == 0) {
            Test::More::fail("$name - nginx exited with status 0; it should have failed");
        }
    }
    my $log = slurp($Test::Nginx::Util::StderrFile) . read_log(0);
    check_error_logs($block, $name, $log, 0, 'expected errors');
    check_valgrind($name);
}

# Fail on valgrind records that mean a memory bug (suppressed records never
# reach the log, so everything found here is unsuppressed).
sub check_valgrind {
    my ($name) = @_;
    return unless $Test::Nginx::Util::UseValgrind;
    my $bad = qr/^(?:Invalid\ (?:read|write|free)|Mismatched\ free|Source\ and\ destination\ overlap
                   |Conditional\ jump\ or\ move\ depends\ on\ uninitialised|Use\ of\ uninitialised
                   |Syscall\ param\ .*\ uninitialised|.*\ bytes\ in\ .*\ blocks\ are\ definitely\ lost)/x;
    for my $file (sort glob("$Test::Nginx::Util::LogDir/valgrind.*.log")) {
        my $text = slurp($file);
        my @records = split /^==\d+==\s*\n/m, $text;
        for my $rec (@records) {
            (my $body = $rec) =~ s/^==\d+== ?//mg;
            my ($first) = $body =~ /\A\s*(.*)/;
            next unless defined $first && $first =~ $bad;
            Test::More::fail("$name - valgrind: $first");
            Test::More::diag("$file:\n$body");
        }
        # Keep the reports for inspection, but never check one twice.
        rename $file, "$file.checked";
    }
}

# ------------------------------------------------------------------ requests

# Turn the block's request sections into a list of
#   { pieces => [ {data, delay_before, delay_after}, ... ], method, count }
# one per connection; `count` > 1 for pipelined requests.
sub build_requests {
    my ($block, $name, $s) = @_;
    my $more = $s->{more_headers};
    if (defined(my $raw = sec($block, 'raw_request'))) {
        my $delay = parse_time(sec($block, 'raw_request_middle_delay'))
                    // $ENV{TEST_NGINX_SLEEP} // 0.015;
        my @parts = ref $raw eq 'ARRAY' ? @$raw : ($raw);
        my @pieces;
        for my $i (0 .. $#parts) {
            my $p = ref $parts[$i] eq 'HASH' ? { %{ $parts[$i] } } : { value => $parts[$i] };
            $p->{delay_before} //= $delay if $i > 0;
            push @pieces, { data => $p->{value}, delay_before => $p->{delay_before},
                            delay_after => $p->{delay_after} };
        }
        my ($method) = ($parts[0] // '') =~ /^(\w+)/;
        return ({ pieces => \@pieces, method => $method // 'GET', count => 1 });
    }
    if (defined(my $pl = sec($block, 'pipelined_requests'))) {
        my @reqs = ref $pl eq 'ARRAY' ? @$pl : ($pl);
        my $data = '';
        my @methods;
        for my $i (0 .. $#reqs) {
            my $r = http_request($reqs[$i], pick($more, $i), $i == $#reqs ? 'close' : 'keep-alive');
            $data .= $r->{head} . $r->{body};
            push @methods, $r->{method};
        }
        return ({ pieces => [ { data => $data } ], methods => \@methods, count => scalar @reqs });
    }
    my $req = $s->{request};
    return () unless defined $req;
    my @reqs = ref $req eq 'ARRAY' ? @$req : ($req);
    my @out;
    for my $i (0 .. $#reqs) {
        my $one = $reqs[$i];
        if (ref $one eq 'ARRAY') {
            # packets: strings or { value, delay_before, delay_after }, joined
            # into one request and sent in those slices.
            my @p = map { ref $_ eq 'HASH' ? $_ : { value => $_ } } @$one;
            my $r = http_request(join('', map { $_->{value} } @p), pick($more, $i));
            my ($first_line) = $p[0]{value} =~ /^([^\n]*\n?)/;
            my $off = -length $first_line;
            my @pieces;
            for my $k (0 .. $#p) {
                my $from = max(0, $off);
                $off += length $p[$k]{value};
                my $to = $k == $#p ? length $r->{body} : max(0, $off);
                my $data = substr($r->{body}, $from, max(0, $to - $from)) // '';
                $data = $r->{head} . $data if $k == 0;
                push @pieces, { data => $data, delay_before => $p[$k]{delay_before},
                                delay_after => $p[$k]{delay_after} };
            }
            push @out, { pieces => \@pieces, method => $r->{method}, count => 1 };
        } else {
            my $r = http_request($one, pick($more, $i));
            push @out, { pieces => [ { data => $r->{head} . $r->{body} } ],
                         method => $r->{method}, count => 1 };
        }
    }
    return @out;
}

# "METHOD /uri [HTTP/1.x]\nbody" -> request head and body.  Host and
# Connection are added unless --- more_headers gives them; Content-Length
# for a body.  One trailing newline of the body is dropped (Test::Base's trim
# always leaves one).
sub http_request {
    my ($text, $more, $conn) = @_;
    my ($first, $body) = split /\n/, $text, 2;
    $first =~ s/^\s+|\s+$//g;
    my ($method, $uri, $proto) = split /\s+/, $first;
    $proto //= 'HTTP/1.1';
    $body //= '';
    $body =~ s/\n\z//;
    my @h = grep { /\S/ } split /\n/, $more // '';
    s/\r$// for @h;
    my %has = map { /^\s*([^:\s]+)\s*:/ ? (lc $1 => 1) : () } @h;
    my $head = "$method $uri $proto\r\n";
    $head .= "Host: localhost\r\n" unless $has{host};
    $head .= "Connection: " . ($conn // 'close') . "\r\n" unless $has{connection};
    $head .= "$_\r\n" for @h;
    if (!$has{'content-length'} && !$has{'transfer-encoding'}
        && (length $body || $method =~ /^(?:POST|PUT|PATCH)$/)) {
        $head .= "Content-Length: " . length($body) . "\r\n";
    }
    return { head => "$head\r\n", body => $body, method => $method };
}

# Send the pieces and read until EOF, inactivity timeout or (for a complete
# keep-alive response) the end of the response.
sub send_and_read {
    my ($req, $block) = @_;
    my $timeout = parse_time(sec($block, 'timeout')) // parse_time($Test::Nginx::Util::Timeout);
    my $sock = IO::Socket::INET->new(PeerAddr => $Test::Nginx::Util::ServerAddr,
                                     PeerPort => $Test::Nginx::Util::ClientPort,
                                     Proto => 'tcp', Timeout => $timeout)
        or return { error => "connect failed: $!", data => '' };
    setsockopt($sock, IPPROTO_TCP, TCP_NODELAY, 1);
    binmode $sock;
    my $sel = IO::Select->new($sock);
    for my $p (@{ $req->{pieces} }) {
        sleep(parse_time($p->{delay_before})) if $p->{delay_before};
        my $data = $p->{data} // '';
        utf8::encode($data) if $data =~ /[^\x00-\xff]/;
        while (length $data) {
            last unless $sel->can_write($timeout);
            my $n = syswrite($sock, $data);
            if (!defined $n) { next if $! == EINTR || $! == EAGAIN; last }
            substr($data, 0, $n, '');
        }
        sleep(parse_time($p->{delay_after})) if $p->{delay_after};
    }
    shutdown($sock, SHUT_WR) if defined sec($block, 'shutdown');

    my ($buf, $timed_out) = ('', 0);
    while (1) {
        unless ($sel->can_read($timeout)) { $timed_out = 1; last }
        my $n = sysread($sock, $buf, 65536, length $buf);
        next if !defined $n && $! == EINTR;
        last unless $n;    # EOF or error (e.g. reset): what we have is the response
        last if $req->{count} == 1 && response_complete($buf, $req->{method});
    }
    close $sock;
    return { data => $buf, timed_out => $timed_out };
}

# A keep-alive response is complete once its body is; we do not wait for a
# close that will not come.  Responses nginx will close are read to EOF, so
# its log lines for the request are written before the log checks.
sub response_complete {
    my ($buf, $method) = @_;
    my $r = parse_response($buf, $method) or return 0;
    return 0 if $r->{code} == 101 || $r->{incomplete};
    my $conn = $r->{res}->header('Connection') // '';
    return $conn =~ /keep-alive/i ? 1 : 0;
}

# Parse one response from the front of $buf.  Returns undef if the header is
# not complete, else { code, res, raw_headers, body, rest, incomplete }.
sub parse_response {
    my ($buf, $method) = @_;
    my $end = index($buf, "\r\n\r\n");
    return undef if $end < 0;
    my $raw = substr($buf, 0, $end + 4);
    my $rest = substr($buf, $end + 4);
    my $res = HTTP::Response->parse(substr($raw, 0, $end));
    my $code = $res->code // 0;
    my %r = (code => $code, res => $res, raw_headers => $raw, body => '', rest => '');
    if ($code == 101 || $code == 304) {
        # WebSocket frames (or whatever follows) are the "body", unparsed.
        $r{body} = $rest;
    } elsif (($method // '') eq 'HEAD' || $code == 204 || $code < 200) {
        $r{rest} = $rest;
    } elsif (($res->header('Transfer-Encoding') // '') =~ /chunked/i) {
        my $body = '';
        pos($rest) = 0;
        while (1) {
            unless ($rest =~ /\G([0-9a-fA-F]+)[^\r\n]*\r\n/gc) { $r{incomplete} = 1; last }
            my $size = hex $1;
            if ($size == 0) {
                # trailers, then the final CRLF
                if ($rest =~ /\G((?:[^\r\n]+\r\n)*)\r\n/gc) { last }
                $r{incomplete} = 1;
                last;
            }
            if (length($rest) - pos($rest) < $size + 2) {
                $body .= substr($rest, pos($rest));
                $r{incomplete} = 1;
                pos($rest) = length $rest;
                last;
            }
            $body .= substr($rest, pos($rest), $size);
            pos($rest) = pos($rest) + $size + 2;
        }
        $r{body} = $body;
        $r{rest} = substr($rest, pos($rest) // length $rest);
    } elsif (defined(my $cl = $res->header('Content-Length'))) {
        $r{body} = substr($rest, 0, $cl);
        $r{rest} = length($rest) > $cl ? substr($rest, $cl) : '';
        $r{incomplete} = 1 if length($rest) < $cl;
    } else {
        $r{body} = $rest;
        $r{incomplete} = 1;    # ends at EOF
    }
    return \%r;
}

sub run_requests {
    my ($block, $name, $s, $rep) = @_;
    my @reqs = build_requests($block, $name, $s);
    my $multi = @reqs > 1 || $Test::Nginx::Util::RepeatEach > 1;
    my $req_idx = 0;
    for my $i (0 .. $#reqs) {
        my $req = $reqs[$i];
        my $mock = start_tcp_mock($block, $name, $s, $i);
        my $got = send_and_read($req, $block);
        my $sfx = $multi ? " (repeat $rep, req $i)" : '';
        finish_tcp_mock($block, $name . $sfx, $mock, $i) if $mock;

        Test::More::diag("$name$sfx - $got->{error}") if $got->{error};
        if ($got->{timed_out} && !defined sec($block, 'abort')) {
            Test::More::fail("ERROR: client socket timed out - $name$sfx");
        }
        next if defined sec($block, 'ignore_response');

        if ($req->{count} > 1) {
            # pipelined: parse the responses one after the other
            my $buf = $got->{data};
            for my $k (0 .. $req->{count} - 1) {
                my $r = parse_response($buf, $req->{methods}[$k]);
                check_response($block, "$name (pipelined req $k)", $r, $req_idx++, $rep);
                $buf = $r ? $r->{rest} : '';
            }
        } else {
            check_response($block, $name . $sfx, parse_response($got->{data}, $req->{method}),
                           $req_idx++, $rep, $got->{data});
        }
    }
}

sub check_response {
    my ($block, $name, $r, $i, $rep, $raw) = @_;
    $r //= { code => undef, res => HTTP::Response->new, raw_headers => '', body => $raw // '' };
    my $res = $r->{res};

    if (defined(my $like = pick(sec($block, 'error_code_like'), $i))) {
        Test::More::like($r->{code}, ref $like ? $like : qr/$like/, "$name - status code ok");
    } else {
        my $want = pick(sec($block, 'error_code'), $i);
        $want = 200 unless defined $want && length $want;
        Test::More::is($r->{code}, $want, "$name - status code ok");
    }

    if (defined(my $hs = pick(sec($block, 'response_headers'), $i))) {
        for my $line (header_lines($hs)) {
            if ($line =~ /^\s*!\s*([^:\s]+)/) {
                Test::More::ok(!defined $res->header($1), "$name - header $1 not present");
            } elsif ($line =~ /^\s*([^:]+?)\s*:\s*(.*?)\s*$/) {
                is_str(scalar $res->header($1), $2, "$name - header $1 ok");
            }
        }
    }
    if (defined(my $hs = pick(sec($block, 'response_headers_like'), $i))) {
        for my $line (header_lines($hs)) {
            my ($h, $pat) = $line =~ /^\s*([^:]+?)\s*:\s*(.*?)\s*$/ or next;
            Test::More::like(scalar $res->header($h), qr/^$pat$/, "$name - header $h like ok");
        }
    }
    if (defined(my $p = pick(sec($block, 'raw_response_headers_like'), $i))) {
        Test::More::like($r->{raw_headers}, ref $p ? $p : qr/$p/s,
                         "$name - raw_response_headers_like");
    }

    my $body = apply_body_filters(sec($block, 'response_body_filters'), $r->{body});
    if (defined(my $want = pick(sec($block, 'response_body'), $i))) {
        is_str($body, $want, "$name - response_body - response is expected");
    }
    # A pattern section keeps Test::Base's trailing newline; drop it so that
    # "--- response_body_like" followed by one line means that line.
    if (defined(my $p = pick(sec($block, 'response_body_like'), $i))) {
        $p =~ s/\n\z// unless ref $p;
        Test::More::like($body, ref $p ? $p : qr/$p/s, "$name - response_body_like - response is expected");
    }
    if (defined(my $p = pick(sec($block, 'response_body_unlike'), $i))) {
        $p =~ s/\n\z// unless ref $p;
        Test::More::unlike($body, ref $p ? $p : qr/$p/s, "$name - response_body_unlike - response is expected");
    }
    $_->($block, $body, $i, $rep, 0) for @Test::Nginx::Util::ResponseBodyChecks;
}

sub header_lines {
    my ($v) = @_;
    return ref $v eq 'ARRAY' ? @$v : grep { /\S/ } split /\n/, $v;
}

# --- response_body_filters: a CODE ref, names (uc lc length md5_hex or a
# main:: sub), or an ARRAY of those, applied in order.
sub apply_body_filters {
    my ($f, $body) = @_;
    return $body unless defined $f;
    my %builtin = (uc => sub { uc $_[0] }, lc => sub { lc $_[0] },
                   length => sub { length $_[0] }, md5_hex => sub { Digest::MD5::md5_hex($_[0]) });
    for my $one (ref $f eq 'ARRAY' ? @$f : ref $f ? ($f) : split ' ', $f) {
        my $code = ref $one eq 'CODE' ? $one : $builtin{$one} // main->can($one)
            or bail_out("unknown response_body_filters filter '$one'");
        $body = $code->($body);
    }
    return $body;
}

# ------------------------------------------------------------------ log checks

# Check the error-log sections against $log (the part of error.log that
# belongs to this repeat of the block).  [alert]/[crit]/[emerg] lines only
# produce a WARNING, as in the real runner, unless $expected_errors.
sub check_error_logs {
    my ($block, $name, $log, $rep, $expected_errors) = @_;

    if (my $f = $ENV{TEST_NGINX_ERROR_LOG}) {
        if (open my $fh, '>>', $f) { print $fh "=== $name\n$log" }
    }
    unless ($expected_errors) {
        for my $line (grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, $log) {
            Test::More::diag("WARNING: $name - $line");
        }
    }
    if (defined(my $p = sec($block, 'error_log'))) {
        check_log_patterns("$name", $log, $p, 1, 'error_log');
    }
    if (defined(my $p = sec($block, 'no_error_log'))) {
        check_log_patterns("$name", $log, $p, 0, 'error_log');
    }
    if (defined(my $g = sec($block, 'grep_error_log'))) {
        my $re = ref $g ? $g : do { (my $t = $g) =~ s/\n\z//; qr/\Q$t\E/ };
        my $out = '';
        for my $line (split /\n/, $log) {
            $out .= "$&\n" while $line =~ /$re/g;
        }
        my $want = sec($block, 'grep_error_log_out');
        $want = $want->[$rep] if ref $want eq 'ARRAY';
        is_str($out, $want, "$name - grep_error_log_out") if defined $want;
    }
}

# Patterns: lines of a string (substrings) or an eval ARRAY of strings/qr//.
sub check_log_patterns {
    my ($name, $log, $spec, $must, $what) = @_;
    my @pats = ref $spec eq 'ARRAY' ? @$spec : ref $spec ? ($spec) : grep { length } split /\n/, $spec;
    for my $p (@pats) {
        my $found = ref $p eq 'Regexp' ? $log =~ $p : index($log, $p) >= 0;
        my $label = ref $p eq 'Regexp' ? "$p" : $p;
        if ($must) {
            Test::More::ok($found, "$name - pattern \"$label\" should exist in $what");
        } else {
            Test::More::ok(!$found, "$name - pattern \"$label\" should not exist in $what");
        }
    }
}

# ------------------------------------------------------------------ tcp mock

# --- tcp_listen: a one-shot mock server forked for one request.  It
# accepts one connection, reads the query (--- tcp_query_len bytes, or
# the length of a string --- tcp_query, or until a qr// tcp_query matches,
# or until --- tcp_query_auto_timeout of silence, else one read), reports
# it to us through a pipe, then writes --- tcp_reply (string, ARRAY of
# writes, or sub { $query } returning either) after --- tcp_reply_delay,
# and closes (unless --- tcp_no_close).  --- tcp_shutdown: N shuts the
# socket down (0 read, 1 write, 2 both) right after accept.
sub start_tcp_mock {
    my ($block, $name, $s, $i) = @_;
    my $listen = pick($s->{tcp_listen}, $i);
    return undef unless defined $listen && $listen =~ /\S/;
    $listen =~ s/^\s+|\s+$//g;
    my $srv;
    if ($listen =~ m{^(?:unix:)?(/.+)$}) {
        unlink $1;
        $srv = IO::Socket::UNIX->new(Local => $1, Listen => SOMAXCONN, Type => SOCK_STREAM);
    } else {
        my ($host, $port) = $listen =~ /^(?:(.*):)?(\d+)$/
            or bail_out("$name: bad --- tcp_listen value '$listen'");
        $srv = IO::Socket::INET->new(LocalAddr => $host || '127.0.0.1', LocalPort => $port,
                                     Listen => SOMAXCONN, ReuseAddr => 1, Proto => 'tcp');
    }
    bail_out("$name: cannot listen on $listen: $!") unless $srv;

    pipe(my $rd, my $wr) or bail_out("pipe: $!");
    $wr->autoflush(1);
    my $pid = fork // bail_out("fork failed: $!");
    if ($pid == 0) {
        $Test::Nginx::Util::InSubprocess = 1;
        close $rd;
        $SIG{TERM} = 'DEFAULT';
        eval { tcp_mock_child($block, $srv, $wr, $i) };
        POSIX::_exit(0);
    }
    close $srv;
    close $wr;
    return { pid => $pid, pipe => $rd };
}

sub tcp_mock_child {
    my ($block, $srv, $wr, $i) = @_;
    my $timeout = max(10, parse_time($Test::Nginx::Util::Timeout) // 3);
    IO::Select->new($srv)->can_read($timeout) or return;
    my $c = $srv->accept or return;
    binmode $c;
    my $shut = sec($block, 'tcp_shutdown');
    shutdown($c, $shut) if defined $shut && $shut =~ /^[012]$/;

    my $want   = pick(sec($block, 'tcp_query'), $i);
    my $len    = sec($block, 'tcp_query_len');
    my $auto   = parse_time(sec($block, 'tcp_query_auto_timeout'));
    my $sel = IO::Select->new($c);
    my $q = '';
    unless (defined $shut && $shut ne '1') {    # cannot read after shutting read
        while (1) {
            my $wait = $auto // (ref $want eq 'Regexp' ? 0.5 : $timeout);
            last unless $sel->can_read($wait);
            my $n = sysread($c, $q, 65536, length $q);
            last unless $n;
            print {$wr} substr($q, -$n);    # stream it: a short query is still reported
            last if defined $len && $len =~ /^\d+$/ ? length($q) >= $len
                  : defined $auto                 ? 0
                  : ref $want eq 'Regexp'         ? $q =~ $want
                  : defined $want                 ? length($q) >= length($want)
                  :                                 1;
        }
    }
    close $wr;

    my $reply = sec($block, 'tcp_reply');    # an ARRAY is a list of writes
    if (defined $reply && !(defined $shut && $shut ne '0')) {
        sleep(parse_time(sec($block, 'tcp_reply_delay')) // 0);
        $reply = $reply->($q) if ref $reply eq 'CODE';
        my @parts = ref $reply eq 'ARRAY' ? @$reply : ($reply);
        for my $k (0 .. $#parts) {
            sleep($ENV{TEST_NGINX_SLEEP} // 0.015) if $k;
            my $d = $parts[$k] // '';
            utf8::encode($d) if $d =~ /[^\x00-\xff]/;
            while (length $d) {
                my $n = syswrite($c, $d) or last;
                substr($d, 0, $n, '');
            }
        }
    }
    if (defined sec($block, 'tcp_no_close')) {
        # keep the connection until nginx closes it (or we are killed)
        1 while $sel->can_read(3600) && sysread($c, my $junk, 65536);
        return;
    }
    # Close without a reset: FIN first, then drain what nginx still sends.
    shutdown($c, SHUT_WR);
    1 while $sel->can_read(1) && sysread($c, my $junk, 65536);
    close $c;
}

sub finish_tcp_mock {
    my ($block, $name, $mock, $i) = @_;
    # The child reports the query before it replies, so it is normally in
    # the pipe already; wait a little in case nginx connected late.
    my $q = '';
    my $sel = IO::Select->new($mock->{pipe});
    while ($sel->can_read(1)) {
        last unless sysread($mock->{pipe}, $q, 65536, length $q);
    }
    close $mock->{pipe};
    kill TERM => $mock->{pid};
    waitpid($mock->{pid}, 0);
    if (defined(my $want = pick(sec($block, 'tcp_query'), $i))) {
        is_str($q, $want, "$name - tcp_query ok");
    }
    if (defined(my $len = sec($block, 'tcp_query_len'))) {
        Test::More::is(length $q, $len, "$name - TCP query length ok");
    }
}

# ------------------------------------------------------------------ END

END {
    if (!$Test::Nginx::Util::InSubprocess && $$ == $OrigPid) {
        my $keep = $?;
        stop_nginx() unless $ENV{TEST_NGINX_NO_CLEAN};
        $_->() for @Test::Nginx::Util::CleanupHandlers;
        if ($Test::Nginx::Util::Randomize && !$ENV{TEST_NGINX_NO_CLEAN}) {
            remove_tree($Test::Nginx::Util::ServRoot);
        }
        $? = $keep;
    }
}

1;
