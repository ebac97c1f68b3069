# The Pi's sensor (pi5.nix + site.nix) as tests/tests/systemd_nspawn.rs boots it in a
# systemd-nspawn container.
{ lib, ... }:

{
  imports = [ ./test-sensor.nix ];

  services.ids2 = {
    # Local monitoring is not what the test is about, and its packages are not in the root.
    monitoring.enable = false;
    # Rendering needs an endpoint; nothing is reachable from the container unless a scenario
    # points it at a server there (container-domain.nix).
    settings.opensearch.endpoint = lib.mkDefault "https://opensearch.ids2-test.invalid";
  };
}
