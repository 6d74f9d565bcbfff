#!/bin/bash
# Copy userdata/install-runner-ubuntu.sh into the CloudFormation template's
# UserData block (examples/cloudformation/runner-scaler.yaml), verbatim.
# Run it after editing the script; host/tests/it/cloudformation.rs fails until
# the two agree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python3 - "$root/examples/cloudformation/runner-scaler.yaml" "$root/userdata/install-runner-ubuntu.sh" <<'PY'
import sys
template_path, script_path = sys.argv[1], sys.argv[2]
lines = open(template_path).read().split("\n")
script = open(script_path).read()
marker = next(i for i, l in enumerate(lines) if "userdata/install-runner-ubuntu.sh, verbatim" in l)
block = marker + 1
assert lines[block].strip() == "- |", "the line after the marker must be '- |'"
indent = " " * (len(lines[block]) - len(lines[block].lstrip()) + 2)
end = block + 1
while end < len(lines) and (lines[end] == "" or lines[end].startswith(indent)):
    end += 1
# Keep the blank line that separates the block from the next resource.
while end > block + 1 and lines[end - 1] == "":
    end -= 1
body = [indent + l if l else "" for l in script.rstrip("\n").split("\n")]
lines[block + 1:end] = body
open(template_path, "w").write("\n".join(lines))
PY
echo "userdata copied into examples/cloudformation/runner-scaler.yaml"
