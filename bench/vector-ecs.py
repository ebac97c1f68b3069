#!/usr/bin/env python3
"""The cost of the ECS mapping where it really runs: the real Vector, file source -> remap ->
elasticsearch sink (bulk `index`) to a local osmem-server (an OpenSearch-API emulator) holding
the index templates `ids2-provision opensearch setup` installs, per EVE type and on the corpus
mix, with the pass-through and parse_json floors in the same run.

What it runs:
- the program, the file source, the remap options and the sink options come from the
  `vector.toml` that `ids2-agent render` writes for agent/config.example.yaml (default EVE
  types); only the paths, the endpoint (the emulator, no auth) and the batch timeout (1 s: wall
  time only, so runs end sooner) differ;
- the EVE: Suricata 7 over every corpus pcap (../shared/corpus/pcaps) with the rendered
  suricata.yaml, Suricata's own event rules and the ids2 rules; distinct lines only, repeated
  with a `bench_copy` counter prepended so every line (and so every document id) is distinct,
  and dated today as a sensor's events are (so one daily index per dataset, see write_input);
- one Vector process per input and variant, fresh data_dir (checkpoints, disk buffer), ended
  once the emulator counts every document.

What it reports: events per CPU-second of the Vector process (user + system, all threads, from
/proc), net of its start-up (the input is handed over only once Vector has started: the file
renamed into the path it watches) and, as "incl. start", with it; Vector's peak RSS (VmHWM);
0-event runs of each variant, whose difference is the program's compile at every start. The
json codec (decoding at the source) needs the stdin source (the file source has no
`decoding`): it is measured that way, against a stdin pass-through, on the mix only.
Compare within one run, as ratios: this is a shared machine and a Vector build without LTO.

--steady RATE feeds the mix at RATE events per second for --seconds instead of all at once,
the sink batching as the rendered config says (its 5 s timeout, not the 1 s of the other runs):
what a sensor at that rate spends (share of one core) and holds (peak RSS), where the burst
runs' peak RSS is mostly the sink's batches of a backlog.

--long-lines measures what one long EVE line costs Vector in memory: its peak RSS over the
transform alone (stdin -> parse_json or the ECS remaps -> blackhole) for an ordinary alert, the
corpus's longest line (a 2.4 MB DNP3 alert) and that line grown to the sensor's cap
(`max_line_bytes`, by repeating the elements of its longest array): the figures behind the cap
(ids2_core::ecs::EVE_MAX_LINE_BYTES).

--breakdown adds, on the mix, where the pipeline's cost lies: the transform alone (stdin ->
remap -> blackhole, what the program itself costs, parse_json against ECS) and the full
pipeline with a memory buffer instead of the disk buffer (what the disk buffer's encoding of
each event adds, in each variant), and at each stage the ECS documents alone: the mix mapped
ahead by `ids2-agent ecs` and shipped through the parse_json floor (what the document's shape
costs, with no mapping in Vector).

Usage: bench/vector-ecs.py [--mix N] [--per-type N] [--types alert,dns] [--program FILE]
                          [--preload LIB] [--breakdown] [--ecs-unmapped] [--steady RATE --seconds S]
                          [--long-lines]
  --program FILE   measure a candidate ECS program (rendered VRL) instead of the shipped one
  --preload LIB    run Vector with LD_PRELOAD=LIB, e.g. /usr/lib/x86_64-linux-gnu/libjemalloc.so.2:
                   the shared build uses glibc's allocator, Vector's own release builds jemalloc
                   (and so does the sensor's: nixos/pi5.nix builds it for 64 KiB pages)
  --breakdown      also measure the mix as the transform alone and without the disk buffer, and
                   the ECS documents alone (mapped ahead) at each stage
  --ecs-unmapped   the ECS documents go to indices that map nothing (as the floors' do): whether
                   the emulator's indexing work, which shares the machine, moves Vector's figures
  --steady RATE    only the mix, fed at RATE events/s for --seconds (default 60): core share and RSS
  --long-lines     only Vector's peak RSS for one ordinary, one 2.4 MB and one cap-sized line
Needs: Vector (IDS2_VECTOR, else `vector` on PATH, else ../shared/vector/vector), osmem-server
(IDS2_OSMEM_SERVER, else /opt/ids2-venv), suricata, ids2-agent and ids2-provision (IDS2_AGENT,
IDS2_PROVISION, else built: cargo build -p ids2-agent -p ids2-provision). Says what is missing
and exits 0 when something is.
"""
import argparse
import collections
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
# The config whose rendered vector.toml (and ECS program) every run measures.
EXAMPLE_CONFIG = ROOT / "agent" / "config.example.yaml"
# Longest EVE line the bench sends (the sensor ships up to 4 MiB; see where it is used).
LONG_LINE_BYTES = 1 << 20
# Every run is bounded: this long for the emulator to count every document.
RUN_TIMEOUT_S = 600
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Vector reads `${VAR}` in its config only with this set (0.57+); the agent sets it too.
VECTOR_ENV = {"VECTOR_DANGEROUSLY_ALLOW_ENV_VAR_INTERPOLATION": "true"}
# Where a rendered program's second remap (ecs_protocols) begins: ids2_agent::render::PROTOCOLS_MARKER.
PROTOCOLS_MARKER = "# ---- ids2: the protocol sections, a second remap (ecs_protocols) ----"
# The event's own date: EVE opens with "timestamp"; nested ones (flow.start) come later.
TIMESTAMP_DATE = re.compile(r'^("timestamp":")\d{4}-\d{2}-\d{2}')
# The floor: parsing the EVE line and nothing else.
PARSE_JSON = ". = parse_json!(string!(.message))"


def skip(why):
    print(f"SKIP: {why}")
    sys.exit(0)


def locate_vector():
    """The order ids2_agent::vector::locate() uses."""
    env = os.environ.get("IDS2_VECTOR")
    if env:
        return env if Path(env).is_file() else skip(f"IDS2_VECTOR={env} is not a file")
    on_path = shutil.which("vector")
    if on_path:
        return on_path
    shared = ROOT.parent / "shared" / "vector" / "vector"
    if shared.is_file():
        return str(shared)
    skip("no Vector: set IDS2_VECTOR, put `vector` on PATH, or place ../shared/vector/vector")


def locate_osmem():
    env = os.environ.get("IDS2_OSMEM_SERVER")
    if env:
        return env
    try:
        out = subprocess.run(
            ["/opt/ids2-venv/bin/python", "-c",
             "import osmem_server; print(osmem_server.resolve_binary())"],
            capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        skip("no osmem-server (.ci/install-deps installs it into /opt/ids2-venv)")
    return out


def locate_ids2():
    """ids2-agent and ids2-provision: IDS2_AGENT / IDS2_PROVISION, else built (a no-op when
    fresh) rather than found, as a stale binary renders another program."""
    agent, provision = os.environ.get("IDS2_AGENT"), os.environ.get("IDS2_PROVISION")
    if not (agent and provision):
        subprocess.run(["cargo", "build", "-q", "-p", "ids2-agent", "-p", "ids2-provision"],
                       cwd=ROOT, check=True)
    return (agent or str(ROOT / "target/debug/ids2-agent"),
            provision or str(ROOT / "target/debug/ids2-provision"))


def install_templates(provision, osmem, prefix, work):
    """The index templates a sensor's domain holds (`ids2-provision opensearch setup`; the
    emulator has no ISM, Alerting or Dashboards API for the rest). Without them the emulator
    maps each field from the first value it sees and refuses the events that disagree."""
    password = work / "opensearch-password"
    password.write_text("bench\n")
    subprocess.run([provision, "opensearch", "setup", "--endpoint", osmem.url,
                    "--templates-only", "--auth", "basic", "--username", "bench",
                    "--password-file", str(password), "--index-prefix", prefix,
                    "--timeout-secs", "30"], check=True, capture_output=True, timeout=120)


class Osmem:
    def __init__(self, binary):
        self.proc = subprocess.Popen(
            [binary, "-addr", "127.0.0.1:0", "-no-stdin-watch", "-no-ja",
             "-parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = json.loads(self.proc.stdout.readline())["url"]
        # The floors index raw EVE, whose fields clash across events (a flow_id past the
        # range of a long after one within it): nothing of theirs is mapped, so none is refused.
        self.unmapped("bench-*")

    def unmapped(self, pattern):
        """Indices matching `pattern` map no field (a template above any other)."""
        name = pattern.rstrip("-*") + "-unmapped"
        req = urllib.request.Request(
            f"{self.url}/_index_template/{name}", method="PUT",
            data=json.dumps({"index_patterns": [pattern], "priority": 10000,
                             "template": {"mappings": {"dynamic": False}}}).encode(),
            headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=60).read()

    def call(self, method, path):
        req = urllib.request.Request(self.url + path, method=method)
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"null")

    def count(self, pattern):
        try:
            self.call("POST", f"/{pattern}/_refresh")
            return self.call("GET", f"/{pattern}/_count")["count"]
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return 0
            raise

    def clear(self):
        for row in self.call("GET", "/_cat/indices?format=json") or []:
            self.call("DELETE", "/" + row["index"])

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def proc_cpu_s(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_hwm_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def render(agent, work):
    out = work / "rendered"
    subprocess.run([agent, "render", "--config", str(EXAMPLE_CONFIG),
                    "--out", str(out)], check=True, capture_output=True)
    current = out / "current"
    return current, tomllib.loads((current / "vector.toml").read_text())


def corpus_eve(current, work):
    """Suricata over every corpus pcap with the rendered suricata.yaml: distinct EVE lines."""
    logs = work / "suricata"
    logs.mkdir()
    rules = work / "bench.rules"
    with rules.open("w") as out:
        for f in sorted(Path("/etc/suricata/rules").glob("*.rules")):
            out.write(f.read_text())
        for f in sorted((current / "rules").glob("*.rules")):
            out.write(f.read_text())
    subprocess.run(
        ["suricata", "-r", str(CORPUS / "pcaps"), "-c", str(current / "suricata.yaml"),
         "-S", str(rules), "-l", str(logs), "-k", "none", "--runmode", "single",
         "--set", "threading.set-cpu-affinity=no", "--set", "unix-command.enabled=no"],
        check=True, capture_output=True, timeout=600)
    lines = (logs / "eve.json").read_text().splitlines()
    return list(dict.fromkeys(line for line in lines if line.strip()))


def write_input(path, lines, n):
    """`n` lines cycling through `lines`, each made distinct by a copy counter and dated today.

    A sensor's events are of the last seconds, so its sink writes to one daily index per
    dataset. The corpus spans 250 days from 1970 to 2026: left as they are, the ECS runs wrote
    to ~600 indices (a batch and a request per index) against the floors' one, and values
    that conflict across events never met in one index's mapping (dated today, 61 of 20,000
    mix documents were refused until the templates set ignore_malformed). Only the event's own
    timestamp moves (its time of day kept); flow start and end stay as Suricata wrote them."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    with path.open("w") as out:
        written, copy = 0, 0
        while written < n:
            for line in lines:
                if written == n:
                    break
                dated = TIMESTAMP_DATE.sub(r"\g<1>" + today, line[1:], count=1)
                out.write('{"bench_copy":%d,%s\n' % (copy, dated))
                written += 1
            copy += 1


class Bench:
    def __init__(self, vector, osmem, toml, work, program, preload, sink_set=()):
        self.vector, self.osmem, self.work = vector, osmem, work
        self.preload = preload
        self.toml = toml
        self.program = program
        # (dotted path, value): sink options changed for every variant (--sink-set).
        self.sink_set = sink_set
        # False: the sink gets Vector's default memory buffer (--breakdown).
        self.disk_buffer = True
        # (events/s, seconds): the input fed at a steady rate, the sink batching as rendered.
        self.steady = None
        # Seconds from the end of a steady feed until every document was counted.
        self.drain_s = None
        self.prefix = toml["sinks"]["opensearch"]["bulk"]["index"].split("-")[0]
        self.runs = 0

    def sink(self, inputs, index=None):
        sink = {k: v for k, v in self.toml["sinks"]["opensearch"].items()
                if k not in ("auth", "aws", "inputs", "endpoints")}
        sink = json.loads(json.dumps(sink))
        sink["inputs"] = inputs
        sink["endpoints"] = [self.osmem.url]
        if not self.steady:
            sink["batch"]["timeout_secs"] = 1
        if not self.disk_buffer:
            sink.pop("buffer", None)
        if index:
            # The floors carry no event.dataset nor event.id: a fixed index, ids made by the server.
            sink["bulk"]["index"] = index
            sink.pop("id_key", None)
        for path, value in self.sink_set:
            *parents, leaf = path.split(".")
            table = sink
            for key in parents:
                table = table.setdefault(key, {})
            table[leaf] = value
        return sink

    def ecs_transforms(self, inputs):
        """The ECS program's remap transforms as `vector.toml` has them (or the candidate
        program's, split the same way), fed by `inputs`; the last is the one to ship."""
        ecs = dict(self.toml["transforms"]["ecs"], inputs=inputs)
        protocols = dict(self.toml["transforms"]["ecs_protocols"])
        if self.program:
            core, marker, rest = self.program.partition(PROTOCOLS_MARKER)
            ecs["source"] = core
            protocols["source"] = marker + rest
        if not protocols["source"].strip():
            return {"ecs": ecs}, "ecs"
        return {"ecs": ecs, "ecs_protocols": protocols}, "ecs_protocols"

    def config(self, variant, data_dir, input_path):
        eve = dict(self.toml["sources"]["eve"])
        eve["include"] = [str(input_path)]
        cfg = {"data_dir": str(data_dir), "log_schema": self.toml.get("log_schema", {}),
               "sources": {}, "transforms": {}, "sinks": {}}
        if variant.startswith("stdin"):
            src = {"type": "stdin", "max_length": eve["max_line_bytes"]}
            if variant == "stdin_json_codec":
                src["decoding"] = {"codec": "json"}
            cfg["sources"]["eve"] = src
            if variant.startswith("stdin_alone_"):
                # The transform alone: nothing downstream but a sink that drops every event.
                if variant == "stdin_alone_ecs":
                    cfg["transforms"], last = self.ecs_transforms(["eve"])
                else:
                    cfg["transforms"]["ecs"] = {"type": "remap", "inputs": ["eve"],
                                                "source": PARSE_JSON}
                    last = "ecs"
                cfg["sinks"]["out"] = {"type": "blackhole", "inputs": [last],
                                       "print_interval_secs": 0}
                return cfg
            cfg["sinks"]["opensearch"] = self.sink(["eve"], f"bench-{variant}")
            # Vector exits at the end of stdin and keeps what its disk buffer holds for the
            # next start: a memory buffer is drained before it exits, so every event is counted.
            cfg["sinks"]["opensearch"].pop("buffer", None)
            return cfg
        cfg["sources"]["eve"] = eve
        if variant == "pass":
            cfg["sinks"]["opensearch"] = self.sink(["eve"], "bench-pass")
        elif variant == "parse_json":
            cfg["transforms"]["ecs"] = {"type": "remap", "inputs": ["eve"],
                                        "source": PARSE_JSON}
            cfg["sinks"]["opensearch"] = self.sink(["ecs"], "bench-parse_json")
        else:
            cfg["transforms"], last = self.ecs_transforms(["eve"])
            unmapped = dict(self.toml["transforms"]["ecs_unmapped"])
            unmapped["inputs"] = ["ecs.dropped"]
            cfg["transforms"]["ecs_unmapped"] = unmapped
            cfg["sinks"]["opensearch"] = self.sink([last, "ecs_unmapped"])
        return cfg

    def run(self, variant, input_path, n):
        """One Vector process over `n` events (0: only its start). The input is handed over
        once Vector has started (the file renamed into the path it watches, or written to its
        stdin), so the CPU it used until then is its start-up, measured apart.
        Returns (start-up CPU-s, total CPU-s, peak RSS MB)."""
        self.runs += 1
        run_dir = self.work / f"run{self.runs}"
        (run_dir / "data").mkdir(parents=True)
        watched = run_dir / "eve.json"
        cfg_path = run_dir / "vector.json"
        cfg_path.write_text(json.dumps(self.config(variant, run_dir / "data", watched)))
        log_path = run_dir / "vector.log"
        stderr = log_path.open("w")
        stdin_source = variant.startswith("stdin")
        env = dict(os.environ, **VECTOR_ENV)
        if self.preload:
            env["LD_PRELOAD"] = self.preload
        proc = subprocess.Popen([self.vector, "--config", str(cfg_path)],
                                stdin=subprocess.PIPE if stdin_source else subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        pattern = f"{self.prefix}-*" if variant == "ecs" else "bench-*"
        try:
            while "Vector has started" not in log_path.read_text():
                if proc.poll() is not None:
                    raise RuntimeError(f"{variant}: Vector exited, see {log_path}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{variant}: no start in {RUN_TIMEOUT_S} s ({log_path})")
                time.sleep(0.02)
            time.sleep(0.3)
            start = proc_cpu_s(proc.pid)
            if n == 0:
                cpu, hwm = start, proc_hwm_mb(proc.pid)
            elif stdin_source:
                # Ends by itself at the end of its input; wait4 gives its CPU and peak RSS.
                with open(input_path, "rb") as f:
                    shutil.copyfileobj(f, proc.stdin)
                proc.stdin.close()
                watchdog = threading.Timer(max(deadline - time.monotonic(), 1), proc.kill)
                watchdog.start()
                _, status, usage = os.wait4(proc.pid, 0)
                watchdog.cancel()
                proc.returncode = os.waitstatus_to_exitcode(status)
                if proc.returncode != 0:
                    raise RuntimeError(f"{variant}: Vector exited {proc.returncode} ({log_path})")
                cpu, hwm = usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
            else:
                if self.steady:
                    feed_steadily(input_path, watched, *self.steady, proc)
                    fed = time.monotonic()
                else:
                    os.link(input_path, run_dir / "staged.json")
                    os.rename(run_dir / "staged.json", watched)
                while self.osmem.count(pattern) < n:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{variant}: Vector exited, see {log_path}")
                    if time.monotonic() > deadline:
                        errors = [line for line in log_path.read_text().splitlines()
                                  if " ERROR " in line or " WARN " in line]
                        raise RuntimeError(f"{variant}: {self.osmem.count(pattern)} of {n} "
                                           f"documents in {RUN_TIMEOUT_S} s; Vector's last "
                                           "errors:\n" + "\n".join(e[:600] for e in errors[-5:]))
                    time.sleep(0.5)
                cpu, hwm = proc_cpu_s(proc.pid), proc_hwm_mb(proc.pid)
                if self.steady:
                    self.drain_s = time.monotonic() - fed
            got = self.osmem.count(pattern) if n and "_alone_" not in variant else n
            if n and got != n:
                raise RuntimeError(f"{variant}: {got} documents for {n} events ({run_dir})")
            if variant == "ecs" and n:
                unmapped = self.osmem.count(f"{self.prefix}-suricata.unmapped-*")
                if unmapped:
                    print(f"  note: {unmapped} of {n} events left unmapped (ecs.dropped)")
        finally:
            if proc.poll() is None:
                # Measured: its data_dir is thrown away, so no graceful shutdown is needed.
                proc.kill()
                proc.wait()
            stderr.close()
            self.osmem.clear()
        shutil.rmtree(run_dir, ignore_errors=True)
        return start, cpu, hwm


def grown(line, size):
    """`line` with the elements of its longest array repeated until it is about `size` bytes."""
    doc = json.loads(line)
    arrays = []

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            arrays.append(v)
            for x in v:
                walk(x)
    walk(doc)
    longest = max(arrays, key=len)
    compact = dict(separators=(",", ":"))
    each = len(json.dumps(longest, **compact)) / len(longest)
    seed = list(longest)
    while True:
        room = size - 64 - len(json.dumps(doc, **compact))
        if room < 2 * each:
            return json.dumps(doc, **compact)
        # Two thirds of the room at a time: the estimate per element is an average.
        longest.extend(seed[i % len(seed)] for i in range(int(room * 2 / 3 / each)))


def long_lines(bench, lines, too_long, cap, work):
    """Vector's peak RSS for one line each: an ordinary alert, the corpus's longest line and that
    line grown to the cap, through parse_json and through the ECS remaps (transform alone)."""
    if not too_long:
        skip("the corpus has no EVE line over 1 MiB (the DNP3 alert needs dnp3-events.rules)")
    longest = max(too_long, key=len)
    inputs = {
        "ordinary alert": next(line for line in lines if '"event_type":"alert"' in line),
        "corpus's longest": longest,
        "grown to the cap": grown(longest, cap),
    }
    print(f"cap (max_line_bytes): {cap} bytes; Vector's peak RSS (MB), one line each, "
          "stdin -> transform -> blackhole\n")
    print("| line | bytes | objects | parse_json | ECS remaps |")
    print("|---|---|---|---|---|")
    for label, line in inputs.items():
        path = work / "one.json"
        path.write_text(line + "\n")
        objects = line.count("{")
        hwm = {v: bench.run(v, path, 1)[2] for v in ("stdin_alone_pj", "stdin_alone_ecs")}
        print(f"| {label} | {len(line)} | ~{objects} | {hwm['stdin_alone_pj']:.0f} | "
              f"{hwm['stdin_alone_ecs']:.0f} |", flush=True)


def feed_steadily(input_path, watched, rate, seconds, proc):
    """Appends `input_path` to the watched file `rate / 10` lines every 100 ms, on a fixed
    clock (a late tick catches up rather than stretching the run)."""
    per_tick = max(rate // 10, 1)
    with input_path.open("rb") as src, watched.open("ab") as out:
        t0 = time.monotonic()
        for tick in range(seconds * 10):
            chunk = b"".join(src.readline() for _ in range(per_tick))
            out.write(chunk)
            out.flush()
            if proc.poll() is not None:
                raise RuntimeError("Vector exited while being fed")
            delay = t0 + (tick + 1) / 10 - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def steady(bench, lines, work, rate, seconds):
    """The mix at a sensor's steady rate: each variant's CPU per second of input and peak RSS."""
    n = (rate // 10) * 10 * seconds
    path = work / "steady.json"
    write_input(path, lines, n)
    bench.steady = (rate, seconds)
    print(f"\nthe mix fed at {rate} events/s for {seconds} s ({n} events), the sink batching "
          "as rendered\n")
    print("| variant | Vector's share of one core | µs per event | peak RSS MB "
          "| all indexed after the feed | the emulator's share of one core |")
    print("|---|---|---|---|---|---|")
    try:
        for v in ("pass", "parse_json", "ecs"):
            server_cpu = proc_cpu_s(bench.osmem.proc.pid)
            started, cpu, hwm = bench.run(v, path, n)
            server_cpu = proc_cpu_s(bench.osmem.proc.pid) - server_cpu
            print(f"| {v} | {(cpu - started) / seconds:.1%} | {(cpu - started) / n * 1e6:.0f} | "
                  f"{hwm:.0f} | {bench.drain_s:.1f} s | {server_cpu / seconds:.1%} |", flush=True)
    finally:
        bench.steady = None
        path.unlink()


def breakdown(bench, agent, mix, n, disk_row):
    """Where the mix's cost lies: the transform alone, then the pipeline without and with the
    disk buffer (the last from the main table's mix row, measured in the same run). Beside the
    floors and the program, the ECS documents alone: the mix mapped ahead by `ids2-agent ecs`
    (the same program, through the vrl crate) and handed to the `parse_json` floor, so Vector
    parses and ships the documents the program makes without mapping anything. What that costs
    over `parse_json` of the EVE lines is the document's shape (its values and objects, through
    every stage), not the mapping."""
    mapped = mix.with_name(mix.stem + "-ecs.json")
    with mix.open("rb") as eve, mapped.open("wb") as out:
        subprocess.run([agent, "ecs", "--config", str(EXAMPLE_CONFIG)],
                       stdin=eve, stdout=out, check=True, timeout=RUN_TIMEOUT_S)

    def us(variant, path=mix):
        started, cpu, hwm = bench.run(variant, path, n)
        return (cpu - started) / n * 1e6, hwm

    def line(stage, cells):
        pj, doc, ecs = cells["parse_json"], cells["doc"], cells["ecs"]
        pas = f"{cells['pass'][0]:.0f}" if "pass" in cells else "—"
        print(f"| {stage} | {pas} | {pj[0]:.0f} | {doc[0]:.0f} | {ecs[0]:.0f} | "
              f"{pj[0] / doc[0]:.2f} | {pj[0] / ecs[0]:.2f} | "
              f"{pj[1]:.0f} / {doc[1]:.0f} / {ecs[1]:.0f} |", flush=True)

    if bench.program:
        print("\nnote: the document alone is the shipped program's (ids2-agent ecs), not --program's")
    print("\nwhere the mix's cost lies: µs of Vector CPU per event, net of start-up; ECS document"
          " alone = the ECS documents made ahead, through the parse_json floor\n")
    print("| stage | pass-through | parse_json | ECS document alone | ECS | document alone / "
          "parse_json | ECS / parse_json | peak RSS MB parse_json / document / ECS |")
    print("|---|---|---|---|---|---|---|---|")
    line("transform alone (stdin → remap → blackhole)",
         {"parse_json": us("stdin_alone_parse_json"), "ecs": us("stdin_alone_ecs"),
          "doc": us("stdin_alone_parse_json", mapped)})
    bench.disk_buffer = False
    try:
        cells = {v: us(v) for v in ("pass", "parse_json", "ecs")}
        line("pipeline, memory buffer", dict(cells, doc=us("parse_json", mapped)))
    finally:
        bench.disk_buffer = True
    cells = {v: (1e6 / rate, hwm) for v, (rate, _, hwm) in disk_row.items()}
    line("pipeline, disk buffer (the sensor's)", dict(cells, doc=us("parse_json", mapped)))
    mapped.unlink()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mix", type=int, default=60000, help="events in the mix runs")
    ap.add_argument("--per-type", type=int, default=15000, help="events per EVE type run")
    ap.add_argument("--types", help="only these EVE types (comma-separated); `none` for the mix only")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure the mix this many times, the three variants back to back each "
                    "round, and also report each column's median over the rounds")
    ap.add_argument("--program", help="a rendered candidate ECS program to measure instead")
    ap.add_argument("--sink-set", action="append", default=[], metavar="PATH=JSON",
                    help="a candidate option of the opensearch sink, for every variant (repeat "
                    "it), e.g. batch.max_bytes=2097152")
    ap.add_argument("--preload", help="a library Vector runs with (LD_PRELOAD), e.g. jemalloc")
    ap.add_argument("--breakdown", action="store_true",
                    help="also measure the mix as the transform alone and without the disk buffer")
    ap.add_argument("--ecs-unmapped", action="store_true",
                    help="the ECS indices map nothing, as the floors' do (the emulator's share)")
    ap.add_argument("--steady", type=int, metavar="RATE",
                    help="only the mix, fed at RATE events/s: a sensor's core share and RSS")
    ap.add_argument("--seconds", type=int, default=60, help="how long --steady feeds (s)")
    ap.add_argument("--long-lines", action="store_true",
                    help="only Vector's peak RSS for one long EVE line (the cap's figures)")
    args = ap.parse_args()
    if args.steady is not None and not (10 <= args.steady <= 20000 and 5 <= args.seconds <= 600):
        sys.exit("--steady must be 10..20000 events/s and --seconds 5..600")
    if not (1000 <= args.mix <= 1_000_000 and 1000 <= args.per_type <= 1_000_000):
        sys.exit("--mix and --per-type must be 1000..1000000")
    if not 1 <= args.rounds <= 15:
        sys.exit("--rounds must be 1..15")
    if not (CORPUS / "pcaps").is_dir():
        skip(f"{CORPUS}/pcaps is absent (the shared corpus)")
    if not shutil.which("suricata"):
        skip("suricata is not installed (.ci/install-deps installs it)")
    vector, osmem_bin, (agent, provision) = locate_vector(), locate_osmem(), locate_ids2()
    program = Path(args.program).read_text() if args.program else None
    if args.preload and not Path(args.preload).is_file():
        sys.exit(f"--preload {args.preload}: no such file")
    sink_set = []
    for item in args.sink_set:
        path, _, value = item.partition("=")
        try:
            sink_set.append((path, json.loads(value)))
        except json.JSONDecodeError as e:
            sys.exit(f"--sink-set {item}: the value after '=' must be JSON ({e})")

    work = Path(tempfile.mkdtemp(prefix="ids2-vector-ecs."))
    osmem = Osmem(osmem_bin)
    try:
        current, toml = render(agent, work)
        lines = corpus_eve(current, work)
        # Vector ships lines of megabytes (tests/tests/shipping.rs shows the corpus's 2.4 MB
        # DNP3 alert indexed whole), but the emulator takes ~14 s to index that one document
        # and answers nothing meanwhile, so the bench, which measures Vector, leaves such lines
        # out and says so.
        too_long = [line for line in lines if len(line.encode()) > LONG_LINE_BYTES]
        lines = [line for line in lines if len(line.encode()) <= LONG_LINE_BYTES]
        if args.long_lines:
            bench = Bench(vector, osmem, toml, work, program, args.preload, sink_set)
            long_lines(bench, lines, too_long, toml["sources"]["eve"]["max_line_bytes"], work)
            return
        if too_long:
            print(f"left out: {len(too_long)} EVE lines over {LONG_LINE_BYTES} bytes "
                  f"({', '.join(str(len(line)) for line in too_long)}), which the emulator "
                  "indexes too slowly to count")
        by_type = collections.defaultdict(list)
        for line in lines:
            by_type[json.loads(line)["event_type"]].append(line)
        version = subprocess.run([vector, "--version"], capture_output=True, text=True).stdout.strip()
        print(f"{version} ({vector}); osmem-server (emulator); {os.cpu_count()} CPUs; "
              f"corpus: {len(lines)} distinct EVE lines: "
              + ", ".join(f"{t} {len(v)}" for t, v in sorted(by_type.items(), key=lambda kv: -len(kv[1]))))
        print(f"program: {args.program or 'rendered from agent/config.example.yaml'}")
        if args.preload:
            print(f"Vector runs with LD_PRELOAD={args.preload}")
        if sink_set:
            print("sink options changed: " + ", ".join(f"{p} = {json.dumps(v)}" for p, v in sink_set))
        bench = Bench(vector, osmem, toml, work, program, args.preload, sink_set)
        install_templates(provision, osmem, bench.prefix, work)
        if args.ecs_unmapped:
            osmem.unmapped(bench.prefix + "-*")
            print(f"the ECS indices ({bench.prefix}-*) map nothing (--ecs-unmapped)")

        empty = work / "empty.json"
        start = {v: bench.run(v, empty, 0) for v in ("pass", "parse_json", "ecs")}
        print("\n0-event runs (start-up CPU-s, peak RSS MB):",
              ", ".join(f"{v} {c:.2f} s {m:.0f} MB" for v, (_, c, m) in start.items()))
        print(f"ECS program compile: {start['ecs'][1] - start['pass'][1]:.2f} CPU-s "
              "(0-event ECS run minus 0-event pass-through run)")

        def measure(label, path, n):
            row = {}
            for v in ("pass", "parse_json", "ecs"):
                started, cpu, hwm = bench.run(v, path, n)
                row[v] = (n / max(cpu - started, 1e-9), n / cpu, hwm)
            ratio = row["ecs"][0] / row["parse_json"][0]
            print(f"| {label} | {n} | {row['pass'][0]:.0f} | {row['parse_json'][0]:.0f} | "
                  f"{row['ecs'][0]:.0f} | {1e6 / row['ecs'][0]:.0f} | {ratio:.2f} | "
                  f"{row['ecs'][1]:.0f} | {row['parse_json'][2]:.0f} | {row['ecs'][2]:.0f} |",
                  flush=True)
            return row

        if args.steady:
            steady(bench, lines, work, args.steady, args.seconds)
            return

        print("\nevents per CPU-second of Vector, net of its start-up (ECS incl. = with start-up)\n")
        print("| input | events | pass-through | parse_json | ECS remap | ECS µs/event "
              "| ECS / parse_json | ECS incl. start | parse_json peak RSS MB | ECS peak RSS MB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        mix = work / "mix.json"
        write_input(mix, lines, args.mix)
        # The floors move between runs as much as the program does (±30 % on this machine), so
        # each round runs the three variants back to back and the ratio is taken within it.
        mix_rows = [measure("mix" if args.rounds == 1 else f"mix, round {i + 1}", mix, args.mix)
                    for i in range(args.rounds)]
        mix_rows.sort(key=lambda r: r["ecs"][0] / r["parse_json"][0])
        # The round at (or, for an even count, just above) the median ratio, for --breakdown.
        mix_row = mix_rows[len(mix_rows) // 2]
        if args.rounds > 1:
            # Each column's own median (of an even count, the mean of the middle two): the
            # ratio's is not that of any one round, nor the ratio of the rates' medians.
            def med(variant, i):
                return statistics.median(r[variant][i] for r in mix_rows)
            ratios = [r["ecs"][0] / r["parse_json"][0] for r in mix_rows]
            print(f"| mix, median of {args.rounds} rounds | {args.mix} | "
                  f"{med('pass', 0):.0f} | {med('parse_json', 0):.0f} | "
                  f"{med('ecs', 0):.0f} | {statistics.median(1e6 / r['ecs'][0] for r in mix_rows):.0f} | "
                  f"{statistics.median(ratios):.2f} (range {ratios[0]:.2f}–{ratios[-1]:.2f}) | "
                  f"{med('ecs', 1):.0f} | {med('parse_json', 2):.0f} | "
                  f"{med('ecs', 2):.0f} |", flush=True)
        wanted = None if not args.types else [t for t in args.types.split(",") if t != "none"]
        for etype, tlines in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
            if wanted is not None and etype not in wanted:
                continue
            path = work / f"{etype}.json"
            write_input(path, tlines, args.per_type)
            measure(etype, path, args.per_type)
            path.unlink()

        rates = {}
        for v in ("stdin_pass", "stdin_json_codec"):
            started, cpu, _ = bench.run(v, mix, args.mix)
            rates[v] = args.mix / max(cpu - started, 1e-9)
        print(f"\nstdin source, mix: pass-through {rates['stdin_pass']:.0f}, json codec "
              f"{rates['stdin_json_codec']:.0f} events per CPU-second (net of start-up)")
        if args.breakdown:
            breakdown(bench, agent, mix, args.mix, mix_row)
    finally:
        osmem.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
