# The nspawn test's sensor (container.nix) with the Redis copy: services.redis.servers.ids2 on a
# port of its own, which tests/tests/systemd_nspawn.rs starts only after Vector, as a Redis that
# comes up late.
_:

{
  imports = [ ./container.nix ];

  services.ids2.settings.shipping.redis.url = "redis://127.0.0.1:6380/0";
}
