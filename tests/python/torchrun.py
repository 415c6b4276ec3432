"""One way for the tests to run a script under torchrun on loopback, bounded
in time. torchrun starts each worker in a session of its own, so killing
torchrun's process group leaves hung workers running (and holding the output
pipe open); on a timeout this kills torchrun and every process below it."""
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple


def _children() -> Dict[int, List[int]]:
    kids: Dict[int, List[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kids.setdefault(int(fields[1]), []).append(int(name))
    return kids


def _descendants(pid: int) -> List[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_tree(p: subprocess.Popen) -> None:
    """SIGTERM to torchrun (it stops its workers), then SIGKILL to whatever
    of the tree is left after a grace period."""
    tree = _descendants(p.pid)
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for pid in [p.pid] + tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run(script: str, nproc: int, args: Sequence[str] = (), env: Optional[dict] = None,
        timeout: float = 180.0, torchrun_args: Sequence[str] = ()) -> Tuple[Optional[int], str, float]:
    """(returncode, merged output, seconds); returncode None when the run
    went past `timeout` and was killed (a hang)."""
    e = dict(os.environ if env is None else env)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    py = os.path.join(root, "python")
    e["PYTHONPATH"] = os.pathsep.join([py] + [p for p in e.get("PYTHONPATH", "").split(os.pathsep)
                                              if p and p != py])
    e.setdefault("MASTER_ADDR", "127.0.0.1")
    e.setdefault("OMP_NUM_THREADS", "1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", *torchrun_args, script, *args]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        _kill_tree(p)
        out, _ = p.communicate()
        return None, out, time.monotonic() - t0
