# services.ids2: the ids2 network IDS sensor.
#
# The agent (ids2-agent) renders Suricata's and Vector's configs from /etc/ids2/config.yaml into
# <paths.rendered_dir>/generations/<N>/ and swaps <paths.rendered_dir>/current atomically, then
# starts, reloads and throttles suricata.service and vector.service over D-Bus. This module
# provides everything around it: the users, the units (hardened), the polkit rule that lets the
# agent manage exactly those units, the RAM log tmpfs, eth0-only networking, the firewall, and
# local monitoring (Prometheus + Grafana) built from the nixpkgs modules.
#
# Option names used from nixpkgs were checked against these sources (NixOS/nixpkgs):
#   services.suricata    nixos/modules/services/networking/suricata/{default,settings}.nix
#   services.prometheus  nixos/modules/services/monitoring/prometheus/default.nix,
#                        .../prometheus/exporters/node.nix (node exporter; default port 9100!)
#   services.grafana     nixos/modules/services/monitoring/grafana.nix (settings.*, provision.*)
#   services.redis       nixos/modules/services/databases/redis.nix (servers.<name>.*)
#   services.vector      nixos/modules/services/logging/vector.nix (not used, see below)
{ config, lib, pkgs, utils, ... }:

let
  inherit (lib) mkEnableOption mkOption mkIf mkMerge types literalExpression;

  cfg = config.services.ids2;
  s = cfg.settings;
  format = pkgs.formats.yaml { };

  # A settings section: free-form like the rest of config.yaml, with typed options only for the
  # keys this module itself reads (nixpkgs RFC 42 style). Defaults equal the agent's defaults in
  # core/src/config/, so the rendered file means the same with or without them.
  section = options: types.submodule { freeformType = format.type; inherit options; };
  sectionOption = description: options: mkOption {
    type = section options;
    default = { };
    inherit description;
  };
  strOption = default: description: mkOption { type = types.str; inherit default description; };

  # The generated config.yaml: nulls are "not set" (the agent applies its own default).
  configFile = format.generate "ids2-config.yaml"
    (lib.filterAttrsRecursive (name: value: name != "_module" && value != null) s);

  renderedDir = s.paths.rendered_dir;

  # nixpkgs installs suricata-update as a script that needs PyYAML; its own unit runs it through
  # a Python that has it. The agent finds the tool on PATH, so it gets a wrapper doing the same.
  suricataUpdate = pkgs.writeShellScriptBin "suricata-update" ''
    exec ${pkgs.python3.withPackages (ps: [ ps.pyyaml ])}/bin/python3 \
      ${config.services.suricata.package}/bin/suricata-update "$@"
  '';
  logsPath = s.logs.path;
  iface = s.capture.interface;
  suricataBin = "${config.services.suricata.package}/bin/suricata";
  suricataConfig = config.services.suricata.configFile;

  # Suricata's af-packet turns these NIC offloads off on the capture interface at start (they
  # merge packets before capture), which takes CAP_NET_ADMIN. Done here, in a unit of its own,
  # Suricata needs only CAP_NET_RAW. The same five features Suricata turns off; those a driver
  # has fixed on fail this unit, visibly, and Suricata still starts.
  offloadsOff = pkgs.writeShellScript "ids2-capture-offloads" ''
    exec ${lib.getExe pkgs.ethtool} -K ${lib.escapeShellArg iface} \
      sg off gro off lro off tso off gso off
  '';
  authMethod = s.opensearch.auth.method;

  # systemd's name for the mount unit of the log tmpfs, e.g. /mnt/ram_logs -> mnt-ram_logs.mount.
  logsMountUnit = "${utils.escapeSystemdPath logsPath}.mount";

  # "host:port" -> port, and the address a local scraper should use for it.
  metricsPort = lib.toInt (lib.last (lib.splitString ":" s.metrics.listen));
  metricsHost =
    let host = lib.removeSuffix ":${toString metricsPort}" s.metrics.listen;
    in if host == "0.0.0.0" then "127.0.0.1" else if host == "[::]" then "[::1]" else host;

  # Vector's internal metrics, rendered by the agent as a prometheus_exporter on this address
  # (shipping.vector_metrics_listen, templates/vector.toml.tera).
  vectorMetrics = s.shipping.vector_metrics_listen or "127.0.0.1:9598";
  # The node exporter's default port (9100) is the agent's metrics port, so it moves.
  nodeExporterPort = 9101;

  # The credential is mounted at the same path in every unit that needs it, so the one path in
  # config.yaml (opensearch.auth.credentials_file / password_file) is right for the agent (its
  # OpenSearch check) and for Vector (shipping). Outside those units the path is an empty
  # placeholder file; the secret itself only lives in systemd's per-unit credential directory.
  credentialDir = "/run/ids2-credentials";
  credentialPath = "${credentialDir}/opensearch";
  credentialUnitConfig = lib.optionalAttrs (cfg.credentialsFile != null) {
    LoadCredential = [ "opensearch:${cfg.credentialsFile}" ];
    BindReadOnlyPaths = [ "%d/opensearch:${credentialPath}" ];
  };

  redisEnabled = s.shipping.redis != null;
  redisPort =
    let m = builtins.match "redis://[^:/]+:([0-9]+).*" s.shipping.redis.url;
    in if m == null then 6379 else lib.toInt (builtins.head m);

  # How long Vector waits for its requests in flight when stopped (vectorStart); under the
  # unit's TimeoutStopSec.
  vectorStopLimitSecs = 15;
  # Vector reads the basic-auth password from IDS2_OPENSEARCH_PASSWORD (the rendered
  # vector.toml only references it), so it is read from the credential at start, never stored.
  vectorStart = pkgs.writeShellScript "ids2-vector-start" ''
    set -eu
    ${lib.optionalString (authMethod == "basic") ''
      IFS= read -r IDS2_OPENSEARCH_PASSWORD < "$CREDENTIALS_DIRECTORY/opensearch" \
        || [ -n "''${IDS2_OPENSEARCH_PASSWORD:-}" ]
      export IDS2_OPENSEARCH_PASSWORD
    ''}
    # The Redis copy's part (vector-redis.toml) only while Redis answers: Vector's redis sink
    # connects while Vector builds its pipeline and would hold up the OpenSearch path with it.
    # The agent restarts this unit once Redis is back.
    mapfile -t optional < <(${lib.getExe' cfg.package "ids2-agent"} vector-args --rendered-dir ${renderedDir})
    # On SIGTERM Vector waits for its sinks' requests in flight, by default up to 60 s: with the
    # domain away, every restart (the Redis copy, a new config) and every stop took that long,
    # reading nothing meanwhile. Nothing is lost by not waiting: what the domain has not
    # acknowledged stays in the disk buffer and is sent again under the same _id.
    exec ${lib.getExe cfg.vector.package} \
      --graceful-shutdown-limit-secs ${toString vectorStopLimitSecs} \
      --config ${renderedDir}/current/vector.toml \
      "''${optional[@]}" \
      ${lib.concatMapStringsSep " " (f: "--config ${f}") cfg.vector.extraConfigFiles}
  '';

  # Hardening shared by the units this module writes itself (the agent and Vector).
  hardening = {
    NoNewPrivileges = true;
    ProtectSystem = "strict";
    ProtectHome = true;
    PrivateTmp = true;
    PrivateDevices = true;
    DevicePolicy = "closed";
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    RestrictNamespaces = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    LockPersonality = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" ];
    SystemCallErrorNumber = "EPERM";
    RemoveIPC = true;
    PrivateMounts = true;
    UMask = "0027";
  };

  # Units the agent may control (polkit rule below): exactly what it supervises.
  managedUnits = [ "suricata.service" "vector.service" logsMountUnit ];
  managedVerbs = [
    "start"
    "stop"
    "restart"
    "reload"
    "try-restart"
    "reload-or-restart"
    "reload-or-try-restart"
    "reset-failed"
    "set-property"
  ];
in
{
  options.services.ids2 = {
    enable = mkEnableOption "the ids2 network IDS sensor (agent, Suricata, Vector, monitoring)";

    package = mkOption {
      type = types.package;
      description = "The ids2 package providing `bin/ids2-agent` (the flake's `ids2-agent`).";
    };

    settings = mkOption {
      description = ''
        The sensor's `config.yaml` (written to `/etc/ids2/config.yaml`); every key of the
        agent's schema is accepted (see docs/config-reference.md). Only keys this module reads
        are declared here; the others are passed through unchanged.
      '';
      default = { };
      example = literalExpression ''
        {
          sensor.id = "pi5-lab-01";
          opensearch = {
            domain = "ids2";
            region = "eu-west-1";
            endpoint = "https://search-ids2-abc.eu-west-1.es.amazonaws.com";
            auth.profile = "ids2-sensor";
          };
        }
      '';
      type = types.submodule {
        freeformType = format.type;
        options = {
          sensor = sectionOption "Who this sensor is in the fleet." {
            id = mkOption {
              type = types.nullOr (types.strMatching "[a-z0-9][a-z0-9-]{0,62}");
              default = null;
              description = "Stable sensor id (1–63 of `a-z0-9-`). Required.";
            };
          };
          opensearch = sectionOption "Where events are shipped." {
            domain = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "AWS OpenSearch domain name. Required.";
            };
            region = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "AWS region of the domain. Required.";
            };
            auth = sectionOption "How requests to OpenSearch are authenticated." {
              method = mkOption {
                type = types.enum [ "aws_sigv4" "basic" ];
                default = "aws_sigv4";
                description = "`aws_sigv4` (AWS credentials file) or `basic` (password file).";
              };
              credentials_file = mkOption {
                type = types.nullOr types.str;
                default = null;
                description = "Set by this module from `services.ids2.credentialsFile` (sigv4).";
              };
              password_file = mkOption {
                type = types.nullOr types.str;
                default = null;
                description = "Set by this module from `services.ids2.credentialsFile` (basic).";
              };
            };
          };
          capture = sectionOption "Packet capture." {
            interface = strOption "eth0" "The one interface left up and captured on.";
          };
          logs = sectionOption "The RAM-backed EVE log directory." {
            path = strOption "/mnt/ram_logs" "Mount point of the log tmpfs.";
            size_mb = mkOption {
              type = types.ints.positive;
              default = 256;
              description = "Size of the log tmpfs in MiB.";
            };
          };
          metrics = sectionOption "The agent's Prometheus endpoint." {
            listen = strOption "0.0.0.0:9100" "`address:port` of the agent's /metrics.";
          };
          paths = sectionOption "Where the agent and Vector keep state." {
            rendered_dir = strOption "/var/lib/ids2/rendered" "Rendered config generations.";
            vector_data_dir = strOption "/var/lib/vector" "Vector checkpoints and disk buffer.";
          };
          history = sectionOption "Git history of applied configurations." {
            repo = strOption "/var/lib/ids2/history.git" "The history repository.";
          };
          suricata = sectionOption "Suricata file locations." {
            # Under the agent's StateDirectory: the agent runs the rule updates (validate, swap,
            # record, live reload), so it owns the directory; Suricata reads it as group ids2
            # (its unit's SupplementaryGroups, below).
            rules_dir = strOption "/var/lib/ids2/rules" "Where the agent's rule updates keep the active rule set.";
          };
          shipping = sectionOption "Batching, buffering and the optional Redis copy." {
            redis = mkOption {
              type = types.nullOr (section {
                url = strOption "redis://127.0.0.1:6379/0" "Redis URL (loopback, no password).";
              });
              default = null;
              description = "When set, a local Redis (services.redis) receives a copy of events.";
            };
          };
        };
      };
    };

    credentialsFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/ids2-secrets/opensearch";
      description = ''
        Path ON THE SENSOR of the OpenSearch secret: an AWS shared credentials file for
        `aws_sigv4`, or a file whose first line is the password for `basic`. It is passed to the
        agent and Vector with systemd `LoadCredential=` and never enters the Nix store (a string,
        not a Nix path, for that reason). Copy it to the sensor out of band (scp, sops, agenix).
      '';
    };

    agentCredentials = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        slack-webhook = "/var/lib/ids2-secrets/slack-webhook";
        abuseipdb = "/var/lib/ids2-secrets/abuseipdb";
      };
      description = ''
        The agent's other secrets (notification URLs, tokens and passwords, the AbuseIPDB key):
        NAME = path on the sensor. Each is passed with systemd `LoadCredential=` and readable by
        the agent only, at `/run/credentials/ids2-agent/NAME`; point the matching `*_file` key
        of `settings` there (e.g. `notifications.webhook.url_file`, `enrichment.abuseipdb.api_key_file`).
        Strings, not Nix paths, so the secrets never enter the world-readable store.
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the agent's metrics port for a fleet Prometheus. The sensor's own Prometheus
        scrapes it over loopback, so it stays closed by default.
      '';
    };

    network.enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Declare `settings.capture.interface` (eth0) as the only managed link (DHCP) and keep
        every other link down (systemd-networkd). The agent enforces the same at runtime.
      '';
    };

    vector = {
      package = mkOption {
        type = types.package;
        default = pkgs.vector;
        defaultText = literalExpression "pkgs.vector";
        description = "The Vector package.";
      };
      extraConfigFiles = mkOption {
        type = types.listOf types.path;
        default = [ ];
        description = ''
          More Vector config files merged with the rendered one (`--config` each), e.g. an
          extra sink. The rendered file stays the source of the pipeline.
        '';
      };
    };

    monitoring.enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run Prometheus on loopback scraping the agent, Vector and a node exporter (15 days of
        history).
      '';
    };

    grafana = {
      enable = mkOption {
        type = types.bool;
        default = cfg.monitoring.enable;
        defaultText = literalExpression "config.services.ids2.monitoring.enable";
        description = "Run Grafana with the ids2 dashboard provisioned.";
      };
      port = mkOption {
        type = types.port;
        default = 3000;
        description = "Grafana's HTTP port.";
      };
      openFirewall = mkOption {
        type = types.bool;
        default = true;
        description = "Open Grafana's port (the operator's browser is its only user).";
      };
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = s.sensor.id != null;
          message = "services.ids2.settings.sensor.id must be set (e.g. \"pi5-lab-01\").";
        }
        {
          assertion = s.opensearch.domain != null && s.opensearch.region != null;
          message = "services.ids2.settings.opensearch.domain and .region must be set.";
        }
        {
          assertion = cfg.credentialsFile != null;
          message = ''
            services.ids2.credentialsFile must be set: the sensor needs an AWS credentials file
            (opensearch.auth.method = "aws_sigv4") or a password file ("basic") to ship events.
          '';
        }
        {
          assertion = cfg.credentialsFile == null
            || (lib.hasPrefix "/" cfg.credentialsFile
            && !lib.hasPrefix "${builtins.storeDir}/" cfg.credentialsFile);
          message = ''
            services.ids2.credentialsFile must be an absolute path on the sensor outside the Nix
            store (the store is world-readable); got ${toString cfg.credentialsFile}.
          '';
        }
        {
          assertion = lib.all
            (path: lib.hasPrefix "/" path && !lib.hasPrefix "${builtins.storeDir}/" path)
            (lib.attrValues cfg.agentCredentials);
          message = ''
            services.ids2.agentCredentials must map names to absolute paths on the sensor outside
            the Nix store (the store is world-readable).
          '';
        }
        {
          assertion = lib.hasPrefix "/" logsPath && lib.hasPrefix "/" renderedDir;
          message = "services.ids2.settings.logs.path and .paths.rendered_dir must be absolute.";
        }
      ];

      environment.etc."ids2/config.yaml".source = configFile;
      # The operator's commands on the sensor (`ids2-agent pcap get` over SSH among them).
      environment.systemPackages = [ cfg.package ];

      # The module owns the credential paths in config.yaml (see credentialPath above).
      services.ids2.settings.opensearch.auth = mkIf (cfg.credentialsFile != null) {
        credentials_file = mkIf (authMethod == "aws_sigv4") credentialPath;
        password_file = mkIf (authMethod == "basic") credentialPath;
      };

      users.users.ids2 = {
        isSystemUser = true;
        group = "ids2";
        # Suricata's unix socket (rule reloads, reopening the logs after an EVE rotation) is
        # open to its group only.
        extraGroups = [ config.services.suricata.settings.run-as.group ];
        description = "ids2 sensor agent";
      };
      users.groups.ids2 = { };
      users.users.vector = {
        isSystemUser = true;
        group = "vector";
        description = "Vector (ids2 event shipping)";
      };
      users.groups.vector = { };

      # The first line for the hot logs: a tmpfs mounted at boot with exactly the options the
      # agent's `ensure_tmpfs` checks, so the agent finds it correct and only repairs drift.
      fileSystems.${logsPath} = {
        device = "tmpfs";
        fsType = "tmpfs";
        options = [ "size=${toString s.logs.size_mb}m" "mode=0750" "nosuid" "nodev" "noexec" ];
      };

      systemd.tmpfiles.rules = [
        # After the tmpfs is mounted: Suricata writes, group ids2 reads (Vector) and renames
        # (the agent rotates eve.json to eve.json.1); the setgid bit gives eve.json the group
        # ids2. Mount options keep mode=0750 for the agent's check (mountinfo reports the
        # mount-time mode).
        "d ${logsPath} 2770 suricata ids2 -"
        "d ${s.paths.vector_data_dir} 0750 vector vector -"
        "d ${credentialDir} 0755 root root -"
        "f ${credentialPath} 0000 root root -"
      ] ++ map (dir: "d ${dir} 0750 ids2 ids2 -")
        (lib.unique [ (dirOf renderedDir) renderedDir (dirOf s.history.repo) s.suricata.rules_dir ])
      ++ [
        # The rendered suricata.yaml always lists the downloaded set, and nixpkgs' unit checks
        # it with `suricata -T` before each start, which fails when a listed file is missing.
        # Until the first rule update replaces it (first boot, no network, failed downloads),
        # an empty set stands in: Suricata starts with the local rules and loads the
        # downloaded set at the update's live reload. `f` never overwrites a real set.
        "f ${s.suricata.rules_dir}/suricata.rules 0640 ids2 ids2 - # No rule set downloaded yet; `ids2-agent rules update` replaces this file.\\n"
      ];

      systemd.services.ids2-agent = {
        description = "ids2 sensor agent";
        documentation = [ "file:///etc/ids2/config.yaml" ];
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" "dbus.service" "polkit.service" ];
        before = [ "suricata.service" "vector.service" ];
        unitConfig.RequiresMountsFor = [ logsPath ];
        # `suricata -T` validates every render and rule update before it is swapped in;
        # suricata-update downloads rules; git pushes history; nft applies block decisions
        # when blocking.nftables is on.
        path = [ config.services.suricata.package suricataUpdate pkgs.git pkgs.nftables ];
        # The package installs classification/reference/threshold configs under its own
        # etc/suricata (install-conf with e_sysconfdir=$out/etc/suricata in
        # pkgs/applications/networking/ids/suricata/default.nix); renders point there.
        environment.IDS2_SURICATA_ETC = "${config.services.suricata.package}/etc/suricata";
        # The agent re-reads config.yaml on SIGHUP (and when it changes); no restart needed.
        reloadTriggers = [ configFile ];
        serviceConfig = hardening // credentialUnitConfig // {
          Type = "notify";
          NotifyAccess = "main";
          WatchdogSec = "30s";
          ExecStart = "${lib.getExe' cfg.package "ids2-agent"} run --config /etc/ids2/config.yaml --backend systemd";
          ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
          Restart = "on-failure";
          RestartSec = "5s";
          TimeoutStopSec = "15s";
          User = "ids2";
          Group = "ids2";
          StateDirectory = "ids2";
          StateDirectoryMode = "0750";
          RuntimeDirectory = "ids2";
          ReadWritePaths = lib.unique [ renderedDir (dirOf s.history.repo) s.suricata.rules_dir logsPath ];
          LoadCredential = (credentialUnitConfig.LoadCredential or [ ])
            ++ lib.mapAttrsToList (name: path: "${name}:${path}") cfg.agentCredentials;
          # rtnetlink (eth0-only links, rollback guard) and ICMP probes of management targets;
          # the tmpfs and units go through systemd over D-Bus, so nothing else.
          CapabilityBoundingSet = [ "CAP_NET_ADMIN" "CAP_NET_RAW" ];
          AmbientCapabilities = [ "CAP_NET_ADMIN" "CAP_NET_RAW" ];
          RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" "AF_NETLINK" ];
          # No MemoryDenyWriteExecute: the agent runs `suricata -T`, whose PCRE2 JIT needs W+X.
          # The resource controller reads Suricata's and Vector's /proc entries.
          ProtectProc = "default";
          ProcSubset = "all";
          # Nor does it (or `suricata -T`, git, suricata-update, nft) set ids, chown, change
          # scheduling or resource limits.
          SystemCallFilter = [ "@system-service" "~@privileged" "~@resources" ];
        };
      };

      # The agent (user ids2) may start/stop/restart/reload/throttle exactly the units it
      # supervises. Transient units carry no unit name for polkit, so creating one is not
      # allowed: the log tmpfs is a declared mount unit (above) the agent can (re)start.
      security.polkit.enable = true;
      security.polkit.extraConfig = ''
        polkit.addRule(function (action, subject) {
          if (action.id == "org.freedesktop.systemd1.manage-units" &&
              subject.user == "ids2" &&
              ${builtins.toJSON managedUnits}.indexOf(action.lookup("unit")) >= 0 &&
              ${builtins.toJSON managedVerbs}.indexOf(action.lookup("verb")) >= 0) {
            return polkit.Result.YES;
          }
        });
      '';

      # Suricata from nixpkgs. Its unit takes the config from `services.suricata.configFile`
      # (a path, normally generated into the store from `settings`); pointing it at the
      # agent-rendered file keeps one source of truth: the agent's validated, versioned render.
      # `settings` then only feeds the module's own plumbing: the `-i` capture flag and its
      # assertion (af-packet) and the tmpfiles rules.
      services.suricata = {
        enable = true;
        configFile = "${renderedDir}/current/suricata.yaml";
        # No default-rule-path here: nixpkgs would create that directory for user suricata,
        # while the agent owns the rule set; the rendered suricata.yaml names it.
        settings.af-packet = [{ interface = iface; }];
      };
      systemd.services.suricata = {
        # At first boot nothing is rendered yet: the unit waits for the agent, and is skipped
        # (not failed) until a render exists; the agent starts it after its first good apply.
        after = [ "ids2-agent.service" "ids2-capture-offloads.service" ];
        wants = [ "ids2-capture-offloads.service" ];
        unitConfig.ConditionPathExists = "${renderedDir}/current/suricata.yaml";
        serviceConfig = {
          # nixpkgs runs both commands with a `!` prefix, so systemd ignores User=, Group= and
          # SupplementaryGroups= for them, and relies on `run-as` in the suricata.yaml it
          # generates to drop root. The agent's render has no `run-as`: Suricata would stay
          # root. The same command lines without `!` run as the unit's user (suricata) from
          # exec on, so Suricata never holds root, not even while it parses its config, and
          # `suricata -T` checks the files as the user that will have to read them. (`run-as`
          # would start as root and keep CAP_NET_ADMIN and CAP_SYS_NICE after dropping.)
          ExecStartPre = lib.mkForce "${suricataBin} -c ${suricataConfig} -T";
          ExecStart = lib.mkForce "${suricataBin} -c ${suricataConfig} -i ${iface}";
          # The agent's renders and rule sets are 0750/0640 in group ids2.
          SupplementaryGroups = [ "ids2" ];
          # af-packet's capture sockets need CAP_NET_RAW, and nothing else is kept: NIC
          # offloads are turned off by ids2-capture-offloads.service instead (CAP_NET_ADMIN).
          CapabilityBoundingSet = [ "CAP_NET_RAW" ];
          AmbientCapabilities = [ "CAP_NET_RAW" ];
          # Pinned workers run at nice -2 (priority "high" in the rendered suricata.yaml):
          # this limit allows exactly that, instead of CAP_SYS_NICE.
          LimitNICE = "-2";
          ReadWritePaths = [ logsPath ];
          # eve.json is read by group ids2 (the agent, Vector), nobody else.
          UMask = "0027";
          # nixpkgs sets `true`, which systemd rejects ("Failed to parse /proc/ protection
          # mode") and ignores.
          ProtectProc = lib.mkForce "invisible";
          ProtectHome = true;
          ProtectClock = true;
          PrivateMounts = true;
          # Packet sockets for capture, unix for the command socket, inet for the interface
          # ioctls (MTU, offload state). Suricata sends and receives no IP traffic itself.
          RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_PACKET" ];
          IPAddressDeny = "any";
          SystemCallFilter = [ "@system-service" "~@privileged" ];
          SystemCallErrorNumber = "EPERM";
          # Suricata reloads its rules on SIGUSR2 (live rule reload), used after rule updates.
          ExecReload = "${pkgs.coreutils}/bin/kill -USR2 $MAINPID";
        };
      };

      systemd.services.ids2-capture-offloads = {
        description = "Turn off NIC offloads on the ids2 capture interface";
        # Runs again whenever Suricata (re)starts, so a link reset in between is undone.
        partOf = [ "suricata.service" ];
        before = [ "suricata.service" ];
        serviceConfig = hardening // {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = offloadsOff;
          DynamicUser = true;
          CapabilityBoundingSet = [ "CAP_NET_ADMIN" ];
          AmbientCapabilities = [ "CAP_NET_ADMIN" ];
          # ethtool speaks ethtool-netlink, falling back to ioctls on an inet socket.
          RestrictAddressFamilies = [ "AF_NETLINK" "AF_INET" ];
          IPAddressDeny = "any";
          MemoryDenyWriteExecute = true;
          ProtectProc = "invisible";
          ProcSubset = "pid";
          SystemCallFilter = [ "@system-service" "~@privileged" "~@resources" ];
        };
      };
      # The agent runs rule updates itself (fleet.rules: staged download, `suricata -T`, atomic
      # swap, git record, live reload over the unix socket). nixpkgs' unit would write into the
      # same rule set unvalidated, so it is masked.
      systemd.services.suricata-update.enable = false;

      # Vector: nixpkgs' services.vector generates its config into the store from `settings`
      # and validates it at build time (vector.nix: ExecStart = vector --config <store file>);
      # it cannot take the agent-rendered, runtime-swapped vector.toml. So the unit is written
      # here, in the same hardened style as the agent's.
      systemd.services.vector = {
        description = "Vector: ships ids2 EVE events as ECS documents";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        after = [ "network-online.target" "ids2-agent.service" ]
          ++ lib.optional redisEnabled "redis-ids2.service";
        unitConfig = {
          ConditionPathExists = "${renderedDir}/current/vector.toml";
          RequiresMountsFor = [ logsPath s.paths.vector_data_dir ];
        };
        # Vector 0.57 and later expand ''${VAR} (the password reference) and unescape $$ in the
        # rendered config only when told to; older versions ignore the variable.
        environment.VECTOR_DANGEROUSLY_ALLOW_ENV_VAR_INTERPOLATION = "true";
        serviceConfig = hardening // credentialUnitConfig // {
          ExecStart = vectorStart;
          ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
          Restart = "always";
          RestartSec = "5s";
          # Vector gives up on requests in flight after vectorStopLimitSecs; the margin is for
          # its shutdown after that.
          TimeoutStopSec = "60s";
          User = "vector";
          Group = "vector";
          SupplementaryGroups = [ "ids2" ];
          ReadWritePaths = [ s.paths.vector_data_dir ];
          CapabilityBoundingSet = [ "" ];
          RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" "AF_NETLINK" ];
          MemoryDenyWriteExecute = true;
          ProtectProc = "invisible";
          ProcSubset = "pid";
        };
      };

      services.openssh = {
        enable = true;
        settings = {
          PasswordAuthentication = false;
          KbdInteractiveAuthentication = false;
          PermitRootLogin = "prohibit-password";
        };
      };

      networking.firewall = {
        enable = true;
        allowedTCPPorts = lib.optional cfg.openFirewall metricsPort
          ++ lib.optional (cfg.grafana.enable && cfg.grafana.openFirewall) cfg.grafana.port;
      };
    }

    (mkIf cfg.network.enable {
      networking.useNetworkd = true;
      networking.useDHCP = false;
      networking.wireless.enable = false;
      systemd.network.networks = {
        "10-ids2-${iface}" = {
          matchConfig.Name = iface;
          networkConfig.DHCP = "yes";
        };
        # Every other link stays down; the agent re-checks this at runtime.
        "90-ids2-others-down" = {
          matchConfig.Name = "!${iface} lo";
          linkConfig.ActivationPolicy = "down";
        };
      };
    })

    (mkIf redisEnabled {
      services.redis.servers.ids2 = {
        enable = true;
        bind = "127.0.0.1";
        port = redisPort;
      };
    })

    (mkIf cfg.monitoring.enable {
      services.prometheus = {
        enable = true;
        listenAddress = "127.0.0.1";
        port = 9090;
        retentionTime = "15d";
        globalConfig.scrape_interval = "15s";
        scrapeConfigs = [
          {
            job_name = "ids2-agent";
            static_configs = [{ targets = [ "${metricsHost}:${toString metricsPort}" ]; }];
          }
          {
            job_name = "vector";
            static_configs = [{ targets = [ vectorMetrics ]; }];
          }
          {
            job_name = "node";
            static_configs = [{ targets = [ "127.0.0.1:${toString nodeExporterPort}" ]; }];
          }
        ];
        exporters.node = {
          enable = true;
          listenAddress = "127.0.0.1";
          port = nodeExporterPort;
          enabledCollectors = [ "systemd" ];
        };
      };
    })

    (mkIf cfg.grafana.enable {
      # Grafana's secret key and first admin password are generated on the sensor at first
      # boot (read with `$__file{}`), never written into the Nix store.
      systemd.services.ids2-grafana-secrets = {
        description = "Generate Grafana's secret key and admin password for ids2";
        wantedBy = [ "grafana.service" ];
        before = [ "grafana.service" ];
        unitConfig.ConditionPathExists = "!/var/lib/ids2-grafana/secret_key";
        serviceConfig = {
          Type = "oneshot";
          UMask = "0077";
        };
        script = ''
          dir=/var/lib/ids2-grafana
          install -d -m 0750 -o root -g grafana "$dir"
          for f in admin_password secret_key; do
            ${pkgs.openssl}/bin/openssl rand -hex 32 > "$dir/$f.new"
            chown root:grafana "$dir/$f.new"
            chmod 0440 "$dir/$f.new"
            mv "$dir/$f.new" "$dir/$f"
          done
        '';
      };

      services.grafana = {
        enable = true;
        settings = {
          server = {
            http_addr = "0.0.0.0";
            http_port = cfg.grafana.port;
          };
          security = {
            secret_key = "$__file{/var/lib/ids2-grafana/secret_key}";
            admin_password = "$__file{/var/lib/ids2-grafana/admin_password}";
          };
          analytics = {
            reporting_enabled = false;
            check_for_updates = false;
            check_for_plugin_updates = false;
          };
        };
        provision = {
          enable = true;
          datasources.settings = {
            apiVersion = 1;
            datasources = [{
              name = "Prometheus (sensor)";
              uid = "ids2-prometheus";
              type = "prometheus";
              url = "http://127.0.0.1:9090";
              isDefault = true;
            }];
          };
          dashboards.settings = {
            apiVersion = 1;
            providers = [{
              name = "ids2";
              folder = "ids2";
              options.path = pkgs.linkFarm "ids2-grafana-dashboards" [
                { name = "ids2.json"; path = ../templates/grafana/ids2.json; }
              ];
            }];
          };
        };
      };
    })
  ]);
}
