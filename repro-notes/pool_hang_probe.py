# ruff: noqa  -- a debugging probe, not part of the package or its tests
"""Probe for the Pool.terminate() hang: runs a fork Pool child N times; on a hang, dumps the
stuck processes' per-thread signal masks, wchan, Python stacks (faulthandler on SIGUSR1) and C
stacks (gdb), plus a per-pid trace of the SIGTERM handler's entry/exit.
Usage: python pool_hang_probe.py [runs] [parallel]"""

import os, signal, subprocess, sys, time, glob, shutil

OUT = "/tmp/poolprobe"
CHILD = r"""
import faulthandler, multiprocessing as mp, os, signal, sys, threading
import alkana_logging
from alkana_logging import _lifecycle
OUT = sys.argv[1]
_orig = _lifecycle._on_sigterm
def _trace(msg):
    os.write(_fd(), f"{os.getpid()} {threading.get_ident()} {threading.current_thread().name} {msg}\n".encode())
_fds = {}
def _fd():
    pid = os.getpid()
    if pid not in _fds:
        _fds[pid] = os.open(f"{OUT}/trace.{pid}", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    return _fds[pid]
def traced(signum, frame):
    _trace(f"handler enter; frame={frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
    try:
        _orig(signum, frame)
    finally:
        _trace("handler exit")
_lifecycle._on_sigterm = traced
_end_by = _lifecycle._end_by
def traced_end_by(signum):
    _trace("end_by")
    _end_by(signum)
_lifecycle._end_by = traced_end_by
import time as _time
from multiprocessing import popen_fork as _pf
_send = _pf.Popen._send_signal
def _traced_send(self, sig):
    _trace(f"send_signal {sig} to {self.pid} returncode={self.returncode} t={_time.monotonic():.4f}")
    _send(self, sig)
_pf.Popen._send_signal = _traced_send
_kill = os.kill
def _traced_kill(pid, sig):
    _trace(f"os.kill({pid}, {sig}) t={_time.monotonic():.4f}")
    _kill(pid, sig)
os.kill = _traced_kill
_start = threading.Thread.start
def _traced_start(self):
    _trace(f"thread start {self.name}")
    _start(self)
threading.Thread.start = _traced_start
_pk = signal.pthread_kill
def _traced_pk(ident, sig):
    _trace(f"resend {sig} to the main thread t={_time.monotonic():.4f}")
    _pk(ident, sig)
signal.pthread_kill = _traced_pk
def init():
    f = open(f"{OUT}/stack.{os.getpid()}", "w")
    faulthandler.register(signal.SIGUSR1, file=f, all_threads=True, chain=False)
    _trace(f"init start mask={sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))} h={signal.getsignal(signal.SIGTERM)}")
    try:
        alkana_logging.setup(log_file="", stdout=False, loki_url="http://127.0.0.1:9")
    except BaseException as e:
        _trace(f"init raised {e!r}")
        raise
    _trace(f"init done t={_time.monotonic():.4f} mask={sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))} h={signal.getsignal(signal.SIGTERM)}")
def job(x):
    return x
if __name__ == "__main__":
    alkana_logging.setup(log_file="", stdout=False, loki_url="http://127.0.0.1:9")
    f = open(f"{OUT}/stack.{os.getpid()}", "w")
    faulthandler.register(signal.SIGUSR1, file=f, all_threads=True, chain=False)
    with mp.get_context("fork").Pool(4, initializer=init) as pool:
        pool.map(job, range(4))
        _trace("terminating")
    print("OK", flush=True)
"""


def proc_info(pid):
    lines = []
    for task in sorted(glob.glob(f"/proc/{pid}/task/*")):
        try:
            status = dict(
                l.split(":\t", 1) for l in open(f"{task}/status").read().splitlines() if ":\t" in l
            )
            wchan = open(f"{task}/wchan").read()
            stack = ""
            try:
                stack = open(f"{task}/stack").read().replace("\n", " | ")
            except OSError:
                pass
            lines.append(
                f"  task {task.rsplit('/', 1)[1]} {status.get('Name', '').strip()} "
                f"state={status.get('State', '').strip()} SigBlk={status['SigBlk'].strip()} "
                f"SigPnd={status['SigPnd'].strip()} ShdPnd={status['ShdPnd'].strip()} "
                f"SigCgt={status['SigCgt'].strip()} wchan={wchan} kstack={stack[:300]}"
            )
        except OSError as e:
            lines.append(f"  {task}: {e}")
    return "\n".join(lines)


rescued = 0


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    par = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    open(f"{OUT}/child.py", "w").write(CHILD)
    hangs = 0
    i = 0
    while i < runs:
        batch = []
        for _ in range(min(par, runs - i)):
            d = f"{OUT}/run{i}"
            os.makedirs(d)
            p = subprocess.Popen(
                [sys.executable, f"{OUT}/child.py", d],
                cwd="/tmp",
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            batch.append((i, d, p))
            i += 1
        for n, d, p in batch:
            try:
                p.communicate(timeout=20)
                resends = [l for f in glob.glob(f"{d}/trace.*") for l in open(f) if "resend" in l]
                if resends:
                    print(f"run {n}: rescued by resend:", *resends, sep="\n  ", flush=True)
                    global rescued
                    rescued += 1
                shutil.rmtree(d)
            except subprocess.TimeoutExpired:
                hangs += 1
                ps = subprocess.run(
                    ["ps", "-o", "pid,ppid,stat,wchan:30,cmd", "-g", str(p.pid)],
                    capture_output=True,
                    text=True,
                ).stdout
                report = [f"=== run {n}: HANG\n{ps}"]
                pids = [
                    int(l.split()[0])
                    for l in ps.splitlines()[1:]
                    if " Z " not in f" {l.split()[2]} "
                ]
                for pid in pids:
                    report.append(f"-- pid {pid}\n{proc_info(pid)}")
                for pid in pids:
                    gdb = subprocess.run(
                        [
                            "gdb",
                            "-p",
                            str(pid),
                            "-batch",
                            "-ex",
                            "thread apply all bt 25",
                            "-ex",
                            "p Handlers[15]",
                            "-ex",
                            "p is_tripped",
                            "-ex",
                            "p _PyRuntime.ceval.signals_pending",
                            "-ex",
                            "p _PyRuntime.interpreters.main->ceval.eval_breaker",
                        ],
                        capture_output=True,
                        text=True,
                        timeout=60,
                    ).stdout
                    report.append(
                        f"-- gdb {pid}\n"
                        + "\n".join(
                            l for l in gdb.splitlines() if l.startswith(("#", "Thread", "$"))
                        )
                    )
                for pid in pids:
                    os.kill(pid, signal.SIGUSR1)
                time.sleep(1)
                for f in sorted(glob.glob(f"{d}/*")):
                    report.append(f"-- {os.path.basename(f)}\n{open(f).read()}")
                text = "\n".join(report)
                open(f"{OUT}/hang{n}.txt", "w").write(text)
                print(text, flush=True)
                os.killpg(p.pid, signal.SIGKILL)
                out = p.communicate()[0]
                open(f"{OUT}/hang{n}.txt", "a").write("-- output\n" + out.decode(errors="replace"))
                print(out.decode(errors="replace"))
    print(f"hung {hangs}/{runs}; runs where the watcher had to resend SIGTERM: {rescued}")


main()
