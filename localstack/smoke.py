"""Smoke test for the host-process LocalStack (no Docker).

Run with the venv's python (it has boto3):

    localstack/.state/venv/bin/python localstack/smoke.py              # AWS checks only
    localstack/.state/venv/bin/python localstack/smoke.py --lifecycle  # full cycle

The AWS checks run against $AWS_ENDPOINT_URL (default http://127.0.0.1:4566)
and cover what the project relies on: DynamoDB (stream NEW_IMAGE, GSI,
conditional put, TransactWriteItems, reading the stream back via
dynamodbstreams) and SQS (FIFO queue with a FIFO DLQ, redrive after
maxReceiveCount=2, SendMessageBatch, path-style queue URLs).

--lifecycle first stops what start.sh may have started, then: start.sh, the AWS
checks, stop.sh, checks that no process of ours remains and the port is free,
times a second install.sh, runs start.sh twice (the second must reuse) and
stop.sh again.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
STATE = os.environ.get("LOCALSTACK_STATE_DIR", os.path.join(HERE, ".state"))
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566").rstrip("/")
REGION = os.environ.get("AWS_REGION", "us-east-1")


def log(msg):
    print(f"[smoke] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def client(service):
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        config=Config(retries={"max_attempts": 2}),
    )


def wait_for(what, fn, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def dynamodb_checks(run_id):
    ddb = client("dynamodb")
    streams = client("dynamodbstreams")
    table = f"smoke-{run_id}"
    t0 = time.monotonic()
    desc = ddb.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi_pk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_gsi",
                "KeySchema": [{"AttributeName": "gsi_pk", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]
    stream_arn = desc["LatestStreamArn"]
    ddb.get_waiter("table_exists").wait(
        TableName=table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150}
    )
    # Writes made before the stream is ENABLED are not streamed.
    wait_for(
        "StreamStatus ENABLED",
        lambda: streams.describe_stream(StreamArn=stream_arn)["StreamDescription"][
            "StreamStatus"
        ]
        == "ENABLED",
    )
    log(f"dynamodb: table with stream + GSI ready in {time.monotonic() - t0:.2f}s")

    item = {"pk": {"S": "a"}, "sk": {"S": "1"}, "gsi_pk": {"S": "g"}, "v": {"N": "1"}}
    ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    try:
        ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
        raise AssertionError("second conditional put should have failed")
    except ddb.exceptions.ConditionalCheckFailedException:
        pass
    ddb.transact_write_items(
        TransactItems=[
            {
                "Put": {
                    "TableName": table,
                    "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}, "gsi_pk": {"S": "g"}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": table,
                    "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                    "UpdateExpression": "SET v = v + :one",
                    "ConditionExpression": "v = :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )
    # A failing transaction must change nothing.
    try:
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "c"}, "sk": {"S": "1"}}}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                        "ConditionExpression": "v = :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
            ]
        )
        raise AssertionError("transaction with a false condition should have failed")
    except ddb.exceptions.TransactionCanceledException:
        pass
    check("Item" not in ddb.get_item(TableName=table, Key={"pk": {"S": "c"}, "sk": {"S": "1"}}),
          "cancelled transaction wrote an item")
    got = ddb.get_item(TableName=table, Key={"pk": {"S": "a"}, "sk": {"S": "1"}}, ConsistentRead=True)
    check(got["Item"]["v"]["N"] == "2", f"unexpected item {got}")
    q = ddb.query(
        TableName=table,
        IndexName="by_gsi",
        KeyConditionExpression="gsi_pk = :g",
        ExpressionAttributeValues={":g": {"S": "g"}},
    )
    check(q["Count"] == 2, f"GSI query returned {q['Count']} items")
    log("dynamodb: conditional put, TransactWriteItems, GSI query ok")

    # Read the stream back: INSERT a, INSERT b, MODIFY a (v=2).
    t0 = time.monotonic()
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    check(shards, "stream has no shards")
    iterators = {
        s["ShardId"]: streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for s in shards
    }
    records = []

    def poll():
        for shard_id, it in list(iterators.items()):
            if it is None:
                continue
            resp = streams.get_records(ShardIterator=it, Limit=100)
            records.extend(resp["Records"])
            iterators[shard_id] = resp.get("NextShardIterator")
        return len(records) >= 3

    wait_for("3 stream records", poll, timeout=30, interval=0.2)
    seen = [
        (r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"], r["dynamodb"]["NewImage"].get("v", {}).get("N"))
        for r in records
    ]
    check(("INSERT", "a", "1") in seen and ("INSERT", "b", None) in seen and ("MODIFY", "a", "2") in seen,
          f"unexpected stream records {seen}")
    check(all(r["dynamodb"]["StreamViewType"] == "NEW_IMAGE" for r in records), "wrong view type")
    check(all("OldImage" not in r["dynamodb"] for r in records), "OldImage present with NEW_IMAGE")
    log(f"dynamodb streams: {seen} read in {time.monotonic() - t0:.2f}s")
    ddb.delete_table(TableName=table)


def sqs_checks(run_id):
    sqs = client("sqs")
    dlq_url = sqs.create_queue(
        QueueName=f"smoke-{run_id}-dlq.fifo", Attributes={"FifoQueue": "true"}
    )["QueueUrl"]
    check(dlq_url.startswith(ENDPOINT + "/queue/"), f"queue URL not path-style: {dlq_url}")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    url = sqs.create_queue(
        QueueName=f"smoke-{run_id}.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "1",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    check(re.fullmatch(re.escape(ENDPOINT) + r"/queue/[^/]+/\d+/smoke-[\w-]+\.fifo", url),
          f"queue URL not path-style: {url}")
    log(f"sqs: queue URL {url}")

    bodies = {f"m{i}" for i in range(3)}
    resp = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": b, "MessageBody": b, "MessageGroupId": "g1", "MessageDeduplicationId": f"{run_id}-{b}"}
            for b in sorted(bodies)
        ],
    )
    check(len(resp.get("Successful", [])) == 3 and not resp.get("Failed"), f"batch send: {resp}")

    # Receive without deleting; after maxReceiveCount receives the next
    # receive moves the message to the DLQ.
    t0 = time.monotonic()
    receives = {}
    in_dlq = {}

    def poll():
        for m in sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=1,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", []):
            receives[m["Body"]] = int(m["Attributes"]["ApproximateReceiveCount"])
        for m in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", []):
            in_dlq[m["Body"]] = m
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=m["ReceiptHandle"])
        return set(in_dlq) == bodies

    wait_for("messages to reach the DLQ", poll, timeout=60, interval=0.3)
    check(all(n <= 2 for n in receives.values()), f"received more than maxReceiveCount: {receives}")
    check(receives and max(receives.values()) == 2, f"receive counts {receives}")
    log(f"sqs: {sorted(in_dlq)} reached the DLQ after {receives} receives "
        f"in {time.monotonic() - t0:.2f}s")
    sqs.delete_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=dlq_url)


def aws_checks():
    run_id = uuid.uuid4().hex[:8]
    t0 = time.monotonic()
    dynamodb_checks(run_id)
    sqs_checks(run_id)
    log(f"AWS checks passed in {time.monotonic() - t0:.2f}s against {ENDPOINT}")


# --- lifecycle ----------------------------------------------------------------

def sh(script, *args):
    t0 = time.monotonic()
    out = subprocess.run(
        ["bash", os.path.join(HERE, script), *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )
    took = time.monotonic() - t0
    sys.stdout.write(out.stdout)
    sys.stderr.write(out.stderr)
    check(out.returncode == 0, f"{script} exited {out.returncode}")
    return out.stdout, took


def our_processes():
    """python/java/node processes running from our state folder."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(pid) != os.getpid() and STATE in args and re.match(r"(python|java|node)", comm):
            found.append(f"{pid} {args}")
    return found


def port_free(hostport):
    host, port = hostport.rsplit(":", 1)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
            return True
        except OSError:
            return False


def lifecycle():
    hostport = ENDPOINT.split("://", 1)[1].split("/", 1)[0]
    sh("stop.sh")
    check(not our_processes(), f"leftover processes before start: {our_processes()}")
    check(port_free(hostport), f"{hostport} is busy before start (another LocalStack?)")

    out, took = sh("start.sh")
    check("healthy after" in out, "start.sh did not start LocalStack")
    log(f"start.sh took {took:.2f}s")
    procs = our_processes()
    log("running after warm-up: " + "; ".join(p[:100] for p in procs))

    aws_checks()
    procs = our_processes()
    check(any("DynamoDBLocal.jar" in p for p in procs), f"no DynamoDB Local java: {procs}")
    check(any("kinesis-local" in p for p in procs), f"no kinesis-local node: {procs}")

    _, took = sh("stop.sh")
    log(f"stop.sh took {took:.2f}s")
    left = our_processes()
    check(not left, f"processes left after stop.sh: {left}")
    check(port_free(hostport), f"{hostport} still busy after stop.sh")
    log("after stop: no python/java/node of ours, port free")

    _, took = sh("install.sh")
    log(f"second install.sh took {took:.2f}s")
    check(took < 2, "second install.sh should take < 2 s")

    out, _ = sh("start.sh")
    check("healthy after" in out, "first start.sh did not start")
    out, took = sh("start.sh")
    check("already running" in out or "reusing" in out, "second start.sh did not reuse")
    log(f"second start.sh reused in {took:.2f}s")
    sh("stop.sh")
    sh("stop.sh")  # idempotent
    check(not our_processes(), f"processes left: {our_processes()}")
    check(port_free(hostport), f"{hostport} still busy")
    log("lifecycle passed")


if __name__ == "__main__":
    if "--lifecycle" in sys.argv[1:]:
        lifecycle()
    else:
        aws_checks()
    log("OK")
