#!/usr/bin/env python3
"""Mutation check of the RTL test suite: inject small faults into the generator, count the caught ones.

Each mutant is one textual change of an f8hw/hw source file (the generator), or
of the compiler's depthwise line buffer (f8hw/compiler; its programs run on the RTL):
the f8hw package is copied to a temporary directory, the change is applied
there, and a fast subset of sim/ runs against it with that copy first on
PYTHONPATH (the repository is never modified).  A mutant is *caught* when the
subset fails.  A mutant whose original text is no longer in the source is
reported as "stale" (the generator changed; update MUTANTS) and counted as not
caught, never silently dropped.

    .venv/bin/python scripts/mutate.py                 # every mutant, fast subset
    .venv/bin/python scripts/mutate.py --list
    .venv/bin/python scripts/mutate.py round_half_up controller_off_by_one
    .venv/bin/python scripts/mutate.py --tests "sim/test_units.py -k icarus"

Exit status 0 when every mutant is caught, 1 otherwise.  The fast subset: the
requantizer, PE and MAC unit tests and one random compiled layer of each kind
on Icarus (builds take seconds), then the ISA fuzz (sim/test_isa_fuzz.py: 30
random instruction streams on a 2x2 Verilator build of about 10 s) for the
load-unit modes, the drain, the accumulator and the hazard interlock, mixed-format layers on a
flexible 2x2 build on Icarus (sim/test_accel_formats.py), and line-buffer depthwise layers on Verilator
2x2/4x4/4x2 (sim/test_accel_lbuf.py).  pytest
stops at the first failure, so a caught mutant costs little; a subset that
collects nothing is BROKEN, never a catch.  The mutants are
simulator-independent.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str      # relative to the f8hw package
    old: str
    new: str
    doc: str


MUTANTS = [
    Mutant("round_half_up", "hw/requant.py",
           "up.eq(cur[0] & (sticky | cur[1]))", "up.eq(cur[0])",
           "requantizer rounds ties half-up instead of half-to-even"),
    Mutant("saturation_low_off_by_one", "hw/requant.py",
           "lo = Mux(c3.out_signed, -127, 0)", "lo = Mux(c3.out_signed, -128, 0)",
           "signed saturation lets -128 through (rail off by one)"),
    Mutant("saturation_high_off_by_one", "hw/requant.py",
           "hi = Mux(c3.out_signed, 127, 255)", "hi = Mux(c3.out_signed, 127, 254)",
           "unsigned saturation clamps at 254 (rail off by one)"),
    Mutant("swapped_residual_alignment", "hw/requant.py",
           "m.d.comb += [accs.eq(x << c1.acc_lshift), skips.eq(skip9 << c1.skip_lshift)]",
           "m.d.comb += [accs.eq(x << c1.skip_lshift), skips.eq(skip9 << c1.acc_lshift)]",
           "residual add aligns each operand with the other's shift"),
    Mutant("dropped_last_accumulate", "hw/pe.py",
           "m.d.sync += shadow.eq(nxt)", "m.d.sync += shadow.eq(acc)",
           "PE captures the accumulator without the tile's last MAC"),
    Mutant("controller_off_by_one", "hw/compute.py",
           "(lines_left == 1)", "(lines_left == 2)",
           "COMPUTE sequencer ends its line loop one line early"),
    Mutant("load_count_off_by_one", "hw/load.py",
           "with m.If(left == 1):", "with m.If(left == 0):",
           "LOAD moves one word more than its count"),
    # datapath
    Mutant("negative_tie_up", "hw/requant.py",
           "up.eq(cur[0] & (sticky | cur[1]))", "up.eq(cur[0] & (sticky | cur[1] | v[-1]))",
           "requantizer rounds negative ties up (toward +inf) instead of half-to-even"),
    Mutant("left_shift_lets_minus_128", "hw/requant.py",
           "for lo_ in (0, -127)", "for lo_ in (0, -128)",
           "signed saturation on the left-shift path lets -128 through"),
    Mutant("uint8_sign_extended", "hw/array.py",
           "a.eq(Mux(ctl.a_signed, raw.as_signed(), raw))", "a.eq(raw.as_signed())",
           "PE sign-extends uint8 activations"),
    Mutant("stale_accumulator", "hw/compute.py",
           "first.eq(~acc),", "first.eq(0),",
           "a COMPUTE with acc = 0 keeps accumulating onto the previous tile"),
    Mutant("left_shift_stale_value", "hw/requant.py",
           "l_small.eq((v[:10] << left)[:10])", "l_small.eq((v32[:10] << left)[:10])",
           "requantizer left shift takes the stage-1 value (another row's accumulator)"),
    Mutant("drain_cfg_live", "hw/compute.py",
           "go, g_cfg, g_b, g_s, g_o = trig, s_cfg,", "go, g_cfg, g_b, g_s, g_o = trig, live_cfg,",
           "drain reads the requantizer registers at its start, not the COMPUTE's issue snapshot"),
    Mutant("pe_product_unregistered", "hw/pe.py",
           "m.d.sync += prod.eq(a * ws)", "m.d.comb += prod.eq(a * ws)",
           "PE product register bypassed: each step accumulated with the previous step's controls"),
    Mutant("drain_start_not_delayed", "hw/compute.py",
           "range(array_latency(R, C) - 2)", "range(array_latency(R, C) - 3)",
           "drain starts one cycle early, before the product register's last step reaches the shadows"),
    # load unit modes
    Mutant("pad_right_edge_lost", "hw/load.py",
           '(iwk < r_["in_w"])', '(iwk <= r_["in_w"])',
           "LOAD_A reads memory one column past the right edge instead of padding"),
    Mutant("vertical_stride_ignored", "hw/load.py",
           'n_ih.eq(Mux(ow_end, ih + r_["stride_h"], ih))', 'n_ih.eq(Mux(ow_end, ih + 1, ih))',
           "LOAD_A advances one input row at an output-row wrap whatever STRIDE_H"),
    Mutant("gather_line_full_off_by_one", "hw/load.py",
           "line_full.eq((boff + 2 * g_bytes) > C)", "line_full.eq((boff + 2 * g_bytes) >= C)",
           "tap gather closes a line one word early"),
    Mutant("diag_window_close_spacing", "hw/load.py",
           "closing.start(m, kw_, sw_)",
           "closing.start(m, kw_, kw_)",
           "window reuse closes the banks' windows KW columns apart instead of STRIDE_W"),
    # front-end hazard interlock
    Mutant("load_mac_hazard_dropped", "hw/frontend.py",
           '"LOAD": ~self.load_busy & free(H_store, H_mac, H_drain)', '"LOAD": ~self.load_busy & free(H_store, H_drain)',
           "LOAD / LOAD_A do not wait for the MAC phase holding their mask bits"),
    Mutant("compute_load_hazard_dropped", "hw/frontend.py",
           "free(H_load, H_store, H_drain)", "free(H_store, H_drain)",
           "COMPUTE does not wait for the load holding its mask bits"),
    Mutant("store_drain_hazard_dropped", "hw/frontend.py",
           "free(H_load, H_mac, H_drain)", "free(H_load, H_mac)",
           "STORE does not wait for the drain holding its mask bits"),
    Mutant("skip_range_flag_stale", "hw/frontend.py",
           "m.d.sync += flag[name].eq(s_val != 0)", "m.d.sync += flag[name].eq(flag[name] | (s_val != 0))",
           "the SET flags the COMPUTE range checks read never clear (a SET of 0 leaves them set)"),
    Mutant("drain_holder_forgets", "hw/frontend.py",
           "Mux(self.drain_busy, drain_mask, 0)", "Mux(self.drain_busy, 0, 0)",
           "the drain holder keeps only the latest drain's bits, not every drain in flight"),
    # flexible builds (sim/test_accel_formats.py on Icarus)
    Mutant("flex_weight_format_from_a_fmt", "hw/array.py",
           "pe.cfg.w_fmt.eq(ctl.w_fmt)", "pe.cfg.w_fmt.eq(ctl.a_fmt)",
           "the array decodes the weights in the activations' format (A_FMT for W_FMT)"),
    Mutant("flex_skip_exponent_off_by_one", "hw/compute.py",
           "skip.eq(dec.sig << dec.exp)", "skip.eq(dec.sig << (dec.exp + 1))",
           "the residual's integer form has its exponent one too large"),
    Mutant("fp8_lane_kind_off_by_one", "hw/compute.py",
           "c.fp8_cfg.kind.eq(fregs.out_fmt - 1)", "c.fp8_cfg.kind.eq(fregs.out_fmt)",
           "the FP8 lane encodes in the next format of the set (OUT_FMT lane select wrong)"),
    Mutant("bias64_high_word_ignored", "hw/compute.py",
           "Mux(l_fcfg.bias64, Cat(lo, hi).as_signed(), lo.as_signed())", "lo.as_signed()",
           "BIAS64 drops the bias's high 32 bits"),
    Mutant("flex_max_low_bits_only", "hw/fpe.py",
           "gt = Mux(fits, x[:mb].as_signed() > acc[:mb].as_signed(), acc[-1])",
           "gt = x[:mb].as_signed() > acc[:mb].as_signed()",
           "FlexPE's MAX compares the low bits of an accumulator beyond the activations' width (sim/test_isa_fuzz.py)"),
    Mutant("wide64_four_planes", "hw/store.py",
           "Mux(wide64, 7, 3)", "Mux(wide64, 3, 3)",
           "STORE wide64 writes 4 planes instead of 8"),
    # the compiler's depthwise line buffer (its programs on the RTL: sim/test_accel_lbuf.py)
    Mutant("lbuf_second_run_weights", "compiler/emit.py",
           "segs.append((base, first * slot, (kh - first) * slot))", "segs.append((base, 0, (kh - first) * slot))",
           "line buffer: the COMPUTE of the wrapped kernel rows reads the first rows' weights"),
    Mutant("lbuf_one_ring_region", "compiler/schedule.py",
           "RingTile(n_rings % 2,", "RingTile(0,",
           "line buffer: every strip in one ring region (a strip's first load overwrites rows still read)"),
    Mutant("lbuf_lines_follow_mask_bit", "compiler/loads.py",
           "            e.phys = h0", "            e.phys = e.half",
           "line buffer: each tile's rows go to the A half of its mask bit instead of the ring's half"),
    Mutant("lbuf_load_wraps_ring", "compiler/schedule.py",
           "if runs and (oh * sh + r) % S != 0:", "if runs:",
           "line buffer: a LOAD_A of new rows runs past the ring's last slot instead of wrapping"),
]

DEFAULT_TESTS = ("sim/test_units.py sim/test_accel.py sim/test_isa_fuzz.py sim/test_accel_formats.py "
                 "sim/test_accel_lbuf.py -k '(icarus and "
                 "(test_requant or test_pe or test_mac or test_random_layer or test_random_mixed)) "
                 "or test_random_programs_rtl_equals_isa or test_random_programs_flexible_rtl_equals_isa "
                 "or test_lbuf_rtl_equals_isasim or test_lbuf_stride2_wrap_rtl_equals_isasim'")


def make_copy(dst: Path) -> Path:
    src = REPO / "f8hw"
    shutil.copytree(src, dst / "f8hw", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst / "f8hw"


def apply(pkg: Path, mutant: Mutant) -> bool:
    p = pkg / mutant.file
    text = p.read_text()
    if text.count(mutant.old) != 1:
        return False
    p.write_text(text.replace(mutant.old, mutant.new))
    return True


def run_tests(pythonpath: Path | None, tests: str, timeout: float, log: Path) -> tuple[str, float]:
    """Run pytest on ``tests``: "pass", "fail" (a test failed, or a hang) or "broken" (pytest's own exit
    status: nothing collected, usage error), and the seconds it took."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("F8HW_SIM_WALL_TIMEOUT", "300")
    # run from the mutant's directory: the interpreter puts the working directory first on
    # sys.path, ahead of the editable install of the repository's f8hw
    args = [str(REPO / a) if a.startswith("sim/") else a for a in shlex.split(tests)]
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           "--rootdir", str(REPO), *args]
    cwd = pythonpath if pythonpath is not None else REPO
    t0 = time.monotonic()
    with open(log, "w") as fh:
        fh.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
        fh.flush()
        try:
            r = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
            verdict = {0: "pass", 1: "fail"}.get(r.returncode, "broken")
        except subprocess.TimeoutExpired:
            fh.write(f"\n[mutate] timeout after {timeout} s\n")
            verdict = "fail"  # a hang is a detection too (the suite did not pass)
    return verdict, time.monotonic() - t0


def check_import(pythonpath: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    out = subprocess.run([sys.executable, "-c", "import f8hw.hw, os; print(os.path.dirname(f8hw.hw.__file__))"],
                         cwd=pythonpath, env=env, capture_output=True, text=True)
    return out.stdout.strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mutants", nargs="*", help="mutant names (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--tests", default=DEFAULT_TESTS, help="pytest arguments of the subset (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per mutant run (default: %(default)s)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated baseline run")
    ap.add_argument("--keep", action="store_true", help="keep the mutant copies and logs")
    args = ap.parse_args(argv)
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:30s} {m.file:18s} {m.doc}")
        return 0
    chosen = MUTANTS if not args.mutants else [m for m in MUTANTS if m.name in args.mutants]
    unknown = set(args.mutants) - {m.name for m in MUTANTS}
    if unknown:
        print(f"unknown mutant(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="f8hw-mutate-"))
    print(f"[mutate] work directory {work}; subset: pytest {args.tests}")
    if not args.no_baseline:
        verdict, dt = run_tests(None, args.tests, args.timeout, work / "baseline.log")
        print(f"[mutate] baseline (no mutation): {verdict} in {dt:.0f} s")
        if verdict != "pass":
            print(f"[mutate] the unmutated subset fails; see {work / 'baseline.log'}", file=sys.stderr)
            return 2
    caught = 0
    for m in chosen:
        d = work / m.name
        d.mkdir()
        pkg = make_copy(d)
        if not apply(pkg, m):
            print(f"[mutate] {m.name:30s} STALE: text not found once in f8hw/{m.file}")
            continue
        where = check_import(d)
        if where != str(pkg / "hw"):
            print(f"[mutate] {m.name}: the mutant copy is not imported (got {where!r})", file=sys.stderr)
            return 2
        verdict, dt = run_tests(d, args.tests, args.timeout, d / "pytest.log")
        # a subset that selects nothing, or does not run, catches nothing
        status = {"pass": "survived", "fail": "caught", "broken": "BROKEN"}[verdict]
        caught += verdict == "fail"
        print(f"[mutate] {m.name:30s} {status:8s} {dt:6.0f} s  ({m.doc})")
    total = len(chosen)
    print(f"[mutate] score: {caught}/{total} caught in {time.monotonic() - t_start:.0f} s")
    if not args.keep and caught == total:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"[mutate] logs in {work}")
    return 0 if caught == total else 1


if __name__ == "__main__":
    sys.exit(main())
