# The Raspberry Pi 5 sensor host: board support from nvmd/nixos-raspberrypi, the SD image, and
# the ids2 sensor with its site values as options (set them in nixos/site.nix).
#
# Options used from nixos-raspberrypi (at the commit pinned in flake.nix) and where they live:
#   nixosModules.raspberry-pi-5.base   modules/raspberry-pi-5 (bcm2712 vendor kernel
#                                      linuxPackages_rpi5, built with 16 KiB pages, + firmware)
#   nixosModules.raspberry-pi-5.page-size-16k
#                                      modules/raspberry-pi-5/page-size-16k.nix (jemalloc overlay
#                                      for 16 KiB pages)
#   nixosModules.sd-image              modules/installer/sd-card/sd-image-raspberrypi.nix
#   boot.loader.raspberry-pi.{bootloader,configurationLimit}
#                                      modules/system/boot/loader/raspberrypi/default.nix
{ config, lib, pkgs, nixos-raspberrypi, ... }:

let
  inherit (lib) mkOption types;
  cfg = config.ids2.pi5;
in
{
  imports = with nixos-raspberrypi.nixosModules; [
    raspberry-pi-5.base
    raspberry-pi-5.page-size-16k
    sd-image
  ];

  options.ids2.pi5 = {
    hostName = mkOption {
      type = types.str;
      default = "ids2-sensor";
      description = "The sensor's host name.";
    };
    sshAuthorizedKeys = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = ''
        Public keys allowed to log in as root over SSH: the only way to upgrade the sensor
        (`nixos-rebuild switch --target-host root@…`). Without one the image cannot be managed.
      '';
    };
    sensor = mkOption {
      type = (pkgs.formats.yaml { }).type;
      default = { };
      example = { sensor.id = "pi5-lab-01"; opensearch = { domain = "ids2"; region = "eu-west-1"; }; };
      description = ''
        The sensor's config.yaml settings, passed to `services.ids2.settings` (see
        `ids2-provision sensor config` for the values of a provisioned domain).
      '';
    };
    credentialsFile = mkOption {
      type = types.nullOr types.str;
      default = "/var/lib/ids2-secrets/opensearch";
      description = ''
        Where the OpenSearch secret is on the sensor (`services.ids2.credentialsFile`). Copy it
        there after the first boot; it never goes into the image.
      '';
    };
  };

  config = {
    warnings = lib.optional (cfg.sshAuthorizedKeys == [ ]) ''
      ids2.pi5.sshAuthorizedKeys is empty: the image will boot but nobody can log in to upgrade it.
    '';

    networking.hostName = cfg.hostName;
    # The onboard NIC keeps the kernel name eth0 (predictable naming would call it end0), the
    # name config.yaml, the capture and the eth0-only policy use.
    networking.usePredictableInterfaceNames = false;
    users.users.root.openssh.authorizedKeys.keys = cfg.sshAuthorizedKeys;

    # The generational boot loader keeps the last generations' kernels, initrds and device
    # trees on the firmware partition, so a bad upgrade can be rolled back at boot, not only
    # with `nixos-rebuild --rollback`. Four fit in the image's 1 GiB firmware partition.
    boot.loader.raspberry-pi = {
      bootloader = "kernel";
      configurationLimit = 4;
    };

    services.ids2 = {
      enable = true;
      settings = cfg.sensor;
      inherit (cfg) credentialsFile;
      # Vector links its own jemalloc (tikv-jemalloc-sys), which the page-size-16k overlay does
      # not reach; built for 4 KiB pages it aborts on the Pi 5's 16 KiB-page kernel. 64 KiB
      # jemalloc pages work on 4, 16 and 64 KiB kernels. Costs a local Vector build.
      vector.package = pkgs.vector.overrideAttrs (old: {
        env = (old.env or { }) // { JEMALLOC_SYS_WITH_LG_PAGE = "16"; };
      });
    };

    nix.settings.experimental-features = [ "nix-command" "flakes" ];
    # Old system generations are what a rollback boots; keep a few weeks of them.
    nix.gc = {
      automatic = true;
      dates = "weekly";
      options = "--delete-older-than 30d";
    };

    time.timeZone = "UTC";
    system.stateVersion = "25.11";
  };
}
