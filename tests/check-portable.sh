#!/usr/bin/env bash
# Portability of the operator's tool, proved without a Mac: resolves the dependency tree of
# ids2-provision (and of ids2-core, which it builds on) for the macOS targets with
# `cargo tree --target <darwin> -e normal,build` and fails when a Linux-only crate appears in it,
# and checks that the sensor's crate does not depend on the lab's.
#
#   tests/check-portable.sh [WORKSPACE]   (default: this checkout; run by tests/run-all.sh)
#
# Resolution only: nothing is compiled, so a crate that resolves but fails to compile for macOS
# would pass; the flake's packages.aarch64-darwin.ids2-provision is the build proof, on a machine
# that can fetch nixpkgs. tests/tests/check_portable.rs proves this check fails on a planted
# Linux-only dependency.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# Crates that exist for Linux alone, or only for the sensor's control of a Linux host: none of
# them has any business on an operator's laptop, and each would fail to build on macOS or
# mean that the sensor's stack came along.
linux_only=(
  ids2-agent ids2-lab # the sensor and the lab: Linux programs by design
  rtnetlink netlink-sys netlink-proto netlink-packet-core netlink-packet-route
  netlink-packet-utils # netlink (the agent's link control)
  zbus zbus_macros zbus_names zvariant # systemd over D-Bus (the agent's unit control)
  sd-notify libsystemd # systemd's notify protocol and journal
  procfs procfs-core inotify inotify-sys caps nftnl mnl # /proc, inotify, capabilities, nftables
  linux-raw-sys # raw Linux syscalls
)

# CRATE's tree for TARGET, one "depth name version" a line (dependencies one deeper than their
# dependent), from a single resolution.
tree() {
  cargo tree --locked --quiet -p "$1" --target "$2" -e normal,build --prefix depth \
    --format '{p}' | sed -E 's/^([0-9]+)/\1 /'
}

status=0
for crate in ids2-provision ids2-core; do
  for target in aarch64-apple-darwin x86_64-apple-darwin; do
    # Each Linux-only package in the tree with what pulls it in (its dependents), so the edge
    # to cut is plain; then the number of crates in the tree.
    found=$(tree "$crate" "$target" | awk -v deny="${linux_only[*]}" '
      BEGIN { n = split(deny, d, " "); for (i = 1; i <= n; i++) bad[d[i]] = 1 }
      {
        seen[$2] = $3; up[$1] = $2
        if ($2 in bad && $1 > 0 && index(" " by[$2] " ", " " up[$1 - 1] " ") == 0)
          by[$2] = by[$2] " " up[$1 - 1]
      }
      END {
        for (i = 1; i <= n; i++) if (d[i] in seen) print "  " d[i] " " seen[d[i]] " <-" by[d[i]]
        print length(seen)
      }')
    count=$(tail -n 1 <<<"$found")
    found=$(head -n -1 <<<"$found")
    if [[ -n $found ]]; then
      echo "check-portable: FAIL: $crate for $target depends on Linux-only crates:" \
        $(awk '{ print $1 }' <<<"$found")
      echo "$found"
      status=1
    else
      echo "check-portable: $crate for $target: $count crates, none Linux-only"
    fi
  done
done

# The sensor image must not carry the lab: no edge of any kind, on any target.
if cargo tree --locked --quiet -p ids2-agent --target all -e normal,build,dev --prefix none \
  --format '{p}' | grep -q '^ids2-lab v'; then
  echo "check-portable: FAIL: ids2-agent depends on ids2-lab (the lab must stay off the sensor)"
  status=1
else
  echo "check-portable: ids2-agent does not depend on ids2-lab"
fi
exit "$status"
