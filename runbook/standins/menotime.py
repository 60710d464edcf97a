"""The MenoTime production world on the AWS stand-in: :func:`seed_menotime` builds it over the
server's HTTP API (ECR images, task definitions, the cluster and service, the ALB and its target
group, log group, alarms, SNS topic); :func:`put_alb_metrics` and :func:`put_logs` give CloudWatch
something to show."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Sequence

from .. import clock
from .ecs import task_id


@dataclass
class MenoTimeWorld:
    """What :func:`seed_menotime` created, and the environment dict that points at it."""

    endpoint_url: str
    region: str
    account_id: str
    cluster: str
    service: str
    family: str
    task_definitions: dict[str, str]     # "family:rev" -> full ARN, oldest first
    images: dict[str, str]               # "family:rev" -> image
    digests: dict[str, str]              # image tag -> ECR digest
    live: str                            # "family:rev" the service runs
    load_balancer: str
    load_balancer_arn: str
    target_group: str
    target_group_arn: str
    log_group: str
    log_stream: str
    alarms: list[str]
    topic_arn: str
    repository: str

    def env(self, name: str = "sandbox") -> dict[str, Any]:
        """An environment (schemas/environment.schema.json) for this world."""
        return {
            "name": name,
            "aws": {"region": self.region, "account_id": self.account_id, "endpoint_url": self.endpoint_url},
            "ecs": {"cluster": self.cluster, "service": self.service, "task_family": self.family,
                    "desired_count": 3, "container_port": 8000, "deployment_controller": "ECS"},
            "alb": {"load_balancer": self.load_balancer, "target_group": self.target_group,
                    "health_check_interval": 30},
            "logs": {"group": self.log_group},
            "monitoring": {"period": 60, "window": 600, "interval": 60, "error_rate_percent": 1.0, "latency_ms": 500,
                           "latency_statistic": "Average", "datapoints": 2, "evaluation_periods": 5,
                           "alarm_prefix": "menotime-api-prod", "error_log_pattern": "ERROR",
                           "max_error_logs": 0},
            "notify": {"sns_topic_arn": self.topic_arn},
        }

    def image(self, tag: str) -> str:
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com/{self.repository}:{tag}"


_LOOPBACK_CLIENTS: dict[tuple[str, str, str], Any] = {}


def loopback_client(endpoint_url: str, service: str, region: str = "us-west-1") -> Any:
    """A boto3 client for the stand-in with dummy keys: seeding never reads real credentials."""
    import boto3

    key = (endpoint_url, service, region)
    if key not in _LOOPBACK_CLIENTS:
        _LOOPBACK_CLIENTS[key] = boto3.client(service, endpoint_url=endpoint_url, region_name=region,
                                              aws_access_key_id="testing",
                                              aws_secret_access_key="testing")  # nosec B106 - moto takes any key
    return _LOOPBACK_CLIENTS[key]


def register_revision(endpoint_url: str, family: str, image: str, region: str = "us-west-1",
                      tags: Sequence[dict[str, str]] = ()) -> str:
    """Register one revision of ``family`` running ``image`` on port 8000; returns its ARN."""
    ecs = loopback_client(endpoint_url, "ecs", region)
    container = {"name": "api", "image": image, "essential": True, "memory": 1024,
                 "portMappings": [{"containerPort": 8000, "protocol": "tcp"}],
                 "logConfiguration": {"logDriver": "awslogs", "options": {
                     "awslogs-group": "/ecs/menotime-api-production", "awslogs-region": region,
                     "awslogs-stream-prefix": "api"}}}
    extra: dict[str, Any] = {"tags": list(tags)} if tags else {}
    made = ecs.register_task_definition(family=family, containerDefinitions=[container], networkMode="awsvpc",
                                        requiresCompatibilities=["FARGATE"], cpu="512", memory="1024", **extra)
    return str(made["taskDefinition"]["taskDefinitionArn"])


def push_image(endpoint_url: str, repository: str, tag: str, region: str = "us-west-1",
               same_as: str | None = None) -> str:
    """Push a manifest for ``tag`` to ECR (its digest unique to the tag, or that of ``same_as``)."""
    import hashlib

    ecr = loopback_client(endpoint_url, "ecr", region)
    seed = same_as or tag
    layer = "sha256:" + hashlib.sha256(f"{repository}:{seed}".encode()).hexdigest()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1024,
                           "digest": "sha256:" + hashlib.sha256(seed.encode()).hexdigest()},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2048,
                            "digest": layer}]}
    pushed = ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
    return str(pushed["image"]["imageId"]["imageDigest"])


def seed_menotime(endpoint_url: str, region: str = "us-west-1",
                  versions: Sequence[str] = ("v1.0.0", "v1.1.0", "v1.2.0-rc.1", "v1.2.0"),
                  live: str | None = None, first_revision: int = 1, desired_count: int = 3,
                  cluster: str = "production", service: str = "menotime-api", family: str = "menotime-api-prod",
                  targets: int = 3) -> MenoTimeWorld:
    """Create MenoTime production on the stand-in: ECR images, task definition revisions
    (one per version; ``first_revision`` > 1 registers and deregisters older ones first, so
    numbers look like production's), cluster and service on the revision of version ``live``
    (default the newest), ALB + target group with healthy targets, log group, alarms (OK), SNS topic.
    """
    ecs = loopback_client(endpoint_url, "ecs", region)
    repository = "menotime-api"
    account = loopback_client(endpoint_url, "sts", region).get_caller_identity()["Account"]
    loopback_client(endpoint_url, "ecr", region).create_repository(repositoryName=repository)
    image = lambda tag: f"{account}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}"  # noqa: E731
    for _ in range(first_revision - 1):
        old = register_revision(endpoint_url, family, image("v0.9.0"), region)
        ecs.deregister_task_definition(taskDefinition=old)
    digests = {v: push_image(endpoint_url, repository, v, region) for v in versions}
    if live is not None and live not in versions:
        raise ValueError(f"live version {live} is not among {', '.join(versions)}")
    tds: dict[str, str] = {}
    images: dict[str, str] = {}
    live_key = ""
    for version in versions:
        arn = register_revision(endpoint_url, family, image(version), region)
        tds[arn.rsplit("/", 1)[-1]] = arn
        images[arn.rsplit("/", 1)[-1]] = image(version)
        if version == (live or versions[-1]):
            live_key = arn.rsplit("/", 1)[-1]

    lb_name = tg_name = "menotime-api-prod"
    ec2 = loopback_client(endpoint_url, "ec2", region)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]]
    elb = loopback_client(endpoint_url, "elbv2", region)
    lb_arn = elb.create_load_balancer(Name=lb_name, Subnets=subnets[:2], Scheme="internet-facing",
                                      Type="application")["LoadBalancers"][0]["LoadBalancerArn"]
    tg_arn = elb.create_target_group(Name=tg_name, Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip",
                                     HealthCheckPath="/health", HealthCheckIntervalSeconds=30
                                     )["TargetGroups"][0]["TargetGroupArn"]
    elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}])
    if targets:
        elb.register_targets(TargetGroupArn=tg_arn, Targets=[{"Id": f"10.0.1.{10 + i}", "Port": 8000}
                                                             for i in range(targets)])

    ecs.create_cluster(clusterName=cluster)
    ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=tds[live_key],
                       desiredCount=desired_count, launchType="FARGATE",
                       loadBalancers=[{"targetGroupArn": tg_arn, "containerName": "api", "containerPort": 8000}],
                       deploymentController={"type": "ECS"})

    logs = loopback_client(endpoint_url, "logs", region)
    log_group, log_stream = "/ecs/menotime-api-production", f"api/api/{task_id()}"
    logs.create_log_group(logGroupName=log_group)
    logs.create_log_stream(logGroupName=log_group, logStreamName=log_stream)

    cw = loopback_client(endpoint_url, "cloudwatch", region)
    dims = [{"Name": "TargetGroup", "Value": tg_arn.split(":", 5)[5]},
            {"Name": "LoadBalancer", "Value": lb_arn.split(":", 5)[5].split("loadbalancer/", 1)[1]}]
    alarms = {"menotime-api-prod-5xx-high": ("HTTPCode_Target_5XX_Count", 10.0),
              "menotime-api-prod-latency-high": ("TargetResponseTime", 0.5),
              "menotime-api-prod-unhealthy-hosts": ("UnHealthyHostCount", 0.0)}
    for name, (metric, threshold) in alarms.items():
        cw.put_metric_alarm(AlarmName=name, Namespace="AWS/ApplicationELB", MetricName=metric, Dimensions=dims,
                            Statistic="Sum" if metric.endswith("Count") else "Average", Period=60,
                            EvaluationPeriods=5, DatapointsToAlarm=3, Threshold=threshold,
                            ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching")
        cw.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="seeded: within threshold")
    topic = loopback_client(endpoint_url, "sns", region).create_topic(Name="menotime-deploys")["TopicArn"]
    return MenoTimeWorld(endpoint_url, region, account, cluster, service, family, tds, images, digests, live_key,
                         lb_name, lb_arn, tg_name, tg_arn, log_group, log_stream, list(alarms), topic, repository)


def put_alb_metrics(world: MenoTimeWorld, minutes: int = 10, requests: int = 600, errors: int = 0,
                    latency_ms: float = 120.0, end: dt.datetime | None = None) -> None:
    """Publish the ALB's per-minute metrics for the last ``minutes`` whole minutes before ``end``.

    ``errors`` is HTTPCode_Target_5XX_Count per minute (none published when 0, as the ALB does);
    ``requests`` 0 publishes nothing at all (no traffic).
    """
    cw = loopback_client(world.endpoint_url, "cloudwatch", world.region)
    dims = [{"Name": "TargetGroup", "Value": world.target_group_arn.split(":", 5)[5]},
            {"Name": "LoadBalancer", "Value": world.load_balancer_arn.split(":", 5)[5].split("loadbalancer/", 1)[1]}]
    top = (end or clock.now()).replace(second=0, microsecond=0)
    data: list[dict[str, Any]] = []
    for i in range(1, minutes + 1):
        at = top - dt.timedelta(minutes=i)
        if requests:
            data.append({"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": at, "Value": requests,
                         "Unit": "Count"})
            data.append({"MetricName": "TargetResponseTime", "Dimensions": dims, "Timestamp": at,
                         "Value": latency_ms / 1000.0, "Unit": "Seconds"})
        if errors:
            data.append({"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims, "Timestamp": at,
                         "Value": errors, "Unit": "Count"})
    for start in range(0, len(data), 500):
        cw.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=data[start:start + 500])


def put_logs(world: MenoTimeWorld, messages: Sequence[str], ago_seconds: float = 60.0) -> None:
    """Write log lines to the service's log group, ``ago_seconds`` before now (one ms apart)."""
    logs = loopback_client(world.endpoint_url, "logs", world.region)
    base = int((clock.now().timestamp() - ago_seconds) * 1000)
    events = [{"timestamp": base + i, "message": m} for i, m in enumerate(messages)]
    if events:
        logs.put_log_events(logGroupName=world.log_group, logStreamName=world.log_stream, logEvents=events)
