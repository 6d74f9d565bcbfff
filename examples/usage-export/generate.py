#!/usr/bin/env python3
"""Writes a sample CircleCI usage export (what the Usage API's download URLs
serve) for one Tuesday of a made-up organization: part-1.csv and
part-2.csv.gz, the two files an export may come as.

Each file is written as exports differ in the wild:
- part-1.csv: every documented column, in the documented order, names in
  upper case, times as `2026-11-24 09:00:03.123` (UTC), nulls as `\\N`;
- part-2.csv.gz: gzip, names in lower case, columns in another order, some
  left out and one extra, RFC 3339 times, nulls as empty cells.

Besides jobs of the self-hosted runner classes acme/linux and
acme/linux-large it holds what an import must skip or keep with care: jobs
on CircleCI's own classes, jobs cancelled before they started, a job that
never ran, one still running at the export, one with no queued time, two
malformed rows, a job with parallelism 3, and one job run in both files (as
overlapping exports would have it).

Deterministic (fixed seed, only Random.random(), gzip without a timestamp):
running it again writes the same bytes.

    python3 examples/usage-export/generate.py

With `--big N FILE` it writes instead one export of N rows (every column,
as part-1.csv; about 3,300 a day, so 100,000 are a month), to measure the
import:

    python3 examples/usage-export/generate.py --big 100000 /tmp/export.csv
"""

import csv
import datetime
import gzip
import io
import math
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DAY = datetime.datetime(2026, 11, 24, tzinfo=datetime.timezone.utc)

# The Usage API's report fields, in its documentation's order.
COLUMNS = [
    "organization_id", "organization_name", "organization_created_date",
    "project_id", "project_name", "project_created_date", "last_build_finished_at",
    "vcs_name", "vcs_url", "vcs_branch",
    "pipeline_id", "pipeline_created_at", "pipeline_number", "is_unregistered_user",
    "pipeline_trigger_source", "pipeline_trigger_user_id",
    "workflow_id", "workflow_name", "workflow_first_job_queued_at",
    "workflow_first_job_started_at", "workflow_stopped_at", "is_workflow_successful",
    "job_name", "job_run_number", "job_id", "job_run_date",
    "job_run_queued_at", "job_run_started_at", "job_run_stopped_at", "job_build_status",
    "resource_class", "operating_system", "executor", "parallelism", "job_run_seconds",
    "median_cpu_utilization_pct", "max_cpu_utilization_pct",
    "median_ram_utilization_pct", "max_ram_utilization_pct",
    "compute_credits", "dlc_credits", "user_credits", "storage_credits",
    "network_credits", "lease_credits", "lease_overage_credits", "ipranges_credits",
    "total_credits",
]
# The second file's columns: another order, fewer, and one the API may add.
COLUMNS_2 = [
    "job_id", "job_name", "resource_class", "executor", "job_build_status",
    "job_run_started_at", "job_run_queued_at", "job_run_stopped_at", "parallelism",
    "project_name", "workflow_name", "vcs_branch", "total_credits", "job_run_seconds",
    "pipeline_trigger_source", "region",
]

PROJECTS = ["acme/api", "acme/web", "acme/mobile"]
PROJECT_IDS = {
    "acme/api": "c1a8b2d4-0a1f-4e21-9d3c-5f7a1b2c3d4e",
    "acme/web": "7f3e9a2b-5c4d-4b1a-8e6f-0a9b8c7d6e5f",
    "acme/mobile": "2b4c6d8e-1f3a-4c5e-9b7d-3e5f7a9b1c2d",
}
RUNNER = [("acme/linux", 6), ("acme/linux-large", 1)]
CLOUD = [("medium", 3), ("large", 1), ("arm.medium", 1), ("macos.m2pro.medium", 1)]


def uuid(rng):
    hexes = "".join("0123456789abcdef"[int(rng.random() * 16)] for _ in range(32))
    return f"{hexes[:8]}-{hexes[8:12]}-4{hexes[13:16]}-a{hexes[17:20]}-{hexes[20:]}"


def pick(rng, weighted):
    total = sum(w for _, w in weighted)
    x = rng.random() * total
    for value, w in weighted:
        x -= w
        if x < 0:
            return value
    return weighted[-1][0]


def lognormal(rng, median, sigma):
    u1, u2 = 1.0 - rng.random(), rng.random()
    z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)
    return median * math.exp(sigma * z)


def rows(rng, day=DAY, gap=540):
    """Job runs of pipelines arriving 07:00-19:00 UTC, `gap` seconds apart
    on average, in queued order."""
    out = []
    at = day + datetime.timedelta(hours=7)
    end = day + datetime.timedelta(hours=19)
    pipeline = 4100
    while True:
        at += datetime.timedelta(seconds=-math.log(1.0 - rng.random()) * gap)
        if at >= end:
            return out
        pipeline += 1
        project = PROJECTS[int(rng.random() * len(PROJECTS))]
        workflow = pick(rng, [("build, test and deploy", 2), ("nightly", 0.2), ("lint", 1)])
        cloud = rng.random() < 0.3
        for n in range(1 + int(rng.random() * 4)):
            klass = pick(rng, CLOUD if cloud else RUNNER)
            queued = at + datetime.timedelta(milliseconds=int(rng.random() * 3000))
            # A runner job waits for a boot unless an idle runner is there.
            if cloud:
                wait = 2 + rng.random() * 20
            elif rng.random() < 0.25:
                wait = 3 + rng.random() * 15
            else:
                wait = lognormal(rng, 110, 0.25)
            run = min(40 * 60, max(20, lognormal(rng, 300, 0.6)))
            started = queued + datetime.timedelta(seconds=wait)
            stopped = started + datetime.timedelta(seconds=run)
            status = "success" if rng.random() < 0.88 else "failed"
            out.append({
                "pipeline": pipeline, "project": project, "workflow": workflow,
                "job": ["build", "test", "lint", "deploy"][n % 4], "class": klass,
                "queued": queued, "started": started, "stopped": stopped,
                "status": status, "parallelism": 1, "id": uuid(rng),
                "pipeline_id": uuid(rng), "workflow_id": uuid(rng),
                "executor": "machine" if "/" in klass or klass.startswith("arm") else
                            ("macos" if klass.startswith("macos") else "docker"),
            })


def special(rows, rng):
    """The rows an import must skip, or keep with care."""
    runner = [r for r in rows if r["class"] == "acme/linux"]
    runner[3]["status"], runner[3]["started"], runner[3]["stopped"] = "canceled", None, None
    runner[9]["status"], runner[9]["started"], runner[9]["stopped"] = "canceled", None, None
    runner[12]["status"], runner[12]["started"], runner[12]["stopped"] = "not_run", None, None
    runner[-1]["status"], runner[-1]["stopped"] = "running", None
    runner[20]["queued"] = None
    runner[6]["parallelism"] = 3
    # Cancelled after it started: it held a runner, and counts.
    runner[15]["status"] = "canceled"
    # A clock that went backwards, and a time that is no time.
    runner[25]["stopped"] = runner[25]["started"] - datetime.timedelta(seconds=30)
    runner[30]["bad_stop"] = "2026-11-24 25:61:00"


def fmt1(t):
    return "\\N" if t is None else t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def fmt2(t):
    return "" if t is None else t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def record(r, fmt):
    seconds = "" if r["stopped"] is None or r["started"] is None else \
        str(int((r["stopped"] - r["started"]).total_seconds()))
    credits = "0.00" if "/" in r["class"] else f"{float(seconds or 0) / 60 * 10:.2f}"
    stop = r.get("bad_stop") or fmt(r["stopped"])
    return {
        "organization_id": "9d6e1f7a-0c55-4b39-a4f2-6a9f3b2c8e11",
        "organization_name": "acme",
        "organization_created_date": "2019-03-02",
        "project_id": PROJECT_IDS[r["project"]],
        "project_name": r["project"].split("/")[1],
        "project_created_date": "2020-06-15",
        "last_build_finished_at": fmt(DAY + datetime.timedelta(hours=23, minutes=58)),
        "vcs_name": "github",
        "vcs_url": f"https://github.com/{r['project']}",
        "vcs_branch": "main" if r["pipeline"] % 3 else "feature/retry, backoff",
        "pipeline_id": r["pipeline_id"],
        "pipeline_created_at": fmt(r["queued"] or r["started"]),
        "pipeline_number": str(r["pipeline"]),
        "is_unregistered_user": "false",
        "pipeline_trigger_source": "webhook",
        "pipeline_trigger_user_id": "5e0c7a9b-1d2e-4f3a-8b6c-7d8e9f0a1b2c",
        "workflow_id": r["workflow_id"],
        "workflow_name": r["workflow"],
        "workflow_first_job_queued_at": fmt(r["queued"]),
        "workflow_first_job_started_at": fmt(r["started"]),
        "workflow_stopped_at": fmt(r["stopped"]),
        "is_workflow_successful": "true" if r["status"] == "success" else "false",
        "job_name": r["job"],
        "job_run_number": str(20000 + r["pipeline"] * 4),
        "job_id": r["id"],
        "job_run_date": (r["queued"] or r["started"]).strftime("%Y-%m-%d"),
        "job_run_queued_at": fmt(r["queued"]),
        "job_run_started_at": fmt(r["started"]),
        "job_run_stopped_at": stop,
        "job_build_status": r["status"],
        "resource_class": r["class"],
        "operating_system": "macos" if r["class"].startswith("macos") else "linux",
        "executor": r["executor"],
        "parallelism": str(r["parallelism"]),
        "job_run_seconds": seconds,
        "median_cpu_utilization_pct": "" if "/" in r["class"] else "41.00",
        "max_cpu_utilization_pct": "" if "/" in r["class"] else "97.00",
        "median_ram_utilization_pct": "" if "/" in r["class"] else "22.00",
        "max_ram_utilization_pct": "" if "/" in r["class"] else "58.00",
        "compute_credits": credits,
        "dlc_credits": "0.00",
        "user_credits": "0.00",
        "storage_credits": "0.00",
        "network_credits": "0.00",
        "lease_credits": "0.00",
        "lease_overage_credits": "0.00",
        "ipranges_credits": "0.00",
        "total_credits": credits,
        "region": "us-east-1",
    }


def write(rows, columns, fmt, upper):
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([c.upper() if upper else c for c in columns])
    for r in rows:
        full = record(r, fmt)
        writer.writerow([full[c] for c in columns])
    return text.getvalue()


def big(count, path):
    """`count` rows of consecutive days, written as part-1.csv is."""
    rng = random.Random(100000)
    with open(path, "w") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.upper() for c in COLUMNS])
        day, written = DAY, 0
        while written < count:
            # About 3,300 rows a day: 100,000 in a month, as one export.
            for r in rows(rng, day, gap=33)[: count - written]:
                full = record(r, fmt1)
                writer.writerow([full[c] for c in COLUMNS])
                written += 1
            day += datetime.timedelta(days=1)
    print(f"{path}: {count} rows")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--big":
        return big(int(sys.argv[2]), sys.argv[3])
    rng = random.Random(20261124)
    all_rows = rows(rng)
    special(all_rows, rng)
    noon = DAY + datetime.timedelta(hours=13)
    first = [r for r in all_rows if (r["queued"] or r["started"]) < noon]
    second = [r for r in all_rows if (r["queued"] or r["started"]) >= noon]
    # Overlapping exports: the last morning job again in the afternoon file.
    second.insert(0, [r for r in first if r["class"] == "acme/linux" and r["stopped"]][-1])
    with open(os.path.join(HERE, "part-1.csv"), "w") as out:
        out.write(write(first, COLUMNS, fmt1, upper=True))
    data = write(second, COLUMNS_2, fmt2, upper=False).encode()
    with open(os.path.join(HERE, "part-2.csv.gz"), "wb") as out:
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
            gz.write(data)
    print(f"part-1.csv: {len(first)} rows; part-2.csv.gz: {len(second)} rows")


if __name__ == "__main__":
    main()
