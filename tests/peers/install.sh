#!/bin/sh
# The system packages the tests need, from Debian: the real peers they start themselves on
# 127.0.0.1 (Dovecot for IMAP and POP3, Postfix, OpenLDAP's slapd with ldap-utils for the
# directory services), the browser of the web console's tests (Chromium), chattr (e2fsprogs),
# OpenSSL's command (`openssl ts` as the time-stamping authority), libpst's readpst and lspst
# (pst-utils: a second reader of the PST files the tests write), PostgreSQL (a private server
# of the tests', never the system's cluster) and, for Debian's python3, the venv module
# (python3-venv).
#
# `make test` runs this before anything else. When everything is installed it returns at once
# (it only looks for the programs). As root on a machine with apt-get it installs what is
# missing, and no package install may start a daemon (a system Postfix on port 25, Dovecot on
# 143, slapd on 389, PostgreSQL on 5432). Anywhere else it stops the run, naming the command
# that would install what is missing.
set -eu

missing=""
need() {  # need PACKAGE PROGRAM: PACKAGE is missing unless PROGRAM is there
    [ -x "$2" ] || missing="$missing $1"
}
need dovecot-core /usr/sbin/dovecot
need dovecot-imapd /usr/lib/dovecot/imap
need dovecot-pop3d /usr/lib/dovecot/pop3
need postfix /usr/sbin/postfix
need slapd /usr/sbin/slapd
need ldap-utils /usr/bin/ldapadd
need chromium /usr/bin/chromium
need e2fsprogs /usr/bin/chattr
need openssl /usr/bin/openssl
need pst-utils /usr/bin/readpst
# PostgreSQL's server (the tests start their own, tests/peers/postgres.py): any version.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
# `make` creates .venv with `$PY -m venv`: Debian's python3 can do that only with python3-venv.
if [ "$(command -v "${PY:-python3}")" = /usr/bin/python3 ] \
        && ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    missing="$missing python3-venv"
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "The tests need these Debian packages, which are not installed:$missing" >&2
    if command -v apt-get >/dev/null 2>&1; then
        echo "Install them as root (no daemon is started), then run make test again:" >&2
    else
        echo "This machine has no apt-get. On Debian 12 or newer, this installs them as root" \
            "(no daemon is started):" >&2
    fi
    echo "    sudo sh $0" >&2
    exit 1
fi

echo "Installing the packages the tests need:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Deny service starts while installing, unless the system already has a policy of its own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    trap 'exit 130' HUP INT TERM
fi
# Postfix without a system configuration (no /etc/postfix/main.cf, nothing to start).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
# slapd without a system directory (no database under /etc/ldap/slapd.d, no admin password
# to ask for): the tests give each slapd a configuration of its own.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
apt-get update -qq
# shellcheck disable=SC2086  # one word per package
apt-get install -y -qq --no-install-recommends $missing >/dev/null
