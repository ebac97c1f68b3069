# End-to-end VM test (x86_64): an attacker pings the sensor with a marked payload; Suricata on
# the sensor raises an alert, the agent's metrics count it, and Vector delivers the ECS document
# to a file sink that stands in for OpenSearch (no OpenSearch runs in the test VMs).
#
# Run: nix build .#checks.x86_64-linux.vm-sensor   (needs KVM)
{ self }:

# The test framework passes the host's package set as `hostPkgs` (nixos/lib/testing).
{ hostPkgs, ... }:

let
  # The attack: an ICMP echo whose payload carries "ids2-attack" (ping -p fills the payload with
  # this pattern). The rule is the whole rule set of the test sensor.
  pattern = "696473322d61747461636b";
  sid = "9000001";
  rules = hostPkgs.writeText "suricata.rules" ''
    alert icmp any any -> $HOME_NET any (msg:"IDS2 VM test: marked ICMP echo"; itype:8; content:"ids2-attack"; sid:${sid}; rev:1;)
  '';

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
      imports = [ self.nixosModules.ids2 ];
      environment.systemPackages = [ pkgs.curl ];

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
          capture = {
            interface = "eth1";
            workers = 1;
            cpu_cores = [ 1 ];
          };
          suricata.memory_mb = 256;
          opensearch = {
            domain = "ids2-test";
            region = "eu-west-1";
            # Unreachable on purpose: the file sink above is where delivery is checked.
            endpoint = "https://opensearch.ids2-test.invalid";
            auth.profile = "default";
          };
          logs.size_mb = 64;
        };
      };

      # No network in the VM for suricata-update; the test rule file is the rule set (in the
      # module's rules_dir, which the agent's scheduled update would otherwise fill).
      systemd.tmpfiles.rules = [
        "L+ /var/lib/ids2/rules/suricata.rules - - - - ${rules}"
        "d ${standInDir} 0750 vector vector -"
      ];

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

  testScript = ''
    start_all()

    sensor.wait_for_unit("ids2-agent.service")
    with subtest("the agent renders a generation and starts Suricata and Vector"):
        sensor.wait_until_succeeds("test -s /var/lib/ids2/rendered/current/suricata.yaml", timeout=180)
        sensor.wait_for_unit("suricata.service")
        sensor.wait_for_unit("vector.service")
        sensor.succeed("findmnt -no FSTYPE /mnt/ram_logs | grep -qx tmpfs")
        # Suricata writes stats to EVE once its engine runs (every 8 s).
        sensor.wait_until_succeeds("grep -q '\"event_type\":\"stats\"' /mnt/ram_logs/eve.json", timeout=300)

    attacker.wait_for_unit("network-online.target")

    with subtest("an attack raises a Suricata alert"):
        def alert_seen(_last_try):
            attacker.succeed("ping -c 2 -p ${pattern} sensor")
            status, _ = sensor.execute(
                "grep '\"event_type\":\"alert\"' /mnt/ram_logs/eve.json | grep -q '\"signature_id\":${sid}'"
            )
            return status == 0
        retry(alert_seen, timeout=120)

    with subtest("the agent's metrics count the alert"):
        sensor.wait_until_succeeds(
            "curl -sf http://127.0.0.1:9100/metrics"
            " | grep -E '^ids2_eve_events_total\\{event_type=\"alert\"\\} [1-9]'",
            timeout=60,
        )

    with subtest("Vector delivers the ECS document to the OpenSearch stand-in"):
        sensor.wait_until_succeeds(
            "cat ${standInDir}/*.ndjson | grep '\"suricata.alert\"' | grep -q '${sid}'",
            timeout=120,
        )
        doc = sensor.succeed(
            "cat ${standInDir}/*.ndjson | grep '\"suricata.alert\"' | grep '${sid}' | head -n 1"
        )
        import json
        ecs = json.loads(doc)
        # CONTRACTS.md: event.dataset is suricata.<event_type>, and it routes the index.
        assert ecs["event"]["dataset"] == "suricata.alert", ecs
  '';
}
