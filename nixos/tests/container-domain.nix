# The nspawn test's sensor (container.nix) shipping to a domain: the OpenSearch-API emulator
# (osmem-server) that tests/tests/systemd_nspawn.rs runs on this port in the container's own
# network namespace. Loopback, so plain HTTP is allowed; SigV4 as on the Pi (the emulator
# ignores the signature).
_:

{
  imports = [ ./container.nix ];

  services.ids2.settings.opensearch.endpoint = "http://127.0.0.1:9201";
}
