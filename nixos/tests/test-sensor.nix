# What the sensors of both system tests share: the VM test (sensor.nix) and the systemd-nspawn
# test (tests/tests/systemd_nspawn.rs, through container.nix). Sizes fit a two-core test
# machine; the steps both tests run need the rest.
_:

{
  services.ids2.settings = {
    capture = {
      workers = 1;
      # Pin the worker to the second core, as the Pi pins its own.
      cpu_cores = [ 1 ];
    };
    suricata.memory_mb = 256;
    # Test machines are busy (booting, building, pinging): that load must not throttle the
    # sensor (new limits, a reduced EVE profile, Suricata restarted) while the steps run. One
    # sample at start, the next after the test.
    resources = {
      cpu_max_percent = 95;
      ram_max_percent = 95;
      sample_secs = 300;
    };
    # Small enough that the tests can push eve.json past the rotation size.
    logs = {
      size_mb = 16;
      eve_rotate_mb = 1;
    };
    # A 16 MiB tmpfs has no room for the evidence ring (8 MiB at the least, beside the EVE files
    # and 16 MiB kept for the rest); evidence is tested against real Suricata in
    # agent/tests/evidence.rs.
    evidence.mode = "off";
    # No network for downloads: the "downloaded" set is a local file the test writes later and
    # brings in with `ids2-agent rules update` when it chooses; until then Suricata has only the
    # local rules.
    fleet.rules = {
      scheduled = false;
      sources = [ "/var/lib/ids2-test/site.rules" ];
    };
  };
}
