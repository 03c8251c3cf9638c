"""Exposure rules, bearer tokens and their roles, TLS and mutual TLS, stream limits, metrics and
request ids."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from swarmlearn.config import Settings
from swarmlearn.server import DaemonServer, SecurityError, configure_logging
from swarmlearn.server._security import RPC_ROLES, Role, TokenChecker, is_loopback, load_tokens, parse_tokens
from swarmlearn_client import AsyncClient, SwarmLearnError
from swarmlearn_client.v1 import agents_pb2, events_pb2, service_pb2, service_pb2_grpc
from tests.daemon.pbevents import event, events
from tests.daemon.rpc import caught_up

TOKEN = "s3cret-token-of-32-characters-xx"


def settings(tmp_path: Path, **changes: object) -> Settings:
    base: dict[str, object] = {"listen": "127.0.0.1:0", "metrics_listen": "", "data_dir": tmp_path / "data"}
    return Settings(**{**base, **changes})  # type: ignore[arg-type]


async def started(s: Settings) -> DaemonServer:
    daemon = DaemonServer(s)
    await daemon.start()
    return daemon


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:1", True),
        ("127.5.0.1:1", True),
        ("[::1]:1", True),
        ("localhost:1", True),
        ("unix:/run/x.sock", True),
        ("0.0.0.0:1", False),
        ("[::]:1", False),
        ("10.0.0.5:1", False),
        ("example.org:1", False),
    ],
)
def test_loopback_detection(listen: str, loopback: bool) -> None:
    assert is_loopback(listen) is loopback


async def test_non_loopback_needs_client_authentication(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    tls = {"tls_cert": pki.files["server.crt"], "tls_key": pki.files["server.key"]}
    with pytest.raises(SecurityError, match=r"refusing to listen on 0\.0\.0\.0:0 without client authentication"):
        await started(settings(tmp_path, listen="0.0.0.0:0"))
    # TLS alone encrypts, but anyone who reaches the port could still train and promote models.
    with pytest.raises(SecurityError, match=r"auth_token_file .* tls_client_ca .*TLS alone") as tls_only:
        await started(settings(tmp_path, listen="0.0.0.0:0", **tls))
    assert "allow_insecure" in str(tls_only.value)
    tokens = token_file(tmp_path, TOKEN)
    mutual_tls = {**tls, "tls_client_ca": pki.files["ca"]}
    for extra in (
        {"allow_insecure": True},
        {"auth_token_file": tokens},
        mutual_tls,
        {**tls, "auth_token_file": tokens},
    ):
        daemon = await started(settings(tmp_path, listen="0.0.0.0:0", online_workers=0, **extra))
        await daemon.stop()


def token_file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "tokens"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


async def test_bearer_tokens(tmp_path: Path) -> None:
    tokens = token_file(tmp_path, "# rotated 2026-11", "", TOKEN, "another-token-0123456789")
    daemon = await started(settings(tmp_path, auth_token_file=tokens))
    try:
        async with AsyncClient(daemon.address) as anonymous:
            with pytest.raises(SwarmLearnError) as refused:
                await anonymous.get_agent_stats("a")
            assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(SwarmLearnError) as refused_stream:
                await anonymous.ingest(events(3))
            assert refused_stream.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert await anonymous.health() == "SERVING"  # health stays open
        async with AsyncClient(daemon.address, token="wrong-token-0123456789") as wrong:
            with pytest.raises(SwarmLearnError) as bad:
                await wrong.list_agents()
            assert bad.value.code == grpc.StatusCode.UNAUTHENTICATED
        for token in (TOKEN, "another-token-0123456789"):
            async with AsyncClient(daemon.address, token=token) as client:
                summary = await client.ingest(events(3, prefix=token[:4]))
                assert summary.accepted == 3
        assert daemon.store.count() == 6
    finally:
        await daemon.stop()


async def test_malformed_requests_are_refused_as_unauthenticated_without_a_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = await started(settings(tmp_path, auth_token_file=token_file(tmp_path, TOKEN)))
    corrupt = b"\x0a\x05ab"
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            for metadata, code in (
                ((), grpc.StatusCode.UNAUTHENTICATED),
                ((("authorization", f"Bearer {TOKEN}"),), grpc.StatusCode.INVALID_ARGUMENT),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as unary:
                    await channel.unary_unary("/swarmlearn.v1.SwarmLearn/GetAgentStats")(corrupt, metadata=metadata)
                assert unary.value.code() == code
                with pytest.raises(grpc.aio.AioRpcError) as stream:
                    call = channel.stream_stream("/swarmlearn.v1.SwarmLearn/Ingest")(iter([corrupt]), metadata=metadata)
                    _ = [ack async for ack in call]
                assert stream.value.code() == code
    finally:
        await daemon.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_unusable_token_files_are_refused(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(SecurityError, match="at least 16"):
        load_tokens(short)
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(SecurityError, match="no token"):
        load_tokens(empty)
    with pytest.raises(SecurityError, match="cannot read"):
        load_tokens(tmp_path / "missing")
    for text, reason in (
        (f"owner {TOKEN}", "line 1: unknown role 'owner'; roles are agent, admin"),
        (f"# agents\nagent {TOKEN} extra", "line 2: expected TOKEN or ROLE TOKEN, found 3 words"),
        (f"agent {TOKEN}\nadmin {TOKEN}", "line 2: the token is listed twice"),
        ("agent short", "line 1: tokens must be at least 16 characters"),
    ):
        with pytest.raises(SecurityError) as refused:
            parse_tokens(text, "auth_token_file F")
        assert str(refused.value) == f"auth_token_file F {reason}"


def test_a_token_file_line_is_a_token_or_a_role_and_a_token() -> None:
    text = f"# rotated 2026-11\n\n{TOKEN}\nagent {AGENT_TOKEN}\n  admin\t{ADMIN_TOKEN}  \n"
    assert parse_tokens(text, "F") == {TOKEN: Role.ADMIN, AGENT_TOKEN: Role.AGENT, ADMIN_TOKEN: Role.ADMIN}


# -- roles ------------------------------------------------------------------------------------------

AGENT_TOKEN = "agent-token-0123456789abcdef"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
# What an agent's token must not reach: jobs (training, tuning) and the model registry.
ADMIN_RPCS = (
    "StartTraining",
    "StartTuning",
    "GetJob",
    "WatchJob",
    "CancelJob",
    "ListJobs",
    "ListModels",
    "PromoteModel",
    "RollbackModel",
)


def test_every_served_method_has_a_role_in_one_table() -> None:
    services = (
        service_pb2.DESCRIPTOR.services_by_name["SwarmLearn"],
        health_pb2.DESCRIPTOR.services_by_name["Health"],
        reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
    )
    served = {f"/{service.full_name}/{method.name}" for service in services for method in service.methods}
    assert set(RPC_ROLES) == served
    assert {m.rsplit("/", 1)[-1] for m, role in RPC_ROLES.items() if role is Role.ADMIN} == set(ADMIN_RPCS)


def test_a_method_missing_from_the_table_is_refused_even_to_admin() -> None:
    checker = TokenChecker({ADMIN_TOKEN: Role.ADMIN})
    admin = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
    assert checker.refusal("/swarmlearn.v1.SwarmLearn/PromoteModel", admin) is None
    assert checker.refusal("/swarmlearn.v1.SwarmLearn/DropEverything", admin) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "DropEverything has no role in the daemon's RPC table; no token may call it",
    )
    assert checker.refusal("/swarmlearn.v1.SwarmLearn/DropEverything", ())[0] == grpc.StatusCode.UNAUTHENTICATED


async def test_an_agent_token_cannot_reach_jobs_or_models(tmp_path: Path) -> None:
    tokens = token_file(tmp_path, f"agent {AGENT_TOKEN}", f"admin {ADMIN_TOKEN}")
    daemon = await started(settings(tmp_path, auth_token_file=tokens))
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            agent = (("authorization", f"Bearer {AGENT_TOKEN}"),)
            for name in ADMIN_RPCS:
                path = f"/swarmlearn.v1.SwarmLearn/{name}"
                with pytest.raises(grpc.aio.AioRpcError) as denied:
                    if name == "WatchJob":
                        _ = [job async for job in channel.unary_stream(path)(b"", metadata=agent)]
                    else:
                        await channel.unary_unary(path)(b"", metadata=agent)
                assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
                assert denied.value.details() == f"{name} needs the admin role; this token has the agent role"
        async with AsyncClient(daemon.address, token=AGENT_TOKEN, timeout=30) as client:
            assert (await client.ingest(events(20))).accepted == 20
            await caught_up(daemon)
            assert (await client.predict("agent-1")).agent_id == "agent-1"
            assert len((await client.score_prompts("agent-1", ["short", "a longer prompt"])).ranked) == 2
            assert (await client.get_agent_stats("agent-1")).event_count == 20
            assert [a.agent_id for a in (await client.list_agents()).agents] == ["agent-1"]
            assert (await client.status()).token_auth
    finally:
        await daemon.stop()


async def test_admin_tokens_reach_everything(tmp_path: Path) -> None:
    # A bare token, as every token was before roles, keeps full rights.
    tokens = token_file(tmp_path, f"agent {AGENT_TOKEN}", f"admin {ADMIN_TOKEN}", TOKEN)
    daemon = await started(settings(tmp_path, auth_token_file=tokens, online_workers=0))
    try:
        for token in (ADMIN_TOKEN, TOKEN):
            async with AsyncClient(daemon.address, token=token) as client:
                assert (await client.ingest(events(2, prefix=token[:5]))).accepted == 2
                assert await client.list_models() == []
                assert await client.list_jobs() == []
                with pytest.raises(SwarmLearnError) as missing:
                    await client.promote_model(model_kind="tcn", version=7)
                assert missing.value.code == grpc.StatusCode.NOT_FOUND
                with pytest.raises(SwarmLearnError) as unknown_job:
                    await client.get_job("no-such-job")
                assert unknown_job.value.code == grpc.StatusCode.NOT_FOUND
    finally:
        await daemon.stop()


# -- TLS ------------------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


class PKI:
    """A CA, a server certificate for 127.0.0.1, a client certificate, and a stranger's one."""

    def __init__(self, root: Path) -> None:
        ca_key, stranger_ca_key = _key(), _key()
        ca = _cert("test CA", ca_key, None, server=False)
        server_key, client_key, stranger_key = _key(), _key(), _key()
        self.files: dict[str, Path] = {}
        material = {
            "ca": ca.public_bytes(serialization.Encoding.PEM),
            "server.crt": _cert("localhost", server_key, ("test CA", ca_key), server=True).public_bytes(
                serialization.Encoding.PEM
            ),
            "server.key": _pem_key(server_key),
            "client.crt": _cert("agent", client_key, ("test CA", ca_key), server=False).public_bytes(
                serialization.Encoding.PEM
            ),
            "client.key": _pem_key(client_key),
            "stranger.crt": _cert("stranger", stranger_key, ("other CA", stranger_ca_key), server=False).public_bytes(
                serialization.Encoding.PEM
            ),
            "stranger.key": _pem_key(stranger_key),
        }
        for name, data in material.items():
            path = root / name
            path.write_bytes(data)
            self.files[name] = path

    def channel_credentials(self, who: str | None) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.files["ca"].read_bytes(),
            private_key=self.files[f"{who}.key"].read_bytes() if who else None,
            certificate_chain=self.files[f"{who}.crt"].read_bytes() if who else None,
        )


async def test_mutual_tls_accepts_the_right_client_only(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    daemon = await started(
        settings(
            tmp_path,
            tls_cert=pki.files["server.crt"],
            tls_key=pki.files["server.key"],
            tls_client_ca=pki.files["ca"],
        )
    )
    try:
        async with AsyncClient(daemon.address, credentials=pki.channel_credentials("client"), timeout=5) as client:
            assert (await client.ingest(events(5))).accepted == 5
            status = await client.status()
            assert status.tls and status.client_certificates_required and not status.token_auth
            assert await client.list_models() == []  # a certificate without tokens grants every RPC
        for who in (None, "stranger"):
            async with AsyncClient(daemon.address, credentials=pki.channel_credentials(who), timeout=2) as refused:
                with pytest.raises(SwarmLearnError) as failed:
                    await refused.get_agent_stats("agent-1")
                assert failed.value.code == grpc.StatusCode.UNAVAILABLE
        async with AsyncClient(daemon.address, timeout=2) as plaintext:
            with pytest.raises(SwarmLearnError):
                await plaintext.get_agent_stats("agent-1")
    finally:
        await daemon.stop()


async def test_tls_without_client_certificates(tmp_path: Path) -> None:
    pki = PKI(tmp_path)
    daemon = await started(settings(tmp_path, tls_cert=pki.files["server.crt"], tls_key=pki.files["server.key"]))
    try:
        async with AsyncClient(daemon.address, credentials=pki.channel_credentials(None), timeout=5) as client:
            assert await client.health() == "SERVING"
            assert (await client.ingest(events(2))).accepted == 2
    finally:
        await daemon.stop()


# -- limits, metrics, logs --------------------------------------------------------------------------


async def test_streams_over_the_limit_get_resource_exhausted_with_a_retry_hint(tmp_path: Path) -> None:
    daemon = await started(settings(tmp_path, max_concurrent_streams=1))
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = service_pb2_grpc.SwarmLearnStub(channel)
            first = stub.Ingest()
            await first.write(events_pb2.EventBatch(batch_id="1", events=events(2)))
            assert (await first.read()).accepted == 2
            second = stub.Ingest()
            # Under load the server may refuse the stream before this write completes: then the write
            # raises, and the read below reports the same status.
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await second.write(events_pb2.EventBatch(batch_id="1", events=events(2, prefix="x")))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await second.read()
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "limit is 1" in (refused.value.details() or "")
            assert ("retry-after-ms", "1000") in tuple(refused.value.trailing_metadata() or ())
            await first.done_writing()
            assert await first.read() == grpc.aio.EOF
            assert await first.code() == grpc.StatusCode.OK
    finally:
        await daemon.stop()


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_metrics_endpoint_reports_what_was_ingested(tmp_path: Path) -> None:
    daemon = await started(settings(tmp_path, metrics_listen="127.0.0.1:0"))
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = service_pb2_grpc.SwarmLearnStub(channel)
            batch = [*events(10), event(agent_id=""), event(event_id="x", latency=-1.0)]

            async def one() -> AsyncIterator[events_pb2.EventBatch]:
                yield events_pb2.EventBatch(batch_id="1", events=batch)

            acks = [a async for a in stub.Ingest(one())]
            acks += [a async for a in stub.Ingest(one())]
            assert [a.accepted for a in acks] == [10, 0]
            await stub.GetAgentStats(agents_pb2.GetAgentStatsRequest(agent_id="agent-1"))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetAgentStats(agents_pb2.GetAgentStatsRequest(agent_id="nobody"))
        text = await asyncio.to_thread(scrape, f"http://{daemon.metrics_address}/metrics")
    finally:
        await daemon.stop()
    lines = set(text.splitlines())
    assert 'swarmlearn_ingest_events_total{outcome="accepted"} 10.0' in lines
    assert 'swarmlearn_ingest_events_total{outcome="duplicate"} 10.0' in lines
    assert 'swarmlearn_ingest_events_total{outcome="rejected"} 4.0' in lines
    assert 'swarmlearn_ingest_rejected_events_total{field="agent_id"} 2.0' in lines
    assert 'swarmlearn_ingest_rejected_events_total{field="performance_metrics"} 2.0' in lines
    assert "swarmlearn_event_log_sequence 10.0" in lines
    assert any(line.startswith("swarmlearn_event_log_bytes ") and float(line.split()[1]) > 0 for line in lines)
    assert "swarmlearn_ingest_ack_seconds_count 2.0" in lines
    assert 'swarmlearn_rpc_seconds_count{method="GetAgentStats"} 2.0' in lines
    assert 'swarmlearn_rpc_errors_total{code="NOT_FOUND",method="GetAgentStats"} 1.0' in lines
    assert 'swarmlearn_build_info{version="0.1.0"} 1.0' in lines


async def test_json_logs_carry_the_request_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "json")
    try:
        daemon = await started(settings(tmp_path))
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            stub = service_pb2_grpc.SwarmLearnStub(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.ListAgents(
                    agents_pb2.ListAgentsRequest(page_token="!!"), metadata=(("x-request-id", "req-1234"),)
                )
        await daemon.stop()
    finally:
        logging.getLogger().handlers.clear()
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert records, "no JSON log lines"
    assert {"time", "level", "logger", "message", "request_id"} <= set(records[0])
    assert any(r["request_id"] == "req-1234" and "ListAgents" in r["message"] for r in records)


async def test_health_watchers_survive_the_interceptor(tmp_path: Path) -> None:
    daemon = await started(settings(tmp_path))
    try:
        async with grpc.aio.insecure_channel(daemon.address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
    finally:
        await daemon.stop()
