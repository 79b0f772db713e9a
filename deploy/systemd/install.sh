#!/usr/bin/env bash
# Install fluxo as systemd services on this machine (Debian, Raspberry Pi OS,
# Ubuntu). Run it as root, with the roles this machine plays:
#
#   sudo ./install.sh edge                        # a Pi at a site
#   sudo ./install.sh core                        # a core broker
#   sudo ./install.sh -b ./fluxo-linux-arm64 edge # name the binary
#   sudo ./install.sh --now edge                  # and start it
#
# Running it again changes only what differs, so it is also the upgrade:
#
#   - the system user and group "fluxo" (no login, no home) are created if
#     missing;
#   - /etc/fluxo and /etc/fluxo/tls (root:fluxo, 2750) and /var/lib/fluxo
#     (fluxo:fluxo, 0750) are created if missing; put the certificates in
#     /etc/fluxo/tls (made with "fluxo tls", see deploy/README.md), keys
#     0640 so that only root writes and the group fluxo reads them;
#   - the binary (/usr/local/bin/fluxo) and the units
#     (/etc/systemd/system/fluxo-ROLE.service) are installed, or replaced when
#     they differ from the ones given: change a unit with a drop-in
#     ("systemctl edit fluxo-edge"), not in place;
#   - /etc/fluxo/ROLE.yaml (and /etc/fluxo/users.yaml for an edge) are copied
#     only if absent: your settings are never overwritten;
#   - systemd reloads its units and enables fluxo-ROLE, which starts at boot.
#     With --now it is also started, or restarted if it runs and something
#     changed; without, edit /etc/fluxo/ROLE.yaml first, then start it.
#
# The binary is -b FILE, else the first of fluxo, fluxo-linux-ARCH (next to
# this script) and ../../dist/fluxo-linux-ARCH (a checkout after "make dist"),
# ARCH being arm64, armv7 or amd64 after "uname -m".
#
# DESTDIR=DIR installs the files under DIR instead of / and leaves out what
# needs root: the user, file ownership and systemctl (for packaging and tests).
set -euo pipefail

usage() {
	echo "usage: $0 [-b BINARY] [--now] edge|core ..." >&2
	exit 2
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
destdir=${DESTDIR:-}
binary=
now=false
roles=()
while (($#)); do
	case $1 in
	-b | --binary)
		(($# >= 2)) || usage
		binary=$2
		shift 2
		;;
	-n | --now)
		now=true
		shift
		;;
	-h | --help) usage ;;
	edge | core)
		roles+=("$1")
		shift
		;;
	*)
		echo "$0: unknown argument $1" >&2
		usage
		;;
	esac
done
((${#roles[@]})) || usage

say() { echo "install.sh: $*"; }
die() {
	echo "install.sh: $*" >&2
	exit 1
}

if [[ -z $destdir && $EUID -ne 0 ]]; then
	die "run as root (sudo $0 ...), or set DESTDIR to install into a folder"
fi

# The binary for this machine.
if [[ -z $binary ]]; then
	case $(uname -m) in
	aarch64 | arm64) arch=arm64 ;;
	armv7l | armv8l) arch=armv7 ;;
	x86_64 | amd64) arch=amd64 ;;
	*) die "no fluxo build for $(uname -m); give one with -b FILE" ;;
	esac
	for candidate in "$here/fluxo" "$here/fluxo-linux-$arch" "$here/../../dist/fluxo-linux-$arch"; do
		if [[ -f $candidate ]]; then
			binary=$candidate
			break
		fi
	done
	[[ -n $binary ]] || die "no fluxo binary found next to $0 nor in dist/; give one with -b FILE"
fi
[[ -f $binary ]] || die "$binary: no such file"
if ! build=$("$binary" version 2>&1); then
	die "$binary does not run here (is it the build for $(uname -m)?): $build"
fi
say "binary $binary: $(head -n 1 <<<"$build")"

changed=false

# install_file MODE OWNER:GROUP SRC DEST: install SRC as DEST unless DEST
# already has the same content.
install_file() {
	local mode=$1 owner=$2 src=$3 dest=$destdir$4
	if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
		say "unchanged $4"
		return 0
	fi
	local verb=installed
	[[ -e $dest ]] && verb=updated
	# Install beside DEST, then rename: a running binary is not overwritten
	# in place, and nobody sees a half-written file.
	install -m "$mode" "$src" "$dest.new"
	if [[ -z $destdir ]]; then
		chown "$owner" "$dest.new"
	fi
	mv -f "$dest.new" "$dest"
	say "$verb $4"
	changed=true
}

# keep_file MODE OWNER:GROUP SRC DEST: install SRC as DEST only if DEST does
# not exist.
keep_file() {
	local mode=$1 owner=$2 src=$3 dest=$destdir$4
	if [[ -e $dest ]]; then
		say "kept $4 (yours, not overwritten)"
		return 0
	fi
	install -m "$mode" "$src" "$dest"
	if [[ -z $destdir ]]; then
		chown "$owner" "$dest"
	fi
	say "installed $4"
	changed=true
}

# make_dir MODE OWNER:GROUP DIR: create DIR if missing.
make_dir() {
	local mode=$1 owner=$2 dir=$destdir$3
	if [[ -d $dir ]]; then
		return 0
	fi
	install -d -m "$mode" "$dir"
	if [[ -z $destdir ]]; then
		chown "$owner" "$dir"
		chmod "$mode" "$dir" # after chown, which clears the setgid bit
	fi
	say "created $3"
}

# The service user.
if [[ -z $destdir ]]; then
	if ! getent group fluxo >/dev/null; then
		groupadd --system fluxo
		say "created group fluxo"
	fi
	if ! getent passwd fluxo >/dev/null; then
		useradd --system --gid fluxo --home-dir /var/lib/fluxo --no-create-home \
			--shell /usr/sbin/nologin --comment "fluxo services" fluxo
		say "created user fluxo"
	fi
fi

# Folders. /etc/fluxo is setgid, so that a file rewritten there by root
# ("fluxo edge passwd") stays readable by the group fluxo.
make_dir 0755 root:root /usr/local/bin
make_dir 0755 root:root /etc/systemd/system
make_dir 2750 root:fluxo /etc/fluxo
make_dir 2750 root:fluxo /etc/fluxo/tls
make_dir 0750 fluxo:fluxo /var/lib/fluxo

install_file 0755 root:root "$binary" /usr/local/bin/fluxo
for role in "${roles[@]}"; do
	install_file 0644 root:root "$here/fluxo-$role.service" "/etc/systemd/system/fluxo-$role.service"
	keep_file 0640 root:fluxo "$here/$role.yaml" "/etc/fluxo/$role.yaml"
	if [[ $role == edge ]]; then
		keep_file 0640 root:fluxo "$here/users.yaml" /etc/fluxo/users.yaml
	fi
done

if [[ -n $destdir ]]; then
	say "DESTDIR set: no user, ownership or systemctl changes"
	exit 0
fi
if [[ ! -d /run/systemd/system ]]; then
	say "systemd is not running here: enable the units once it is (systemctl enable fluxo-ROLE)"
	exit 0
fi

systemctl daemon-reload
for role in "${roles[@]}"; do
	unit=fluxo-$role.service
	systemctl enable --quiet "$unit"
	if [[ $now == true ]]; then
		if systemctl is-active --quiet "$unit"; then
			if [[ $changed == true ]]; then
				systemctl restart "$unit"
				say "restarted $unit"
			else
				say "$unit runs, nothing changed"
			fi
		else
			systemctl start "$unit"
			say "started $unit"
		fi
	else
		say "enabled $unit; edit /etc/fluxo/$role.yaml, then: systemctl start $unit"
	fi
done
say "logs: journalctl -u fluxo-${roles[0]} -f"
