"""Predictive dialer benchmark: the product's pacer on simulated time through 8-hour shifts.

``crm_core.pacing.simulation`` runs a campaign as a discrete-event simulation and calls the same
:class:`~crm_core.pacing.Pacer` the service runs, once a simulated second. Scenario (issue 13):
each dial is a person 20%, an answering machine 25% (both after a lognormal ring, mean 9 s, sd
4 s), no answer 45% (given up at 25 s), busy 10% (ends after 3 s); machine detection takes a
lognormal 3 s (sd 1 s), takes 2% of people for machines (hung up on) and passes 5% of machines to
the agents (10 s of an agent's time); talk lognormal, mean 120 s, CV 1.0; wrap-up 20 s; a live
answer not joined to an agent within 2 s is abandoned; agents start ready and never pause.
N = 10, 20, 50, 100 agents, 5 seeds each (``--quick``: 2), predictive and, on the same seeds,
progressive as the baseline. The campaign runs under the US profile (the FCC rule: abandoned /
answered by a person, AMD false positives not counted); ``aband_uk_pct_N`` gives the same runs
counted as the UK rule counts (false positives included).

    python benchmarks/dialer.py [--quick] [--agents 10,20,50,100] [--seeds 5] [--hours 8]

Progress goes to stderr; the last line of stdout is one JSON object: ``occupancy_N`` (talk
seconds / agent seconds, mean over seeds), ``aband_pct_N`` (mean), ``aband_max_pct_N`` (worst
seed), ``contacts_per_agent_hour_N``, ``progressive_occupancy_N``, and details.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_core.pacing import PacingMode
from crm_core.pacing.simulation import Scenario, ShiftResult, run_shift
from crm_core.rules.abandonment import abandonment_status
from crm_core.rules.regulatory_profile import PROFILES, UK

OCCUPANCY_TARGETS = {10: 0.70, 20: 0.75, 50: 0.79, 100: 0.81}
ABANDONMENT_TARGET_PCT = 3.0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds instead of 5")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--agents", default="10,20,50,100")
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="us")
    args = parser.parse_args()
    seeds = args.seeds or (2 if args.quick else 5)
    sizes = [int(n) for n in args.agents.split(",")]
    profile = PROFILES[args.profile]
    seconds = args.hours * 3600.0
    figures: dict[str, object] = {}
    started = time.perf_counter()
    with Progress(transient=True) as bar:
        task = bar.add_task("shifts", total=len(sizes) * seeds * 2 * seconds)
        done = 0.0
        for n in sizes:
            scenario = Scenario(agents=n, seconds=seconds, profile=profile)
            runs: dict[PacingMode, list[ShiftResult]] = {mode: [] for mode in PacingMode}
            for seed in range(seeds):
                for mode in (PacingMode.PREDICTIVE, PacingMode.PROGRESSIVE):
                    bar.update(task, description=f"N={n} seed {seed} {mode.value}")
                    base = done

                    def report(t: float, base: float = base) -> None:
                        bar.update(task, completed=base + t)

                    runs[mode].append(run_shift(scenario, mode, seed, progress=report))
                    done += seconds
                    bar.update(task, completed=done)
            predictive, progressive = runs[PacingMode.PREDICTIVE], runs[PacingMode.PROGRESSIVE]
            rates = [100 * r.abandonment_rate for r in predictive]
            uk_rates = [100 * abandonment_status(r.window, UK).rate for r in predictive]
            figures |= {
                f"occupancy_{n}": round(_mean([r.occupancy for r in predictive]), 4),
                f"aband_pct_{n}": round(_mean(rates), 3),
                f"aband_max_pct_{n}": round(max(rates), 3),
                f"contacts_per_agent_hour_{n}": round(
                    _mean([r.contacts_per_agent_hour for r in predictive]), 2
                ),
                f"progressive_occupancy_{n}": round(_mean([r.occupancy for r in progressive]), 4),
                f"progressive_contacts_per_agent_hour_{n}": round(
                    _mean([r.contacts_per_agent_hour for r in progressive]), 2
                ),
                f"aband_uk_pct_{n}": round(_mean(uk_rates), 3),
                f"occupancy_min_{n}": round(min(r.occupancy for r in predictive), 4),
                f"pacer_us_{n}": round(
                    1e6 * sum(r.pacer_seconds for r in predictive) / sum(r.pacer_calls for r in predictive), 1
                ),
                f"fallback_share_{n}": round(
                    _mean([r.reasons.get("abandonment-limit", 0) / r.pacer_calls for r in predictive]), 4
                ),
            }
            print(
                f"N={n}: occupancy {figures[f'occupancy_{n}']} (progressive "
                f"{figures[f'progressive_occupancy_{n}']}), abandonment {figures[f'aband_pct_{n}']}% "
                f"(worst {figures[f'aband_max_pct_{n}']}%)",
                file=sys.stderr,
            )
    figures["targets_met"] = all(
        figures[f"aband_max_pct_{n}"] <= ABANDONMENT_TARGET_PCT  # type: ignore[operator]
        and figures[f"occupancy_{n}"] >= OCCUPANCY_TARGETS.get(n, 0.0)  # type: ignore[operator]
        for n in sizes
    )
    figures |= {
        "seeds": seeds,
        "hours": args.hours,
        "profile": profile.name,
        "quick": args.quick,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
