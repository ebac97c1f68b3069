#!/usr/bin/env bash
# Builds the minimal Debian bookworm root that `tests/tests/systemd_nspawn.rs` boots with
# systemd-nspawn, so the systemd module and the sensor's units are tested against a real
# systemd as PID 1: systemd, D-Bus and polkit (the agent manages units as an unprivileged
# user), Suricata 7 with suricata-update (bookworm-backports, as on the test host), ethtool and
# redis-server (the Redis copy's server, started only by the test that configures it).
#
# The root is cached outside the repository (default /var/cache/ids2-tests/bookworm-sensor-root-v2,
# override with IDS2_NSPAWN_ROOT) and rebuilt only when missing: debootstrap takes minutes,
# a cached root boots in about a second. The test units live in the test, not here, so
# changing them never needs a rebuild; a root with other packages gets another default path,
# so a machine's older root stays usable by whoever still boots it.
set -euo pipefail

root=${IDS2_NSPAWN_ROOT:-/var/cache/ids2-tests/bookworm-sensor-root-v2}
stamp="$root/.ids2-root-complete"

if [[ -f $stamp ]]; then
  echo "make-root: $root already built"
  exit 0
fi

# The mirror is whatever this machine's apt already uses, so no host name is written here.
mirror_uri() {
  local f uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' "$f")
    [[ -n $uri ]] && break
  done
  if [[ -z $uri && -f /etc/apt/sources.list ]]; then
    uri=$(awk '$1=="deb" && $3 ~ /^bookworm/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  printf '%s' "$uri"
}

uri=$(mirror_uri)
if [[ -z $uri ]]; then
  echo "make-root: no Debian apt source URI found in /etc/apt/sources.list{,.d/*.sources}" >&2
  exit 1
fi

# Build beside the final path and rename at the end, so an interrupted run never leaves a
# half-made root that a later run would mistake for a good one.
work="$root.partial"
rm -rf "$work"
mkdir -p "$(dirname "$root")"
debootstrap --variant=minbase --include=systemd,dbus,systemd-sysv bookworm "$work" "$uri"

# The rest through apt, which resolves alternatives (polkitd needs a logind) that debootstrap
# does not. Suricata 7 is only in bookworm-backports. Its Debian unit and redis-server's are not
# the sensor's: the tests install their own units or the module's (suricata.service,
# redis-ids2.service), so Debian's are neither enabled nor started.
cat > "$work/etc/apt/sources.list.d/backports.list" <<SRC
deb $uri bookworm-backports main
SRC
cat > "$work/usr/sbin/policy-rc.d" <<'RC'
#!/bin/sh
exit 101
RC
chmod 0755 "$work/usr/sbin/policy-rc.d"
apt_install() {
  chroot "$work" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "$@"
}
chroot "$work" apt-get update -q
apt_install polkitd ethtool redis-server
apt_install -t bookworm-backports suricata suricata-update
rm -f "$work/usr/sbin/policy-rc.d" "$work/etc/systemd/system/multi-user.target.wants/suricata.service" \
  "$work/etc/systemd/system/multi-user.target.wants/redis-server.service"
chroot "$work" apt-get clean

# Boot fast and quietly: the tests need only PID 1 and the system bus. Units that wait for
# hardware, consoles or the network are masked.
for unit in getty@.service console-getty.service serial-getty@.service \
  systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
  apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null "$work/etc/systemd/system/$unit"
done
echo ids2-test > "$work/etc/hostname"
apt_cache="$work/var/cache/apt/archives"
rm -f "$apt_cache"/*.deb

touch "$work/.ids2-root-complete"
rm -rf "$root"
mv "$work" "$root"
echo "make-root: built $root"
