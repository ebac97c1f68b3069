# This sensor's site values: edit before building the image (docs/build-and-flash.md).
# `ids2-provision sensor config` prints the values for a provisioned domain.
_:

{
  ids2.pi5 = {
    hostName = "ids2-sensor";
    sshAuthorizedKeys = [
      # "ssh-ed25519 AAAA... operator@laptop"
    ];
    credentialsFile = "/var/lib/ids2-secrets/opensearch";
    sensor = {
      sensor = {
        id = "pi5-lab-01";
        name = "Lab sensor 1";
      };
      capture.interface = "eth0";
      opensearch = {
        domain = "ids2";
        region = "eu-west-1";
        # Filled in from `ids2-provision domain ensure`; until set, the agent refuses to render.
        # endpoint = "https://search-ids2-....eu-west-1.es.amazonaws.com";
        auth.profile = "ids2-sensor";
      };
    };
  };
}
