"""A real ClickHouse server for the tests: Debian's ``clickhouse-server`` (``make test``
installs it), started on free loopback ports in a temporary directory, stopped afterwards."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port

READY_S = 180.0  # its start on a loaded machine (several runs side by side): tens of seconds
BINARY = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"

CONFIG = """<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
</yandex>
"""
USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"""


@dataclass
class ClickHouse:
    url: str
    proc: subprocess.Popen[bytes]
    directory: Path


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    if not Path(BINARY).exists():
        pytest.skip("clickhouse-server is not installed (make test installs it)")
    d = tmp_path_factory.mktemp("clickhouse")
    http, tcp = free_port(), free_port()
    (d / "config.xml").write_text(CONFIG.format(d=d, http=http, tcp=tcp))
    (d / "users.xml").write_text(USERS)
    log = (d / "stdout.log").open("wb")
    proc = subprocess.Popen(
        [BINARY, f"--config-file={d / 'config.xml'}"], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{http}"
    deadline = time.monotonic() + READY_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"clickhouse-server exited: {(d / 'stdout.log').read_text()}")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=1) as r:
                if r.read().strip() == b"Ok.":
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"clickhouse-server did not answer in {READY_S:g} s")
        time.sleep(0.2)
    try:
        yield ClickHouse(url, proc, d)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
