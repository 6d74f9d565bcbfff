"""Cold `runner-scaler once` against the original tool's algorithm, on the
same local fixtures; driven by scripts/measure-cold-once.sh (which says how
to run it).

Fixtures: moto's server as AWS (the original's Secrets Manager secret and
Auto Scaling group, max 10, protected) and a fake of CircleCI's runner API
(four waiting jobs, one running) served from this process. Each run is a
fresh process with an empty compile cache, after one unmeasured run of its
variant; all the runs of a variant, then the next (--order blocks), or one
of each in turn (--order interleaved: load drift falls on all alike, but
each run starts with the CPU caches the previous variant left). Its CPU
time (user + system) and peak RSS come from wait4's rusage of that process
alone, forked by spawn.c (see there why not from here). The fixtures' own
CPU is not counted.

Variants:
  original            the original tool's algorithm in Python (original_lambda.py)
  once                runner-scaler once, built-in queue rule, the original's variables
  once --precompiled  the same with a WebAssembly policy (RUNNER_SCALER_POLICY)
                      loaded from `policy precompile` output
  once, WASM compiled the same policy compiled at start (for reference)

`--fixtures` only starts the fixtures, prints the variables that point a run
at them, and waits (for strace or perf by hand).
"""

import argparse
import http.server
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "eu-west-1"
SECRET = "cci-runner-lambda-secrets"
GROUP = "cci-runner-auto-scaling-group"
CLASS = "acme/seed"
TOKEN = "CCIPAT_cold_once_measurement"
WAITING, RUNNING = 4, 1
# The targets: CPU of a cold `once` at most this fraction of the
# original algorithm's.
TARGETS = {"once": 50, "once --precompiled": 40}
# What stops the fixtures in --fixtures mode.
STOP = {signal.SIGINT, signal.SIGTERM}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeCircleCi(http.server.BaseHTTPRequestHandler):
    """The runner API's two counts for CLASS, with the token checked."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        fields = {
            "/api/v3/runner/tasks": ("unclaimed_task_count", WAITING),
            "/api/v3/runner/tasks/running": ("running_runner_tasks", RUNNING),
        }
        if self.headers.get("Circle-Token") != TOKEN:
            return self.answer(401, {"message": "Unauthorized"})
        if url.path not in fields or query.get("resource-class") != [CLASS]:
            return self.answer(404, {"message": "Not found"})
        field, value = fields[url.path]
        self.answer(200, {field: value})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def start_moto():
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="cold-once-moto-", suffix=".log", delete=False)
    moto = subprocess.Popen(
        [shutil.which("moto_server") or "moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP),
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return moto, endpoint
        except OSError:
            if moto.poll() is not None:
                sys.exit(f"moto_server exited:\n{open(log.name).read()}")
            time.sleep(0.1)
    sys.exit("moto_server did not start within a minute")


def set_up_aws(endpoint):
    import boto3

    kw = dict(
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    secrets = boto3.client("secretsmanager", **kw)
    secrets.create_secret(
        Name=SECRET, SecretString=json.dumps({"circle_token": TOKEN, "resource_class": CLASS})
    )
    autoscaling = boto3.client("autoscaling", **kw)
    autoscaling.create_launch_configuration(
        LaunchConfigurationName="cold-once", ImageId="ami-12c6146b", InstanceType="t3.micro"
    )
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        LaunchConfigurationName="cold-once",
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=0,
        NewInstancesProtectedFromScaleIn=True,
        AvailabilityZones=[f"{REGION}a"],
    )


def base_env(endpoint, circleci, home):
    """The original tool's five variables, pointed at the fixtures."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": home,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": endpoint,
        "CIRCLECI_RUNNER_API_URL": circleci,
        "SECRET_NAME": SECRET,
        "SECRET_REGION": REGION,
        "AUTO_SCALING_MAX": "8",
        "AUTO_SCALING_GROUP_NAME": GROUP,
        "AUTO_SCALING_GROUP_REGION": REGION,
    }


def run(spawn, argv, env, scratch):
    """One cold process, forked by `spawn` (spawn.c): (CPU ms, peak RSS MiB,
    wall ms, its stderr); exits on failure. Output goes to files."""
    with tempfile.TemporaryFile(dir=scratch) as out, tempfile.TemporaryFile(dir=scratch) as err:
        result = os.path.join(scratch, "usage")
        started = time.monotonic()
        subprocess.run([spawn, result, *argv], env=env, stdin=subprocess.DEVNULL,
                       stdout=out, stderr=err, check=True)
        wall = (time.monotonic() - started) * 1e3
        out.seek(0)
        err.seek(0)
        printed, log = out.read().decode(), err.read().decode()
    with open(result) as f:
        user_us, system_us, maxrss_kib, status = (int(v) for v in f.read().split())
    if status != 0:
        sys.exit(f"{' '.join(argv)} failed ({status}):\n{printed}{log}")
    return (user_us + system_us) / 1e3, maxrss_kib / 1024, wall, log


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--policy", required=True, help="the .wasm policy of the WASM variants")
    parser.add_argument("--precompiled", required=True, help="`policy precompile` output for it")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--fixtures", action="store_true")
    parser.add_argument("--order", choices=["blocks", "interleaved"], default="blocks")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--variants", default="original,once,precompiled,compiled",
                        help="which to run, by id: original, once, precompiled, compiled")
    args = parser.parse_args()
    if args.fixtures:
        # Blocked before any thread starts, so that sigwait gets them and
        # the fixtures are stopped (moto unblocks them for itself).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP)

    circleci_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeCircleCi)
    threading.Thread(target=circleci_server.serve_forever, daemon=True).start()
    circleci = f"http://127.0.0.1:{circleci_server.server_address[1]}"
    moto, endpoint = start_moto()
    scratch = tempfile.mkdtemp(prefix="cold-once-")
    try:
        set_up_aws(endpoint)
        env = base_env(endpoint, circleci, scratch)
        if args.fixtures:
            for key, value in env.items():
                if key not in ("PATH", "HOME"):
                    print(f"export {key}={value}")
            print(f"# WASM variant: export RUNNER_SCALER_POLICY={args.policy}; "
                  f"once --precompiled {args.precompiled}")
            print("# fixtures up; Ctrl-C or SIGTERM stops them", flush=True)
            signal.sigwait(STOP)
            return
        spawn = os.path.join(scratch, "spawn")
        subprocess.run(["cc", "-O2", "-o", spawn, os.path.join(HERE, "spawn.c")], check=True)
        binary = os.path.abspath(args.binary)
        # The fixtures are plain http: runner-scaler reads no CA certificate
        # for them (host/src/aws.rs, ByScheme), nor does botocore.
        wasm = dict(RUNNER_SCALER_POLICY=os.path.abspath(args.policy))
        variants = {
            "original": ("original", [args.python, os.path.join(HERE, "original_lambda.py")], {}),
            "once": ("once", [binary, "once"], {}),
            "precompiled": ("once --precompiled", [binary, "once", "--precompiled",
                                                   os.path.abspath(args.precompiled)], wasm),
            "compiled": ("once, WASM compiled", [binary, "once"], wasm),
        }
        chosen = args.variants.split(",")
        if "original" not in chosen or any(v not in variants for v in chosen):
            sys.exit(f"--variants: original and any of {', '.join(variants)}")
        variants = [variants[v] for v in chosen]
        # One unmeasured run each first: the fixtures' first answers (moto
        # loads its backends on first use) and the page cache.
        if args.order == "interleaved":
            # One run of each, in turn: drift in the machine's load falls on
            # every variant alike, but each run starts with the CPU caches
            # the previous variant (often the Python one) left.
            schedule = [(i, v) for i in range(args.runs + 1) for v in variants]
        else:
            # All the runs of one variant, then the next (as hyperfine does).
            schedule = [(i, v) for v in variants for i in range(args.runs + 1)]
        figures = {name: [] for name, _, _ in variants}
        for i, (name, argv, extra) in schedule:
            cache = tempfile.mkdtemp(dir=scratch)
            # Info, as by default, and the line that says where a policy's
            # code came from.
            e = dict(env, RUNNER_SCALER_CACHE_DIR=cache,
                     RUST_LOG="info,runner_scaler::policy::compile=debug", **extra)
            cpu, rss, wall, log = run(spawn, argv, e, scratch)
            expected = {"once --precompiled": "loaded precompiled policy",
                        "once, WASM compiled": "compile: compiled policy"}.get(name)
            if expected and expected not in log:
                sys.exit(f"{name}: no {expected!r} in its log:\n{log}")
            if i > 0:
                figures[name].append((cpu, rss, wall))
            shutil.rmtree(cache)
        print(f"{args.runs} cold runs each, {args.order} (medians); "
              f"policy {os.path.basename(args.policy)}; CA certificates: "
              "none (plain http fixtures)")
        print(f"{'variant':<22} {'CPU ms':>8} {'peak RSS MiB':>13} {'wall ms':>8}   CPU vs original")
        original_cpu = statistics.median(c for c, _, _ in figures["original"])
        for name, _, _ in variants:
            cpu = statistics.median(c for c, _, _ in figures[name])
            rss = statistics.median(r for _, r, _ in figures[name])
            wall = statistics.median(w for _, _, w in figures[name])
            line = f"{name:<22} {cpu:>8.1f} {rss:>13.1f} {wall:>8.1f}"
            if name != "original":
                ratio = original_cpu / cpu
                line += f"   1/{ratio:.0f}"
                if name in TARGETS:
                    goal = TARGETS[name]
                    verdict = "met" if ratio >= goal else "NOT met"
                    line += f" (target <= 1/{goal}: {verdict})"
            print(line)
    finally:
        moto.terminate()
        moto.wait()
        circleci_server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
