# End-to-end VM test (x86_64): the sensor boots with no downloaded rule set; Suricata runs as
# user suricata with only CAP_NET_RAW and alerts on an ids2 local rule when an attacker pings
# the sensor with large echo requests; the agent (user ids2) rotates eve.json and updates the
# rules over Suricata's socket without restarting it; Vector delivers the ECS documents to a
# file sink that stands in for OpenSearch (no OpenSearch runs in the test VMs). The same steps
# as tests/tests/systemd_nspawn.rs, on a real NixOS.
#
# Run: nix build .#checks.x86_64-linux.vm-sensor   (needs KVM)
{ self }:

# The test framework passes the host's package set as `hostPkgs` (nixos/lib/testing).
{ hostPkgs, ... }:

let
  # templates/rules/ids2.rules sid 9200060 (T1048): three echo requests above 500 bytes.
  localSid = "9200060";
  # The rule of the "downloaded" set the test installs, and the payload that triggers it
  # ("ids2-vm-set", hex for ping -p).
  setSid = "9000101";
  setPattern = "696473322d766d2d736574";

  standInDir = "/var/lib/vector/opensearch-stand-in";
  # Stand-in for OpenSearch: a Vector file sink, added next to the rendered pipeline. Its input
  # is the remap transform of templates/vector.toml.tera that produces the ECS documents.
  ecsTransform = "ecs";
  standInSink = (hostPkgs.formats.toml { }).generate "opensearch-stand-in.toml" {
    sinks.opensearch_stand_in = {
      type = "file";
      inputs = [ ecsTransform ];
      path = "${standInDir}/ecs-%Y-%m-%d.ndjson";
      encoding.codec = "json";
    };
  };
in
{
  name = "ids2-sensor";

  nodes = {
    attacker = { pkgs, ... }: {
      environment.systemPackages = [ pkgs.iputils ];
    };

    sensor = { pkgs, ... }: {
      imports = [ self.nixosModules.ids2 ./test-sensor.nix ];
      environment.systemPackages = [ pkgs.curl pkgs.ethtool ];

      virtualisation = {
        cores = 2;
        memorySize = 2048;
      };

      services.ids2 = {
        enable = true;
        # The test framework configures the VMs' links (eth1 is the test network it addresses),
        # so the module's eth0-only networkd config is left out here.
        network.enable = false;
        # The stand-in dummy credentials file is created below (not a secret).
        credentialsFile = "/etc/ids2-test/aws-credentials";
        vector.extraConfigFiles = [ standInSink ];
        grafana.enable = false;
        settings = {
          sensor.id = "vm-sensor-01";
          capture.interface = "eth1";
          opensearch = {
            domain = "ids2-test";
            region = "eu-west-1";
            # Unreachable on purpose: the file sink above is where delivery is checked.
            endpoint = "https://opensearch.ids2-test.invalid";
            auth.profile = "default";
          };
        };
      };

      systemd.tmpfiles.rules = [ "d ${standInDir} 0750 vector vector -" ];

      environment.etc."ids2-test/aws-credentials" = {
        mode = "0400";
        text = ''
          [default]
          aws_access_key_id = AKIDVMTESTONLY
          aws_secret_access_key = vm-test-dummy-secret
        '';
      };
    };
  };

  testScript = { nodes, ... }: ''
    import json

    agent = "${nodes.sensor.services.ids2.package}/bin/ids2-agent"
    site_rules = "${builtins.head nodes.sensor.services.ids2.settings.fleet.rules.sources}"

    def as_ids2(command):
        """Runs `command` as the agent's user, with its groups and the agent unit's PATH."""
        env = sensor.succeed("systemctl show -p Environment --value ids2-agent.service").split()
        path = next(e for e in env if e.startswith("PATH="))
        return sensor.succeed(
            f"setpriv --reuid=ids2 --regid=ids2 --init-groups env {path} {command}"
        )

    def eve_has(event):
        status, _ = sensor.execute(f"grep -q '{event}' /mnt/ram_logs/eve.json")
        return status == 0

    start_all()

    sensor.wait_for_unit("ids2-agent.service")
    with subtest("the agent renders a generation and starts Suricata and Vector"):
        sensor.wait_until_succeeds("test -s /var/lib/ids2/rendered/current/suricata.yaml", timeout=180)
        sensor.wait_for_unit("suricata.service")
        sensor.wait_for_unit("vector.service")
        sensor.succeed("findmnt -no FSTYPE /mnt/ram_logs | grep -qx tmpfs")
        # Suricata writes stats to EVE once its engine runs (every 8 s).
        sensor.wait_until_succeeds("grep -q '\"event_type\":\"stats\"' /mnt/ram_logs/eve.json", timeout=300)

    with subtest("no downloaded rule set: Suricata started on the stand-in and the local rules"):
        sensor.fail("grep -q '^alert' /var/lib/ids2/rules/suricata.rules")

    with subtest("Suricata runs as user suricata with CAP_NET_RAW only"):
        pid = sensor.succeed("systemctl show -p MainPID --value suricata.service").strip()
        status = sensor.succeed(f"cat /proc/{pid}/status")
        uid = sensor.succeed("id -u suricata").strip()
        gid = sensor.succeed("id -g suricata").strip()
        assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}\n" in status, status
        assert f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}\n" in status, status
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert f"{cap}:\t0000000000002000\n" in status, status
        assert "NoNewPrivs:\t1\n" in status, status
        # The pinned worker runs at nice -2 (LimitNICE), and Suricata had nothing to complain
        # about: the offloads unit turned the NIC's offloads off before it started.
        sensor.succeed(f"ps -L -o nice=,comm= -p {pid} | grep -E '^ *-2 W#01-eth1'")
        log = sensor.succeed("journalctl -b -o cat -u suricata.service")
        for complaint in ("SIOCETHTOOL", "Operation not permitted", "Permission denied"):
            assert complaint not in log, log
        sensor.succeed("ethtool -k eth1 | grep -qx 'generic-receive-offload: off'")
        sensor.succeed("stat -c '%U:%G %a' /run/suricata/suricata-command.socket | grep -qx 'suricata:suricata 660'")

    attacker.wait_for_unit("network-online.target")

    with subtest("an attack raises an alert of an ids2 local rule"):
        def alert_seen(_last_try):
            attacker.succeed("ping -c 3 -i 0.2 -s 600 sensor")
            return eve_has('"signature_id":${localSid}')
        retry(alert_seen, timeout=120)

    with subtest("the agent's metrics count the alert"):
        sensor.wait_until_succeeds(
            "curl -sf http://127.0.0.1:9100/metrics"
            " | grep -E '^ids2_eve_events_total\\{event_type=\"alert\"\\} [1-9]'",
            timeout=60,
        )

    with subtest("Vector delivers the ECS document to the OpenSearch stand-in"):
        sensor.wait_until_succeeds(
            "cat ${standInDir}/*.ndjson | grep '\"suricata.alert\"' | grep -q '${localSid}'",
            timeout=120,
        )
        doc = sensor.succeed(
            "cat ${standInDir}/*.ndjson | grep '\"suricata.alert\"' | grep '${localSid}' | head -n 1"
        )
        ecs = json.loads(doc)
        # event.dataset is suricata.<event_type>, and it routes the index (docs/ecs.md).
        assert ecs["event"]["dataset"] == "suricata.alert", ecs

    with subtest("the agent rotates eve.json and Suricata writes the new one"):
        # Filler lines of their own type push eve.json past logs.eve_rotate_mb.
        sensor.succeed(
            "yes '{\"event_type\":\"ids2_test_filler\",\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}'"
            " | head -n 20000 >> /mnt/ram_logs/eve.json"
        )
        sensor.wait_until_succeeds("test -e /mnt/ram_logs/eve.json.1", timeout=30)
        sensor.wait_until_succeeds("grep -q '\"event_type\":\"stats\"' /mnt/ram_logs/eve.json", timeout=60)
        sensor.succeed("stat -c '%U:%G %a' /mnt/ram_logs/eve.json | grep -qx 'suricata:ids2 640'")
        sensor.fail("grep -q ids2_test_filler /mnt/ram_logs/eve.json")
        metrics = sensor.succeed("curl -sf http://127.0.0.1:9100/metrics")
        assert "\nids2_eve_rotations_total 1\n" in metrics, metrics
        assert "\nids2_eve_rotation_failures_total 0\n" in metrics, metrics

    with subtest("the agent's user updates the rules and Suricata reloads them live"):
        sensor.succeed(
            f"install -D -m 0644 /dev/stdin {site_rules} <<'EOF'\n"
            "alert icmp any any -> any any (msg:\"IDS2 VM test: rule of the downloaded set\"; itype:8; content:\"ids2-vm-set\"; sid:${setSid}; rev:1;)\n"
            "EOF"
        )
        said = as_ids2(f"{agent} rules update --config /etc/ids2/config.yaml")
        assert "Suricata reloaded" in said, said
        assert sensor.succeed("systemctl show -p MainPID --value suricata.service").strip() == pid
        def set_alert_seen(_last_try):
            attacker.succeed("ping -c 2 -p ${setPattern} sensor")
            return eve_has('"signature_id":${setSid}')
        retry(set_alert_seen, timeout=60)
  '';
}
