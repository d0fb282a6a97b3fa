"""Race detection: two instructions' accesses to one location, one a write, that the masks do not order in time."""

from __future__ import annotations

import numpy as np

from f8hw.isa import ErrorCode
from f8hw.isasim.result import IsaSimError

__all__ = ["Access", "RaceChecker"]


class Access:
    """One instruction's access to one resource: banks [b0, b1), lines [l0, l1).

    Bank b is accessed during cycles [s0 + b*ds, e0 + b*de] (inclusive); for
    main memory ``addrs``/``times`` give the exact word addresses and cycles.
    """

    __slots__ = ("pc", "what", "write", "b0", "b1", "l0", "l1", "s0", "ds", "e0", "de", "addrs", "times", "last_end")

    def __init__(self, pc, what, write, b0, b1, l0, l1, s0, ds, e0, de, addrs=None, times=None):
        self.pc, self.what, self.write = pc, what, write
        self.b0, self.b1, self.l0, self.l1 = b0, b1, l0, l1
        self.s0, self.ds, self.e0, self.de = s0, ds, e0, de
        self.addrs, self.times = addrs, times
        self.last_end = e0 + de * (b1 - 1)


def _first_per_addr(addrs, times, latest: bool):
    """Unique addresses and their first (or latest) access cycle."""
    order = np.lexsort((times, addrs))
    a, t = addrs[order], times[order]
    if latest:
        keep = np.ones(len(a), bool)
        keep[:-1] = a[1:] != a[:-1]
    else:
        keep = np.ones(len(a), bool)
        keep[1:] = a[1:] != a[:-1]
    return a[keep], t[keep]


class RaceChecker:
    """The accesses still in flight, per resource; ``add`` raises IsaSimError(RACE) on a conflict."""

    def __init__(self):
        self.live: dict[str, list[Access]] = {}

    def prune(self, now: int) -> None:
        """Forget accesses that ended before any future access can start (now + 1)."""
        for k, lst in self.live.items():
            if lst and any(a.last_end < now + 1 for a in lst):
                self.live[k] = [a for a in lst if a.last_end >= now + 1]

    def add(self, acc: Access) -> None:
        lst = self.live.setdefault(acc.what, [])
        for old in lst:
            if old.pc == acc.pc or not (old.write or acc.write):
                continue
            if old.l1 <= acc.l0 or acc.l1 <= old.l0:
                continue
            b0, b1 = max(old.b0, acc.b0), min(old.b1, acc.b1)
            if b0 >= b1:
                continue
            if acc.addrs is not None:
                self._check_mem(old, acc)
                continue
            b = np.arange(b0, b1)
            # the later instruction's access must start after the earlier one's has ended
            bad = acc.s0 + b * acc.ds <= old.e0 + b * old.de
            if bad.any():
                bank = int(b[bad.argmax()])
                lo, hi = max(old.l0, acc.l0), min(old.l1, acc.l1) - 1
                where = f"{acc.what} lines {lo}..{hi}" if acc.what != "A" else f"A bank {bank} lines {lo}..{hi}"
                raise IsaSimError(
                    ErrorCode.RACE, acc.pc,
                    f"race on {where}: instruction {old.pc} {'writes' if old.write else 'reads'} it until cycle "
                    f"{old.e0 + bank * old.de}, instruction {acc.pc} {'writes' if acc.write else 'reads'} it from cycle "
                    f"{acc.s0 + bank * acc.ds} (the masks do not order them)")
        lst.append(acc)

    @staticmethod
    def _check_mem(old: Access, acc: Access) -> None:
        if acc.s0 > old.e0:
            return
        oa, ot = _first_per_addr(old.addrs, old.times, latest=True)
        na, nt = _first_per_addr(acc.addrs, acc.times, latest=False)
        common, io, inew = np.intersect1d(oa, na, assume_unique=True, return_indices=True)
        if len(common) == 0:
            return
        bad = nt[inew] <= ot[io]
        if bad.any():
            k = int(bad.argmax())
            raise IsaSimError(
                ErrorCode.RACE, acc.pc,
                f"race on main-memory word {int(common[k])}: instruction {old.pc} "
                f"{'writes' if old.write else 'reads'} it at cycle {int(ot[io][k])}, instruction {acc.pc} "
                f"{'writes' if acc.write else 'reads'} it at cycle {int(nt[inew][k])} (the masks do not order them)")
