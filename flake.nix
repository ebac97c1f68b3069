{
  description = "ids2: a Raspberry Pi 5 network IDS sensor (Suricata -> ECS -> OpenSearch)";

  # Prebuilt Pi 5 kernels and firmware for the nixpkgs nixos-raspberrypi pins (its README).
  nixConfig = {
    extra-substituters = [ "https://nixos-raspberrypi.cachix.org" ];
    extra-trusted-public-keys = [
      "nixos-raspberrypi.cachix.org-1:4iMO9LXa8BqhU+Rpg6LQKiGa2lsNh/j2oiYLNOQ5sPI="
    ];
  };

  inputs = {
    # Pi 5 board support (vendor kernel with 16 KiB pages, firmware, generational boot loader,
    # SD image), pinned to a commit. raspberry-pi-nix is archived; this is the maintained one.
    nixos-raspberrypi.url = "github:nvmd/nixos-raspberrypi/06c6e3513e1ee64b651913193fc6ac38aa4963f5";
    # One nixpkgs for everything: the one that commit locks (nixos-25.11). Its binary cache
    # holds the Pi kernel for exactly that nixpkgs; another one would rebuild the kernel.
    nixpkgs.follows = "nixos-raspberrypi/nixpkgs";
    # The Rust builder (its quick-start example is the model for the checks below).
    crane.url = "github:ipetkov/crane/004a48e8e96d9a033af974145c4e64659d47c76f";
    # rustc 1.95 (rust-toolchain.toml; vrl 0.38 needs it) is newer than nixos-25.11's rustc.
    rust-overlay = {
      url = "github:oxalica/rust-overlay/62e3b8aedabc240e5b0cc9fae003bc9edfebbc9b";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = { self, nixpkgs, nixos-raspberrypi, crane, rust-overlay }:
    let
      inherit (nixpkgs) lib;
      # The sensor (agent) and the lab are Linux programs; the operator's tool (provision) also
      # runs on macOS laptops, so its package and app exist for the darwin systems too.
      linuxSystems = [ "x86_64-linux" "aarch64-linux" ];
      systems = linuxSystems ++ [ "aarch64-darwin" "x86_64-darwin" ];
      forAllSystems = f: lib.genAttrs systems (system: f system);

      perSystem = system:
        let
          pkgs = import nixpkgs {
            inherit system;
            overlays = [ rust-overlay.overlays.default ];
          };
          isLinux = lib.elem system linuxSystems;
          craneLib = (crane.mkLib pkgs).overrideToolchain
            (p: p.rust-bin.fromRustupToolchainFile ./rust-toolchain.toml);

          # The agent embeds templates/ with include_str!, so the source is the workspace plus
          # templates/, not only Rust files (craneLib.cleanCargoSource would drop them).
          src = lib.fileset.toSource {
            root = ./.;
            fileset = lib.fileset.unions [
              ./Cargo.toml
              ./Cargo.lock
              ./rust-toolchain.toml
              ./core
              ./agent
              ./lab
              ./provision
              ./tests
              ./templates
            ];
          };

          commonArgs = {
            inherit src;
            pname = "ids2";
            version = (lib.importTOML ./Cargo.toml).workspace.package.version;
            strictDeps = true;
          };
          cargoArtifacts = craneLib.buildDepsOnly commonArgs;

          # One crate and its own dependencies: the agent package holds no lab, and provision's
          # build never meets the agent's Linux-only crates (it builds on macOS).
          mkBin = crate: description: extra:
            let
              crateArgs = commonArgs // {
                pname = crate;
                cargoExtraArgs = "--locked -p ${crate}";
                buildInputs = lib.optionals pkgs.stdenv.hostPlatform.isDarwin [ pkgs.libiconv ];
              };
            in
            craneLib.buildPackage (crateArgs // {
              cargoArtifacts = craneLib.buildDepsOnly crateArgs;
              # Tests run once, in the nextest check, with the real tools they need.
              doCheck = false;
              meta = {
                inherit description;
                mainProgram = crate;
              };
            } // extra);

          ids2-agent = mkBin "ids2-agent" "ids2 sensor agent" { };
          ids2-provision = mkBin "ids2-provision" "ids2 operator CLI (AWS OpenSearch, sensor config)" { };
          # For developers' and evaluators' machines; the sensor image never contains it. It runs
          # the sensor's own agent, Suricata and iproute2 (ip, tc), which the wrapper provides
          # (the variables survive the lab's re-run under sudo; PATH may not).
          ids2-lab = mkBin "ids2-lab" "ids2 lab and adversary emulator (never on a sensor)" {
            nativeBuildInputs = [ pkgs.makeWrapper ];
            postInstall = ''
              wrapProgram $out/bin/ids2-lab \
                --set-default IDS2_AGENT ${lib.getExe ids2-agent} \
                --set-default IDS2_SURICATA ${pkgs.suricata}/bin/suricata \
                --prefix PATH : ${lib.makeBinPath [ pkgs.suricata pkgs.iproute2 ]}
            '';
          };

          # The AWS emulator the provision tests use ($IDS2_MOTO_SERVER).
          pythonWithMoto = pkgs.python3.withPackages
            (ps: [ ps.moto ] ++ (ps.moto.optional-dependencies.server or [ ]));
          # Real components the tests look for; root-only tests skip inside the Nix sandbox.
          testTools = [ pkgs.suricata pkgs.prometheus pkgs.git pythonWithMoto ];
        in
        {
          packages = {
            inherit ids2-provision;
            default = if isLinux then ids2-agent else ids2-provision;
          } // lib.optionalAttrs isLinux {
            inherit ids2-agent ids2-lab;
          };

          apps = {
            provision = {
              type = "app";
              program = lib.getExe ids2-provision;
              meta.description = "Provision AWS OpenSearch and write a sensor config";
            };
          } // lib.optionalAttrs isLinux {
            lab = {
              type = "app";
              program = lib.getExe ids2-lab;
              meta.description = "Run the ids2 lab: a virtual LAN attacked by the emulator, watched by the sensor (root)";
            };
          };

          checks = { inherit ids2-provision; } // lib.optionalAttrs isLinux ({
            inherit ids2-agent ids2-lab;

            clippy = craneLib.cargoClippy (commonArgs // {
              inherit cargoArtifacts;
              cargoClippyExtraArgs = "--workspace --all-targets --locked -- --deny warnings";
            });

            fmt = craneLib.cargoFmt { inherit src; inherit (commonArgs) pname version; };

            doc = craneLib.cargoDoc (commonArgs // {
              inherit cargoArtifacts;
              cargoDocExtraArgs = "--workspace --no-deps";
              env.RUSTDOCFLAGS = "--deny warnings";
            });

            nextest = craneLib.cargoNextest (commonArgs // {
              inherit cargoArtifacts;
              nativeBuildInputs = testTools;
              IDS2_MOTO_SERVER = "${pythonWithMoto}/bin/moto_server";
              cargoNextestExtraArgs = "--workspace --no-fail-fast";
            });
          } // lib.optionalAttrs (system == "x86_64-linux") {
            vm-sensor = pkgs.testers.runNixOSTest (import ./nixos/tests/sensor.nix { inherit self; });
          });

          devShells = lib.optionalAttrs isLinux {
            default = craneLib.devShell {
              packages = testTools ++ [
                pkgs.cargo-nextest
                pkgs.vector
                pkgs.tcpreplay
                pkgs.nixpkgs-fmt
                pkgs.deadnix
                pkgs.jq
              ];
              IDS2_MOTO_SERVER = "${pythonWithMoto}/bin/moto_server";
            };
          };

          formatter = pkgs.nixpkgs-fmt;
        };

      bySystem = forAllSystems perSystem;
      collect = attr: lib.mapAttrs (_: outputs: outputs.${attr}) bySystem;
    in
    {
      packages = lib.recursiveUpdate (collect "packages") {
        aarch64-linux.sdImage = self.nixosConfigurations.pi5.config.system.build.sdImage;
      };
      apps = collect "apps";
      checks = collect "checks";
      devShells = collect "devShells";
      formatter = collect "formatter";

      nixosModules = {
        ids2 = { pkgs, lib, ... }: {
          # `default` is this same module: one key makes importing both one import, not two
          # definitions of services.ids2.package.
          key = "ids2-flake#nixosModules.ids2";
          _file = ./flake.nix;
          imports = [ ./nixos/module.nix ];
          services.ids2.package =
            lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.ids2-agent;
        };
        default = self.nixosModules.ids2;
      };

      # nixos-raspberrypi's nixosSystem adds its base config (overlays, aarch64 host platform,
      # binary cache) and needs the flake itself in specialArgs (lib/internal.nix).
      nixosConfigurations.pi5 = nixos-raspberrypi.lib.nixosSystem {
        specialArgs = { inherit nixos-raspberrypi; };
        modules = [
          self.nixosModules.ids2
          ./nixos/pi5.nix
          ./nixos/site.nix
        ];
      };
    };
}
