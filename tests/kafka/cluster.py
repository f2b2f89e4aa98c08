"""Apache Kafka clusters for tests, started and stopped by `deploy/local/kafka.sh` (the script a
developer uses), with a SASL_SSL listener whose CA and SCRAM user are made here for the session."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "local" / "kafka.sh"
SCRAM_USERNAME = "aietl-test"


@dataclass
class KafkaCluster:
    """A running cluster: where clients connect, and the nodes a test may kill and bring back."""

    directory: Path
    brokers: int
    bootstrap: str
    secure_bootstrap: str
    ca_file: Path
    scram_password: str

    def run(self, *args: str, timeout: float = 300) -> str:
        extra = ["--no-fetch"] if args[0] == "start" else []
        done = subprocess.run(
            ["bash", str(SCRIPT), *args, "--dir", str(self.directory), *extra],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"kafka.sh {' '.join(args)} failed:\n{done.stderr[-4_000:]}"
        return done.stdout

    def pid(self, node: int) -> int:
        return int((self.directory / f"node-{node}" / "pid").read_text())

    def kill(self, node: int) -> None:
        """SIGKILL: the broker loses what it had not written, like a lost machine."""
        os.kill(self.pid(node), signal.SIGKILL)

    def stop(self, node: int) -> None:
        """A graceful stop (SIGTERM): the broker hands its leaderships over first."""
        self.run("stop", "--node", str(node))

    async def start(self) -> None:
        """Start the nodes that are not running, and wait until every broker answers."""
        await asyncio.to_thread(self.run, "start")

    async def leader_of(self, topic: str, partition: int = 0) -> int:
        """The node id that leads `topic`'s `partition` now (node ids are 1..brokers)."""
        return int(next(p for p in await self._partitions(topic) if p["partition"] == partition)["leader"])

    async def in_sync(self, topic: str) -> bool:
        """Every partition of `topic` has all its replicas in sync."""
        return all(len(p["isr"]) == len(p["replicas"]) for p in await self._partitions(topic))

    async def _partitions(self, topic: str) -> list[dict[str, Any]]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([topic])
        finally:
            await admin.close()
        return list(described[0]["partitions"])


def make_tls_files(directory: Path) -> Path:
    """A CA made for this session and a broker certificate for 127.0.0.1/localhost signed by it:
    `broker.pem` (key and chain, as the broker's PEM keystore reads it) and `ca.pem` for clients."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aietl test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (directory / "broker.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + certificate.public_bytes(pem)
        + ca.public_bytes(pem)
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    return ca_file


@contextmanager
def running_cluster(directory: Path, brokers: int = 3) -> Iterator[KafkaCluster]:
    """Start a new cluster in `directory` (its CA and SCRAM user made now); stop it afterwards."""
    ca_file = make_tls_files(directory / "tls")
    password = secrets.token_urlsafe(24)
    cluster = KafkaCluster(directory / "cluster", brokers, "", "", ca_file, password)
    env = {**os.environ, "KAFKA_SCRAM_USERNAME": SCRAM_USERNAME, "KAFKA_SCRAM_PASSWORD": password}
    started = subprocess.run(
        [
            "bash",
            str(SCRIPT),
            "start",
            "--brokers",
            str(brokers),
            "--dir",
            str(cluster.directory),
            "--secure",
            str(directory / "tls"),
            "--no-fetch",  # resolved by `make test`'s setup (`make kafka`), never during a test
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        check=False,
    )
    try:
        assert started.returncode == 0, f"kafka.sh start failed:\n{started.stderr[-4_000:]}"
        values = dict(
            line.split("=", 1) for line in (cluster.directory / "cluster.env").read_text().splitlines()
        )
        cluster.bootstrap, cluster.secure_bootstrap = values["BOOTSTRAP"], values["SECURE_BOOTSTRAP"]
        yield cluster
    finally:
        subprocess.run(
            ["bash", str(SCRIPT), "stop", "--dir", str(cluster.directory)], timeout=120, check=False
        )
