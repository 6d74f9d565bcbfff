#!/bin/bash
# Assemble the user data and copy it into the CloudFormation templates:
#  1. userdata/shared.sh, the part every CI's script has in common, replaces
#     the block between its two marker lines ("# >>> userdata/shared.sh" and
#     "# <<< userdata/shared.sh") in userdata/install-runner-ubuntu.sh
#     (CircleCI) and userdata/install-buildkite-agent-ubuntu.sh (Buildkite);
#  2. each script, verbatim, goes into every user data block of the templates
#     marked with its name ("userdata/NAME, verbatim"): the main stack's launch
#     template (examples/cloudformation/runner-scaler.yaml, both) and the image
#     stack's recipe (examples/cloudformation/runner-image.yaml, CircleCI's),
#     whose name also carries the script's hash so that a new script makes a
#     new recipe.
# Run it after editing any of the three; userdata/tests/run.sh and
# host/tests/it/cloudformation.rs fail until they agree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python3 - "$root" <<'PY'
import hashlib, os, re, sys
root = sys.argv[1]
userdata = os.path.join(root, "userdata")
scripts = ["install-runner-ubuntu.sh", "install-buildkite-agent-ubuntu.sh"]
templates = ["runner-scaler.yaml", "runner-image.yaml"]

shared = open(os.path.join(userdata, "shared.sh")).read()
first, last = shared.split("\n")[0], shared.rstrip("\n").split("\n")[-1]
assert first.startswith("# >>> userdata/shared.sh") and last == "# <<< userdata/shared.sh", \
    "userdata/shared.sh must begin and end with its marker lines"
for name in scripts:
    path = os.path.join(userdata, name)
    text = open(path).read()
    lines = text.split("\n")
    starts = [i for i, l in enumerate(lines) if l.startswith("# >>> userdata/shared.sh")]
    ends = [i for i, l in enumerate(lines) if l == last]
    assert len(starts) == 1 and len(ends) == 1 and starts[0] < ends[0], \
        f"userdata/{name}: needs exactly one block from '# >>> userdata/shared.sh' to '{last}'"
    lines[starts[0]:ends[0] + 1] = shared.rstrip("\n").split("\n")
    new = "\n".join(lines)
    if new != text:
        open(path, "w").write(new)
        print(f"userdata/shared.sh copied into userdata/{name}")

for template in templates:
    path = os.path.join(root, "examples/cloudformation", template)
    lines = open(path).read().split("\n")
    for name in scripts:
        script = open(os.path.join(userdata, name)).read()
        markers = [i for i, l in enumerate(lines) if f"userdata/{name}, verbatim" in l]
        for marker in markers:
            block = marker + 1
            assert lines[block].strip() == "- |", f"{template}: the line after the marker must be '- |'"
            indent = " " * (len(lines[block]) - len(lines[block].lstrip()) + 2)
            end = block + 1
            while end < len(lines) and (lines[end] == "" or lines[end].startswith(indent)):
                end += 1
            # Keep the blank line that separates the block from the next resource.
            while end > block + 1 and lines[end - 1] == "":
                end -= 1
            lines[block + 1:end] = [indent + l if l else "" for l in script.rstrip("\n").split("\n")]
            print(f"userdata/{name} copied into examples/cloudformation/{template}")
    text = "\n".join(lines)
    if template == "runner-image.yaml":
        script = open(os.path.join(userdata, scripts[0])).read()
        digest = hashlib.sha256(script.encode()).hexdigest()[:8]
        text, n = re.subn(r"(\$\{AWS::StackName\}-runner-)[0-9a-f]{8}\b", r"\g<1>" + digest, text)
        assert n == 1, f"{template}: no recipe name ending in 8 hex digits"
    open(path, "w").write(text)
PY
