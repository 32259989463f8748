"""Network namespaces as machines, for tests/worker/test_multi_host.py: a namespace with a veth
link to the root namespace per "machine", processes started inside them, and a TCP forwarder
that makes services bound to the root namespace's 127.0.0.1 reachable from the links."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Cluster", "Forwarder", "Host", "free_subnet", "ip"]


def ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


class Forwarder:
    """TCP relays from addresses on the veth links to the services on 127.0.0.1, run on an
    asyncio loop in a thread of this process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.servers: list[asyncio.AbstractServer] = []
        self.thread = threading.Thread(target=self.loop.run_forever, name="forwarder", daemon=True)
        self.thread.start()

    def listen(self, host: str, target_port: int) -> int:
        """Relay ``host:<free port>`` to ``127.0.0.1:target_port``; the port."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

        async def start() -> asyncio.AbstractServer:
            return await asyncio.start_server(handle, host, 0)

        server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def close(self) -> None:
        async def stop() -> None:
            for server in self.servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@dataclass
class Host:
    """One "machine": a network namespace, its veth link and the addresses on either end."""

    ns: str
    root_link: str
    root_addr: str  # the root namespace's end: where this machine finds Redis and PostgreSQL
    addr: str  # this machine's own address


@dataclass
class Cluster:
    tmp: Path
    suffix: str
    hosts: dict[str, Host] = field(default_factory=dict)
    procs: list[tuple[str, subprocess.Popen, Path]] = field(default_factory=list)
    forwarder: Forwarder | None = None

    def add_host(self, role: str, subnet: str, index: int) -> Host:
        host = Host(
            ns=f"cai-{role}-{self.suffix}",
            root_link=f"vc{self.suffix}{index}r",
            root_addr=f"{subnet}.{4 * index + 1}",
            addr=f"{subnet}.{4 * index + 2}",
        )
        inner = f"vc{self.suffix}{index}n"
        ip("netns", "add", host.ns)
        self.hosts[role] = host  # from here on the clean-up deletes it
        ip("link", "add", host.root_link, "type", "veth", "peer", "name", inner)
        ip("link", "set", inner, "netns", host.ns)
        ip("addr", "add", f"{host.root_addr}/30", "dev", host.root_link)
        ip("link", "set", host.root_link, "up")
        ip("-n", host.ns, "addr", "add", f"{host.addr}/30", "dev", inner)
        ip("-n", host.ns, "link", "set", inner, "up")
        ip("-n", host.ns, "link", "set", "lo", "up")
        return host

    def start(self, role: str, name: str, args: list[str], env: dict[str, str]) -> None:
        log = self.tmp / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.hosts[role].ns, *_catalog_ai(), *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((name, proc, log))

    def log(self, name: str) -> str:
        return next(log for n, _, log in self.procs if n == name).read_text(errors="replace")

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:]
            for _, _, log in self.procs
        )

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            dead = [n for n, p, _ in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"timed out after {timeout} s"
                raise AssertionError(f"{why} waiting for {what}\n{self.logs()}")
            time.sleep(0.1)

    def close(self) -> None:
        for _, proc, _ in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, _ in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        if self.forwarder is not None:
            self.forwarder.close()
        for host in self.hosts.values():
            # Deleting the namespace deletes its end of the veth pair, and with it the root end.
            with contextlib.suppress(RuntimeError):
                ip("netns", "del", host.ns)
            with contextlib.suppress(RuntimeError):
                ip("link", "del", host.root_link)  # normally already gone


def _catalog_ai() -> list[str]:
    script = Path(sys.executable).with_name("catalog-ai")
    return [str(script)] if script.exists() else [sys.executable, "-m", "catalog_ai"]


def free_subnet() -> str:
    """A 10.231.X prefix no interface of this host uses (runs on one host must not clash)."""
    used = ip("-4", "-o", "addr")
    for _ in range(50):
        subnet = f"10.231.{uuid.uuid4().int % 256}"
        if f" {subnet}." not in used:
            return subnet
    raise RuntimeError("no free 10.231.X.0/24 prefix for the test's veth links")
