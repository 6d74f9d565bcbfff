"""The original tool's algorithm (a Python Lambda, described in
/work/shared/seed: its source is not in this repository), rebuilt for the
cold-start comparison of scripts/measure-cold-once.sh: read the token and
resource class from Secrets Manager (text, or base64 in binary), ask the
runner API for unclaimed and running tasks (the later versions' sum), and
call UpdateAutoScalingGroup(MinSize=0, MaxSize=max, DesiredCapacity=min(tasks,
max)) every time, as it did. Imports and clients as a Lambda handler has
them: boto3 and urllib3 (botocore's HTTP client, so no other package).

Run as a script, it calls the handler once, as one cold invocation does.
CIRCLECI_RUNNER_API_URL and AWS_ENDPOINT_URL point it at local fakes (the
original used https://runner.circleci.com and AWS).
"""

import base64
import json
import os

import boto3
import urllib3


def get_secret(name, region):
    client = boto3.session.Session().client("secretsmanager", region_name=region)
    value = client.get_secret_value(SecretId=name)
    if "SecretString" in value:
        return json.loads(value["SecretString"])
    return json.loads(base64.b64decode(value["SecretBinary"]))


def count(http, base, path, field, secrets):
    response = http.request(
        "GET",
        f"{base}{path}",
        fields={"resource-class": secrets["resource_class"]},
        headers={"Circle-Token": secrets["circle_token"]},
    )
    return int(json.loads(response.data)[field])


def lambda_handler(event, context):
    secrets = get_secret(os.environ["SECRET_NAME"], os.environ["SECRET_REGION"])
    base = os.environ.get("CIRCLECI_RUNNER_API_URL", "https://runner.circleci.com").rstrip("/")
    http = urllib3.PoolManager()
    tasks = count(http, base, "/api/v3/runner/tasks", "unclaimed_task_count", secrets) + count(
        http, base, "/api/v3/runner/tasks/running", "running_runner_tasks", secrets
    )
    most = int(os.environ["AUTO_SCALING_MAX"])
    client = boto3.client("autoscaling", region_name=os.environ["AUTO_SCALING_GROUP_REGION"])
    client.update_auto_scaling_group(
        AutoScalingGroupName=os.environ["AUTO_SCALING_GROUP_NAME"],
        MinSize=0,
        MaxSize=most,
        DesiredCapacity=min(tasks, most),
    )
    return {"statusCode": 200, "body": json.dumps({"desired": min(tasks, most)})}


if __name__ == "__main__":
    print(json.dumps(lambda_handler({}, None)))
