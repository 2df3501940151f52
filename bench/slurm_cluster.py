"""A real single-node Slurm cluster on this machine, from Debian's packages: munge,
slurmctld and slurmd on localhost (and, for `sacct`, slurmdbd over a private MariaDB).
Everything lives in one folder (configs, state, logs, the database) and on free ports, so
it neither needs nor touches a system-wide Slurm; `down` stops every daemon it started.

    python -m bench.slurm_cluster up [--root DIR]      # prints the SLURM_CONF to export
    python -m bench.slurm_cluster down [--root DIR]
    python -m bench.slurm_cluster demo                 # up, a tiny sweep through it, report, down

Needs root (the daemons run as root, SlurmUser=root) and apt-get to install missing
packages (`install`); `unavailable()` says why not, and the tests skip with that reason."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge", "slurmdbd", "mariadb-server")
BINARIES = ("munged", "slurmctld", "slurmd", "slurmdbd", "mariadbd", "mariadb-install-db",
            "sbatch", "sacct", "sacctmgr", "scancel", "squeue", "sinfo")
CLUSTER = "adaptbench"
DEFAULT_ROOT = Path("/tmp/adaptbench-slurm")


def unavailable() -> str | None:
    """Why a local cluster cannot be brought up here, or None."""
    if not sys.platform.startswith("linux"):
        return "the local Slurm cluster needs Linux"
    if os.geteuid() != 0:
        return "the local Slurm cluster needs root (its daemons run as root)"
    if all(shutil.which(b) for b in BINARIES):
        return None
    if not shutil.which("apt-get"):
        return f"Slurm is not installed and there is no apt-get to install {' '.join(PACKAGES)}"
    return None


def install() -> None:
    """apt-get install the packages whose programs are missing (apt-get update first when
    the package lists are stale)."""
    if all(shutil.which(b) for b in BINARIES):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(cmd, env=env, check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 2048


class LocalSlurm:
    """One cluster in `root`: `up()` writes the configs and starts the daemons, waits until
    the node is idle and returns the environment clients need (SLURM_CONF); `down()`
    cancels every job and stops the daemons."""

    def __init__(self, root: Path = DEFAULT_ROOT, cpus: int | None = None,
                 accounting: bool = True) -> None:
        self.root = root.resolve()
        self.cpus = cpus or os.cpu_count() or 1
        self.accounting = accounting
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    # ---- configs ----------------------------------------------------------------------
    def _write_configs(self) -> None:
        for sub in ("etc", "state", "spool", "log", "run", "db"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.ports = {"ctld": _free_port(), "d": _free_port(), "dbd": _free_port(),
                      "sql": _free_port()}
        r = self.root
        acct = (f"AccountingStorageType=accounting_storage/slurmdbd\n"
                f"AccountingStorageHost=localhost\nAccountingStoragePort={self.ports['dbd']}\n"
                f"JobAcctGatherType=jobacct_gather/linux\nJobAcctGatherFrequency=5\n"
                if self.accounting else "AccountingStorageType=accounting_storage/none\n")
        mem = max(1024, _memory_mb() - 1024)
        # more CPUs than the machine has: slurmd must take the configured count, not drain
        # the node for "low socket*core*thread count"
        overrides = ("SlurmdParameters=config_overrides\n"
                     if self.cpus > (os.cpu_count() or 1) else "")
        self.conf.write_text(f"""# written by bench/slurm_cluster.py: a one-node cluster on localhost
ClusterName={CLUSTER}
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={self.ports['ctld']}
SlurmdPort={self.ports['d']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
{overrides}KillWait=5
OverTimeLimit=0
InactiveLimit=0
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
{acct}JobCompType=jobcomp/none
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        dbd = r / "etc" / "slurmdbd.conf"
        dbd.write_text(f"""AuthType=auth/munge
DbdHost=localhost
DbdPort={self.ports['dbd']}
SlurmUser=root
PidFile={r}/run/slurmdbd.pid
LogFile={r}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports['sql']}
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
""")
        dbd.chmod(0o600)  # slurmdbd refuses a readable password file

    # ---- daemons ----------------------------------------------------------------------
    def _run(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), capture_output=True, text=True,
                              env={**os.environ, **self.env}, **kw)

    def _munge(self) -> None:
        if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0:
            return  # a munged is already serving
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        key = Path("/etc/munge/munge.key")
        if not key.is_file():
            subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
            shutil.chown(key, "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=True,
                       capture_output=True)
        self._wait(lambda: subprocess.run("munge -n | unmunge", shell=True,
                                          capture_output=True).returncode == 0, "munged", 20)

    def _mariadb(self) -> None:
        db = self.root / "db"
        if not (db / "mysql").is_dir():
            subprocess.run(["mariadb-install-db", "--user=root", f"--datadir={db}",
                            "--auth-root-authentication-method=normal",
                            "--skip-test-db"], check=True, capture_output=True)
        sock = self.root / "run" / "mysqld.sock"
        log = (self.root / "log" / "mariadb.log").open("a")
        subprocess.Popen(["mariadbd", "--user=root", f"--datadir={db}", f"--socket={sock}",
                          f"--port={self.ports['sql']}", "--bind-address=127.0.0.1",
                          f"--pid-file={self.root / 'run' / 'mariadb.pid'}",
                          "--skip-name-resolve", "--innodb-buffer-pool-size=64M"],
                         stdout=log, stderr=log, start_new_session=True)

        def ready() -> bool:
            return subprocess.run(["mariadb", f"--socket={sock}", "-uroot", "-e", "SELECT 1"],
                                  capture_output=True).returncode == 0
        self._wait(ready, "mariadb", 60)
        sql = ("CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm'; "
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;")
        subprocess.run(["mariadb", f"--socket={sock}", "-uroot", "-e", sql], check=True,
                       capture_output=True)

    def _wait(self, ok, what: str, timeout_s: float) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if ok():
                return
            time.sleep(0.5)
        raise RuntimeError(f"{what} did not come up within {timeout_s:.0f} s; logs in "
                           f"{self.root / 'log'}")

    def up(self, timeout_s: float = 120) -> dict[str, str]:
        """Start the cluster; returns the environment for clients (SLURM_CONF)."""
        install()
        self.down(quiet=True)  # a cluster left in this folder by a killed run
        self._write_configs()
        self._munge()
        if self.accounting:
            self._mariadb()
            res = self._run("slurmdbd")  # reads slurmdbd.conf beside SLURM_CONF
            if res.returncode != 0:
                raise RuntimeError(f"slurmdbd failed to start: {res.stderr.strip()}")
            def registered() -> bool:  # slurmdbd answers once it is up; a rerun finds it
                res = self._run("sacctmgr", "-i", "add", "cluster", CLUSTER)
                return res.returncode == 0 or "already exists" in res.stdout
            self._wait(registered, "slurmdbd", 60)
        for daemon in ("slurmctld", "slurmd"):
            cmd = [daemon, "-f", str(self.conf)] + (["-N", self.node] if daemon == "slurmd" else [])
            res = self._run(*cmd)
            if res.returncode != 0:
                raise RuntimeError(f"{daemon} failed to start: {res.stderr.strip()}; logs in "
                                   f"{self.root / 'log'}")

        def idle() -> bool:
            out = self._run("sinfo", "-h", "-N", "-o", "%t").stdout.split()
            return out == ["idle"]
        self._wait(idle, "the node (idle in sinfo)", timeout_s)
        return self.env

    def down(self, quiet: bool = False) -> None:
        """Cancel every job and stop every daemon this cluster started."""
        if self.conf.is_file():
            self._run("scancel", "--full", "--quiet", "-u", "root", timeout=30)
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadb"):
            pid_file = self.root / "run" / f"{name}.pid"
            with contextlib.suppress(OSError, ValueError):
                pid = int(pid_file.read_text().strip())
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
        if not quiet:
            print(f"stopped the cluster in {self.root}")

    def sacct(self, *job_ids: str, settle_s: float = 60) -> str:
        """`sacct` lines of these jobs (all the cluster's when none is given), once none of
        them is still pending, running or completing (a job's result reaches submitit a
        moment before Slurm closes the job), or after `settle_s`."""
        fmt = "JobID%-16,JobName%-14,State%-12,ExitCode,Elapsed,Timelimit,AllocCPUS,ReqMem,MaxRSS"
        args = ["-j", ",".join(job_ids)] if job_ids else ["-a"]
        deadline = time.monotonic() + settle_s
        while True:
            out = self._run("sacct", "-X", "--format", fmt, *args).stdout
            busy = any(w in out for w in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED"))
            if not busy or time.monotonic() > deadline:
                return out
            time.sleep(1)

    def squeue(self) -> list[str]:
        return self._run("squeue", "-h", "-o", "%i %T").stdout.split("\n")[:-1]


@contextlib.contextmanager
def cluster(root: Path = DEFAULT_ROOT, **kw) -> Iterator[LocalSlurm]:
    """The cluster, up for the block, with SLURM_CONF exported; down afterwards."""
    c = LocalSlurm(root, **kw)
    old = os.environ.get("SLURM_CONF")
    try:
        os.environ.update(c.up())
        yield c
    finally:
        c.down(quiet=True)
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old


def _demo(root: Path) -> None:
    """Up, a tiny four-run sweep (prompt and lora, two seeds) as Slurm jobs, the report."""
    bin_dir = Path(sys.executable).parent
    out = root / "results"
    shutil.rmtree(out, ignore_errors=True)  # a fresh sweep: every run a job
    with cluster(root) as c:
        t0 = time.perf_counter()
        subprocess.run([str(bin_dir / "harness-run"), "-m", "launcher=slurm",
                        "model=tiny-random", "strategy=prompt,lora", "seed=0,1",
                        "task.n_entities=6", "+per_strategy.lora.train.max_steps=2",
                        *SLURM_CPU, f"hydra.sweep.dir={out}", f"cache_dir={root}/cache"],
                       check=True)
        print(f"sweep through Slurm: {time.perf_counter() - t0:.1f} s")
        jobs = [json.loads(m.read_text()).get("slurm_job") for m in out.glob("*/metrics.json")]
        print(c.sacct(*sorted(j for j in jobs if j)))
        subprocess.run([str(bin_dir / "harness-report"), str(out)], check=True)


# What a job asks of this CPU-only node (the slurm preset asks for a GPU by default).
SLURM_CPU = ["hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
             "hydra.launcher.mem_gb=3", "torch_threads=1"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["up", "down", "demo", "check"])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    a = ap.parse_args()
    why = unavailable()
    if why:
        sys.exit(f"slurm_cluster: {why}")
    if a.action == "up":
        env = LocalSlurm(a.root).up()
        print(f"cluster up; export SLURM_CONF={env['SLURM_CONF']}")
    elif a.action == "down":
        LocalSlurm(a.root).down()
    elif a.action == "demo":
        _demo(a.root)
    else:
        print("a local Slurm cluster can be brought up here")


if __name__ == "__main__":
    main()
