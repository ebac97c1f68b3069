# The NixOS module evaluated offline, as CI does it (.ci/nix-checks):
#
#   nix-instantiate --eval --strict --json nixos/tests/eval.nix -A report
#
# nixpkgs cannot be fetched here, so this evaluates services.ids2 with nixpkgs' own `lib`
# (25.11) against the real option declarations of the nixpkgs modules the sensor configures,
# with stub packages (../shared/nixos-eval, see its README). Every scenario is forced whole:
# each unit's text (so every service setting), every user and group, tmpfiles rule, file
# system, /etc file, network file and service setting the report lists. A root
# `_module.freeformType` collects every definition that matches no declared option, and any
# such definition fails the check, as does a failed assertion, except in `bare`, whose
# assertions must fire. `probes` plants misspelled options and fails unless each is caught.
#
# What this cannot show (needs nixpkgs itself): that packages build, the flake's package
# outputs (lib.fileset needs Nix >= 2.14), the real nixos-raspberrypi modules (stubbed below),
# and nixpkgs modules not transcribed in ../shared/nixos-eval (an option the module starts to
# use that is declared nowhere there fails the check: declare it here, with nixpkgs' type).
{ nixosEval ? ../../../shared/nixos-eval }:

let
  lib = import (nixosEval + "/lib");
  stubPkgs = import (nixosEval + "/stubs/pkgs-real-modules.nix") { inherit lib; };
  # Packages the module uses that the stubs lack, made like the stubs' own.
  pkgs = stubPkgs // lib.genAttrs [ "ethtool" ] (name:
    let d = stubPkgs.vector // { inherit name; pname = name; outPath = "/nix/store/00000000000000000000000000000000-${name}"; meta.mainProgram = name; };
    in d // { out = d; });
  utils = import (nixosEval + "/stubs/utils.nix") { inherit lib; };
  realModules = map (m: nixosEval + "/nixpkgs-modules/${m}") [
    "base.nix"
    "systemd.nix"
    "suricata/default.nix"
    "prometheus.nix"
    "exporters.nix"
    "grafana.nix"
    "redis.nix"
    "openssh.nix"
  ];

  # The flake's outputs with its inputs stubbed: only nixosModules are reached.
  systems = [ "x86_64-linux" "aarch64-linux" ];
  flake = (import ../../flake.nix).outputs {
    self = flake // {
      packages = lib.genAttrs systems (_: { inherit (pkgs) ids2-agent; });
    };
    nixpkgs = { inherit lib; };
    nixos-raspberrypi = throw "nixos-raspberrypi is not reached by nixosModules";
    crane = throw "crane is not reached by nixosModules";
    rust-overlay = throw "rust-overlay is not reached by nixosModules";
  };

  # nixos-raspberrypi's modules as pi5.nix imports them: what they set that matters here
  # (modules/raspberry-pi-5 sets the loader variant; the sd-image module picks the kernel
  # boot loader for a Pi 5). Their kernel, firmware and image are not evaluated.
  nixos-raspberrypi.nixosModules = {
    raspberry-pi-5 = {
      base.boot.loader.raspberry-pi = { enable = true; variant = "5"; };
      page-size-16k = { };
    };
    sd-image = { config, lib, ... }: {
      boot.loader.raspberry-pi.bootloader =
        lib.mkIf (config.boot.loader.raspberry-pi.variant == "5") "kernel";
    };
  };

  # Receives every definition no declared option matches: the option path it was meant for
  # (descending while the value is a single-attribute set) and the file that made it.
  unmatched = lib.mkOptionType {
    name = "unmatched-definitions";
    merge = _loc: defs: {
      __unmatched = map
        (d:
          let
            walk = path: v:
              if builtins.isAttrs v && !(v ? _type) && builtins.length (builtins.attrNames v) == 1
              then let n = builtins.head (builtins.attrNames v); in walk (path ++ [ n ]) v.${n}
              else path;
          in
          "${lib.concatStringsSep "." (walk [ ] d.value)} (defined in ${toString d.file})")
        defs;
    };
  };

  evaluate = modules: lib.evalModules {
    specialArgs = { inherit utils nixos-raspberrypi; };
    modules = realModules ++ [{
      _module.freeformType = unmatched;
      _module.args.pkgs = pkgs;
    }] ++ modules;
  };

  vmTest = import ./sensor.nix { self = flake; } { hostPkgs = pkgs; };
  vmTestNode = vmTest.nodes.sensor;

  scenarios = {
    pi5 = [ flake.nixosModules.ids2 ../pi5.nix ../site.nix ];
    vmtest = [ vmTestNode ];
    # Basic auth, Redis, an open firewall and extra agent credentials.
    full = [
      flake.nixosModules.ids2
      {
        services.ids2 = {
          enable = true;
          credentialsFile = "/var/lib/ids2-secrets/opensearch-password";
          agentCredentials = {
            slack-webhook = "/var/lib/ids2-secrets/slack-webhook";
            abuseipdb = "/var/lib/ids2-secrets/abuseipdb";
          };
          openFirewall = true;
          vector.extraConfigFiles = [ (pkgs.writeText "extra-sink.toml" "") ];
          settings = {
            sensor.id = "pi5-lab-02";
            opensearch = {
              domain = "ids2";
              region = "eu-west-1";
              endpoint = "https://opensearch.example.org";
              auth = {
                method = "basic";
                username = "ids2-sensor";
              };
            };
            metrics.listen = "[::]:9200";
            shipping.redis.url = "redis://127.0.0.1:6380/0";
            notifications.webhook.url_file = "/run/credentials/ids2-agent.service/slack-webhook";
          };
        };
      }
    ];
    # Both module outputs of the flake at once (a flake consumer may import either or both).
    both-modules = [ flake.nixosModules.default flake.nixosModules.ids2 ../pi5.nix ../site.nix ];
    # The Pi's sensor booted in the systemd-nspawn test root (tests/tests/systemd_nspawn.rs).
    container = [ flake.nixosModules.ids2 ../pi5.nix ../site.nix ./container.nix ];
    # The same with the Redis copy, its Redis started late (the nspawn test of the copy).
    container-redis = [ flake.nixosModules.ids2 ../pi5.nix ../site.nix ./container-redis.nix ];
    # The same shipping to the emulator in the container's network namespace.
    container-domain = [ flake.nixosModules.ids2 ../pi5.nix ../site.nix ./container-domain.nix ];
    # Nothing but `enable`: the assertions must name what is missing.
    bare = [ flake.nixosModules.ids2 { services.ids2.enable = true; } ];
  };
  evals = lib.mapAttrs (_: evaluate) scenarios;

  # Everything the configuration produces that a sensor gets, forced by `--strict`.
  describe = ev:
    let
      c = ev.config;
      pick = names: attrs: lib.filterAttrs (n: _: builtins.elem n names) attrs;
      storeText = v: lib.optionalAttrs (lib.isDerivation v && v ? text) { ${v.outPath} = v.text; };
    in
    {
      unmatched = c.__unmatched or [ ];
      failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
      inherit (c) warnings;
      units = lib.mapAttrs (_: u: { inherit (u) enable wantedBy requiredBy aliases text; }) c.systemd.units;
      # Scripts the units run (writeShellScript and friends), keyed by their store path.
      scripts = lib.foldl' (acc: s: acc // lib.concatMapAttrs (_: storeText) s.serviceConfig)
        { }
        (lib.attrValues c.systemd.services);
      users = lib.mapAttrs
        (_: u: {
          inherit (u) name description uid isSystemUser isNormalUser group extraGroups home createHome;
          sshKeys = u.openssh.authorizedKeys.keys;
        })
        c.users.users;
      groups = lib.mapAttrs (_: g: { inherit (g) name gid members; }) c.users.groups;
      tmpfiles = c.systemd.tmpfiles.rules;
      fileSystems = lib.mapAttrs (_: f: { inherit (f) mountPoint device fsType options neededForBoot; }) c.fileSystems;
      etc = lib.mapAttrs
        (_: e: {
          inherit (e) enable target mode user group;
          source = toString e.source;
          value = e.source.passthru_value or null;
        })
        c.environment.etc;
      networkFiles = lib.mapAttrs (_: n: { inherit (n) enable matchConfig linkConfig networkConfig; }) c.systemd.network.networks;
      networking = {
        inherit (c.networking) useNetworkd useDHCP hostName usePredictableInterfaceNames;
        firewall = { inherit (c.networking.firewall) enable allowedTCPPorts allowedUDPPorts extraCommands extraInputRules; };
        wireless = c.networking.wireless.enable;
      };
      polkit = { inherit (c.security.polkit) enable extraConfig; };
      kernelModules = c.boot.kernelModules;
      sysctl = c.boot.kernel.sysctl;
      systemPackages = map toString c.environment.systemPackages;
      suricata = {
        inherit (c.services.suricata) enable configFile;
        settings = pick [ "af-packet" "run-as" "default-log-dir" "default-rule-path" "unix-command" ] c.services.suricata.settings;
      };
      prometheus = {
        inherit (c.services.prometheus) enable port listenAddress retentionTime;
        config = c.services.prometheus._generated;
        node = { inherit (c.services.prometheus.exporters.node) enable port listenAddress enabledCollectors; };
      };
      grafana = {
        inherit (c.services.grafana) enable;
        settings = pick [ "server" "security" "analytics" ] c.services.grafana.settings;
        datasources = c.services.grafana.provision.datasources.settings;
        dashboards = c.services.grafana.provision.dashboards.settings;
      };
      redis = lib.mapAttrs (_: s: { inherit (s) enable bind port settings; }) c.services.redis.servers;
      openssh = {
        inherit (c.services.openssh) enable;
        settings = pick [ "PasswordAuthentication" "KbdInteractiveAuthentication" "PermitRootLogin" ] c.services.openssh.settings;
      };
      boot.raspberry-pi = lib.optionalAttrs ev.options.boot.loader.raspberry-pi.variant.isDefined c.boot.loader.raspberry-pi;
      nix = { inherit (c.nix) settings gc; };
      inherit (c.time) timeZone;
      inherit (c.system) stateVersion;
    };

  described = lib.mapAttrs (_: describe) evals;

  fail = msg: throw "nixos/tests/eval.nix: ${msg}";
  lines = l: lib.concatMapStrings (x: "\n  ${x}") l;

  # A scenario that must evaluate clean: no stray definition, no failed assertion.
  clean = name:
    let d = described.${name}; in
    if d.unmatched != [ ] then fail "${name}: definitions that match no declared option:${lines d.unmatched}"
    else if d.failedAssertions != [ ] then fail "${name}: failed assertions:${lines d.failedAssertions}"
    else builtins.deepSeq d d;

  # `bare` must be refused, and for what is missing.
  bareRefused =
    let
      got = described.bare.failedAssertions;
      expected = [
        "services.ids2.settings.sensor.id"
        "services.ids2.settings.opensearch.domain"
        "services.ids2.credentialsFile"
      ];
      missing = lib.filter (o: !lib.any (m: lib.hasPrefix o m) got) expected;
    in
    if missing != [ ] then fail "bare: no failed assertion names ${toString missing} (got:${lines got})"
    else builtins.deepSeq described.bare got;

  # Misspelled options planted in the Pi's configuration must each be caught: as a definition
  # matching no option (the collector), or as an evaluation error (closed submodules, value
  # checks). Typos inside free-form settings cannot be caught here: tests/tests/nixos_config.rs
  # gives each scenario's config.yaml (services.ids2.settings) to the agent's validation, and
  # .ci/nix-checks plants a misspelled unit directive for systemd-analyze to report.
  probes =
    let
      extend = m: evals.pi5.extendModules { modules = [ m ]; };
      strays = m: (extend m).config.__unmatched or [ ];
      fails = m: f: !(builtins.tryEval (builtins.deepSeq (f (extend m).config) true)).success;
      collected = {
        "services.ids2.openFirewal" = { services.ids2.openFirewal = true; };
        "services.ids2.grafana.prot" = { services.ids2.grafana.prot = 3001; };
        "services.suricata.setings.vars" = { services.suricata.setings.vars = { }; };
        "networking.firewal.enable" = { networking.firewal.enable = true; };
      };
      refused = {
        "systemd.services.suricata.serviceConfg" = fails
          { systemd.services.suricata.serviceConfg = { }; }
          (c: c.systemd.units);
        "systemd.services.suricata.serviceConfig.Type = \"simpel\"" = fails
          { systemd.services.suricata.serviceConfig.Type = "simpel"; }
          (c: c.systemd.units);
        "systemd.network.networks.<n>.linkConfig.ActivationPolicy = \"off\"" = fails
          { systemd.network.networks.x.linkConfig.ActivationPolicy = "off"; }
          (c: c.systemd.network.networks);
      };
      missed = lib.attrNames
        (lib.filterAttrs
          (option: m: !lib.any (u: lib.hasPrefix "${option} (defined in" u) (strays m))
          collected)
      ++ lib.attrNames (lib.filterAttrs (_: caught: !caught) refused);
    in
    if missed != [ ] then fail "planted misspellings went unnoticed:${lines missed}"
    else lib.attrNames collected ++ lib.attrNames refused;

  # The Suricata command lines are nixpkgs' own without the `!` prefix: evaluating nixpkgs'
  # module alone with the same config file and interface must give them back, prefixed.
  nixpkgsCommands =
    let
      ours = evals.pi5.config.systemd.services.suricata.serviceConfig;
      theirs = (lib.evalModules {
        specialArgs = { inherit utils; };
        modules = realModules ++ [{
          _module.args.pkgs = pkgs;
          services.suricata = {
            enable = true;
            inherit (evals.pi5.config.services.suricata) configFile;
            settings.af-packet = [{ interface = evals.pi5.config.services.ids2.settings.capture.interface; }];
          };
        }];
      }).config.systemd.services.suricata.serviceConfig;
      differs = k: "!${ours.${k}}" != theirs.${k};
    in
    if lib.any differs [ "ExecStart" "ExecStartPre" ] then
      fail "suricata.service: nixpkgs now starts Suricata as ${theirs.ExecStartPre} / ${theirs.ExecStart}; services.ids2 runs ${ours.ExecStartPre} / ${ours.ExecStart} (without `!`); update nixos/module.nix"
    else { inherit (ours) ExecStartPre ExecStart; };

  # A unit with a misspelled directive, for .ci/nix-checks to show systemd-analyze reports it.
  misspelledUnit =
    (evals.pi5.extendModules {
      modules = [{ systemd.services.suricata.serviceConfig.ProtectKernelTunabels = true; }];
    }).config.systemd.units."suricata.service".text;
in
{
  inherit evals;
  scenarios = described;

  # What .ci/nix-checks runs: every check above, then the Pi's unit files for systemd-analyze.
  ci = {
    scenarios = lib.genAttrs [ "pi5" "vmtest" "full" "both-modules" "container" "container-redis" "container-domain" ]
      (n:
        let d = clean n; in {
          units = lib.attrNames d.units;
          users = lib.attrNames d.users;
          tmpfiles = lib.length d.tmpfiles;
        }) // { bare.refusedWith = bareRefused; };
    inherit probes nixpkgsCommands misspelledUnit;
    # The VM test's Python, with its Nix interpolations done, for a syntax check.
    vmTestScript = vmTest.testScript { nodes.sensor = evals.vmtest.config; };
    units = lib.mapAttrs (_: u: u.text) described.pi5.units;
    allUnits = lib.mapAttrs (_: d: lib.mapAttrs (_: u: u.text) d.units) described;
  };
}
