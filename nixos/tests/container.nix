# The Pi's sensor (pi5.nix + site.nix) as tests/tests/systemd_nspawn.rs boots it in a
# systemd-nspawn container: only what a container on a two-core CI machine needs differs.
_:

{
  services.ids2 = {
    # Local monitoring is not what the test is about, and its packages are not in the root.
    monitoring.enable = false;
    settings = {
      # Rendering needs an endpoint; nothing is reachable from the container anyway.
      opensearch.endpoint = "https://opensearch.ids2-test.invalid";
      capture = {
        workers = 1;
        # CI machines have two cores: pin the worker to the second, as the Pi pins its own.
        cpu_cores = [ 1 ];
      };
      suricata.memory_mb = 256;
      # CI machines are shared: their load must not throttle the sensor (new limits, a reduced
      # EVE profile, Suricata restarted) while the test runs. One sample at start, the next
      # after the test.
      resources = {
        cpu_max_percent = 95;
        ram_max_percent = 95;
        sample_secs = 300;
      };
      # Small enough that the test can push eve.json past the rotation size.
      logs = {
        size_mb = 16;
        eve_rotate_mb = 1;
      };
      # The "downloaded" set comes from a local file the test writes later and updates with
      # `ids2-agent rules update` when it chooses; until then Suricata has only the local rules.
      fleet.rules = {
        scheduled = false;
        sources = [ "/var/lib/ids2-test/site.rules" ];
      };
    };
  };
}
