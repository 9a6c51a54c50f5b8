"""The seam: operation resolution, and intercepts / observers / guards around moto on a live endpoint."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from dr_runbooks.config import DeploymentConfig
from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import Call, Forward, Reply, resolve_rest
from ehr_dr_sandbox.emulated_api import answer
from ehr_dr_sandbox.faults import FaultsClient, SandboxControlError
from ehr_dr_sandbox.server import SandboxServer

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=5)


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "operation"),
    [
        ("PUT", "/bucket/a/b.pdf", {}, {}, "PutObject"),
        ("PUT", "/bucket/a/b.pdf", {}, {"x-amz-copy-source": "src/k"}, "CopyObject"),
        ("PUT", "/bucket/k", {"partNumber": ["1"], "uploadId": ["u"]}, {"x-amz-copy-source": "s/k"}, "UploadPartCopy"),
        ("POST", "/bucket/k", {"uploadId": ["u"]}, {}, "CompleteMultipartUpload"),
        ("POST", "/bucket/k", {"uploads": [""]}, {}, "CreateMultipartUpload"),
        ("POST", "/bucket", {"delete": [""]}, {}, "DeleteObjects"),
        ("DELETE", "/bucket/k", {}, {}, "DeleteObject"),
        ("GET", "/bucket", {"list-type": ["2"]}, {}, "ListObjectsV2"),
        ("GET", "/bucket", {}, {}, "ListObjects"),
        ("GET", "/bucket", {"versions": [""]}, {}, "ListObjectVersions"),
        ("PUT", "/bucket", {"replication": [""]}, {}, "PutBucketReplication"),
    ],
)
def test_s3_path_style_requests_resolve_to_the_most_specific_operation(method, path, query, headers, operation):
    assert resolve_rest("s3", method, path, query, headers)[0] == operation


def test_rest_resolution_returns_the_uri_parameters_with_greedy_keys():
    operation, params = resolve_rest("s3", "PUT", "/bucket/charts/p1/x%20y.pdf", {}, {})
    assert (operation, params) == ("PutObject", {"Bucket": "bucket", "Key": "charts/p1/x y.pdf"})


def test_rest_json_resolution_uses_the_service_model():
    assert resolve_rest("route53", "GET", "/2013-04-01/healthcheck/abc/status", {}, {})[0] == "GetHealthCheckStatus"
    assert resolve_rest("backup", "PUT", "/backup-jobs", {}, {})[0] == "StartBackupJob"


def test_an_unknown_path_resolves_to_no_operation():
    assert resolve_rest("backup", "GET", "/no/such/thing/here", {}, {}) == (None, {})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    config = DeploymentConfig(env_name="seam", account="123456789012")
    server = SandboxServer(SandboxContext(config=config, state_dir=tmp_path_factory.mktemp("seam"))).start()
    yield server
    server.stop()


def client(server, service, region="us-east-1"):
    return boto3.client(service, region_name=region, endpoint_url=server.context.endpoint_url, config=NO_RETRY,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def test_an_intercept_answers_an_operation_moto_lacks(server):
    seen: list[Call] = []

    @server.registry.intercept("rds", "ModifyGlobalCluster")
    def modify(call: Call, forward: Forward) -> Reply:
        seen.append(call)
        return answer(call, lambda: {"GlobalCluster": {"GlobalClusterIdentifier": "g2"}})

    answered = client(server, "rds", "us-west-1").modify_global_cluster(
        GlobalClusterIdentifier="g1", NewGlobalClusterIdentifier="g2"
    )
    assert answered["GlobalCluster"]["GlobalClusterIdentifier"] == "g2"
    assert (seen[0].region, seen[0].param("NewGlobalClusterIdentifier")) == ("us-west-1", "g2")


def test_an_intercept_can_rewrite_motos_answer(server):
    @server.registry.intercept("ssm", "GetParameter")
    def shout(call: Call, forward: Forward) -> Reply:
        reply = forward()
        return reply.with_body(reply.body.replace(b"quiet", b"LOUD"))

    ssm = client(server, "ssm")
    ssm.put_parameter(Name="/seam/p", Value="quiet", Type="String")
    assert ssm.get_parameter(Name="/seam/p")["Parameter"]["Value"] == "LOUD"


def test_an_intercept_that_raises_becomes_an_internal_failure_naming_it(server):
    @server.registry.intercept("sns", "ListSubscriptions")
    def broken(call: Call, forward: Forward) -> Reply:
        raise RuntimeError("emulation bug")

    with pytest.raises(ClientError, match="emulation bug"):
        client(server, "sns").list_subscriptions()


def test_an_observer_sees_successful_writes_with_motos_reply(server):
    seen: list[tuple[str, str | None]] = []
    server.registry.observe("s3", "PutObject")(lambda call, reply: seen.append(
        (call.uri_params["Key"], reply.header("x-amz-version-id"))))
    s3 = client(server, "s3")
    s3.create_bucket(Bucket="seam-bucket")
    s3.put_bucket_versioning(Bucket="seam-bucket", VersioningConfiguration={"Status": "Enabled"})
    version = s3.put_object(Bucket="seam-bucket", Key="charts/a b.pdf", Body=b"x")["VersionId"]
    assert seen == [("charts/a b.pdf", version)]


def test_an_observer_is_not_called_when_the_operation_failed(server):
    seen: list[Call] = []
    server.registry.observe("s3", "DeleteObjects")(lambda call, reply: seen.append(call))
    with pytest.raises(ClientError):
        client(server, "s3").delete_objects(Bucket="no-such-bucket", Delete={"Objects": [{"Key": "k"}]})
    assert seen == []


def test_a_region_down_drops_its_connections_and_spares_the_other_region(server):
    faults = FaultsClient(server.context.endpoint_url)
    faults.region_down("us-west-1")
    try:
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            client(server, "sns", "us-west-1").list_topics()
        assert "Topics" in client(server, "sns", "us-east-1").list_topics()
    finally:
        faults.region_up("us-west-1")
    assert "Topics" in client(server, "sns", "us-west-1").list_topics()


@pytest.mark.parametrize(("service", "call", "code"), [
    ("ssm", lambda c: c.describe_parameters(), "ThrottlingException"),
    ("sns", lambda c: c.list_topics(), "Throttling"),
    ("s3", lambda c: c.list_buckets(), "SlowDown"),
    ("dynamodb", lambda c: c.list_tables(), "ThrottlingException"),
    ("backup", lambda c: c.list_backup_vaults(), "ThrottlingException"),
])
def test_throttling_the_next_calls_gives_the_protocols_throttling_error(server, service, call, code):
    faults = FaultsClient(server.context.endpoint_url)
    faults.throttle(service, calls=1)
    aws = client(server, service)
    with pytest.raises(ClientError) as error:
        call(aws)
    assert error.value.response["Error"]["Code"] == code
    call(aws)  # only the next call was throttled


def test_botocore_retries_through_throttling(server):
    FaultsClient(server.context.endpoint_url).throttle("sns", calls=2)
    sns = boto3.client("sns", region_name="us-east-1", endpoint_url=server.context.endpoint_url,
                       config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    response = sns.list_topics()
    assert response["ResponseMetadata"]["RetryAttempts"] == 2


@pytest.mark.parametrize(("name", "arguments", "message"), [
    ("region-down", {"region": "eu-west-1"}, "not one of this sandbox's regions"),
    ("throttle", {"service": "s3"}, "exactly one of calls"),
    ("no-such-fault", {}, "no sandbox action 'no-such-fault'"),
])
def test_a_bad_fault_request_is_refused_with_a_clear_message_and_changes_nothing(server, name, arguments, message):
    faults = FaultsClient(server.context.endpoint_url)
    before = faults.action("clear")
    with pytest.raises(SandboxControlError, match=message):
        faults.action(name, **arguments)
    from ehr_dr_sandbox.faults import control_request
    assert control_request(server.context.endpoint_url, "status")["faults"] == before


def test_a_sigv4_presigned_url_is_resolved_like_a_signed_call_and_goes_dark_with_its_region(server):
    s3 = boto3.client("s3", region_name="us-west-1", endpoint_url=server.context.endpoint_url,
                      aws_access_key_id="testing", aws_secret_access_key="testing",
                      config=Config(signature_version="s3v4", retries={"total_max_attempts": 1}))
    s3.create_bucket(Bucket="presigned-west", CreateBucketConfiguration={"LocationConstraint": "us-west-1"})
    s3.put_object(Bucket="presigned-west", Key="chart.pdf", Body=b"chart")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "presigned-west", "Key": "chart.pdf"})
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"chart"
    faults = FaultsClient(server.context.endpoint_url)
    faults.region_down("us-west-1")
    try:
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(url, timeout=5)
    finally:
        faults.region_up("us-west-1")
