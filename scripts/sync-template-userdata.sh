#!/bin/bash
# Copy userdata/install-runner-ubuntu.sh, verbatim, into the user data blocks
# of the CloudFormation templates: the main stack's launch template
# (examples/cloudformation/runner-scaler.yaml) and the image stack's recipe
# (examples/cloudformation/runner-image.yaml), whose name also carries the
# script's hash so that a new script makes a new recipe. Run it after editing
# the script; host/tests/it/cloudformation.rs fails until they agree.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python3 - "$root/userdata/install-runner-ubuntu.sh" \
  "$root/examples/cloudformation/runner-scaler.yaml" "$root/examples/cloudformation/runner-image.yaml" <<'PY'
import hashlib, os, re, sys
script_path, templates = sys.argv[1], sys.argv[2:]
script = open(script_path).read()
digest = hashlib.sha256(script.encode()).hexdigest()[:8]
for template_path in templates:
    lines = open(template_path).read().split("\n")
    marker = next(i for i, l in enumerate(lines) if "userdata/install-runner-ubuntu.sh, verbatim" in l)
    block = marker + 1
    assert lines[block].strip() == "- |", f"{template_path}: the line after the marker must be '- |'"
    indent = " " * (len(lines[block]) - len(lines[block].lstrip()) + 2)
    end = block + 1
    while end < len(lines) and (lines[end] == "" or lines[end].startswith(indent)):
        end += 1
    # Keep the blank line that separates the block from the next resource.
    while end > block + 1 and lines[end - 1] == "":
        end -= 1
    body = [indent + l if l else "" for l in script.rstrip("\n").split("\n")]
    lines[block + 1:end] = body
    text = "\n".join(lines)
    if template_path.endswith("runner-image.yaml"):
        text, n = re.subn(r"(\$\{AWS::StackName\}-runner-)[0-9a-f]{8}\b", r"\g<1>" + digest, text)
        assert n == 1, f"{template_path}: no recipe name ending in 8 hex digits"
    open(template_path, "w").write(text)
    print("userdata copied into", os.path.relpath(template_path, os.path.dirname(os.path.dirname(script_path))))
PY
